package verification

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/account"
	"github.com/gatehouse-auth/gatehouse/internal/audit"
	"github.com/gatehouse-auth/gatehouse/internal/httpx"
	"github.com/gatehouse-auth/gatehouse/internal/mail"
	"github.com/gatehouse-auth/gatehouse/internal/problem"
	"github.com/gatehouse-auth/gatehouse/internal/session"
	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/throttle"
)

// SignedUp sends u the verification of its address: a link, and a code for
// a phone that cannot follow the link into the right app.
func (s *Service) SignedUp(r *http.Request, u *store.User) {
	o, user := originOf(r), *u
	s.background("verify email", func(ctx context.Context) error {
		return s.sendVerification(ctx, o, &user)
	})
}

// VerificationNeeded sends the verification again to an account that tried
// to sign in before verifying, within the per-address message limit.
func (s *Service) VerificationNeeded(r *http.Request, u *store.User) {
	o, user := originOf(r), *u
	s.background("verify email", func(ctx context.Context) error {
		if !s.withinSendLimit(ctx, user.EmailKey) {
			return nil
		}
		return s.sendVerification(ctx, o, &user)
	})
}

// SignupAttempted tells the owner of an existing account that someone tried
// to sign up with its address, within the per-address message limit (so
// sign-up cannot be used to bomb a mailbox).
func (s *Service) SignupAttempted(r *http.Request, u *store.User) {
	o, user := originOf(r), *u
	s.background("account exists", func(ctx context.Context) error {
		if !s.withinSendLimit(ctx, user.EmailKey) {
			return nil
		}
		return s.notice(ctx, o, mail.KindAccountExists, user.ID, user.Email, mail.Data{Link: s.page("recovery")})
	})
}

// withinSendLimit counts one message to the address, in a background job
// where a refusal can only be silent.
func (s *Service) withinSendLimit(ctx context.Context, address string) bool {
	return s.Throttle.Attempt(ctx, throttle.Key{Class: ClassSendAddress, ID: address}).Wait == 0
}

// PasswordChanged tells u its password was changed, where from, and how to
// take the account back if it was not them.
func (s *Service) PasswordChanged(r *http.Request, u *store.User) {
	o, user := originOf(r), *u
	s.background("password changed", func(ctx context.Context) error {
		return s.notice(ctx, o, mail.KindPasswordChanged, user.ID, user.Email, mail.Data{
			Link: s.page("recovery"), IP: o.ip, Device: session.DeviceLabel(o.userAgent), At: s.Sessions.Now(),
		})
	})
}

// RecoveryCodeUsed tells u one of its MFA recovery codes was used.
func (s *Service) RecoveryCodeUsed(r *http.Request, u *store.User) {
	o, user := originOf(r), *u
	s.background("recovery code used", func(ctx context.Context) error {
		return s.notice(ctx, o, mail.KindRecoveryCodeUsed, user.ID, user.Email, mail.Data{
			Link: s.page("recovery"), IP: o.ip, Device: session.DeviceLabel(o.userAgent), At: s.Sessions.Now(),
		})
	})
}

// SecondFactorChanged tells the user what changed in its second factors.
func (s *Service) SecondFactorChanged(r *http.Request, userID, change string) {
	o := originOf(r)
	s.background("second factor changed", func(ctx context.Context) error {
		u, err := s.DB.Users().UserByID(ctx, userID)
		if err != nil {
			return err
		}
		return s.notice(ctx, o, mail.KindMFAChanged, u.ID, u.Email, mail.Data{
			Change: change, Link: s.page("recovery"), IP: o.ip, Device: session.DeviceLabel(o.userAgent), At: s.Sessions.Now(),
		})
	})
}

// page is the absolute URL of a hosted page.
func (s *Service) page(name string) string { return s.cfg.BaseURL + "/ui/" + name }

func (s *Service) sendVerification(ctx context.Context, o origin, u *store.User) error {
	p, err := s.newProof(u.ID, store.PurposeVerifyEmail, u.Email, "verify-email", true, s.cfg.VerifyEmailTTL, s.Sessions.Now())
	if err != nil {
		return err
	}
	out, err := s.mailTo(mail.KindVerifyEmail, u.Email, mail.Data{Link: p.link, Code: p.code, ExpiresIn: s.cfg.VerifyEmailTTL})
	if err != nil {
		return err
	}
	return s.issue(ctx, o, p, out)
}

// verifyEmail serves POST /v1/verify-email: {token} from the link (which
// may also confirm a change of address), or {email, code}.
func (s *Service) verifyEmail(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Token string `json:"token"`
		Email string `json:"email"`
		Code  string `json:"code"`
	}
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	ctx := r.Context()
	var v *store.Verification
	switch {
	case req.Token != "" && req.Email == "" && req.Code == "":
		var err error
		if v, err = s.byLink(ctx, req.Token, store.PurposeVerifyEmail, store.PurposeChangeEmail, store.PurposeRevertEmail); err != nil {
			return tokenProblem(err)
		}
		switch v.Purpose {
		case store.PurposeChangeEmail:
			return s.completeEmailChange(w, r, v)
		case store.PurposeRevertEmail:
			return s.revertEmailChange(w, r, v)
		}
	case req.Token == "" && req.Email != "" && req.Code != "":
		email, err := requestEmail(req.Email)
		if err != nil {
			return err
		}
		if !validCode(req.Code) {
			return problem.InvalidCode
		}
		if err := s.throttleCode(r, email.Key); err != nil {
			return err
		}
		uid, err := s.userIDByEmail(ctx, email.Key)
		if err != nil {
			return err
		}
		if v, err = s.byCode(ctx, originOf(r), uid, store.PurposeVerifyEmail, req.Code); err != nil {
			return codeProblem(err)
		}
	default:
		return problem.MissingField.WithDetail("Send either \"token\", or \"email\" and \"code\".")
	}
	u, err := s.DB.Users().UserByID(ctx, v.UserID)
	if err != nil {
		return tokenProblem(fmt.Errorf("verification: user: %w", err))
	}
	now := s.Sessions.Now()
	err = s.DB.InTx(ctx, func(tx store.Tx) error {
		if err := consume(ctx, tx, v, now); err != nil {
			return err
		}
		if err := markVerified(ctx, tx, u.ID, v.Target, now); err != nil {
			return err
		}
		return tx.Audit().AppendEvent(ctx, audit.New(r, now, audit.EmailVerified, u.ID, ""))
	})
	if err != nil {
		if req.Token != "" {
			return tokenProblem(err)
		}
		return codeProblem(err)
	}
	s.Sessions.UserChanged(ctx, u.ID)
	return httpx.WriteJSON(w, http.StatusOK, map[string]any{"email": u.Email, "email_verified": true})
}

// markVerified marks the user's address verified if it is still target, the
// address the proof went to; otherwise the proof is for an old address and
// proves nothing.
func markVerified(ctx context.Context, tx store.Tx, userID, target string, now time.Time) error {
	err := tx.Users().MarkEmailVerified(ctx, userID, emailKey(target), now)
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		return errInvalid
	}
	return err
}

// userIDByEmail returns the id of the account with the address, or "".
func (s *Service) userIDByEmail(ctx context.Context, key string) (string, error) {
	u, err := s.DB.Users().UserByEmailKey(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("verification: user: %w", err)
	}
	return u.ID, nil
}

// resendVerification serves POST /v1/verify-email/resend: {email}, or {}
// from a signed-in caller. It answers 202 whatever the account's state.
func (s *Service) resendVerification(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Email string `json:"email"`
	}
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	ctx, o := r.Context(), originOf(r)
	if req.Email == "" {
		p, ok := session.FromContext(ctx)
		if !ok {
			return problem.MissingField.WithDetail("Field \"email\" is required.").With("field", "email")
		}
		p, err := s.Sessions.Load(ctx, p)
		if err != nil {
			return err
		}
		if err := s.throttleSend(r, p.User.EmailKey); err != nil {
			return err
		}
		var job func(ctx context.Context) error
		if !p.User.EmailVerified {
			u := p.User
			job = func(ctx context.Context) error { return s.sendVerification(ctx, o, &u) }
		}
		return s.acceptThen(w, "verify email", job)
	}
	email, err := requestEmail(req.Email)
	if err != nil {
		return err
	}
	if err := s.throttleSend(r, email.Key); err != nil {
		return err
	}
	return s.acceptThen(w, "verify email", func(ctx context.Context) error {
		u, err := s.DB.Users().UserByEmailKey(ctx, email.Key)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil || u.EmailVerified {
			return err
		}
		return s.sendVerification(ctx, o, u)
	})
}

// changeEmail serves POST /v1/email {new_email}: after a recent sign-in, it
// sends a confirmation link to the new address. Nothing changes until the
// link comes back (completeEmailChange). If the new address already has an
// account, its owner is told instead; the caller's answer is the same.
func (s *Service) changeEmail(w http.ResponseWriter, r *http.Request, p *session.Principal) error {
	var req struct {
		NewEmail        string `json:"new_email"`
		CurrentPassword string `json:"current_password"`
	}
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.NewEmail == "" {
		return problem.MissingField.WithDetail("Field \"new_email\" is required.").With("field", "new_email")
	}
	email, err := account.ParseEmail(req.NewEmail)
	if err != nil {
		return problem.InvalidEmail.With("field", "new_email")
	}
	if err := s.Sessions.RequireFresh(r.Context(), p); err != nil {
		return err
	}
	ctx := r.Context()
	if p, err = s.Sessions.Load(ctx, p); err != nil {
		return err
	}
	u := p.User
	if email.Key == u.EmailKey {
		return problem.InvalidField.WithDetail("This is already the account's address.").With("field", "new_email")
	}
	// The address is how the account is recovered: moving it takes the
	// password too, not only a recent sign-in (which a stolen session or a
	// code sign-in can have).
	if err := s.Accounts.VerifyPassword(r, &u, req.CurrentPassword, p.Session.ID); err != nil {
		return err
	}
	if err := s.throttleSend(r, email.Key); err != nil {
		return err
	}
	// While the previous address can still undo a change, no further
	// change: an intruder must not move the address twice to send the
	// undo link to an address they hold.
	if undo, err := s.DB.Verifications().CurrentVerification(ctx, u.ID, store.PurposeRevertEmail); err == nil && s.Sessions.Now().Before(undo.ExpiresAt) {
		return problem.EmailChangeLocked.With("until", undo.ExpiresAt)
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("verification: pending undo: %w", err)
	}
	o := originOf(r)
	o.sessionID = p.Session.ID
	now := s.Sessions.Now()
	audit.Append(ctx, s.DB.Audit(), s.Log, audit.With(o.event(now, audit.EmailChangeRequested, u.ID, p.Session.ID), "new_email", email.Display))
	return s.acceptThen(w, "change email", func(ctx context.Context) error {
		pr, err := s.newProof(u.ID, store.PurposeChangeEmail, email.Display, "verify-email", false, s.cfg.VerifyEmailTTL, now)
		if err != nil {
			return err
		}
		pr.v.SessionID = o.sessionID
		// If the address has an account, its owner is told instead (at the
		// address on record, never the typed spelling), and the proof's
		// link goes nowhere. The requester sees the same either way: an
		// older pending change retired, a verification.sent event.
		var out outgoing
		if other, err := s.DB.Users().UserByEmailKey(ctx, email.Key); err == nil {
			out, err = s.mailTo(mail.KindAccountExists, other.Email, mail.Data{Link: s.page("recovery")})
			if err != nil {
				return err
			}
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		} else if out, err = s.mailTo(mail.KindChangeEmail, email.Display, mail.Data{Link: pr.link, NewEmail: email.Display, ExpiresIn: s.cfg.VerifyEmailTTL}); err != nil {
			return err
		}
		return s.issue(ctx, o, pr, out)
	})
}

// completeEmailChange applies a confirmed change of address: only while the
// session that asked for it is still live (a password reset or a sign-out
// everywhere cancels it), and it signs out every other session. The old
// address is told.
func (s *Service) completeEmailChange(w http.ResponseWriter, r *http.Request, v *store.Verification) error {
	ctx := r.Context()
	now := s.Sessions.Now()
	sess, err := s.DB.Sessions().SessionByID(ctx, v.SessionID)
	if errors.Is(err, store.ErrNotFound) {
		return problem.InvalidToken
	}
	if err != nil {
		return fmt.Errorf("verification: session: %w", err)
	}
	if !s.Sessions.Live(sess, now) {
		return problem.InvalidToken
	}
	u, err := s.DB.Users().UserByID(ctx, v.UserID)
	if err != nil {
		return tokenProblem(fmt.Errorf("verification: user: %w", err))
	}
	next, err := account.ParseEmail(v.Target)
	if err != nil {
		return fmt.Errorf("verification: stored address: %w", err)
	}
	var revoked []string
	err = s.DB.InTx(ctx, func(tx store.Tx) error {
		if err := consume(ctx, tx, v, now); err != nil {
			return err
		}
		if err := tx.Users().ChangeEmail(ctx, u.ID, u.EmailKey, next.Display, next.Key, now); err != nil {
			return err
		}
		if revoked, err = tx.Sessions().RevokeUserSessions(ctx, u.ID, v.SessionID, now, session.ReasonEmailChanged); err != nil {
			return err
		}
		// Links and codes already sent to the old address die with it.
		if _, err := tx.Verifications().RetireVerifications(ctx, u.ID, now, store.PurposeRecovery, store.PurposeMagicLink, store.PurposeEmailOTP, store.PurposeVerifyEmail, store.PurposeNotMe); err != nil {
			return err
		}
		e := audit.New(r, now, audit.EmailChanged, u.ID, v.SessionID)
		audit.With(e, "old_email", u.Email)
		audit.With(e, "new_email", next.Display)
		audit.With(e, "revoked_sessions", fmt.Sprint(len(revoked)))
		return tx.Audit().AppendEvent(ctx, e)
	})
	if errors.Is(err, store.ErrConflict) {
		return problem.EmailTaken
	}
	if err != nil {
		return tokenProblem(err)
	}
	s.Sessions.Revoked(ctx, revoked...)
	s.Sessions.UserChanged(ctx, u.ID)
	o, old := originOf(r), u.Email
	s.background("email changed", func(ctx context.Context) error {
		// The old address gets a way back: a link that undoes the change.
		d := mail.Data{NewEmail: next.Display, IP: o.ip, Device: session.DeviceLabel(o.userAgent), At: now}
		pr, err := s.newProof(u.ID, store.PurposeRevertEmail, old, "verify-email", false, RevertTTL, s.Sessions.Now())
		if err == nil {
			d.Link, d.ExpiresIn = pr.link, RevertTTL
			var out outgoing
			if out, err = s.mailTo(mail.KindEmailChanged, old, d); err == nil {
				if err = s.issue(ctx, o, pr, out); err == nil {
					return nil
				}
			}
		}
		// Without its undo link the notice still goes: the old address
		// must hear of the change.
		s.Log.ErrorContext(ctx, "verification: undo link for a change of address not issued; sending the notice without it", slog.String("user_id", u.ID), slog.Any("error", err))
		d.Link, d.ExpiresIn = "", 0
		return s.notice(ctx, o, mail.KindEmailChanged, u.ID, old, d)
	})
	return httpx.WriteJSON(w, http.StatusOK, map[string]any{"email": next.Display, "email_verified": true, "revoked_sessions": len(revoked)})
}

// RevertTTL is how long the old address can undo a change of address.
const RevertTTL = 7 * 24 * time.Hour

// revertEmailChange undoes a change of address from the link sent to the
// old one. Whoever made the change knew the password and held a session,
// so the way back takes everything from them: the old address returns
// (verified: the link went there), every session ends, the password is
// cleared (the owner sets a new one by reset), the phone number and the
// second factors are removed and every outstanding link and code dies.
func (s *Service) revertEmailChange(w http.ResponseWriter, r *http.Request, v *store.Verification) error {
	ctx := r.Context()
	u, err := s.DB.Users().UserByID(ctx, v.UserID)
	if err != nil {
		return tokenProblem(fmt.Errorf("verification: user: %w", err))
	}
	back, err := account.ParseEmail(v.Target)
	if err != nil {
		return fmt.Errorf("verification: stored address: %w", err)
	}
	now := s.Sessions.Now()
	var revoked []string
	err = s.DB.InTx(ctx, func(tx store.Tx) error {
		if err := consume(ctx, tx, v, now); err != nil {
			return err
		}
		if back.Key != u.EmailKey {
			if err := tx.Users().ChangeEmail(ctx, u.ID, u.EmailKey, back.Display, back.Key, now); err != nil {
				return err
			}
		}
		if err := tx.Users().SetPasswordHash(ctx, u.ID, u.PasswordHash, "", now); err != nil {
			return err
		}
		if err := tx.Users().SetPhone(ctx, u.ID, "", now); err != nil {
			return err
		}
		if err := clearSecondFactors(ctx, tx, u.ID); err != nil {
			return err
		}
		if revoked, err = tx.Sessions().RevokeUserSessions(ctx, u.ID, "", now, session.ReasonEmailChanged); err != nil {
			return err
		}
		if _, err := tx.Verifications().RetireVerifications(ctx, u.ID, now, takeoverRetires...); err != nil {
			return err
		}
		e := audit.New(r, now, audit.EmailChangeReverted, u.ID, "")
		audit.With(e, "email", back.Display)
		audit.With(e, "revoked_sessions", fmt.Sprint(len(revoked)))
		return tx.Audit().AppendEvent(ctx, e)
	})
	if errors.Is(err, store.ErrConflict) {
		return problem.Conflict.WithDetail("The account changed meanwhile, or the old address now belongs to another account.")
	}
	if err != nil {
		return tokenProblem(err)
	}
	s.Sessions.Revoked(ctx, revoked...)
	return httpx.WriteJSON(w, http.StatusOK, map[string]any{
		"email": back.Display, "email_verified": true, "revoked_sessions": len(revoked), "password_reset_required": true,
	})
}

// clearSecondFactors removes the user's authenticator app, passkeys and
// security keys, and recovery codes: when an account is taken back from an intruder, a factor the
// intruder enrolled must not lock the owner out.
func clearSecondFactors(ctx context.Context, tx store.Tx, userID string) error {
	if err := tx.MFA().DeleteTOTP(ctx, userID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if _, err := tx.WebAuthn().DeleteUserWebAuthnCredentials(ctx, userID); err != nil {
		return err
	}
	return tx.MFA().ReplaceRecoveryCodes(ctx, userID, nil)
}

// takeoverRetires are the proofs that die when an account is taken back
// from an intruder: every purpose.
var takeoverRetires = []string{
	store.PurposeVerifyEmail, store.PurposeRecovery, store.PurposeMagicLink, store.PurposeEmailOTP,
	store.PurposeSMSOTP, store.PurposeVerifyPhone, store.PurposeChangeEmail, store.PurposeRevertEmail,
	store.PurposeNotMe,
}

// tokenProblem maps errInvalid to invalid_token; other errors pass.
func tokenProblem(err error) error {
	if errors.Is(err, errInvalid) || errors.Is(err, store.ErrNotFound) {
		return problem.InvalidToken
	}
	return err
}

// codeProblem maps errInvalid to invalid_code; other errors pass.
func codeProblem(err error) error {
	if errors.Is(err, errInvalid) || errors.Is(err, store.ErrNotFound) {
		return problem.InvalidCode
	}
	return err
}
