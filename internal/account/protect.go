package account

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/audit"
	"github.com/gatehouse-auth/gatehouse/internal/httpx"
	"github.com/gatehouse-auth/gatehouse/internal/problem"
	"github.com/gatehouse-auth/gatehouse/internal/risk"
	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/throttle"
)

// Protection is the brute-force policy of password sign-in, built so that
// an attacker cannot lock the owner out:
//
//   - Per (account, IP) pair, a progressive delay: after a few attempts
//     each further one starts a wait, doubling to a cap, and attempts
//     during the wait are refused (Pair).
//   - Per account, attempts are counted whatever the address, separately
//     for unfamiliar and known devices (Account). Past ExtraProofAfter
//     attempts from unfamiliar devices, a password no longer signs in from
//     one: the answer is 403 extra_proof_required, the same whether the
//     password is right or wrong (it is not checked), so a stuffing
//     attacker learns nothing and spends no guesses. The owner signs in
//     from a known device (package device), or with an e-mailed code, a
//     magic link or a passkey — proofs the attacker lacks — and their
//     sessions keep working throughout.
//   - Known devices have the rest of NIST SP 800-63B-4's bound of 100
//     consecutive failures (MaxFailures − ExtraProofAfter), so an account
//     never sees more than MaxFailures password guesses per window.
//   - Attempts are counted before the password is checked (a parallel
//     burst cannot pass a check before the first failure is counted); a
//     completed sign-in of any kind, and a password reset, clears the
//     counts. Counts end Account.Window after the first attempt.
//
// Unknown addresses are counted exactly like accounts, so none of this
// tells whether an account exists.
type Protection struct {
	Pair            *throttle.Backoff
	Account         *throttle.Backoff
	ExtraProofAfter int64
	MaxFailures     int64
	// Failures hears every failed password sign-in (credential-stuffing
	// detection, package ipguard); may be nil.
	Failures FailureObserver
	// OnProtected, if set, counts accounts entering protection (a metric).
	OnProtected func()
}

// FailureObserver hears failed password sign-ins.
type FailureObserver interface {
	LoginFailed(ctx context.Context, ip netip.Addr, account string)
}

// pairKey names the (account, client address) pair.
func pairKey(emailKey string, ip netip.Addr) string { return emailKey + "|" + throttle.IPKey(ip) }

// Device classes of the per-account count.
const (
	unfamiliar = "|unfamiliar"
	familiar   = "|known"
)

// admit counts a password attempt on emailKey and decides whether it may
// be checked at all. u is the account, nil when none has the address.
func (h *Handler) admit(r *http.Request, emailKey string, u *store.User) error {
	ctx := r.Context()
	p := h.Protect
	class, limit := unfamiliar, p.ExtraProofAfter
	if u != nil && h.Devices.Known(r, u.ID, u.PasswordHash) {
		class, limit = familiar, p.MaxFailures-p.ExtraProofAfter
	}
	n, _ := p.Account.Reserve(ctx, emailKey+class)
	if n <= limit {
		// The pair's delay applies to attempts that will be checked.
		if _, wait := p.Pair.Reserve(ctx, pairKey(emailKey, httpx.ClientIP(r))); wait > 0 {
			return problem.RateLimited.WithRetryAfter(wait)
		}
		return nil
	}
	if n == limit+1 {
		// Once per window: the first refusal.
		if p.OnProtected != nil {
			p.OnProtected()
		}
		var userID string
		if u != nil {
			userID = u.ID
		}
		e := audit.With(audit.New(r, h.Sessions.Now(), audit.AccountProtected, userID, ""), "devices", class[1:])
		if u == nil {
			e = audit.With(e, "email", emailKey)
		}
		audit.Append(ctx, h.DB.Audit(), h.Log, e)
	}
	return problem.ExtraProofRequired
}

// SignInFailed reports a failed sign-in attempt on an account (a password,
// or a one-time code; already counted by its own limits) to the
// credential-stuffing detector, which bans an address failing across
// many accounts.
func (h *Handler) SignInFailed(r *http.Request, emailKey string) {
	if h.Protect.Failures != nil {
		h.Protect.Failures.LoginFailed(r.Context(), httpx.ClientIP(r), emailKey)
	}
}

// ClearFailures forgets the failed password sign-ins on emailKey — from
// every address — after its owner proved control (a completed sign-in, a
// password reset).
func (h *Handler) ClearFailures(ctx context.Context, emailKey string, ip netip.Addr) {
	h.Protect.Account.Reset(ctx, emailKey+unfamiliar, emailKey+familiar)
	h.Protect.Pair.Reset(ctx, pairKey(emailKey, ip))
}

// signedIn is the common end of every sign-in (password, code, link,
// passkey, second factor): the owner is in, so the account's attempt
// counts are cleared; a device that had not signed in to the account
// before, or a password sign-in from a new place, is told to its owner (unless st is quiet: a sign-up, a
// replacement session); and the device becomes known. It returns the
// device token for native apps to keep.
func (h *Handler) signedIn(w http.ResponseWriter, r *http.Request, u *store.User, st *Start) string {
	h.ClearFailures(r.Context(), u.EmailKey, httpx.ClientIP(r))
	moved, _ := r.Context().Value(newPlaceKey{}).(bool)
	if !st.quiet && (moved || !h.Devices.Known(r, u.ID, u.PasswordHash)) {
		h.Notify.NewDeviceSignIn(r, u, st.session.ID, st.session.Location)
	}
	return h.Devices.Remember(w, r, u.ID, u.PasswordHash)
}

// historySize is how many earlier sign-ins a sign-in is compared with,
// and historyAge how far back they are looked for.
const (
	historySize = 20
	historyAge  = 90 * 24 * time.Hour
)

// judge scores a password sign-in of u (the password was right) against
// the account's earlier sign-ins (their login.succeeded audit records:
// time, address, user agent; devices that signed in are known by their
// token). Above the allow band it is recorded; from the step-up band on,
// an account with a second factor goes on to its challenge (that is the
// step-up), and one without is refused with extra_proof_required — an
// e-mailed code, a link or a passkey signs in instead — and its owner is
// told that the password was used. A first sign-in (no sign-in in
// historyAge) is not scored.
//
// moved reports a sign-in allowed from a place away from the account's
// last one (50 km or more, or no longer placeable), which its owner is
// told of even from a known device.
func (h *Handler) judge(r *http.Request, u *store.User, mfa bool) (moved bool, err error) {
	if h.Risk == nil {
		return false, nil
	}
	ctx := r.Context()
	now := h.Sessions.Now()
	history, err := h.history(ctx, u.ID, now)
	if err != nil {
		h.Log.WarnContext(ctx, "account: risk history unavailable; not scored", slog.Any("error", err))
		return false, nil
	}
	if len(history) == 0 {
		return false, nil
	}
	device := ""
	if h.Devices.Known(r, u.ID, u.PasswordHash) {
		device = "known"
	}
	ip := ""
	if a := httpx.ClientIP(r); a.IsValid() {
		ip = a.String()
	}
	cur := h.Risk.Observe(now, ip, r.UserAgent(), device)
	a := h.Risk.AssessSignIn(history, cur)
	if h.OnRisk != nil {
		h.OnRisk(a.Decision.String())
	}
	if a.Decision == risk.Allow {
		return false, nil
	}
	e := audit.New(r, now, audit.RiskAssessed, u.ID, "")
	audit.With(e, "on", "sign_in")
	audit.With(e, "decision", a.Decision.String())
	audit.With(e, "score", strconv.Itoa(a.Score))
	audit.Append(ctx, h.DB.Audit(), h.Log, audit.With(e, "reasons", strings.Join(a.Reasons, " ")))
	if a.Decision >= risk.StepUp && !mfa {
		h.Notify.PasswordUsed(r, u, risk.Place(cur.Loc))
		return false, problem.ExtraProofRequired.WithDetail("This sign-in comes from an unusual place or device. Sign in with a code sent by e-mail, a sign-in link or a passkey.")
	}
	for _, reason := range a.Reasons {
		switch reason {
		case risk.ReasonDistance50km, risk.ReasonDistance100km, risk.ReasonLocationUnknown, risk.ReasonImpossibleTravel:
			return true, nil
		}
	}
	return false, nil
}

// newPlaceKey marks a request whose sign-in judge found away from the
// account's last place.
type newPlaceKey struct{}

// history is the account's last historySize sign-ins within historyAge,
// read by type, so that other events (which anyone can cause, such as
// failed codes) cannot push them out of view.
func (h *Handler) history(ctx context.Context, userID string, now time.Time) ([]risk.Observation, error) {
	var out []risk.Observation
	f := store.EventFilter{UserID: userID, Type: audit.LoginSucceeded, Since: now.Add(-historyAge), Limit: 200}
	for range 10 { // at most 2,000 sign-ins in historyAge are read
		page, err := h.DB.Audit().QueryEvents(ctx, f)
		if err != nil {
			return nil, err
		}
		for _, e := range page {
			out = append(out, h.Risk.Observe(e.At, e.IP, e.UserAgent, "known"))
		}
		if len(out) > historySize {
			out = out[len(out)-historySize:]
		}
		if len(page) < f.Limit {
			break
		}
		f.After = page[len(page)-1].ID
	}
	return out, nil
}

// Devices recognises known devices (package device).
type Devices interface {
	// Known and Remember take the account's epoch: its password hash, so
	// that a new password forgets the devices.
	Known(r *http.Request, userID, epoch string) bool
	Remember(w http.ResponseWriter, r *http.Request, userID, epoch string) string
}
