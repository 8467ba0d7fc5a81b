package verification

import (
	"context"
	"errors"
	"net/http"

	"github.com/gatehouse-auth/gatehouse/internal/account"
	"github.com/gatehouse-auth/gatehouse/internal/audit"
	"github.com/gatehouse-auth/gatehouse/internal/httpx"
	"github.com/gatehouse-auth/gatehouse/internal/mail"
	"github.com/gatehouse-auth/gatehouse/internal/problem"
	"github.com/gatehouse-auth/gatehouse/internal/session"
	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/throttle"
)

// addPhone serves POST /v1/phone {phone}: after a recent sign-in, it texts
// a code to the number; the number is the account's once the code comes
// back (verifyPhone).
func (s *Service) addPhone(w http.ResponseWriter, r *http.Request, p *session.Principal) error {
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
	if err := s.Sessions.RequireFresh(r.Context(), p); err != nil {
		return err
	}
	if p, err = s.Sessions.Load(r.Context(), p); err != nil {
		return err
	}
	if err := s.throttleSend(r, phone); err != nil {
		return err
	}
	// Per account too: a signed-in account must not text arbitrary
	// numbers at the rate of 5 each.
	if d := s.Throttle.Attempt(r.Context(), throttle.Key{Class: ClassSendAddress, ID: "user:" + p.User.ID}); d.Wait > 0 {
		return problem.RateLimited.WithRetryAfter(d.Wait)
	}
	o, uid := originOf(r), p.User.ID
	return s.acceptThen(w, "verify phone", func(ctx context.Context) error {
		return s.sendPhoneCode(ctx, o, uid, store.PurposeVerifyPhone, phone)
	})
}

// verifyPhone serves POST /v1/phone/verify {code}.
func (s *Service) verifyPhone(w http.ResponseWriter, r *http.Request, p *session.Principal) error {
	var req struct {
		Code string `json:"code"`
	}
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	if !validCode(req.Code) {
		return problem.InvalidCode
	}
	ctx := r.Context()
	p, err := s.Sessions.Load(ctx, p)
	if err != nil {
		return err
	}
	codeKey := "user:" + p.User.ID
	if err := s.throttleCode(r, codeKey); err != nil {
		return err
	}
	v, err := s.byCode(ctx, originOf(r), p.User.ID, store.PurposeVerifyPhone, req.Code)
	if err != nil {
		return codeProblem(err)
	}
	now := s.Sessions.Now()
	err = s.DB.InTx(ctx, func(tx store.Tx) error {
		if err := consume(ctx, tx, v, now); err != nil {
			return err
		}
		if err := tx.Users().SetPhone(ctx, p.User.ID, v.Target, now); err != nil {
			return err
		}
		return tx.Audit().AppendEvent(ctx, audit.New(r, now, audit.PhoneVerified, p.User.ID, p.Session.ID))
	})
	if errors.Is(err, store.ErrConflict) {
		return problem.PhoneTaken
	}
	if err != nil {
		return codeProblem(err)
	}
	s.Throttle.Reset(ctx, throttle.Key{Class: ClassCodeAccount, ID: codeKey})
	s.Sessions.UserChanged(ctx, p.User.ID)
	u := p.User
	u.Phone = v.Target
	// A new way in is announced at the address, which can take it back.
	o := originOf(r)
	s.background("phone added", func(ctx context.Context) error {
		return s.notice(ctx, o, mail.KindPhoneAdded, u.ID, u.Email, mail.Data{
			Phone: u.Phone, Link: s.page("recovery"), IP: o.ip, Device: session.DeviceLabel(o.userAgent), At: now,
		})
	})
	return httpx.WriteJSON(w, http.StatusOK, map[string]any{"user": account.ViewOf(&u)})
}

// removePhone serves DELETE /v1/phone (recent sign-in required); codes in
// flight to the number die with it.
func (s *Service) removePhone(w http.ResponseWriter, r *http.Request, p *session.Principal) error {
	if err := s.Sessions.RequireFresh(r.Context(), p); err != nil {
		return err
	}
	ctx := r.Context()
	p, err := s.Sessions.Load(ctx, p)
	if err != nil {
		return err
	}
	if p.User.Phone == "" {
		return problem.NotFound.WithDetail("The account has no phone number.")
	}
	now := s.Sessions.Now()
	err = s.DB.InTx(ctx, func(tx store.Tx) error {
		if err := tx.Users().SetPhone(ctx, p.User.ID, "", now); err != nil {
			return err
		}
		if _, err := tx.Verifications().RetireVerifications(ctx, p.User.ID, now, store.PurposeSMSOTP, store.PurposeVerifyPhone); err != nil {
			return err
		}
		return tx.Audit().AppendEvent(ctx, audit.New(r, now, audit.PhoneRemoved, p.User.ID, p.Session.ID))
	})
	if err != nil {
		return err
	}
	s.Sessions.UserChanged(ctx, p.User.ID)
	u := p.User
	u.Phone = ""
	return httpx.WriteJSON(w, http.StatusOK, map[string]any{"user": account.ViewOf(&u)})
}
