package app_test

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/config"
)

// prFrom is a client whose address, behind the trusted proxy, is ip.
func prFrom(h *harness, ip string) *client {
	c := h.client()
	c.headers = map[string]string{"X-Forwarded-For": ip}
	return c
}

func prProxied(mutate func(c *config.Config)) func(c *config.Config) {
	return func(c *config.Config) {
		c.TrustedProxies = []string{"127.0.0.1/32", "::1"}
		if mutate != nil {
			mutate(c)
		}
	}
}

// TestAttackOneAccountFromManyIPsOwnerStillSignsIn: an attacker guesses
// one account's password from 200 addresses. Past the account's budget the
// password is not even checked from unfamiliar devices, right or wrong;
// the owner's known device still signs in with it, their open session
// keeps working, and an e-mailed code still works from anywhere.
func TestAttackOneAccountFromManyIPsOwnerStillSignsIn(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, prProxied(nil))
		const email = "target@example.com"
		laptop := h.newUser(email) // signed up: a known device, with a session
		phone := prFrom(h, "192.0.2.10")
		mustStatus(t, phone.login(email, goodPassword), http.StatusOK)
		mustStatus(t, laptop.do("POST", "/v1/logout", nil), http.StatusNoContent)

		checked := 0
		for i := range 200 {
			r := prFrom(h, fmt.Sprintf("203.0.%d.%d", i/250, i%250+1)).login(email, "guess number "+strconv.Itoa(i))
			switch r.code(t) {
			case "invalid_credentials":
				checked++
			case "extra_proof_required":
			default:
				t.Fatalf("guess %d: %d %s", i, r.status, r.body)
			}
		}
		if checked != int(h.cfg.LoginFailuresPerAccount) {
			t.Fatalf("%d of 200 guesses were checked, want the account's budget %d", checked, h.cfg.LoginFailuresPerAccount)
		}
		// The attacker holding the right password gains nothing.
		prWant(t, prFrom(h, "203.0.9.9").login(email, goodPassword), http.StatusForbidden, "extra_proof_required")
		// The owner's open session works; their known device signs in.
		mustStatus(t, phone.do("GET", "/v1/me", nil), http.StatusOK)
		mustStatus(t, laptop.login(email, goodPassword), http.StatusOK)
		// That sign-in cleared the count: a new device may try again.
		mustStatus(t, prFrom(h, "198.51.100.3").login(email, goodPassword), http.StatusOK)
	})
}

// TestAttackUnfamiliarDeviceNeedsEmailedCode: under protection, an
// e-mailed code signs the owner in from a new device, and that device is
// known from then on.
func TestAttackUnfamiliarDeviceNeedsEmailedCode(t *testing.T) {
	h := newHarness(t, "sqlite", prProxied(func(c *config.Config) { c.LoginFailuresPerAccount = 3 }))
	const email = "coded@example.com"
	h.newUser(email)
	mails := siMails(h)
	siVerifyEmail(t, mails, email)
	for i := range 4 {
		prFrom(h, "203.0.113."+strconv.Itoa(i+1)).login(email, "wrong")
	}
	owner := prFrom(h, "198.51.100.8")
	prWant(t, owner.login(email, goodPassword), http.StatusForbidden, "extra_proof_required")
	code := siMailCode(t, mails, owner, email)
	mustStatus(t, owner.do("POST", "/v1/otp/verify", map[string]string{"email": email, "code": code}), http.StatusOK)
	mustStatus(t, owner.do("POST", "/v1/logout", nil), http.StatusNoContent)
	mustStatus(t, owner.login(email, goodPassword), http.StatusOK)
}

// TestAttackKnownDeviceBoundedByNISTCap: a known device (a stolen device
// cookie, say) gets the rest of the 100-guess budget, not more.
func TestAttackKnownDeviceBoundedByNISTCap(t *testing.T) {
	h := newHarness(t, "sqlite", prProxied(func(c *config.Config) {
		c.LoginFailuresPerAccount, c.LoginMaxFailuresPerAccount, c.LoginDelayAfter = 2, 5, 1000
	}))
	const email = "capped@example.com"
	known := h.newUser(email)
	checked := 0
	for range 10 {
		if known.login(email, "wrong").code(t) == "invalid_credentials" {
			checked++
		}
	}
	if checked != 3 {
		t.Fatalf("a known device had %d guesses, want max − extra-proof threshold = 3", checked)
	}
	prWant(t, known.login(email, goodPassword), http.StatusForbidden, "extra_proof_required")
}

// TestAttackProgressiveDelayPerPair: after LoginDelayAfter attempts on one
// account from one address, each attempt waits, doubling; another address
// is not delayed.
func TestAttackProgressiveDelayPerPair(t *testing.T) {
	h := newHarness(t, "sqlite", prProxied(func(c *config.Config) { c.LoginDelayAfter, c.LoginFailuresPerAccount = 2, 50 }))
	const email = "slow@example.com"
	h.newUser(email)
	a := prFrom(h, "203.0.113.7")
	for range 3 { // the third starts a 1s wait
		prWant(t, a.login(email, "wrong"), http.StatusUnauthorized, "invalid_credentials")
	}
	r := a.login(email, goodPassword)
	prWant(t, r, http.StatusTooManyRequests, "rate_limited")
	if r.header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After %q, want 1", r.header.Get("Retry-After"))
	}
	mustStatus(t, prFrom(h, "198.51.100.1").login(email, "wrong"), http.StatusUnauthorized)
	h.clock.Advance(time.Second)
	prWant(t, a.login(email, "wrong"), http.StatusUnauthorized, "invalid_credentials") // starts a longer wait
	h.clock.Advance(time.Second)
	if r := a.login(email, goodPassword); r.status != http.StatusTooManyRequests {
		t.Fatalf("the wait did not grow: %d %s", r.status, r.body)
	}
	h.clock.Advance(h.cfg.LoginDelayMax)
	mustStatus(t, a.login(email, goodPassword), http.StatusOK)
	// Success clears the pair: the next failures start from zero.
	prWant(t, a.login(email, "wrong"), http.StatusUnauthorized, "invalid_credentials")
}

// TestNativeDeviceToken: a native app gets a device token at sign-in and
// is a known device when it sends it back; a forged or another account's
// token is not.
func TestNativeDeviceToken(t *testing.T) {
	h := newHarness(t, "sqlite", prProxied(func(c *config.Config) { c.LoginFailuresPerAccount = 2 }))
	h.newUser("native@example.com")
	h.newUser("other@example.com")
	login := func(email, pw, tok string) *response {
		c := prFrom(h, "198.51.100.20")
		if tok != "" {
			c.headers["Gatehouse-Device-Token"] = tok
		}
		return c.do("POST", "/v1/login", map[string]string{"email": email, "password": pw, "mode": "token", "client": "native"})
	}
	r := login("native@example.com", goodPassword, "")
	mustStatus(t, r, http.StatusOK)
	tok, _ := r.json(t)["device_token"].(string)
	if tok == "" {
		t.Fatalf("no device_token for a native client: %s", r.body)
	}
	other, _ := login("other@example.com", goodPassword, "").json(t)["device_token"].(string)
	for range 3 {
		prFrom(h, "203.0.113.50").login("native@example.com", "wrong")
	}
	for name, bad := range map[string]string{
		"none":            "",
		"another account": other,
		"tampered":        tok[:len(tok)-2] + "AA",
		"junk":            "not.a-token",
	} {
		t.Run(name, func(t *testing.T) {
			prWant(t, login("native@example.com", goodPassword, bad), http.StatusForbidden, "extra_proof_required")
		})
	}
	mustStatus(t, login("native@example.com", goodPassword, tok), http.StatusOK)
}

func prWant(t *testing.T, r *response, status int, code string) {
	t.Helper()
	if r.status != status || r.code(t) != code {
		t.Fatalf("got %d %s, want %d %s", r.status, r.body, status, code)
	}
}

// TestRateLimitHeaders: a sign-in answers with the state of the counters
// it was decided against, and a refused one with Retry-After too.
func TestRateLimitHeaders(t *testing.T) {
	h := newHarness(t, "sqlite", func(c *config.Config) { c.LoginAttemptsPerIP = 2 })
	c := h.client()
	r := c.login("headers@example.com", "wrong")
	if got, want := r.header.Get("RateLimit-Policy"), `"login_ip";q=2;w=900`; got != want {
		t.Errorf("RateLimit-Policy = %q, want %q", got, want)
	}
	if got, want := r.header.Get("RateLimit"), `"login_ip";r=1;t=450`; got != want {
		t.Errorf("RateLimit = %q, want %q", got, want)
	}
	c.login("headers@example.com", "wrong")
	r = c.login("headers@example.com", "wrong")
	prWant(t, r, http.StatusTooManyRequests, "rate_limited")
	if r.header.Get("Retry-After") != "450" || r.header.Get("RateLimit") != `"login_ip";r=0;t=900` {
		t.Errorf("refused: Retry-After %q, RateLimit %q", r.header.Get("Retry-After"), r.header.Get("RateLimit"))
	}
	if r := c.do("GET", "/healthz", nil); r.header.Get("RateLimit") != "" {
		t.Error("RateLimit on a route without limits")
	}
}

// TestAttackTokenEndpointsThrottledPerIP: refresh, OAuth token,
// revocation and introspection share a per-IP limit, decided before any
// token is looked up; another address is not affected.
func TestAttackTokenEndpointsThrottledPerIP(t *testing.T) {
	h := newHarness(t, "sqlite", prProxied(func(c *config.Config) { c.TokenRequestsPerIP = 3 }))
	for i, path := range []string{"/v1/token/refresh", "/oauth2/token", "/oauth2/revoke"} {
		r := h.raw("POST", path, "application/json", `{"refresh_token":"ghr_guess"}`, map[string]string{"X-Forwarded-For": "203.0.113.9"})
		if r.status == http.StatusTooManyRequests {
			t.Fatalf("request %d (%s) refused under the limit", i+1, path)
		}
	}
	r := h.raw("POST", "/oauth2/introspect", "application/x-www-form-urlencoded", "token=x", map[string]string{"X-Forwarded-For": "203.0.113.9"})
	prWant(t, r, http.StatusTooManyRequests, "rate_limited")
	if r.header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	r = h.raw("POST", "/v1/token/refresh", "application/json", `{"refresh_token":"ghr_guess"}`, map[string]string{"X-Forwarded-For": "198.51.100.9"})
	if r.status == http.StatusTooManyRequests {
		t.Fatal("another address was limited")
	}
}
