// Package verification owns proofs of control of an e-mail address or a
// phone number — single-use links and short codes sent by e-mail or text —
// and the flows built on them: e-mail verification, password reset,
// magic-link and one-time-code sign-in, adding a phone number, and the
// change of e-mail address. It also sends the account notices (password
// changed, address changed, sign-up attempted, a sign-in from a new device
// with its "this wasn't me" link: POST /v1/not-me).
//
// Two rules hold everywhere. Requests that name an address answer the same
// thing, with the same work on the request path, whether or not an account
// has it: looking the account up, issuing the proof and sending the message
// happen in a background job. And every proof is stored only as a hash, is
// used at most once (a compare-and-set in the transaction that acts on it),
// expires, and is retired when a newer one of the same kind is issued.
package verification

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/account"
	"github.com/gatehouse-auth/gatehouse/internal/audit"
	"github.com/gatehouse-auth/gatehouse/internal/httpx"
	"github.com/gatehouse-auth/gatehouse/internal/id"
	"github.com/gatehouse-auth/gatehouse/internal/mail"
	"github.com/gatehouse-auth/gatehouse/internal/problem"
	"github.com/gatehouse-auth/gatehouse/internal/session"
	"github.com/gatehouse-auth/gatehouse/internal/sms"
	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/throttle"
)

// LinkPrefix marks link secrets ("ghl_…").
const LinkPrefix = "ghl"

// MaxCodeAttempts is how many wrong codes kill a code.
const MaxCodeAttempts = 5

// codeDigits is the length of one-time codes.
const codeDigits = 6

// messageAttempts is how many times a message is tried before it is given
// up (with backoff between tries).
const messageAttempts = 6

// Throttle classes of this package; limits are set in the composition root.
const (
	// ClassSendAddress counts messages requested per address or number,
	// ClassSendIP per client IP: both bound mail bombing and SMS pumping.
	ClassSendAddress = "send_address"
	ClassSendIP      = "send_ip"
	// ClassCodeIP and ClassCodeAccount count code guesses beyond the
	// per-code limit: across codes, per client IP and per address.
	ClassCodeIP      = "code_ip"
	ClassCodeAccount = "code_account"
)

// Config is the flows' policy.
type Config struct {
	BaseURL        string // links are built from it, never from the request
	Product        string
	VerifyEmailTTL time.Duration
	RecoveryTTL    time.Duration
	MagicLinkTTL   time.Duration
	OTPTTL         time.Duration
	// SameBrowser binds magic links to the browser that asked.
	SameBrowser bool
	// PhoneRegion is the region of national phone numbers ("" = none).
	PhoneRegion string
	// Secure sets the Secure attribute and __Host- prefix of the
	// magic-link binding cookie.
	Secure bool
}

// Queue runs work off the request path (dispatch.Queue).
type Queue interface {
	Submit(name string, attempts int, job func(ctx context.Context) error) bool
}

// Deps are what a Service works with.
type Deps struct {
	DB       store.Store
	Accounts *account.Handler
	Sessions *session.Manager
	Throttle account.Throttler
	Queue    Queue
	Mail     mail.Sender
	Mails    *mail.Templates
	// SMS is nil when text messages are off.
	SMS sms.Sender
	// CodeKey keys the hashes of one-time codes, so a copy of the database
	// alone does not give them away.
	CodeKey []byte
	Log     *slog.Logger
}

// Service serves the verification endpoints.
type Service struct {
	cfg Config
	Deps
}

// New returns a Service.
func New(cfg Config, d Deps) *Service {
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	return &Service{cfg: cfg, Deps: d}
}

// Register adds the routes to mux.
func (s *Service) Register(mux *http.ServeMux, adapt func(httpx.HandlerFunc) http.Handler) {
	mux.Handle("POST /v1/verify-email", adapt(s.verifyEmail))
	mux.Handle("POST /v1/verify-email/resend", adapt(s.resendVerification))
	mux.Handle("POST /v1/recovery", adapt(s.recover))
	mux.Handle("POST /v1/recovery/complete", adapt(s.completeRecovery))
	mux.Handle("POST /v1/not-me", adapt(s.notMe))
	mux.Handle("POST /v1/magic-link", adapt(s.requestMagicLink))
	mux.Handle("POST /v1/magic-link/verify", adapt(s.verifyMagicLink))
	mux.Handle("POST /v1/otp/email", adapt(s.requestEmailCode))
	mux.Handle("POST /v1/otp/sms", adapt(s.requestSMSCode))
	mux.Handle("POST /v1/otp/verify", adapt(s.verifyCode))
	mux.Handle("POST /v1/email", adapt(session.Require(s.changeEmail)))
	mux.Handle("POST /v1/phone", adapt(session.Require(s.addPhone)))
	mux.Handle("POST /v1/phone/verify", adapt(session.Require(s.verifyPhone)))
	mux.Handle("DELETE /v1/phone", adapt(session.Require(s.removePhone)))
}

// accepted is the one answer of every request that names an address: the
// same body, status and headers whether or not an account has it.
var accepted = []byte(`{"status":"accepted","message":"If an account matches, a message is on its way."}` + "\n")

// acceptThen answers 202 with the one answer, hands it to the client in
// full (Content-Length, flushed), and only then queues job: the work that
// depends on whether an account exists starts after the client has its
// answer, so it cannot show in the answer's timing.
func (s *Service) acceptThen(w http.ResponseWriter, name string, job func(ctx context.Context) error) error {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(accepted)))
	w.WriteHeader(http.StatusAccepted)
	if _, err := w.Write(accepted); err != nil {
		return nil // the client is gone; it asked for nothing it can still see
	}
	if err := http.NewResponseController(w).Flush(); err != nil {
		s.Log.Debug("verification: flush before background work failed", slog.Any("error", err))
	}
	if job != nil {
		s.background(name, job)
	}
	return nil
}

// origin is what a background job keeps of the request that started it:
// the request itself is gone by the time the job runs.
type origin struct {
	ip, userAgent string
	sessionID     string
}

func originOf(r *http.Request) origin {
	o := origin{userAgent: r.UserAgent()}
	if ip := httpx.ClientIP(r); ip.IsValid() {
		o.ip = ip.String()
	}
	if p, ok := session.FromContext(r.Context()); ok {
		o.sessionID = p.Session.ID
	}
	return o
}

// event builds an audit event for the request o describes.
func (o origin) event(now time.Time, typ, userID, sessionID string) *store.Event {
	e := audit.New(nil, now, typ, userID, sessionID)
	e.IP = o.ip
	e.UserAgent = o.userAgent
	if len(e.UserAgent) > 512 {
		e.UserAgent = e.UserAgent[:512]
	}
	return e
}

// throttleSend counts one message request against the client IP and the
// address (or number) it names. Both counters exist whether or not an
// account has the address, so a refusal says nothing about accounts.
func (s *Service) throttleSend(r *http.Request, address string) error {
	d := s.Throttle.Attempt(r.Context(),
		throttle.Key{Class: ClassSendIP, ID: throttle.IPKey(httpx.ClientIP(r))},
		throttle.Key{Class: ClassSendAddress, ID: address})
	if d.Wait > 0 {
		return problem.RateLimited.WithRetryAfter(d.Wait)
	}
	return nil
}

// throttleCode counts one code guess against the client IP and the address.
func (s *Service) throttleCode(r *http.Request, address string) error {
	d := s.Throttle.Attempt(r.Context(),
		throttle.Key{Class: ClassCodeIP, ID: throttle.IPKey(httpx.ClientIP(r))},
		throttle.Key{Class: ClassCodeAccount, ID: address})
	if d.Wait > 0 {
		return problem.RateLimited.WithRetryAfter(d.Wait)
	}
	return nil
}

// background runs job off the request path, once. Its failure is logged,
// never shown: the request has already been answered.
func (s *Service) background(name string, job func(ctx context.Context) error) {
	s.Queue.Submit(name, 1, job)
}

// proof is a verification about to be issued, with its secrets in clear
// (they leave only in the message).
type proof struct {
	v      *store.Verification
	link   string // absolute URL with the secret in its fragment; "" if none
	secret string // the link's secret alone; "" if none
	code   string // "" if none
}

// newProof builds a verification of purpose for userID. page (under /ui/)
// is where its link lands; "" means no link. withCode adds a code.
func (s *Service) newProof(userID, purpose, target, page string, withCode bool, ttl time.Duration, now time.Time) (*proof, error) {
	p := &proof{v: &store.Verification{
		ID:        id.New("vfy"),
		UserID:    userID,
		Purpose:   purpose,
		Target:    target,
		CreatedAt: now,
		ExpiresAt: now.Add(ttl),
	}}
	if page != "" {
		secret := id.NewSecret(LinkPrefix)
		p.v.LinkHash = secret.Hash()
		p.secret = string(secret)
		// The secret travels in the fragment: browsers never send it to
		// any server, so it stays out of access logs, proxies and
		// Referer headers, and a GET of the page cannot consume it.
		p.link = s.cfg.BaseURL + "/ui/" + page + "#token=" + string(secret)
	}
	if withCode {
		code, err := newCode()
		if err != nil {
			return nil, err
		}
		p.code = code
		p.v.CodeHash = s.codeHash(p.v.ID, code)
	}
	return p, nil
}

// newCode returns a uniformly random decimal code.
func newCode() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", fmt.Errorf("verification: code: %w", err)
	}
	return fmt.Sprintf("%0*d", codeDigits, n.Int64()), nil
}

// codeHash is the keyed hash of a code, bound to its verification: equal
// codes of two verifications hash differently.
func (s *Service) codeHash(verificationID, code string) []byte {
	m := hmac.New(sha256.New, s.CodeKey)
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(verificationID)))
	m.Write(n[:])
	m.Write([]byte(verificationID))
	m.Write([]byte(code))
	return m.Sum(nil)
}

// validCode reports whether s is shaped like a code.
func validCode(s string) bool {
	if len(s) != codeDigits {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// outgoing is a message rendered (so its id is known) but not yet queued.
type outgoing struct {
	channel string // "email" or "sms"
	id      string
	deliver func()
}

// mailTo renders an e-mail of kind to to.
func (s *Service) mailTo(kind, to string, d mail.Data) (outgoing, error) {
	d.To = to
	m, err := s.Mails.Render(kind, d)
	if err != nil {
		return outgoing{}, err
	}
	return outgoing{channel: "email", id: m.ID, deliver: func() {
		s.Queue.Submit("mail "+m.Kind, messageAttempts, func(ctx context.Context) error {
			return s.Mail.Send(ctx, m)
		})
	}}, nil
}

// textTo prepares a text message to the E.164 number to.
func (s *Service) textTo(to, body string) outgoing {
	m := &sms.Message{ID: id.New("sms"), To: to, Body: body}
	return outgoing{channel: "sms", id: m.ID, deliver: func() {
		s.Queue.Submit("sms", messageAttempts, func(ctx context.Context) error {
			return s.SMS.Send(ctx, m)
		})
	}}
}

// issue stores p (retiring older proofs of its kind) with its audit event,
// then queues out, which carries p's secrets. It runs in a background job.
func (s *Service) issue(ctx context.Context, o origin, p *proof, out outgoing) error {
	e := o.event(p.v.CreatedAt, audit.VerificationSent, p.v.UserID, p.v.SessionID)
	audit.With(e, "purpose", p.v.Purpose)
	audit.With(e, "channel", out.channel)
	audit.With(e, "message_id", out.id)
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

// notice sends u an e-mail that needs no answer, and records it.
func (s *Service) notice(ctx context.Context, o origin, kind, userID, to string, d mail.Data) error {
	out, err := s.mailTo(kind, to, d)
	if err != nil {
		return err
	}
	out.deliver()
	e := o.event(s.Sessions.Now(), audit.NoticeSent, userID, "")
	audit.With(e, "kind", kind)
	audit.With(e, "message_id", out.id)
	audit.Append(ctx, s.DB.Audit(), s.Log, e)
	return nil
}

// errInvalid is any proof that does not check out; callers answer with the
// one problem of their kind (invalid_token or invalid_code) whatever the
// reason, so a probe learns nothing about which reason it was.
var errInvalid = errors.New("verification: invalid proof")

// byLink returns the unused, unexpired verification of one of the purposes
// whose link secret is token.
func (s *Service) byLink(ctx context.Context, token string, purposes ...string) (*store.Verification, error) {
	secret, ok := id.ParseSecret(LinkPrefix, token)
	if !ok {
		return nil, errInvalid
	}
	v, err := s.DB.Verifications().VerificationByLinkHash(ctx, secret.Hash())
	if errors.Is(err, store.ErrNotFound) {
		return nil, errInvalid
	}
	if err != nil {
		return nil, fmt.Errorf("verification: lookup: %w", err)
	}
	if v.UsedAt != nil || !s.Sessions.Now().Before(v.ExpiresAt) {
		return nil, errInvalid
	}
	for _, p := range purposes {
		if v.Purpose == p {
			return v, nil
		}
	}
	return nil, errInvalid
}

// byCode returns the user's current verification of purpose if code is its
// code. Every attempt is counted against it (MaxCodeAttempts wrong ones
// kill it), and a wrong one is audited. userID "" (no such account) or no live code does the same
// hashing and writes the same audit event, so a wrong guess costs the same
// whether or not the account exists.
func (s *Service) byCode(ctx context.Context, o origin, userID, purpose, code string) (*store.Verification, error) {
	now := s.Sessions.Now()
	// The same statements run whether or not there is an account or a
	// live code (the lookup, the counting write and the audit write), so
	// their cost says little about which it was.
	v, err := s.DB.Verifications().CurrentVerification(ctx, userID, purpose)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("verification: lookup: %w", err)
	}
	if v == nil || !now.Before(v.ExpiresAt) || v.CodeHash == nil {
		if _, err := s.DB.Verifications().AttemptVerification(ctx, noVerification, MaxCodeAttempts+1, now); err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrConflict) {
			return nil, fmt.Errorf("verification: count attempt: %w", err)
		}
		s.codeHash(noVerification, code)
		s.auditFailure(ctx, o, now, userID, purpose, 0)
		return nil, errInvalid
	}
	// The attempt is counted before the comparison: of any number of
	// parallel guesses, only the first MaxCodeAttempts are compared, and
	// the one after them kills the code.
	n, err := s.DB.Verifications().AttemptVerification(ctx, v.ID, MaxCodeAttempts+1, now)
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		s.auditFailure(ctx, o, now, userID, purpose, 0)
		return nil, errInvalid
	}
	if err != nil {
		return nil, fmt.Errorf("verification: count attempt: %w", err)
	}
	if n <= MaxCodeAttempts && hmac.Equal(s.codeHash(v.ID, code), v.CodeHash) {
		return v, nil
	}
	s.auditFailure(ctx, o, now, userID, purpose, n)
	return nil, errInvalid
}

// noVerification is an id no verification has: the target of the stand-in
// statements when there is no live code.
const noVerification = "vfy_none"

// auditFailure records a wrong code; attempts is 0 when there was no live
// code to count it against.
func (s *Service) auditFailure(ctx context.Context, o origin, now time.Time, userID, purpose string, attempts int) {
	e := o.event(now, audit.VerificationFailed, userID, "")
	audit.With(e, "purpose", purpose)
	if attempts > 0 {
		audit.With(e, "attempts", fmt.Sprint(attempts))
	}
	audit.Append(ctx, s.DB.Audit(), s.Log, e)
}

// consume marks v used inside tx; a concurrent consumer that won makes it
// errInvalid.
func consume(ctx context.Context, tx store.Tx, v *store.Verification, now time.Time) error {
	err := tx.Verifications().ConsumeVerification(ctx, v.ID, now)
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		return errInvalid
	}
	return err
}

// emailKey is the normalized form of an address stored in a Target.
func emailKey(target string) string {
	e, err := account.ParseEmail(target)
	if err != nil {
		return ""
	}
	return e.Key
}

// requestEmail parses the "email" field of a request.
func requestEmail(s string) (account.Email, error) {
	if s == "" {
		return account.Email{}, problem.MissingField.WithDetail("Field \"email\" is required.").With("field", "email")
	}
	e, err := account.ParseEmail(s)
	if err != nil {
		return account.Email{}, problem.InvalidEmail
	}
	return e, nil
}

// requestPhone parses the "phone" field of a request.
func (s *Service) requestPhone(raw string) (string, error) {
	if s.SMS == nil {
		return "", problem.SMSUnavailable
	}
	if raw == "" {
		return "", problem.MissingField.WithDetail("Field \"phone\" is required.").With("field", "phone")
	}
	p, err := sms.Normalize(raw, s.cfg.PhoneRegion)
	if err != nil {
		return "", problem.InvalidPhone
	}
	return p, nil
}

// human renders a lifetime for a text message ("10 minutes").
func human(d time.Duration) string {
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		if d == time.Hour {
			return "1 hour"
		}
		return fmt.Sprintf("%d hours", d/time.Hour)
	case d == time.Minute:
		return "1 minute"
	default:
		return fmt.Sprintf("%d minutes", (d+time.Minute-1)/time.Minute)
	}
}
