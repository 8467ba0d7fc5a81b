package verification

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/gatehouse-auth/gatehouse/internal/audit"
	"github.com/gatehouse-auth/gatehouse/internal/httpx"
	"github.com/gatehouse-auth/gatehouse/internal/mail"
	"github.com/gatehouse-auth/gatehouse/internal/problem"
	"github.com/gatehouse-auth/gatehouse/internal/session"
	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// resetRetires are the proofs a password reset kills: every way into the
// account that an intruder could have started before the owner took it
// back.
var resetRetires = []string{store.PurposeRecovery, store.PurposeChangeEmail, store.PurposeMagicLink, store.PurposeEmailOTP, store.PurposeSMSOTP, store.PurposeVerifyPhone, store.PurposeNotMe}

// recover serves POST /v1/recovery {email}: 202, always the same, in the
// same time; the reset link goes, in a background job, to the address the
// account has on record (never to the address as typed).
func (s *Service) recover(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Email string `json:"email"`
	}
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	email, err := requestEmail(req.Email)
	if err != nil {
		return err
	}
	if err := s.throttleSend(r, email.Key); err != nil {
		return err
	}
	o := originOf(r)
	return s.acceptThen(w, "recovery", func(ctx context.Context) error {
		u, err := s.DB.Users().UserByEmailKey(ctx, email.Key)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		p, err := s.newProof(u.ID, store.PurposeRecovery, u.Email, "reset-password", false, s.cfg.RecoveryTTL, s.Sessions.Now())
		if err != nil {
			return err
		}
		out, err := s.mailTo(mail.KindRecovery, u.Email, mail.Data{Link: p.link, ExpiresIn: s.cfg.RecoveryTTL})
		if err != nil {
			return err
		}
		return s.issue(ctx, o, p, out)
	})
}

// completeRecovery serves POST /v1/recovery/complete {token, new_password}:
// it sets the password, signs out every session (refresh-token families
// die with their sessions), removes the phone number, retires every
// outstanding link and code, and tells the owner. It creates no session: the user signs in afresh.
func (s *Service) completeRecovery(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Token       string `json:"token"`
		NewPassword string `json:"new_password"`
	}
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.Token == "" || req.NewPassword == "" {
		return problem.MissingField.WithDetail("Fields \"token\" and \"new_password\" are required.")
	}
	ctx := r.Context()
	v, err := s.byLink(ctx, req.Token, store.PurposeRecovery)
	if err != nil {
		return tokenProblem(err)
	}
	u, err := s.DB.Users().UserByID(ctx, v.UserID)
	if err != nil {
		return tokenProblem(fmt.Errorf("verification: user: %w", err))
	}
	// The policy is checked before the link is spent: a refused password
	// leaves the link usable for a better one.
	hash, err := s.Accounts.NewPasswordHash(ctx, u, req.NewPassword)
	if err != nil {
		return err
	}
	now := s.Sessions.Now()
	var revoked []string
	err = s.DB.InTx(ctx, func(tx store.Tx) error {
		if err := consume(ctx, tx, v, now); err != nil {
			return err
		}
		// The link went to the address on record: if that changed since,
		// the link proves nothing (and markVerified refuses it).
		if err := markVerified(ctx, tx, u.ID, v.Target, now); err != nil {
			return err
		}
		if err := tx.Users().SetPasswordHash(ctx, u.ID, u.PasswordHash, hash, now); err != nil {
			return err
		}
		if revoked, err = tx.Sessions().RevokeUserSessions(ctx, u.ID, "", now, session.ReasonPasswordReset); err != nil {
			return err
		}
		// A phone number is a way in: one an intruder added must not
		// survive the owner taking the account back. The owner adds theirs
		// again.
		if err := tx.Users().SetPhone(ctx, u.ID, "", now); err != nil {
			return err
		}
		// An unverified account may be a squatter's (pre-hijacking): the
		// reset is the owner's claim, and the squatter's second factors —
		// a passkey signs in by itself — go, as with the claim by a link
		// or code. A verified account keeps them: the mailbox alone must
		// not undo its MFA.
		if !u.EmailVerified {
			if err := clearSecondFactors(ctx, tx, u.ID); err != nil {
				return err
			}
		}
		if _, err := tx.Verifications().RetireVerifications(ctx, u.ID, now, resetRetires...); err != nil {
			return err
		}
		return tx.Audit().AppendEvent(ctx, audit.With(audit.New(r, now, audit.PasswordReset, u.ID, ""), "revoked_sessions", fmt.Sprint(len(revoked))))
	})
	if errors.Is(err, store.ErrConflict) {
		return problem.Conflict.WithDetail("The password was changed concurrently.")
	}
	if err != nil {
		return tokenProblem(err)
	}
	s.Sessions.Revoked(ctx, revoked...)
	// The owner is back in control: failed guesses by others no longer
	// count against their next sign-in.
	s.Accounts.ClearFailures(ctx, u.EmailKey, httpx.ClientIP(r))
	s.PasswordChanged(r, u)
	return httpx.WriteJSON(w, http.StatusOK, map[string]int{"revoked_sessions": len(revoked)})
}
