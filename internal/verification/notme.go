package verification

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/audit"
	"github.com/gatehouse-auth/gatehouse/internal/httpx"
	"github.com/gatehouse-auth/gatehouse/internal/mail"
	"github.com/gatehouse-auth/gatehouse/internal/problem"
	"github.com/gatehouse-auth/gatehouse/internal/session"
	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// NotMeTTL is how long the "this wasn't me" link of a new-device notice
// works: long enough for an owner who reads mail once a week.
const NotMeTTL = 7 * 24 * time.Hour

// NewDeviceSignIn tells u that a device that had not signed in to the
// account before opened the session sessionID: when, what device, from
// which address and (if known) roughly where, with a single-use link that
// signs that session out and starts a password reset (POST /v1/not-me).
// It only queues work: the sign-in neither waits for the e-mail nor fails
// with it.
func (s *Service) NewDeviceSignIn(r *http.Request, u *store.User, sessionID, location string) {
	s.alert(r, u, mail.KindNewDevice, sessionID, location)
}

// PasswordUsed implements account.Notifier: u's right password came from
// a place or device unusual for the account and was refused for risk.
// Its "not me" link has no session to end; it starts a reset.
func (s *Service) PasswordUsed(r *http.Request, u *store.User, location string) {
	s.alert(r, u, mail.KindPasswordUsed, "", location)
}

// alert queues a notice of kind with a "not me" link bound to sessionID
// ("" for none).
func (s *Service) alert(r *http.Request, u *store.User, kind, sessionID, location string) {
	o, user := originOf(r), *u
	o.sessionID = sessionID
	at := s.Sessions.Now()
	s.background(kind, func(ctx context.Context) error {
		d := mail.Data{IP: o.ip, Device: session.DeviceLabel(o.userAgent), Location: location, At: at}
		p, err := s.newProof(user.ID, store.PurposeNotMe, user.Email, "not-me", false, NotMeTTL, s.Sessions.Now())
		if err == nil {
			p.v.SessionID = sessionID
			dl := d
			dl.Link, dl.ExpiresIn = p.link, NotMeTTL
			var out outgoing
			if out, err = s.mailTo(kind, user.Email, dl); err == nil {
				if err = s.issueNotice(ctx, o, p, out, kind, location); err == nil {
					return nil
				}
			}
		}
		// Without its link the notice still goes: the owner must hear of
		// it, and can still reset the password.
		s.Log.ErrorContext(ctx, "verification: not-me link of a notice not issued; sending the notice without it",
			slog.String("user_id", user.ID), slog.String("kind", kind), slog.Any("error", err))
		d.Link = s.page("recovery")
		return s.notice(ctx, o, kind, user.ID, user.Email, d)
	})
}

// issueNotice stores the not-me proof p with the notice's audit event in
// one transaction, then queues out, which carries p's secret. Unlike
// issue, the event is a notice.sent of its kind, tied to the session the
// notice is about.
func (s *Service) issueNotice(ctx context.Context, o origin, p *proof, out outgoing, kind, location string) error {
	e := o.event(p.v.CreatedAt, audit.NoticeSent, p.v.UserID, p.v.SessionID)
	audit.With(e, "kind", kind)
	audit.With(e, "purpose", p.v.Purpose)
	audit.With(e, "message_id", out.id)
	if location != "" {
		audit.With(e, "location", location)
	}
	err := s.DB.InTx(ctx, func(tx store.Tx) error {
		if err := tx.Verifications().CreateVerification(ctx, p.v); err != nil {
			return err
		}
		return tx.Audit().AppendEvent(ctx, e)
	})
	if err != nil {
		return fmt.Errorf("verification: issue %s: %w", p.v.Purpose, err)
	}
	out.deliver()
	return nil
}

// notMe serves POST /v1/not-me {token}: the owner followed the link of a
// new-device notice and confirmed on the hosted page that the sign-in was
// not theirs. In one transaction the link is spent, the session it names
// is revoked (if it still lives) and a password-reset proof is issued, as
// POST /v1/recovery would mail it; its secret is the answer
// ({reset_token, revoked_session}), for the page to go straight on to
// POST /v1/recovery/complete: the click proved the mailbox, as a reset
// link's would. The account's other sessions are left alone here; the
// reset then ends them all.
func (s *Service) notMe(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Token string `json:"token"`
	}
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.Token == "" {
		return problem.MissingField.WithDetail("Field \"token\" is required.").With("field", "token")
	}
	ctx := r.Context()
	v, err := s.byLink(ctx, req.Token, store.PurposeNotMe)
	if err != nil {
		return tokenProblem(err)
	}
	u, err := s.DB.Users().UserByID(ctx, v.UserID)
	if err != nil {
		return tokenProblem(fmt.Errorf("verification: user: %w", err))
	}
	// The link went to the address on record then: if the account has
	// another address since, the old mailbox proves nothing.
	if emailKey(v.Target) != u.EmailKey {
		return problem.InvalidToken
	}
	now := s.Sessions.Now()
	reset, err := s.newProof(u.ID, store.PurposeRecovery, u.Email, "reset-password", false, s.cfg.RecoveryTTL, now)
	if err != nil {
		return err
	}
	revoked := false
	err = s.DB.InTx(ctx, func(tx store.Tx) error {
		if err := consume(ctx, tx, v, now); err != nil {
			return err
		}
		// Only a session of this account: the proof names one, but a
		// session id is no secret worth trusting across accounts.
		sess, err := tx.Sessions().SessionByID(ctx, v.SessionID)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return err
		case sess.UserID == u.ID:
			ok, err := tx.Sessions().RevokeSession(ctx, sess.ID, now, session.ReasonNotMe)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			revoked = ok
		}
		if err := tx.Verifications().CreateVerification(ctx, reset.v); err != nil {
			return err
		}
		e := audit.New(r, now, audit.SessionReportedNotMe, u.ID, v.SessionID)
		audit.With(e, "session_revoked", strconv.FormatBool(revoked))
		return tx.Audit().AppendEvent(ctx, e)
	})
	if err != nil {
		return tokenProblem(err)
	}
	if revoked {
		s.Sessions.Revoked(ctx, v.SessionID)
	}
	return httpx.WriteJSON(w, http.StatusOK, map[string]any{"reset_token": reset.secret, "revoked_session": revoked})
}
