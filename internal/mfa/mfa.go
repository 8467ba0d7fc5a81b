// Package mfa owns second factors: enrolment of an authenticator app
// (RFC 6238 TOTP through pquerna/otp; the secret sealed at rest under the
// key-encryption key), single-use recovery codes, and the sign-in
// challenge. When an account has a confirmed app or a WebAuthn key
// (package passkey), a successful first factor (password, magic link,
// e-mailed or texted code, a passkey without user verification) yields a
// short-lived single-use challenge instead of a session, and
// POST /v1/login/mfa turns the challenge and a second factor (an app
// code, a recovery code or a key's assertion) into a session.
package mfa

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/gatehouse-auth/gatehouse/internal/account"
	"github.com/gatehouse-auth/gatehouse/internal/audit"
	"github.com/gatehouse-auth/gatehouse/internal/ephemeral"
	"github.com/gatehouse-auth/gatehouse/internal/httpx"
	"github.com/gatehouse-auth/gatehouse/internal/id"
	"github.com/gatehouse-auth/gatehouse/internal/passkey"
	"github.com/gatehouse-auth/gatehouse/internal/problem"
	"github.com/gatehouse-auth/gatehouse/internal/secrets"
	"github.com/gatehouse-auth/gatehouse/internal/session"
	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/throttle"
)

// TOTP parameters: the ones every authenticator app supports.
const (
	period = 30
	digits = otp.DigitsSix
	skew   = 1 // one step either side
)

// ChallengeTTL is how long a sign-in challenge waits for its second factor.
const ChallengeTTL = 5 * time.Minute

// MaxChallengeAttempts is how many second factors one challenge accepts
// before it dies.
const MaxChallengeAttempts = 5

// RecoveryCodeCount is how many recovery codes a set holds.
const RecoveryCodeCount = 10

// ClassMFAAccount counts second-factor attempts per account, across
// challenges.
const ClassMFAAccount = "mfa_account"

// challengePrefix marks sign-in challenges ("ghm_…").
const challengePrefix = "ghm"

// Deps are what a Service works with.
type Deps struct {
	DB       store.Store
	Eph      ephemeral.Store
	Accounts *account.Handler
	Sessions *session.Manager
	Throttle account.Throttler
	// KEKs seal TOTP secrets; the last one seals new ones.
	KEKs []secrets.KEK
	// CodeKey keys the hashes of recovery codes.
	CodeKey []byte
	// Keys verifies WebAuthn assertions.
	Keys    *passkey.Service
	Product string
	Log     *slog.Logger
}

// Service serves the second-factor endpoints.
type Service struct{ Deps }

// New returns a Service.
func New(d Deps) *Service { return &Service{Deps: d} }

// Register adds the routes to mux.
func (s *Service) Register(mux *http.ServeMux, adapt func(httpx.HandlerFunc) http.Handler) {
	mux.Handle("POST /v1/login/mfa", adapt(s.complete))
	mux.Handle("GET /v1/mfa", adapt(session.RequireEnrolling(s.status)))
	mux.Handle("POST /v1/mfa/totp", adapt(session.RequireEnrolling(s.beginTOTP)))
	mux.Handle("POST /v1/mfa/totp/confirm", adapt(session.RequireEnrolling(s.confirmTOTP)))
	mux.Handle("DELETE /v1/mfa/totp", adapt(session.Require(s.deleteTOTP)))
	mux.Handle("POST /v1/mfa/recovery-codes", adapt(session.Require(s.regenerate)))
}

// challenge is what the ephemeral store keeps of a sign-in waiting for its
// second factor.
type challenge struct {
	UserID string   `json:"uid"`
	AMR    []string `json:"amr"`
	Mode   string   `json:"mode"`
	Client string   `json:"client"`
	// Password fingerprints the password hash the first factor was
	// checked against: a password change meanwhile kills the challenge.
	Password string `json:"pw"`
	// Expires is checked here too, not only by the store's TTL.
	Expires time.Time `json:"exp"`
}

func challengeKey(secret id.Secret) string { return "mfa:" + hex.EncodeToString(secret.Hash()) }

// Required reports whether the user must present a second factor.
func (s *Service) Required(ctx context.Context, userID string) (bool, error) {
	methods, err := s.methods(ctx, userID)
	return len(methods) > 0, err
}

// RequiredAAL implements session.Assurance: a sensitive action of an
// account with a second factor needs AAL2 — unless the factor arrived
// after the session's last proof (the session that enrolled it keeps its
// level until its sign-in ages out), or the account has no password, with
// which alone an app code could reach AAL2 (a link or e-mailed code is no
// authenticator; such an account is judged by the freshness of its
// sign-in).
func (s *Service) RequiredAAL(ctx context.Context, userID string, authTime time.Time) (int, error) {
	since, ok, err := s.factorSince(ctx, userID)
	if err != nil || !ok || !since.Before(authTime) {
		return 1, err
	}
	u, err := s.DB.Users().UserByID(ctx, userID)
	if err != nil {
		return 0, fmt.Errorf("mfa: user: %w", err)
	}
	if u.PasswordHash == "" {
		return 1, nil
	}
	return 2, nil
}

// factorSince returns when the user's oldest second factor arrived (the
// app's confirmation, a key's registration); ok is false without one.
func (s *Service) factorSince(ctx context.Context, userID string) (time.Time, bool, error) {
	var since time.Time
	f, err := s.DB.MFA().TOTPByUser(ctx, userID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return since, false, fmt.Errorf("mfa: factor: %w", err)
	}
	if err == nil && f.ConfirmedAt != nil {
		since = *f.ConfirmedAt
	}
	keys, err := s.DB.WebAuthn().WebAuthnCredentialsByUser(ctx, userID)
	if err != nil {
		return since, false, fmt.Errorf("mfa: keys: %w", err)
	}
	if len(keys) > 0 && (since.IsZero() || keys[0].CreatedAt.Before(since)) {
		since = keys[0].CreatedAt
	}
	return since, !since.IsZero(), nil
}

// methods lists the user's second factors by the names the challenge
// gives them: "totp" (a confirmed app), "webauthn" (a key) and, with
// either, "recovery_code". None means the user has no second factor.
func (s *Service) methods(ctx context.Context, userID string) ([]string, error) {
	var methods []string
	f, err := s.DB.MFA().TOTPByUser(ctx, userID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("mfa: factor: %w", err)
	}
	if err == nil && f.ConfirmedAt != nil {
		methods = append(methods, "totp")
	}
	keys, err := s.Keys.Has(ctx, userID)
	if err != nil {
		return nil, err
	}
	if keys {
		methods = append(methods, "webauthn")
	}
	if methods != nil {
		methods = append(methods, "recovery_code")
	}
	return methods, nil
}

// Challenge answers a successful first factor of u (methods amr) with a
// second-factor challenge instead of a session: 200 {"mfa_required": true,
// "challenge", "methods", "expires_in"}.
func (s *Service) Challenge(w http.ResponseWriter, r *http.Request, u *store.User, amr []string, d account.Delivery) error {
	methods, err := s.methods(r.Context(), u.ID)
	if err != nil {
		return err
	}
	if usedKey(amr) {
		// A key that signed in without verifying its user is the first
		// factor; no key (the same or another) can be the second.
		methods = slices.DeleteFunc(methods, func(m string) bool { return m == "webauthn" })
	}
	secret := id.NewSecret(challengePrefix)
	pw := sha256.Sum256([]byte(u.PasswordHash))
	raw, err := json.Marshal(challenge{UserID: u.ID, AMR: amr, Mode: d.Mode, Client: d.Client, Password: hex.EncodeToString(pw[:]), Expires: s.Sessions.Now().Add(ChallengeTTL)})
	if err != nil {
		return fmt.Errorf("mfa: challenge: %w", err)
	}
	if err := s.Eph.Set(r.Context(), challengeKey(secret), raw, ChallengeTTL); err != nil {
		return problem.Unavailable.Wrap(fmt.Errorf("mfa: store challenge: %w", err))
	}
	return httpx.WriteJSON(w, http.StatusOK, map[string]any{
		"mfa_required": true,
		"challenge":    string(secret),
		"methods":      methods,
		"expires_in":   int(ChallengeTTL / time.Second),
	})
}

// factor is one second factor offered for a challenge: an app code, a
// recovery code, or a key's assertion of a ceremony begun for the
// challenge at POST /v1/webauthn/login/begin.
type factor struct {
	Code         string          `json:"code"`
	RecoveryCode string          `json:"recovery_code"`
	Ceremony     string          `json:"ceremony"`
	Credential   json.RawMessage `json:"credential"`
}

// complete serves POST /v1/login/mfa {challenge, code | recovery_code |
// ceremony + credential}.
func (s *Service) complete(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Challenge string `json:"challenge"`
		factor
	}
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	offered := 0
	for _, given := range []bool{req.Code != "", req.RecoveryCode != "", req.Ceremony != "" || len(req.Credential) > 0} {
		if given {
			offered++
		}
	}
	if req.Challenge == "" || offered != 1 || (req.Ceremony == "") != (len(req.Credential) == 0) {
		return problem.MissingField.WithDetail("Send \"challenge\" and exactly one of \"code\", \"recovery_code\" and \"credential\" (with its \"ceremony\").")
	}
	return s.finish(w, r, req.Challenge, req.factor)
}

// CompleteWithKey implements passkey.SecondStep: POST
// /v1/webauthn/login/finish with a challenge.
func (s *Service) CompleteWithKey(w http.ResponseWriter, r *http.Request, challenge, ceremony string, credential json.RawMessage) error {
	return s.finish(w, r, challenge, factor{Ceremony: ceremony, Credential: credential})
}

// live returns the challenge (and its stored form) while it can still be
// completed.
func (s *Service) live(ctx context.Context, challengeSecret string) (string, *challenge, []byte, error) {
	secret, ok := id.ParseSecret(challengePrefix, challengeSecret)
	if !ok {
		return "", nil, nil, problem.InvalidChallenge
	}
	key := challengeKey(secret)
	raw, err := s.Eph.Get(ctx, key)
	if errors.Is(err, ephemeral.ErrNotFound) {
		return "", nil, nil, problem.InvalidChallenge
	}
	if err != nil {
		return "", nil, nil, problem.Unavailable.Wrap(fmt.Errorf("mfa: challenge: %w", err))
	}
	var c challenge
	if err := json.Unmarshal(raw, &c); err != nil {
		return "", nil, nil, fmt.Errorf("mfa: stored challenge: %w", err)
	}
	if !s.Sessions.Now().Before(c.Expires) {
		return "", nil, nil, problem.InvalidChallenge
	}
	return key, &c, raw, nil
}

// ChallengeUser implements passkey.SecondStep.
func (s *Service) ChallengeUser(ctx context.Context, challengeSecret string) (string, error) {
	_, c, _, err := s.live(ctx, challengeSecret)
	if err != nil {
		return "", err
	}
	return c.UserID, nil
}

// finish completes the challenge with f.
func (s *Service) finish(w http.ResponseWriter, r *http.Request, challengeSecret string, f factor) error {
	ctx := r.Context()
	key, c, raw, err := s.live(ctx, challengeSecret)
	if err != nil {
		return err
	}
	// Codes can be guessed, so they are counted per account; a key's
	// assertion cannot, and counting it would let whoever holds the
	// password spend the owner's budget and lock the keys out.
	if f.Ceremony == "" {
		if d := s.Throttle.Attempt(ctx, throttle.Key{Class: ClassMFAAccount, ID: c.UserID}); d.Wait > 0 {
			return problem.RateLimited.WithRetryAfter(d.Wait)
		}
	}
	// Counted before the check, so parallel guesses cannot exceed the
	// limit; the attempt that passes it kills the challenge.
	n, _, err := s.Eph.Incr(ctx, key+":n", ChallengeTTL)
	if err != nil {
		return problem.Unavailable.Wrap(fmt.Errorf("mfa: count attempt: %w", err))
	}
	if n > MaxChallengeAttempts {
		// Refused, but not deleted: an attempt within the limit may be
		// completing right now. The challenge expires with its TTL.
		return problem.InvalidChallenge
	}
	u, err := s.DB.Users().UserByID(ctx, c.UserID)
	if err != nil {
		return fmt.Errorf("mfa: user: %w", err)
	}
	pw := sha256.Sum256([]byte(u.PasswordHash))
	if subtle.ConstantTimeCompare([]byte(hex.EncodeToString(pw[:])), []byte(c.Password)) != 1 {
		_ = s.Eph.Delete(ctx, key)
		return problem.InvalidChallenge
	}
	now := s.Sessions.Now()
	var method string
	var proved []string // the factor's own methods (RFC 8176)
	var use func(ctx context.Context, tx store.Tx) error
	switch {
	case f.Code != "":
		method, proved = "totp", []string{"otp"}
		step, err := s.checkTOTP(ctx, u.ID, f.Code, now)
		if err != nil {
			return s.failed(r, u.ID, method, err)
		}
		use = func(ctx context.Context, tx store.Tx) error { return tx.MFA().UseTOTPStep(ctx, u.ID, step) }
	case f.RecoveryCode != "":
		// A look-up secret has no RFC 8176 value of its own.
		method = "recovery_code"
		hash := s.recoveryHash(u.ID, f.RecoveryCode)
		use = func(ctx context.Context, tx store.Tx) error { return tx.MFA().UseRecoveryCode(ctx, u.ID, hash, now) }
	default:
		method = "webauthn"
		if usedKey(c.AMR) {
			return problem.InvalidField.WithDetail("A key was the first factor of this sign-in; the second must be an app code or a recovery code.").With("field", "credential")
		}
		a, err := s.Keys.VerifyFactor(r, f.Ceremony, u.ID, passkey.ChallengeKey(challengeSecret), f.Credential)
		if err != nil {
			return err // audited as webauthn.failed
		}
		proved = a.AMR()
		use = func(ctx context.Context, tx store.Tx) error { return a.Use(ctx, tx, now) }
	}
	// Single use: whoever takes the challenge signs in; a concurrent
	// request with the same challenge finds it gone.
	if _, err := s.Eph.Take(ctx, key); err != nil {
		return problem.InvalidChallenge
	}
	// A recovery code is checked in the transaction; a mistyped one must
	// not spend the challenge (and the first factor with it), so it is
	// put back for its remaining time. The attempt counter still bounds
	// the guesses.
	putBack := func() {
		if left := c.Expires.Sub(s.Sessions.Now()); left > 0 && method == "recovery_code" {
			if err := s.Eph.Set(ctx, key, raw, left); err != nil {
				s.Log.WarnContext(ctx, "mfa: challenge not restored after a wrong recovery code", slog.Any("error", err))
			}
		}
	}
	amr := slices.Clone(c.AMR)
	for _, m := range append(proved, "mfa") {
		if !slices.Contains(amr, m) {
			amr = append(amr, m)
		}
	}
	st := s.Accounts.Begin(r, u.ID, amr, account.Delivery{Mode: c.Mode, Client: c.Client})
	var superseded string
	err = s.DB.InTx(ctx, func(tx store.Tx) error {
		if err := use(ctx, tx); err != nil {
			return err
		}
		// The password the first factor proved must still be the
		// account's, and stays so until commit.
		if err := tx.Users().SetPasswordHash(ctx, u.ID, u.PasswordHash, u.PasswordHash, now); err != nil {
			return err
		}
		var err error
		if superseded, err = account.Supersede(r, tx, now); err != nil {
			return err
		}
		if err := st.Create(ctx, tx); err != nil {
			return err
		}
		e := audit.With(audit.New(r, now, audit.LoginSucceeded, u.ID, st.SessionID()), "second_factor", method)
		return tx.Audit().AppendEvent(ctx, st.Event(e))
	})
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		// A replayed TOTP step, a wrong or used recovery code, a key's
		// counter used meanwhile, or a password changed meanwhile.
		putBack()
		if err := s.failed(r, u.ID, method, errWrongFactor); method != "webauthn" {
			return err
		}
		return problem.PasskeyRefused
	}
	if err != nil {
		return fmt.Errorf("mfa: sign in: %w", err)
	}
	if superseded != "" {
		s.Sessions.Revoked(ctx, superseded)
	}
	s.Throttle.Reset(ctx, throttle.Key{Class: ClassMFAAccount, ID: u.ID})
	if method == "recovery_code" {
		s.recoveryCodeUsed(r, u)
	}
	return st.Respond(w, http.StatusOK, u)
}

var errWrongFactor = errors.New("mfa: wrong second factor")

// usedKey reports whether the methods include a WebAuthn key.
func usedKey(amr []string) bool { return slices.Contains(amr, "hwk") || slices.Contains(amr, "swk") }

// StepUp implements account.SecondFactor: an app code or a key's
// assertion instead of the password at POST /v1/reauthenticate. A code is
// throttled per account like the sign-in challenge, and its step recorded
// by use, so it serves once; an assertion records its counter.
func (s *Service) StepUp(r *http.Request, userID string, proof account.StepUpProof) ([]string, func(ctx context.Context, tx store.Tx) error, error) {
	ctx := r.Context()
	if proof.Code == "" {
		if proof.Ceremony == "" || len(proof.Credential) == 0 {
			return nil, nil, problem.MissingField.WithDetail("Send \"ceremony\" and \"credential\" together.").With("field", "credential")
		}
		a, err := s.Keys.VerifyStepUp(r, proof.Ceremony, userID, proof.Credential)
		if err != nil {
			return nil, nil, err
		}
		now := s.Sessions.Now()
		return a.AMR(), func(ctx context.Context, tx store.Tx) error { return a.Use(ctx, tx, now) }, nil
	}
	if proof.Ceremony != "" || len(proof.Credential) > 0 {
		return nil, nil, problem.InvalidField.WithDetail("Send a code or a credential, not both.").With("field", "credential")
	}
	if d := s.Throttle.Attempt(ctx, throttle.Key{Class: ClassMFAAccount, ID: userID}); d.Wait > 0 {
		return nil, nil, problem.RateLimited.WithRetryAfter(d.Wait)
	}
	step, err := s.checkTOTP(ctx, userID, proof.Code, s.Sessions.Now())
	if err != nil {
		return nil, nil, s.failed(r, userID, "totp", err)
	}
	s.Throttle.Reset(ctx, throttle.Key{Class: ClassMFAAccount, ID: userID})
	return []string{"otp"}, func(ctx context.Context, tx store.Tx) error { return tx.MFA().UseTOTPStep(ctx, userID, step) }, nil
}

// failed records a refused second factor and answers invalid_code.
func (s *Service) failed(r *http.Request, userID, method string, err error) error {
	if !errors.Is(err, errWrongFactor) {
		return err
	}
	e := audit.With(audit.New(r, s.Sessions.Now(), audit.MFAFailed, userID, ""), "method", method)
	audit.Append(r.Context(), s.DB.Audit(), s.Log, e)
	return problem.InvalidCode
}

// checkTOTP returns the time step whose code is code, within ±skew steps of
// now, for the user's confirmed factor. The codes are computed by
// pquerna/otp; the step is what makes a code single use.
func (s *Service) checkTOTP(ctx context.Context, userID, code string, now time.Time) (int64, error) {
	f, err := s.DB.MFA().TOTPByUser(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		return 0, errWrongFactor
	}
	if err != nil {
		return 0, fmt.Errorf("mfa: factor: %w", err)
	}
	secret, err := s.open(f)
	if err != nil {
		return 0, err
	}
	return matchStep(secret, code, now)
}

// matchStep finds the step within ±skew of now whose code equals code.
func matchStep(secret, code string, now time.Time) (int64, error) {
	if len(code) != digits.Length() {
		return 0, errWrongFactor
	}
	opts := totp.ValidateOpts{Period: period, Skew: 0, Digits: digits, Algorithm: otp.AlgorithmSHA1}
	base := now.Unix() / period
	for d := int64(-skew); d <= skew; d++ {
		step := base + d
		want, err := totp.GenerateCodeCustom(secret, time.Unix(step*period, 0), opts)
		if err != nil {
			return 0, fmt.Errorf("mfa: totp: %w", err)
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return step, nil
		}
	}
	return 0, errWrongFactor
}

// aad binds a sealed TOTP secret to its user.
func aad(userID string) []byte { return []byte("gatehouse totp\x00" + userID) }

func (s *Service) open(f *store.TOTPFactor) (string, error) {
	kek, ok := secrets.FindKEK(s.KEKs, f.KEKVersion)
	if !ok {
		return "", fmt.Errorf("mfa: the TOTP secret of %s is sealed with KEK version %d, which is not loaded", f.UserID, f.KEKVersion)
	}
	raw, err := kek.Open(f.SecretSealed, aad(f.UserID))
	if err != nil {
		return "", fmt.Errorf("mfa: cannot open the TOTP secret of %s: wrong KEK or altered row", f.UserID)
	}
	return string(raw), nil
}

// status serves GET /v1/mfa.
func (s *Service) status(w http.ResponseWriter, r *http.Request, p *session.Principal) error {
	ctx := r.Context()
	methods, err := s.methods(ctx, p.User.ID)
	if err != nil {
		return err
	}
	left, err := s.DB.MFA().CountRecoveryCodes(ctx, p.User.ID)
	if err != nil {
		return fmt.Errorf("mfa: recovery codes: %w", err)
	}
	return httpx.WriteJSON(w, http.StatusOK, map[string]any{
		"totp":                slices.Contains(methods, "totp"),
		"webauthn":            slices.Contains(methods, "webauthn"),
		"recovery_codes_left": left,
	})
}

// beginTOTP serves POST /v1/mfa/totp: a new secret, pending until
// confirmed, with its otpauth:// URI and a QR code.
func (s *Service) beginTOTP(w http.ResponseWriter, r *http.Request, p *session.Principal) error {
	if err := s.Sessions.RequireFresh(r.Context(), p); err != nil {
		return err
	}
	ctx := r.Context()
	p, err := s.Sessions.Load(ctx, p)
	if err != nil {
		return err
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: s.Product, AccountName: p.User.Email, Period: period, Digits: digits, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return fmt.Errorf("mfa: generate: %w", err)
	}
	kek := s.KEKs[len(s.KEKs)-1]
	sealed, err := kek.Seal([]byte(key.Secret()), aad(p.User.ID))
	if err != nil {
		return fmt.Errorf("mfa: seal: %w", err)
	}
	err = s.DB.MFA().PutPendingTOTP(ctx, &store.TOTPFactor{UserID: p.User.ID, SecretSealed: sealed, KEKVersion: kek.Version, CreatedAt: s.Sessions.Now()})
	if errors.Is(err, store.ErrConflict) {
		return problem.Conflict.WithDetail("An authenticator app is already set up. Remove it first.")
	}
	if err != nil {
		return fmt.Errorf("mfa: store factor: %w", err)
	}
	img, err := key.Image(256, 256)
	if err != nil {
		return fmt.Errorf("mfa: qr: %w", err)
	}
	var qr bytes.Buffer
	if err := png.Encode(&qr, img); err != nil {
		return fmt.Errorf("mfa: qr: %w", err)
	}
	return httpx.WriteJSON(w, http.StatusOK, map[string]any{
		"secret":      key.Secret(),
		"otpauth_uri": key.URL(),
		"qr_png":      "data:image/png;base64," + base64.StdEncoding.EncodeToString(qr.Bytes()),
	})
}

// confirmTOTP serves POST /v1/mfa/totp/confirm {code}: the first code
// proves the app holds the secret; the factor is on, and the recovery codes
// are shown this once.
func (s *Service) confirmTOTP(w http.ResponseWriter, r *http.Request, p *session.Principal) error {
	var req struct {
		Code string `json:"code"`
	}
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	ctx := r.Context()
	if d := s.Throttle.Attempt(ctx, throttle.Key{Class: ClassMFAAccount, ID: p.User.ID}); d.Wait > 0 {
		return problem.RateLimited.WithRetryAfter(d.Wait)
	}
	f, err := s.DB.MFA().TOTPByUser(ctx, p.User.ID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && f.ConfirmedAt != nil) {
		return problem.Conflict.WithDetail("No authenticator app is waiting for confirmation. Start again.")
	}
	if err != nil {
		return fmt.Errorf("mfa: factor: %w", err)
	}
	secret, err := s.open(f)
	if err != nil {
		return err
	}
	now := s.Sessions.Now()
	step, err := matchStep(secret, req.Code, now)
	if err != nil {
		return s.failed(r, p.User.ID, "totp", err)
	}
	codes, rows, err := s.NewRecoveryCodes(p.User.ID, now)
	if err != nil {
		return err
	}
	u, err := s.DB.Users().UserByID(ctx, p.User.ID)
	if err != nil {
		return fmt.Errorf("mfa: user: %w", err)
	}
	keys, err := s.Keys.Has(ctx, u.ID)
	if err != nil {
		return err
	}
	var revoked []string
	err = s.DB.InTx(ctx, func(tx store.Tx) error {
		var err error
		if revoked, err = account.GuardEnrolment(ctx, tx, u, p.Session.ID, !keys, now); err != nil {
			return err
		}
		if err := tx.MFA().ConfirmTOTP(ctx, p.User.ID, step, now); err != nil {
			return err
		}
		if err := tx.MFA().ReplaceRecoveryCodes(ctx, p.User.ID, rows); err != nil {
			return err
		}
		e := audit.New(r, now, audit.MFAEnabled, p.User.ID, p.Session.ID)
		return tx.Audit().AppendEvent(ctx, audit.With(e, "revoked_sessions", strconv.Itoa(len(revoked))))
	})
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		return problem.Conflict.WithDetail("The account or its authenticator app changed meanwhile. Start again.")
	}
	if err != nil {
		return fmt.Errorf("mfa: confirm: %w", err)
	}
	s.Sessions.Revoked(ctx, revoked...)
	s.Throttle.Reset(ctx, throttle.Key{Class: ClassMFAAccount, ID: p.User.ID})
	s.changed(r, p.User.ID, "An authenticator app was turned on for two-step sign-in")
	return httpx.WriteJSON(w, http.StatusOK, map[string]any{"recovery_codes": codes})
}

// changed announces a change of second factors at the account's address.
func (s *Service) changed(r *http.Request, userID, change string) {
	if s.Accounts.Notify != nil {
		s.Accounts.Notify.SecondFactorChanged(r, userID, change)
	}
}

// deleteTOTP serves DELETE /v1/mfa/totp (recent sign-in required): the
// factor and its recovery codes go.
func (s *Service) deleteTOTP(w http.ResponseWriter, r *http.Request, p *session.Principal) error {
	if err := s.Sessions.RequireFresh(r.Context(), p); err != nil {
		return err
	}
	ctx := r.Context()
	now := s.Sessions.Now()
	err := s.DB.InTx(ctx, func(tx store.Tx) error {
		if err := tx.MFA().DeleteTOTP(ctx, p.User.ID); err != nil {
			return err
		}
		// The recovery codes go with the last second factor.
		keys, err := tx.WebAuthn().WebAuthnCredentialsByUser(ctx, p.User.ID)
		if err != nil {
			return err
		}
		if len(keys) == 0 {
			if err := tx.MFA().ReplaceRecoveryCodes(ctx, p.User.ID, nil); err != nil {
				return err
			}
		}
		return tx.Audit().AppendEvent(ctx, audit.New(r, now, audit.MFADisabled, p.User.ID, p.Session.ID))
	})
	if errors.Is(err, store.ErrNotFound) {
		return problem.NotFound.WithDetail("No authenticator app is set up.")
	}
	if err != nil {
		return fmt.Errorf("mfa: delete: %w", err)
	}
	s.changed(r, p.User.ID, "The authenticator app was removed from two-step sign-in")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// regenerate serves POST /v1/mfa/recovery-codes (recent sign-in required):
// a new set; the old one stops working.
func (s *Service) regenerate(w http.ResponseWriter, r *http.Request, p *session.Principal) error {
	if err := s.Sessions.RequireFresh(r.Context(), p); err != nil {
		return err
	}
	ctx := r.Context()
	on, err := s.Required(ctx, p.User.ID)
	if err != nil {
		return err
	}
	if !on {
		return problem.Conflict.WithDetail("Recovery codes need an authenticator app or a security key set up first.")
	}
	now := s.Sessions.Now()
	codes, rows, err := s.NewRecoveryCodes(p.User.ID, now)
	if err != nil {
		return err
	}
	err = s.DB.InTx(ctx, func(tx store.Tx) error {
		if err := tx.MFA().ReplaceRecoveryCodes(ctx, p.User.ID, rows); err != nil {
			return err
		}
		return tx.Audit().AppendEvent(ctx, audit.New(r, now, audit.RecoveryCodesRegenerated, p.User.ID, p.Session.ID))
	})
	if err != nil {
		return fmt.Errorf("mfa: regenerate: %w", err)
	}
	s.changed(r, p.User.ID, "New recovery codes were made; the previous ones no longer work")
	return httpx.WriteJSON(w, http.StatusOK, map[string]any{"recovery_codes": codes})
}

// recoveryAlphabet is lower-case base32 without padding: no 0/1/8/9, so
// codes read back without O/0 or l/1 confusion.
var recoveryAlphabet = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewRecoveryCodes returns a fresh set: 10 codes of 80 random bits shown as
// xxxx-xxxx-xxxx-xxxx, and their rows (keyed hashes only).
func (s *Service) NewRecoveryCodes(userID string, now time.Time) ([]string, []*store.RecoveryCode, error) {
	codes := make([]string, RecoveryCodeCount)
	rows := make([]*store.RecoveryCode, RecoveryCodeCount)
	for i := range codes {
		var b [10]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, nil, fmt.Errorf("mfa: recovery code: %w", err)
		}
		c := recoveryAlphabet.EncodeToString(b[:])
		codes[i] = c[0:4] + "-" + c[4:8] + "-" + c[8:12] + "-" + c[12:16]
		rows[i] = &store.RecoveryCode{ID: id.New("rc"), UserID: userID, Hash: s.recoveryHash(userID, codes[i]), CreatedAt: now}
	}
	return codes, rows, nil
}

// recoveryHash is the keyed hash of a recovery code as typed: case, spaces
// and dashes do not matter.
func (s *Service) recoveryHash(userID, code string) []byte {
	norm := strings.Map(func(r rune) rune {
		switch {
		case r == '-' || r == ' ':
			return -1
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return r
	}, code)
	m := hmac.New(sha256.New, s.CodeKey)
	m.Write([]byte(userID))
	m.Write([]byte{0})
	m.Write([]byte(norm))
	return m.Sum(nil)
}

// recoveryCodeUsed records and announces the use of a recovery code.
func (s *Service) recoveryCodeUsed(r *http.Request, u *store.User) {
	if s.Accounts.Notify != nil {
		s.Accounts.Notify.RecoveryCodeUsed(r, u)
	}
}
