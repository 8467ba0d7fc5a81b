package app_test

// End-to-end tests of the passkey pages (/ui/sign-in, /ui/passkeys) in a
// real headless Chromium with a CDP virtual authenticator: the page's own
// script runs the WebAuthn ceremonies against the browser, which signs
// with the virtual authenticator's keys, and the outcome is checked
// through the API, the audit trail and the authenticator itself. The
// server's public URL is http://localhost:<port> (RP ID "localhost"), and
// the pages are opened there. Like the other browser tests, every test
// fails on any console error, exception or CSP violation.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/gatehouse-auth/gatehouse/internal/audit"
	"github.com/gatehouse-auth/gatehouse/internal/config"
)

// puHarness starts a server whose public URL is http://localhost:<port>;
// mutate adjusts the configuration further.
func puHarness(t *testing.T, mutate func(*config.Config)) *harness {
	t.Helper()
	return newHarness(t, "sqlite", func(c *config.Config) {
		c.PublicURL = localhostURL
		if mutate != nil {
			mutate(c)
		}
	})
}

// puAuthenticator attaches a virtual platform authenticator to the tab:
// CTAP2, resident keys, user verification that succeeds, and presence
// given at once.
func puAuthenticator(b *uiBrowser) webauthn.AuthenticatorID {
	b.t.Helper()
	if _, err := chromedp.Call(b.ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		b.fatalf("WebAuthn.enable: %v", err)
	}
	res, err := chromedp.Call(b.ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
		Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol:                    webauthn.AuthenticatorProtocolCtap2,
			Ctap2version:                webauthn.Ctap2versionCtap21,
			Transport:                   webauthn.AuthenticatorTransportInternal,
			HasResidentKey:              true,
			HasUserVerification:         true,
			IsUserVerified:              true,
			AutomaticPresenceSimulation: true,
		},
	})
	if err != nil {
		b.fatalf("WebAuthn.addVirtualAuthenticator: %v", err)
	}
	return res.AuthenticatorID
}

// puCredentials are the credentials the virtual authenticator holds.
func puCredentials(b *uiBrowser, auth webauthn.AuthenticatorID) []*webauthn.Credential {
	b.t.Helper()
	res, err := chromedp.Call(b.ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: auth})
	if err != nil {
		b.fatalf("WebAuthn.getCredentials: %v", err)
	}
	return res.Credentials
}

// puPresence turns the authenticator's simulated user presence on or off.
// Off, a request waits for a touch that never comes: the autofill request,
// which the virtual environment would otherwise answer at once on page
// load, then stays pending as a real one does until the user picks.
func puPresence(b *uiBrowser, auth webauthn.AuthenticatorID, on bool) {
	b.t.Helper()
	if _, err := chromedp.Call(b.ctx, webauthn.SetAutomaticPresenceSimulation,
		webauthn.SetAutomaticPresenceSimulationParams{AuthenticatorID: auth, Enabled: on}); err != nil {
		b.fatalf("WebAuthn.setAutomaticPresenceSimulation: %v", err)
	}
}

// puPending waits until the sign-in page's autofill request is pending,
// and checks it stays so.
func puPending(b *uiBrowser) {
	b.t.Helper()
	b.waitFor("the autofill request", `document.body.dataset.conditional === "pending" ? "yes" : ""`)
	time.Sleep(300 * time.Millisecond)
	if got := uiEval[string](b, `document.body.dataset.conditional + " " + document.getElementById("status").textContent`); got != "pending " {
		b.fatalf("the autofill request did not stay pending: %q", got)
	}
}

// puOpen opens a page at the server's public URL.
func puOpen(b *uiBrowser, h *harness, page string) {
	b.t.Helper()
	b.open(h.cfg.PublicURL + "/ui/" + page)
}

// puStatusIs gives #status as JSON once its text contains want or it
// shows an error (which the caller then reports), else "".
func puStatusIs(want string) string {
	return fmt.Sprintf(`(function () {
  var s = document.getElementById("status");
  if (!s.className || (s.className !== "error" && !s.textContent.includes(%q))) { return ""; }
  return JSON.stringify({class: s.className, text: s.textContent});
})()`, want)
}

// puClick blanks #status, clicks the element matching sel as a user does,
// and waits for a status containing want (or an error).
func puClick(b *uiBrowser, sel, want string) uiStatus {
	b.t.Helper()
	uiEval[chromedp.Void](b, `(function () { var s = document.getElementById("status"); s.className = ""; s.textContent = ""; })()`)
	b.do("click "+sel, chromedp.Click(chromedp.CSS(sel)))
	return puWaitStatus(b, want)
}

// puWaitStatus waits for a status containing want (or an error).
func puWaitStatus(b *uiBrowser, want string) uiStatus {
	b.t.Helper()
	var st uiStatus
	if err := json.Unmarshal([]byte(b.waitFor("status "+want, puStatusIs(want))), &st); err != nil {
		b.fatalf("status: %v", err)
	}
	return st
}

// puMustStatus fails unless st is class ok with want in its text.
func puMustStatus(b *uiBrowser, st uiStatus, want string) {
	b.t.Helper()
	if st.Class != "ok" || !strings.Contains(st.Text, want) {
		b.fatalf("status = %+v, want class ok with %q", st, want)
	}
}

// puMe is GET /v1/me with the browser's cookie.
type puMe struct {
	User struct {
		ID    string `json:"id"`
		Email string `json:"email"`
	} `json:"user"`
	Session struct {
		AAL int      `json:"aal"`
		AMR []string `json:"amr"`
	} `json:"session"`
}

func puWhoAmI(b *uiBrowser) puMe {
	b.t.Helper()
	r := b.fetch("/v1/me")
	if r.Status != http.StatusOK {
		b.fatalf("GET /v1/me in the browser: %d %s", r.Status, r.Body)
	}
	var me puMe
	if err := json.Unmarshal([]byte(r.Body), &me); err != nil {
		b.fatalf("/v1/me: %v: %s", err, r.Body)
	}
	return me
}

// puCredView is a credential as GET /v1/webauthn/credentials shows it.
type puCredView struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Type       string     `json:"type"`
	Attachment string     `json:"attachment"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

// puServerCredentials is the signed-in user's credentials, per the API.
func puServerCredentials(b *uiBrowser) []puCredView {
	b.t.Helper()
	r := b.fetch("/v1/webauthn/credentials")
	if r.Status != http.StatusOK {
		b.fatalf("GET /v1/webauthn/credentials: %d %s", r.Status, r.Body)
	}
	var body struct {
		Credentials []puCredView `json:"credentials"`
	}
	if err := json.Unmarshal([]byte(r.Body), &body); err != nil {
		b.fatalf("credentials: %v: %s", err, r.Body)
	}
	return body.Credentials
}

// puPost runs a same-origin POST without a body in the page and returns
// its status.
func puPost(b *uiBrowser, path string) int {
	b.t.Helper()
	return uiEval[int](b, fmt.Sprintf(`fetch(%q, {method: "POST", credentials: "same-origin"}).then(function (r) { return r.status; })`, path), chromedp.EvalAwaitPromise)
}

// puPasswordSignIn signs email in with the password on /ui/sign-in
// (an account without a second factor).
func puPasswordSignIn(b *uiBrowser, h *harness, email string) {
	b.t.Helper()
	puOpen(b, h, "sign-in")
	b.fill("email", email)
	b.fill("password", goodPassword)
	puMustStatus(b, puClick(b, "#submit", "Signed in as"), "Signed in as "+email)
}

// puOpenPasskeys opens /ui/passkeys signed in and waits for the list.
func puOpenPasskeys(b *uiBrowser, h *harness, email string) {
	b.t.Helper()
	puOpen(b, h, "passkeys")
	who := b.waitFor("the signed-in account", `(function () {
  var a = document.getElementById("account");
  return a.hidden || document.getElementById("credentials").dataset.loading ? "" : document.getElementById("who").textContent;
})()`)
	if who != email {
		b.fatalf("/ui/passkeys says signed in as %q, want %s", who, email)
	}
	b.waitFor("the list", `document.getElementById("empty").hidden && document.querySelectorAll("#credentials li").length === 0 ? "" : "yes"`)
}

// puListed is the names shown in the page's list.
func puListed(b *uiBrowser) []string {
	b.t.Helper()
	return uiEval[[]string](b, `Array.from(document.querySelectorAll("#credentials > li .name"), function (e) { return e.textContent; })`)
}

// puRegister adds a passkey on /ui/passkeys (already open) and returns the
// recovery codes the page shows (none unless it was the first factor).
func puRegister(b *uiBrowser) []string {
	b.t.Helper()
	puMustStatus(b, puClick(b, "#add-passkey", "was added"), "Passkey")
	b.waitFor("the new list", `document.querySelectorAll("#credentials > li").length > 0 ? "yes" : ""`)
	if uiEval[bool](b, `document.getElementById("codes").hidden`) {
		return nil
	}
	return uiEval[[]string](b, `Array.from(document.querySelectorAll("#code-list li"), function (e) { return e.textContent; })`)
}

// puSignOut signs the browser out on /ui/passkeys (already open).
func puSignOut(b *uiBrowser) {
	b.t.Helper()
	b.allowFailedLoad("/v1/me")
	puMustStatus(b, puClick(b, "#sign-out", "signed out"), "signed out")
	if uiEval[bool](b, `document.getElementById("signed-out").hidden`) {
		b.fatalf("after signing out, the page does not say so")
	}
	if r := b.fetch("/v1/me"); r.Status != http.StatusUnauthorized {
		b.fatalf("GET /v1/me after signing out: %d %s", r.Status, r.Body)
	}
}

// puActivity is the signed-in user's audit events of type typ.
func puActivity(b *uiBrowser, typ string) []map[string]string {
	b.t.Helper()
	r := b.fetch("/v1/activity?limit=100")
	if r.Status != http.StatusOK {
		b.fatalf("GET /v1/activity: %d %s", r.Status, r.Body)
	}
	var body struct {
		Events []struct {
			Type    string            `json:"type"`
			Details map[string]string `json:"details"`
		} `json:"events"`
	}
	if err := json.Unmarshal([]byte(r.Body), &body); err != nil {
		b.fatalf("activity: %v: %s", err, r.Body)
	}
	var out []map[string]string
	for _, e := range body.Events {
		if e.Type == typ {
			out = append(out, e.Details)
		}
	}
	return out
}

// puMustAAL2 checks the browser's session: email's, at AAL 2, its amr
// holding "mfa" and each of amr (package passkey may add more, such as
// "user" for a verified key).
func puMustAAL2(b *uiBrowser, email string, amr ...string) {
	b.t.Helper()
	me := puWhoAmI(b)
	ok := me.User.Email == email && me.Session.AAL == 2 && slices.Contains(me.Session.AMR, "mfa")
	for _, m := range amr {
		ok = ok && slices.Contains(me.Session.AMR, m)
	}
	if !ok {
		b.fatalf("/v1/me = %+v, want %s with aal 2 and amr holding mfa and %v", me, email, amr)
	}
}

func TestPasskeyRegisterSignOutSignInChromium(t *testing.T) {
	h := puHarness(t, nil)
	b := uiNewBrowser(t)
	auth := puAuthenticator(b)
	const email = "passkey-ui@example.com"
	h.newUser(email)

	// A password sign-in on the hosted page: one factor.
	puPasswordSignIn(b, h, email)
	if me := puWhoAmI(b); me.Session.AAL != 1 || !slices.Equal(me.Session.AMR, []string{"pwd"}) {
		b.fatalf("after the password: /v1/me = %+v, want aal 1, amr [pwd]", me)
	}
	if href := uiEval[string](b, `document.querySelector("#done a").getAttribute("href")`); href != "/ui/passkeys" || uiEval[bool](b, `document.getElementById("done").hidden`) {
		b.fatalf("no link to /ui/passkeys after signing in (href %q)", href)
	}

	// Add a passkey: listed, and the first factor's recovery codes shown.
	puOpenPasskeys(b, h, email)
	if got := puListed(b); len(got) != 0 {
		b.fatalf("a new account lists %v", got)
	}
	codes := puRegister(b)
	if len(codes) != 10 || !mfRecoveryCodeRE.MatchString(codes[0]) {
		b.fatalf("recovery codes shown after the first passkey: %q, want 10", codes)
	}
	if got := puListed(b); !slices.Equal(got, []string{"Passkey"}) {
		b.fatalf("the list shows %v, want [Passkey]", got)
	}
	server := puServerCredentials(b)
	if len(server) != 1 || server[0].Type != "passkey" || server[0].Attachment != "platform" || server[0].LastUsedAt != nil {
		b.fatalf("the server holds %+v, want one unused platform passkey", server)
	}
	me := puWhoAmI(b)
	held := puCredentials(b, auth)
	if len(held) != 1 || !held[0].IsResidentCredential || held[0].RpID != "localhost" || string(held[0].UserHandle) != me.User.ID {
		b.fatalf("the authenticator holds %+v, want one resident credential for localhost with user handle %s", held, me.User.ID)
	}
	count := held[0].SignCount
	// The codes are shown once: saved, they leave the page.
	b.do("click #codes-done", chromedp.Click(chromedp.CSS("#codes-done")))
	if n := uiEval[int](b, `document.querySelectorAll("#code-list li").length`); n != 0 || !uiEval[bool](b, `document.getElementById("codes").hidden`) {
		b.fatalf("the recovery codes stay on the page after \"I have saved them\"")
	}

	puSignOut(b)

	// Sign in with the passkey alone, from the browser's dialog, while
	// the autofill request is pending (the page must abort it first: the
	// browser runs one request at a time). The authenticator verified its
	// user, so it is two factors by itself.
	puPresence(b, auth, false)
	begins := b.sent("POST", "/v1/webauthn/login/begin")
	puOpen(b, h, "sign-in")
	puPending(b)
	puPresence(b, auth, true)
	puMustStatus(b, puClick(b, "#passkey", "Signed in as"), "Signed in as "+email)
	puMustAAL2(b, email, "hwk")
	if n := b.sent("POST", "/v1/webauthn/login/begin") - begins; n != 2 {
		t.Errorf("login/begin sent %d times, want 2 (the autofill request, then the button's)", n)
	}
	if n := b.sent("POST", "/v1/webauthn/login/finish"); n != 1 {
		t.Errorf("POST /v1/webauthn/login/finish sent %d times, want 1", n)
	}
	if c := uiEval[string](b, `document.body.dataset.conditional`); c != "off" {
		t.Errorf("after signing in the autofill request is %q, want off", c)
	}
	held = puCredentials(b, auth)
	if len(held) != 1 || held[0].SignCount <= count {
		b.fatalf("sign count %v after the sign-in, want more than %v", held[0].SignCount, count)
	}
	count = held[0].SignCount
	if server := puServerCredentials(b); len(server) != 1 || server[0].LastUsedAt == nil {
		b.fatalf("after the sign-in the server holds %+v, want last_used_at set", server)
	}
	var methods []string
	for _, d := range puActivity(b, audit.LoginSucceeded) {
		methods = append(methods, d["method"])
	}
	if !slices.Contains(methods, "webauthn") {
		t.Errorf("no login.succeeded with method webauthn in the activity (methods %q)", methods)
	}

	// A password sign-in now asks for the second factor; the key gives it.
	if st := puPost(b, "/v1/logout"); st != http.StatusNoContent {
		b.fatalf("POST /v1/logout: %d", st)
	}
	puPresence(b, auth, false) // else the autofill request signs in first
	puOpen(b, h, "sign-in")
	puPending(b)
	b.fill("email", email)
	b.fill("password", goodPassword)
	st := puClick(b, "#submit", "two-step")
	puPresence(b, auth, true)
	puMustStatus(b, st, "security key")
	if uiEval[bool](b, `document.getElementById("mfa-key").hidden`) || uiEval[bool](b, `document.getElementById("mfa").hidden`) {
		b.fatalf("the second step shows no security-key button")
	}
	if label := uiEval[string](b, `document.getElementById("code-label").textContent`); label != "Or a recovery code" {
		t.Errorf("the code field is labelled %q for an account without an app, want \"Or a recovery code\"", label)
	}
	if r := b.fetch("/v1/me"); r.Status != http.StatusUnauthorized {
		b.fatalf("the password alone signed in: %d %s", r.Status, r.Body)
	}
	puMustStatus(b, puClick(b, "#mfa-key", "Signed in as"), "Signed in as "+email)
	puMustAAL2(b, email, "pwd", "hwk")
	if held = puCredentials(b, auth); held[0].SignCount <= count {
		b.fatalf("sign count %v after the second factor, want more than %v", held[0].SignCount, count)
	}
	if n := b.sent("POST", "/v1/login/mfa"); n != 0 {
		t.Errorf("the key's second factor went to /v1/login/mfa %d times; the page finishes at /v1/webauthn/login/finish", n)
	}
}

// TestPasskeyManageStepUpChromium: rename, and removal and addition after
// the sign-in is no longer recent: the page asks to confirm (with the
// passkey, then with the password) and goes on.
func TestPasskeyManageStepUpChromium(t *testing.T) {
	h := puHarness(t, nil)
	b := uiNewBrowser(t)
	auth := puAuthenticator(b)
	const email = "manage-ui@example.com"
	h.newUser(email)
	puPasswordSignIn(b, h, email)
	puOpenPasskeys(b, h, email)
	puRegister(b)

	// Rename, in place.
	b.do("click Rename", chromedp.Click(chromedp.CSS("#credentials li button.rename")))
	id := puServerCredentials(b)[0].ID
	b.fill("name-"+id, "Work laptop")
	puMustStatus(b, puClick(b, "#credentials li button.save", "Renamed"), "Work laptop")
	if got := puListed(b); !slices.Equal(got, []string{"Work laptop"}) {
		b.fatalf("the list shows %v after renaming", got)
	}
	if got := puServerCredentials(b); got[0].Name != "Work laptop" {
		b.fatalf("the server has the name %q", got[0].Name)
	}

	// Removal needs a recent sign-in: the passkey confirms it.
	h.clock.Advance(11 * time.Minute)
	b.allowFailedLoad("/v1/webauthn/credentials/" + id)
	b.do("click Remove", chromedp.Click(chromedp.CSS("#credentials li button.remove")))
	puMustStatus(b, puClick(b, "#credentials li button.confirm-remove", "Confirm it is you"), "passkey")
	if uiEval[bool](b, `document.getElementById("reauth").hidden || document.getElementById("reauth-passkey").hidden`) {
		b.fatalf("the step-up form or its passkey button is hidden")
	}
	if got := puServerCredentials(b); len(got) != 1 {
		b.fatalf("removed before the step-up: %+v", got)
	}
	puMustStatus(b, puClick(b, "#reauth-passkey", "was removed"), "Work laptop")
	if got := puServerCredentials(b); len(got) != 0 {
		b.fatalf("the server still holds %+v", got)
	}
	if me := puWhoAmI(b); me.Session.AAL != 2 || !slices.Contains(me.Session.AMR, "hwk") {
		b.fatalf("after the passkey step-up /v1/me = %+v, want aal 2 with hwk", me)
	}
	if got := puListed(b); len(got) != 0 || uiEval[bool](b, `document.getElementById("empty").hidden`) {
		b.fatalf("the list shows %v after the removal, want it empty", got)
	}
	if uiEval[bool](b, `!document.getElementById("reauth").hidden`) {
		b.fatalf("the step-up form still shows")
	}

	// Adding needs it too; without a key left, the password confirms.
	h.clock.Advance(11 * time.Minute)
	b.allowFailedLoad("/v1/webauthn/register/begin")
	puMustStatus(b, puClick(b, "#add-passkey", "Confirm it is you"), "password")
	if !uiEval[bool](b, `document.getElementById("reauth-passkey").hidden`) {
		t.Errorf("the passkey step-up is offered without a passkey")
	}
	b.fill("password", goodPassword)
	puMustStatus(b, puClick(b, "#reauth-submit", "was added"), "recovery codes")
	if got := puServerCredentials(b); len(got) != 1 {
		b.fatalf("after the password step-up the server holds %+v", got)
	}
	if n := len(puCredentials(b, auth)); n != 1 {
		t.Errorf("the authenticator holds %d credentials, want 1 (the new one replaced the removed one's)", n)
	}
	if n := uiEval[int](b, `document.querySelectorAll("#code-list li").length`); n != 10 {
		t.Errorf("%d recovery codes shown after adding the only factor again, want 10", n)
	}
}

// TestAttackPasskeyWrongOriginRefusedChromium: the server accepts
// ceremonies from another origin only. The browser makes the credential
// (for it, all is well: the RP ID is its host), but the origin signed into
// the client data is the page's, and the server refuses it: nothing is
// stored, and the refusal is audited.
func TestAttackPasskeyWrongOriginRefusedChromium(t *testing.T) {
	h := puHarness(t, func(c *config.Config) { c.WebAuthnOrigins = []string{"http://localhost:1"} })
	b := uiNewBrowser(t)
	auth := puAuthenticator(b)
	b.allowFailedLoad("/v1/webauthn/register/finish")
	const email = "origin-ui@example.com"
	h.newUser(email)
	puPasswordSignIn(b, h, email)
	puOpenPasskeys(b, h, email)

	st := puClick(b, "#add-passkey", "was added")
	if st.Class != "error" || st.Text != "The passkey or security key was not accepted." {
		b.fatalf("status = %+v, want the passkey_refused error", st)
	}
	if n := b.sent("POST", "/v1/webauthn/register/finish"); n != 1 {
		b.fatalf("the page posted register/finish %d times, want 1 (the browser made the credential)", n)
	}
	if n := len(puCredentials(b, auth)); n != 1 {
		b.fatalf("the authenticator holds %d credentials, want 1", n)
	}
	if got := puServerCredentials(b); len(got) != 0 {
		b.fatalf("the server stored %+v", got)
	}
	if got := puListed(b); len(got) != 0 || !uiEval[bool](b, `document.getElementById("codes").hidden`) {
		b.fatalf("the page lists %v or shows recovery codes after a refusal", got)
	}
	r := b.fetch("/v1/mfa")
	if r.Status != http.StatusOK || !strings.Contains(r.Body, `"webauthn":false`) || !strings.Contains(r.Body, `"recovery_codes_left":0`) {
		b.fatalf("GET /v1/mfa after the refusal: %d %s", r.Status, r.Body)
	}
	failures := puActivity(b, audit.WebAuthnFailed)
	if len(failures) != 1 || failures[0]["ceremony"] != "register" || !strings.Contains(strings.ToLower(failures[0]["reason"]), "origin") {
		b.fatalf("webauthn.failed events: %v, want one for the registration naming the origin", failures)
	}
	var n int
	if err := queryCount(h, audit.WebAuthnRegistered, &n); err != nil || n != 0 {
		t.Errorf("webauthn.registered events: %d (%v), want 0", n, err)
	}

	// The refused credential signs no one in either: the browser offers
	// it, the server does not know it.
	puOpenPasskeys(b, h, email)
	puSignOut(b)
	b.allowFailedLoad("/v1/webauthn/login/finish")
	puOpen(b, h, "sign-in")
	st = puClick(b, "#passkey", "Signed in as")
	if st.Class != "error" {
		b.fatalf("a passkey sign-in with the refused credential: %+v", st)
	}
	if r := b.fetch("/v1/me"); r.Status != http.StatusUnauthorized {
		b.fatalf("signed in: %d %s", r.Status, r.Body)
	}
}

// TestAttackPasskeyWrongRPIDRefusedChromium: the server's relying party is
// sub.localhost (valid: its origin https://sub.localhost is on it), but the
// page is opened at http://localhost:<port>, which is not on it. The
// browser refuses the ceremony itself (SecurityError): no credential is
// made, nothing reaches the server's finish, nothing is stored.
func TestAttackPasskeyWrongRPIDRefusedChromium(t *testing.T) {
	h := puHarness(t, func(c *config.Config) {
		c.WebAuthnRPID = "sub.localhost"
		c.WebAuthnOrigins = []string{"https://sub.localhost"}
	})
	b := uiNewBrowser(t)
	auth := puAuthenticator(b)
	const email = "rpid-ui@example.com"
	h.newUser(email)
	puPasswordSignIn(b, h, email)
	puOpenPasskeys(b, h, email)

	st := puClick(b, "#add-passkey", "was added")
	if st.Class != "error" || !strings.Contains(st.Text, "does not match") {
		b.fatalf("status = %+v, want the browser's refusal (SecurityError)", st)
	}
	if n := b.sent("POST", "/v1/webauthn/register/begin"); n != 1 {
		b.fatalf("register/begin sent %d times, want 1", n)
	}
	if n := b.sent("POST", "/v1/webauthn/register/finish"); n != 0 {
		b.fatalf("register/finish sent %d times, want 0", n)
	}
	if held := puCredentials(b, auth); len(held) != 0 {
		b.fatalf("the authenticator made %d credentials", len(held))
	}
	if got := puServerCredentials(b); len(got) != 0 {
		b.fatalf("the server stored %+v", got)
	}

	// Sign-in with a passkey is refused by the browser the same way, and
	// the autofill request, refused too, stays quiet.
	puSignOut(b)
	puOpen(b, h, "sign-in")
	b.waitFor("the autofill request to fail", `document.body.dataset.conditional === "failed" ? "yes" : ""`)
	if st := uiEval[string](b, `document.getElementById("status").textContent`); st != "" {
		b.fatalf("the refused autofill request shows %q", st)
	}
	st = puClick(b, "#passkey", "Signed in as")
	if st.Class != "error" || !strings.Contains(st.Text, "does not match") {
		b.fatalf("status = %+v, want the browser's refusal", st)
	}
	if n := b.sent("POST", "/v1/webauthn/login/finish"); n != 0 {
		b.fatalf("login/finish sent %d times", n)
	}
}

// TestPasskeyConditionalUIChromium: on /ui/sign-in a conditional
// (autofill) request starts on page load, tied to the e-mail field; when
// the user picks the passkey (in headless Chromium's virtual environment,
// at once, without focus or click), the page signs in with it.
func TestPasskeyConditionalUIChromium(t *testing.T) {
	h := puHarness(t, nil)
	b := uiNewBrowser(t)
	auth := puAuthenticator(b)
	const email = "autofill-ui@example.com"
	h.newUser(email)
	puPasswordSignIn(b, h, email)
	puOpenPasskeys(b, h, email)
	puRegister(b)
	puSignOut(b)

	// Pending while the user has not picked.
	puPresence(b, auth, false)
	begins := b.sent("POST", "/v1/webauthn/login/begin")
	puOpen(b, h, "sign-in")
	puPending(b)
	if ac := uiEval[string](b, `document.getElementById("email").getAttribute("autocomplete")`); ac != "username webauthn" {
		t.Errorf("the e-mail field has autocomplete %q, want \"username webauthn\"", ac)
	}
	if !uiEval[bool](b, `PublicKeyCredential.isConditionalMediationAvailable()`, chromedp.EvalAwaitPromise) {
		b.fatalf("isConditionalMediationAvailable() is false")
	}
	if n := b.sent("POST", "/v1/webauthn/login/begin") - begins; n != 1 {
		t.Errorf("login/begin sent %d times on load, want 1", n)
	}
	if r := b.fetch("/v1/me"); r.Status != http.StatusUnauthorized {
		b.fatalf("signed in before the user picked: %d %s", r.Status, r.Body)
	}

	// Picked: signed in through the autofill request, no click.
	puPresence(b, auth, true)
	begins = b.sent("POST", "/v1/webauthn/login/begin")
	puOpen(b, h, "sign-in")
	puMustStatus(b, puWaitStatus(b, "Signed in as"), "Signed in as "+email)
	puMustAAL2(b, email, "hwk")
	if n := b.sent("POST", "/v1/webauthn/login/begin") - begins; n != 1 {
		t.Errorf("login/begin sent %d times, want 1 (the autofill request's)", n)
	}
	if n := b.sent("POST", "/v1/webauthn/login/finish"); n != 1 {
		t.Errorf("login/finish sent %d times, want 1", n)
	}
	if !uiEval[bool](b, `document.getElementById("form").hidden && document.getElementById("passkey-area").hidden`) {
		t.Errorf("the sign-in forms still show after signing in")
	}
}

// TestPasskeyMagicLinkSecondFactorChromium: the magic-link page offers
// the security key for the second step of a (verified) account whose only
// second factor is a key; before, it asked only for an app code.
func TestPasskeyMagicLinkSecondFactorChromium(t *testing.T) {
	h := puHarness(t, nil)
	b := uiNewBrowser(t)
	puAuthenticator(b)
	const email = "link-key-ui@example.com"
	h.newUser(email)
	// Verified first: a link into an unverified account claims it, and
	// the claim removes the second factors (a pre-hijacker's).
	mustStatus(t, h.client().do("POST", "/v1/verify-email", map[string]string{"token": uiLinkSecret(uiMailLink(t, h, email, "verify-email"))}), http.StatusOK)
	puPasswordSignIn(b, h, email)
	puOpenPasskeys(b, h, email)
	puRegister(b)
	puSignOut(b)

	mustStatus(t, h.client().do("POST", "/v1/magic-link", map[string]string{"email": email}), http.StatusAccepted)
	b.openLink(uiMailLink(t, h, email, "magic-link"))
	st := puClick(b, "#submit", "two-step")
	puMustStatus(b, st, "security key")
	if uiEval[bool](b, `document.getElementById("mfa-key").hidden`) {
		b.fatalf("the magic-link page offers no security key")
	}
	puMustStatus(b, puClick(b, "#mfa-key", "signed in as"), email)
	puMustAAL2(b, email, "email", "hwk")
}

// puEnrolNotice is what the pages say to a session held to enrolment.
const puEnrolNotice = "This server requires a second factor. Add a passkey or a security key to continue."

// puCurrentSession is the browser's session as GET /v1/sessions shows it.
type puCurrentSession struct {
	ID                    string   `json:"id"`
	AAL                   int      `json:"aal"`
	AMR                   []string `json:"amr"`
	Current               bool     `json:"current"`
	MFAEnrollmentRequired bool     `json:"mfa_enrollment_required"`
}

func puSession(b *uiBrowser) puCurrentSession {
	b.t.Helper()
	r := b.fetch("/v1/sessions")
	if r.Status != http.StatusOK {
		b.fatalf("GET /v1/sessions in the browser: %d %s", r.Status, r.Body)
	}
	var body struct {
		Sessions []puCurrentSession `json:"sessions"`
	}
	if err := json.Unmarshal([]byte(r.Body), &body); err != nil {
		b.fatalf("/v1/sessions: %v: %s", err, r.Body)
	}
	for _, s := range body.Sessions {
		if s.Current {
			return s
		}
	}
	b.fatalf("GET /v1/sessions lists no current session: %s", r.Body)
	return puCurrentSession{}
}

// puRevokeOthers is POST /v1/sessions/revoke-others from the page (JSON,
// same origin): its status and problem code, if any.
func puRevokeOthers(b *uiBrowser) (int, string) {
	b.t.Helper()
	r := uiEval[struct {
		Status int    `json:"status"`
		Code   string `json:"code"`
	}](b, `fetch("/v1/sessions/revoke-others", {method: "POST", credentials: "same-origin", headers: {"Content-Type": "application/json"}, body: "{}"}).then(function (r) {
  return r.json().catch(function () { return {}; }).then(function (d) { return {status: r.status, code: d.code || ""}; });
})`, chromedp.EvalAwaitPromise)
	return r.Status, r.Code
}

// puShown is the text of the element with id, or "" while it is hidden.
func puShown(b *uiBrowser, id string) string {
	b.t.Helper()
	return uiEval[string](b, fmt.Sprintf(`(function () { var e = document.getElementById(%q); return e.hidden ? "" : e.textContent; })()`, id))
}

// TestRequireMFAEnrolmentChromium: with --require-mfa, a password sign-in
// on the hosted page makes an enrolment-only session. The sign-in page and
// the passkeys page say so; adding a passkey there confirms the session
// with it at once (a step-up with the new key adds "mfa"), and what the
// server refused before (revoking the other sessions) then answers. When
// the user cancels that step-up, the key stays, the page offers to
// confirm the session, an action the server refuses meanwhile says so,
// and it goes on once the session is confirmed.
func TestRequireMFAEnrolmentChromium(t *testing.T) {
	h := newHarness(t, "sqlite", func(c *config.Config) {
		c.PublicURL = localhostURL
		c.RequireMFA = true
	})
	b := uiNewBrowser(t)
	auth := puAuthenticator(b)
	const email = "enrol-ui@example.com"
	signup := h.newUser(email) // its session is held to enrolment too
	siProblem(t, signup.do("POST", "/v1/sessions/revoke-others", map[string]any{}), http.StatusForbidden, "mfa_enrollment_required")

	// The password alone: signed in, held to enrolment, and told so.
	puPasswordSignIn(b, h, email)
	if got := puShown(b, "enrol-notice"); got != puEnrolNotice {
		b.fatalf("/ui/sign-in shows the notice %q, want %q", got, puEnrolNotice)
	}
	if puShown(b, "done") == "" {
		b.fatalf("/ui/sign-in shows no link to /ui/passkeys next to the notice")
	}
	if s := puSession(b); !s.MFAEnrollmentRequired || slices.Contains(s.AMR, "mfa") {
		b.fatalf("after the password the session is %+v, want it held to enrolment", s)
	}
	b.allowFailedLoad("/v1/sessions/revoke-others")
	if st, code := puRevokeOthers(b); st != http.StatusForbidden || code != "mfa_enrollment_required" {
		b.fatalf("POST /v1/sessions/revoke-others before the step-up: %d %q, want 403 mfa_enrollment_required", st, code)
	}

	// /ui/passkeys says it too; the new passkey confirms the session.
	puOpenPasskeys(b, h, email)
	if got := puShown(b, "enrol-notice"); got != puEnrolNotice || puShown(b, "enrol") == "" {
		b.fatalf("/ui/passkeys shows the notice %q, want %q", got, puEnrolNotice)
	}
	if puShown(b, "enrol-done") != "" || puShown(b, "enrol-confirm") != "" {
		b.fatalf("/ui/passkeys offers to confirm the session before it has a key")
	}
	st := puClick(b, "#add-passkey", "now confirmed")
	puMustStatus(b, st, "was added. This session is now confirmed")
	if !strings.Contains(st.Text, "recovery codes") || uiEval[int](b, `document.querySelectorAll("#code-list li").length`) != 10 {
		b.fatalf("the first factor's recovery codes are not shown (status %q)", st.Text)
	}
	if puShown(b, "enrol") != "" || puShown(b, "enrol-done") == "" {
		b.fatalf("after the step-up the page still asks for enrolment, or does not say the session is confirmed")
	}
	s := puSession(b)
	if s.MFAEnrollmentRequired || s.AAL != 2 || !slices.Contains(s.AMR, "mfa") || !slices.Contains(s.AMR, "hwk") || !slices.Contains(s.AMR, "pwd") {
		b.fatalf("after adding the passkey the session is %+v, want aal 2 with pwd, hwk and mfa, no longer held to enrolment", s)
	}
	if n := b.sent("POST", "/v1/reauthenticate"); n != 1 {
		t.Errorf("POST /v1/reauthenticate sent %d times, want 1 (the step-up with the new key)", n)
	}
	server := puServerCredentials(b)
	held := puCredentials(b, auth)
	if len(server) != 1 || len(held) != 1 || held[0].SignCount == 0 {
		b.fatalf("the server holds %+v and the authenticator %+v, want one key, used for the step-up", server, held)
	}
	var methods []string
	for _, d := range puActivity(b, audit.Reauthenticated) {
		methods = append(methods, d["method"])
	}
	if len(methods) != 1 || !strings.Contains(methods[0], "hwk") {
		t.Errorf("session.reauthenticated methods %q, want one step-up with the key", methods)
	}
	if st, code := puRevokeOthers(b); st != http.StatusOK {
		b.fatalf("POST /v1/sessions/revoke-others after the step-up: %d %q, want 200", st, code)
	}
	// The first factor revoked the other sessions, the sign-up's included.
	mustStatus(t, signup.do("GET", "/v1/me", nil), http.StatusUnauthorized)

	// The user cancels the step-up (another browser, another account).
	b2 := uiNewBrowser(t)
	puAuthenticator(b2)
	const other = "enrol-cancel-ui@example.com"
	h.newUser(other)
	puPasswordSignIn(b2, h, other)
	puOpenPasskeys(b2, h, other)
	uiEval[chromedp.Void](b2, `navigator.credentials.get = function () { return Promise.reject(new DOMException("The user cancelled.", "NotAllowedError")); }`)
	st = puClick(b2, "#add-passkey", "not confirmed yet")
	if st.Class != "error" || !strings.Contains(st.Text, "was added") || !strings.Contains(st.Text, "not confirmed yet") {
		b2.fatalf("status = %+v, want the key added and the session not confirmed", st)
	}
	if puShown(b2, "enrol-confirm") == "" || !strings.Contains(puShown(b2, "enrol-notice"), "Confirm this session") {
		b2.fatalf("the page does not offer to confirm the session with the new key (notice %q)", puShown(b2, "enrol-notice"))
	}
	if s := puSession(b2); !s.MFAEnrollmentRequired {
		b2.fatalf("the session passed without a step-up: %+v", s)
	}
	id := puServerCredentials(b2)[0].ID
	b2.allowFailedLoad("/v1/webauthn/credentials/" + id)
	b2.do("click Rename", chromedp.Click(chromedp.CSS("#credentials li button.rename")))
	b2.fill("name-"+id, "Work laptop")
	puMustStatus(b2, puClick(b2, "#credentials li button.save", "second factor first"), "Confirm this session")
	if got := puServerCredentials(b2)[0].Name; got == "Work laptop" {
		b2.fatalf("renamed although the server refuses the session")
	}
	uiEval[chromedp.Void](b2, `delete navigator.credentials.get`)
	puMustStatus(b2, puClick(b2, "#enrol-confirm", "Renamed"), "Work laptop")
	if got := puServerCredentials(b2)[0].Name; got != "Work laptop" {
		b2.fatalf("after the step-up the server has the name %q", got)
	}
	if puShown(b2, "enrol") != "" || puShown(b2, "enrol-done") == "" {
		b2.fatalf("after the step-up the page still asks for enrolment, or does not say the session is confirmed")
	}
	if s := puSession(b2); s.MFAEnrollmentRequired || !slices.Contains(s.AMR, "mfa") {
		b2.fatalf("after the step-up the session is %+v, want mfa", s)
	}
}
