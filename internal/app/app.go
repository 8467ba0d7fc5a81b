// Package app is the composition root: it builds the whole server from a
// config.Config — storage, ephemeral state, password hashing, throttles,
// sessions, routes and middleware — and runs it. Nothing imports it but
// cmd/gatehouse and end-to-end tests.
package app

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/account"
	"github.com/gatehouse-auth/gatehouse/internal/audit"
	"github.com/gatehouse-auth/gatehouse/internal/config"
	"github.com/gatehouse-auth/gatehouse/internal/device"
	"github.com/gatehouse-auth/gatehouse/internal/dispatch"
	"github.com/gatehouse-auth/gatehouse/internal/ephemeral"
	"github.com/gatehouse-auth/gatehouse/internal/geo"
	"github.com/gatehouse-auth/gatehouse/internal/httpx"
	"github.com/gatehouse-auth/gatehouse/internal/ipguard"
	"github.com/gatehouse-auth/gatehouse/internal/mail"
	"github.com/gatehouse-auth/gatehouse/internal/metrics"
	"github.com/gatehouse-auth/gatehouse/internal/mfa"
	"github.com/gatehouse-auth/gatehouse/internal/outbox"
	"github.com/gatehouse-auth/gatehouse/internal/passkey"
	"github.com/gatehouse-auth/gatehouse/internal/password"
	"github.com/gatehouse-auth/gatehouse/internal/problem"
	"github.com/gatehouse-auth/gatehouse/internal/revocation"
	"github.com/gatehouse-auth/gatehouse/internal/risk"
	"github.com/gatehouse-auth/gatehouse/internal/secrets"
	"github.com/gatehouse-auth/gatehouse/internal/session"
	"github.com/gatehouse-auth/gatehouse/internal/signing"
	"github.com/gatehouse-auth/gatehouse/internal/sms"
	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/store/sqlstore"
	"github.com/gatehouse-auth/gatehouse/internal/throttle"
	"github.com/gatehouse-auth/gatehouse/internal/token"
	"github.com/gatehouse-auth/gatehouse/internal/ui"
	"github.com/gatehouse-auth/gatehouse/internal/verification"
	"github.com/gatehouse-auth/gatehouse/sdk/go/gatehouse"
)

// Server is a built Gatehouse: its HTTP handler and what it owns.
type Server struct {
	Handler http.Handler
	// Metrics serves GET /metrics (Prometheus), for a listener of its own.
	Metrics  http.Handler
	DB       store.Store
	Sessions *session.Manager
	// Keys signs access tokens and serves the JWKS.
	Keys *signing.Keyring
	// Revocations is this replica's revoked-session set.
	Revocations *revocation.Set
	// Dialect names the database engine ("sqlite" or "postgres").
	Dialect string
	// IPGuard enforces the client-address allow and deny rules and bans
	// credential stuffing (package ipguard).
	IPGuard *ipguard.Guard

	cfg    config.Config
	log    *slog.Logger
	eph    ephemeral.Store
	geo    *geo.DB // nil without --geoip-db
	jobs   *dispatch.Queue
	stop   context.CancelFunc
	closed bool
}

// revocationSyncInterval bounds how long a revocation lost on the bus
// (Redis down, message dropped) goes unseen by this replica.
const revocationSyncInterval = 15 * time.Second

// revocationHeartbeat is the revocation feed's heartbeat interval.
const revocationHeartbeat = 5 * time.Second

// Options are the parts of a Server that tests replace.
type Options struct {
	// Now is the clock of security decisions (nil = time.Now).
	Now func() time.Time
}

// OpenStore opens the configured database, creating the data directory
// (mode 0700) for SQLite.
func OpenStore(ctx context.Context, cfg *config.Config, migrate bool, log *slog.Logger) (*sqlstore.DB, error) {
	if cfg.Database == "" {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("app: create data dir: %w", err)
		}
	}
	db, err := sqlstore.Open(ctx, cfg.DatabaseDSN(), sqlstore.Options{Migrate: migrate, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("app: open database: %w", err)
	}
	return db, nil
}

// New builds a Server. The caller must Close it.
func New(ctx context.Context, cfg config.Config, log *slog.Logger, opts Options) (_ *Server, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	params := password.Params{Memory: cfg.Argon2Memory, Time: cfg.Argon2Time, Threads: uint8(cfg.Argon2Threads), SaltLen: 16, KeyLen: 32}
	if err := params.Validate(); err != nil {
		return nil, fmt.Errorf("app: argon2 parameters: %w", err)
	}
	policy := password.Policy{MinLength: cfg.PasswordMinLength}
	if err := policy.Validate(); err != nil {
		return nil, fmt.Errorf("app: password policy: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("app: create data dir: %w", err)
	}
	peppers, err := secrets.LoadPeppers(cfg.DataDir, log)
	if err != nil {
		return nil, err
	}
	pp := make([]password.Pepper, len(peppers))
	for i, p := range peppers {
		pp[i] = password.Pepper{Version: p.Version, Key: p.Key}
	}
	hasher, err := password.NewHasher(password.Config{Params: params, Peppers: pp, MaxConcurrent: cfg.HashConcurrency})
	if err != nil {
		return nil, fmt.Errorf("app: password hasher: %w", err)
	}

	s := &Server{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	db, err := OpenStore(ctx, &cfg, true, log)
	if err != nil {
		return nil, err
	}
	s.DB = db
	s.Dialect = db.Dialect()
	local := ephemeral.NewMemory(opts.Now)
	s.eph = local
	localLimiter := throttle.NewMemory(opts.Now, throttle.DefaultMemoryKeys)
	var limiter throttle.Limiter = localLimiter
	if cfg.Redis != "" {
		r, err := ephemeral.NewRedis(ctx, cfg.Redis, cfg.RedisPrefix)
		if err != nil {
			return nil, fmt.Errorf("app: redis: %w", err)
		}
		s.eph = r
		limiter = throttle.NewRedis(r.Client())
	}

	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.stop = stop

	keks, err := secrets.LoadKEKs(cfg.DataDir, log)
	if err != nil {
		return nil, err
	}
	s.Keys = signing.NewKeyring(db.SigningKeys(), keks, signing.Config{
		Algorithm:      cfg.SigningAlgorithm,
		PublishDelay:   cfg.KeyPublishDelay,
		TokenLifetime:  cfg.TokenLifetime(),
		ReloadInterval: config.KeyReloadInterval,
		JWKSMaxAge:     cfg.JWKSMaxAge,
	}, log, opts.Now)
	if err := s.Keys.Ensure(ctx); err != nil {
		return nil, fmt.Errorf("app: signing keys: %w", err)
	}
	go s.Keys.Run(runCtx)

	// A revoked session must be remembered as long as an access token that
	// names it can still verify somewhere: its lifetime plus the leeway of
	// the verifiers, with a margin for clock skew.
	s.Revocations = revocation.NewSet(cfg.TokenLifetime()+time.Minute, opts.Now)
	verifier, err := gatehouse.NewVerifier(gatehouse.VerifierConfig{
		Issuer:   cfg.BaseURL(),
		Audience: cfg.Audience(),
		Leeway:   config.VerifierLeeway,
		// A token longer-lived than the current setting (issued before it
		// was lowered) would outlive the revocation set's memory.
		MaxTokenLifetime: cfg.AccessTokenTTL,
		Keys:             s.Keys,
		Revocations:      s.Revocations,
		Now:              opts.Now,
	})
	if err != nil {
		return nil, fmt.Errorf("app: token verifier: %w", err)
	}
	csrf, err := httpx.CrossOrigin(log, cfg.TrustedOrigins, token.OAuthPaths)
	if err != nil {
		return nil, err
	}
	s.Sessions = session.NewManager(session.Config{
		IdleTimeout:         cfg.SessionIdleTimeout,
		TokenIdleTimeout:    cfg.RefreshIdleTimeout,
		Lifetime:            cfg.SessionLifetime,
		ReauthMaxAge:        cfg.ReauthMaxAge,
		CacheTTL:            cfg.SessionCacheTTL,
		Secure:              !cfg.Dev,
		RequireMFA:          cfg.RequireMFA,
		RequireMFAForAdmins: cfg.RequireMFAForAdmins,
	}, session.Deps{DB: db, Bus: s.eph, Revocations: s.Revocations, Bearer: verifier, CrossOrigin: csrf.Check, Log: log, Now: opts.Now})
	if err := s.Sessions.Start(runCtx); err != nil {
		return nil, fmt.Errorf("app: session invalidation bus: %w", err)
	}
	go s.Revocations.Run(runCtx, db.Sessions(), revocationSyncInterval, log)

	geoDB, err := geo.Open(cfg.GeoIPDB, cfg.GeoIPASNDB)
	if cfg.GeoIPDB == "" {
		geoDB, err = nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("app: --geoip-db: %w", err)
	}
	s.geo = geoDB
	bands, err := risk.ParseBands(cfg.RiskBands)
	if err != nil {
		return nil, fmt.Errorf("app: --risk-bands: %w", err)
	}
	riskEngine := risk.NewEngine(geoDB, bands)
	if geoDB != nil {
		s.Sessions.SetLocator(func(ip netip.Addr) string { return risk.Place(geoDB.Lookup(ip)) })
	}
	m := metrics.New()
	onRisk := func(decision string) { m.Security.WithLabelValues("risk", decision).Inc() }
	resourceServers := token.NewResourceServers(cfg.ResourceServers, log)
	tokens := token.New(token.Config{
		Issuer:          cfg.BaseURL(),
		Audience:        cfg.Audience(),
		AccessTTL:       cfg.AccessTokenTTL,
		RefreshIdle:     cfg.RefreshIdleTimeout,
		RefreshLifetime: cfg.RefreshLifetime,
		Grace:           cfg.RefreshGrace,
		Secure:          !cfg.Dev,
	}, token.Deps{DB: db, Sessions: s.Sessions, Signer: s.Keys, Verifier: verifier, ResourceServers: resourceServers, Risk: riskEngine, OnRisk: onRisk, Log: log})
	feed := &revocation.Feed{Set: s.Revocations, Heartbeat: revocationHeartbeat, MaxLifetime: 10 * time.Minute, MaxTokenLifetime: cfg.AccessTokenTTL, Log: log}
	if cfg.Redis != "" {
		// Revocations reach this replica over the bus, or at worst through
		// the periodic store sync: while either works the set is current
		// within the sync interval and the feed keeps its clients alive.
		// With neither, heartbeats stop and SDK verifiers fail closed.
		feed.Healthy = func(ctx context.Context) error {
			err := s.eph.Ping(ctx)
			if err != nil && s.Revocations.SyncedWithin(2*revocationSyncInterval) {
				return nil
			}
			return err
		}
	}

	if err := s.startIPGuard(runCtx, m); err != nil {
		return nil, err
	}
	thr := throttle.New(map[string]throttle.Rule{
		account.ClassLoginIP:          {Limit: cfg.LoginAttemptsPerIP, Window: cfg.LoginFailureWindow, PerIP: true},
		account.ClassReauth:           {Limit: cfg.LoginFailuresPerAccount, Window: cfg.LoginFailureWindow},
		account.ClassSignupIP:         {Limit: cfg.SignupsPerIP, Window: cfg.SignupWindow, PerIP: true},
		verification.ClassSendAddress: {Limit: cfg.MessagesPerAddress, Window: cfg.MessageWindow},
		verification.ClassSendIP:      {Limit: cfg.MessagesPerIP, Window: cfg.MessageWindow, PerIP: true},
		verification.ClassCodeIP:      {Limit: cfg.LoginAttemptsPerIP, Window: cfg.LoginFailureWindow, PerIP: true},
		verification.ClassCodeAccount: {Limit: cfg.LoginFailuresPerAccount, Window: cfg.LoginFailureWindow},
		mfa.ClassMFAAccount:           {Limit: cfg.LoginFailuresPerAccount, Window: cfg.LoginFailureWindow},
		// Three times the sign-in budget: the hosted sign-in page begins
		// a ceremony per load and renews it every five minutes.
		passkey.ClassCeremonyIP: {Limit: 3 * cfg.LoginAttemptsPerIP, Window: cfg.LoginFailureWindow, PerIP: true},
		token.ClassTokenIP:      {Limit: cfg.TokenRequestsPerIP, Window: cfg.LoginFailureWindow, PerIP: true},
	}, limiter, localLimiter, log)
	tokens.Throttle = thr
	tokens.StepUps = &throttle.Backoff{After: throttle.NoDelay, Window: 24 * time.Hour, Primary: s.eph, Fallback: local, Log: log}

	s.jobs = dispatch.New(dispatch.Config{}, log)
	s.jobs.Start(runCtx)
	mailer, texter, err := senders(&cfg, log)
	if err != nil {
		return nil, err
	}
	mails, err := mail.NewTemplates(cfg.ProductName, cfg.BaseURL())
	if err != nil {
		return nil, fmt.Errorf("app: mail templates: %w", err)
	}
	accounts := &account.Handler{
		DB: db, Sessions: s.Sessions, Hasher: hasher, Policy: policy, Throttle: thr, Tokens: tokens,
		RequireVerifiedEmail: cfg.RequireVerifiedEmail, Log: log,
		Protect: account.Protection{
			Pair: &throttle.Backoff{
				After: cfg.LoginDelayAfter, Base: time.Second, Cap: cfg.LoginDelayMax, Window: cfg.LoginAccountFailureWindow,
				Primary: s.eph, Fallback: local, Log: log,
			},
			Account: &throttle.Backoff{
				After: throttle.NoDelay, Window: cfg.LoginAccountFailureWindow,
				Primary: s.eph, Fallback: local, Log: log,
			},
			ExtraProofAfter: cfg.LoginFailuresPerAccount,
			MaxFailures:     cfg.LoginMaxFailuresPerAccount,
			OnProtected:     m.Security.WithLabelValues("account_protection", "protected").Inc,
			Failures:        s.IPGuard,
		},
		// The oldest pepper, like recovery codes: adding a pepper version
		// must not make every device unfamiliar.
		Devices: device.New(hkdfKey(peppers[0].Key, "gatehouse known devices v1"), opts.Now, !cfg.Dev),
		Risk:    riskEngine,
		OnRisk:  onRisk,
	}
	verifications := verification.New(verification.Config{
		BaseURL:        cfg.BaseURL(),
		Product:        cfg.ProductName,
		VerifyEmailTTL: cfg.VerifyEmailTTL,
		RecoveryTTL:    cfg.RecoveryTTL,
		MagicLinkTTL:   cfg.MagicLinkTTL,
		OTPTTL:         cfg.OTPTTL,
		SameBrowser:    cfg.MagicLinkSameBrowser,
		PhoneRegion:    cfg.SMSDefaultRegion,
		Secure:         !cfg.Dev,
	}, verification.Deps{
		DB: db, Accounts: accounts, Sessions: s.Sessions, Throttle: thr, Queue: s.jobs,
		Mail: mailer, Mails: mails, SMS: texter,
		CodeKey: hkdfKey(peppers[len(peppers)-1].Key, "gatehouse one-time codes v1"),
		Log:     log,
	})
	accounts.Notify = verifications
	rpID, origins := cfg.WebAuthn()
	keys, err := passkey.New(passkey.Config{RPID: rpID, RPName: cfg.ProductName, Origins: origins}, passkey.Deps{
		DB: db, Eph: s.eph, Accounts: accounts, Sessions: s.Sessions, Throttle: thr, Log: log,
	})
	if err != nil {
		return nil, err
	}
	factors := mfa.New(mfa.Deps{
		DB: db, Eph: s.eph, Accounts: accounts, Sessions: s.Sessions, Throttle: thr, KEKs: keks,
		// The oldest pepper: recovery codes live until regenerated, and
		// adding a pepper version must not void them.
		CodeKey: hkdfKey(peppers[0].Key, "gatehouse recovery codes v1"),
		Keys:    keys,
		Product: cfg.ProductName, Log: log,
	})
	accounts.MFA = factors
	keys.Factors = factors
	s.Sessions.SetAssurance(factors)
	go s.purgeVerifications(runCtx)
	pages, err := ui.New(cfg.ProductName)
	if err != nil {
		return nil, err
	}

	adapt := func(h httpx.HandlerFunc) http.Handler { return httpx.Adapt(log, h) }
	mux := http.NewServeMux()
	accounts.Register(mux, adapt)
	verifications.Register(mux, adapt)
	factors.Register(mux, adapt)
	keys.Register(mux, adapt)
	pages.Register(mux)
	s.Sessions.Register(mux, adapt)
	tokens.Register(mux, adapt)
	mux.HandleFunc("GET /.well-known/jwks.json", s.Keys.ServeJWKS)
	mux.Handle("GET /v1/revocations", resourceServers.Require(feed))
	mux.Handle("GET /v1/activity", adapt(audit.ActivityHandler(db.Audit(), session.UserID, audit.Describe{
		Device: session.DeviceLabel,
		Place:  func(ip string) string { return risk.Place(riskEngine.Observe(time.Time{}, ip, "", "").Loc) },
	})))
	s.startAudit(runCtx, mux, adapt, m)
	s.IPGuard.Register(mux, adapt, s.Sessions)
	mux.Handle("GET /healthz", adapt(healthz))
	mux.Handle("GET /readyz", adapt(s.readyz))

	proxies, err := httpx.ParseTrustedProxies(cfg.TrustedProxies)
	if err != nil {
		return nil, err
	}
	thr.OnFallback = m.LimiterFallbacks.Inc
	s.Metrics = m.Handler()
	s.Handler = httpx.Chain(problemFallback(mux),
		httpx.RealIP(proxies),
		m.Middleware,
		throttle.Headers,
		httpx.RequestID,
		httpx.AccessLog(log, quietAccessLog),
		httpx.SecurityHeaders(cfg.TLS()),
		// After RealIP (it reads the client address) and RequestID: a
		// refusal is logged and carries its request id like any other.
		s.IPGuard.Middleware,
		csrf.Handler,
		s.Sessions.Authenticate,
	)
	return s, nil
}

// Run serves on ln until ctx is done, then drains in-flight requests for up
// to the configured shutdown timeout.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("app: shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// senders builds the e-mail and SMS senders. Without an SMTP server (or an
// SMS provider) a loopback deployment — a laptop — writes messages to the
// log and the dev outbox; config validation refuses anything else without
// a real e-mail sender. SMS stays off (nil) outside a laptop until a
// provider is configured.
func senders(cfg *config.Config, log *slog.Logger) (mail.Sender, sms.Sender, error) {
	dev := outbox.Open(cfg.DataDir)
	var mailer mail.Sender = mail.NewOutboxSender(dev, log)
	if cfg.SMTPURL != "" {
		smtp, err := mail.NewSMTP(mail.SMTPConfig{URL: cfg.SMTPURL, From: cfg.MailFrom})
		if err != nil {
			return nil, nil, fmt.Errorf("app: --smtp-url: %w", err)
		}
		mailer = smtp
	} else {
		log.Warn("no --smtp-url: e-mails go to the log and the dev outbox (gatehouse outbox)")
	}
	if cfg.SMSDefaultRegion != "" {
		// A national number of a known region that cannot be valid: an
		// unknown region fails differently (a configuration error, not
		// ErrInvalidPhone), and must stop the start rather than turn every
		// number into the user's mistake.
		if _, err := sms.Normalize("0", cfg.SMSDefaultRegion); !errors.Is(err, sms.ErrInvalidPhone) {
			return nil, nil, fmt.Errorf("app: --sms-default-region %q: %w", cfg.SMSDefaultRegion, err)
		}
	}
	var texter sms.Sender
	switch cfg.SMSProvider {
	case "twilio":
		t, err := sms.NewTwilio(sms.TwilioConfig{AccountSID: cfg.TwilioAccountSID, AuthToken: cfg.TwilioAuthToken, From: cfg.SMSFrom, BaseURL: cfg.TwilioBaseURL})
		if err != nil {
			return nil, nil, fmt.Errorf("app: twilio: %w", err)
		}
		texter = t
	case "webhook":
		wh, err := sms.NewWebhook(sms.WebhookConfig{URL: cfg.SMSWebhookURL, Secret: cfg.SMSWebhookSecret})
		if err != nil {
			return nil, nil, fmt.Errorf("app: sms webhook: %w", err)
		}
		texter = wh
	default:
		if cfg.Local() {
			texter = sms.NewOutboxSender(dev, log)
		}
	}
	return mailer, texter, nil
}

// verificationPurgeInterval is how often expired links and codes are
// deleted; verificationRetention is how long they are kept past expiry
// (their audit events stay).
const (
	verificationPurgeInterval = time.Hour
	verificationRetention     = 24 * time.Hour
)

// purgeVerifications deletes long-expired verifications until ctx is done.
// Every replica runs it; the deletes are idempotent.
func (s *Server) purgeVerifications(ctx context.Context) {
	t := time.NewTicker(verificationPurgeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := s.DB.Verifications().DeleteVerificationsBefore(ctx, s.Sessions.Now().Add(-verificationRetention))
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Warn("purge of expired verifications failed", slog.Any("error", err))
		case n > 0:
			s.log.Info("purged expired verifications", slog.Int("count", n))
		}
	}
}

// hkdfKey derives a 256-bit key for one purpose from a server secret.
func hkdfKey(secret []byte, purpose string) []byte {
	k, err := hkdf.Key(sha256.New, secret, nil, purpose, 32)
	if err != nil {
		panic(fmt.Sprintf("app: hkdf: %v", err)) // only for lengths HKDF cannot produce
	}
	return k
}

// Close drains the message queue, then releases the store and the
// ephemeral state.
func (s *Server) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if s.jobs != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := s.jobs.Drain(ctx); err != nil {
			s.log.Warn("messages still queued at shutdown were dropped", slog.Any("error", err))
		}
		cancel()
	}
	if s.stop != nil {
		s.stop()
	}
	var errs []error
	if s.eph != nil {
		errs = append(errs, s.eph.Close())
	}
	errs = append(errs, s.geo.Close())
	if s.DB != nil {
		errs = append(errs, s.DB.Close())
	}
	return errors.Join(errs...)
}

func healthz(w http.ResponseWriter, _ *http.Request) error {
	return httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz reports each dependency; 503 if any is down.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{}
	ok := true
	check := func(name string, err error) {
		if err != nil {
			ok = false
			checks[name] = "unavailable"
			s.log.WarnContext(ctx, "readiness check failed", slog.String("dependency", name), slog.Any("error", err))
			return
		}
		checks[name] = "ok"
	}
	check("store", s.DB.Ping(ctx))
	storeOK := ok
	if s.cfg.Redis != "" {
		check("redis", s.eph.Ping(ctx))
	}
	// Without the store nothing works: not ready. Without Redis the replica
	// still serves (throttles count locally, session caches expire within
	// their TTL), so it reports "degraded" but stays in the load balancer:
	// a Redis outage must not take every replica out at once.
	status, code := "ok", http.StatusOK
	switch {
	case !storeOK:
		status, code = "unavailable", http.StatusServiceUnavailable
	case !ok:
		status = "degraded"
	}
	return httpx.WriteJSON(w, code, map[string]any{"status": status, "checks": checks})
}

// quietAccessLog logs allowed forward-auth sub-requests at debug: one per
// request the proxy serves, which the proxy logs itself. Refusals stay at
// info.
func quietAccessLog(r *http.Request, status int) bool {
	return status == http.StatusOK && r.URL.Path == "/v1/forward-auth"
}

// problemFallback renders the mux's own 404 and 405 answers as problems.
func problemFallback(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			metrics.RecordRoute(r.Context(), pattern)
			mux.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(&fallbackWriter{ResponseWriter: w, r: r}, r)
	})
}

type fallbackWriter struct {
	http.ResponseWriter
	r     *http.Request
	wrote bool
}

func (f *fallbackWriter) WriteHeader(code int) {
	if f.wrote {
		return
	}
	f.wrote = true
	p := problem.NotFound
	if code == http.StatusMethodNotAllowed {
		p = problem.MethodNotAllowed
	}
	problem.Write(f.ResponseWriter, f.r, nil, p)
}

func (f *fallbackWriter) Write(b []byte) (int, error) {
	if !f.wrote {
		f.WriteHeader(http.StatusNotFound)
	}
	return len(b), nil
}
