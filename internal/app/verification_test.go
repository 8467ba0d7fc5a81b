package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/config"
	"github.com/gatehouse-auth/gatehouse/internal/mail/mailtest"
	"github.com/gatehouse-auth/gatehouse/internal/verification"
)

// End-to-end tests of e-mail verification, password reset (recovery),
// enumeration-safe sign-up and the change of e-mail address, against a real
// server and a real SMTP server. Every helper here starts with "vf".

// Subjects of the e-mails (mail/templates/*.txt), enough to tell them
// apart; matched case-insensitively.
const (
	vfSubjVerify    = "Confirm your e-mail address"     // verify_email
	vfSubjRecovery  = "Reset your"                      // recovery
	vfSubjPwChanged = "password was changed"            // password_changed
	vfSubjChange    = "Confirm your new e-mail address" // change_email (to the new address)
	vfSubjChanged   = "e-mail address was changed"      // email_changed (to the old address)
	vfSubjExists    = "already have"                    // account_exists
	vfSubjMagic     = "Sign in to"                      // magic_link
	vfSubjOTP       = "sign-in code"                    // email_otp
)

// Passwords that pass the policy, other than goodPassword.
const (
	vfNewPassword   = "an entirely fresh reset passphrase"
	vfOtherPassword = "yet another brand new passphrase"
)

// vfMailKey names one stream of e-mails: one harness, one recipient, one
// kind (by subject).
type vfMailKey struct {
	h           *harness
	to, subject string
}

var (
	vfTakenMu sync.Mutex
	vfTaken   = map[vfMailKey]int{}
	vfLinkRE  = regexp.MustCompile(`https?://\S+#token=ghl_[A-Za-z0-9_-]+`)
)

// vfMails are the e-mails to `to` whose subject contains subject, in the
// order the SMTP server accepted them.
func vfMails(h *harness, to, subject string) []mailtest.Received {
	var out []mailtest.Received
	for _, m := range h.smtp.Messages() {
		if !strings.Contains(strings.ToLower(m.Subject), strings.ToLower(subject)) {
			continue
		}
		for _, rcpt := range m.To {
			if strings.EqualFold(rcpt, to) {
				out = append(out, m)
				break
			}
		}
	}
	return out
}

// vfNext waits for the next e-mail of a kind to an address that the test
// has not taken yet.
func vfNext(t testing.TB, h *harness, to, subject string) mailtest.Received {
	t.Helper()
	k := vfMailKey{h, strings.ToLower(to), subject}
	vfTakenMu.Lock()
	n := vfTaken[k]
	vfTaken[k] = n + 1
	vfTakenMu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ms := vfMails(h, to, subject); len(ms) > n {
			return ms[n]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no e-mail #%d %q to %s within 10s", n+1, subject, to)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// vfSettle gives background jobs queued before it a moment to finish, so
// that an absent e-mail is really absent rather than late.
func vfSettle() { time.Sleep(200 * time.Millisecond) }

// vfLink is the absolute link, secret included, in an e-mail's text body.
func vfLink(t testing.TB, m mailtest.Received) string {
	t.Helper()
	l := vfLinkRE.FindString(m.Text)
	if l == "" {
		t.Fatalf("no link in e-mail %q:\n%s", m.Subject, m.Text)
	}
	return l
}

// vfPost sends a JSON POST from a fresh, anonymous browser.
func vfPost(h *harness, path string, body any) *response {
	h.t.Helper()
	return h.client().do("POST", path, body)
}

// vfWant fails the test unless r has the status and (if code is not "")
// the problem code.
func vfWant(t testing.TB, r *response, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d %s: %s", r.status, status, code, r.body)
	}
	if code != "" {
		if got := r.code(t); got != code {
			t.Fatalf("problem code %q, want %q: %s", got, code, r.body)
		}
	}
}

// vfAccepted checks the one answer of requests that name an address.
func vfAccepted(t testing.TB, r *response) {
	t.Helper()
	vfWant(t, r, http.StatusAccepted, "")
	if s := r.json(t)["status"]; s != "accepted" {
		t.Fatalf("202 with status %v: %s", s, r.body)
	}
}

// vfUser is the caller's user as GET /v1/me shows it.
func vfUser(t testing.TB, c *client) map[string]any {
	t.Helper()
	r := c.do("GET", "/v1/me", nil)
	mustStatus(t, r, http.StatusOK)
	return r.json(t)["user"].(map[string]any)
}

// vfVerified reports email_verified of the account whose access token
// this is: a bearer request reads the user from the store, never from a
// cached copy.
func vfVerified(t testing.TB, h *harness, access string) bool {
	t.Helper()
	r := h.raw("GET", "/v1/me", "", "", bearer(access))
	mustStatus(t, r, http.StatusOK)
	return r.json(t)["user"].(map[string]any)["email_verified"] == true
}

// vfVaryingHeaders differ between any two responses.
// RateLimit's values count the caller's earlier requests (per IP, per
// address, counted before any lookup), which differ between the two
// requests compared; its presence and RateLimit-Policy are still compared.
var vfVaryingHeaders = []string{"Date", "X-Request-Id", "Ratelimit"}

// vfSameAnswer fails unless a and b are indistinguishable: status, body,
// and header names and values except vfVaryingHeaders (and skip).
func vfSameAnswer(t testing.TB, what string, a, b *response, skip ...string) {
	t.Helper()
	if a.status != b.status {
		t.Errorf("%s: status %d vs %d", what, a.status, b.status)
	}
	if string(a.body) != string(b.body) {
		t.Errorf("%s: bodies differ:\n%s\n%s", what, a.body, b.body)
	}
	ignore := append(slices.Clone(vfVaryingHeaders), skip...)
	names := func(h http.Header) []string {
		var out []string
		for k := range h {
			if !slices.Contains(skip, k) {
				out = append(out, k)
			}
		}
		sort.Strings(out)
		return out
	}
	na, nb := names(a.header), names(b.header)
	if !slices.Equal(na, nb) {
		t.Errorf("%s: header names differ:\n%v\n%v", what, na, nb)
		return
	}
	for _, k := range slices.DeleteFunc(na, func(k string) bool { return slices.Contains(ignore, k) }) {
		if !slices.Equal(a.header[k], b.header[k]) {
			t.Errorf("%s: header %s differs: %q vs %q", what, k, a.header[k], b.header[k])
		}
	}
}

// vfStripRequestID is a problem body without its request_id.
func vfStripRequestID(t testing.TB, r *response) string {
	t.Helper()
	m := r.json(t)
	delete(m, "request_id")
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// vfRequestReset asks for a reset link for email and returns its token.
func vfRequestReset(t testing.TB, h *harness, email string) string {
	t.Helper()
	vfAccepted(t, vfPost(h, "/v1/recovery", map[string]string{"email": email}))
	return linkToken(t, vfNext(t, h, email, vfSubjRecovery))
}

// vfCompleteReset posts a reset.
func vfCompleteReset(h *harness, token, pw string) *response {
	h.t.Helper()
	return vfPost(h, "/v1/recovery/complete", map[string]string{"token": token, "new_password": pw})
}

// --- 1. E-mail verification -------------------------------------------

func TestVerificationEmailLinkAndCode(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)

		// The link: sign-up sends it with a code; it verifies once.
		ada := h.client()
		r := ada.signup("ada@example.com", goodPassword)
		mustStatus(t, r, http.StatusCreated)
		if u := r.json(t)["user"].(map[string]any); u["email_verified"] != false {
			t.Fatalf("verified at sign-up: %v", u)
		}
		m := vfNext(t, h, "ada@example.com", vfSubjVerify)
		if l := vfLink(t, m); !strings.HasPrefix(l, h.cfg.PublicURL+"/ui/verify-email#token=ghl_") {
			t.Errorf("verification link %q", l)
		}
		if c := mailCode(t, m); len(c) != 6 {
			t.Errorf("code %q", c)
		}
		tok := linkToken(t, m)
		r = vfPost(h, "/v1/verify-email", map[string]string{"token": tok})
		mustStatus(t, r, http.StatusOK)
		if b := r.json(t); b["email_verified"] != true || b["email"] != "ada@example.com" {
			t.Errorf("verify answer %s", r.body)
		}
		// (The session's first request: read from the store, not from a
		// cached copy; see TestVerificationVisibleToSignedInSession.)
		if u := vfUser(t, ada); u["email_verified"] != true {
			t.Fatalf("/v1/me after verification: %v", u)
		}
		vfWant(t, vfPost(h, "/v1/verify-email", map[string]string{"token": tok}), http.StatusBadRequest, "invalid_token")
		// The code of a used verification is spent with it.
		vfWant(t, vfPost(h, "/v1/verify-email", map[string]string{"email": "ada@example.com", "code": mailCode(t, m)}), http.StatusUnauthorized, "invalid_code")

		// The code, on another account.
		bob := h.tokenUser("bob@example.com", "native").access
		mb := vfNext(t, h, "bob@example.com", vfSubjVerify)
		r = vfPost(h, "/v1/verify-email", map[string]string{"email": "bob@example.com", "code": mailCode(t, mb)})
		mustStatus(t, r, http.StatusOK)
		if !vfVerified(t, h, bob) {
			t.Fatal("the code did not verify the address")
		}
		vfWant(t, vfPost(h, "/v1/verify-email", map[string]string{"email": "bob@example.com", "code": mailCode(t, mb)}), http.StatusUnauthorized, "invalid_code")
		vfWant(t, vfPost(h, "/v1/verify-email", map[string]string{"token": linkToken(t, mb)}), http.StatusBadRequest, "invalid_token")

		// A resend retires the older link and code.
		cy := h.tokenUser("cy@example.com", "native").access
		m1 := vfNext(t, h, "cy@example.com", vfSubjVerify)
		vfAccepted(t, vfPost(h, "/v1/verify-email/resend", map[string]string{"email": "cy@example.com"}))
		m2 := vfNext(t, h, "cy@example.com", vfSubjVerify)
		if linkToken(t, m1) == linkToken(t, m2) {
			t.Fatal("the resend carries the same link")
		}
		vfWant(t, vfPost(h, "/v1/verify-email", map[string]string{"token": linkToken(t, m1)}), http.StatusBadRequest, "invalid_token")
		if mailCode(t, m1) != mailCode(t, m2) { // equal with probability 1e-6
			vfWant(t, vfPost(h, "/v1/verify-email", map[string]string{"email": "cy@example.com", "code": mailCode(t, m1)}), http.StatusUnauthorized, "invalid_code")
		}
		if vfVerified(t, h, cy) {
			t.Fatal("retired proofs verified the address")
		}
		mustStatus(t, vfPost(h, "/v1/verify-email", map[string]string{"token": linkToken(t, m2)}), http.StatusOK)
		if !vfVerified(t, h, cy) {
			t.Fatal("the new link did not verify")
		}

		// A code of one account, presented with another account's address.
		dee := h.tokenUser("dee@example.com", "native").access
		eve := h.tokenUser("eve@example.com", "native").access
		md := vfNext(t, h, "dee@example.com", vfSubjVerify)
		me := vfNext(t, h, "eve@example.com", vfSubjVerify)
		if mailCode(t, md) != mailCode(t, me) {
			vfWant(t, vfPost(h, "/v1/verify-email", map[string]string{"email": "eve@example.com", "code": mailCode(t, md)}), http.StatusUnauthorized, "invalid_code")
		}
		if vfVerified(t, h, eve) || vfVerified(t, h, dee) {
			t.Fatal("a code of another account verified an address")
		}
		mustStatus(t, vfPost(h, "/v1/verify-email", map[string]string{"email": "dee@example.com", "code": mailCode(t, md)}), http.StatusOK)
		mustStatus(t, vfPost(h, "/v1/verify-email", map[string]string{"email": "eve@example.com", "code": mailCode(t, me)}), http.StatusOK)

		// Expiry (last: it moves the clock a day on).
		fay := h.tokenUser("fay@example.com", "native").access
		if vfVerified(t, h, fay) {
			t.Fatal("verified at sign-up")
		}
		mf := vfNext(t, h, "fay@example.com", vfSubjVerify)
		h.clock.Advance(h.cfg.VerifyEmailTTL + time.Second)
		vfWant(t, vfPost(h, "/v1/verify-email", map[string]string{"token": linkToken(t, mf)}), http.StatusBadRequest, "invalid_token")
		vfWant(t, vfPost(h, "/v1/verify-email", map[string]string{"email": "fay@example.com", "code": mailCode(t, mf)}), http.StatusUnauthorized, "invalid_code")
		c := h.client()
		mustStatus(t, c.login("fay@example.com", goodPassword), http.StatusOK)
		if u := vfUser(t, c); u["email_verified"] != false {
			t.Fatalf("an expired link verified: %v", u)
		}
	})
}

// A signed-in browser sees its own account's changes at once: GET /v1/me
// right after the address is verified, or changed, shows it.
func TestVerificationVisibleToSignedInSession(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		c := h.newUser("seen@example.com")
		if u := vfUser(t, c); u["email_verified"] != false {
			t.Fatalf("verified at sign-up: %v", u)
		}
		mustStatus(t, vfPost(h, "/v1/verify-email", map[string]string{"token": linkToken(t, vfNext(t, h, "seen@example.com", vfSubjVerify))}), http.StatusOK)
		if u := vfUser(t, c); u["email_verified"] != true {
			t.Errorf("GET /v1/me right after verification: email_verified = %v (a stale cached copy of the user)", u["email_verified"])
		}

		d := h.newUser("move@example.com")
		if u := vfUser(t, d); u["email"] != "move@example.com" {
			t.Fatalf("/v1/me %v", u)
		}
		vfAccepted(t, d.do("POST", "/v1/email", map[string]string{"new_email": "moved@example.com", "current_password": goodPassword}))
		mustStatus(t, vfPost(h, "/v1/verify-email", map[string]string{"token": linkToken(t, vfNext(t, h, "moved@example.com", vfSubjChange))}), http.StatusOK)
		if u := vfUser(t, d); u["email"] != "moved@example.com" || u["email_verified"] != true {
			t.Errorf("GET /v1/me of the requesting session right after the change: email %v, email_verified %v (a stale cached copy of the user)", u["email"], u["email_verified"])
		}
		// What the session acts on is current too: a resend of the
		// verification (the address is verified now) mails nobody, and
		// above all not the previous address.
		vfNext(t, h, "move@example.com", vfSubjChanged)
		vfAccepted(t, d.do("POST", "/v1/verify-email/resend", map[string]string{}))
		vfSettle()
		if n := len(vfMails(h, "move@example.com", vfSubjVerify)); n != 1 {
			t.Errorf("the previous address got %d verification e-mails after the change, want 1 (the sign-up's)", n)
		}
		if n := len(vfMails(h, "moved@example.com", vfSubjVerify)); n != 0 {
			t.Errorf("the verified new address got %d verification e-mails", n)
		}
	})
}

// The same across replicas: a verification on replica A reaches the cached
// copy of a session on replica B (PostgreSQL and Redis only).
func TestVerificationReachesOtherReplica(t *testing.T) {
	a := newHarness(t, "postgres+redis", func(c *config.Config) { c.SessionCacheTTL = time.Hour })
	b := startHarness(t, a.cfg) // same database, Redis prefix, keys and SMTP server
	a.newUser("replica@example.com")
	phone := b.client()
	mustStatus(t, phone.login("replica@example.com", goodPassword), http.StatusOK)
	if u := vfUser(t, phone); u["email_verified"] != false { // warms B's cache
		t.Fatalf("verified at sign-up: %v", u)
	}
	mustStatus(t, vfPost(a, "/v1/verify-email", map[string]string{"token": linkToken(t, vfNext(t, a, "replica@example.com", vfSubjVerify))}), http.StatusOK)
	deadline := time.Now().Add(2 * time.Second)
	for vfUser(t, phone)["email_verified"] != true {
		if time.Now().After(deadline) {
			t.Fatal("replica B still shows the address unverified after it was verified on replica A")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Wrong codes kill a code: after MaxCodeAttempts (5) failures, the right
// code no longer works.
func TestAttackVerifyCodeGuessingKillsCode(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		guess := h.tokenUser("guess@example.com", "native").access
		m := vfNext(t, h, "guess@example.com", vfSubjVerify)
		code := mailCode(t, m)
		n, _ := strconv.Atoi(code)
		for i := range 5 {
			wrong := fmt.Sprintf("%06d", (n+1+i)%1_000_000)
			vfWant(t, vfPost(h, "/v1/verify-email", map[string]string{"email": "guess@example.com", "code": wrong}), http.StatusUnauthorized, "invalid_code")
		}
		vfWant(t, vfPost(h, "/v1/verify-email", map[string]string{"email": "guess@example.com", "code": code}), http.StatusUnauthorized, "invalid_code")
		if vfVerified(t, h, guess) {
			t.Fatal("a killed code verified")
		}
		// The link of the same verification died with the code.
		vfWant(t, vfPost(h, "/v1/verify-email", map[string]string{"token": linkToken(t, m)}), http.StatusBadRequest, "invalid_token")
		// Malformed codes are refused without a lookup, the same way.
		for _, bad := range []string{"12345", "1234567", "12a456", " 123456"} {
			vfWant(t, vfPost(h, "/v1/verify-email", map[string]string{"email": "guess@example.com", "code": bad}), http.StatusUnauthorized, "invalid_code")
		}
	})
}

// --- 2. Password reset ---------------------------------------------------

func TestRecoveryFlow(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		rita := h.newUser("rita@example.com")
		// Asked for in another spelling, the link goes to the address on
		// record, never to the address as typed.
		vfAccepted(t, vfPost(h, "/v1/recovery", map[string]string{"email": "RITA@Example.COM"}))
		m := vfNext(t, h, "rita@example.com", vfSubjRecovery)
		if !slices.Equal(m.To, []string{"rita@example.com"}) {
			t.Errorf("reset e-mail sent to %v, want the address on record", m.To)
		}
		if l := vfLink(t, m); !strings.HasPrefix(l, h.cfg.PublicURL+"/ui/reset-password#token=ghl_") {
			t.Errorf("reset link %q", l)
		}
		r := vfCompleteReset(h, linkToken(t, m), vfNewPassword)
		mustStatus(t, r, http.StatusOK)
		if n := r.json(t)["revoked_sessions"]; n != float64(1) {
			t.Errorf("revoked_sessions = %v, want 1 (the sign-up session)", n)
		}
		if r.header.Get("Set-Cookie") != "" {
			t.Errorf("a reset signed someone in: Set-Cookie %q", r.header.Get("Set-Cookie"))
		}
		vfWant(t, rita.do("GET", "/v1/me", nil), http.StatusUnauthorized, "")
		vfWant(t, h.client().login("rita@example.com", goodPassword), http.StatusUnauthorized, "invalid_credentials")
		fresh := h.client()
		mustStatus(t, fresh.login("rita@example.com", vfNewPassword), http.StatusOK)
		// Following the link proved control of the address.
		if u := vfUser(t, fresh); u["email_verified"] != true {
			t.Errorf("after a reset through the address, email_verified = %v", u["email_verified"])
		}
		notice := vfNext(t, h, "rita@example.com", vfSubjPwChanged)
		if strings.Contains(notice.Text, "#token=") || !strings.Contains(notice.Text, h.cfg.PublicURL+"/ui/recovery") {
			t.Errorf("password-changed notice:\n%s", notice.Text)
		}
	})
}

// A reset gives the owner the account back at once: failed guesses by
// others no longer lock the sign-in.
func TestRecoveryLiftsSignInLockout(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, func(c *config.Config) { c.LoginFailuresPerAccount = 3 })
		h.newUser("locked@example.com")
		for range 3 {
			vfWant(t, h.client().login("locked@example.com", "an attacker's guess at it"), http.StatusUnauthorized, "invalid_credentials")
		}
		vfWant(t, h.client().login("locked@example.com", goodPassword), http.StatusForbidden, "extra_proof_required")
		mustStatus(t, vfCompleteReset(h, vfRequestReset(t, h, "locked@example.com"), vfNewPassword), http.StatusOK)
		mustStatus(t, h.client().login("locked@example.com", vfNewPassword), http.StatusOK)
	})
}

func TestAttackResetTokenReused(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		h.newUser("reuse@example.com")
		tok := vfRequestReset(t, h, "reuse@example.com")
		mustStatus(t, vfCompleteReset(h, tok, vfNewPassword), http.StatusOK)
		vfWant(t, vfCompleteReset(h, tok, vfOtherPassword), http.StatusBadRequest, "invalid_token")
		vfWant(t, h.client().login("reuse@example.com", vfOtherPassword), http.StatusUnauthorized, "invalid_credentials")
		mustStatus(t, h.client().login("reuse@example.com", vfNewPassword), http.StatusOK)
	})
}

func TestAttackResetTokenExpired(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		h.newUser("late@example.com")
		tok := vfRequestReset(t, h, "late@example.com")
		h.clock.Advance(h.cfg.RecoveryTTL + time.Second)
		vfWant(t, vfCompleteReset(h, tok, vfNewPassword), http.StatusBadRequest, "invalid_token")
		mustStatus(t, h.client().login("late@example.com", goodPassword), http.StatusOK)
	})
}

func TestAttackResetTokenSupersededByNewer(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		h.newUser("twice@example.com")
		first := vfRequestReset(t, h, "twice@example.com")
		second := vfRequestReset(t, h, "twice@example.com")
		if first == second {
			t.Fatal("two requests got the same link")
		}
		vfWant(t, vfCompleteReset(h, first, vfNewPassword), http.StatusBadRequest, "invalid_token")
		mustStatus(t, vfCompleteReset(h, second, vfOtherPassword), http.StatusOK)
		mustStatus(t, h.client().login("twice@example.com", vfOtherPassword), http.StatusOK)
	})
}

func TestAttackResetTokenAfterPasswordChange(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		c := h.newUser("change@example.com")
		tok := vfRequestReset(t, h, "change@example.com")
		// The owner changes the password while signed in: a reset link
		// that someone else may hold dies.
		mustStatus(t, c.do("POST", "/v1/password", map[string]string{"current_password": goodPassword, "new_password": vfOtherPassword}), http.StatusOK)
		vfNext(t, h, "change@example.com", vfSubjPwChanged)
		vfWant(t, vfCompleteReset(h, tok, vfNewPassword), http.StatusBadRequest, "invalid_token")
		vfWant(t, h.client().login("change@example.com", vfNewPassword), http.StatusUnauthorized, "invalid_credentials")
		mustStatus(t, h.client().login("change@example.com", vfOtherPassword), http.StatusOK)
		mustStatus(t, c.do("GET", "/v1/me", nil), http.StatusOK)
	})
}

func TestAttackResetTokenOfOtherAccount(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		h.newUser("amy@example.com")
		ben := h.tokenUser("ben@example.com", "native").access
		tokA := vfRequestReset(t, h, "amy@example.com")
		mustStatus(t, vfCompleteReset(h, tokA, vfNewPassword), http.StatusOK)
		mustStatus(t, h.client().login("amy@example.com", vfNewPassword), http.StatusOK)
		// Ben's password, and his sessions, are untouched.
		mustStatus(t, h.client().login("ben@example.com", goodPassword), http.StatusOK)
		if vfVerified(t, h, ben) {
			t.Fatal("Amy's reset verified Ben's address")
		}

		// Purposes do not cross: Ben's verification link does not reset
		// his password, nor does his reset link verify his address (and
		// neither attempt spends the link).
		verifyB := linkToken(t, vfNext(t, h, "ben@example.com", vfSubjVerify))
		resetB := vfRequestReset(t, h, "ben@example.com")
		vfWant(t, vfCompleteReset(h, verifyB, vfOtherPassword), http.StatusBadRequest, "invalid_token")
		vfWant(t, vfPost(h, "/v1/verify-email", map[string]string{"token": resetB}), http.StatusBadRequest, "invalid_token")
		if vfVerified(t, h, ben) {
			t.Fatal("a reset link verified the address through /v1/verify-email")
		}
		mustStatus(t, h.raw("GET", "/v1/me", "", "", bearer(ben)), http.StatusOK) // no password changed
		mustStatus(t, vfPost(h, "/v1/verify-email", map[string]string{"token": verifyB}), http.StatusOK)
		mustStatus(t, vfCompleteReset(h, resetB, vfOtherPassword), http.StatusOK)
		mustStatus(t, h.client().login("ben@example.com", vfOtherPassword), http.StatusOK)
	})
}

// Several browsers racing with one reset link: exactly one sets its
// password.
func TestAttackResetTokenConcurrentUse(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		h.newUser("race@example.com")
		tok := vfRequestReset(t, h, "race@example.com")
		const n = 4
		statuses := make([]*response, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				statuses[i] = vfCompleteReset(h, tok, fmt.Sprintf("%s number %d", vfNewPassword, i))
			})
		}
		wg.Wait()
		winner := -1
		for i, r := range statuses {
			switch r.status {
			case http.StatusOK:
				if winner >= 0 {
					t.Fatalf("two resets with one link succeeded: %d and %d", winner, i)
				}
				winner = i
			default:
				vfWant(t, r, http.StatusBadRequest, "invalid_token")
			}
		}
		if winner < 0 {
			t.Fatal("no reset succeeded")
		}
		for i := range n {
			want := http.StatusUnauthorized
			if i == winner {
				want = http.StatusOK
			}
			mustStatus(t, h.client().login("race@example.com", fmt.Sprintf("%s number %d", vfNewPassword, i)), want)
		}
	})
}

// vfForged sends a request whose Host and forwarding headers name an
// attacker's site, from a client address it also tries to forge.
func vfForged(t testing.TB, h *harness, path string, body any) *response {
	t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest("POST", h.ts.URL+path, strings.NewReader(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "evil.example"
	for k, v := range map[string]string{
		"Content-Type":       "application/json",
		"User-Agent":         uaFirefox,
		"X-Forwarded-Host":   "evil.example",
		"X-Forwarded-Proto":  "https",
		"X-Forwarded-Port":   "443",
		"X-Forwarded-Server": "evil.example",
		"X-Forwarded-For":    "6.6.6.6",
		"X-Real-IP":          "6.6.6.6",
		"X-Original-Host":    "evil.example",
		"X-Host":             "evil.example",
		"Forwarded":          "for=6.6.6.6;host=evil.example;proto=https",
	} {
		req.Header.Set(k, v)
	}
	res, err := h.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return &response{status: res.StatusCode, header: res.Header, body: b}
}

func TestAttackResetLinkIgnoresForgedHost(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		h.newUser("host@example.com")
		vfAccepted(t, vfForged(t, h, "/v1/recovery", map[string]string{"email": "host@example.com"}))
		m := vfNext(t, h, "host@example.com", vfSubjRecovery)
		if l := vfLink(t, m); !strings.HasPrefix(l, h.cfg.PublicURL+"/") {
			t.Errorf("reset link %q does not start with the public URL %q", l, h.cfg.PublicURL)
		}
		for part, s := range map[string]string{"text": m.Text, "html": m.HTML, "subject": m.Subject} {
			if strings.Contains(s, "evil") || strings.Contains(s, "6.6.6.6") {
				t.Errorf("the %s of the reset e-mail carries a forged header:\n%s", part, s)
			}
		}
		// The notice of the reset, also built for a forged request.
		mustStatus(t, vfForged(t, h, "/v1/recovery/complete", map[string]string{"token": linkToken(t, m), "new_password": vfNewPassword}), http.StatusOK)
		n := vfNext(t, h, "host@example.com", vfSubjPwChanged)
		if strings.Contains(n.Text, "evil") || strings.Contains(n.HTML, "evil") || strings.Contains(n.Text, "6.6.6.6") {
			t.Errorf("the password-changed notice carries a forged header:\n%s", n.Text)
		}
		if !strings.Contains(n.Text, h.cfg.PublicURL+"/ui/recovery") {
			t.Errorf("the notice's recovery link is not on the public URL:\n%s", n.Text)
		}
	})
}

func TestAttackWeakPasswordDoesNotSpendResetLink(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		h.newUser("weak@example.com")
		tok := vfRequestReset(t, h, "weak@example.com")
		vfWant(t, vfCompleteReset(h, tok, "password"), http.StatusBadRequest, "weak_password")
		vfWant(t, vfCompleteReset(h, tok, "weak@example.com"), http.StatusBadRequest, "weak_password")
		mustStatus(t, h.client().login("weak@example.com", goodPassword), http.StatusOK)
		mustStatus(t, vfCompleteReset(h, tok, vfNewPassword), http.StatusOK)
		mustStatus(t, h.client().login("weak@example.com", vfNewPassword), http.StatusOK)
	})
}

func TestAttackResetKillsEverySession(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		const email = "kim@example.com"
		native := h.tokenUser(email, "native")
		rb := h.raw("POST", "/v1/login", "application/json", jsonBody(map[string]string{"email": email, "password": goodPassword, "mode": "token"}), nil)
		mustStatus(t, rb, http.StatusOK)
		browser := tokensOf(t, rb, refreshCookie)
		if browser.cookie == nil {
			t.Fatalf("token-mode browser sign-in without a refresh cookie: %s", rb.body)
		}
		cookie := h.client()
		mustStatus(t, cookie.login(email, goodPassword), http.StatusOK)
		mustStatus(t, cookie.do("GET", "/v1/me", nil), http.StatusOK)
		mustStatus(t, h.raw("GET", "/v1/me", "", "", bearer(native.access)), http.StatusOK)
		mustStatus(t, h.raw("GET", "/v1/me", "", "", bearer(browser.access)), http.StatusOK)

		r := vfCompleteReset(h, vfRequestReset(t, h, email), vfNewPassword)
		mustStatus(t, r, http.StatusOK)
		if n := r.json(t)["revoked_sessions"]; n != float64(3) {
			t.Errorf("revoked_sessions = %v, want 3", n)
		}
		vfWant(t, cookie.do("GET", "/v1/me", nil), http.StatusUnauthorized, "")
		// Unexpired access tokens die at once (revocation), not at expiry.
		vfWant(t, h.raw("GET", "/v1/me", "", "", bearer(native.access)), http.StatusUnauthorized, "")
		vfWant(t, h.raw("GET", "/v1/me", "", "", bearer(browser.access)), http.StatusUnauthorized, "")
		vfWant(t, h.refreshNative(native.refresh, uaCurl), http.StatusUnauthorized, "invalid_grant")
		vfWant(t, h.raw("POST", "/v1/token/refresh", "", "", nil, browser.cookie), http.StatusUnauthorized, "invalid_grant")
	})
}

// --- 3. Enumeration ------------------------------------------------------

func TestAttackRecoveryDoesNotRevealAccounts(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		const known, unknown = "known@example.com", "ghost@example.com"
		h.newUser(known) // unverified: a resend sends mail
		vfNext(t, h, known, vfSubjVerify)
		for _, tc := range []struct{ path, subject string }{
			{"/v1/recovery", vfSubjRecovery},
			{"/v1/magic-link", vfSubjMagic},
			{"/v1/otp/email", vfSubjOTP},
			{"/v1/verify-email/resend", vfSubjVerify},
		} {
			ru := vfPost(h, tc.path, map[string]string{"email": unknown})
			rk := vfPost(h, tc.path, map[string]string{"email": known})
			vfAccepted(t, rk)
			vfSameAnswer(t, tc.path, rk, ru)
			vfNext(t, h, known, tc.subject)
		}
		vfSettle()
		if n := h.mailCount(unknown); n != 0 {
			t.Errorf("%d e-mails to an address without an account", n)
		}

		// A wrong code is wrong the same way for an address with a
		// pending verification and for one without an account.
		code := mailCode(t, vfMails(h, known, vfSubjVerify)[1]) // the resend's
		wrong := "000000"
		if code == wrong {
			wrong = "000001"
		}
		rk := vfPost(h, "/v1/verify-email", map[string]string{"email": known, "code": wrong})
		ru := vfPost(h, "/v1/verify-email", map[string]string{"email": unknown, "code": wrong})
		vfWant(t, rk, http.StatusUnauthorized, "invalid_code")
		if a, b := vfStripRequestID(t, rk), vfStripRequestID(t, ru); a != b {
			t.Errorf("wrong code, known vs unknown address:\n%s\n%s", a, b)
		}
		vfSameAnswer(t, "wrong code, headers", &response{status: rk.status, header: rk.header}, &response{status: ru.status, header: ru.header}, "Content-Length")
	})
}

// vfQuantiles returns the median and the 90th percentile.
func vfQuantiles(ds []time.Duration) (p25, median, p75 time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/4], s[len(s)/2], s[len(s)*3/4]
}

// The request path does the same work whether or not the address has an
// account: the lookup happens in the background. Sequential, SQLite only.
//
// The durations compared are the server's own (the access log's, from the
// request's arrival to the handler's return): the client here shares the
// process and its two CPUs with the server, so on a loaded machine the
// background job of a real account, which starts once the answer is
// flushed, slows the in-process client's read — a remote client would
// already have its answer. The client-side figures are logged too.
func TestRecoveryTimingOverlaps(t *testing.T) {
	h := newHarness(t, "sqlite", func(c *config.Config) {
		c.MessagesPerAddress = 1000
		c.MessagesPerIP = 1000
	})
	const known, unknown = "timed@example.com", "nobody@example.com"
	h.newUser(known)
	for i := range 6 { // warm-up
		vfPost(h, "/v1/recovery", map[string]string{"email": []string{known, unknown}[i%2]})
	}
	for range 4 { // the sign-up's verification and the warm-up's resets
		h.nextMail(known)
	}
	var ck, cu []time.Duration
	ids := map[string]bool{} // request id → known address
	for i := range 60 {
		addr := known
		if i%2 == 1 {
			addr = unknown
		}
		start := time.Now()
		r := vfPost(h, "/v1/recovery", map[string]string{"email": addr})
		d := time.Since(start)
		vfAccepted(t, r)
		ids[r.header.Get("X-Request-Id")] = addr == known
		if addr == known {
			ck = append(ck, d)
			// Let the background job finish before the next request.
			h.nextMail(known)
		} else {
			cu = append(cu, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
	var dk, du []time.Duration
	for _, line := range strings.Split(h.logs.String(), "\n") {
		var e struct {
			Msg       string `json:"msg"`
			RequestID string `json:"request_id"`
			Duration  int64  `json:"duration"`
		}
		if json.Unmarshal([]byte(line), &e) != nil || e.Msg != "request" {
			continue
		}
		isKnown, ok := ids[e.RequestID]
		switch {
		case !ok:
		case isKnown:
			dk = append(dk, time.Duration(e.Duration))
		default:
			du = append(du, time.Duration(e.Duration))
		}
	}
	if len(dk) != 30 || len(du) != 30 {
		t.Fatalf("found %d and %d access-log durations, want 30 each", len(dk), len(du))
	}
	_, cmk, _ := vfQuantiles(ck)
	_, cmu, _ := vfQuantiles(cu)
	lk, mk, hk := vfQuantiles(dk)
	lu, mu, hu := vfQuantiles(du)
	t.Logf("server side: existing quartiles %v %v %v; unknown %v %v %v; ratio of medians %.2f", lk, mk, hk, lu, mu, hu, float64(mk)/float64(mu))
	t.Logf("client side (in-process): medians %v and %v, ratio %.2f", cmk, cmu, float64(cmk)/float64(cmu))
	// Within a factor of two either way. The request path is ~0.2 ms here;
	// account-dependent work on it (a lookup, an insert, a send) costs
	// milliseconds, which this catches, while the order of the requests
	// alone shifts the medians by up to a third on a busy machine.
	if ratio := float64(mk) / float64(mu); ratio < 0.5 || ratio > 2 {
		t.Errorf("the request path depends on the account: median %v for an existing address, %v for an unknown one (quartiles %v–%v and %v–%v)", mk, mu, lk, hk, lu, hu)
	}
}

func vfBenchRecovery(b *testing.B, existing bool) {
	h := newHarness(b, "sqlite", func(c *config.Config) {
		c.MessagesPerAddress = 1 << 40
		c.MessagesPerIP = 1 << 40
	})
	addr := "nobody@example.com"
	if existing {
		addr = "bench@example.com"
		h.newUser(addr)
	}
	body := map[string]string{"email": addr}
	for b.Loop() {
		if r := vfPost(h, "/v1/recovery", body); r.status != http.StatusAccepted {
			b.Fatalf("status %d: %s", r.status, r.body)
		}
	}
}

func BenchmarkRecoveryExisting(b *testing.B) { vfBenchRecovery(b, true) }
func BenchmarkRecoveryUnknown(b *testing.B)  { vfBenchRecovery(b, false) }

// --- 4. Enumeration-safe sign-up -----------------------------------------

func TestVerificationRequiredSignupIsEnumerationSafe(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, func(c *config.Config) { c.RequireVerifiedEmail = true })
		const owner, newbie = "owner@example.com", "newbie@example.com"
		r := h.client().signup(owner, goodPassword)
		vfWant(t, r, http.StatusAccepted, "")
		if r.json(t)["status"] != "verification_required" {
			t.Fatalf("sign-up answer %s", r.body)
		}
		mustStatus(t, vfPost(h, "/v1/verify-email", map[string]string{"token": linkToken(t, vfNext(t, h, owner, vfSubjVerify))}), http.StatusOK)

		rn := h.client().signup(newbie, goodPassword)
		re := h.client().signup(owner, vfOtherPassword)
		vfWant(t, rn, http.StatusAccepted, "")
		vfSameAnswer(t, "sign-up of a new and of a registered address", rn, re)
		if rn.header.Get("Set-Cookie") != "" || re.header.Get("Set-Cookie") != "" {
			t.Errorf("enumeration-safe sign-up set a cookie: %q / %q", rn.header.Get("Set-Cookie"), re.header.Get("Set-Cookie"))
		}
		exists := vfNext(t, h, owner, vfSubjExists)
		if linkTokenRE.MatchString(exists.Text) {
			t.Errorf("the account-exists notice carries a link secret:\n%s", exists.Text)
		}
		mv := vfNext(t, h, newbie, vfSubjVerify)
		vfSettle()
		if n := len(vfMails(h, owner, vfSubjVerify)); n != 1 {
			t.Errorf("the registered address got %d verification e-mails, want 1", n)
		}
		// The attempt changed nothing on the existing account.
		mustStatus(t, h.client().login(owner, goodPassword), http.StatusOK)
		vfWant(t, h.client().login(owner, vfOtherPassword), http.StatusUnauthorized, "invalid_credentials")

		// Before verification, even the right password answers exactly as a
		// wrong one: whoever signed up with an address holds its password,
		// so a distinct answer would tell them the address was free. The
		// owner gets the verification e-mail again instead.
		wrong := h.client().login(newbie, vfOtherPassword)
		vfWant(t, wrong, http.StatusUnauthorized, "invalid_credentials")
		vfSettle()
		if n := len(vfMails(h, newbie, vfSubjVerify)); n != 1 {
			t.Errorf("a wrong password re-sent the verification: %d verification e-mails, want 1", n)
		}
		right := h.client().login(newbie, goodPassword)
		vfWant(t, right, http.StatusUnauthorized, "invalid_credentials")
		if a, b := vfStripRequestID(t, right), vfStripRequestID(t, wrong); a != b {
			t.Errorf("right password of an unverified account vs wrong password:\n%s\n%s", a, b)
		}
		vfSameAnswer(t, "right password (unverified) vs wrong password", &response{status: right.status, header: right.header}, &response{status: wrong.status, header: wrong.header})
		if right.header.Get("Set-Cookie") != "" {
			t.Errorf("a refused sign-in set a cookie: %q", right.header.Get("Set-Cookie"))
		}
		resent := vfNext(t, h, newbie, vfSubjVerify)
		if linkToken(t, resent) == linkToken(t, mv) {
			t.Fatal("the re-sent verification carries the same link")
		}
		// The new link retired the first one.
		vfWant(t, vfPost(h, "/v1/verify-email", map[string]string{"token": linkToken(t, mv)}), http.StatusBadRequest, "invalid_token")
		mustStatus(t, vfPost(h, "/v1/verify-email", map[string]string{"token": linkToken(t, resent)}), http.StatusOK)
		c := h.client()
		mustStatus(t, c.login(newbie, goodPassword), http.StatusOK)
		if u := vfUser(t, c); u["email_verified"] != true || u["email"] != newbie {
			t.Errorf("/v1/me after verification: %v", u)
		}
		// The refused sign-in is on record, with its reason, for the owner.
		var reasons []string
		for _, e := range siEvents(siActivity(t, c), "login.failed") {
			reasons = append(reasons, e.Details["reason"])
		}
		slices.Sort(reasons)
		if !slices.Equal(reasons, []string{"", "email_unverified"}) {
			t.Errorf("login.failed reasons %q, want one wrong password and one email_unverified", reasons)
		}
	})
}

// --- 5. Message throttle -------------------------------------------------

func TestAttackRecoveryMessageThrottle(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		const known, unknown = "busy@example.com", "void@example.com"
		h.newUser(known)
		limit := int(h.cfg.MessagesPerAddress)
		refused := map[string]*response{}
		for _, addr := range []string{known, unknown} {
			for i := range limit {
				r := vfPost(h, "/v1/recovery", map[string]string{"email": addr})
				if r.status != http.StatusAccepted {
					t.Fatalf("%s: request %d of %d refused: %d %s", addr, i+1, limit, r.status, r.body)
				}
			}
			r := vfPost(h, "/v1/recovery", map[string]string{"email": addr})
			vfWant(t, r, http.StatusTooManyRequests, "rate_limited")
			ra, err := strconv.Atoi(r.header.Get("Retry-After"))
			if err != nil || ra <= 0 || time.Duration(ra)*time.Second > h.cfg.MessageWindow {
				t.Errorf("%s: Retry-After %q", addr, r.header.Get("Retry-After"))
			}
			refused[addr] = r
			// Another spelling of the same address is the same counter.
			vfWant(t, vfPost(h, "/v1/recovery", map[string]string{"email": strings.ToUpper(addr)}), http.StatusTooManyRequests, "rate_limited")
		}
		rk, ru := refused[known], refused[unknown]
		if a, b := vfStripRequestID(t, rk), vfStripRequestID(t, ru); a != b {
			t.Errorf("refusals differ:\n%s\n%s", a, b)
		}
		// Retry-After may differ by a second of real time (Redis);
		// Content-Length with the request id's length.
		vfSameAnswer(t, "429 bodies aside", &response{status: rk.status, header: rk.header}, &response{status: ru.status, header: ru.header}, "Retry-After", "Content-Length")
		// Exactly `limit` reset e-mails reached the owner.
		for range limit {
			vfNext(t, h, known, vfSubjRecovery)
		}
		vfSettle()
		if n := len(vfMails(h, known, vfSubjRecovery)); n != limit {
			t.Errorf("%d reset e-mails, want %d", n, limit)
		}
		// The limit is per address: another one is still served.
		vfAccepted(t, vfPost(h, "/v1/recovery", map[string]string{"email": "other@example.com"}))
	})
}

// --- 6. Change of e-mail address -----------------------------------------

func TestEmailChangeFlow(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		const old, next = "gwen@example.com", "gwen.new@example.com"
		a := h.newUser(old)
		b := h.client()
		mustStatus(t, b.login(old, goodPassword), http.StatusOK)
		// A reset link sent to the old address before the change.
		staleReset := vfRequestReset(t, h, old)

		h.clock.Advance(h.cfg.ReauthMaxAge + time.Second)
		vfWant(t, a.do("POST", "/v1/email", map[string]string{"new_email": next, "current_password": goodPassword}), http.StatusForbidden, "reauthentication_required")
		mustStatus(t, a.do("POST", "/v1/reauthenticate", map[string]string{"password": goodPassword}), http.StatusOK)
		vfWant(t, a.do("POST", "/v1/email", map[string]string{"new_email": old, "current_password": goodPassword}), http.StatusBadRequest, "invalid_field")
		vfAccepted(t, a.do("POST", "/v1/email", map[string]string{"new_email": next, "current_password": goodPassword}))
		m := vfNext(t, h, next, vfSubjChange)
		if l := vfLink(t, m); !strings.HasPrefix(l, h.cfg.PublicURL+"/ui/verify-email#token=ghl_") {
			t.Errorf("confirmation link %q", l)
		}
		// Nothing changes before the link comes back.
		if u := vfUser(t, a); u["email"] != old {
			t.Fatalf("address changed before confirmation: %v", u)
		}
		mustStatus(t, h.client().login(old, goodPassword), http.StatusOK)
		vfWant(t, h.client().login(next, goodPassword), http.StatusUnauthorized, "invalid_credentials")

		r := vfPost(h, "/v1/verify-email", map[string]string{"token": linkToken(t, m)})
		mustStatus(t, r, http.StatusOK)
		if body := r.json(t); body["email"] != next || body["email_verified"] != true || body["revoked_sessions"] != float64(2) { // b, and the probe sign-in above
			t.Errorf("confirmation answer %s", r.body)
		}
		if u := vfUser(t, a); u["email"] != next || u["email_verified"] != true {
			t.Errorf("/v1/me after the change: %v", u)
		}
		vfWant(t, b.do("GET", "/v1/me", nil), http.StatusUnauthorized, "")
		// The old address is told, with a link that undoes the change (see
		// TestEmailChangeUndoFromOldAddress).
		notice := vfNext(t, h, old, vfSubjChanged)
		if !strings.Contains(notice.Text, next) || !strings.HasPrefix(vfLink(t, notice), h.cfg.PublicURL+"/ui/verify-email#token=ghl_") {
			t.Errorf("address-changed notice:\n%s", notice.Text)
		}
		vfWant(t, vfPost(h, "/v1/verify-email", map[string]string{"token": linkToken(t, m)}), http.StatusBadRequest, "invalid_token")
		// A link sent to the old address before the change is dead.
		vfWant(t, vfCompleteReset(h, staleReset, vfNewPassword), http.StatusBadRequest, "invalid_token")
		vfWant(t, h.client().login(old, goodPassword), http.StatusUnauthorized, "invalid_credentials")
		mustStatus(t, h.client().login(next, goodPassword), http.StatusOK)
	})
}

func TestAttackEmailChangeCancelledByPasswordReset(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		const old, next = "gil@example.com", "attacker@example.net"
		intruder := h.newUser(old)
		vfAccepted(t, intruder.do("POST", "/v1/email", map[string]string{"new_email": next, "current_password": goodPassword}))
		change := linkToken(t, vfNext(t, h, next, vfSubjChange))
		// The owner takes the account back through the current address.
		mustStatus(t, vfCompleteReset(h, vfRequestReset(t, h, old), vfNewPassword), http.StatusOK)
		vfWant(t, vfPost(h, "/v1/verify-email", map[string]string{"token": change}), http.StatusBadRequest, "invalid_token")
		owner := h.client()
		mustStatus(t, owner.login(old, vfNewPassword), http.StatusOK)
		if u := vfUser(t, owner); u["email"] != old {
			t.Fatalf("address after the cancelled change: %v", u)
		}
		vfWant(t, h.client().login(next, vfNewPassword), http.StatusUnauthorized, "invalid_credentials")
	})
}

func TestAttackEmailChangeNeedsLiveSession(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		const old, next = "hugo@example.com", "hugo.new@example.com"
		c := h.newUser(old)
		vfAccepted(t, c.do("POST", "/v1/email", map[string]string{"new_email": next, "current_password": goodPassword}))
		change := linkToken(t, vfNext(t, h, next, vfSubjChange))
		mustStatus(t, c.do("POST", "/v1/logout", nil), http.StatusNoContent)
		vfWant(t, vfPost(h, "/v1/verify-email", map[string]string{"token": change}), http.StatusBadRequest, "invalid_token")
		fresh := h.client()
		mustStatus(t, fresh.login(old, goodPassword), http.StatusOK)
		if u := vfUser(t, fresh); u["email"] != old {
			t.Fatalf("address after the change of a dead session: %v", u)
		}
	})
}

func TestAttackEmailChangeToTakenAddress(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		const hal, ivy, free = "hal@example.com", "ivy@example.com", "hal.free@example.com"
		c := h.newUser(hal)
		h.newUser(ivy)
		taken := c.do("POST", "/v1/email", map[string]string{"new_email": ivy, "current_password": goodPassword})
		vfAccepted(t, taken)
		vacant := c.do("POST", "/v1/email", map[string]string{"new_email": free, "current_password": goodPassword})
		vfSameAnswer(t, "change to a registered and to a free address", taken, vacant)

		exists := vfNext(t, h, ivy, vfSubjExists)
		if linkTokenRE.MatchString(exists.Text) {
			t.Errorf("the account-exists notice carries a link secret:\n%s", exists.Text)
		}
		vfNext(t, h, free, vfSubjChange) // queued after the one to ivy
		vfSettle()
		if n := len(vfMails(h, ivy, vfSubjChange)); n != 0 {
			t.Errorf("%d change links sent to another account's address", n)
		}
		if u := vfUser(t, c); u["email"] != hal {
			t.Errorf("address %v", u["email"])
		}
		mustStatus(t, h.client().login(ivy, goodPassword), http.StatusOK)
	})
}

// The new address is registered by someone else between the request and
// the confirmation: the confirmation fails and nothing changes.
func TestAttackEmailChangeAddressTakenBeforeConfirmation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		const old, next = "ike@example.com", "jo@example.com"
		c := h.newUser(old)
		vfAccepted(t, c.do("POST", "/v1/email", map[string]string{"new_email": next, "current_password": goodPassword}))
		change := linkToken(t, vfNext(t, h, next, vfSubjChange))
		jo := h.newUser(next)
		vfWant(t, vfPost(h, "/v1/verify-email", map[string]string{"token": change}), http.StatusConflict, "email_taken")
		if u := vfUser(t, c); u["email"] != old {
			t.Errorf("address %v", u["email"])
		}
		if u := vfUser(t, jo); u["email"] != next {
			t.Errorf("the other account's address %v", u["email"])
		}
	})
}

// --- 7. Delivery failure -------------------------------------------------

func TestRecoveryDeliveryFailureDoesNotLeakOrBlock(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, func(c *config.Config) {
			c.SMTPURL = "smtp://127.0.0.1:1" // nothing listens
			c.MailFrom = "Gatehouse <auth@gatehouse.test>"
		})
		h.newUser("lost@example.com")
		var answers []*response
		for _, addr := range []string{"lost@example.com", "nobody@example.com", "lost@example.com"} {
			start := time.Now()
			r := vfPost(h, "/v1/recovery", map[string]string{"email": addr})
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("%s: %v with the mail server down", addr, d)
			}
			vfAccepted(t, r)
			answers = append(answers, r)
		}
		vfSameAnswer(t, "existing vs unknown, mail server down", answers[0], answers[1])
		vfSameAnswer(t, "existing vs unknown, mail server down", answers[2], answers[1])
		vfSettle()
		if logs := h.logs.String(); strings.Contains(logs, "ghl_") {
			t.Error("a link secret reached the logs")
		}
	})
}

// --- 8. Change of address: the password, taken addresses, the undo ---------

// vfChange asks, from c, to move c's account to next with the password pw.
func vfChange(c *client, next, pw string) *response {
	c.h.t.Helper()
	return c.do("POST", "/v1/email", map[string]string{"new_email": next, "current_password": pw})
}

// vfMoved moves c's account from old to next (c must have signed in
// recently with goodPassword) and returns the undo link sent to old.
func vfMoved(t testing.TB, h *harness, c *client, old, next string) string {
	t.Helper()
	vfAccepted(t, vfChange(c, next, goodPassword))
	r := vfPost(h, "/v1/verify-email", map[string]string{"token": linkToken(t, vfNext(t, h, next, vfSubjChange))})
	mustStatus(t, r, http.StatusOK)
	if r.json(t)["email"] != next {
		t.Fatalf("change to %s: %s", next, r.body)
	}
	notice := vfNext(t, h, old, vfSubjChanged)
	if l := vfLink(t, notice); !strings.HasPrefix(l, h.cfg.PublicURL+"/ui/verify-email#token=ghl_") {
		t.Fatalf("undo link %q in the notice to %s:\n%s", l, old, notice.Text)
	}
	return linkToken(t, notice)
}

// vfEventsOf are c's activity events of one type.
func vfEventsOf(t *testing.T, c *client, typ string) []siEvent {
	t.Helper()
	return siEvents(siActivity(t, c), typ)
}

// A session is not enough to move the account: the address is how it is
// recovered, and a stolen session or a code sign-in has no password.
func TestAttackEmailChangeNeedsPassword(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, func(c *config.Config) { c.LoginFailuresPerAccount = 3 })
		const addr, next = "pat@example.com", "pat.attacker@evil.example"
		c := h.newUser(addr)

		r := c.do("POST", "/v1/email", map[string]string{"new_email": next})
		vfWant(t, r, http.StatusBadRequest, "missing_field")
		if f := r.json(t)["field"]; f != "current_password" {
			t.Errorf("missing_field names %v, want current_password", f)
		}
		vfWant(t, vfChange(c, next, ""), http.StatusBadRequest, "missing_field")
		for i := range 3 {
			vfWant(t, vfChange(c, next, fmt.Sprintf("a guess at the password %d", i)), http.StatusForbidden, "incorrect_password")
		}
		// Three wrong guesses (the limit here): the account's guesses are
		// refused before they are checked, the right one too, from any
		// session of the account, on every route that checks the password.
		vfWant(t, vfChange(c, next, goodPassword), http.StatusTooManyRequests, "rate_limited")
		other := h.client()
		mustStatus(t, other.login(addr, goodPassword), http.StatusOK)
		vfWant(t, vfChange(other, next, goodPassword), http.StatusTooManyRequests, "rate_limited")
		vfWant(t, other.do("POST", "/v1/reauthenticate", map[string]string{"password": goodPassword}), http.StatusTooManyRequests, "rate_limited")
		// Another account is not affected.
		d := h.newUser("quinn@example.com")
		vfAccepted(t, vfChange(d, "quinn.new@example.com", goodPassword))

		vfSettle()
		if n := h.mailCount(next); n != 0 {
			t.Errorf("%d e-mails to the new address without the password", n)
		}
		if n := len(vfEventsOf(t, c, "email.change_requested")); n != 0 {
			t.Errorf("%d email.change_requested events without the password", n)
		}
		if n := len(vfEventsOf(t, c, "reauthentication.failed")); n != 3 {
			t.Errorf("%d reauthentication.failed events, want 3", n)
		}
		if u := vfUser(t, c); u["email"] != addr {
			t.Errorf("address %v", u["email"])
		}

		// A session from an e-mail code is fresh, and still needs the
		// password (the address is verified first: a code sign-in into an
		// unverified account would clear it).
		h2 := newHarness(t, backend, nil)
		h2.newUser(addr)
		mustStatus(t, vfPost(h2, "/v1/verify-email", map[string]string{"token": linkToken(t, vfNext(t, h2, addr, vfSubjVerify))}), http.StatusOK)
		vfAccepted(t, vfPost(h2, "/v1/otp/email", map[string]string{"email": addr}))
		coded := h2.client()
		mustStatus(t, coded.do("POST", "/v1/otp/verify", map[string]string{"email": addr, "code": mailCode(t, vfNext(t, h2, addr, vfSubjOTP))}), http.StatusOK)
		vfWant(t, coded.do("POST", "/v1/email", map[string]string{"new_email": next}), http.StatusBadRequest, "missing_field")
		vfWant(t, vfChange(coded, next, vfOtherPassword), http.StatusForbidden, "incorrect_password")
		vfAccepted(t, vfChange(coded, next, goodPassword))

		if backend != "sqlite" {
			return // Redis counts in real time: the window cannot be advanced
		}
		h.clock.Advance(h.cfg.LoginFailureWindow + time.Second)
		mustStatus(t, c.do("POST", "/v1/reauthenticate", map[string]string{"password": goodPassword}), http.StatusOK)
		vfAccepted(t, vfChange(c, next, goodPassword))
	})
}

// Moving to an address that has an account looks, to the requester, just
// like moving to a free one: the same answer, a verification.sent event,
// and the older pending change retired. The other account's owner is told,
// at the address on record.
func TestAttackEmailChangeToTakenAddressLooksTheSame(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		const me, owner, free1, free2 = "rex@example.com", "sue@example.com", "rex.one@example.com", "rex.two@example.com"
		c := h.newUser(me)
		h.newUser(owner)

		// Free, then taken: the free address's link dies.
		rf := vfChange(c, free1, goodPassword)
		vfAccepted(t, rf)
		link1 := linkToken(t, vfNext(t, h, free1, vfSubjChange))
		rt := vfChange(c, "SUE@Example.COM", goodPassword)
		vfSameAnswer(t, "change to a free and to a registered address", rf, rt)
		exists := vfNext(t, h, owner, vfSubjExists)
		if !slices.Equal(exists.To, []string{owner}) {
			t.Errorf("account-exists notice sent to %v, want the address on record", exists.To)
		}
		if linkTokenRE.MatchString(exists.Text) {
			t.Errorf("the account-exists notice carries a link secret:\n%s", exists.Text)
		}
		vfWant(t, vfPost(h, "/v1/verify-email", map[string]string{"token": link1}), http.StatusBadRequest, "invalid_token")

		// Free again, then taken again: the same.
		vfAccepted(t, vfChange(c, free2, goodPassword))
		link2 := linkToken(t, vfNext(t, h, free2, vfSubjChange))
		vfAccepted(t, vfChange(c, owner, goodPassword))
		vfNext(t, h, owner, vfSubjExists)
		vfWant(t, vfPost(h, "/v1/verify-email", map[string]string{"token": link2}), http.StatusBadRequest, "invalid_token")

		// The requester's record: one verification.sent per request, of
		// the same shape.
		var sent []siEvent
		for _, e := range vfEventsOf(t, c, "verification.sent") {
			if e.Details["purpose"] == "change_email" {
				sent = append(sent, e)
			}
		}
		if len(sent) != 4 {
			t.Fatalf("%d change_email verification.sent events, want 4: %+v", len(sent), sent)
		}
		keys := func(m map[string]string) []string {
			var out []string
			for k := range m {
				out = append(out, k)
			}
			slices.Sort(out)
			return out
		}
		for _, e := range sent {
			if !slices.Equal(keys(e.Details), keys(sent[0].Details)) || e.Details["channel"] != "email" {
				t.Errorf("verification.sent details differ: %v vs %v", e.Details, sent[0].Details)
			}
		}
		if n := len(vfEventsOf(t, c, "email.change_requested")); n != 4 {
			t.Errorf("%d email.change_requested events, want 4", n)
		}
		vfSettle()
		if n := len(vfMails(h, owner, vfSubjChange)); n != 0 {
			t.Errorf("%d change links sent to another account's address", n)
		}
		if u := vfUser(t, c); u["email"] != me {
			t.Errorf("address %v", u["email"])
		}
		mustStatus(t, h.client().login(owner, goodPassword), http.StatusOK)
	})
}

// The old address undoes a change of address it did not make: the intruder
// who made it (with the password and a session) loses the address, the
// password, the phone number, every session and every link and code in
// flight; the owner sets a new password by reset through the old address.
func TestEmailChangeUndoFromOldAddress(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h, rx := siSMSHarness(t, backend, nil)
		const old, evil = "una@example.com", "una@evil.example"
		owner := h.newUser(old)
		mustStatus(t, vfPost(h, "/v1/verify-email", map[string]string{"token": linkToken(t, vfNext(t, h, old, vfSubjVerify))}), http.StatusOK)

		// The intruder knows the password.
		intruder := h.client()
		mustStatus(t, intruder.login(old, goodPassword), http.StatusOK)
		siAddPhone(t, rx, intruder, siPhoneB)
		undo := vfMoved(t, h, intruder, old, evil)
		vfWant(t, owner.do("GET", "/v1/me", nil), http.StatusUnauthorized, "")
		notice := vfMails(h, old, vfSubjChanged)[0]
		if !strings.Contains(notice.Text, evil) || !strings.Contains(notice.Text, "7 days") {
			t.Errorf("address-changed notice:\n%s", notice.Text)
		}

		// The intruder digs in: a new password, a token-mode session, and
		// a reset link, a magic link and a text code in flight.
		mustStatus(t, intruder.do("POST", "/v1/password", map[string]string{"current_password": goodPassword, "new_password": vfOtherPassword}), http.StatusOK)
		rt := h.raw("POST", "/v1/login", "application/json", jsonBody(map[string]string{"email": evil, "password": vfOtherPassword, "mode": "token", "client": "native"}), nil)
		mustStatus(t, rt, http.StatusOK)
		tokens := tokensOf(t, rt, refreshCookie)
		reset := vfRequestReset(t, h, evil)
		vfAccepted(t, vfPost(h, "/v1/magic-link", map[string]string{"email": evil}))
		magic := linkToken(t, vfNext(t, h, evil, vfSubjMagic))
		vfAccepted(t, vfPost(h, "/v1/otp/sms", map[string]string{"phone": siPhoneB}))
		smsCode := siSMSCode(t, rx.next(t, siPhoneB))

		// The owner follows the undo link.
		r := vfPost(h, "/v1/verify-email", map[string]string{"token": undo})
		mustStatus(t, r, http.StatusOK)
		var body struct {
			Email                 string `json:"email"`
			EmailVerified         bool   `json:"email_verified"`
			RevokedSessions       *int   `json:"revoked_sessions"`
			PasswordResetRequired bool   `json:"password_reset_required"`
		}
		if err := json.Unmarshal(r.body, &body); err != nil {
			t.Fatal(err)
		}
		if body.Email != old || !body.EmailVerified || body.RevokedSessions == nil || *body.RevokedSessions != 2 || !body.PasswordResetRequired {
			t.Errorf("undo answer %s, want %s, verified, 2 sessions revoked (the intruder's cookie and token sessions), password_reset_required", r.body, old)
		}
		if sc := r.header.Values("Set-Cookie"); len(sc) != 0 {
			t.Errorf("the undo signed someone in: %q", sc)
		}

		// The intruder has nothing left.
		vfWant(t, intruder.do("GET", "/v1/me", nil), http.StatusUnauthorized, "")
		vfWant(t, h.raw("GET", "/v1/me", "", "", bearer(tokens.access)), http.StatusUnauthorized, "")
		vfWant(t, h.refreshNative(tokens.refresh, uaCurl), http.StatusUnauthorized, "invalid_grant")
		for _, login := range []struct{ addr, pw string }{{old, goodPassword}, {old, vfOtherPassword}, {evil, vfOtherPassword}, {evil, goodPassword}} {
			vfWant(t, h.client().login(login.addr, login.pw), http.StatusUnauthorized, "invalid_credentials")
		}
		vfWant(t, vfCompleteReset(h, reset, vfNewPassword), http.StatusBadRequest, "invalid_token")
		vfWant(t, vfPost(h, "/v1/magic-link/verify", map[string]string{"token": magic}), http.StatusBadRequest, "invalid_token")
		vfWant(t, vfPost(h, "/v1/otp/verify", map[string]string{"phone": siPhoneB, "code": smsCode}), http.StatusUnauthorized, "invalid_code")
		texts := rx.count(siPhoneB)
		vfAccepted(t, vfPost(h, "/v1/otp/sms", map[string]string{"phone": siPhoneB}))
		// The link works once.
		vfWant(t, vfPost(h, "/v1/verify-email", map[string]string{"token": undo}), http.StatusBadRequest, "invalid_token")
		// The intruder's address no longer reaches the account.
		resets := len(vfMails(h, evil, vfSubjRecovery))
		vfAccepted(t, vfPost(h, "/v1/recovery", map[string]string{"email": evil}))

		// The owner sets a new password through the old address.
		mustStatus(t, vfCompleteReset(h, vfRequestReset(t, h, old), vfNewPassword), http.StatusOK)
		back := h.client()
		mustStatus(t, back.login(old, vfNewPassword), http.StatusOK)
		u := vfUser(t, back)
		if u["email"] != old || u["email_verified"] != true {
			t.Errorf("/v1/me after the undo and the reset: %v", u)
		}
		if p, ok := u["phone"]; ok {
			t.Errorf("the intruder's phone number %v survived the undo", p)
		}
		reverted := vfEventsOf(t, back, "email.change_reverted")
		if len(reverted) != 1 || reverted[0].Details["email"] != old || reverted[0].Details["revoked_sessions"] != "2" {
			t.Errorf("email.change_reverted events %+v", reverted)
		}
		vfSettle()
		if n := rx.count(siPhoneB) - texts; n != 0 {
			t.Errorf("%d sign-in codes texted to the intruder's number after the undo", n)
		}
		if n := len(vfMails(h, evil, vfSubjRecovery)) - resets; n != 0 {
			t.Errorf("%d reset e-mails to the intruder's address after the undo", n)
		}
	})
}

// The undo link lasts seven days.
func TestAttackEmailChangeUndoExpires(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		const old, next = "vic@example.com", "vic.new@example.com"
		c := h.newUser(old)
		undo := vfMoved(t, h, c, old, next)
		h.clock.Advance(7*24*time.Hour + time.Second)
		vfWant(t, vfPost(h, "/v1/verify-email", map[string]string{"token": undo}), http.StatusBadRequest, "invalid_token")
		mustStatus(t, h.client().login(next, goodPassword), http.StatusOK)

		d := h.newUser("wes@example.com")
		undo = vfMoved(t, h, d, "wes@example.com", "wes.new@example.com")
		h.clock.Advance(7*24*time.Hour - time.Second)
		r := vfPost(h, "/v1/verify-email", map[string]string{"token": undo})
		mustStatus(t, r, http.StatusOK)
		if r.json(t)["email"] != "wes@example.com" {
			t.Errorf("undo answer %s", r.body)
		}
	})
}

// A second change of address retires the first undo link: a link from an
// address the account left two changes ago cannot pull it back. The
// latest undo link still works, to the address just before.

// TestAttackEmailChangeLockedWhileUndoable: while the previous address can
// still undo a change, the address cannot move again — a second move would
// send the next undo link to an address the mover holds and retire the
// owner's. After the window it can.
func TestAttackEmailChangeLockedWhileUndoable(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		const a, b, c = "xena@example.com", "xena.b@example.com", "xena.c@example.com"
		s := h.newUser(a)
		undoA := vfMoved(t, h, s, a, b)
		r := vfChange(s, c, goodPassword)
		vfWant(t, r, http.StatusConflict, "email_change_locked")
		if r.json(t)["until"] == nil {
			t.Errorf("the refusal does not say until when: %s", r.body)
		}
		h.clock.Advance(verification.RevertTTL + time.Second)
		fresh := h.client()
		mustStatus(t, fresh.login(b, goodPassword), http.StatusOK)
		vfAccepted(t, vfChange(fresh, c, goodPassword))
		vfWant(t, vfPost(h, "/v1/verify-email", map[string]string{"token": undoA}), http.StatusBadRequest, "invalid_token")
	})
}

// The old address has an account of its own by the time the undo link is
// followed: 409, nothing changes, and the link is not spent.
func TestAttackEmailChangeUndoOldAddressTaken(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		const old, next = "yan@example.com", "yan.new@example.com"
		c := h.newUser(old)
		undo := vfMoved(t, h, c, old, next)
		squat := h.newUser(old)
		for range 2 {
			vfWant(t, vfPost(h, "/v1/verify-email", map[string]string{"token": undo}), http.StatusConflict, "conflict")
		}
		if u := vfUser(t, c); u["email"] != next {
			t.Errorf("the moved account's address %v", u["email"])
		}
		if u := vfUser(t, squat); u["email"] != old {
			t.Errorf("the other account's address %v", u["email"])
		}
		mustStatus(t, h.client().login(next, goodPassword), http.StatusOK)
	})
}

// With RequireVerifiedEmail, sign-up with a registered address answers the
// same 202 every time, and its owner is told at most MessagesPerAddress
// times per window: sign-up cannot bomb a mailbox.
func TestAttackSignupAttemptNoticeLimited(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, func(c *config.Config) { c.RequireVerifiedEmail = true })
		const owner = "zoe@example.com"
		vfWant(t, h.client().signup(owner, goodPassword), http.StatusAccepted, "")
		mustStatus(t, vfPost(h, "/v1/verify-email", map[string]string{"token": linkToken(t, vfNext(t, h, owner, vfSubjVerify))}), http.StatusOK)

		var first *response
		for i := range 8 {
			r := h.client().signup(owner, fmt.Sprintf("%s, attempt %d", vfOtherPassword, i))
			vfWant(t, r, http.StatusAccepted, "")
			if first == nil {
				first = r
			} else {
				vfSameAnswer(t, fmt.Sprintf("sign-up %d vs 1", i+1), first, r)
			}
		}
		time.Sleep(time.Second)
		total, notices := h.mailCount(owner), len(vfMails(h, owner, vfSubjExists))
		if total != notices+1 {
			t.Errorf("%d e-mails to the owner, want the verification and %d notices", total, notices)
		}
		if limit := int(h.cfg.MessagesPerAddress); notices < 1 || notices > limit {
			t.Errorf("%d account-exists notices for 8 sign-ups, want 1 to %d", notices, limit)
		}
		mustStatus(t, h.client().login(owner, goodPassword), http.StatusOK)
	})
}
