package verification

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/account"
	"github.com/gatehouse-auth/gatehouse/internal/audit"
	"github.com/gatehouse-auth/gatehouse/internal/httpx"
	"github.com/gatehouse-auth/gatehouse/internal/id"
	"github.com/gatehouse-auth/gatehouse/internal/mail"
	"github.com/gatehouse-auth/gatehouse/internal/problem"
	"github.com/gatehouse-auth/gatehouse/internal/session"
	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/throttle"
)

// Authentication methods (the amr claim) of the sign-ins here. RFC 8176
// has "otp" and "sms"; "email" (control of the mailbox) is ours. An
// e-mailed code is "email" alone, like a link: both prove the mailbox, which
// is no authenticator, and "otp" would count as something had
// (session.AALOf) — a password step-up would then make it AAL2.
var (
	amrMagicLink = []string{"email"}
	amrEmailOTP  = []string{"email"}
	amrSMSOTP    = []string{"otp", "sms"}
)

// bindingPrefix marks the nonce of the magic-link binding cookie.
const bindingPrefix = "ghb"

func (s *Service) bindingCookie() string {
	if s.cfg.Secure {
		return "__Host-gh_magic"
	}
	return "gh_magic"
}

// requestMagicLink serves POST /v1/magic-link {email}: 202 always. With
// SameBrowser, the answer sets a cookie whose nonce the link is bound to
// (set whatever the account, so the headers say nothing either).
func (s *Service) requestMagicLink(w http.ResponseWriter, r *http.Request) error {
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
	var binding []byte
	if s.cfg.SameBrowser {
		nonce := id.NewSecret(bindingPrefix)
		binding = nonce.Hash()
		http.SetCookie(w, &http.Cookie{
			Name: s.bindingCookie(), Value: string(nonce), Path: "/",
			MaxAge: int(s.cfg.MagicLinkTTL.Seconds()), Secure: s.cfg.Secure, HttpOnly: true, SameSite: http.SameSiteStrictMode,
		})
	}
	o := originOf(r)
	return s.acceptThen(w, "magic link", func(ctx context.Context) error {
		u, err := s.DB.Users().UserByEmailKey(ctx, email.Key)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		p, err := s.newProof(u.ID, store.PurposeMagicLink, u.Email, "magic-link", false, s.cfg.MagicLinkTTL, s.Sessions.Now())
		if err != nil {
			return err
		}
		p.v.Binding = binding
		out, err := s.mailTo(mail.KindMagicLink, u.Email, mail.Data{Link: p.link, ExpiresIn: s.cfg.MagicLinkTTL})
		if err != nil {
			return err
		}
		return s.issue(ctx, o, p, out)
	})
}

// verifyMagicLink serves POST /v1/magic-link/verify {token, mode, client}:
// the hosted page posts it when the user confirms (a GET of the link never
// signs anyone in, so mail scanners that follow links neither use nor burn
// it).
func (s *Service) verifyMagicLink(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Token string `json:"token"`
		account.Delivery
	}
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := req.Delivery.Check(); err != nil {
		return err
	}
	if req.Token == "" {
		return problem.MissingField.WithDetail("Field \"token\" is required.").With("field", "token")
	}
	ctx := r.Context()
	v, err := s.byLink(ctx, req.Token, store.PurposeMagicLink)
	if err != nil {
		return tokenProblem(err)
	}
	if v.Binding != nil && !s.boundHere(r, v.Binding) {
		return problem.InvalidToken
	}
	u, err := s.DB.Users().UserByID(ctx, v.UserID)
	if err != nil {
		return tokenProblem(fmt.Errorf("verification: user: %w", err))
	}
	return tokenProblem(s.signIn(w, r, u, v, amrMagicLink, "magic_link", req.Delivery))
}

// boundHere reports whether the request carries the nonce whose hash is
// binding.
func (s *Service) boundHere(r *http.Request, binding []byte) bool {
	c, err := r.Cookie(s.bindingCookie())
	if err != nil {
		return false
	}
	h := sha256.Sum256([]byte(c.Value))
	return subtle.ConstantTimeCompare(h[:], binding) == 1
}

// requestEmailCode serves POST /v1/otp/email {email}: 202 always.
func (s *Service) requestEmailCode(w http.ResponseWriter, r *http.Request) error {
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
	return s.acceptThen(w, "email code", func(ctx context.Context) error {
		u, err := s.DB.Users().UserByEmailKey(ctx, email.Key)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		p, err := s.newProof(u.ID, store.PurposeEmailOTP, u.Email, "", true, s.cfg.OTPTTL, s.Sessions.Now())
		if err != nil {
			return err
		}
		out, err := s.mailTo(mail.KindEmailOTP, u.Email, mail.Data{Code: p.code, ExpiresIn: s.cfg.OTPTTL})
		if err != nil {
			return err
		}
		return s.issue(ctx, o, p, out)
	})
}

// requestSMSCode serves POST /v1/otp/sms {phone}: 202 always (once the
// number is valid).
func (s *Service) requestSMSCode(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Phone string `json:"phone"`
	}
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	phone, err := s.requestPhone(req.Phone)
	if err != nil {
		return err
	}
	if err := s.throttleSend(r, phone); err != nil {
		return err
	}
	o := originOf(r)
	return s.acceptThen(w, "sms code", func(ctx context.Context) error {
		u, err := s.DB.Users().UserByPhone(ctx, phone)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return s.sendPhoneCode(ctx, o, u.ID, store.PurposeSMSOTP, phone)
	})
}

// sendPhoneCode issues a code of purpose and texts it to phone.
func (s *Service) sendPhoneCode(ctx context.Context, o origin, userID, purpose, phone string) error {
	p, err := s.newProof(userID, purpose, phone, "", true, s.cfg.OTPTTL, s.Sessions.Now())
	if err != nil {
		return err
	}
	p.v.SessionID = o.sessionID
	return s.issue(ctx, o, p, s.textTo(phone, s.smsBody(p.code)))
}

// smsBody is the text of a code message. Its last line is the origin-bound
// one-time-code format (WebOTP), so browsers offer the code only on this
// site.
func (s *Service) smsBody(code string) string {
	host := ""
	if u, err := url.Parse(s.cfg.BaseURL); err == nil {
		host = u.Hostname()
	}
	return fmt.Sprintf("%s code: %s\nIt expires in %s. Never share it; we will never ask for it.\n\n@%s #%s", s.cfg.Product, code, human(s.cfg.OTPTTL), host, code)
}

// verifyCode serves POST /v1/otp/verify {email | phone, code, mode, client}.
// Every failure — unknown account, no code, expired, wrong, dead — is the
// same 401 invalid_code.
func (s *Service) verifyCode(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Email string `json:"email"`
		Phone string `json:"phone"`
		Code  string `json:"code"`
		account.Delivery
	}
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := req.Delivery.Check(); err != nil {
		return err
	}
	if (req.Email == "") == (req.Phone == "") {
		return problem.MissingField.WithDetail("Send exactly one of \"email\" and \"phone\".")
	}
	if req.Code == "" {
		return problem.MissingField.WithDetail("Field \"code\" is required.").With("field", "code")
	}
	if !validCode(req.Code) {
		return problem.InvalidCode
	}
	ctx := r.Context()
	var (
		u       *store.User
		err     error
		key     string
		purpose = store.PurposeEmailOTP
		amr     = amrEmailOTP
		method  = "email_otp"
	)
	if req.Email != "" {
		email, err := requestEmail(req.Email)
		if err != nil {
			return err
		}
		key = email.Key
	} else {
		if key, err = s.requestPhone(req.Phone); err != nil {
			return err
		}
		purpose, amr, method = store.PurposeSMSOTP, amrSMSOTP, "sms_otp"
	}
	if err := s.throttleCode(r, key); err != nil {
		return err
	}
	if purpose == store.PurposeEmailOTP {
		u, err = s.DB.Users().UserByEmailKey(ctx, key)
	} else {
		u, err = s.DB.Users().UserByPhone(ctx, key)
	}
	uid := ""
	switch {
	case err == nil:
		uid = u.ID
	case !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("verification: user: %w", err)
	}
	v, err := s.byCode(ctx, originOf(r), uid, purpose, req.Code)
	if err != nil {
		s.Accounts.SignInFailed(r, key)
		return codeProblem(err)
	}
	if err := codeProblem(s.signIn(w, r, u, v, amr, method, req.Delivery)); err != nil {
		return err
	}
	s.Throttle.Reset(ctx, throttle.Key{Class: ClassCodeAccount, ID: key})
	return nil
}

// secondFactor spends v (and verifies the address it went to) and answers
// with the second-factor challenge of an account that has one.
func (s *Service) secondFactor(w http.ResponseWriter, r *http.Request, u *store.User, v *store.Verification, amr []string, d account.Delivery, now time.Time) error {
	ctx := r.Context()
	err := s.DB.InTx(ctx, func(tx store.Tx) error {
		if err := consume(ctx, tx, v, now); err != nil {
			return err
		}
		if v.Purpose == store.PurposeSMSOTP {
			return nil
		}
		return markVerified(ctx, tx, u.ID, v.Target, now)
	})
	if err != nil {
		return err
	}
	return s.Accounts.MFA.Challenge(w, r, u, amr, d)
}

// signIn spends v and creates the session of a link or code sign-in. A
// proof sent by e-mail also verifies the address it went to (if that is
// still the account's); a texted one must match the account's number.
func (s *Service) signIn(w http.ResponseWriter, r *http.Request, u *store.User, v *store.Verification, amr []string, method string, d account.Delivery) error {
	ctx := r.Context()
	if v.Purpose == store.PurposeSMSOTP && v.Target != u.Phone {
		return errInvalid
	}
	now := s.Sessions.Now()
	st := s.Accounts.Begin(r, u.ID, amr, d)
	// The first proof of an unverified account's address ends whatever
	// was set up before it by someone who had not proved the address: a
	// pre-hijacker who signed up with it keeps no password, session, phone
	// number or pending link (the owner sets a password by reset if they
	// want one).
	claim := v.Purpose != store.PurposeSMSOTP && !u.EmailVerified
	if !claim {
		if mfa, err := s.Accounts.MFA.Required(ctx, u.ID); err != nil {
			return err
		} else if mfa {
			return s.secondFactor(w, r, u, v, amr, d, now)
		}
	}
	var superseded string
	var revoked []string
	err := s.DB.InTx(ctx, func(tx store.Tx) error {
		if err := consume(ctx, tx, v, now); err != nil {
			return err
		}
		if v.Purpose != store.PurposeSMSOTP {
			if err := markVerified(ctx, tx, u.ID, v.Target, now); err != nil {
				return err
			}
		}
		var err error
		if superseded, err = account.Supersede(r, tx, now); err != nil {
			return err
		}
		e := audit.With(audit.New(r, now, audit.LoginSucceeded, u.ID, st.SessionID()), "method", method)
		if claim {
			if err := tx.Users().SetPasswordHash(ctx, u.ID, u.PasswordHash, "", now); err != nil {
				return err
			}
			if revoked, err = tx.Sessions().RevokeUserSessions(ctx, u.ID, "", now, session.ReasonEmailVerified); err != nil {
				return err
			}
			if err := tx.Users().SetPhone(ctx, u.ID, "", now); err != nil {
				return err
			}
			if err := clearSecondFactors(ctx, tx, u.ID); err != nil {
				return err
			}
			if _, err := tx.Verifications().RetireVerifications(ctx, u.ID, now, takeoverRetires...); err != nil {
				return err
			}
			audit.With(e, "claimed_unverified_account", "true")
			audit.With(e, "revoked_sessions", fmt.Sprint(len(revoked)))
		}
		if err := st.Create(ctx, tx); err != nil {
			return err
		}
		return tx.Audit().AppendEvent(ctx, st.Event(e))
	})
	if errors.Is(err, store.ErrConflict) {
		return problem.Conflict.WithDetail("The account changed meanwhile. Try again.")
	}
	if err != nil {
		return err
	}
	if superseded != "" {
		s.Sessions.Revoked(ctx, superseded)
	}
	s.Sessions.Revoked(ctx, revoked...)
	if v.Purpose != store.PurposeSMSOTP && !u.EmailVerified {
		u.EmailVerified = true
		s.Sessions.UserChanged(ctx, u.ID)
	}
	return st.Respond(w, http.StatusOK, u)
}
