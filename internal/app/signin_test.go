package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/config"
	"github.com/gatehouse-auth/gatehouse/internal/mail/mailtest"
	"github.com/gatehouse-auth/gatehouse/internal/sms"
)

// End-to-end tests of sign-in by magic link, e-mail code and text code, and
// of adding and removing a phone number. Text messages go through the real
// signed-webhook sender to an HTTP receiver that checks every signature.

const siWebhookSecret = "si-test-webhook-secret-0123456789-abcdefghij"

// Valid mobile numbers (checked with sms.Normalize where they are used) and
// numbers that must be refused.
const (
	siPhoneA       = "+447400123456"  // GB mobile
	siPhoneB       = "+447911123456"  // GB mobile
	siPhoneC       = "+33612345678"   // FR mobile
	siPhoneD       = "+4915123456789" // DE mobile
	siPhonePremium = "+449012345678"  // GB premium rate
	siPhoneFixed   = "+441212345678"  // GB fixed line
)

// Subjects of the e-mails these flows send (product name "Gatehouse").
const (
	siSubjMagic  = "Sign in to Gatehouse"
	siSubjCode   = "sign-in code"
	siSubjReset  = "Reset your Gatehouse password"
	siSubjVerify = "Confirm your e-mail address"
	siSubjPhone  = "A phone number was added to your Gatehouse account"
)

const siNewPassword = "an entirely different passphrase 42"

// ---- the SMS receiver ----

// siText is one text message as the webhook delivered it.
type siText struct {
	ID     string `json:"id"`
	To     string `json:"to"`
	Body   string `json:"body"`
	SentAt string `json:"sent_at"`
}

// siSMS is an operator's webhook endpoint: it checks the signature of every
// request with sms.VerifyWebhookSignature and records what it accepted.
type siSMS struct {
	srv     *httptest.Server
	mu      sync.Mutex
	msgs    []siText // answered 2xx
	hits    int      // requests with a valid signature, whatever the answer
	refused []string // requests refused, and why
	status  int      // answer to give (0 = 200)
	gate    chan struct{}
	read    map[string]int
}

func siNewSMS(t *testing.T) *siSMS {
	t.Helper()
	rx := &siSMS{read: map[string]int{}}
	rx.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		refuse := func(why string, status int) {
			rx.mu.Lock()
			rx.refused = append(rx.refused, why)
			rx.mu.Unlock()
			w.WriteHeader(status)
		}
		switch {
		case err != nil:
			refuse("read: "+err.Error(), http.StatusBadRequest)
			return
		case r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json":
			refuse("method or content type: "+r.Method+" "+r.Header.Get("Content-Type"), http.StatusBadRequest)
			return
		}
		if err := sms.VerifyWebhookSignature(r.Header.Get("Gatehouse-Signature"), body, siWebhookSecret, 5*time.Minute, time.Now()); err != nil {
			refuse(err.Error(), http.StatusUnauthorized)
			return
		}
		var m siText
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&m); err != nil || m.ID == "" || r.Header.Get("Gatehouse-Message-Id") != m.ID {
			refuse(fmt.Sprintf("payload %s (header id %q): %v", body, r.Header.Get("Gatehouse-Message-Id"), err), http.StatusBadRequest)
			return
		}
		rx.mu.Lock()
		rx.hits++
		status, gate := rx.status, rx.gate
		rx.mu.Unlock()
		if gate != nil {
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
		if status != 0 && status != http.StatusOK {
			w.WriteHeader(status)
			return
		}
		rx.mu.Lock()
		rx.msgs = append(rx.msgs, m)
		rx.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(func() {
		rx.srv.Close()
		rx.mu.Lock()
		defer rx.mu.Unlock()
		if len(rx.refused) > 0 {
			t.Errorf("the SMS receiver refused requests: %q", rx.refused)
		}
	})
	return rx
}

// next waits for the next text to the number that the test has not taken.
func (rx *siSMS) next(t *testing.T, to string) siText {
	t.Helper()
	rx.mu.Lock()
	n := rx.read[to]
	rx.read[to] = n + 1
	rx.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		rx.mu.Lock()
		var mine []siText
		for _, m := range rx.msgs {
			if m.To == to {
				mine = append(mine, m)
			}
		}
		rx.mu.Unlock()
		if len(mine) > n {
			return mine[n]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no text #%d to %s within 10s (have %d)", n+1, to, len(mine))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// count is how many texts the number has received.
func (rx *siSMS) count(to string) int {
	rx.mu.Lock()
	defer rx.mu.Unlock()
	n := 0
	for _, m := range rx.msgs {
		if m.To == to {
			n++
		}
	}
	return n
}

func (rx *siSMS) total() (delivered, hits int) {
	rx.mu.Lock()
	defer rx.mu.Unlock()
	return len(rx.msgs), rx.hits
}

// siSMSHarness starts a server whose texts go to a fresh receiver.
func siSMSHarness(t *testing.T, backend string, mutate func(*config.Config)) (*harness, *siSMS) {
	t.Helper()
	rx := siNewSMS(t)
	h := newHarness(t, backend, func(c *config.Config) {
		c.SMSProvider = "webhook"
		c.SMSWebhookURL = rx.srv.URL
		c.SMSWebhookSecret = siWebhookSecret
		if mutate != nil {
			mutate(c)
		}
	})
	return h, rx
}

var siSMSCodeRE = regexp.MustCompile(`^Gatehouse code: (\d{6})\n`)

// siSMSCode is the code of a text, whose last line must be the WebOTP line
// bound to the server's host.
func siSMSCode(t *testing.T, m siText) string {
	t.Helper()
	sub := siSMSCodeRE.FindStringSubmatch(m.Body)
	if sub == nil {
		t.Fatalf("no code in text %q", m.Body)
	}
	if want := "\n@127.0.0.1 #" + sub[1]; !strings.HasSuffix(m.Body, want) {
		t.Errorf("text %q does not end with the WebOTP line %q", m.Body, want)
	}
	return sub[1]
}

// siMustPhone checks that raw is a number the product accepts, as want.
func siMustPhone(t *testing.T, raw, want string) {
	t.Helper()
	got, err := sms.Normalize(raw, "")
	if err != nil || got != want {
		t.Fatalf("sms.Normalize(%q) = %q, %v; want %q", raw, got, err, want)
	}
}

// siAddPhone gives c's account the number (c must have signed in recently).
func siAddPhone(t *testing.T, rx *siSMS, c *client, phone string) {
	t.Helper()
	mustStatus(t, c.do("POST", "/v1/phone", map[string]string{"phone": phone}), http.StatusAccepted)
	code := siSMSCode(t, rx.next(t, phone))
	r := c.do("POST", "/v1/phone/verify", map[string]string{"code": code})
	mustStatus(t, r, http.StatusOK)
	if got := siUser(t, r)["phone"]; got != phone {
		t.Fatalf("phone after verification %v, want %s: %s", got, phone, r.body)
	}
}

// siFresh signs email in with the password on a new client: its session
// reads the account as it is now.
func siFresh(t *testing.T, h *harness, email string) *client {
	t.Helper()
	c := h.client()
	mustStatus(t, c.login(email, goodPassword), http.StatusOK)
	return c
}

// ---- e-mail ----

// siMailbox hands out e-mails by recipient and subject, each once.
type siMailbox struct {
	h     *harness
	taken map[string]int
}

func siMails(h *harness) *siMailbox { return &siMailbox{h: h, taken: map[string]int{}} }

func (b *siMailbox) matching(to, subject string) []mailtest.Received {
	var mine []mailtest.Received
	for _, m := range b.h.smtp.Messages() {
		if !strings.Contains(m.Subject, subject) {
			continue
		}
		for _, rcpt := range m.To {
			if strings.EqualFold(rcpt, to) {
				mine = append(mine, m)
			}
		}
	}
	return mine
}

// next waits for the next e-mail to the address whose subject contains
// subject.
func (b *siMailbox) next(t *testing.T, to, subject string) mailtest.Received {
	t.Helper()
	key := strings.ToLower(to) + "\x00" + subject
	n := b.taken[key]
	b.taken[key] = n + 1
	deadline := time.Now().Add(10 * time.Second)
	for {
		if mine := b.matching(to, subject); len(mine) > n {
			return mine[n]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no e-mail #%d %q to %s within 10s", n+1, subject, to)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// siLink asks for a magic link for email (from c) and returns its secret.
func siLink(t *testing.T, b *siMailbox, c *client, email string) string {
	t.Helper()
	r := c.do("POST", "/v1/magic-link", map[string]string{"email": email})
	mustStatus(t, r, http.StatusAccepted)
	m := b.next(t, email, siSubjMagic)
	if want := b.h.cfg.BaseURL() + "/ui/magic-link#token=ghl_"; !strings.Contains(m.Text, want) {
		t.Fatalf("magic-link e-mail lacks %q:\n%s", want, m.Text)
	}
	if strings.Contains(m.Text, "?token=") {
		t.Errorf("the link secret travels in a query string:\n%s", m.Text)
	}
	return linkToken(t, m)
}

// siVerifyEmail verifies the address of a new account with the link of
// its sign-up e-mail. A magic-link or code sign-in into an account whose
// address is not verified yet claims it (every session opened before is
// revoked and the password cleared): tests that need an earlier session to
// survive such a sign-in verify the address first.
func siVerifyEmail(t *testing.T, b *siMailbox, email string) {
	t.Helper()
	r := b.h.client().do("POST", "/v1/verify-email", map[string]string{"token": linkToken(t, b.next(t, email, siSubjVerify))})
	mustStatus(t, r, http.StatusOK)
	if r.json(t)["email_verified"] != true {
		t.Fatalf("verification of %s: %s", email, r.body)
	}
}

// siMailCode asks for a sign-in code for email and returns it.
func siMailCode(t *testing.T, b *siMailbox, c *client, email string) string {
	t.Helper()
	mustStatus(t, c.do("POST", "/v1/otp/email", map[string]string{"email": email}), http.StatusAccepted)
	return mailCode(t, b.next(t, email, siSubjCode))
}

// ---- responses ----

// siProblem asserts a problem response's status and code.
func siProblem(t *testing.T, r *response, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d (%s): %s", r.status, status, code, r.body)
	}
	if got := r.code(t); got != code {
		t.Fatalf("problem code %q, want %q: %s", got, code, r.body)
	}
}

func siUser(t *testing.T, r *response) map[string]any {
	t.Helper()
	u, ok := r.json(t)["user"].(map[string]any)
	if !ok {
		t.Fatalf("no user in %s", r.body)
	}
	return u
}

func siSession(t *testing.T, r *response) map[string]any {
	t.Helper()
	s, ok := r.json(t)["session"].(map[string]any)
	if !ok {
		t.Fatalf("no session in %s", r.body)
	}
	return s
}

func siStrings(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// siSessionIDs lists the ids of the live sessions of c's account.
func siSessionIDs(t *testing.T, c *client) []string {
	t.Helper()
	r := c.do("GET", "/v1/sessions", nil)
	mustStatus(t, r, http.StatusOK)
	var ids []string
	for _, s := range r.json(t)["sessions"].([]any) {
		ids = append(ids, s.(map[string]any)["id"].(string))
	}
	return ids
}

// siEvent is one entry of the activity log.
type siEvent struct {
	Type    string            `json:"type"`
	Details map[string]string `json:"details"`
}

func siActivity(t *testing.T, c *client) []siEvent {
	t.Helper()
	r := c.do("GET", "/v1/activity?limit=100", nil)
	mustStatus(t, r, http.StatusOK)
	var body struct {
		Events []siEvent `json:"events"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("activity: %v: %s", err, r.body)
	}
	return body.Events
}

func siEvents(events []siEvent, typ string) []siEvent {
	var out []siEvent
	for _, e := range events {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// siWrong returns a well-formed code other than code (i = 0, 1, … give
// distinct ones).
func siWrong(code string, i int) string {
	n, _ := strconv.Atoi(code)
	return fmt.Sprintf("%06d", (n+1+i)%1_000_000)
}

// siBody is a problem body without its request id, for comparisons.
func siBody(t *testing.T, r *response) map[string]any {
	t.Helper()
	m := r.json(t)
	delete(m, "request_id")
	return m
}

func siSetCookies(r *response) []string { return r.header.Values("Set-Cookie") }

// siRace sends the same POST n times at once and returns the statuses.
func siRace(t *testing.T, h *harness, n int, path, body string) []int {
	t.Helper()
	statuses := make([]int, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			req, err := http.NewRequest("POST", h.ts.URL+path, strings.NewReader(body))
			if err != nil {
				errs[i] = err
				return
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("User-Agent", uaFirefox)
			res, err := h.ts.Client().Do(req)
			if err != nil {
				errs[i] = err
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			statuses[i] = res.StatusCode
		})
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return statuses
}

// ---- magic links ----

func TestMagicLinkSignIn(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		box := siMails(h)
		owner := h.newUser("ml@example.com")
		if me := owner.do("GET", "/v1/me", nil); siUser(t, me)["email_verified"] != false {
			t.Fatalf("fresh account already verified: %s", me.body)
		}
		// Verified first, so that the owner's session survives the sign-in
		// (the first sign-in of an unverified account claims it: see
		// TestAttackPreHijackedAccountClaimedByMagicLink).
		siVerifyEmail(t, box, "ml@example.com")

		// Cookie mode (the default); the address is matched whatever its case.
		c := h.client()
		r := c.do("POST", "/v1/magic-link", map[string]string{"email": "ML@Example.COM"})
		mustStatus(t, r, http.StatusAccepted)
		if r.json(t)["status"] != "accepted" || len(siSetCookies(r)) != 0 {
			t.Fatalf("request: %v %s", r.header, r.body)
		}
		m := box.next(t, "ml@example.com", siSubjMagic)
		tok := linkToken(t, m)
		if want := h.cfg.BaseURL() + "/ui/magic-link#token=" + tok; !strings.Contains(m.Text, want) {
			t.Fatalf("the e-mail lacks the link %q:\n%s", want, m.Text)
		}
		r = c.do("POST", "/v1/magic-link/verify", map[string]string{"token": tok})
		mustStatus(t, r, http.StatusOK)
		if c.cookie == nil || !strings.HasPrefix(c.cookie.Value, "ghs_") {
			t.Fatalf("no session cookie: %v", r.header)
		}
		if cc := r.header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("sign-in response Cache-Control %q, want no-store", cc)
		}
		u, s := siUser(t, r), siSession(t, r)
		if u["email"] != "ml@example.com" || u["email_verified"] != true {
			t.Errorf("user after magic link: %v", u)
		}
		if amr := siStrings(s["amr"]); !slices.Equal(amr, []string{"email"}) {
			t.Errorf("amr %v, want [email]", amr)
		}
		sid := s["id"].(string)
		me := c.do("GET", "/v1/me", nil)
		mustStatus(t, me, http.StatusOK)
		if siUser(t, me)["email_verified"] != true {
			t.Errorf("the address is not verified after a magic-link sign-in: %s", me.body)
		}
		// The owner's other device sees the new session, with its methods.
		list := owner.do("GET", "/v1/sessions", nil)
		mustStatus(t, list, http.StatusOK)
		found := false
		for _, x := range list.json(t)["sessions"].([]any) {
			if x := x.(map[string]any); x["id"] == sid {
				found = true
				if amr := siStrings(x["amr"]); !slices.Equal(amr, []string{"email"}) {
					t.Errorf("listed amr %v", amr)
				}
			}
		}
		if !found {
			t.Errorf("session %s not listed: %s", sid, list.body)
		}
		logins := siEvents(siActivity(t, owner), "login.succeeded")
		if len(logins) != 1 || logins[0].Details["method"] != "magic_link" {
			t.Errorf("login events %+v, want one with method magic_link", logins)
		} else if _, ok := logins[0].Details["claimed_unverified_account"]; ok {
			t.Errorf("a sign-in into a verified account was recorded as a claim: %+v", logins[0])
		}

		// Token mode, native client.
		tok = siLink(t, box, h.client(), "ml@example.com")
		r = h.raw("POST", "/v1/magic-link/verify", "application/json", jsonBody(map[string]string{"token": tok, "mode": "token", "client": "native"}), nil)
		mustStatus(t, r, http.StatusOK)
		ts := tokensOf(t, r, refreshCookie)
		if !strings.HasPrefix(ts.refresh, "ghr_") || ts.cookie != nil {
			t.Fatalf("native tokens: refresh %q cookie %v", ts.refresh, ts.cookie)
		}
		for _, sc := range siSetCookies(r) {
			if strings.Contains(sc, "gh_session") {
				t.Errorf("token mode set a session cookie: %s", sc)
			}
		}
		_, claims := jwtParts(t, ts.access)
		if amr := siStrings(claims["amr"]); !slices.Equal(amr, []string{"email"}) {
			t.Errorf("access token amr %v, want [email]", amr)
		}
		if siUser(t, r)["email"] != "ml@example.com" {
			t.Errorf("token sign-in body: %s", r.body)
		}
		mustStatus(t, h.raw("GET", "/v1/me", "", "", bearer(ts.access)), http.StatusOK)
		mustStatus(t, h.refreshNative(ts.refresh, uaFirefox), http.StatusOK)

		// A link for an address without an account answers the same and
		// sends nothing.
		r = h.client().do("POST", "/v1/magic-link", map[string]string{"email": "nobody@example.com"})
		mustStatus(t, r, http.StatusAccepted)
		siLink(t, box, h.client(), "ml@example.com") // a later job has run
		if n := h.mailCount("nobody@example.com"); n != 0 {
			t.Errorf("%d e-mails to an address without an account", n)
		}
	})
}

// A magic-link sign-in verifies the address. Into an account whose address
// was not verified, it also claims the account: the sessions that already
// exist end at once, though they are in the session cache, and the session
// it opens sees the address verified.
func TestMagicLinkVerifiedAddressVisibleAtOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, func(c *config.Config) { c.SessionCacheTTL = time.Hour })
		box := siMails(h)
		owner := h.newUser("seen@example.com")
		if me := owner.do("GET", "/v1/me", nil); siUser(t, me)["email_verified"] != false { // warms the cache
			t.Fatalf("fresh account already verified: %s", me.body)
		}
		tok := siLink(t, box, h.client(), "seen@example.com")
		c := h.client()
		r := c.do("POST", "/v1/magic-link/verify", map[string]string{"token": tok})
		mustStatus(t, r, http.StatusOK)
		if siUser(t, r)["email_verified"] != true {
			t.Errorf("sign-in answer: %s", r.body)
		}
		if me := c.do("GET", "/v1/me", nil); siUser(t, me)["email_verified"] != true {
			t.Errorf("the new session sees email_verified=false: %s", me.body)
		}
		siProblem(t, owner.do("GET", "/v1/me", nil), http.StatusUnauthorized, "unauthenticated")
	})
}

// Opening the link (GET, HEAD: what mail scanners and link previews do)
// never signs anyone in and never spends the link.
func TestAttackMagicLinkGetCreatesNoSession(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		box := siMails(h)
		owner := h.newUser("scan@example.com")
		siVerifyEmail(t, box, "scan@example.com") // the owner's session must survive the sign-in
		tok := siLink(t, box, h.client(), "scan@example.com")
		before := siSessionIDs(t, owner)
		if len(before) != 1 {
			t.Fatalf("sessions before: %v", before)
		}
		for _, req := range []struct{ method, path string }{
			{"GET", "/ui/magic-link"},
			{"GET", "/ui/magic-link?token=" + tok},
			{"HEAD", "/ui/magic-link?token=" + tok},
			{"HEAD", "/ui/magic-link"},
			{"GET", "/ui/magic-link?token=" + tok + "&mode=token&client=native"},
		} {
			r := h.raw(req.method, req.path, "", "", nil)
			mustStatus(t, r, http.StatusOK)
			if sc := siSetCookies(r); len(sc) != 0 {
				t.Errorf("%s %s set cookies %q", req.method, req.path, sc)
			}
			if r.header.Get("Cache-Control") != "no-store" || r.header.Get("Referrer-Policy") != "no-referrer" {
				t.Errorf("%s %s headers %v", req.method, req.path, r.header)
			}
			if bytes.Contains(r.body, []byte(tok)) || bytes.Contains(r.body, []byte("access_token")) {
				t.Errorf("%s %s reflects the secret or hands out tokens", req.method, req.path)
			}
		}
		// The API endpoint does not answer GET either.
		r := h.raw("GET", "/v1/magic-link/verify?token="+tok, "", "", nil)
		siProblem(t, r, http.StatusMethodNotAllowed, "method_not_allowed")
		if sc := siSetCookies(r); len(sc) != 0 {
			t.Errorf("GET of the verify endpoint set cookies %q", sc)
		}

		if after := siSessionIDs(t, owner); !slices.Equal(after, before) {
			t.Fatalf("sessions changed by GETs: %v → %v", before, after)
		}
		if n := len(siEvents(siActivity(t, owner), "login.succeeded")); n != 0 {
			t.Fatalf("%d sign-ins recorded after GETs", n)
		}
		// The link still works, by POST.
		c := h.client()
		mustStatus(t, c.do("POST", "/v1/magic-link/verify", map[string]string{"token": tok}), http.StatusOK)
		if after := siSessionIDs(t, owner); len(after) != 2 {
			t.Fatalf("sessions after POST: %v", after)
		}
	})
}

func TestAttackMagicLinkReused(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		box := siMails(h)
		owner := h.newUser("reuse@example.com")
		siVerifyEmail(t, box, "reuse@example.com") // the owner's session must survive the sign-in
		tok := siLink(t, box, h.client(), "reuse@example.com")
		mustStatus(t, h.client().do("POST", "/v1/magic-link/verify", map[string]string{"token": tok}), http.StatusOK)
		for _, mode := range []map[string]string{{"token": tok}, {"token": tok, "mode": "token", "client": "native"}} {
			c := h.client()
			r := c.do("POST", "/v1/magic-link/verify", mode)
			siProblem(t, r, http.StatusBadRequest, "invalid_token")
			if c.cookie != nil || bytes.Contains(r.body, []byte("access_token")) {
				t.Fatalf("a spent link handed out a session: %s", r.body)
			}
		}
		if ids := siSessionIDs(t, owner); len(ids) != 2 {
			t.Fatalf("sessions %v, want the owner's and one from the link", ids)
		}
		// Forged and malformed secrets are the same answer.
		for _, bad := range []string{"ghl_" + strings.Repeat("A", 43), "ghs_" + strings.Repeat("A", 43), tok + "x", "garbage"} {
			siProblem(t, h.client().do("POST", "/v1/magic-link/verify", map[string]string{"token": bad}), http.StatusBadRequest, "invalid_token")
		}
		siProblem(t, h.client().do("POST", "/v1/magic-link/verify", map[string]string{}), http.StatusBadRequest, "missing_field")
	})
}

// Exactly one of many simultaneous uses of a link signs in.
func TestAttackMagicLinkConcurrentRedemption(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		box := siMails(h)
		owner := h.newUser("race@example.com")
		siVerifyEmail(t, box, "race@example.com") // the owner's session must survive the sign-in
		tok := siLink(t, box, h.client(), "race@example.com")
		statuses := siRace(t, h, 8, "/v1/magic-link/verify", jsonBody(map[string]string{"token": tok}))
		ok := 0
		for _, s := range statuses {
			switch s {
			case http.StatusOK:
				ok++
			case http.StatusBadRequest:
			default:
				t.Errorf("concurrent use answered %d", s)
			}
		}
		if ok != 1 {
			t.Fatalf("%d of 8 concurrent uses signed in (%v), want exactly 1", ok, statuses)
		}
		if ids := siSessionIDs(t, owner); len(ids) != 2 {
			t.Fatalf("sessions %v, want 2", ids)
		}
	})
}

func TestAttackMagicLinkExpired(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		box := siMails(h)
		h.newUser("late@example.com")
		tok := siLink(t, box, h.client(), "late@example.com")
		h.clock.Advance(15*time.Minute + time.Second)
		siProblem(t, h.client().do("POST", "/v1/magic-link/verify", map[string]string{"token": tok}), http.StatusBadRequest, "invalid_token")
		// Just inside its lifetime, a link works.
		tok = siLink(t, box, h.client(), "late@example.com")
		h.clock.Advance(15*time.Minute - time.Second)
		mustStatus(t, h.client().do("POST", "/v1/magic-link/verify", map[string]string{"token": tok}), http.StatusOK)
	})
}

func TestAttackMagicLinkSupersededByNewer(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		box := siMails(h)
		h.newUser("twice@example.com")
		old := siLink(t, box, h.client(), "twice@example.com")
		newer := siLink(t, box, h.client(), "twice@example.com")
		if old == newer {
			t.Fatal("two links share a secret")
		}
		siProblem(t, h.client().do("POST", "/v1/magic-link/verify", map[string]string{"token": old}), http.StatusBadRequest, "invalid_token")
		mustStatus(t, h.client().do("POST", "/v1/magic-link/verify", map[string]string{"token": newer}), http.StatusOK)
		siProblem(t, h.client().do("POST", "/v1/magic-link/verify", map[string]string{"token": old}), http.StatusBadRequest, "invalid_token")
	})
}

// With MagicLinkSameBrowser, a link signs in only the browser that asked
// for it: a forwarded or intercepted link is useless elsewhere.
func TestAttackMagicLinkBoundToBrowser(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, func(c *config.Config) { c.MagicLinkSameBrowser = true })
		box := siMails(h)
		h.newUser("bound@example.com")
		const bindingName = "__Host-gh_magic"
		bindingOf := func(r *response) *http.Cookie {
			t.Helper()
			var found *http.Cookie
			for _, c := range (&http.Response{Header: r.header}).Cookies() {
				if c.Name == bindingName {
					found = c
				}
			}
			if found == nil {
				t.Fatalf("no %s cookie: %q", bindingName, siSetCookies(r))
			}
			if !found.HttpOnly || !found.Secure || found.SameSite != http.SameSiteStrictMode || found.Path != "/" || found.Domain != "" || found.MaxAge != 900 || !strings.HasPrefix(found.Value, "ghb_") {
				t.Errorf("binding cookie attributes: %+v", found)
			}
			return found
		}
		r := h.raw("POST", "/v1/magic-link", "application/json", jsonBody(map[string]string{"email": "bound@example.com"}), nil)
		mustStatus(t, r, http.StatusAccepted)
		mine := bindingOf(r)
		tok := linkToken(t, box.next(t, "bound@example.com", siSubjMagic))

		// An address without an account gets the same cookie (the headers
		// say nothing about accounts); its nonce binds nothing here.
		r = h.raw("POST", "/v1/magic-link", "application/json", jsonBody(map[string]string{"email": "nobody@example.com"}), nil)
		mustStatus(t, r, http.StatusAccepted)
		other := bindingOf(r)
		if other.Value == mine.Value {
			t.Fatal("two requests got the same binding nonce")
		}

		verify := func(cookies ...*http.Cookie) *response {
			return h.raw("POST", "/v1/magic-link/verify", "application/json", jsonBody(map[string]string{"token": tok}), nil, cookies...)
		}
		for label, cookies := range map[string][]*http.Cookie{
			"no cookie":                 nil,
			"another request's nonce":   {other},
			"forged nonce":              {{Name: bindingName, Value: "ghb_" + strings.Repeat("A", 43)}},
			"right nonce, plain name":   {{Name: "gh_magic", Value: mine.Value}},
			"right nonce, wrong prefix": {{Name: bindingName, Value: strings.Replace(mine.Value, "ghb_", "ghs_", 1)}},
		} {
			r := verify(cookies...)
			if r.status != http.StatusBadRequest || r.code(t) != "invalid_token" {
				t.Fatalf("%s: %d %s", label, r.status, r.body)
			}
		}
		// The failed attempts did not spend it: the asking browser signs in.
		r = verify(mine)
		mustStatus(t, r, http.StatusOK)
		if siUser(t, r)["email"] != "bound@example.com" {
			t.Fatalf("signed in as %s", r.body)
		}
		siProblem(t, verify(mine), http.StatusBadRequest, "invalid_token")
	})
}

// A password reset takes the account back: every sign-in link and code
// issued before it is dead.
func TestAttackMagicLinkAfterReset(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		box := siMails(h)
		owner := h.newUser("reset@example.com")
		tok := siLink(t, box, h.client(), "reset@example.com")
		code := siMailCode(t, box, h.client(), "reset@example.com")

		mustStatus(t, h.client().do("POST", "/v1/recovery", map[string]string{"email": "reset@example.com"}), http.StatusAccepted)
		m := box.next(t, "reset@example.com", siSubjReset)
		if !strings.Contains(m.Text, h.cfg.BaseURL()+"/ui/reset-password#token=") {
			t.Fatalf("reset e-mail:\n%s", m.Text)
		}
		r := h.client().do("POST", "/v1/recovery/complete", map[string]string{"token": linkToken(t, m), "new_password": siNewPassword})
		mustStatus(t, r, http.StatusOK)

		siProblem(t, h.client().do("POST", "/v1/magic-link/verify", map[string]string{"token": tok}), http.StatusBadRequest, "invalid_token")
		siProblem(t, h.client().do("POST", "/v1/otp/verify", map[string]string{"email": "reset@example.com", "code": code}), http.StatusUnauthorized, "invalid_code")
		mustStatus(t, owner.do("GET", "/v1/me", nil), http.StatusUnauthorized)
		// The owner signs in with the new password; a new link works.
		mustStatus(t, h.client().login("reset@example.com", siNewPassword), http.StatusOK)
		tok = siLink(t, box, h.client(), "reset@example.com")
		mustStatus(t, h.client().do("POST", "/v1/magic-link/verify", map[string]string{"token": tok}), http.StatusOK)
	})
}

// ---- e-mail codes ----

func TestEmailOTPSignIn(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		box := siMails(h)
		owner := h.newUser("otp@example.com")
		siVerifyEmail(t, box, "otp@example.com") // the owner's session must survive the sign-in
		c := h.client()
		r := c.do("POST", "/v1/otp/email", map[string]string{"email": "OTP@example.com"})
		mustStatus(t, r, http.StatusAccepted)
		if r.json(t)["status"] != "accepted" {
			t.Fatalf("request: %s", r.body)
		}
		code := mailCode(t, box.next(t, "otp@example.com", siSubjCode))
		r = c.do("POST", "/v1/otp/verify", map[string]string{"email": "otp@EXAMPLE.com", "code": code})
		mustStatus(t, r, http.StatusOK)
		if c.cookie == nil {
			t.Fatal("no session cookie")
		}
		u, s := siUser(t, r), siSession(t, r)
		if u["email"] != "otp@example.com" || u["email_verified"] != true {
			t.Errorf("user after code sign-in: %v", u)
		}
		if amr := siStrings(s["amr"]); !slices.Equal(amr, []string{"email"}) {
			t.Errorf("amr %v, want [email]", amr)
		}
		me := c.do("GET", "/v1/me", nil)
		mustStatus(t, me, http.StatusOK)
		if siUser(t, me)["email_verified"] != true {
			t.Errorf("address not verified: %s", me.body)
		}
		logins := siEvents(siActivity(t, owner), "login.succeeded")
		if len(logins) != 1 || logins[0].Details["method"] != "email_otp" {
			t.Errorf("login events %+v", logins)
		}

		// Token mode.
		code = siMailCode(t, box, h.client(), "otp@example.com")
		r = h.raw("POST", "/v1/otp/verify", "application/json", jsonBody(map[string]string{"email": "otp@example.com", "code": code, "mode": "token", "client": "native"}), nil)
		mustStatus(t, r, http.StatusOK)
		ts := tokensOf(t, r, refreshCookie)
		_, claims := jwtParts(t, ts.access)
		if amr := siStrings(claims["amr"]); !slices.Equal(amr, []string{"email"}) {
			t.Errorf("access token amr %v", amr)
		}

		// Input errors.
		for name, body := range map[string]map[string]string{
			"no code":        {"email": "otp@example.com"},
			"no address":     {"code": "123456"},
			"both addresses": {"email": "otp@example.com", "phone": siPhoneA, "code": "123456"},
		} {
			r := h.client().do("POST", "/v1/otp/verify", body)
			if r.status != http.StatusBadRequest || r.code(t) != "missing_field" {
				t.Errorf("%s: %d %s", name, r.status, r.body)
			}
		}
		siProblem(t, h.client().do("POST", "/v1/otp/verify", map[string]string{"email": "not an address", "code": "123456"}), http.StatusBadRequest, "invalid_email")
		siProblem(t, h.client().do("POST", "/v1/otp/email", map[string]string{"email": "not an address"}), http.StatusBadRequest, "invalid_email")
		siProblem(t, h.client().do("POST", "/v1/otp/email", map[string]string{}), http.StatusBadRequest, "missing_field")
		siProblem(t, h.client().do("POST", "/v1/otp/verify", map[string]string{"email": "otp@example.com", "code": "123456", "mode": "carrier-pigeon"}), http.StatusBadRequest, "invalid_field")
	})
}

func TestAttackEmailOTPBruteForceLimit(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		box := siMails(h)
		owner := h.newUser("brute@example.com")
		code := siMailCode(t, box, h.client(), "brute@example.com")
		attacker := h.client()
		for i := range 5 {
			r := attacker.do("POST", "/v1/otp/verify", map[string]string{"email": "brute@example.com", "code": siWrong(code, i)})
			siProblem(t, r, http.StatusUnauthorized, "invalid_code")
		}
		// Five wrong guesses killed the code: even the right one fails now.
		r := attacker.do("POST", "/v1/otp/verify", map[string]string{"email": "brute@example.com", "code": code})
		siProblem(t, r, http.StatusUnauthorized, "invalid_code")
		if attacker.cookie != nil {
			t.Fatal("a dead code signed in")
		}
		// Five counted failures, then the right code against a dead one:
		// counted as the sixth attempt, which kills the code.
		failed := siEvents(siActivity(t, owner), "verification.failed")
		if len(failed) != 6 {
			t.Fatalf("%d verification.failed events, want 6", len(failed))
		}
		var attempts []string
		for _, e := range failed {
			if e.Details["purpose"] != "email_otp" {
				t.Errorf("failure event details %v", e.Details)
			}
			attempts = append(attempts, e.Details["attempts"])
		}
		slices.Sort(attempts)
		if !slices.Equal(attempts, []string{"1", "2", "3", "4", "5", "6"}) {
			t.Errorf("attempt counts %v", attempts)
		}
		// The owner is not locked out: a fresh code works.
		code = siMailCode(t, box, h.client(), "brute@example.com")
		mustStatus(t, h.client().do("POST", "/v1/otp/verify", map[string]string{"email": "brute@example.com", "code": code}), http.StatusOK)
	})
}

func TestAttackEmailOTPReplay(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		box := siMails(h)
		owner := h.newUser("replay@example.com")
		siVerifyEmail(t, box, "replay@example.com") // the owner's session must survive the sign-in
		code := siMailCode(t, box, h.client(), "replay@example.com")
		body := map[string]string{"email": "replay@example.com", "code": code}
		mustStatus(t, h.client().do("POST", "/v1/otp/verify", body), http.StatusOK)
		c := h.client()
		siProblem(t, c.do("POST", "/v1/otp/verify", body), http.StatusUnauthorized, "invalid_code")
		if c.cookie != nil {
			t.Fatal("replayed code set a cookie")
		}
		if ids := siSessionIDs(t, owner); len(ids) != 2 {
			t.Fatalf("sessions %v, want 2", ids)
		}
	})
}

func TestAttackEmailOTPConcurrentRedemption(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		box := siMails(h)
		owner := h.newUser("otprace@example.com")
		siVerifyEmail(t, box, "otprace@example.com") // the owner's session must survive the sign-in
		code := siMailCode(t, box, h.client(), "otprace@example.com")
		statuses := siRace(t, h, 8, "/v1/otp/verify", jsonBody(map[string]string{"email": "otprace@example.com", "code": code}))
		ok := 0
		for _, s := range statuses {
			switch s {
			case http.StatusOK:
				ok++
			case http.StatusUnauthorized:
			default:
				t.Errorf("concurrent use answered %d", s)
			}
		}
		if ok != 1 {
			t.Fatalf("%d of 8 concurrent uses signed in (%v), want exactly 1", ok, statuses)
		}
		if ids := siSessionIDs(t, owner); len(ids) != 2 {
			t.Fatalf("sessions %v, want 2", ids)
		}
	})
}

func TestAttackEmailOTPNewCodeInvalidatesOld(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		box := siMails(h)
		h.newUser("newer@example.com")
		old := siMailCode(t, box, h.client(), "newer@example.com")
		newer := siMailCode(t, box, h.client(), "newer@example.com")
		if old == newer {
			t.Skip("the two random codes are equal (one chance in a million)")
		}
		siProblem(t, h.client().do("POST", "/v1/otp/verify", map[string]string{"email": "newer@example.com", "code": old}), http.StatusUnauthorized, "invalid_code")
		mustStatus(t, h.client().do("POST", "/v1/otp/verify", map[string]string{"email": "newer@example.com", "code": newer}), http.StatusOK)
	})
}

func TestAttackEmailOTPExpired(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		box := siMails(h)
		h.newUser("stale@example.com")
		code := siMailCode(t, box, h.client(), "stale@example.com")
		h.clock.Advance(10*time.Minute + time.Second)
		siProblem(t, h.client().do("POST", "/v1/otp/verify", map[string]string{"email": "stale@example.com", "code": code}), http.StatusUnauthorized, "invalid_code")
		code = siMailCode(t, box, h.client(), "stale@example.com")
		h.clock.Advance(10*time.Minute - time.Second)
		mustStatus(t, h.client().do("POST", "/v1/otp/verify", map[string]string{"email": "stale@example.com", "code": code}), http.StatusOK)
	})
}

// An address without an account is indistinguishable from one with an
// account and a wrong code, on request and on verification.
func TestAttackEmailOTPUnknownAccount(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		box := siMails(h)
		h.newUser("known@example.com")
		c := h.client()
		unknownSend := c.do("POST", "/v1/otp/email", map[string]string{"email": "nobody@example.com"})
		knownSend := c.do("POST", "/v1/otp/email", map[string]string{"email": "known@example.com"})
		mustStatus(t, unknownSend, http.StatusAccepted)
		mustStatus(t, knownSend, http.StatusAccepted)
		if !bytes.Equal(unknownSend.body, knownSend.body) || len(siSetCookies(unknownSend)) != 0 || len(siSetCookies(knownSend)) != 0 ||
			unknownSend.header.Get("Content-Type") != knownSend.header.Get("Content-Type") {
			t.Errorf("requests differ:\n%v %s\n%v %s", unknownSend.header, unknownSend.body, knownSend.header, knownSend.body)
		}
		code := mailCode(t, box.next(t, "known@example.com", siSubjCode))

		wrong := c.do("POST", "/v1/otp/verify", map[string]string{"email": "known@example.com", "code": siWrong(code, 0)})
		// Even the known account's real code, with the unknown address.
		unknown := c.do("POST", "/v1/otp/verify", map[string]string{"email": "nobody@example.com", "code": code})
		siProblem(t, wrong, http.StatusUnauthorized, "invalid_code")
		siProblem(t, unknown, http.StatusUnauthorized, "invalid_code")
		wb, ub := siBody(t, wrong), siBody(t, unknown)
		if fmt.Sprint(wb) != fmt.Sprint(ub) {
			t.Errorf("bodies differ:\n%v\n%v", wb, ub)
		}
		for _, k := range []string{"Content-Type", "Cache-Control", "WWW-Authenticate", "Retry-After"} {
			if wrong.header.Get(k) != unknown.header.Get(k) {
				t.Errorf("header %s differs: %q vs %q", k, wrong.header.Get(k), unknown.header.Get(k))
			}
		}
		if n := h.mailCount("nobody@example.com"); n != 0 {
			t.Errorf("%d e-mails to an address without an account", n)
		}
		// The right code still works for its own address.
		mustStatus(t, c.do("POST", "/v1/otp/verify", map[string]string{"email": "known@example.com", "code": code}), http.StatusOK)
	})
}

// Guesses spread over fresh codes still run into the per-address limit
// (LoginFailuresPerAccount = 10 per 15 minutes), for addresses with and
// without an account alike.
func TestAttackEmailOTPThrottledAcrossCodes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		box := siMails(h)
		h.newUser("spread@example.com")
		guess := func(email, code string) *response {
			return h.client().do("POST", "/v1/otp/verify", map[string]string{"email": email, "code": code})
		}
		for range 2 {
			code := siMailCode(t, box, h.client(), "spread@example.com")
			for i := range 5 {
				siProblem(t, guess("spread@example.com", siWrong(code, i)), http.StatusUnauthorized, "invalid_code")
			}
		}
		// Ten guesses spent: the next one is refused before it is checked,
		// even with a fresh, right code.
		code := siMailCode(t, box, h.client(), "spread@example.com")
		r := guess("spread@example.com", code)
		siProblem(t, r, http.StatusTooManyRequests, "rate_limited")
		if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra <= 0 || ra > 15*60 {
			t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
		}
		// The same for an address without an account.
		for range 10 {
			siProblem(t, guess("ghost@example.com", "123456"), http.StatusUnauthorized, "invalid_code")
		}
		siProblem(t, guess("ghost@example.com", "123456"), http.StatusTooManyRequests, "rate_limited")
		// Another address is unaffected.
		siProblem(t, guess("other@example.com", "123456"), http.StatusUnauthorized, "invalid_code")

		if backend != "sqlite" {
			return // Redis counts in real time: the window cannot be advanced
		}
		h.clock.Advance(15*time.Minute + time.Second)
		code = siMailCode(t, box, h.client(), "spread@example.com")
		mustStatus(t, guess("spread@example.com", code), http.StatusOK)
	})
}

// Codes that cannot be codes are refused before anything is looked up or
// counted: they neither count against the code nor against the address, so
// the right code still works after any number of them.
func TestEmailOTPMalformedCodes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		box := siMails(h)
		owner := h.newUser("shape@example.com")
		code := siMailCode(t, box, h.client(), "shape@example.com")
		bad := []string{"12345", "abcdef", "1234567", " " + code, code + " ", "12 345", "１２３４５６", "-12345", "+12345", "12345\n", "0x1234"}
		for range 2 { // 22 tries, more than the per-address limit of 10
			for _, b := range bad {
				siProblem(t, h.client().do("POST", "/v1/otp/verify", map[string]string{"email": "shape@example.com", "code": b}), http.StatusUnauthorized, "invalid_code")
			}
		}
		if n := len(siEvents(siActivity(t, owner), "verification.failed")); n != 0 {
			t.Errorf("%d verification.failed events for malformed codes", n)
		}
		mustStatus(t, h.client().do("POST", "/v1/otp/verify", map[string]string{"email": "shape@example.com", "code": code}), http.StatusOK)
	})
}

// ---- phone numbers and text codes ----

func TestPhoneAddVerifyRemove(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h, rx := siSMSHarness(t, backend, nil)
		siMustPhone(t, "+44 7400 123456", siPhoneA)
		siMustPhone(t, siPhoneB, siPhoneB)
		c := h.newUser("phone@example.com")

		r := c.do("POST", "/v1/phone", map[string]string{"phone": "+44 7400 123456"})
		mustStatus(t, r, http.StatusAccepted)
		if r.json(t)["status"] != "accepted" {
			t.Fatalf("add: %s", r.body)
		}
		m := rx.next(t, siPhoneA)
		if !strings.HasPrefix(m.ID, "sms_") {
			t.Errorf("message id %q", m.ID)
		}
		if at, err := time.Parse(time.RFC3339, m.SentAt); err != nil || time.Since(at).Abs() > time.Minute {
			t.Errorf("sent_at %q: %v", m.SentAt, err)
		}
		code := siSMSCode(t, m)
		if !strings.Contains(m.Body, "expires in 10 minutes") {
			t.Errorf("text %q does not say when the code expires", m.Body)
		}
		// Unverified, the number is not the account's.
		if me := c.do("GET", "/v1/me", nil); siUser(t, me)["phone"] != nil {
			t.Fatalf("number set before verification: %s", me.body)
		}
		siProblem(t, c.do("POST", "/v1/phone/verify", map[string]string{"code": siWrong(code, 0)}), http.StatusUnauthorized, "invalid_code")
		siProblem(t, c.do("POST", "/v1/phone/verify", map[string]string{"code": "12345"}), http.StatusUnauthorized, "invalid_code")
		siProblem(t, h.client().do("POST", "/v1/phone/verify", map[string]string{"code": code}), http.StatusUnauthorized, "unauthenticated")
		r = c.do("POST", "/v1/phone/verify", map[string]string{"code": code})
		mustStatus(t, r, http.StatusOK)
		if siUser(t, r)["phone"] != siPhoneA {
			t.Fatalf("verify: %s", r.body)
		}
		me := c.do("GET", "/v1/me", nil)
		mustStatus(t, me, http.StatusOK)
		if siUser(t, me)["phone"] != siPhoneA {
			t.Fatalf("/v1/me after verification: %s", me.body)
		}
		siProblem(t, c.do("POST", "/v1/phone/verify", map[string]string{"code": code}), http.StatusUnauthorized, "invalid_code")
		if len(siEvents(siActivity(t, c), "phone.verified")) != 1 {
			t.Error("no phone.verified event")
		}

		// Changing or removing the number needs a recent sign-in.
		h.clock.Advance(10*time.Minute + time.Second)
		siProblem(t, c.do("POST", "/v1/phone", map[string]string{"phone": siPhoneB}), http.StatusForbidden, "reauthentication_required")
		siProblem(t, c.do("DELETE", "/v1/phone", nil), http.StatusForbidden, "reauthentication_required")
		mustStatus(t, c.do("POST", "/v1/reauthenticate", map[string]string{"password": goodPassword}), http.StatusOK)
		r = c.do("DELETE", "/v1/phone", nil)
		mustStatus(t, r, http.StatusOK)
		if siUser(t, r)["phone"] != nil {
			t.Fatalf("remove: %s", r.body)
		}
		if me := c.do("GET", "/v1/me", nil); siUser(t, me)["phone"] != nil {
			t.Fatalf("/v1/me after removal: %s", me.body)
		}
		siProblem(t, c.do("DELETE", "/v1/phone", nil), http.StatusNotFound, "not_found")
		if len(siEvents(siActivity(t, c), "phone.removed")) != 1 {
			t.Error("no phone.removed event")
		}
		if n := rx.count(siPhoneB); n != 0 {
			t.Errorf("%d texts to a number added without a recent sign-in", n)
		}
	})
}

// The session that verified or removed a number sees the change at once,
// and so does the account's other session, though both are in the session
// cache: GET /v1/me shows it, and the number can be removed right after it
// was added.
func TestPhoneChangeVisibleAtOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h, rx := siSMSHarness(t, backend, nil)
		c := h.newUser("atonce@example.com")
		other := siFresh(t, h, "atonce@example.com")
		mustStatus(t, c.do("GET", "/v1/me", nil), http.StatusOK)
		mustStatus(t, other.do("GET", "/v1/me", nil), http.StatusOK)
		siAddPhone(t, rx, c, siPhoneA)
		for name, cl := range map[string]*client{"verifying session": c, "other session": other} {
			if me := cl.do("GET", "/v1/me", nil); siUser(t, me)["phone"] != siPhoneA {
				t.Errorf("%s: GET /v1/me right after verification has no phone: %s", name, me.body)
			}
		}
		r := c.do("DELETE", "/v1/phone", nil)
		if r.status != http.StatusOK {
			t.Fatalf("DELETE /v1/phone right after verification: %d %s", r.status, r.body)
		}
		for name, cl := range map[string]*client{"removing session": c, "other session": other} {
			if me := cl.do("GET", "/v1/me", nil); siUser(t, me)["phone"] != nil {
				t.Errorf("%s: GET /v1/me right after removal still has the phone: %s", name, me.body)
			}
		}
	})
}

func TestSMSOTPSignIn(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h, rx := siSMSHarness(t, backend, nil)
		siMustPhone(t, siPhoneA, siPhoneA)
		siMustPhone(t, siPhoneC, siPhoneC)
		owner := h.newUser("sms@example.com")
		siAddPhone(t, rx, owner, siPhoneA)

		c := h.client()
		r := c.do("POST", "/v1/otp/sms", map[string]string{"phone": "+44 7400-123456"})
		mustStatus(t, r, http.StatusAccepted)
		accepted := r.body
		code := siSMSCode(t, rx.next(t, siPhoneA))
		r = c.do("POST", "/v1/otp/verify", map[string]string{"phone": siPhoneA, "code": code})
		mustStatus(t, r, http.StatusOK)
		if c.cookie == nil {
			t.Fatal("no session cookie")
		}
		u, s := siUser(t, r), siSession(t, r)
		if u["email"] != "sms@example.com" || u["phone"] != siPhoneA {
			t.Errorf("user %v", u)
		}
		if u["email_verified"] != false {
			t.Errorf("a text code verified the e-mail address: %v", u)
		}
		if amr := siStrings(s["amr"]); !slices.Equal(amr, []string{"otp", "sms"}) {
			t.Errorf("amr %v, want [otp sms]", amr)
		}
		logins := siEvents(siActivity(t, owner), "login.succeeded")
		if len(logins) != 1 || logins[0].Details["method"] != "sms_otp" {
			t.Errorf("login events %+v", logins)
		}
		siProblem(t, h.client().do("POST", "/v1/otp/verify", map[string]string{"phone": siPhoneA, "code": code}), http.StatusUnauthorized, "invalid_code")

		// Token mode.
		mustStatus(t, h.client().do("POST", "/v1/otp/sms", map[string]string{"phone": siPhoneA}), http.StatusAccepted)
		code = siSMSCode(t, rx.next(t, siPhoneA))
		r = h.raw("POST", "/v1/otp/verify", "application/json", jsonBody(map[string]string{"phone": siPhoneA, "code": code, "mode": "token", "client": "native"}), nil)
		mustStatus(t, r, http.StatusOK)
		_, claims := jwtParts(t, tokensOf(t, r, refreshCookie).access)
		if amr := siStrings(claims["amr"]); !slices.Equal(amr, []string{"otp", "sms"}) {
			t.Errorf("access token amr %v", amr)
		}

		// A number without an account: the same answer, and no text.
		r = h.client().do("POST", "/v1/otp/sms", map[string]string{"phone": siPhoneC})
		mustStatus(t, r, http.StatusAccepted)
		if !bytes.Equal(r.body, accepted) {
			t.Errorf("answers differ: %s vs %s", r.body, accepted)
		}
		mustStatus(t, h.client().do("POST", "/v1/otp/sms", map[string]string{"phone": siPhoneA}), http.StatusAccepted)
		rx.next(t, siPhoneA)
		time.Sleep(200 * time.Millisecond)
		if n := rx.count(siPhoneC); n != 0 {
			t.Errorf("%d texts to a number without an account", n)
		}
		siProblem(t, h.client().do("POST", "/v1/otp/verify", map[string]string{"phone": siPhoneC, "code": code}), http.StatusUnauthorized, "invalid_code")
	})
}

func TestAttackSMSOTPBruteForceLimit(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h, rx := siSMSHarness(t, backend, nil)
		owner := h.newUser("smsbrute@example.com")
		siAddPhone(t, rx, owner, siPhoneA)
		mustStatus(t, h.client().do("POST", "/v1/otp/sms", map[string]string{"phone": siPhoneA}), http.StatusAccepted)
		code := siSMSCode(t, rx.next(t, siPhoneA))
		attacker := h.client()
		for i := range 5 {
			siProblem(t, attacker.do("POST", "/v1/otp/verify", map[string]string{"phone": siPhoneA, "code": siWrong(code, i)}), http.StatusUnauthorized, "invalid_code")
		}
		siProblem(t, attacker.do("POST", "/v1/otp/verify", map[string]string{"phone": siPhoneA, "code": code}), http.StatusUnauthorized, "invalid_code")
		if attacker.cookie != nil {
			t.Fatal("a dead code signed in")
		}
		failed := siEvents(siActivity(t, owner), "verification.failed")
		if len(failed) != 6 {
			t.Fatalf("%d verification.failed events, want 6 (5 counted, then one against the dead code)", len(failed))
		}
		for _, e := range failed {
			if e.Details["purpose"] != "sms_otp" {
				t.Errorf("failure event details %v", e.Details)
			}
		}
	})
}

// Removing the number kills the codes in flight to it; a number that moves
// to another account signs in only that account.
func TestAttackSMSOTPAfterPhoneRemoved(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h, rx := siSMSHarness(t, backend, nil)
		owner := h.newUser("gone@example.com")
		siAddPhone(t, rx, owner, siPhoneA)
		mustStatus(t, h.client().do("POST", "/v1/otp/sms", map[string]string{"phone": siPhoneA}), http.StatusAccepted)
		code := siSMSCode(t, rx.next(t, siPhoneA))
		mustStatus(t, owner.do("DELETE", "/v1/phone", nil), http.StatusOK)
		siProblem(t, h.client().do("POST", "/v1/otp/verify", map[string]string{"phone": siPhoneA, "code": code}), http.StatusUnauthorized, "invalid_code")

		// The number is re-assigned to another account.
		next := h.newUser("next@example.com")
		siAddPhone(t, rx, next, siPhoneA)
		siProblem(t, h.client().do("POST", "/v1/otp/verify", map[string]string{"phone": siPhoneA, "code": code}), http.StatusUnauthorized, "invalid_code")
		mustStatus(t, h.client().do("POST", "/v1/otp/sms", map[string]string{"phone": siPhoneA}), http.StatusAccepted)
		code = siSMSCode(t, rx.next(t, siPhoneA))
		r := h.client().do("POST", "/v1/otp/verify", map[string]string{"phone": siPhoneA, "code": code})
		mustStatus(t, r, http.StatusOK)
		if siUser(t, r)["email"] != "next@example.com" {
			t.Fatalf("the number signed in %s", r.body)
		}
	})
}

func TestAttackPhoneTakenByOther(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h, rx := siSMSHarness(t, backend, nil)
		owner := h.newUser("first@example.com")
		siAddPhone(t, rx, owner, siPhoneA)
		other := h.newUser("second@example.com")
		// Asking says nothing about the number's owner.
		mustStatus(t, other.do("POST", "/v1/phone", map[string]string{"phone": siPhoneA}), http.StatusAccepted)
		code := siSMSCode(t, rx.next(t, siPhoneA))
		siProblem(t, other.do("POST", "/v1/phone/verify", map[string]string{"code": code}), http.StatusConflict, "phone_taken")
		if me := other.do("GET", "/v1/me", nil); siUser(t, me)["phone"] != nil {
			t.Fatalf("second account got the number: %s", me.body)
		}
		if me := owner.do("GET", "/v1/me", nil); siUser(t, me)["phone"] != siPhoneA {
			t.Fatalf("first account lost the number: %s", me.body)
		}
		mustStatus(t, h.client().do("POST", "/v1/otp/sms", map[string]string{"phone": siPhoneA}), http.StatusAccepted)
		code = siSMSCode(t, rx.next(t, siPhoneA))
		r := h.client().do("POST", "/v1/otp/verify", map[string]string{"phone": siPhoneA, "code": code})
		mustStatus(t, r, http.StatusOK)
		if siUser(t, r)["email"] != "first@example.com" {
			t.Fatalf("the number signed in %s", r.body)
		}
	})
}

func TestPhoneInvalidNumbers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h, rx := siSMSHarness(t, backend, nil)
		c := h.newUser("badphone@example.com")
		for _, raw := range []string{
			"+44 7400 ABC456",    // letters
			"+4474",              // too short
			siPhonePremium,       // premium rate (toll fraud)
			siPhoneFixed,         // fixed line: cannot receive texts
			"+448001234567",      // toll free
			"07400123456",        // national, and no default region
			"tel:+447400123456",  // a URI, not a number
			"+447400123456 x12",  // an extension
			"+44740012345678901", // too long
			"++447400123456",
			strings.Repeat("1", 40),
		} {
			if _, err := sms.Normalize(raw, ""); err == nil {
				t.Fatalf("sms.Normalize accepts %q", raw)
			}
			for _, req := range []struct {
				c    *client
				path string
				body map[string]string
			}{
				{h.client(), "/v1/otp/sms", map[string]string{"phone": raw}},
				{c, "/v1/phone", map[string]string{"phone": raw}},
				{h.client(), "/v1/otp/verify", map[string]string{"phone": raw, "code": "123456"}},
			} {
				r := req.c.do("POST", req.path, req.body)
				if r.status != http.StatusBadRequest || r.code(t) != "invalid_phone" {
					t.Errorf("%s %q: %d %s", req.path, raw, r.status, r.body)
				}
			}
		}
		siProblem(t, h.client().do("POST", "/v1/otp/sms", map[string]string{"phone": ""}), http.StatusBadRequest, "missing_field")
		siProblem(t, c.do("POST", "/v1/phone", map[string]string{}), http.StatusBadRequest, "missing_field")
		time.Sleep(100 * time.Millisecond)
		if delivered, hits := rx.total(); delivered != 0 || hits != 0 {
			t.Fatalf("%d texts sent (%d requests) for invalid numbers", delivered, hits)
		}
	})
}

// A failing or slow SMS provider never holds up the request: the answer is
// 202 at once, and the message is retried in the background.
func TestSMSOTPProviderFailureDoesNotBlock(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h, rx := siSMSHarness(t, backend, nil)
		owner := h.newUser("flaky@example.com")
		siAddPhone(t, rx, owner, siPhoneA)
		_, hitsBefore := rx.total()

		gate := make(chan struct{})
		var release sync.Once
		open := func() { release.Do(func() { close(gate) }) }
		defer open()
		rx.mu.Lock()
		rx.status, rx.gate = http.StatusInternalServerError, gate
		rx.mu.Unlock()

		start := time.Now()
		mustStatus(t, h.client().do("POST", "/v1/otp/sms", map[string]string{"phone": siPhoneA}), http.StatusAccepted)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("the request waited %v for the provider", d)
		}
		// The provider has the request (and holds it): the answer did not
		// wait for it.
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, hits := rx.total(); hits > hitsBefore {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the provider never got the message")
			}
			time.Sleep(20 * time.Millisecond)
		}
		// It answers 500 to that request, then recovers: the retry delivers.
		rx.mu.Lock()
		rx.status, rx.gate = 0, nil
		rx.mu.Unlock()
		open()
		code := siSMSCode(t, rx.next(t, siPhoneA))
		mustStatus(t, h.client().do("POST", "/v1/otp/verify", map[string]string{"phone": siPhoneA, "code": code}), http.StatusOK)
		if _, hits := rx.total(); hits < hitsBefore+2 {
			t.Errorf("delivered without a retry (%d requests)", hits-hitsBefore)
		}
	})
}

// SMS pumping: texts per number and per client IP are limited, whether or
// not the number belongs to an account.
func TestAttackSMSPumpingThrottled(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h, _ := siSMSHarness(t, backend, nil)
		siMustPhone(t, "+49 151 23456789", siPhoneD)
		for i := range 5 {
			r := h.client().do("POST", "/v1/otp/sms", map[string]string{"phone": siPhoneD})
			if r.status != http.StatusAccepted {
				t.Fatalf("request %d: %d %s", i+1, r.status, r.body)
			}
		}
		r := h.client().do("POST", "/v1/otp/sms", map[string]string{"phone": siPhoneD})
		siProblem(t, r, http.StatusTooManyRequests, "rate_limited")
		if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra <= 0 || ra > 3600 {
			t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
		}
		// Another spelling of the same number is the same number.
		siProblem(t, h.client().do("POST", "/v1/otp/sms", map[string]string{"phone": "+49 151 23456789"}), http.StatusTooManyRequests, "rate_limited")
		// Adding it to an account counts against the same limit.
		c := h.newUser("pump@example.com")
		siProblem(t, c.do("POST", "/v1/phone", map[string]string{"phone": siPhoneD}), http.StatusTooManyRequests, "rate_limited")
		// Another number is not affected.
		mustStatus(t, h.client().do("POST", "/v1/otp/sms", map[string]string{"phone": siPhoneC}), http.StatusAccepted)
	})
}

func TestAttackSMSPumpingPerIP(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h, _ := siSMSHarness(t, backend, func(c *config.Config) { c.MessagesPerIP = 3 })
		for _, p := range []string{siPhoneA, siPhoneB, siPhoneC} {
			mustStatus(t, h.client().do("POST", "/v1/otp/sms", map[string]string{"phone": p}), http.StatusAccepted)
		}
		siProblem(t, h.client().do("POST", "/v1/otp/sms", map[string]string{"phone": siPhoneD}), http.StatusTooManyRequests, "rate_limited")
		// The budget is the IP's, across channels.
		siProblem(t, h.client().do("POST", "/v1/otp/email", map[string]string{"email": "anyone@example.com"}), http.StatusTooManyRequests, "rate_limited")
		siProblem(t, h.client().do("POST", "/v1/magic-link", map[string]string{"email": "anyone@example.com"}), http.StatusTooManyRequests, "rate_limited")
	})
}

// ---- fixation ----

// A browser that completes a link or code sign-in gets a new session; the
// session it came with (planted by an attacker, or its own) is revoked.
func TestAttackSignInByProofSupersedesSession(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h, rx := siSMSHarness(t, backend, nil)
		box := siMails(h)
		victimOwner := h.newUser("fixed@example.com")
		siVerifyEmail(t, box, "fixed@example.com") // victimOwner must survive the sign-ins
		siAddPhone(t, rx, victimOwner, siPhoneA)

		methods := []struct {
			name     string
			complete func(c *client) *response
		}{
			{"magic link", func(c *client) *response {
				tok := siLink(t, box, h.client(), "fixed@example.com")
				return c.do("POST", "/v1/magic-link/verify", map[string]string{"token": tok})
			}},
			{"e-mail code", func(c *client) *response {
				code := siMailCode(t, box, h.client(), "fixed@example.com")
				return c.do("POST", "/v1/otp/verify", map[string]string{"email": "fixed@example.com", "code": code})
			}},
			{"text code", func(c *client) *response {
				mustStatus(t, h.client().do("POST", "/v1/otp/sms", map[string]string{"phone": siPhoneA}), http.StatusAccepted)
				code := siSMSCode(t, rx.next(t, siPhoneA))
				return c.do("POST", "/v1/otp/verify", map[string]string{"phone": siPhoneA, "code": code})
			}},
		}
		for i, m := range methods {
			// The attacker plants their own session in the victim's browser.
			attacker := h.newUser(fmt.Sprintf("mallory%d@example.com", i))
			planted := *attacker.cookie
			victim := h.client()
			victim.cookie = &planted
			r := m.complete(victim)
			mustStatus(t, r, http.StatusOK)
			if victim.cookie == nil || victim.cookie.Value == planted.Value {
				t.Fatalf("%s: sign-in kept the planted session secret", m.name)
			}
			if siUser(t, r)["email"] != "fixed@example.com" {
				t.Fatalf("%s: signed in as %s", m.name, r.body)
			}
			siProblem(t, attacker.do("GET", "/v1/me", nil), http.StatusUnauthorized, "unauthenticated")

			// The victim's own older session in that browser is replaced too.
			oldCookie := *victim.cookie
			oldID := siSession(t, r)["id"].(string)
			r = m.complete(victim)
			mustStatus(t, r, http.StatusOK)
			newID := siSession(t, r)["id"].(string)
			if newID == oldID || victim.cookie.Value == oldCookie.Value {
				t.Fatalf("%s: the session id or secret was kept", m.name)
			}
			stale := h.client()
			stale.cookie = &oldCookie
			siProblem(t, stale.do("GET", "/v1/me", nil), http.StatusUnauthorized, "unauthenticated")
			ids := siSessionIDs(t, victimOwner)
			if slices.Contains(ids, oldID) || !slices.Contains(ids, newID) {
				t.Fatalf("%s: live sessions %v (old %s, new %s)", m.name, ids, oldID, newID)
			}
		}
	})
}

// TestAttackEmailOTPParallelGuessesBounded: guesses sent all at once must
// not each be compared against the live code. Every attempt is counted
// before its comparison, so of 40 parallel wrong guesses exactly five are
// compared (attempts 1–5) and the code is dead afterwards.
func TestAttackEmailOTPParallelGuessesBounded(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, func(c *config.Config) {
			c.LoginFailuresPerAccount, c.LoginMaxFailuresPerAccount = 1000, 1000 // the per-code limit alone is under test
			c.LoginAttemptsPerIP = 1000
		})
		box := siMails(h)
		owner := h.newUser("parallel@example.com")
		code := siMailCode(t, box, h.client(), "parallel@example.com")
		var wg sync.WaitGroup
		for i := range 40 {
			body := jsonBody(map[string]string{"email": "parallel@example.com", "code": siWrong(code, i)})
			wg.Go(func() {
				if r := h.raw("POST", "/v1/otp/verify", "application/json", body, nil); r.status != http.StatusUnauthorized {
					t.Errorf("parallel guess: status %d: %s", r.status, r.body)
				}
			})
		}
		wg.Wait()
		siProblem(t, h.client().do("POST", "/v1/otp/verify", map[string]string{"email": "parallel@example.com", "code": code}), http.StatusUnauthorized, "invalid_code")
		compared := 0
		for _, e := range siEvents(siActivity(t, owner), "verification.failed") {
			if n, err := strconv.Atoi(e.Details["attempts"]); err == nil && n >= 1 && n <= 5 {
				compared++
			}
		}
		if compared != 5 {
			t.Fatalf("%d guesses were compared against the live code, want exactly 5", compared)
		}
	})
}

// ---- pre-hijacking, and phone numbers an intruder added ----

// siSquatterPassword is the password a pre-hijacker signs up with.
const siSquatterPassword = "the squatter's very own passphrase 31"

// siSettle gives background jobs queued before it a moment to finish, so
// that an absent message is really absent rather than late.
func siSettle() { time.Sleep(300 * time.Millisecond) }

// siClaimMethods are the e-mail proofs that sign in, and so claim an
// account whose address was not verified.
var siClaimMethods = []struct {
	name   string
	method string // login.succeeded's details
	signIn func(t *testing.T, b *siMailbox, c *client, email string) *response
}{
	{"magic link", "magic_link", func(t *testing.T, b *siMailbox, c *client, email string) *response {
		return c.do("POST", "/v1/magic-link/verify", map[string]string{"token": siLink(t, b, b.h.client(), email)})
	}},
	{"e-mail code", "email_otp", func(t *testing.T, b *siMailbox, c *client, email string) *response {
		return c.do("POST", "/v1/otp/verify", map[string]string{"email": email, "code": siMailCode(t, b, b.h.client(), email)})
	}},
}

// An attacker signs up with the victim's address before the victim does,
// and keeps what sign-up gave them: a cookie session, a token-mode session
// and a change of address in flight (without RequireVerifiedEmail), and the
// password. The victim's first sign-in by magic link or e-mail code proves
// the address and takes all of it away.
func TestAttackPreHijackedAccountClaimedByMagicLink(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		for _, m := range siClaimMethods {
			for _, requireVerified := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/require-verified=%v", m.name, requireVerified), func(t *testing.T) {
					h := newHarness(t, backend, func(c *config.Config) { c.RequireVerifiedEmail = requireVerified })
					box := siMails(h)
					const victimAddr, attackerAddr = "victim@example.com", "squatter@evil.example"

					attacker := h.client()
					r := attacker.signup(victimAddr, siSquatterPassword)
					var tokens tokenSet
					var change string
					wantRevoked := "0"
					if requireVerified {
						mustStatus(t, r, http.StatusAccepted)
						if attacker.cookie != nil {
							t.Fatal("sign-up of an unverified account gave a session")
						}
						siProblem(t, h.client().login(victimAddr, siSquatterPassword), http.StatusUnauthorized, "invalid_credentials")
					} else {
						mustStatus(t, r, http.StatusCreated)
						if attacker.cookie == nil {
							t.Fatal("no session from sign-up")
						}
						r = h.raw("POST", "/v1/login", "application/json", jsonBody(map[string]string{"email": victimAddr, "password": siSquatterPassword, "mode": "token", "client": "native"}), nil)
						mustStatus(t, r, http.StatusOK)
						tokens = tokensOf(t, r, refreshCookie)
						// A change of address to the attacker's own, waiting for
						// its link.
						mustStatus(t, attacker.do("POST", "/v1/email", map[string]string{"new_email": attackerAddr, "current_password": siSquatterPassword}), http.StatusAccepted)
						change = linkToken(t, box.next(t, attackerAddr, "Confirm your new e-mail address"))
						wantRevoked = "2"
					}

					// The victim signs in by proving the mailbox.
					victim := h.client()
					r = m.signIn(t, box, victim, victimAddr)
					mustStatus(t, r, http.StatusOK)
					if u := siUser(t, r); u["email"] != victimAddr || u["email_verified"] != true {
						t.Fatalf("victim's sign-in: %s", r.body)
					}

					// The attacker keeps nothing.
					if !requireVerified {
						siProblem(t, attacker.do("GET", "/v1/me", nil), http.StatusUnauthorized, "unauthenticated")
						mustStatus(t, h.raw("GET", "/v1/me", "", "", bearer(tokens.access)), http.StatusUnauthorized)
						siProblem(t, h.refreshNative(tokens.refresh, uaCurl), http.StatusUnauthorized, "invalid_grant")
						siProblem(t, h.client().do("POST", "/v1/verify-email", map[string]string{"token": change}), http.StatusBadRequest, "invalid_token")
					}
					siProblem(t, h.client().login(victimAddr, siSquatterPassword), http.StatusUnauthorized, "invalid_credentials")

					// The victim's session works, and is the account's only one.
					me := victim.do("GET", "/v1/me", nil)
					mustStatus(t, me, http.StatusOK)
					if u := siUser(t, me); u["email"] != victimAddr || u["email_verified"] != true {
						t.Errorf("/v1/me of the victim: %s", me.body)
					}
					if ids := siSessionIDs(t, victim); len(ids) != 1 || ids[0] != siSession(t, r)["id"] {
						t.Errorf("live sessions %v, want only the victim's %v", ids, siSession(t, r)["id"])
					}
					var claims []siEvent
					for _, e := range siEvents(siActivity(t, victim), "login.succeeded") {
						if e.Details["claimed_unverified_account"] == "true" {
							claims = append(claims, e)
						}
					}
					if len(claims) != 1 || claims[0].Details["method"] != m.method || claims[0].Details["revoked_sessions"] != wantRevoked {
						t.Errorf("claiming sign-ins %+v, want one by %s with revoked_sessions=%s", claims, m.method, wantRevoked)
					}
					// The account is the victim's now: a second proof claims
					// nothing more, and a reset gives it a password.
					r = m.signIn(t, box, h.client(), victimAddr)
					mustStatus(t, r, http.StatusOK)
					mustStatus(t, victim.do("GET", "/v1/me", nil), http.StatusOK)
					mustStatus(t, h.client().do("POST", "/v1/recovery", map[string]string{"email": victimAddr}), http.StatusAccepted)
					reset := linkToken(t, box.next(t, victimAddr, siSubjReset))
					mustStatus(t, h.client().do("POST", "/v1/recovery/complete", map[string]string{"token": reset, "new_password": siNewPassword}), http.StatusOK)
					mustStatus(t, h.client().login(victimAddr, siNewPassword), http.StatusOK)
					siProblem(t, h.client().login(victimAddr, siSquatterPassword), http.StatusUnauthorized, "invalid_credentials")
				})
			}
		}
	})
}

// A phone number is a way in too: one the pre-hijacker verified on the
// account before the victim claimed it must not keep signing in by SMS.
func TestAttackPreHijackerPhoneSurvivesClaim(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h, rx := siSMSHarness(t, backend, nil)
		box := siMails(h)
		const victimAddr = "phoneclaim@example.com"
		attacker := h.client()
		mustStatus(t, attacker.signup(victimAddr, siSquatterPassword), http.StatusCreated)
		siAddPhone(t, rx, attacker, siPhoneB)

		victim := h.client()
		mustStatus(t, siClaimMethods[0].signIn(t, box, victim, victimAddr), http.StatusOK)
		siProblem(t, attacker.do("GET", "/v1/me", nil), http.StatusUnauthorized, "unauthenticated")

		me := victim.do("GET", "/v1/me", nil)
		mustStatus(t, me, http.StatusOK)
		if p := siUser(t, me)["phone"]; p != nil {
			t.Errorf("BUG: after the claim the account still has the pre-hijacker's phone number %v", p)
		}
		before := rx.count(siPhoneB)
		mustStatus(t, h.client().do("POST", "/v1/otp/sms", map[string]string{"phone": siPhoneB}), http.StatusAccepted)
		siSettle()
		if rx.count(siPhoneB) == before {
			return
		}
		code := siSMSCode(t, rx.next(t, siPhoneB))
		c := h.client()
		r := c.do("POST", "/v1/otp/verify", map[string]string{"phone": siPhoneB, "code": code})
		if r.status == http.StatusOK {
			t.Fatalf("BUG: the pre-hijacker signs into the claimed account by SMS: %s", r.body)
		}
	})
}

// siSameRefusal fails unless two problem answers are indistinguishable:
// status, body without its request id, and header names.
func siSameRefusal(t *testing.T, what string, a, b *response) {
	t.Helper()
	if a.status != b.status {
		t.Errorf("%s: status %d vs %d (%s / %s)", what, a.status, b.status, a.body, b.body)
		return
	}
	if ba, bb := siBody(t, a), siBody(t, b); fmt.Sprint(ba) != fmt.Sprint(bb) {
		t.Errorf("%s: bodies differ:\n%v\n%v", what, ba, bb)
	}
	names := func(h http.Header) []string {
		var out []string
		for k := range h {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	if na, nb := names(a.header), names(b.header); !slices.Equal(na, nb) {
		t.Errorf("%s: header names differ:\n%v\n%v", what, na, nb)
	}
	for _, k := range []string{"Content-Type", "Cache-Control", "WWW-Authenticate", "Retry-After", "Content-Length"} {
		if a.header.Get(k) != b.header.Get(k) {
			t.Errorf("%s: header %s differs: %q vs %q", what, k, a.header.Get(k), b.header.Get(k))
		}
	}
}

// With RequireVerifiedEmail, an attacker signs up a free address and a
// registered one with their own password, then tries to sign in to each:
// the free one (their password, address unverified) must answer exactly as
// the registered one (a wrong password), or sign-in tells which addresses
// have accounts.
func TestAttackRequireVerifiedLoginDoesNotRevealAccounts(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, func(c *config.Config) { c.RequireVerifiedEmail = true })
		box := siMails(h)
		const taken, free = "registered@example.com", "unregistered@example.com"
		mustStatus(t, h.client().signup(taken, goodPassword), http.StatusAccepted)
		siVerifyEmail(t, box, taken)

		for _, addr := range []string{free, taken} {
			mustStatus(t, h.client().signup(addr, siSquatterPassword), http.StatusAccepted)
		}
		rf := h.client().login(free, siSquatterPassword)
		rt := h.client().login(taken, siSquatterPassword)
		siProblem(t, rf, http.StatusUnauthorized, "invalid_credentials")
		siSameRefusal(t, "sign-in to a free vs a registered address", rf, rt)
		if len(siSetCookies(rf)) != 0 || len(siSetCookies(rt)) != 0 {
			t.Errorf("refused sign-ins set cookies: %q / %q", siSetCookies(rf), siSetCookies(rt))
		}
		// The registered account is untouched, and its owner signs in.
		mustStatus(t, h.client().login(taken, goodPassword), http.StatusOK)
	})
}

// The same comparison repeated past the per-account failure limit: a
// right password of an unverified account must count as the failure it is
// answered as, or the limit (429 on the registered address, 401 forever on
// the free one) tells the addresses apart.
func TestAttackRequireVerifiedLoginThrottleRevealsAccounts(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, func(c *config.Config) {
			c.RequireVerifiedEmail = true
			c.LoginFailuresPerAccount = 3
		})
		box := siMails(h)
		const taken, free = "registered@example.com", "unregistered@example.com"
		mustStatus(t, h.client().signup(taken, goodPassword), http.StatusAccepted)
		siVerifyEmail(t, box, taken)
		for _, addr := range []string{free, taken} {
			mustStatus(t, h.client().signup(addr, siSquatterPassword), http.StatusAccepted)
		}
		for i := range 5 {
			rf := h.client().login(free, siSquatterPassword)
			rt := h.client().login(taken, siSquatterPassword)
			if rf.status != rt.status {
				t.Fatalf("BUG: sign-in attempt %d: the free address answers %d, the registered one %d (%s): the per-account failure limit tells them apart", i+1, rf.status, rt.status, rt.body)
			}
		}
	})
}

// An intruder who knew the password added their phone number; the owner's
// password reset takes it away with every text code in flight.
func TestAttackPhoneRemovedByReset(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h, rx := siSMSHarness(t, backend, nil)
		box := siMails(h)
		const owner = "phonereset@example.com"
		h.newUser(owner)
		intruder := siFresh(t, h, owner)
		siAddPhone(t, rx, intruder, siPhoneB)
		// A sign-in code texted to the number, and a second number being
		// added, both in flight at the reset.
		mustStatus(t, h.client().do("POST", "/v1/otp/sms", map[string]string{"phone": siPhoneB}), http.StatusAccepted)
		pendingSignIn := siSMSCode(t, rx.next(t, siPhoneB))
		mustStatus(t, intruder.do("POST", "/v1/phone", map[string]string{"phone": siPhoneC}), http.StatusAccepted)
		pendingAdd := siSMSCode(t, rx.next(t, siPhoneC))

		mustStatus(t, h.client().do("POST", "/v1/recovery", map[string]string{"email": owner}), http.StatusAccepted)
		r := h.client().do("POST", "/v1/recovery/complete", map[string]string{"token": linkToken(t, box.next(t, owner, siSubjReset)), "new_password": siNewPassword})
		mustStatus(t, r, http.StatusOK)
		siProblem(t, intruder.do("GET", "/v1/me", nil), http.StatusUnauthorized, "unauthenticated")

		// The number signs in nobody: no code is sent to it, and the one
		// in flight is dead.
		texts := rx.count(siPhoneB)
		mustStatus(t, h.client().do("POST", "/v1/otp/sms", map[string]string{"phone": siPhoneB}), http.StatusAccepted)
		siProblem(t, h.client().do("POST", "/v1/otp/verify", map[string]string{"phone": siPhoneB, "code": pendingSignIn}), http.StatusUnauthorized, "invalid_code")
		siSettle()
		if n := rx.count(siPhoneB) - texts; n != 0 {
			t.Errorf("%d sign-in codes texted to the removed number after the reset", n)
		}

		c := siFreshWith(t, h, owner, siNewPassword)
		me := c.do("GET", "/v1/me", nil)
		mustStatus(t, me, http.StatusOK)
		if p, ok := siUser(t, me)["phone"]; ok {
			t.Errorf("/v1/me after the reset still has phone %v", p)
		}
		// The code of the number being added died too, even presented by
		// the owner's new session.
		siProblem(t, c.do("POST", "/v1/phone/verify", map[string]string{"code": pendingAdd}), http.StatusUnauthorized, "invalid_code")
		if me := c.do("GET", "/v1/me", nil); siUser(t, me)["phone"] != nil {
			t.Errorf("a code from before the reset set a number: %s", me.body)
		}
		// The owner can add a number of their own.
		siAddPhone(t, rx, c, siPhoneA)
	})
}

// siFreshWith signs email in with pw on a new client.
func siFreshWith(t *testing.T, h *harness, email, pw string) *client {
	t.Helper()
	c := h.client()
	mustStatus(t, c.login(email, pw), http.StatusOK)
	return c
}

// Verifying a number tells the address: a number added by someone else is
// a way into the account.
func TestPhoneAddedNotice(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h, rx := siSMSHarness(t, backend, nil)
		box := siMails(h)
		const addr = "Notice.Me@example.com"
		c := h.newUser(addr)
		siAddPhone(t, rx, c, siPhoneA)
		m := box.next(t, addr, siSubjPhone)
		if !slices.Equal(m.To, []string{addr}) {
			t.Errorf("notice sent to %v, want the address on record", m.To)
		}
		for _, want := range []string{siPhoneA, h.cfg.BaseURL() + "/ui/recovery", "127.0.0.1"} {
			if !strings.Contains(m.Text, want) {
				t.Errorf("the notice's text lacks %q:\n%s", want, m.Text)
			}
		}
		if !strings.Contains(html.UnescapeString(m.HTML), siPhoneA) {
			t.Errorf("the notice's HTML lacks the number:\n%s", m.HTML)
		}
		if strings.Contains(m.Text, "#token=") || strings.Contains(m.HTML, "#token=") {
			t.Errorf("the notice carries a link secret:\n%s", m.Text)
		}
		notices := 0
		for _, e := range siEvents(siActivity(t, c), "notice.sent") {
			if e.Details["kind"] == "phone_added" {
				notices++
			}
		}
		if notices != 1 {
			t.Errorf("%d phone_added notice.sent events, want 1", notices)
		}

		// A failed verification, or a number that is another account's,
		// adds nothing and announces nothing.
		other := h.newUser("other.notice@example.com")
		mustStatus(t, other.do("POST", "/v1/phone", map[string]string{"phone": siPhoneA}), http.StatusAccepted)
		code := siSMSCode(t, rx.next(t, siPhoneA))
		siProblem(t, other.do("POST", "/v1/phone/verify", map[string]string{"code": siWrong(code, 0)}), http.StatusUnauthorized, "invalid_code")
		siProblem(t, other.do("POST", "/v1/phone/verify", map[string]string{"code": code}), http.StatusConflict, "phone_taken")
		siSettle()
		if n := len(box.matching("other.notice@example.com", siSubjPhone)); n != 0 {
			t.Errorf("%d phone-added notices without a number added", n)
		}
		if n := len(box.matching(addr, siSubjPhone)); n != 1 {
			t.Errorf("%d phone-added notices to the first account, want 1", n)
		}
	})
}
