// Package account owns accounts and password sign-in: sign-up, sign-in,
// the caller's profile, password change and step-up re-authentication, the
// e-mail normalization that makes addresses unique, and the import of users
// with hashes from another system.
package account

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/audit"
	"github.com/gatehouse-auth/gatehouse/internal/httpx"
	"github.com/gatehouse-auth/gatehouse/internal/id"
	"github.com/gatehouse-auth/gatehouse/internal/password"
	"github.com/gatehouse-auth/gatehouse/internal/problem"
	"github.com/gatehouse-auth/gatehouse/internal/risk"
	"github.com/gatehouse-auth/gatehouse/internal/session"
	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/throttle"
	"github.com/gatehouse-auth/gatehouse/internal/token"
)

// Throttle classes used by this package; their limits are configured in
// the composition root.
const (
	ClassLoginIP  = "login_ip"
	ClassSignupIP = "signup_ip"
	ClassReauth   = "reauth_account"
)

// maxPasswordBytes bounds a password before any hashing (long-password DoS).
const maxPasswordBytes = 1024

// maxNameLen bounds the display name.
const maxNameLen = 100

// Hasher hashes and verifies passwords (password.Hasher).
type Hasher interface {
	Hash(ctx context.Context, pw string) (string, error)
	Verify(ctx context.Context, pw, encoded string) (password.Result, error)
	VerifyDummy(ctx context.Context, pw string) error
}

// Throttler counts attempts per key (throttle.Throttle).
type Throttler interface {
	Attempt(ctx context.Context, keys ...throttle.Key) throttle.Decision
	Reset(ctx context.Context, keys ...throttle.Key)
}

// Handler serves the account endpoints.
type Handler struct {
	DB       store.Store
	Sessions *session.Manager
	Hasher   Hasher
	Policy   password.Policy
	Throttle Throttler
	// Protect is the brute-force policy of password sign-in.
	Protect Protection
	// Devices recognises the devices that signed in before.
	Devices Devices
	// Risk scores password sign-ins against the account's earlier ones;
	// nil: no scoring.
	Risk *risk.Engine
	// OnRisk, if set, counts each risk decision (a metric).
	OnRisk func(decision string)
	// Tokens issues token-mode sessions ("mode": "token").
	Tokens *token.Service
	// Notify sends the e-mails account events call for.
	Notify Notifier
	// MFA turns a first factor into a second-factor challenge when the
	// account has one (package mfa).
	MFA SecondFactor
	// RequireVerifiedEmail: sign-up answers the same whether or not the
	// address is registered, and accounts sign in only once verified.
	RequireVerifiedEmail bool
	Log                  *slog.Logger
}

// Notifier sends the e-mails of account events, off the request path
// (package verification). Each call only queues work.
type Notifier interface {
	// SignedUp sends u the verification of its address.
	SignedUp(r *http.Request, u *store.User)
	// VerificationNeeded sends u the verification of its address again,
	// at most as often as the per-address message limit allows (silently:
	// the caller's answer must not change).
	VerificationNeeded(r *http.Request, u *store.User)
	// SignupAttempted tells the owner of an existing account that someone
	// tried to sign up with its address (enumeration-safe sign-up).
	SignupAttempted(r *http.Request, u *store.User)
	// PasswordChanged tells u its password was changed.
	PasswordChanged(r *http.Request, u *store.User)
	// RecoveryCodeUsed tells u one of its recovery codes was used.
	RecoveryCodeUsed(r *http.Request, u *store.User)
	// NewDeviceSignIn tells u a session was opened from a device that had
	// not signed in to the account before (location: approximate, may be
	// empty).
	NewDeviceSignIn(r *http.Request, u *store.User, sessionID, location string)
	// PasswordUsed tells u its right password came from a place or
	// device unusual for the account, and was refused for that.
	PasswordUsed(r *http.Request, u *store.User, location string)
	// SecondFactorChanged tells u what changed in its second factors
	// (a sentence: "An authenticator app was turned on").
	SecondFactorChanged(r *http.Request, userID, change string)
}

// SecondFactor is the second-factor step of sign-in (mfa.Service).
type SecondFactor interface {
	// Required reports whether the user has a second factor.
	Required(ctx context.Context, userID string) (bool, error)
	// Challenge answers a successful first factor with a challenge.
	Challenge(w http.ResponseWriter, r *http.Request, u *store.User, amr []string, d Delivery) error
	// StepUp checks a second factor of a signed-in user for step-up (an
	// app code or a WebAuthn assertion) and returns its methods (RFC 8176
	// amr values); the returned use records it (single use) inside the
	// caller's transaction. A wrong factor is a 401 problem.
	StepUp(r *http.Request, userID string, proof StepUpProof) (amr []string, use func(ctx context.Context, tx store.Tx) error, err error)
}

// StepUpProof is a second factor offered at POST /v1/reauthenticate: an
// authenticator-app code, or a WebAuthn assertion for a ceremony begun at
// POST /v1/webauthn/login/begin.
type StepUpProof struct {
	Code       string          `json:"code"`
	Ceremony   string          `json:"ceremony"`
	Credential json.RawMessage `json:"credential"`
}

// empty reports whether no second factor was offered.
func (p StepUpProof) empty() bool { return p.Code == "" && p.Ceremony == "" && len(p.Credential) == 0 }

// ChangingPurposes are the verifications a password change or reset
// retires: reset links, confirmations of a new e-mail address (which an
// intruder who knew the old password could have started), and "not me"
// links (each would mint a reset: the owner who changed the password has
// taken the account back).
var ChangingPurposes = []string{store.PurposeRecovery, store.PurposeChangeEmail, store.PurposeNotMe}

// Register adds the account routes to mux.
func (h *Handler) Register(mux *http.ServeMux, adapt func(httpx.HandlerFunc) http.Handler) {
	mux.Handle("POST /v1/signup", adapt(h.signup))
	mux.Handle("POST /v1/login", adapt(h.login))
	mux.Handle("GET /v1/me", adapt(session.RequireEnrolling(h.me)))
	mux.Handle("POST /v1/password", adapt(session.Require(h.changePassword)))
	mux.Handle("POST /v1/reauthenticate", adapt(session.RequireEnrolling(h.reauthenticate)))
}

// UserView is the JSON form of a user.
type UserView struct {
	ID            string    `json:"id"`
	Email         string    `json:"email"`
	Name          string    `json:"name"`
	EmailVerified bool      `json:"email_verified"`
	Phone         string    `json:"phone,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
}

// ViewOf is the JSON form of u.
func ViewOf(u *store.User) UserView {
	return UserView{ID: u.ID, Email: u.Email, Name: u.Name, EmailVerified: u.EmailVerified, Phone: u.Phone, CreatedAt: u.CreatedAt}
}

type signedIn struct {
	User    UserView     `json:"user"`
	Session session.View `json:"session"`
}

func (h *Handler) signup(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Email    string `json:"email"`
		Password string `json:"password"`
		Name     string `json:"name"`
		Delivery
	}
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := req.Delivery.Check(); err != nil {
		return err
	}
	email, err := requiredEmail(req.Email)
	if err != nil {
		return err
	}
	if err := httpx.CheckString("name", req.Name, maxNameLen); err != nil {
		return err
	}
	name := strings.TrimSpace(req.Name)
	if err := h.checkPolicy(req.Password, email, name); err != nil {
		return err
	}
	ctx := r.Context()
	// Counted after the cheap validation: junk requests create no counters.
	if d := h.Throttle.Attempt(ctx, throttle.Key{Class: ClassSignupIP, ID: throttle.IPKey(httpx.ClientIP(r))}); d.Wait > 0 {
		return problem.RateLimited.WithRetryAfter(d.Wait)
	}
	existing, err := h.DB.Users().UserByEmailKey(ctx, email.Key)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("account: signup: %w", err)
	}
	if h.RequireVerifiedEmail {
		return h.signupVerified(w, r, existing, email, name, req.Password)
	}
	if existing != nil {
		audit.Append(ctx, h.DB.Audit(), h.Log, audit.New(r, h.Sessions.Now(), audit.SignupEmailExists, existing.ID, ""))
		return problem.EmailTaken
	}
	hash, err := h.Hasher.Hash(ctx, req.Password)
	if err != nil {
		return hashProblem(err)
	}
	now := h.Sessions.Now()
	u := &store.User{ID: id.New("usr"), Email: email.Display, EmailKey: email.Key, Name: name, PasswordHash: hash, CreatedAt: now, UpdatedAt: now}
	st := h.Begin(r, u.ID, []string{"pwd"}, req.Delivery).Quiet()
	var superseded string
	err = h.DB.InTx(ctx, func(tx store.Tx) error {
		if err := tx.Users().CreateUser(ctx, u); err != nil {
			return err
		}
		if superseded, err = Supersede(r, tx, now); err != nil {
			return err
		}
		if err := st.Create(ctx, tx); err != nil {
			return err
		}
		return tx.Audit().AppendEvent(ctx, st.Event(audit.New(r, now, audit.SignedUp, u.ID, st.SessionID())))
	})
	if errors.Is(err, store.ErrConflict) {
		return problem.EmailTaken
	}
	if err != nil {
		return fmt.Errorf("account: signup: %w", err)
	}
	if superseded != "" {
		h.Sessions.Revoked(ctx, superseded)
	}
	h.Notify.SignedUp(r, u)
	return st.Respond(w, http.StatusCreated, u)
}

// signupAccepted is the one answer of enumeration-safe sign-up.
var signupAccepted = map[string]string{
	"status":  "verification_required",
	"message": "Check your e-mail to finish signing up.",
}

// signupVerified is sign-up when addresses must be verified first: the
// answer, its status and its work (one password hash) are the same whether
// or not the address is registered. A new account gets no session; its
// owner signs in after following the verification e-mail. The owner of an
// existing account is told someone tried.
func (h *Handler) signupVerified(w http.ResponseWriter, r *http.Request, existing *store.User, email Email, name, pw string) error {
	ctx := r.Context()
	hash, err := h.Hasher.Hash(ctx, pw)
	if err != nil {
		return hashProblem(err)
	}
	now := h.Sessions.Now()
	if existing != nil {
		audit.Append(ctx, h.DB.Audit(), h.Log, audit.New(r, now, audit.SignupEmailExists, existing.ID, ""))
		h.Notify.SignupAttempted(r, existing)
		return httpx.WriteJSON(w, http.StatusAccepted, signupAccepted)
	}
	u := &store.User{ID: id.New("usr"), Email: email.Display, EmailKey: email.Key, Name: name, PasswordHash: hash, CreatedAt: now, UpdatedAt: now}
	err = h.DB.InTx(ctx, func(tx store.Tx) error {
		if err := tx.Users().CreateUser(ctx, u); err != nil {
			return err
		}
		return tx.Audit().AppendEvent(ctx, audit.New(r, now, audit.SignedUp, u.ID, ""))
	})
	if errors.Is(err, store.ErrConflict) {
		// A concurrent sign-up won the address: answer as for a
		// registered one.
		return httpx.WriteJSON(w, http.StatusAccepted, signupAccepted)
	}
	if err != nil {
		return fmt.Errorf("account: signup: %w", err)
	}
	h.Notify.SignedUp(r, u)
	return httpx.WriteJSON(w, http.StatusAccepted, signupAccepted)
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Email    string `json:"email"`
		Password string `json:"password"`
		Delivery
	}
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := req.Delivery.Check(); err != nil {
		return err
	}
	email, err := requiredEmail(req.Email)
	if err != nil {
		return err
	}
	if req.Password == "" {
		return problem.MissingField.WithDetail("Field \"password\" is required.").With("field", "password")
	}
	if len(req.Password) > maxPasswordBytes {
		return problem.InvalidField.WithDetail("Field \"password\" is too long.").With("field", "password")
	}
	ctx := r.Context()
	if d := h.Throttle.Attempt(ctx, throttle.Key{Class: ClassLoginIP, ID: throttle.IPKey(httpx.ClientIP(r))}); d.Wait > 0 {
		if d.Tripped {
			// Once per window, not per refusal: a flood of refused
			// requests must not become a flood of writes.
			audit.Append(ctx, h.DB.Audit(), h.Log, audit.New(r, h.Sessions.Now(), audit.LoginThrottled, "", ""))
		}
		return problem.RateLimited.WithRetryAfter(d.Wait)
	}
	u, err := h.DB.Users().UserByEmailKey(ctx, email.Key)
	if errors.Is(err, store.ErrNotFound) {
		u = nil
	} else if err != nil {
		return fmt.Errorf("account: login: %w", err)
	}
	if err := h.admit(r, email.Key, u); err != nil {
		return err
	}
	if u == nil {
		// Same work as a wrong password: no timing oracle on existence.
		if err := h.Hasher.VerifyDummy(ctx, req.Password); err != nil {
			return hashProblem(err)
		}
		h.SignInFailed(r, email.Key)
		audit.Append(ctx, h.DB.Audit(), h.Log, audit.With(audit.New(r, h.Sessions.Now(), audit.LoginFailed, "", ""), "email", email.Key))
		return problem.InvalidCredentials
	}
	newHash, err := h.verify(ctx, u, req.Password)
	if errors.Is(err, errWrongPassword) {
		h.SignInFailed(r, email.Key)
		audit.Append(ctx, h.DB.Audit(), h.Log, audit.New(r, h.Sessions.Now(), audit.LoginFailed, u.ID, ""))
		return problem.InvalidCredentials
	}
	if err != nil {
		return err
	}
	if h.RequireVerifiedEmail && !u.EmailVerified {
		// Answered as a wrong password, and counted as one: whoever signed
		// up with an address holds that account's password, so a distinct
		// answer here would tell them the address was free. The owner gets
		// the verification e-mail again instead.
		h.Notify.VerificationNeeded(r, u)
		h.SignInFailed(r, email.Key)
		audit.Append(ctx, h.DB.Audit(), h.Log, audit.With(audit.New(r, h.Sessions.Now(), audit.LoginFailed, u.ID, ""), "reason", "email_unverified"))
		return problem.InvalidCredentials
	}
	now := h.Sessions.Now()
	mfa, err := h.MFA.Required(ctx, u.ID)
	if err != nil {
		return err
	}
	moved, err := h.judge(r, u, mfa)
	if err != nil {
		// Refused for risk: the attempt stays counted, so confirmations
		// of a password from elsewhere run into the account's protection.
		return err
	}
	if moved {
		// A known device in a new place is announced like a new device.
		r = r.WithContext(context.WithValue(ctx, newPlaceKey{}, true))
	}
	// The password is right and may be used: its attempt is refunded
	// (only now: an unverified account's right password must count as a
	// wrong one does, or the counts would tell). A second factor has its
	// own budget.
	h.ClearFailures(ctx, email.Key, httpx.ClientIP(r))
	if mfa {
		if newHash != "" {
			if err := h.DB.InTx(ctx, func(tx store.Tx) error { return h.confirmPassword(ctx, tx, r, u, newHash, now) }); err != nil {
				return fmt.Errorf("account: login: %w", err)
			}
			u.PasswordHash = newHash
		}
		return h.MFA.Challenge(w, r, u, []string{"pwd"}, req.Delivery)
	}
	st := h.Begin(r, u.ID, []string{"pwd"}, req.Delivery)
	var superseded string
	err = h.DB.InTx(ctx, func(tx store.Tx) error {
		if err := h.confirmPassword(ctx, tx, r, u, newHash, now); err != nil {
			return err
		}
		if superseded, err = Supersede(r, tx, now); err != nil {
			return err
		}
		if err := st.Create(ctx, tx); err != nil {
			return err
		}
		return tx.Audit().AppendEvent(ctx, st.Event(audit.New(r, now, audit.LoginSucceeded, u.ID, st.SessionID())))
	})
	if errors.Is(err, errPasswordChanged) {
		return problem.InvalidCredentials
	}
	if err != nil {
		return fmt.Errorf("account: login: %w", err)
	}
	if superseded != "" {
		h.Sessions.Revoked(ctx, superseded)
	}
	if newHash != "" {
		u.PasswordHash = newHash
	}
	return st.Respond(w, http.StatusOK, u)
}

func (h *Handler) me(w http.ResponseWriter, r *http.Request, p *session.Principal) error {
	p, err := h.Sessions.Load(r.Context(), p)
	if err != nil {
		return err
	}
	return httpx.WriteJSON(w, http.StatusOK, signedIn{ViewOf(&p.User), h.Sessions.ViewOf(&p.Session, &p.User, true)})
}

func (h *Handler) changePassword(w http.ResponseWriter, r *http.Request, p *session.Principal) error {
	var req struct {
		CurrentPassword string `json:"current_password"`
		NewPassword     string `json:"new_password"`
		// Client is the token-mode client kind of the replacement session
		// (bearer callers only).
		Client string `json:"client"`
	}
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.CurrentPassword == "" || req.NewPassword == "" {
		return problem.MissingField.WithDetail("Fields \"current_password\" and \"new_password\" are required.")
	}
	d := Delivery{Mode: "token", Client: req.Client}
	if !p.Bearer {
		d = Delivery{Client: req.Client}
	}
	if err := d.Check(); err != nil {
		return err
	}
	if err := h.Sessions.RequireFresh(r.Context(), p); err != nil {
		return err
	}
	ctx := r.Context()
	p, err := h.Sessions.Load(ctx, p) // the session must still be live (bearer)
	if err != nil {
		return err
	}
	u, err := h.DB.Users().UserByID(ctx, p.User.ID)
	if err != nil {
		return fmt.Errorf("account: change password: %w", err)
	}
	if _, err := h.verifyStepUp(r, u, req.CurrentPassword, p.Session.ID); err != nil {
		return err
	}
	hash, err := h.NewPasswordHash(ctx, u, req.NewPassword)
	if err != nil {
		return err
	}
	now := h.Sessions.Now()
	// The caller keeps a session, but not its old credential: a cookie
	// session gets a new secret, and a token-mode session is replaced by a
	// new one (a new refresh family), so a stolen copy of the caller's own
	// cookie or refresh token dies with the old password.
	var (
		secret id.Secret
		st     *Start
		except = p.Session.ID
	)
	if p.Bearer {
		except = ""
		// The replacement keeps the methods (and so the assurance) of
		// the session it replaces.
		amr := p.Session.AMR
		if len(amr) == 0 {
			amr = []string{"pwd"}
		}
		st = h.Begin(r, u.ID, amr, d).Quiet()
	} else {
		secret = id.NewSecret(session.TokenPrefix)
	}
	var revoked []string
	err = h.DB.InTx(ctx, func(tx store.Tx) error {
		if err := tx.Users().SetPasswordHash(ctx, u.ID, u.PasswordHash, hash, now); err != nil {
			return err
		}
		if revoked, err = tx.Sessions().RevokeUserSessions(ctx, u.ID, except, now, session.ReasonPasswordChanged); err != nil {
			return err
		}
		if _, err := tx.Verifications().RetireVerifications(ctx, u.ID, now, ChangingPurposes...); err != nil {
			return err
		}
		current := p.Session.ID
		if st != nil {
			if err := st.Create(ctx, tx); err != nil {
				return err
			}
			current = st.SessionID()
		} else if err := tx.Sessions().RotateSessionToken(ctx, p.Session.ID, secret.Hash(), now, p.Session.AAL, p.Session.AMR); err != nil {
			return err
		}
		e := audit.New(r, now, audit.PasswordChanged, u.ID, current)
		return tx.Audit().AppendEvent(ctx, audit.With(e, "revoked_sessions", strconv.Itoa(len(revoked))))
	})
	if errors.Is(err, store.ErrConflict) {
		return problem.Conflict.WithDetail("The password was changed concurrently.")
	}
	if errors.Is(err, store.ErrNotFound) {
		return problem.Unauthenticated
	}
	if err != nil {
		return fmt.Errorf("account: change password: %w", err)
	}
	h.Sessions.Revoked(ctx, revoked...)
	h.Notify.PasswordChanged(r, u)
	// The new password forgets every known device but this one.
	u.PasswordHash = hash
	if st != nil {
		return st.Respond(w, http.StatusOK, u)
	}
	h.Devices.Remember(w, r, u.ID, hash)
	h.Sessions.Invalidate(ctx, p.Session.ID) // drops cached copies under the old secret
	h.Sessions.SetCookie(w, secret, p.Session.ExpiresAt)
	return httpx.WriteJSON(w, http.StatusOK, map[string]int{"revoked_sessions": len(revoked)})
}

// reauthenticate is step-up: the password proves the user is present, the
// session gets a new secret (the old cookie stops working) and a fresh
// auth_time.
func (h *Handler) reauthenticate(w http.ResponseWriter, r *http.Request, p *session.Principal) error {
	var req struct {
		Password string `json:"password"`
		// The other ways to step up: an app code or a passkey.
		StepUpProof
	}
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	if (req.Password == "") == req.StepUpProof.empty() {
		return problem.MissingField.WithDetail("Send exactly one of \"password\", \"code\" and \"credential\".").With("field", "password")
	}
	ctx := r.Context()
	// A bearer token can outlive its session's idle or absolute expiry by
	// up to its own lifetime: step-up must not extend such a session.
	p, err := h.Sessions.Load(ctx, p)
	if err != nil {
		return err
	}
	u, err := h.DB.Users().UserByID(ctx, p.User.ID)
	if err != nil {
		return fmt.Errorf("account: reauthenticate: %w", err)
	}
	// prove records the proof inside the transaction: the password (still
	// the account's, rehashed if due), the app code's step (single use) or
	// the key's signature counter.
	var prove func(ctx context.Context, tx store.Tx) error
	proved := []string{"pwd"}
	if req.Password == "" {
		if proved, prove, err = h.MFA.StepUp(r, u.ID, req.StepUpProof); err != nil {
			return err
		}
	} else {
		newHash, err := h.verifyStepUp(r, u, req.Password, p.Session.ID)
		if err != nil {
			return err
		}
		prove = func(ctx context.Context, tx store.Tx) error {
			return h.confirmPassword(ctx, tx, r, u, newHash, h.Sessions.Now())
		}
	}
	// The proof adds its methods to the session's: a password session
	// stepped up with an app code or a key reaches AAL2.
	amr := session.StepUpAMR(p.Session.AMR, proved)
	aal := max(p.Session.AAL, session.AALOf(amr))
	now := h.Sessions.Now()
	secret := id.NewSecret(session.TokenPrefix)
	err = h.DB.InTx(ctx, func(tx store.Tx) error {
		if err := prove(ctx, tx); err != nil {
			return err
		}
		if err := tx.Sessions().RotateSessionToken(ctx, p.Session.ID, secret.Hash(), now, aal, amr); err != nil {
			return err
		}
		e := audit.With(audit.New(r, now, audit.Reauthenticated, u.ID, p.Session.ID), "method", strings.Join(proved, " "))
		return tx.Audit().AppendEvent(ctx, audit.With(e, "aal", strconv.Itoa(aal)))
	})
	if errors.Is(err, store.ErrConflict) && req.Password == "" {
		return problem.InvalidCode // the step or the key's counter was used meanwhile
	}
	if errors.Is(err, errPasswordChanged) {
		return problem.IncorrectPassword
	}
	if errors.Is(err, store.ErrNotFound) {
		return problem.Unauthenticated
	}
	if err != nil {
		return fmt.Errorf("account: reauthenticate: %w", err)
	}
	s := p.Session
	s.AuthTime, s.AAL, s.AMR = now, aal, amr
	if p.Bearer {
		// The token's session has no cookie; the fresh auth_time and
		// assurance travel in a new access token.
		at, ttl, err := h.Tokens.Mint(&s)
		if err != nil {
			return err
		}
		return httpx.WriteJSON(w, http.StatusOK, map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": int64(ttl / time.Second)})
	}
	h.Sessions.Invalidate(ctx, p.Session.ID) // drops cached copies keyed by the old secret
	h.Sessions.SetCookie(w, secret, s.ExpiresAt)
	return httpx.WriteJSON(w, http.StatusOK, map[string]any{"session": h.Sessions.ViewOf(&s, u, true)})
}

// Supersede revokes the session the browser already had, if any: a new
// sign-in replaces it and never promotes it (fixation). It returns the id to
// invalidate after commit, or "".
func Supersede(r *http.Request, tx store.Tx, now time.Time) (string, error) {
	prev, ok := session.FromContext(r.Context())
	if !ok {
		return "", nil
	}
	was, err := tx.Sessions().RevokeSession(r.Context(), prev.Session.ID, now, session.ReasonSuperseded)
	if err != nil || !was {
		return "", err
	}
	return prev.Session.ID, nil
}

var errWrongPassword = errors.New("account: wrong password")

// verify checks pw against u's hash. On success it returns the new hash to
// store when the old one is not current (transparent rehash), or "".
func (h *Handler) verify(ctx context.Context, u *store.User, pw string) (string, error) {
	if u.PasswordHash == "" {
		// No password (cleared when an unverified account's address was
		// first proved): nothing matches, at the cost of a real check.
		if err := h.Hasher.VerifyDummy(ctx, pw); err != nil {
			return "", hashProblem(err)
		}
		return "", errWrongPassword
	}
	res, err := h.Hasher.Verify(ctx, pw, u.PasswordHash)
	if err != nil {
		return "", hashProblem(err)
	}
	if !res.OK {
		return "", errWrongPassword
	}
	if !res.NeedsRehash {
		return "", nil
	}
	newHash, err := h.Hasher.Hash(ctx, pw)
	if err != nil {
		// The sign-in succeeded; the upgrade waits for the next one.
		h.Log.WarnContext(ctx, "password rehash skipped", slog.String("user_id", u.ID), slog.Any("error", err))
		return "", nil
	}
	return newHash, nil
}

// VerifyPassword checks the current password of a signed-in user before a
// sensitive change (throttled per account; a wrong one is audited and
// answered 403 incorrect_password).
func (h *Handler) VerifyPassword(r *http.Request, u *store.User, pw, sessionID string) error {
	if pw == "" {
		return problem.MissingField.WithDetail("Field \"current_password\" is required.").With("field", "current_password")
	}
	if len(pw) > maxPasswordBytes {
		return problem.InvalidField.WithDetail("The password is too long.").With("field", "current_password")
	}
	_, err := h.verifyStepUp(r, u, pw, sessionID)
	return err
}

// verifyStepUp verifies the password of an already signed-in user, throttled
// per account so a stolen session cannot brute-force the password.
func (h *Handler) verifyStepUp(r *http.Request, u *store.User, pw, sessionID string) (string, error) {
	ctx := r.Context()
	if len(pw) > maxPasswordBytes {
		return "", problem.InvalidField.WithDetail("The password is too long.").With("field", "password")
	}
	key := throttle.Key{Class: ClassReauth, ID: u.ID}
	if d := h.Throttle.Attempt(ctx, key); d.Wait > 0 {
		return "", problem.RateLimited.WithRetryAfter(d.Wait)
	}
	newHash, err := h.verify(ctx, u, pw)
	if errors.Is(err, errWrongPassword) {
		audit.Append(ctx, h.DB.Audit(), h.Log, audit.New(r, h.Sessions.Now(), audit.ReauthFailed, u.ID, sessionID))
		return "", problem.IncorrectPassword
	}
	if err != nil {
		return "", err
	}
	h.Throttle.Reset(ctx, key)
	return newHash, nil
}

// errPasswordChanged: the password changed between verification and commit.
var errPasswordChanged = errors.New("account: password changed concurrently")

// confirmPassword runs inside the transaction that creates or upgrades a
// session after a password check. It compare-and-sets the hash that was
// verified (to the transparent rehash, if any, else to itself): this fails
// if a password change committed since the check, and otherwise locks the
// user's row until commit, so a password change racing this sign-in either
// sees (and revokes) the new session or makes the sign-in fail. Without it,
// an attacker holding the old password could sign in in parallel with the
// owner's password change and keep a live session.
func (h *Handler) confirmPassword(ctx context.Context, tx store.Tx, r *http.Request, u *store.User, newHash string, now time.Time) error {
	next := newHash
	if next == "" {
		next = u.PasswordHash
	}
	err := tx.Users().SetPasswordHash(ctx, u.ID, u.PasswordHash, next, now)
	if errors.Is(err, store.ErrConflict) {
		return errPasswordChanged
	}
	if err != nil || newHash == "" {
		return err
	}
	return tx.Audit().AppendEvent(ctx, audit.New(r, now, audit.PasswordRehashed, u.ID, ""))
}

// NewPasswordHash checks pw against the password policy for u (its
// address and name are context words) and hashes it.
func (h *Handler) NewPasswordHash(ctx context.Context, u *store.User, pw string) (string, error) {
	if len(pw) > maxPasswordBytes {
		return "", problem.InvalidField.WithDetail("The password is too long.").With("field", "new_password")
	}
	email, _ := ParseEmail(u.Email)
	if err := h.checkPolicy(pw, email, u.Name); err != nil {
		return "", err
	}
	hash, err := h.Hasher.Hash(ctx, pw)
	if err != nil {
		return "", hashProblem(err)
	}
	return hash, nil
}

func (h *Handler) checkPolicy(pw string, email Email, name string) error {
	context := append([]string{email.Local, email.Display, "gatehouse"}, strings.Fields(name)...)
	err := h.Policy.Check(pw, context...)
	var v *password.Violation
	if errors.As(err, &v) {
		return problem.WeakPassword.WithDetail("%s", v.Reason).With("reason", v.Code)
	}
	return err
}

func requiredEmail(s string) (Email, error) {
	if s == "" {
		return Email{}, problem.MissingField.WithDetail("Field \"email\" is required.").With("field", "email")
	}
	e, err := ParseEmail(s)
	if err != nil {
		return Email{}, problem.InvalidEmail
	}
	return e, nil
}

func hashProblem(err error) error {
	if errors.Is(err, password.ErrOverloaded) {
		return problem.Overloaded.WithRetryAfter(time.Second).Wrap(err)
	}
	return fmt.Errorf("account: password hashing: %w", err)
}

// errSessionEnded: the session that asked was revoked meanwhile.
var errSessionEnded = errors.New("account: the session ended meanwhile")

// GuardEnrolment is the part of enrolling a second factor that protects
// the account, run inside the enrolment's transaction. It asserts that u's
// password is still the one loaded, locking the user row until commit, and
// that the enrolling session is still live after that lock: a claim of
// the account or the undo of a change of address (which clear the password,
// revoke the sessions and remove second factors) then either commits
// first and fails the enrolment, or waits and removes what it enrolled.
// For the account's first second factor it revokes every other session —
// they signed in without it — and returns their ids, to announce after
// commit. store.ErrConflict means the account changed meanwhile.
func GuardEnrolment(ctx context.Context, tx store.Tx, u *store.User, sessionID string, first bool, now time.Time) ([]string, error) {
	if err := tx.Users().SetPasswordHash(ctx, u.ID, u.PasswordHash, u.PasswordHash, now); err != nil {
		return nil, err
	}
	s, err := tx.Sessions().SessionByID(ctx, sessionID)
	if err != nil {
		return nil, err
	}
	if s.RevokedAt != nil {
		return nil, fmt.Errorf("%w: %w", errSessionEnded, store.ErrConflict)
	}
	if !first {
		return nil, nil
	}
	return tx.Sessions().RevokeUserSessions(ctx, u.ID, sessionID, now, session.ReasonSecondFactor)
}
