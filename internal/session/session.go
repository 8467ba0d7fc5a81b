// Package session owns cookie sessions: the record created at every
// sign-in, the __Host- cookie that carries its secret, the middleware that
// authenticates requests with it (with a per-replica cache kept honest by
// invalidations on the ephemeral bus), idle and absolute expiry, step-up
// freshness, and the device-control endpoints (list, revoke one, revoke
// others, log out).
package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/httpx"
	"github.com/gatehouse-auth/gatehouse/internal/id"
	"github.com/gatehouse-auth/gatehouse/internal/problem"
	"github.com/gatehouse-auth/gatehouse/internal/revocation"
	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/sdk/go/gatehouse"
)

// TokenPrefix marks session secrets ("ghs_…") so scanners recognise leaked
// ones and no other kind of token is accepted as a session.
const TokenPrefix = "ghs"

// touchInterval bounds how often activity is written back: idle expiry has
// this granularity, and a busy session costs one write per interval, not
// one per request.
const touchInterval = time.Minute

// Config is the session policy.
type Config struct {
	IdleTimeout time.Duration // cookie sessions
	// TokenIdleTimeout is the idle limit of token-mode sessions (the
	// refresh-token idle lifetime).
	TokenIdleTimeout time.Duration
	Lifetime         time.Duration
	ReauthMaxAge     time.Duration
	// CacheTTL bounds how long a replica trusts its cached copy of a session
	// if an invalidation is lost; 0 disables the cache.
	CacheTTL time.Duration
	// Secure sets the cookie's Secure attribute and __Host- prefix. Only
	// plain-http localhost development turns it off.
	Secure bool
	// RequireMFA: a session that did not pass a second factor ("mfa" not
	// in its amr) may only enrol one and step up with it (EnrolOnly).
	RequireMFA bool
	// RequireMFAForAdmins: the same, for the sessions of administrators
	// (store.User.Admin) only.
	RequireMFAForAdmins bool
}

// Bus carries invalidations to every replica (ephemeral.Store satisfies it).
type Bus interface {
	Publish(ctx context.Context, channel string, msg []byte) error
	Subscribe(ctx context.Context, channel string, handler func(msg []byte), onReset func()) error
}

// busChannel carries two kinds of message: "r:<session id>" (revoked:
// every verifier must reject it) and "s:<session id>" (its secret changed:
// drop cached copies only).
const busChannel = "session-invalidation"

// Verifier checks bearer access tokens (gatehouse.Verifier).
type Verifier interface {
	Verify(ctx context.Context, token string) (*gatehouse.Claims, error)
}

// Deps are what a Manager works with.
type Deps struct {
	DB  store.Store
	Bus Bus
	// Revocations is this replica's revoked-session set; the manager feeds
	// it from local revocations and the bus.
	Revocations *revocation.Set
	// Bearer verifies access tokens in the Authorization header; nil
	// accepts cookies only.
	Bearer Verifier
	// CrossOrigin judges the request a proxy asks forward-auth about
	// (http.CrossOriginProtection.Check); nil skips the check.
	CrossOrigin func(*http.Request) error
	Log         *slog.Logger
	Now         func() time.Time // nil = time.Now
}

// Manager creates, authenticates and revokes sessions.
type Manager struct {
	cfg    Config
	db     store.Store
	bus    Bus
	revs   *revocation.Set
	bearer Verifier
	csrf   func(*http.Request) error
	log    *slog.Logger
	now    func() time.Time
	cache  *cache
	// resync runs after the bus may have lost messages.
	resync func()
	// assurance is the AAL a sensitive action needs (package mfa); nil
	// asks for a recent sign-in only.
	assurance Assurance
	// locate names an address's approximate place ("Lyon, FR"); nil or ""
	// when unknown.
	locate func(netip.Addr) string
}

// Assurance judges what a sensitive action needs of a session.
type Assurance interface {
	// RequiredAAL is the AAL a session of userID whose last proof of a
	// credential was at authTime must have for a sensitive action.
	RequiredAAL(ctx context.Context, userID string, authTime time.Time) (int, error)
}

// SetAssurance installs the step-up policy (package mfa, built after the
// manager).
func (m *Manager) SetAssurance(a Assurance) { m.assurance = a }

// SetLocator installs the GeoIP lookup that labels new sessions with an
// approximate place (--geoip-db).
func (m *Manager) SetLocator(f func(netip.Addr) string) { m.locate = f }

// NewManager returns a Manager.
func NewManager(cfg Config, d Deps) *Manager {
	now := d.Now
	if now == nil {
		now = time.Now
	}
	return &Manager{cfg: cfg, db: d.DB, bus: d.Bus, revs: d.Revocations, bearer: d.Bearer, csrf: d.CrossOrigin, log: d.Log, now: now, cache: newCache(cfg.CacheTTL, now)}
}

// Start subscribes to invalidations from other replicas and loads the
// revocations of the last access-token lifetime from the store; it returns
// once the subscription is live and keeps it until ctx is done. Whenever
// the bus reconnects (messages may have been lost), the cache is flushed
// and the revocation set re-synced from the store.
func (m *Manager) Start(ctx context.Context) error {
	m.resync = func() {
		if err := m.revs.Sync(ctx, m.db.Sessions()); err != nil && ctx.Err() == nil {
			m.log.ErrorContext(ctx, "session: revocation re-sync after bus reset failed; the periodic sync will retry", slog.Any("error", err))
		}
	}
	if err := m.bus.Subscribe(ctx, busChannel, m.receive, m.reset); err != nil {
		return err
	}
	return m.revs.Sync(ctx, m.db.Sessions())
}

func (m *Manager) receive(msg []byte) {
	kind, sid, ok := strings.Cut(string(msg), ":")
	if !ok || sid == "" {
		return
	}
	switch kind {
	case "r":
		m.revs.Add(sid, m.Now())
		m.cache.invalidate(sid)
	case "s":
		m.cache.invalidate(sid)
	}
}

func (m *Manager) reset() {
	m.cache.flush()
	go m.resync()
}

// Now is the manager's clock.
func (m *Manager) Now() time.Time { return m.now().UTC().Truncate(time.Microsecond) }

// CookieName is the session cookie's name.
func (m *Manager) CookieName() string {
	if m.cfg.Secure {
		return "__Host-gh_session"
	}
	return "gh_session"
}

// Principal is the authenticated caller of a request.
type Principal struct {
	Session store.Session
	User    store.User
	// Bearer: authenticated by an access token. Session and User then hold
	// only what the token's claims say (ids, auth_time, amr, aal); use
	// Manager.Load for the full records.
	Bearer bool
	// EnrolOnly: the deployment requires a second factor and this session
	// has not passed one; Require refuses it, RequireEnrolling lets it
	// enrol a factor and step up with it.
	EnrolOnly bool
}

type ctxKey struct{}

// FromContext returns the request's principal, if it is authenticated.
func FromContext(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(*Principal)
	return p, ok
}

// UserID returns the authenticated user's id (audit.UserFunc).
func UserID(r *http.Request) (string, bool) {
	p, ok := FromContext(r.Context())
	if !ok {
		return "", false
	}
	return p.User.ID, true
}

// Require wraps h so that it runs only for authenticated requests.
func Require(h func(w http.ResponseWriter, r *http.Request, p *Principal) error) httpx.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		p, ok := FromContext(r.Context())
		if !ok {
			return problem.Unauthenticated
		}
		if p.EnrolOnly {
			return problem.MFAEnrollmentRequired
		}
		return h(w, r, p)
	}
}

// RequireAdmin is Require for the administration API: the account must be
// marked an administrator (gatehouse users admin), read from the store on
// every call, and the session must have been confirmed recently at
// the assurance the account needs (RequireFresh), so a stolen or forgotten
// session of an administrator cannot use it. Refusals are 403
// admin_required or reauthentication_required.
func (m *Manager) RequireAdmin(h func(w http.ResponseWriter, r *http.Request, p *Principal) error) httpx.HandlerFunc {
	return Require(func(w http.ResponseWriter, r *http.Request, p *Principal) error {
		full, err := m.Load(r.Context(), p)
		if err != nil {
			return err
		}
		// The mark is read from the store, not the session cache: the
		// CLI that revokes it cannot reach other processes' caches.
		u, err := m.db.Users().UserByID(r.Context(), full.User.ID)
		if errors.Is(err, store.ErrNotFound) {
			return problem.Unauthenticated
		}
		if err != nil {
			return fmt.Errorf("session: admin: %w", err)
		}
		if !u.Admin {
			return problem.AdminRequired
		}
		if err := m.RequireFresh(r.Context(), full); err != nil {
			return err
		}
		return h(w, r, full)
	})
}

// RequireEnrolling is Require for the routes a session without a second
// factor may use where the deployment requires one (--require-mfa):
// reading itself, enrolling a factor, and stepping up with it.
func RequireEnrolling(h func(w http.ResponseWriter, r *http.Request, p *Principal) error) httpx.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		p, ok := FromContext(r.Context())
		if !ok {
			return problem.Unauthenticated
		}
		return h(w, r, p)
	}
}

// RequireFresh guards a sensitive action: it refuses with 403
// reauthentication_required unless the session's last proof of a
// credential is within ReauthMaxAge and the session's AAL is the one the
// action needs (AAL2 for an account with a second factor, see
// mfa.Service.RequiredAAL). The problem carries both: "max_age" (seconds)
// and "aal".
func (m *Manager) RequireFresh(ctx context.Context, p *Principal) error {
	need := 1
	if m.assurance != nil {
		var err error
		if need, err = m.assurance.RequiredAAL(ctx, p.User.ID, p.Session.AuthTime); err != nil {
			return err
		}
	}
	short := max(p.Session.AAL, 1) < need
	if m.Now().Sub(p.Session.AuthTime) <= m.cfg.ReauthMaxAge && !short {
		return nil
	}
	pr := problem.ReauthRequired.With("max_age", int(m.cfg.ReauthMaxAge/time.Second)).With("aal", need)
	if short {
		pr = pr.WithDetail("This action needs a recent sign-in with your second factor. Re-authenticate with an app code or a passkey.")
	}
	return pr
}

// New builds a fresh session record for userID with a new random id and
// secret. The caller inserts it (inside its transaction) and, after commit,
// calls SetCookie. A sign-in never reuses any id or secret the client sent.
func (m *Manager) New(r *http.Request, userID string, amr []string) (*store.Session, id.Secret) {
	now := m.Now()
	token := id.NewSecret(TokenPrefix)
	s := &store.Session{
		ID:         id.New("ses"),
		UserID:     userID,
		TokenHash:  token.Hash(),
		CreatedAt:  now,
		LastSeenAt: now,
		AuthTime:   now,
		ExpiresAt:  now.Add(m.cfg.Lifetime),
		UserAgent:  clip(r.UserAgent(), 512),
		AAL:        AALOf(amr),
		AMR:        amr,
	}
	if ip := httpx.ClientIP(r); ip.IsValid() {
		s.IP = ip.String()
		if m.locate != nil {
			s.Location = m.locate(ip)
		}
	}
	return s, token
}

// AALOf is the authenticator assurance level of a sign-in by the methods
// amr (RFC 8176 values). NIST SP 800-63B-4 asks AAL2 for two distinct
// factors, or one multi-factor authenticator:
//   - something known: a password ("pwd");
//   - something had: an app code ("otp"), a texted code ("sms"), a WebAuthn
//     key ("hwk" bound to its hardware, "swk" a passkey that may be synced),
//     or a recovery code (a look-up secret; RFC 8176 has no value for it,
//     so it shows only as the "mfa" the completion of a challenge adds);
//   - a key that verified its user ("hwk"/"swk" with "user") is
//     multi-factor by itself.
//
// A mailbox ("email") is no authenticator there, so a link or e-mailed code
// plus an app code is AAL1, and two things had (a texted code and an app
// code, or a key without user verification and an app code) are AAL1 too.
func AALOf(amr []string) int {
	has := func(ms ...string) bool {
		return slices.ContainsFunc(amr, func(m string) bool { return slices.Contains(ms, m) })
	}
	key := has("hwk", "swk")
	if key && has("user") {
		return 2
	}
	if has("pwd") && (has("otp", "sms") || key || has("mfa")) {
		return 2
	}
	return 1
}

// StepUpAMR is the session's methods after a step-up that proved proof:
// the union, plus "mfa" once it holds something had (an app code, a texted
// code or a key) beside another method — two factors were used, whether
// or not they make AAL2 (AALOf judges that).
func StepUpAMR(have, proof []string) []string {
	amr := slices.Clone(have)
	for _, m := range proof {
		if !slices.Contains(amr, m) {
			amr = append(amr, m)
		}
	}
	possession, methods := false, 0
	for _, m := range amr {
		switch m {
		case "otp", "sms", "hwk", "swk":
			possession = true
			methods++
		case "pwd", "email":
			methods++
		}
	}
	if possession && methods >= 2 && !slices.Contains(amr, "mfa") {
		amr = append(amr, "mfa")
	}
	return amr
}

// SetCookie hands the session secret to the browser: HttpOnly, Secure,
// SameSite=Lax, Path=/, no Domain (the __Host- prefix enforces the last
// three), expiring with the session.
func (m *Manager) SetCookie(w http.ResponseWriter, token id.Secret, expires time.Time) {
	http.SetCookie(w, &http.Cookie{
		Name:     m.CookieName(),
		Value:    string(token),
		Path:     "/",
		Expires:  expires,
		MaxAge:   int(expires.Sub(m.Now()) / time.Second),
		Secure:   m.cfg.Secure,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	})
}

// ClearCookie tells the browser to forget the session cookie.
func (m *Manager) ClearCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name:     m.CookieName(),
		Value:    "",
		Path:     "/",
		MaxAge:   -1,
		Secure:   m.cfg.Secure,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	})
}

// Revoked must be called after a transaction that revoked sessions commits:
// this replica rejects them at once (cookies and access tokens), and every
// other replica and SDK verifier is told over the bus.
func (m *Manager) Revoked(ctx context.Context, ids ...string) {
	now := m.Now()
	for _, sid := range ids {
		m.revs.Add(sid, now)
		m.cache.invalidate(sid)
		m.publish(ctx, "r:"+sid)
	}
}

// Invalidate must be called after a session's secret was rotated (the
// session stays valid): cached copies under the old secret are dropped
// here and on every other replica.
func (m *Manager) Invalidate(ctx context.Context, sid string) {
	m.cache.invalidate(sid)
	m.publish(ctx, "s:"+sid)
}

// UserChanged must be called after a change to the user's record (address,
// verification, phone) commits: cached copies of the user's sessions,
// which carry the record, are dropped here and on every other replica.
func (m *Manager) UserChanged(ctx context.Context, userID string) {
	sessions, err := m.db.Sessions().ListActiveSessions(ctx, userID, m.Now())
	if err != nil {
		m.log.ErrorContext(ctx, "session: list sessions to invalidate failed; caches catch up by their TTL", slog.String("user_id", userID), slog.Any("error", err))
		return
	}
	for _, s := range sessions {
		m.Invalidate(ctx, s.ID)
	}
}

func (m *Manager) publish(ctx context.Context, msg string) {
	if err := m.bus.Publish(ctx, busChannel, []byte(msg)); err != nil {
		m.log.ErrorContext(ctx, "session: publish invalidation failed; other replicas catch up by their cache TTL and revocation sync", slog.String("message", msg), slog.Any("error", err))
	}
}

// cookieToken returns the request's session secret, or false if there is
// none, it is malformed, or the cookie appears more than once (a sibling
// subdomain tossing a second cookie must not choose the session).
func (m *Manager) cookieToken(r *http.Request) (id.Secret, bool) {
	name := m.CookieName()
	var value string
	n := 0
	for _, c := range r.CookiesNamed(name) {
		value = c.Value
		n++
	}
	if n != 1 {
		return "", false
	}
	return id.ParseSecret(TokenPrefix, value)
}

// Authenticate resolves the caller into a Principal in the request context:
// a bearer access token if an Authorization header is present (then the
// cookie is ignored, so an invalid token never falls back to it), else the
// session cookie. It never rejects: handlers that need a principal use
// Require.
func (m *Manager) Authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, present := r.Header["Authorization"]; present {
			if p, ok := m.bearerPrincipal(r); ok {
				r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, m.judge(r.Context(), p)))
			}
			next.ServeHTTP(w, r)
			return
		}
		token, ok := m.cookieToken(r)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		p, err := m.resolve(r, token)
		if err != nil {
			if !errors.Is(err, errNoSession) {
				problem.Write(w, r, m.log, problem.Unavailable.Wrap(err))
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, m.judge(r.Context(), p))))
	})
}

// judge returns the principal of this request, marked EnrolOnly when the
// deployment requires of its user a second factor the session has not
// passed. A copy: p may be shared through the cache.
func (m *Manager) judge(ctx context.Context, p *Principal) *Principal {
	q := *p
	if slices.Contains(p.Session.AMR, "mfa") || (!m.cfg.RequireMFA && !m.cfg.RequireMFAForAdmins) {
		return &q
	}
	admin := p.User.Admin
	if p.Bearer && !m.cfg.RequireMFA {
		// An access token does not say who is an administrator: ask the
		// store (only for tokens without a second factor), and hold the
		// session to enrolment if it cannot answer.
		u, err := m.db.Users().UserByID(ctx, p.User.ID)
		admin = err != nil || u.Admin
	}
	q.EnrolOnly = m.MFARequired(&store.User{Admin: admin})
	return &q
}

// MFARequired reports whether the deployment requires a second factor of
// u's sessions.
func (m *Manager) MFARequired(u *store.User) bool {
	return m.cfg.RequireMFA || (m.cfg.RequireMFAForAdmins && u.Admin)
}

// BearerToken returns the request's bearer token: exactly one
// Authorization header with the Bearer scheme (RFC 6750).
func BearerToken(r *http.Request) (string, bool) {
	v := r.Header.Values("Authorization")
	if len(v) != 1 {
		return "", false
	}
	scheme, tok, ok := strings.Cut(v[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" || strings.ContainsAny(tok, " \t") {
		return "", false
	}
	return tok, true
}

// bearerPrincipal verifies the access token: signature, claims and the
// revocation set, with no store read.
func (m *Manager) bearerPrincipal(r *http.Request) (*Principal, bool) {
	tok, ok := BearerToken(r)
	if !ok || m.bearer == nil {
		return nil, false
	}
	c, err := m.bearer.Verify(r.Context(), tok)
	if err != nil {
		return nil, false
	}
	return &Principal{Bearer: true, User: store.User{ID: c.Subject}, Session: SessionOfClaims(c)}, true
}

// SessionOfClaims is what an access token says about its session.
func SessionOfClaims(c *gatehouse.Claims) store.Session {
	aal := 1
	if c.ACR == "aal2" {
		aal = 2
	}
	return store.Session{ID: c.SessionID, UserID: c.Subject, Kind: store.SessionToken, AuthTime: c.AuthTime, AMR: c.AMR, AAL: aal}
}

// Load returns p with the full session and user records (a store read for
// bearer principals; cookie principals are already complete). A session
// that ended since the token was issued is errNoSession → Unauthenticated.
func (m *Manager) Load(ctx context.Context, p *Principal) (*Principal, error) {
	if !p.Bearer {
		return p, nil
	}
	s, err := m.db.Sessions().SessionByID(ctx, p.Session.ID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (s.UserID != p.User.ID || !m.live(s, m.Now()))) {
		return nil, problem.Unauthenticated
	}
	if err != nil {
		return nil, fmt.Errorf("session: load: %w", err)
	}
	u, err := m.db.Users().UserByID(ctx, s.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, problem.Unauthenticated
	}
	if err != nil {
		return nil, fmt.Errorf("session: load user: %w", err)
	}
	return &Principal{Session: *s, User: *u, Bearer: true}, nil
}

var errNoSession = errors.New("session: no valid session")

// resolve finds the live session of token: from the cache when fresh, else
// from the store. An expired-looking cached copy is re-read before refusing,
// because another replica may have seen later activity.
func (m *Manager) resolve(r *http.Request, token id.Secret) (*Principal, error) {
	hash := token.Hash()
	now := m.Now()
	p, cached := m.cache.get(hash)
	if cached && !m.live(&p.Session, now) {
		cached = false
	}
	if !cached {
		var err error
		if p, err = m.load(r.Context(), hash); err != nil {
			return nil, err
		}
		if !m.live(&p.Session, now) {
			m.cache.drop(hash)
			return nil, errNoSession
		}
		m.cache.put(hash, p)
	}
	// The revocation set is fed by the store sync too, so it also catches a
	// revocation whose bus message this replica missed while its cached
	// copy is still within the TTL.
	if revoked, _ := m.revs.Revoked(r.Context(), p.Session.ID); revoked {
		m.cache.drop(hash)
		return nil, errNoSession
	}
	if err := m.touch(r, hash, p, now); err != nil {
		return nil, err
	}
	return p, nil
}

func (m *Manager) load(ctx context.Context, hash []byte) (*Principal, error) {
	s, err := m.db.Sessions().SessionByTokenHash(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNoSession
	}
	if err != nil {
		return nil, fmt.Errorf("session: load: %w", err)
	}
	u, err := m.db.Users().UserByID(ctx, s.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNoSession
	}
	if err != nil {
		return nil, fmt.Errorf("session: load user: %w", err)
	}
	return &Principal{Session: *s, User: *u}, nil
}

// live applies the server-side expiry policy: not revoked, within the
// absolute lifetime, and used within the idle timeout.
func (m *Manager) live(s *store.Session, now time.Time) bool {
	return s.RevokedAt == nil && now.Before(s.ExpiresAt) && now.Before(s.LastSeenAt.Add(m.idle(s)))
}

// Live reports whether s is usable at now.
func (m *Manager) Live(s *store.Session, now time.Time) bool { return m.live(s, now) }

func (m *Manager) idle(s *store.Session) time.Duration {
	if s.Kind == store.SessionToken {
		return m.cfg.TokenIdleTimeout
	}
	return m.cfg.IdleTimeout
}

// IdleExpiry is when s expires if it stays unused.
func (m *Manager) IdleExpiry(s *store.Session) time.Time {
	return minTime(s.LastSeenAt.Add(m.idle(s)), s.ExpiresAt)
}

// touch records activity at most once per touchInterval, or at once when
// the client's IP or user agent changed.
func (m *Manager) touch(r *http.Request, hash []byte, p *Principal, now time.Time) error {
	ip := ""
	if a := httpx.ClientIP(r); a.IsValid() {
		ip = a.String()
	}
	ua := clip(r.UserAgent(), 512)
	s := &p.Session
	if now.Sub(s.LastSeenAt) < touchInterval && ip == s.IP && ua == s.UserAgent {
		return nil
	}
	if err := m.db.Sessions().TouchSession(r.Context(), s.ID, now, ip, ua); err != nil {
		return fmt.Errorf("session: touch: %w", err)
	}
	s.LastSeenAt, s.IP, s.UserAgent = now, ip, ua
	m.cache.update(hash, p)
	return nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
