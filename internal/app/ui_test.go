package app_test

// End-to-end tests of the hosted pages (internal/ui) in a real headless
// Chromium: the links of real e-mails are opened as a user would, the pages'
// own script reads the secret from the fragment and posts it to the API,
// and the outcome is checked through the API. Every test fails on any
// error-level console output, uncaught exception or CSP violation.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/gatehouse-auth/gatehouse/internal/audit"
	"github.com/gatehouse-auth/gatehouse/internal/testutil"
	"github.com/gatehouse-auth/gatehouse/internal/ui"
)

// uiTimeout bounds each browser test: the browser dies with it.
const uiTimeout = 30 * time.Second

// uiNewPassword is a password the policy accepts.
const uiNewPassword = "violet orbit kettle 42 sunrise"

// uiCSPWatch runs in every document before the page's own scripts and turns
// each CSP violation into a console error, which the console watch fails
// the test on (Chromium also logs violations itself; this does not depend
// on the wording of that message).
const uiCSPWatch = `document.addEventListener("securitypolicyviolation", function (e) {
  console.error("CSP violation: " + e.violatedDirective + " blocked " + (e.blockedURI || "inline") + " in " + e.sourceFile + ":" + e.lineNumber);
});`

// uiChromiumPath is the browser the tests drive: $GATEHOUSE_TEST_CHROMIUM,
// else /usr/bin/chromium; without either the test is skipped.
func uiChromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("GATEHOUSE_TEST_CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			// Set on purpose (CI): a missing browser is a broken setup, not
			// a reason to skip the browser tests silently.
			t.Fatalf("GATEHOUSE_TEST_CHROMIUM=%s: %v", p, err)
		}
		return p
	}
	const def = "/usr/bin/chromium"
	if _, err := os.Stat(def); err == nil {
		return def
	}
	t.Skip("browser test skipped: no Chromium at " + def + " and GATEHOUSE_TEST_CHROMIUM is unset (apt-get install chromium, or point GATEHOUSE_TEST_CHROMIUM at a Chromium/Chrome binary)")
	return ""
}

// uiBrowser is one headless Chromium with one tab, watched for console
// errors, exceptions, CSP violations and the requests it sends.
type uiBrowser struct {
	t   *testing.T
	ctx context.Context
	out *testutil.SyncBuffer // Chromium's own stdout and stderr

	mu       sync.Mutex
	console  []string // every console message, exception and log entry
	problems []string // the ones that fail the test
	allowed  []string // paths whose failed loads (4xx answers) are expected
	requests []string // "METHOD url-without-fragment headers" of each request sent
}

// uiNewBrowser starts a fresh headless Chromium (own profile, closed when
// the test ends) and fails the test, when it ends, on any error-level
// console output, exception or CSP violation.
func uiNewBrowser(t *testing.T) *uiBrowser {
	t.Helper()
	path := uiChromiumPath(t)
	b := &uiBrowser{t: t, out: &testutil.SyncBuffer{}}
	tctx, cancelTimeout := context.WithTimeout(context.Background(), uiTimeout)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox, // the tests run as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.CombinedOutput(b.out),
	)
	// Chromium asks every origin for /favicon.ico, which the server does
	// not have; the pages do not ask for it.
	b.allowed = []string{"/favicon.ico"}
	actx, cancelAlloc := chromedp.NewExecAllocator(tctx, opts...)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithListener(b.listen))
	b.ctx = ctx
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc() // waits for the browser to exit, before TempDir goes
		cancelTimeout()
		b.mu.Lock()
		defer b.mu.Unlock()
		if len(b.problems) > 0 {
			t.Errorf("browser console errors (%d):\n  %s\nall console output:\n  %s",
				len(b.problems), strings.Join(b.problems, "\n  "), strings.Join(b.console, "\n  "))
		}
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium %s: %v\n%s", path, err, b.out)
	}
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument,
		page.AddScriptToEvaluateOnNewDocumentParams{Source: uiCSPWatch}); err != nil {
		t.Fatalf("install the CSP watch: %v", err)
	}
	return b
}

// listen runs in the tab's event loop: it only records.
func (b *uiBrowser) listen(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		bad := ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert
		b.record("console."+string(ev.Type)+": "+uiArgsText(ev.Args), bad)
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		text := d.Text
		if d.Exception != nil {
			text += " " + d.Exception.Description
		}
		b.record(fmt.Sprintf("exception: %s (%s:%d)", text, d.URL, d.LineNumber+1), true)
	case *log.EventEntryAdded:
		e := ev.Entry
		bad := e.Level == log.EntryLevelError && !b.expectedFailure(e)
		b.record(fmt.Sprintf("log.%s.%s: %s %s", e.Source, e.Level, e.Text, e.URL), bad)
	case *network.EventRequestWillBeSent:
		hdr, _ := json.Marshal(ev.Request.Headers)
		b.requests = append(b.requests, ev.Request.Method+" "+ev.Request.URL+" "+string(hdr))
	}
}

// record notes a console message; bad ones, and any mention of the
// Content Security Policy whatever its level, fail the test. b.mu is held.
func (b *uiBrowser) record(msg string, bad bool) {
	b.console = append(b.console, msg)
	if bad || strings.Contains(msg, "Content Security Policy") || strings.Contains(msg, "CSP violation") {
		b.problems = append(b.problems, msg)
	}
}

// expectedFailure reports whether e is Chromium's note of a failed load
// that the test asked for (an API answering 4xx). b.mu is held.
func (b *uiBrowser) expectedFailure(e *log.Entry) bool {
	if e.Source != log.EntrySourceNetwork || !strings.HasPrefix(e.Text, "Failed to load resource: the server responded with a status of 4") {
		return false
	}
	u, err := url.Parse(e.URL)
	return err == nil && slices.Contains(b.allowed, u.Path)
}

// allowFailedLoad tolerates Chromium's console error for 4xx answers from
// path: the page showing an API refusal is what the test checks.
func (b *uiBrowser) allowFailedLoad(path string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.allowed = append(b.allowed, path)
}

// takeProblems returns the console problems so far and forgets them.
func (b *uiBrowser) takeProblems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.problems
	b.problems = nil
	return p
}

func (b *uiBrowser) sentRequests() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.requests)
}

func uiArgsText(args []*runtime.RemoteObject) string {
	parts := make([]string, 0, len(args))
	for _, a := range args {
		switch {
		case len(a.Value) > 0:
			var s string
			if json.Unmarshal(a.Value, &s) == nil {
				parts = append(parts, s)
			} else {
				parts = append(parts, string(a.Value))
			}
		case a.Description != "":
			parts = append(parts, a.Description)
		default:
			parts = append(parts, string(a.Type))
		}
	}
	return strings.Join(parts, " ")
}

// fatalf fails the test with the browser's console and output attached.
func (b *uiBrowser) fatalf(format string, args ...any) {
	b.t.Helper()
	b.mu.Lock()
	console := strings.Join(b.console, "\n  ")
	b.mu.Unlock()
	var kept []string
	for line := range strings.Lines(b.out.String()) {
		if !strings.Contains(line, "dbus") { // no system bus in a container
			kept = append(kept, line)
		}
	}
	out := strings.Join(kept, "")
	if len(out) > 4000 {
		out = "…" + out[len(out)-4000:]
	}
	b.t.Fatalf(format+"\nconsole:\n  %s\nchromium output:\n%s", append(args, console, out)...)
}

// do runs steps in the tab.
func (b *uiBrowser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.fatalf("browser: %s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression in the page (DevTools evaluation,
// which the page's CSP does not restrict).
func uiEval[T any](b *uiBrowser, expr string, opts ...chromedp.EvaluateOption) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr, opts...))
	if err != nil {
		b.fatalf("browser: evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor evaluates expr, a JavaScript expression giving a string, until
// it is not empty, and returns it. (chromedp.Poll compiles its predicate
// with new Function, which the pages' CSP rightly forbids.)
func (b *uiBrowser) waitFor(what, expr string) string {
	b.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var lastErr error
	for {
		v, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](expr))
		if err == nil && v != "" {
			return v
		}
		lastErr = err
		if time.Now().After(deadline) || b.ctx.Err() != nil {
			b.fatalf("browser: timed out waiting for %s (last error: %v)", what, lastErr)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// open loads u afresh and waits for the page's script to have run. It goes
// through about:blank: from the same page, a link that differs only in its
// fragment would be a same-document navigation, which loads nothing.
func (b *uiBrowser) open(u string) {
	b.t.Helper()
	b.do("navigate", chromedp.Navigate("about:blank"), chromedp.Navigate(u))
	b.waitFor("the page's script", `document.readyState === "complete" ? "yes" : ""`)
}

// openLink opens an e-mailed link and waits for its form to show.
func (b *uiBrowser) openLink(link string) {
	b.t.Helper()
	b.open(link)
	b.do("wait for the form", chromedp.WaitVisible(chromedp.ID("form")))
}

// uiStatus is what #status shows.
type uiStatus struct {
	Class string `json:"class"`
	Text  string `json:"text"`
}

// uiStatusExpr gives #status as JSON once it has a class, else "".
const uiStatusExpr = `(function () {
  var s = document.getElementById("status");
  return s && s.className ? JSON.stringify({class: s.className, text: s.textContent}) : "";
})()`

// status waits until #status shows something and returns it.
func (b *uiBrowser) status() uiStatus {
	b.t.Helper()
	var st uiStatus
	if err := json.Unmarshal([]byte(b.waitFor("#status", uiStatusExpr)), &st); err != nil {
		b.fatalf("status: %v", err)
	}
	return st
}

// submit clicks #submit, as a user does, and returns the status it leads
// to. The status is blanked first so that an earlier one is not mistaken
// for the answer.
func (b *uiBrowser) submit() uiStatus {
	b.t.Helper()
	uiEval[chromedp.Void](b, `(function () { var s = document.getElementById("status"); s.className = ""; s.textContent = ""; })()`)
	b.do("click #submit", chromedp.Click(chromedp.ID("submit")))
	return b.status()
}

// fill types v into the input with id, replacing what it holds. (The
// field is emptied by script: chromedp.Clear only resets the value
// attribute, which no longer shows once the user has typed.)
func (b *uiBrowser) fill(id, v string) {
	b.t.Helper()
	uiEval[chromedp.Void](b, fmt.Sprintf(`document.getElementById(%q).value = ""`, id))
	b.do("type into #"+id, chromedp.SendKeys(chromedp.ID(id), v))
}

// formHidden reports whether #form is hidden.
func (b *uiBrowser) formHidden() bool {
	b.t.Helper()
	return uiEval[bool](b, `document.getElementById("form").hidden`)
}

// assertTokenGone checks that the link's secret left the address bar and
// the tab's history once the page read it.
func (b *uiBrowser) assertTokenGone() {
	b.t.Helper()
	href := uiEval[string](b, `location.href`)
	if strings.Contains(href, "token") || strings.Contains(href, "ghl_") || strings.Contains(href, "#") {
		b.fatalf("location.href = %q: the fragment with the token was not dropped", href)
	}
	hist, err := chromedp.Run(b.ctx, chromedp.NavigationEntries())
	if err != nil {
		b.fatalf("navigation entries: %v", err)
	}
	for _, e := range hist.Entries {
		if strings.Contains(e.URL, "ghl_") {
			b.fatalf("the tab's history still holds the token: %q", e.URL)
		}
	}
}

// assertNoTokenSent checks that no request the browser sent carried a link
// secret in its URL or headers (Referer included): the fragment stays in
// the browser, and the secret travels only in a POST body.
func (b *uiBrowser) assertNoTokenSent() {
	b.t.Helper()
	reqs := b.sentRequests()
	if len(reqs) == 0 {
		b.fatalf("no browser requests were recorded")
	}
	for _, r := range reqs {
		if strings.Contains(r, "ghl_") {
			b.fatalf("the browser sent a link secret outside a POST body: %s", r)
		}
	}
}

// sent counts the requests the browser sent with method to path.
func (b *uiBrowser) sent(method, path string) int {
	n := 0
	for _, r := range b.sentRequests() {
		f := strings.Fields(r)
		if len(f) < 2 || f[0] != method {
			continue
		}
		if u, err := url.Parse(f[1]); err == nil && u.Path == path {
			n++
		}
	}
	return n
}

// uiFetch is the answer to a fetch the page made.
type uiFetch struct {
	Status int    `json:"status"`
	Body   string `json:"body"`
}

// fetch runs fetch(path) in the page, with the browser's cookies.
func (b *uiBrowser) fetch(path string) uiFetch {
	b.t.Helper()
	expr := fmt.Sprintf(`fetch(%q, {credentials: "same-origin"}).then(function (r) {
  return r.text().then(function (body) { return {status: r.status, body: body}; });
})`, path)
	return uiEval[uiFetch](b, expr, chromedp.EvalAwaitPromise)
}

// uiInlineHandlerRE finds inline event handlers (onclick=…) in markup.
var uiInlineHandlerRE = regexp.MustCompile(`(?i)\son[a-z]+\s*=`)

// uiLinkRE finds a hosted-page link in an e-mail's text.
var uiLinkRE = regexp.MustCompile(`https?://[^\s<>"]+/ui/([a-z-]+)#token=ghl_[A-Za-z0-9_-]+`)

// uiMailLink waits for an e-mail to addr with a link to the hosted page
// (the messages go out from concurrent workers, so their order is not
// fixed) and returns the latest such link, as the user would click it.
func uiMailLink(t *testing.T, h *harness, addr, page string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		link := ""
		for _, m := range h.smtp.Messages() {
			if !slices.ContainsFunc(m.To, func(r string) bool { return strings.EqualFold(r, addr) }) {
				continue
			}
			for _, sub := range uiLinkRE.FindAllStringSubmatch(m.Text, -1) {
				if sub[1] == page {
					link = sub[0]
				}
			}
		}
		if link != "" {
			if !strings.HasPrefix(link, h.cfg.PublicURL+"/ui/"+page+"#token=") {
				t.Fatalf("link %q is not on the server's public URL %s", link, h.cfg.PublicURL)
			}
			return link
		}
		if time.Now().After(deadline) {
			t.Fatalf("no e-mail to %s with a /ui/%s link within 10s (%d messages in all)", addr, page, len(h.smtp.Messages()))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// uiLinkSecret is the token of a link.
func uiLinkSecret(link string) string {
	_, tok, _ := strings.Cut(link, "#token=")
	return tok
}

// uiAssertNoSecretInLogs checks that no server log line — the access log
// above all — holds a link secret: it reached the server only in a body.
func uiAssertNoSecretInLogs(t *testing.T, h *harness) {
	t.Helper()
	requests := 0
	for line := range strings.Lines(h.logs.String()) {
		var rec struct {
			Msg string `json:"msg"`
		}
		_ = json.Unmarshal([]byte(line), &rec)
		if rec.Msg == "request" {
			requests++
		}
		if strings.Contains(line, "ghl_") {
			t.Errorf("a server log line holds a link secret: %s", line)
		}
	}
	if requests == 0 {
		t.Errorf("no access-log lines: the check above proves nothing")
	}
}

// uiAccessLogged counts the access-log lines of method and path.
func uiAccessLogged(h *harness, method, path string) int {
	n := 0
	for line := range strings.Lines(h.logs.String()) {
		var rec struct {
			Msg    string `json:"msg"`
			Method string `json:"method"`
			Path   string `json:"path"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "request" && rec.Method == method && rec.Path == path {
			n++
		}
	}
	return n
}

// uiSessionCount is how many live sessions c's session's user has.
func uiSessionCount(t *testing.T, c *client) int {
	t.Helper()
	r := c.do("GET", "/v1/sessions", nil)
	mustStatus(t, r, http.StatusOK)
	var body struct {
		Sessions []json.RawMessage `json:"sessions"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("sessions: %v: %s", err, r.body)
	}
	return len(body.Sessions)
}

// uiMe is GET /v1/me's user.
type uiMe struct {
	User struct {
		Email         string `json:"email"`
		EmailVerified bool   `json:"email_verified"`
	} `json:"user"`
}

func uiDecodeMe(t *testing.T, body []byte) uiMe {
	t.Helper()
	var me uiMe
	if err := json.Unmarshal(body, &me); err != nil {
		t.Fatalf("/v1/me: %v: %s", err, body)
	}
	return me
}

func TestUIResetPassword(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	b := uiNewBrowser(t)
	const email = "reset-ui@example.com"
	c := h.client()
	mustStatus(t, c.signup(email, goodPassword), http.StatusCreated)
	mustStatus(t, h.client().do("POST", "/v1/recovery", map[string]string{"email": email}), http.StatusAccepted)
	link := uiMailLink(t, h, email, "reset-password")

	b.openLink(link)
	b.assertTokenGone()
	b.fill("password", uiNewPassword)
	b.fill("confirm", uiNewPassword)
	st := b.submit()
	if st.Class != "ok" {
		b.fatalf("status after a good reset = %+v, want class ok", st)
	}
	if !b.formHidden() {
		t.Errorf("the form still shows after the reset succeeded")
	}
	if n := b.sent("POST", "/v1/recovery/complete"); n != 1 {
		t.Errorf("the page posted /v1/recovery/complete %d times, want 1", n)
	}

	if r := h.client().login(email, goodPassword); r.status != http.StatusUnauthorized || r.code(t) != "invalid_credentials" {
		t.Errorf("login with the old password: %d %s, want 401 invalid_credentials", r.status, r.body)
	}
	mustStatus(t, h.client().login(email, uiNewPassword), http.StatusOK)
	if r := c.do("GET", "/v1/me", nil); r.status != http.StatusUnauthorized {
		t.Errorf("the session from before the reset still works: %d %s", r.status, r.body)
	}
	// The link is spent.
	if r := h.client().do("POST", "/v1/recovery/complete", map[string]string{"token": uiLinkSecret(link), "new_password": "another fine passphrase 7"}); r.status != http.StatusBadRequest || r.code(t) != "invalid_token" {
		t.Errorf("the link after use: %d %s, want 400 invalid_token", r.status, r.body)
	}

	b.assertNoTokenSent()
	uiAssertNoSecretInLogs(t, h)
}

func TestUIResetPasswordMismatchAndWeak(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	b := uiNewBrowser(t)
	b.allowFailedLoad("/v1/recovery/complete") // the weak password's 400
	const email = "mismatch-ui@example.com"
	mustStatus(t, h.client().signup(email, goodPassword), http.StatusCreated)
	mustStatus(t, h.client().do("POST", "/v1/recovery", map[string]string{"email": email}), http.StatusAccepted)
	link := uiMailLink(t, h, email, "reset-password")
	token := uiLinkSecret(link)
	b.openLink(link)

	// Different confirmation: refused in the page, nothing posted.
	b.fill("password", uiNewPassword)
	b.fill("confirm", uiNewPassword+"!")
	st := b.submit()
	if st.Class != "error" || !strings.Contains(st.Text, "differ") {
		t.Errorf("status after a mismatch = %+v, want an error saying the passwords differ", st)
	}
	if n := b.sent("POST", "/v1/recovery/complete"); n != 0 {
		t.Errorf("a mismatch posted /v1/recovery/complete %d times", n)
	}
	if n := uiAccessLogged(h, "POST", "/v1/recovery/complete"); n != 0 {
		t.Errorf("the server got %d POST /v1/recovery/complete after a mismatch", n)
	}
	if b.formHidden() {
		t.Fatalf("the form hid after a mismatch")
	}

	// A weak password: the API's detail is shown, the link survives.
	b.fill("password", "password1234")
	b.fill("confirm", "password1234")
	st = b.submit()
	r := h.client().do("POST", "/v1/recovery/complete", map[string]string{"token": token, "new_password": "password1234"})
	if r.status != http.StatusBadRequest || r.code(t) != "weak_password" {
		t.Fatalf("API answer to the weak password: %d %s, want 400 weak_password", r.status, r.body)
	}
	detail, _ := r.json(t)["detail"].(string)
	if detail == "" {
		t.Fatalf("the weak_password problem has no detail: %s", r.body)
	}
	if st.Class != "error" || st.Text != detail {
		t.Errorf("status after a weak password = %+v, want class error and the API's detail %q", st, detail)
	}
	if n := b.sent("POST", "/v1/recovery/complete"); n != 1 {
		t.Errorf("the page posted /v1/recovery/complete %d times, want 1", n)
	}
	if b.formHidden() {
		t.Fatalf("the form hid after a refused password")
	}
	if r := h.client().login(email, goodPassword); r.status != http.StatusOK {
		t.Errorf("the old password stopped working after refused resets: %d %s", r.status, r.body)
	}

	// The same page, still holding the link, now sets a good password.
	b.fill("password", uiNewPassword)
	b.fill("confirm", uiNewPassword)
	if st := b.submit(); st.Class != "ok" {
		t.Fatalf("status after the good password = %+v, want class ok: the link did not survive", st)
	}
	mustStatus(t, h.client().login(email, uiNewPassword), http.StatusOK)
	b.assertNoTokenSent()
	uiAssertNoSecretInLogs(t, h)
}

func TestUIMagicLinkSignsInThisBrowser(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	b := uiNewBrowser(t)
	const email = "magic-ui@example.com"
	mustStatus(t, h.client().signup(email, goodPassword), http.StatusCreated)
	mustStatus(t, h.client().do("POST", "/v1/magic-link", map[string]string{"email": email}), http.StatusAccepted)
	link := uiMailLink(t, h, email, "magic-link")

	b.openLink(link)
	b.assertTokenGone()
	st := b.submit()
	if st.Class != "ok" || !strings.Contains(st.Text, email) {
		b.fatalf("status after sign-in = %+v, want class ok naming %s", st, email)
	}

	// The session is this browser's: its cookie goes with the page's own
	// requests, and the page's script cannot read it.
	me := b.fetch("/v1/me")
	if me.Status != http.StatusOK {
		b.fatalf("fetch /v1/me in the browser: %d %s (the browser did not keep the session cookie %q; Chromium must accept Secure cookies from http://127.0.0.1)",
			me.Status, me.Body, h.srv.Sessions.CookieName())
	}
	if got := uiDecodeMe(t, []byte(me.Body)); got.User.Email != email || !got.User.EmailVerified {
		t.Errorf("/v1/me in the browser = %+v, want %s, verified by the link", got.User, email)
	}
	if ck := uiEval[string](b, `document.cookie`); strings.Contains(ck, "gh_session") {
		t.Errorf("the page's script can read the session cookie: %q", ck)
	}
	cookies, err := chromedp.Call(b.ctx, network.GetCookies, network.GetCookiesParams{})
	if err != nil {
		b.fatalf("get cookies: %v", err)
	}
	found := false
	for _, ck := range cookies.Cookies {
		if ck.Name == h.srv.Sessions.CookieName() {
			found = true
			if !ck.HTTPOnly || !ck.Secure || ck.SameSite != network.CookieSameSiteLax || ck.Path != "/" || ck.Domain != "127.0.0.1" {
				t.Errorf("session cookie = %+v, want HttpOnly, Secure, SameSite=Lax, host-only, Path=/", ck)
			}
		}
	}
	if !found {
		t.Errorf("the browser holds no %s cookie", h.srv.Sessions.CookieName())
	}
	b.assertNoTokenSent()
	uiAssertNoSecretInLogs(t, h)
}

func TestAttackUIMagicLinkPageLoadSpendsNothing(t *testing.T) {
	// A mail scanner, a link preview or a prefetch opens the link: the page
	// loads, runs its script, and must spend nothing and sign in no one.
	h := newHarness(t, "sqlite", nil)
	b := uiNewBrowser(t)
	const email = "scanner-ui@example.com"
	c := h.client()
	mustStatus(t, c.signup(email, goodPassword), http.StatusCreated)
	// The address is verified first: a sign-in by link into an unverified
	// account would end the sign-up session, which this test counts on.
	mustStatus(t, h.client().do("POST", "/v1/verify-email", map[string]string{"token": uiLinkSecret(uiMailLink(t, h, email, "verify-email"))}), http.StatusOK)
	mustStatus(t, h.client().do("POST", "/v1/magic-link", map[string]string{"email": email}), http.StatusAccepted)
	link := uiMailLink(t, h, email, "magic-link")
	var logins int
	if err := queryCount(h, audit.LoginSucceeded, &logins); err != nil {
		t.Fatal(err)
	}

	b.openLink(link)
	time.Sleep(time.Second)
	// A second visit (the scanner comes back) changes nothing either.
	b.openLink(link)
	time.Sleep(200 * time.Millisecond)

	if n := b.sent("POST", "/v1/magic-link/verify"); n != 0 {
		t.Errorf("loading the page posted /v1/magic-link/verify %d times", n)
	}
	if n := uiAccessLogged(h, "POST", "/v1/magic-link/verify"); n != 0 {
		t.Errorf("the server got %d POST /v1/magic-link/verify from page loads", n)
	}
	if n := uiAccessLogged(h, "GET", "/ui/magic-link"); n != 2 {
		t.Errorf("access log has %d GET /ui/magic-link, want 2 (the page loads)", n)
	}
	if n := uiSessionCount(t, c); n != 1 {
		t.Errorf("the user has %d sessions after page loads, want 1 (the sign-up's)", n)
	}
	var after int
	if err := queryCount(h, audit.LoginSucceeded, &after); err != nil {
		t.Fatal(err)
	}
	if after != logins {
		t.Errorf("page loads recorded %d sign-ins", after-logins)
	}
	if cookies, err := chromedp.Call(b.ctx, network.GetCookies, network.GetCookiesParams{}); err != nil {
		b.fatalf("get cookies: %v", err)
	} else if len(cookies.Cookies) != 0 {
		t.Errorf("page loads left cookies in the browser: %+v", cookies.Cookies)
	}

	// The link is intact: the user's own click (here, via the API) works.
	api := h.client()
	r := api.do("POST", "/v1/magic-link/verify", map[string]string{"token": uiLinkSecret(link)})
	mustStatus(t, r, http.StatusOK)
	if n := uiSessionCount(t, c); n != 2 {
		t.Errorf("the user has %d sessions after the sign-in, want 2", n)
	}
	b.assertNoTokenSent()
}

func TestUIVerifyEmail(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	b := uiNewBrowser(t)
	const email = "verify-ui@example.com"
	c := h.client()
	mustStatus(t, c.signup(email, goodPassword), http.StatusCreated)
	r := c.do("GET", "/v1/me", nil)
	mustStatus(t, r, http.StatusOK)
	if uiDecodeMe(t, r.body).User.EmailVerified {
		t.Fatalf("the address is verified before the link was used")
	}
	link := uiMailLink(t, h, email, "verify-email")

	b.openLink(link)
	b.assertTokenGone()
	st := b.submit()
	if st.Class != "ok" || !strings.Contains(st.Text, email) {
		b.fatalf("status after confirming = %+v, want class ok naming %s", st, email)
	}
	if !b.formHidden() {
		t.Errorf("the form still shows after the address was confirmed")
	}
	// Confirming creates no session in the browser.
	if cookies, err := chromedp.Call(b.ctx, network.GetCookies, network.GetCookiesParams{}); err != nil {
		b.fatalf("get cookies: %v", err)
	} else if len(cookies.Cookies) != 0 {
		t.Errorf("confirming the address left cookies in the browser: %+v", cookies.Cookies)
	}
	b.assertNoTokenSent()
	uiAssertNoSecretInLogs(t, h)

	// The account is verified: a new sign-in sees it.
	fresh := h.client()
	mustStatus(t, fresh.login(email, goodPassword), http.StatusOK)
	r = fresh.do("GET", "/v1/me", nil)
	mustStatus(t, r, http.StatusOK)
	if me := uiDecodeMe(t, r.body); !me.User.EmailVerified {
		t.Fatalf("/v1/me of a new session after confirming: %s, want email_verified true", r.body)
	}
	// And so does the session that was signed in all along.
	r = c.do("GET", "/v1/me", nil)
	mustStatus(t, r, http.StatusOK)
	if me := uiDecodeMe(t, r.body); !me.User.EmailVerified {
		t.Fatalf("/v1/me of the sign-up session after confirming: %s, want email_verified true (the user's cached sessions must be invalidated)", r.body)
	}
}

// The undo link of a change of address, sent to the old address, opens the
// same page: it says what happened and what to do next (set a new
// password), and creates no session.
func TestUIVerifyEmailUndoesChange(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	b := uiNewBrowser(t)
	const old, next = "undo-ui@example.com", "undo-ui.new@example.com"
	c := h.client()
	mustStatus(t, c.signup(old, goodPassword), http.StatusCreated)
	mustStatus(t, c.do("POST", "/v1/email", map[string]string{"new_email": next, "current_password": goodPassword}), http.StatusAccepted)
	mustStatus(t, h.client().do("POST", "/v1/verify-email", map[string]string{"token": uiLinkSecret(uiMailLink(t, h, next, "verify-email"))}), http.StatusOK)
	notice := vfNext(t, h, old, vfSubjChanged)
	sub := uiLinkRE.FindStringSubmatch(notice.Text)
	if sub == nil || sub[1] != "verify-email" {
		t.Fatalf("no /ui/verify-email link in the notice to the old address:\n%s", notice.Text)
	}

	b.openLink(sub[0])
	b.assertTokenGone()
	st := b.submit()
	if st.Class != "ok" || !strings.Contains(st.Text, "undone") || !strings.Contains(st.Text, old) || !strings.Contains(st.Text, "new password") {
		b.fatalf("status after the undo = %+v, want class ok saying the change was undone, naming %s and asking for a new password", st, old)
	}
	if !b.formHidden() {
		t.Errorf("the form still shows after the undo")
	}
	if cookies, err := chromedp.Call(b.ctx, network.GetCookies, network.GetCookiesParams{}); err != nil {
		b.fatalf("get cookies: %v", err)
	} else if len(cookies.Cookies) != 0 {
		t.Errorf("the undo left cookies in the browser: %+v", cookies.Cookies)
	}
	b.assertNoTokenSent()
	uiAssertNoSecretInLogs(t, h)

	// The account is back at the old address, signed out, without a
	// password.
	mustStatus(t, c.do("GET", "/v1/me", nil), http.StatusUnauthorized)
	mustStatus(t, h.client().login(old, goodPassword), http.StatusUnauthorized)
	mustStatus(t, h.client().login(next, goodPassword), http.StatusUnauthorized)

	// A plain verification on the same page still says "confirmed".
	const other = "plain-ui@example.com"
	mustStatus(t, h.client().signup(other, goodPassword), http.StatusCreated)
	b.openLink(uiMailLink(t, h, other, "verify-email"))
	if st := b.submit(); st.Class != "ok" || !strings.Contains(st.Text, "confirmed") || strings.Contains(st.Text, "undone") {
		b.fatalf("status after a plain verification = %+v", st)
	}
}

func TestUIRecoveryRequest(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	b := uiNewBrowser(t)
	const email = "request-ui@example.com"
	mustStatus(t, h.client().signup(email, goodPassword), http.StatusCreated)

	b.open(h.ts.URL + "/ui/recovery")
	if b.formHidden() {
		b.fatalf("the recovery form is hidden")
	}
	b.fill("email", email)
	st := b.submit()
	if st.Class != "ok" {
		b.fatalf("status after asking for a reset = %+v, want class ok", st)
	}
	link := uiMailLink(t, h, email, "reset-password")
	if n := b.sent("POST", "/v1/recovery"); n != 1 {
		t.Errorf("the page posted /v1/recovery %d times, want 1", n)
	}

	// An address without an account gets the very same answer.
	const nobody = "nobody-ui@example.com"
	b.open(h.ts.URL + "/ui/recovery")
	b.fill("email", nobody)
	if st2 := b.submit(); st2 != st {
		t.Errorf("status for an unknown address = %+v, want the same as for an account, %+v", st2, st)
	}

	// The e-mailed link works.
	r := h.client().do("POST", "/v1/recovery/complete", map[string]string{"token": uiLinkSecret(link), "new_password": uiNewPassword})
	mustStatus(t, r, http.StatusOK)
	mustStatus(t, h.client().login(email, uiNewPassword), http.StatusOK)
	if n := h.mailCount(nobody); n != 0 {
		t.Errorf("%d e-mails went to an address without an account", n)
	}
}

func TestUIResetPasswordNewerLinkInSameTab(t *testing.T) {
	// The first link is opened, then a newer one (which retires the first)
	// is pasted into the same tab. From the same page, a URL that differs
	// only in its fragment is a same-document navigation: nothing reloads.
	h := newHarness(t, "sqlite", nil)
	b := uiNewBrowser(t)
	b.allowFailedLoad("/v1/recovery/complete")
	const email = "sametab-ui@example.com"
	mustStatus(t, h.client().signup(email, goodPassword), http.StatusCreated)
	mustStatus(t, h.client().do("POST", "/v1/recovery", map[string]string{"email": email}), http.StatusAccepted)
	first := uiMailLink(t, h, email, "reset-password")
	b.openLink(first)
	mustStatus(t, h.client().do("POST", "/v1/recovery", map[string]string{"email": email}), http.StatusAccepted)
	deadline := time.Now().Add(10 * time.Second)
	second := first
	for second == first {
		if time.Now().After(deadline) {
			t.Fatalf("no second reset link within 10s")
		}
		time.Sleep(20 * time.Millisecond)
		second = uiMailLink(t, h, email, "reset-password")
	}

	b.do("navigate in the same tab", chromedp.Navigate(second))
	time.Sleep(200 * time.Millisecond)
	href := uiEval[string](b, `location.href`)
	b.fill("password", uiNewPassword)
	b.fill("confirm", uiNewPassword)
	st := b.submit()
	if st.Class != "ok" || strings.Contains(href, "ghl_") {
		t.Fatalf("a newer link opened in the same tab: address bar %q, status %+v; want the newer token taken, dropped from the address bar and posted", href, st)
	}
	mustStatus(t, h.client().login(email, uiNewPassword), http.StatusOK)
}

func TestUIIncompleteLink(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	b := uiNewBrowser(t)
	for _, page := range []string{"reset-password", "magic-link", "verify-email"} {
		for _, suffix := range []string{"", "#", "#token=", "#other=ghl_x"} {
			b.open(h.ts.URL + "/ui/" + page + suffix)
			st := b.status()
			if st.Class != "error" || !strings.Contains(st.Text, "incomplete") {
				t.Errorf("/ui/%s%s: status %+v, want the incomplete-link error", page, suffix, st)
			}
			if !b.formHidden() {
				t.Errorf("/ui/%s%s: the form shows without a token", page, suffix)
			}
			if href := uiEval[string](b, `location.href`); strings.Contains(href, "ghl_") {
				t.Errorf("/ui/%s%s: location.href = %q still holds the fragment", page, suffix, href)
			}
		}
	}
	// Nothing was posted anywhere.
	for _, r := range b.sentRequests() {
		if strings.HasPrefix(r, "POST ") {
			t.Errorf("an incomplete link posted: %s", r)
		}
	}
}

func TestUIConsoleWatch(t *testing.T) {
	// The console watch the other tests rely on does catch what they say
	// it catches.
	h := newHarness(t, "sqlite", nil)
	b := uiNewBrowser(t)
	b.open(h.ts.URL + "/ui/recovery")
	if p := b.takeProblems(); len(p) != 0 {
		t.Fatalf("the recovery page logged errors: %v", p)
	}

	// A resource the CSP forbids.
	uiEval[chromedp.Void](b, `(function () { var i = document.createElement("img"); i.src = "http://192.0.2.1/x.png"; document.body.appendChild(i); })()`)
	uiEval[chromedp.Void](b, `setTimeout(function () { throw new Error("ui-watch-probe"); }, 0)`)
	uiEval[chromedp.Void](b, `console.error("ui-watch-console-probe")`)
	deadline := time.Now().Add(5 * time.Second)
	var got []string
	for {
		got = append(got, b.takeProblems()...)
		all := strings.Join(got, "\n")
		if strings.Contains(all, "CSP violation: img-src") && strings.Contains(all, "ui-watch-probe") && strings.Contains(all, "ui-watch-console-probe") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the console watch missed a probe; it saw:\n%s", all)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func TestUIPagesHeaders(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	get := func(path string) *http.Response {
		t.Helper()
		res, err := h.ts.Client().Get(h.ts.URL + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return res
	}
	body := func(res *http.Response) string {
		t.Helper()
		defer res.Body.Close()
		raw, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatalf("read body: %v", err)
		}
		return string(raw)
	}
	mediaType := func(res *http.Response) string {
		mt, _, err := mime.ParseMediaType(res.Header.Get("Content-Type"))
		if err != nil {
			return ""
		}
		return mt
	}

	for _, page := range ui.Pages {
		path := "/ui/" + page
		res := get(path)
		html := body(res)
		if res.StatusCode != http.StatusOK || mediaType(res) != "text/html" {
			t.Errorf("%s: %d %q, want 200 text/html", path, res.StatusCode, res.Header.Get("Content-Type"))
		}
		csp := res.Header.Get("Content-Security-Policy")
		directives := map[string]string{}
		for d := range strings.SplitSeq(csp, ";") {
			name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
			directives[name] = value
		}
		for name, want := range map[string]string{
			"default-src": "'none'", "script-src": "'self'", "frame-ancestors": "'none'",
			"base-uri": "'none'", "form-action": "'self'",
		} {
			if directives[name] != want {
				t.Errorf("%s: CSP %s = %q, want %q (CSP %q)", path, name, directives[name], want, csp)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("%s: CSP allows unsafe script: %q", path, csp)
		}
		if n := len(res.Header.Values("Content-Security-Policy")); n != 1 {
			t.Errorf("%s: %d CSP headers, want 1 (the page's, replacing the API's)", path, n)
		}
		for k, want := range map[string]string{
			"Referrer-Policy":        "no-referrer",
			"Cache-Control":          "no-store",
			"X-Frame-Options":        "DENY",
			"X-Content-Type-Options": "nosniff",
		} {
			if got := res.Header.Get(k); got != want {
				t.Errorf("%s: %s = %q, want %q", path, k, got, want)
			}
		}
		if strings.Count(html, "<script") != 1 || !strings.Contains(html, `<script src="/ui/assets/ui.js"`) || uiInlineHandlerRE.MatchString(html) {
			t.Errorf("%s: the page must load only /ui/assets/ui.js and hold no inline script:\n%s", path, html)
		}
		if !strings.Contains(html, `data-page="`+page+`"`) {
			t.Errorf("%s: body has no data-page=%q", path, page)
		}
	}

	for path, want := range map[string]string{
		"/ui/assets/ui.js":  "text/javascript",
		"/ui/assets/ui.css": "text/css",
	} {
		res := get(path)
		b := body(res)
		if res.StatusCode != http.StatusOK || mediaType(res) != want || len(b) == 0 {
			t.Errorf("%s: %d %q (%d bytes), want 200 %s", path, res.StatusCode, res.Header.Get("Content-Type"), len(b), want)
		}
		if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s: X-Content-Type-Options = %q, want nosniff", path, got)
		}
	}

	for _, path := range []string{
		"/ui/assets/../ui.go", "/ui/assets/%2e%2e/ui.go", "/ui/assets/..%2fui.go",
		"/ui/assets/nope", "/ui/assets/", "/ui/assets", "/ui/nope", "/ui/layout",
	} {
		res := get(path)
		b := body(res)
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, res.StatusCode)
		}
		if strings.Contains(b, "package ui") || strings.Contains(b, "ui.js") {
			t.Errorf("%s: the answer leaks files: %s", path, b)
		}
	}

	// The pages are GET-only: nothing happens on a POST to them.
	res, err := h.ts.Client().Post(h.ts.URL+"/ui/magic-link", "application/x-www-form-urlencoded", strings.NewReader("token=x"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed && res.StatusCode != http.StatusForbidden {
		t.Errorf("POST /ui/magic-link: %d, want 405 (or 403 from the cross-origin check)", res.StatusCode)
	}
}
