// Package passkey owns WebAuthn (through go-webauthn): registering
// passkeys and security keys, the list of a user's credentials, sign-in
// with a passkey alone (discoverable credentials, conditional UI), and
// assertions that serve as a second factor or for step-up. Every ceremony's
// state — the challenge go-webauthn issued — waits in the ephemeral store
// for five minutes under a "ghw_…" handle, is taken (single use) by the
// first finish that names it, and so works across replicas with Redis.
package passkey

import (
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/gatehouse-auth/gatehouse/internal/account"
	"github.com/gatehouse-auth/gatehouse/internal/audit"
	"github.com/gatehouse-auth/gatehouse/internal/ephemeral"
	"github.com/gatehouse-auth/gatehouse/internal/httpx"
	"github.com/gatehouse-auth/gatehouse/internal/id"
	"github.com/gatehouse-auth/gatehouse/internal/problem"
	"github.com/gatehouse-auth/gatehouse/internal/session"
	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/throttle"
)

// CeremonyTTL is how long a begun ceremony waits for its finish.
const CeremonyTTL = 5 * time.Minute

// ceremonyPrefix marks ceremony handles ("ghw_…").
const ceremonyPrefix = "ghw"

// ClassCeremonyIP counts the ceremonies begun without a session, per
// client IP: each one holds a few hundred bytes of the ephemeral store
// for five minutes.
const ClassCeremonyIP = "webauthn_ip"

// maxReasonLen bounds the reason of a webauthn.failed event (bytes).
const maxReasonLen = 200

// MaxCredentials is how many passkeys and security keys an account may
// have: each one is loaded at every assertion and listed in every
// registration's exclusions.
const MaxCredentials = 20

// maxNameLen bounds a credential's name (in characters).
const maxNameLen = 64

// Ceremony purposes: what a begun ceremony may be finished for.
const (
	purposeRegister = "register"       // add a credential to the signed-in user
	purposeLogin    = "login"          // passwordless sign-in
	purposeFactor   = "mfa"            // the second factor of a sign-in challenge
	purposeStepUp   = "reauthenticate" // step-up of a signed-in session
)

// Credential types as the API shows them.
const (
	TypePasskey     = "passkey"      // discoverable: signs in without a username
	TypeSecurityKey = "security_key" // a second factor only
)

// Config is the relying party.
type Config struct {
	// RPID is the relying party id: the registrable domain the
	// credentials are scoped to ("example.com", "localhost").
	RPID string
	// RPName is shown by the browser while registering.
	RPName string
	// Origins are the web origins allowed to run ceremonies
	// ("https://login.example.com").
	Origins []string
}

// SecondStep is the sign-in challenge of package mfa, which a security key
// can complete.
type SecondStep interface {
	// ChallengeUser returns the user a live sign-in challenge belongs to;
	// problem.InvalidChallenge if it is not live.
	ChallengeUser(ctx context.Context, challenge string) (string, error)
	// CompleteWithKey completes the challenge with an assertion of the
	// ceremony, as POST /v1/login/mfa does.
	CompleteWithKey(w http.ResponseWriter, r *http.Request, challenge, ceremony string, credential json.RawMessage) error
	// NewRecoveryCodes makes a set of recovery codes (shown once) and
	// their rows.
	NewRecoveryCodes(userID string, now time.Time) ([]string, []*store.RecoveryCode, error)
}

// Deps are what a Service works with.
type Deps struct {
	DB       store.Store
	Eph      ephemeral.Store
	Accounts *account.Handler
	Sessions *session.Manager
	Throttle account.Throttler
	// Factors is set once package mfa's service exists.
	Factors SecondStep
	Log     *slog.Logger
}

// Service serves the WebAuthn endpoints.
type Service struct {
	Deps
	rp *webauthn.WebAuthn
}

// New returns a Service for the relying party cfg.
func New(cfg Config, d Deps) (*Service, error) {
	rp, err := webauthn.New(&webauthn.Config{
		RPID:          cfg.RPID,
		RPDisplayName: cfg.RPName,
		RPOrigins:     cfg.Origins,
		// No attestation: which authenticator model made a key is not a
		// policy here, and asking for it prompts users for consent.
		AttestationPreference: protocol.PreferNoAttestation,
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Enforce: true, Timeout: CeremonyTTL, TimeoutUVD: CeremonyTTL},
			Registration: webauthn.TimeoutConfig{Enforce: true, Timeout: CeremonyTTL, TimeoutUVD: CeremonyTTL},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("passkey: relying party: %w", err)
	}
	return &Service{Deps: d, rp: rp}, nil
}

// Register adds the routes to mux.
func (s *Service) Register(mux *http.ServeMux, adapt func(httpx.HandlerFunc) http.Handler) {
	mux.Handle("POST /v1/webauthn/register/begin", adapt(session.RequireEnrolling(s.beginRegistration)))
	mux.Handle("POST /v1/webauthn/register/finish", adapt(session.RequireEnrolling(s.finishRegistration)))
	mux.Handle("POST /v1/webauthn/login/begin", adapt(s.beginLogin))
	mux.Handle("POST /v1/webauthn/login/finish", adapt(s.finishLogin))
	mux.Handle("GET /v1/webauthn/credentials", adapt(session.RequireEnrolling(s.list)))
	mux.Handle("PATCH /v1/webauthn/credentials/{id}", adapt(session.Require(s.rename)))
	mux.Handle("DELETE /v1/webauthn/credentials/{id}", adapt(session.Require(s.remove)))
}

// ceremony is what the ephemeral store keeps between begin and finish.
type ceremony struct {
	Purpose string `json:"purpose"`
	// UserID is the user the ceremony is for; "" for a passwordless
	// sign-in, whose user the credential names.
	UserID string `json:"uid,omitempty"`
	// SessionID is the session that began a registration or step-up.
	SessionID string `json:"sid,omitempty"`
	// Challenge is the key of the sign-in challenge a second-factor
	// ceremony belongs to.
	Challenge string `json:"challenge,omitempty"`
	// Type is the credential type being registered.
	Type    string               `json:"type,omitempty"`
	Data    webauthn.SessionData `json:"data"`
	Expires time.Time            `json:"exp"`
}

func ceremonyKey(secret id.Secret) string { return "webauthn:" + hex.EncodeToString(secret.Hash()) }

// ChallengeKey names a sign-in challenge inside a ceremony without
// keeping the challenge itself.
func ChallengeKey(challenge string) string { return hex.EncodeToString(id.Secret(challenge).Hash()) }

// begin stores c under a new handle and answers it with the browser's
// options.
func (s *Service) begin(w http.ResponseWriter, r *http.Request, c ceremony, options any) error {
	secret := id.NewSecret(ceremonyPrefix)
	c.Expires = s.Sessions.Now().Add(CeremonyTTL)
	raw, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("passkey: ceremony: %w", err)
	}
	if err := s.Eph.Set(r.Context(), ceremonyKey(secret), raw, CeremonyTTL); err != nil {
		return problem.Unavailable.Wrap(fmt.Errorf("passkey: store ceremony: %w", err))
	}
	return httpx.WriteJSON(w, http.StatusOK, map[string]any{
		"ceremony":   string(secret),
		"publicKey":  options,
		"expires_in": int(CeremonyTTL / time.Second),
	})
}

// take spends the ceremony named by handle (whatever follows, it cannot
// be finished twice) and checks it is for purpose.
func (s *Service) take(ctx context.Context, handle, purpose string) (*ceremony, error) {
	secret, ok := id.ParseSecret(ceremonyPrefix, handle)
	if !ok {
		return nil, problem.InvalidCeremony
	}
	raw, err := s.Eph.Take(ctx, ceremonyKey(secret))
	if errors.Is(err, ephemeral.ErrNotFound) {
		return nil, problem.InvalidCeremony
	}
	if err != nil {
		return nil, problem.Unavailable.Wrap(fmt.Errorf("passkey: ceremony: %w", err))
	}
	var c ceremony
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("passkey: stored ceremony: %w", err)
	}
	if c.Purpose != purpose || !s.Sessions.Now().Before(c.Expires) {
		return nil, problem.InvalidCeremony
	}
	return &c, nil
}

// user is a store user as go-webauthn sees it. The user handle is the
// user id: random, and no personal data.
type user struct {
	u     *store.User
	creds []webauthn.Credential
}

func (u user) WebAuthnID() []byte                         { return []byte(u.u.ID) }
func (u user) WebAuthnName() string                       { return u.u.Email }
func (u user) WebAuthnDisplayName() string                { return cmp.Or(u.u.Name, u.u.Email) }
func (u user) WebAuthnCredentials() []webauthn.Credential { return u.creds }

// loadUser returns the user with its credentials, in both forms.
func (s *Service) loadUser(ctx context.Context, userID string) (user, []*store.WebAuthnCredential, error) {
	u, err := s.DB.Users().UserByID(ctx, userID)
	if err != nil {
		return user{}, nil, fmt.Errorf("passkey: user: %w", err)
	}
	stored, err := s.DB.WebAuthn().WebAuthnCredentialsByUser(ctx, userID)
	if err != nil {
		return user{}, nil, fmt.Errorf("passkey: credentials: %w", err)
	}
	wu := user{u: u}
	for _, c := range stored {
		wu.creds = append(wu.creds, libraryCredential(c))
	}
	return wu, stored, nil
}

// libraryCredential is the stored credential as go-webauthn's record.
func libraryCredential(c *store.WebAuthnCredential) webauthn.Credential {
	transports := make([]protocol.AuthenticatorTransport, len(c.Transports))
	for i, t := range c.Transports {
		transports[i] = protocol.AuthenticatorTransport(t)
	}
	return webauthn.Credential{
		ID:                c.CredentialID,
		PublicKey:         c.PublicKey,
		AttestationFormat: c.AttestationType,
		Transport:         transports,
		Flags:             webauthn.CredentialFlags{UserPresent: true, BackupEligible: c.BackupEligible, BackupState: c.BackupState},
		Authenticator:     webauthn.Authenticator{AAGUID: c.AAGUID, SignCount: c.SignCount},
	}
}

// beginRegistration serves POST /v1/webauthn/register/begin {type}: the
// options for navigator.credentials.create. A passkey is registered as a
// discoverable credential; a security key need not be. The user's
// credentials are excluded, so one authenticator is registered once.
func (s *Service) beginRegistration(w http.ResponseWriter, r *http.Request, p *session.Principal) error {
	var req struct {
		Type string `json:"type"`
	}
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	resident := protocol.ResidentKeyRequirementRequired
	switch req.Type {
	case "", TypePasskey:
		req.Type = TypePasskey
	case TypeSecurityKey:
		resident = protocol.ResidentKeyRequirementDiscouraged
	default:
		return problem.InvalidField.WithDetail("Field \"type\" must be \"passkey\" or \"security_key\".").With("field", "type")
	}
	if err := s.Sessions.RequireFresh(r.Context(), p); err != nil {
		return err
	}
	wu, _, err := s.loadUser(r.Context(), p.User.ID)
	if err != nil {
		return err
	}
	if len(wu.creds) >= MaxCredentials {
		return problem.Conflict.WithDetail("The account has %d passkeys and security keys, the most it may have. Remove one first.", MaxCredentials)
	}
	creation, data, err := s.rp.BeginRegistration(wu,
		webauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{
			ResidentKey:      resident,
			UserVerification: protocol.VerificationPreferred,
		}),
		webauthn.WithExclusions(webauthn.Credentials(wu.creds).CredentialDescriptors()),
		webauthn.WithExtensions(webauthn.WithExtensionCredProps()),
	)
	if err != nil {
		return fmt.Errorf("passkey: begin registration: %w", err)
	}
	return s.begin(w, r, ceremony{Purpose: purposeRegister, UserID: p.User.ID, SessionID: p.Session.ID, Type: req.Type, Data: *data}, creation.Response)
}

// finishRegistration serves POST /v1/webauthn/register/finish {ceremony,
// credential, name}: the attestation is verified by go-webauthn and the
// credential stored. The first second factor of an account comes with its
// recovery codes, shown this once.
func (s *Service) finishRegistration(w http.ResponseWriter, r *http.Request, p *session.Principal) error {
	var req struct {
		Ceremony   string          `json:"ceremony"`
		Credential json.RawMessage `json:"credential"`
		Name       string          `json:"name"`
	}
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.Ceremony == "" || len(req.Credential) == 0 {
		return problem.MissingField.WithDetail("Send \"ceremony\" and \"credential\".")
	}
	name, err := checkName(req.Name, true)
	if err != nil {
		return err
	}
	if err := s.Sessions.RequireFresh(r.Context(), p); err != nil {
		return err
	}
	ctx := r.Context()
	c, err := s.take(ctx, req.Ceremony, purposeRegister)
	if err != nil {
		return err
	}
	if c.UserID != p.User.ID || c.SessionID != p.Session.ID {
		return problem.InvalidCeremony
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(req.Credential)
	if err != nil {
		return s.refused(r, p.User.ID, purposeRegister, "", err)
	}
	wu, stored, err := s.loadUser(ctx, p.User.ID)
	if err != nil {
		return err
	}
	cred, err := s.rp.CreateCredential(wu, c.Data, parsed)
	if err != nil {
		return s.refused(r, p.User.ID, purposeRegister, "", err)
	}
	now := s.Sessions.Now()
	discoverable := c.Type == TypePasskey
	if cred.Extensions.RK != nil {
		discoverable = *cred.Extensions.RK
	}
	typ := TypeSecurityKey
	if discoverable {
		typ = TypePasskey
	}
	if name == "" {
		name = defaultName(typ, cred, len(stored))
	}
	row := &store.WebAuthnCredential{
		ID: id.New("wac"), UserID: p.User.ID, CredentialID: cred.ID, PublicKey: cred.PublicKey,
		AttestationType: cred.AttestationFormat, AAGUID: aaguid(cred.Authenticator.AAGUID),
		Discoverable: discoverable, BackupEligible: cred.Flags.BackupEligible, BackupState: cred.Flags.BackupState,
		SignCount: cred.Authenticator.SignCount, Name: name, CreatedAt: now,
	}
	for _, t := range cred.Transport {
		row.Transports = append(row.Transports, string(t))
	}
	first, err := s.firstFactor(ctx, p.User.ID, len(stored))
	if err != nil {
		return err
	}
	var codes []string
	var codeRows []*store.RecoveryCode
	if first {
		if codes, codeRows, err = s.Factors.NewRecoveryCodes(p.User.ID, now); err != nil {
			return err
		}
	}
	var revoked []string
	err = s.DB.InTx(ctx, func(tx store.Tx) error {
		var err error
		if revoked, err = account.GuardEnrolment(ctx, tx, wu.u, p.Session.ID, first, now); err != nil {
			return err
		}
		if err := tx.WebAuthn().CreateWebAuthnCredential(ctx, row); err != nil {
			return err
		}
		if first {
			if err := tx.MFA().ReplaceRecoveryCodes(ctx, p.User.ID, codeRows); err != nil {
				return err
			}
		}
		e := audit.With(audit.New(r, now, audit.WebAuthnRegistered, p.User.ID, p.Session.ID), "credential", row.ID)
		e = audit.With(e, "revoked_sessions", strconv.Itoa(len(revoked)))
		return tx.Audit().AppendEvent(ctx, audit.With(e, "type", typ))
	})
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		return problem.Conflict.WithDetail("This authenticator is already registered, or the account changed meanwhile.")
	}
	if err != nil {
		return fmt.Errorf("passkey: store credential: %w", err)
	}
	s.Sessions.Revoked(ctx, revoked...)
	s.changed(r, p.User.ID, fmt.Sprintf("A %s (%q) was added", strings.ReplaceAll(typ, "_", " "), name))
	body := map[string]any{"credential": viewOf(row)}
	if first {
		body["recovery_codes"] = codes
	}
	return httpx.WriteJSON(w, http.StatusCreated, body)
}

// firstFactor reports whether the user, who has n credentials, has no
// second factor yet (no key and no authenticator app).
func (s *Service) firstFactor(ctx context.Context, userID string, n int) (bool, error) {
	if n > 0 {
		return false, nil
	}
	f, err := s.DB.MFA().TOTPByUser(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("passkey: factor: %w", err)
	}
	return f.ConfirmedAt == nil, nil
}

// aaguid is the authenticator's AAGUID, all zeros when it gave none.
func aaguid(b []byte) []byte {
	if len(b) == 16 {
		return b
	}
	return make([]byte, 16)
}

// defaultName names a credential the user did not name.
func defaultName(typ string, cred *webauthn.Credential, n int) string {
	name := "Security key"
	if typ == TypePasskey {
		name = "Passkey"
		if cred.Flags.BackupEligible {
			name = "Synced passkey"
		}
	}
	if n > 0 {
		name = fmt.Sprintf("%s %d", name, n+1)
	}
	return name
}

// invisible reports control and format characters (bidi overrides,
// zero-width joiners), which could make one name pass for another.
func invisible(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }

// checkName validates a credential name; "" is allowed when optional.
func checkName(name string, optional bool) (string, error) {
	name = strings.TrimSpace(name)
	bad := !utf8.ValidString(name) || utf8.RuneCountInString(name) > maxNameLen ||
		strings.ContainsFunc(name, invisible)
	if bad || (name == "" && !optional) {
		return "", problem.InvalidField.WithDetail("Field \"name\" must be 1 to %d characters without control or format characters.", maxNameLen).With("field", "name")
	}
	return name, nil
}

// beginLogin serves POST /v1/webauthn/login/begin: the options for
// navigator.credentials.get. With {"challenge": "ghm_…"} the assertion is
// the second factor of that sign-in challenge (its user's credentials are
// allowed); with {"purpose": "reauthenticate"} and a session, it is a
// step-up of the session's user; with neither it is a passwordless
// sign-in, whose user the discoverable credential names (also for
// conditional UI: the same options with mediation "conditional").
func (s *Service) beginLogin(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Challenge string `json:"challenge"`
		Purpose   string `json:"purpose"`
	}
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	ctx := r.Context()
	if req.Purpose != purposeStepUp {
		if d := s.Throttle.Attempt(ctx, throttle.Key{Class: ClassCeremonyIP, ID: throttle.IPKey(httpx.ClientIP(r))}); d.Wait > 0 {
			return problem.RateLimited.WithRetryAfter(d.Wait)
		}
	}
	uv := webauthn.WithUserVerification(protocol.VerificationPreferred)
	switch {
	case req.Challenge != "" && req.Purpose != "":
		return problem.InvalidField.WithDetail("Send \"challenge\" or \"purpose\", not both.").With("field", "purpose")
	case req.Challenge != "":
		userID, err := s.Factors.ChallengeUser(ctx, req.Challenge)
		if err != nil {
			return err
		}
		return s.beginFor(w, r, ceremony{Purpose: purposeFactor, UserID: userID, Challenge: ChallengeKey(req.Challenge)})
	case req.Purpose == purposeStepUp:
		p, ok := session.FromContext(ctx)
		if !ok {
			return problem.Unauthenticated
		}
		return s.beginFor(w, r, ceremony{Purpose: purposeStepUp, UserID: p.User.ID, SessionID: p.Session.ID})
	case req.Purpose != "":
		return problem.InvalidField.WithDetail("Field \"purpose\" must be \"reauthenticate\".").With("field", "purpose")
	}
	assertion, data, err := s.rp.BeginDiscoverableLogin(uv)
	if err != nil {
		return fmt.Errorf("passkey: begin login: %w", err)
	}
	return s.begin(w, r, ceremony{Purpose: purposeLogin, Data: *data}, assertion.Response)
}

// beginFor begins an assertion by one of c.UserID's credentials.
func (s *Service) beginFor(w http.ResponseWriter, r *http.Request, c ceremony) error {
	wu, _, err := s.loadUser(r.Context(), c.UserID)
	if err != nil {
		return err
	}
	if len(wu.creds) == 0 {
		return problem.NotFound.WithDetail("The account has no passkey or security key.")
	}
	assertion, data, err := s.rp.BeginLogin(wu, webauthn.WithUserVerification(protocol.VerificationPreferred))
	if err != nil {
		return fmt.Errorf("passkey: begin login: %w", err)
	}
	c.Data = *data
	return s.begin(w, r, c, assertion.Response)
}

// finishLogin serves POST /v1/webauthn/login/finish {ceremony, credential,
// mode, client} for a passwordless sign-in, or {challenge, ceremony,
// credential} for the second factor of a sign-in challenge.
func (s *Service) finishLogin(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Ceremony   string          `json:"ceremony"`
		Credential json.RawMessage `json:"credential"`
		Challenge  string          `json:"challenge"`
		account.Delivery
	}
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.Ceremony == "" || len(req.Credential) == 0 {
		return problem.MissingField.WithDetail("Send \"ceremony\" and \"credential\".")
	}
	if req.Challenge != "" {
		if req.Delivery != (account.Delivery{}) {
			return problem.InvalidField.WithDetail("The delivery of a challenged sign-in was chosen at its first factor.").With("field", "mode")
		}
		return s.Factors.CompleteWithKey(w, r, req.Challenge, req.Ceremony, req.Credential)
	}
	if err := req.Delivery.Check(); err != nil {
		return err
	}
	ctx := r.Context()
	a, err := s.verify(r, req.Ceremony, purposeLogin, "", "", req.Credential)
	if err != nil {
		return err
	}
	u, err := s.DB.Users().UserByID(ctx, a.UserID)
	if err != nil {
		return fmt.Errorf("passkey: user: %w", err)
	}
	amr := a.AMR()
	if !a.Verified {
		// Possession alone is one factor: an account with a second
		// factor asks for it as after a password.
		if two, err := s.Accounts.MFA.Required(ctx, u.ID); err != nil {
			return err
		} else if two {
			if err := s.DB.InTx(ctx, func(tx store.Tx) error { return a.Use(ctx, tx, s.Sessions.Now()) }); err != nil {
				return s.raced(r, a, err)
			}
			return s.Accounts.MFA.Challenge(w, r, u, amr, req.Delivery)
		}
	}
	now := s.Sessions.Now()
	st := s.Accounts.Begin(r, u.ID, amr, req.Delivery)
	var superseded string
	err = s.DB.InTx(ctx, func(tx store.Tx) error {
		if err := a.Use(ctx, tx, now); err != nil {
			return err
		}
		var err error
		if superseded, err = account.Supersede(r, tx, now); err != nil {
			return err
		}
		if err := st.Create(ctx, tx); err != nil {
			return err
		}
		e := audit.With(audit.New(r, now, audit.LoginSucceeded, u.ID, st.SessionID()), "method", "webauthn")
		return tx.Audit().AppendEvent(ctx, st.Event(audit.With(e, "credential", a.Credential.ID)))
	})
	if err != nil {
		return s.raced(r, a, err)
	}
	if superseded != "" {
		s.Sessions.Revoked(ctx, superseded)
	}
	return st.Respond(w, http.StatusOK, u)
}

// raced maps the failure of recording an assertion: a concurrent use of
// the same counter value (one of two copies of the assertion) is refused.
func (s *Service) raced(r *http.Request, a *Assertion, err error) error {
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		return s.refused(r, a.UserID, purposeLogin, a.Credential.ID, errReplayed)
	}
	return fmt.Errorf("passkey: sign in: %w", err)
}

var (
	errReplayed    = errors.New("passkey: the assertion's counter was used meanwhile")
	errCounter     = errors.New("passkey: the signature counter went backwards")
	errUnknownCred = errors.New("passkey: no such credential")
)

// Assertion is an assertion go-webauthn accepted, to be recorded in the
// transaction that acts on it.
type Assertion struct {
	UserID     string
	Credential *store.WebAuthnCredential
	// Verified: the authenticator verified its user (UV flag), so the
	// key is a multi-factor authenticator by itself.
	Verified bool
	count    uint32
	backedUp bool
}

// AMR is the assertion's methods (RFC 8176): "hwk" for a key bound to its
// hardware, "swk" for a passkey that may be synced (backup eligible), and
// "user" and "mfa" when the authenticator verified its user (a PIN or a
// biometric: RFC 8176 has no one value for either, and "user" is the
// nearest), which makes the key multi-factor by itself.
func (a *Assertion) AMR() []string {
	kind := "hwk"
	if a.Credential.BackupEligible {
		kind = "swk"
	}
	if a.Verified {
		return []string{kind, "user", "mfa"}
	}
	return []string{kind}
}

// Use records the assertion: the new signature counter (compare-and-set,
// so of two copies of one assertion only one counts) and the time of use.
func (a *Assertion) Use(ctx context.Context, tx store.Tx, at time.Time) error {
	return tx.WebAuthn().UseWebAuthnCredential(ctx, a.Credential.ID, a.Credential.SignCount, a.count, a.backedUp, at)
}

// verify checks an assertion of the ceremony handle, begun for purpose (and
// for userID and, for a step-up, sessionID, unless ""). The ceremony is
// spent whatever the outcome. A refusal is audited (webauthn.failed) and
// answered 401 passkey_refused.
func (s *Service) verify(r *http.Request, handle, purpose, userID, challengeKey string, credential json.RawMessage) (*Assertion, error) {
	ctx := r.Context()
	c, err := s.take(ctx, handle, purpose)
	if err != nil {
		return nil, err
	}
	if c.UserID != userID || c.Challenge != challengeKey {
		return nil, problem.InvalidCeremony
	}
	if purpose == purposeStepUp {
		p, ok := session.FromContext(ctx)
		if !ok || p.Session.ID != c.SessionID {
			return nil, problem.InvalidCeremony
		}
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(credential)
	if err != nil {
		return nil, s.refused(r, userID, purpose, "", err)
	}
	stored, err := s.DB.WebAuthn().WebAuthnCredentialByCredentialID(ctx, parsed.RawID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, s.refused(r, userID, purpose, "", errUnknownCred)
	}
	if err != nil {
		return nil, fmt.Errorf("passkey: credential: %w", err)
	}
	if userID != "" && stored.UserID != userID {
		return nil, s.refused(r, userID, purpose, "", errUnknownCred)
	}
	if userID == "" && !bytes.Equal(parsed.Response.UserHandle, []byte(stored.UserID)) {
		// A passwordless assertion must name the credential's owner.
		return nil, s.refused(r, stored.UserID, purpose, stored.ID, errors.New("passkey: user handle does not match the credential's owner"))
	}
	if purpose == purposeLogin && !stored.Discoverable {
		// A security key is a second factor only, whatever it can do.
		return nil, s.refused(r, stored.UserID, purpose, stored.ID, errors.New("passkey: a security key cannot sign in alone"))
	}
	wu, _, err := s.loadUser(ctx, stored.UserID)
	if err != nil {
		return nil, err
	}
	var cred *webauthn.Credential
	if purpose == purposeLogin {
		// Discoverable: the user is the one the credential names.
		_, cred, err = s.rp.ValidatePasskeyLogin(func(_, _ []byte) (webauthn.User, error) { return wu, nil }, c.Data, parsed)
	} else {
		cred, err = s.rp.ValidateLogin(wu, c.Data, parsed)
	}
	if err != nil {
		return nil, s.refused(r, stored.UserID, purpose, stored.ID, err)
	}
	if cred.Authenticator.CloneWarning {
		return nil, s.refused(r, stored.UserID, purpose, stored.ID, errCounter)
	}
	return &Assertion{
		UserID: stored.UserID, Credential: stored,
		Verified: parsed.Response.AuthenticatorData.Flags.HasUserVerified(),
		count:    cred.Authenticator.SignCount, backedUp: cred.Flags.BackupState,
	}, nil
}

// refused audits a refused ceremony and answers passkey_refused. The
// reason is go-webauthn's description (origin, RP ID, challenge,
// signature, …), never the credential's bytes.
func (s *Service) refused(r *http.Request, userID, purpose, credentialID string, err error) error {
	reason := err.Error()
	var perr *protocol.Error
	switch {
	case errors.Is(err, errCounter):
		reason = "sign_count"
	case errors.Is(err, errReplayed):
		reason = "replayed"
	case errors.Is(err, errUnknownCred):
		reason = "unknown_credential"
	case errors.As(err, &perr):
		reason = strings.TrimSpace(perr.Type + ": " + perr.Details)
	}
	// go-webauthn's details can quote what the client sent (an extension
	// name); the audit row keeps a bounded prefix.
	if len(reason) > maxReasonLen {
		reason = strings.ToValidUTF8(reason[:maxReasonLen], "") + "…"
	}
	e := audit.With(audit.New(r, s.Sessions.Now(), audit.WebAuthnFailed, userID, ""), "ceremony", purpose)
	e = audit.With(e, "reason", reason)
	if credentialID != "" {
		e = audit.With(e, "credential", credentialID)
	}
	audit.Append(r.Context(), s.DB.Audit(), s.Log, e)
	return problem.PasskeyRefused
}

// VerifyFactor checks the assertion of a second-factor ceremony begun for
// the sign-in challenge (by its key) of userID.
func (s *Service) VerifyFactor(r *http.Request, handle, userID, challengeKey string, credential json.RawMessage) (*Assertion, error) {
	return s.verify(r, handle, purposeFactor, userID, challengeKey, credential)
}

// VerifyStepUp checks the assertion of a step-up ceremony begun by the
// request's session for userID.
func (s *Service) VerifyStepUp(r *http.Request, handle, userID string, credential json.RawMessage) (*Assertion, error) {
	return s.verify(r, handle, purposeStepUp, userID, "", credential)
}

// Has reports whether the user has a WebAuthn credential.
func (s *Service) Has(ctx context.Context, userID string) (bool, error) {
	creds, err := s.DB.WebAuthn().WebAuthnCredentialsByUser(ctx, userID)
	if err != nil {
		return false, fmt.Errorf("passkey: credentials: %w", err)
	}
	return len(creds) > 0, nil
}

// View is a credential as the API shows it.
type View struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Type is "passkey" or "security_key".
	Type string `json:"type"`
	// Attachment is "platform" (built into a device or a password
	// manager) or "cross-platform" (a roaming key), as far as the
	// transports tell.
	Attachment string     `json:"attachment"`
	Transports []string   `json:"transports"`
	BackedUp   bool       `json:"backed_up"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

func viewOf(c *store.WebAuthnCredential) View {
	v := View{ID: c.ID, Name: c.Name, Type: TypeSecurityKey, Attachment: "cross-platform", Transports: c.Transports,
		BackedUp: c.BackupState, CreatedAt: c.CreatedAt, LastUsedAt: c.LastUsedAt}
	if c.Discoverable {
		v.Type = TypePasskey
	}
	if slices.Contains(c.Transports, "internal") || slices.Contains(c.Transports, "hybrid") {
		v.Attachment = "platform"
	}
	if v.Transports == nil {
		v.Transports = []string{}
	}
	return v
}

// list serves GET /v1/webauthn/credentials.
func (s *Service) list(w http.ResponseWriter, r *http.Request, p *session.Principal) error {
	creds, err := s.DB.WebAuthn().WebAuthnCredentialsByUser(r.Context(), p.User.ID)
	if err != nil {
		return fmt.Errorf("passkey: credentials: %w", err)
	}
	views := make([]View, len(creds))
	for i, c := range creds {
		views[i] = viewOf(c)
	}
	return httpx.WriteJSON(w, http.StatusOK, map[string]any{"credentials": views})
}

// find returns the user's credential id; 404 if the user has none such.
func (s *Service) find(ctx context.Context, userID, credID string) (*store.WebAuthnCredential, error) {
	creds, err := s.DB.WebAuthn().WebAuthnCredentialsByUser(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("passkey: credentials: %w", err)
	}
	for _, c := range creds {
		if c.ID == credID {
			return c, nil
		}
	}
	return nil, problem.NotFound.WithDetail("No such passkey or security key.")
}

// rename serves PATCH /v1/webauthn/credentials/{id} {name}.
func (s *Service) rename(w http.ResponseWriter, r *http.Request, p *session.Principal) error {
	var req struct {
		Name string `json:"name"`
	}
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	name, err := checkName(req.Name, false)
	if err != nil {
		return err
	}
	ctx := r.Context()
	c, err := s.find(ctx, p.User.ID, r.PathValue("id"))
	if err != nil {
		return err
	}
	now := s.Sessions.Now()
	err = s.DB.InTx(ctx, func(tx store.Tx) error {
		if err := tx.WebAuthn().RenameWebAuthnCredential(ctx, p.User.ID, c.ID, name); err != nil {
			return err
		}
		return tx.Audit().AppendEvent(ctx, audit.With(audit.New(r, now, audit.WebAuthnRenamed, p.User.ID, p.Session.ID), "credential", c.ID))
	})
	if errors.Is(err, store.ErrNotFound) {
		return problem.NotFound.WithDetail("No such passkey or security key.")
	}
	if err != nil {
		return fmt.Errorf("passkey: rename: %w", err)
	}
	c.Name = name
	return httpx.WriteJSON(w, http.StatusOK, map[string]any{"credential": viewOf(c)})
}

// remove serves DELETE /v1/webauthn/credentials/{id} (recent sign-in
// required). Removing the account's last second factor removes its
// recovery codes too.
func (s *Service) remove(w http.ResponseWriter, r *http.Request, p *session.Principal) error {
	if err := s.Sessions.RequireFresh(r.Context(), p); err != nil {
		return err
	}
	ctx := r.Context()
	c, err := s.find(ctx, p.User.ID, r.PathValue("id"))
	if err != nil {
		return err
	}
	now := s.Sessions.Now()
	err = s.DB.InTx(ctx, func(tx store.Tx) error {
		if err := tx.WebAuthn().DeleteWebAuthnCredential(ctx, p.User.ID, c.ID); err != nil {
			return err
		}
		left, err := tx.WebAuthn().WebAuthnCredentialsByUser(ctx, p.User.ID)
		if err != nil {
			return err
		}
		f, err := tx.MFA().TOTPByUser(ctx, p.User.ID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if len(left) == 0 && (f == nil || f.ConfirmedAt == nil) {
			if err := tx.MFA().ReplaceRecoveryCodes(ctx, p.User.ID, nil); err != nil {
				return err
			}
		}
		return tx.Audit().AppendEvent(ctx, audit.With(audit.New(r, now, audit.WebAuthnRemoved, p.User.ID, p.Session.ID), "credential", c.ID))
	})
	if errors.Is(err, store.ErrNotFound) {
		return problem.NotFound.WithDetail("No such passkey or security key.")
	}
	if err != nil {
		return fmt.Errorf("passkey: remove: %w", err)
	}
	s.changed(r, p.User.ID, fmt.Sprintf("The %s %q was removed", strings.ReplaceAll(viewOf(c).Type, "_", " "), c.Name))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// changed announces a change of second factors at the account's address.
func (s *Service) changed(r *http.Request, userID, change string) {
	if s.Accounts.Notify != nil {
		s.Accounts.Notify.SecondFactorChanged(r, userID, change)
	}
}
