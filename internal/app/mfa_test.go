package app_test

import (
	"bytes"
	"context"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/png"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/gatehouse-auth/gatehouse/internal/config"
)

// Second factors end to end: enrolment of an authenticator app, the sign-in
// challenge that any first factor of an account with one yields, recovery
// codes, and the attacks on each.

// mfOpts are the TOTP parameters the server uses.
var mfOpts = totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// mfSubjRecoveryUsed is the subject of the notice a used recovery code
// sends.
const mfSubjRecoveryUsed = "A recovery code was used on your"

var mfRecoveryCodeRE = regexp.MustCompile(`^[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}$`)

// mfCode is the app's code for secret at time at.
func mfCode(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, mfOpts)
	if err != nil {
		t.Fatalf("totp: %v", err)
	}
	return c
}

// mfNextCode moves the server clock to the next 30-s step (each step is
// accepted once per user) and returns the code for now.
func mfNextCode(t *testing.T, h *harness, secret string) string {
	t.Helper()
	h.clock.Advance(30 * time.Second)
	return mfCode(t, secret, h.clock.Now())
}

// mfWrong returns a well-formed code that no step within ±2 of now
// accepts (i = 0, 1, … give distinct ones).
func mfWrong(t *testing.T, h *harness, secret string, i int) string {
	t.Helper()
	near := map[string]bool{}
	for d := -2; d <= 2; d++ {
		near[mfCode(t, secret, h.clock.Now().Add(time.Duration(d)*30*time.Second))] = true
	}
	for n := 0; ; n++ {
		c := fmt.Sprintf("%06d", (123457*(i+1)+n*7919)%1_000_000)
		if !near[c] {
			return c
		}
	}
}

// mfEnrol sets up an authenticator app on c's account (c must have signed
// in recently) and returns its secret and the recovery codes. The clock
// then moves on a minute, so the steps around now are later than the one
// that confirmed the factor.
func mfEnrol(t *testing.T, h *harness, c *client) (string, []string) {
	t.Helper()
	r := c.do("POST", "/v1/mfa/totp", nil)
	mustStatus(t, r, http.StatusOK)
	secret, _ := r.json(t)["secret"].(string)
	if secret == "" {
		t.Fatalf("no secret: %s", r.body)
	}
	r = c.do("POST", "/v1/mfa/totp/confirm", map[string]string{"code": mfCode(t, secret, h.clock.Now())})
	mustStatus(t, r, http.StatusOK)
	codes := siStrings(r.json(t)["recovery_codes"])
	if len(codes) != 10 {
		t.Fatalf("%d recovery codes, want 10: %s", len(codes), r.body)
	}
	h.clock.Advance(time.Minute)
	return secret, codes
}

// mfChallenge signs email in with the password and returns the challenge
// it must answer with a second factor.
func mfChallenge(t *testing.T, h *harness, email, pw string) string {
	t.Helper()
	c := h.client()
	r := c.login(email, pw)
	return mfMustChallenge(t, c, r)
}

// mfMustChallenge checks that r is a second-factor challenge, not a
// session, and returns it.
func mfMustChallenge(t *testing.T, c *client, r *response) string {
	t.Helper()
	mustStatus(t, r, http.StatusOK)
	m := r.json(t)
	ch, _ := m["challenge"].(string)
	if m["mfa_required"] != true || !strings.HasPrefix(ch, "ghm_") || len(ch) != 47 {
		t.Fatalf("not a challenge: %s", r.body)
	}
	if !slices.Equal(siStrings(m["methods"]), []string{"totp", "recovery_code"}) || m["expires_in"] != float64(300) {
		t.Errorf("challenge methods/expiry: %s", r.body)
	}
	if c != nil && c.cookie != nil {
		t.Fatalf("a first factor alone set a session cookie: %v", r.header)
	}
	for _, sc := range siSetCookies(r) {
		if strings.Contains(sc, "gh_session") || strings.Contains(sc, "gh_refresh") {
			t.Fatalf("a first factor alone set a cookie: %s", sc)
		}
	}
	for _, k := range []string{"session", "user", "access_token", "refresh_token"} {
		if _, ok := m[k]; ok {
			t.Fatalf("the challenge carries %q: %s", k, r.body)
		}
	}
	return ch
}

// mfComplete answers challenge with a TOTP code (from c).
func mfComplete(c *client, challenge, code string) *response {
	c.h.t.Helper()
	return c.do("POST", "/v1/login/mfa", map[string]string{"challenge": challenge, "code": code})
}

// mfRecover answers challenge with a recovery code (from c).
func mfRecover(c *client, challenge, code string) *response {
	c.h.t.Helper()
	return c.do("POST", "/v1/login/mfa", map[string]string{"challenge": challenge, "recovery_code": code})
}

// mfSignIn signs email in with the password and the app's next code, and
// returns the client with its (fresh, AAL2) session.
func mfSignIn(t *testing.T, h *harness, email, pw, secret string) *client {
	t.Helper()
	ch := mfChallenge(t, h, email, pw)
	c := h.client()
	mustStatus(t, mfComplete(c, ch, mfNextCode(t, h, secret)), http.StatusOK)
	if c.cookie == nil {
		t.Fatal("no session cookie after the second factor")
	}
	return c
}

// mfStatus is GET /v1/mfa of c's account.
func mfStatus(t *testing.T, c *client) (bool, int) {
	t.Helper()
	r := c.do("GET", "/v1/mfa", nil)
	mustStatus(t, r, http.StatusOK)
	m := r.json(t)
	on, ok := m["totp"].(bool)
	left, ok2 := m["recovery_codes_left"].(float64)
	if !ok || !ok2 {
		t.Fatalf("GET /v1/mfa: %s", r.body)
	}
	return on, int(left)
}

// mfMustSession checks that r opened a cookie session at aal with amr.
func mfMustSession(t *testing.T, c *client, r *response, aal int, amr []string) {
	t.Helper()
	mustStatus(t, r, http.StatusOK)
	if c.cookie == nil || !strings.HasPrefix(c.cookie.Value, "ghs_") {
		t.Fatalf("no session cookie: %s", r.body)
	}
	s := siSession(t, r)
	if s["aal"] != float64(aal) {
		t.Errorf("session aal %v, want %d: %s", s["aal"], aal, r.body)
	}
	if got := siStrings(s["amr"]); !slices.Equal(got, amr) {
		t.Errorf("session amr %v, want %v", got, amr)
	}
	mustStatus(t, c.do("GET", "/v1/me", nil), http.StatusOK)
}

// mfDirectSession checks that a password sign-in opens a session at once.
func mfDirectSession(t *testing.T, h *harness, email string) *client {
	t.Helper()
	c := h.client()
	r := c.login(email, goodPassword)
	mustStatus(t, r, http.StatusOK)
	if r.json(t)["mfa_required"] != nil {
		t.Fatalf("sign-in challenged: %s", r.body)
	}
	mfMustSession(t, c, r, 1, []string{"pwd"})
	return c
}

func TestTOTPRFC6238Vectors(t *testing.T) {
	secret := base32.StdEncoding.EncodeToString([]byte("12345678901234567890"))
	opts := totp.ValidateOpts{Period: 30, Digits: otp.DigitsEight, Algorithm: otp.AlgorithmSHA1}
	for _, v := range []struct {
		at   int64
		want string
	}{
		{59, "94287082"},
		{1111111109, "07081804"},
		{1111111111, "14050471"},
		{1234567890, "89005924"},
		{2000000000, "69279037"},
		{20000000000, "65353130"},
	} {
		got, err := totp.GenerateCodeCustom(secret, time.Unix(v.at, 0).UTC(), opts)
		if err != nil {
			t.Fatalf("T=%d: %v", v.at, err)
		}
		if got != v.want {
			t.Errorf("T=%d: code %s, want %s", v.at, got, v.want)
		}
	}
}

func TestMFAEnrolAndSignIn(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		const email = "enrol@example.com"
		c := h.newUser(email)
		if on, left := mfStatus(t, c); on || left != 0 {
			t.Fatalf("fresh account: totp %v, %d codes", on, left)
		}
		mustStatus(t, h.client().do("GET", "/v1/mfa", nil), http.StatusUnauthorized)
		siProblem(t, h.client().do("POST", "/v1/mfa/totp", nil), http.StatusUnauthorized, "unauthenticated")

		// Enrolment needs a recent sign-in.
		h.clock.Advance(11 * time.Minute)
		siProblem(t, c.do("POST", "/v1/mfa/totp", nil), http.StatusForbidden, "reauthentication_required")
		c = siFresh(t, h, email)

		r := c.do("POST", "/v1/mfa/totp", nil)
		mustStatus(t, r, http.StatusOK)
		m := r.json(t)
		secret, _ := m["secret"].(string)
		if _, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret); err != nil || len(secret) < 32 {
			t.Fatalf("secret %q is not base32 of at least 160 bits: %v", secret, err)
		}
		uri, _ := m["otpauth_uri"].(string)
		u, err := url.Parse(uri)
		if err != nil {
			t.Fatalf("otpauth_uri %q: %v", uri, err)
		}
		q := u.Query()
		issuer := h.cfg.ProductName
		if u.Scheme != "otpauth" || u.Host != "totp" || q.Get("secret") != secret || q.Get("issuer") != issuer || issuer == "" {
			t.Errorf("otpauth_uri %q (issuer %q)", uri, issuer)
		}
		if label, _ := url.PathUnescape(strings.TrimPrefix(u.Path, "/")); label != issuer+":"+email {
			t.Errorf("otpauth label %q, want %q", label, issuer+":"+email)
		}
		if p := q.Get("period"); p != "" && p != "30" {
			t.Errorf("period %q", p)
		}
		if d := q.Get("digits"); d != "" && d != "6" {
			t.Errorf("digits %q", d)
		}
		if a := q.Get("algorithm"); a != "" && a != "SHA1" {
			t.Errorf("algorithm %q", a)
		}
		qr, _ := m["qr_png"].(string)
		raw, ok := strings.CutPrefix(qr, "data:image/png;base64,")
		if !ok {
			t.Fatalf("qr_png is not a PNG data URL: %.60s", qr)
		}
		img, err := base64.StdEncoding.DecodeString(raw)
		if err != nil {
			t.Fatalf("qr_png base64: %v", err)
		}
		if _, err := png.Decode(bytes.NewReader(img)); err != nil {
			t.Fatalf("qr_png is not a PNG: %v", err)
		}

		// A wrong code leaves the factor pending: sign-in is unchanged.
		siProblem(t, c.do("POST", "/v1/mfa/totp/confirm", map[string]string{"code": mfWrong(t, h, secret, 0)}), http.StatusUnauthorized, "invalid_code")
		siProblem(t, c.do("POST", "/v1/mfa/totp/confirm", map[string]string{"code": "12345"}), http.StatusUnauthorized, "invalid_code")
		if on, left := mfStatus(t, c); on || left != 0 {
			t.Fatalf("after a wrong confirmation: totp %v, %d codes", on, left)
		}
		mfDirectSession(t, h, email)

		// The right code turns it on and shows the recovery codes once.
		r = c.do("POST", "/v1/mfa/totp/confirm", map[string]string{"code": mfCode(t, secret, h.clock.Now())})
		mustStatus(t, r, http.StatusOK)
		codes := siStrings(r.json(t)["recovery_codes"])
		if len(codes) != 10 {
			t.Fatalf("%d recovery codes, want 10: %s", len(codes), r.body)
		}
		seen := map[string]bool{}
		for _, rc := range codes {
			if !mfRecoveryCodeRE.MatchString(rc) || seen[rc] {
				t.Errorf("recovery code %q malformed or repeated", rc)
			}
			seen[rc] = true
		}
		if on, left := mfStatus(t, c); !on || left != 10 {
			t.Fatalf("after confirmation: totp %v, %d codes", on, left)
		}
		siProblem(t, c.do("POST", "/v1/mfa/totp/confirm", map[string]string{"code": mfCode(t, secret, h.clock.Now())}), http.StatusConflict, "conflict")
		siProblem(t, c.do("POST", "/v1/mfa/totp", nil), http.StatusConflict, "conflict")
		if n := len(siEvents(siActivity(t, c), "mfa.totp_enabled")); n != 1 {
			t.Errorf("%d mfa.totp_enabled events, want 1", n)
		}

		// The password alone now yields a challenge.
		ch := mfChallenge(t, h, email, goodPassword)
		siProblem(t, h.client().login(email, "a wrong password for sure"), http.StatusUnauthorized, "invalid_credentials")
		d := h.client()
		r = mfComplete(d, ch, mfNextCode(t, h, secret))
		mfMustSession(t, d, r, 2, []string{"pwd", "otp", "mfa"})
		var second []siEvent
		for _, e := range siEvents(siActivity(t, d), "login.succeeded") {
			if e.Details["second_factor"] != "" {
				second = append(second, e)
			}
		}
		if len(second) != 1 || second[0].Details["second_factor"] != "totp" {
			t.Errorf("second-factor sign-ins %+v, want one by totp", second)
		}

		// Token mode: the challenge remembers the mode and client.
		r = h.raw("POST", "/v1/login", "application/json", jsonBody(map[string]string{"email": email, "password": goodPassword, "mode": "token", "client": "native"}), nil)
		ch = mfMustChallenge(t, nil, r)
		r = h.raw("POST", "/v1/login/mfa", "application/json", jsonBody(map[string]string{"challenge": ch, "code": mfNextCode(t, h, secret)}), nil)
		mustStatus(t, r, http.StatusOK)
		ts := tokensOf(t, r, refreshCookie)
		if !strings.HasPrefix(ts.refresh, "ghr_") || ts.cookie != nil {
			t.Fatalf("native tokens: refresh %q cookie %v", ts.refresh, ts.cookie)
		}
		_, claims := jwtParts(t, ts.access)
		if claims["acr"] != "aal2" {
			t.Errorf("access token acr %v, want aal2", claims["acr"])
		}
		if amr := siStrings(claims["amr"]); !slices.Equal(amr, []string{"pwd", "otp", "mfa"}) {
			t.Errorf("access token amr %v, want [pwd otp mfa]", amr)
		}
		mustStatus(t, h.raw("GET", "/v1/me", "", "", bearer(ts.access)), http.StatusOK)
		r = h.refreshNative(ts.refresh, uaFirefox) // the client that signed in
		mustStatus(t, r, http.StatusOK)
		_, claims = jwtParts(t, tokensOf(t, r, refreshCookie).access)
		if claims["acr"] != "aal2" || !slices.Contains(siStrings(claims["amr"]), "mfa") {
			t.Errorf("refreshed access token lost its AAL: acr %v amr %v", claims["acr"], claims["amr"])
		}
	})
}

// A code is good for one sign-in: the step it belongs to is spent.
func TestAttackTOTPReplay(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		const email = "replay-totp@example.com"
		secret, _ := mfEnrol(t, h, h.newUser(email))
		code := mfNextCode(t, h, secret)
		mustStatus(t, mfComplete(h.client(), mfChallenge(t, h, email, goodPassword), code), http.StatusOK)
		c := h.client()
		siProblem(t, mfComplete(c, mfChallenge(t, h, email, goodPassword), code), http.StatusUnauthorized, "invalid_code")
		if c.cookie != nil {
			t.Fatal("a replayed code set a cookie")
		}
		// The step before the spent one is refused too (steps only move on).
		siProblem(t, mfComplete(h.client(), mfChallenge(t, h, email, goodPassword), mfCode(t, secret, h.clock.Now().Add(-30*time.Second))), http.StatusUnauthorized, "invalid_code")
		// The next step is fine.
		mustStatus(t, mfComplete(h.client(), mfChallenge(t, h, email, goodPassword), mfNextCode(t, h, secret)), http.StatusOK)
	})
}

// The server accepts the codes of one step either side of now, no more.
func TestAttackTOTPWindowEdges(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		const email = "window@example.com"
		secret, _ := mfEnrol(t, h, h.newUser(email))
		h.clock.Advance(2 * time.Minute)
		at := func(steps int) string {
			return mfCode(t, secret, h.clock.Now().Add(time.Duration(steps)*30*time.Second))
		}
		ch := mfChallenge(t, h, email, goodPassword)
		siProblem(t, mfComplete(h.client(), ch, at(-2)), http.StatusUnauthorized, "invalid_code")
		siProblem(t, mfComplete(h.client(), ch, at(+2)), http.StatusUnauthorized, "invalid_code")
		mustStatus(t, mfComplete(h.client(), ch, at(-1)), http.StatusOK)
		ch = mfChallenge(t, h, email, goodPassword)
		mustStatus(t, mfComplete(h.client(), ch, at(+1)), http.StatusOK)
		h.clock.Advance(30 * time.Second) // past the step just used
		fails := siEvents(siActivity(t, mfSignIn(t, h, email, goodPassword, secret)), "mfa.failed")
		if len(fails) != 2 || fails[0].Details["method"] != "totp" {
			t.Errorf("mfa.failed events %+v, want 2 by totp", fails)
		}
	})
}

// A challenge takes five guesses; the sixth finds it dead, right code or
// not.
func TestAttackMFAChallengeBruteForce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		const email = "brute-mfa@example.com"
		secret, _ := mfEnrol(t, h, h.newUser(email))
		h.clock.Advance(30 * time.Second)
		ch := mfChallenge(t, h, email, goodPassword)
		for i := range 5 {
			siProblem(t, mfComplete(h.client(), ch, mfWrong(t, h, secret, i)), http.StatusUnauthorized, "invalid_code")
		}
		right := mfCode(t, secret, h.clock.Now())
		c := h.client()
		siProblem(t, mfComplete(c, ch, right), http.StatusUnauthorized, "invalid_challenge")
		siProblem(t, mfRecover(c, ch, "aaaa-aaaa-aaaa-aaaa"), http.StatusUnauthorized, "invalid_challenge")
		if c.cookie != nil {
			t.Fatal("a dead challenge set a cookie")
		}
		// The right code was not spent on the dead challenge.
		mustStatus(t, mfComplete(h.client(), mfChallenge(t, h, email, goodPassword), right), http.StatusOK)
	})
}

// A completed challenge is spent.
func TestAttackMFAChallengeReuse(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		const email = "reuse-mfa@example.com"
		secret, codes := mfEnrol(t, h, h.newUser(email))
		ch := mfChallenge(t, h, email, goodPassword)
		mustStatus(t, mfComplete(h.client(), ch, mfNextCode(t, h, secret)), http.StatusOK)
		c := h.client()
		siProblem(t, mfComplete(c, ch, mfNextCode(t, h, secret)), http.StatusUnauthorized, "invalid_challenge")
		siProblem(t, mfRecover(c, ch, codes[0]), http.StatusUnauthorized, "invalid_challenge")
		if c.cookie != nil {
			t.Fatal("a spent challenge set a cookie")
		}
		// The recovery code was not spent on the dead challenge.
		if _, left := mfStatus(t, mfSignIn(t, h, email, goodPassword, secret)); left != 10 {
			t.Errorf("%d recovery codes left, want 10", left)
		}
	})
}

// A challenge lives five minutes.
func TestAttackMFAChallengeExpired(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		const email = "expired-mfa@example.com"
		secret, _ := mfEnrol(t, h, h.newUser(email))
		ch := mfChallenge(t, h, email, goodPassword)
		if backend == "postgres+redis" {
			// The challenge lives in Redis, whose TTLs run in real time:
			// the server clock cannot age it.
			t.Log("Redis expires challenges in real time: the expiry is checked on sqlite only")
			return
		}
		h.clock.Advance(5*time.Minute + time.Second)
		siProblem(t, mfComplete(h.client(), ch, mfCode(t, secret, h.clock.Now())), http.StatusUnauthorized, "invalid_challenge")
		// A fresh one works with the same code.
		mustStatus(t, mfComplete(h.client(), mfChallenge(t, h, email, goodPassword), mfCode(t, secret, h.clock.Now())), http.StatusOK)
	})
}

// Made-up and malformed challenges are refused alike.
func TestAttackMFAChallengeForged(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		const email = "forged-mfa@example.com"
		secret, codes := mfEnrol(t, h, h.newUser(email))
		real := mfChallenge(t, h, email, goodPassword)
		code := mfNextCode(t, h, secret)
		for _, bad := range []string{
			"ghm_" + strings.Repeat("A", 43),
			"ghm_" + strings.Repeat("!", 43),
			"ghm_short",
			"ghs_" + strings.TrimPrefix(real, "ghm_"),
			"ghl_" + strings.TrimPrefix(real, "ghm_"),
			real + "x",
			real[:len(real)-1],
			strings.ToUpper(real),
			"garbage",
		} {
			c := h.client()
			siProblem(t, mfComplete(c, bad, code), http.StatusUnauthorized, "invalid_challenge")
			siProblem(t, mfRecover(c, bad, codes[0]), http.StatusUnauthorized, "invalid_challenge")
			if c.cookie != nil {
				t.Fatalf("challenge %q set a cookie", bad)
			}
		}
		siProblem(t, h.client().do("POST", "/v1/login/mfa", map[string]string{"code": code}), http.StatusBadRequest, "missing_field")
		siProblem(t, h.client().do("POST", "/v1/login/mfa", map[string]string{"challenge": real}), http.StatusBadRequest, "missing_field")
		siProblem(t, h.client().do("POST", "/v1/login/mfa", map[string]string{"challenge": real, "code": code, "recovery_code": codes[0]}), http.StatusBadRequest, "missing_field")
		// None of that touched the real challenge or the code.
		c := h.client()
		mfMustSession(t, c, mfComplete(c, real, code), 2, []string{"pwd", "otp", "mfa"})
		if _, left := mfStatus(t, c); left != 10 {
			t.Errorf("%d recovery codes left, want 10", left)
		}
	})
}

// A challenge proves the password as it was: once it changes, the
// challenge is dead.
func TestAttackMFAChallengeAfterPasswordChange(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		const email = "pwchange-mfa@example.com"
		const newPassword = "a completely different passphrase"
		secret, codes := mfEnrol(t, h, h.newUser(email))
		stolen := mfChallenge(t, h, email, goodPassword)
		owner := mfSignIn(t, h, email, goodPassword, secret)
		mustStatus(t, owner.do("POST", "/v1/password", map[string]string{"current_password": goodPassword, "new_password": newPassword}), http.StatusOK)
		c := h.client()
		siProblem(t, mfComplete(c, stolen, mfNextCode(t, h, secret)), http.StatusUnauthorized, "invalid_challenge")
		siProblem(t, mfRecover(c, stolen, codes[0]), http.StatusUnauthorized, "invalid_challenge")
		if c.cookie != nil {
			t.Fatal("a challenge of the old password set a cookie")
		}
		siProblem(t, h.client().login(email, goodPassword), http.StatusUnauthorized, "invalid_credentials")
		mfSignIn(t, h, email, newPassword, secret)
	})
}

// Each recovery code signs in once, and its use is announced.
func TestAttackRecoveryCodeSingleUse(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		box := siMails(h)
		const email = "recovery@example.com"
		_, codes := mfEnrol(t, h, h.newUser(email))
		c := h.client()
		r := mfRecover(c, mfChallenge(t, h, email, goodPassword), codes[0])
		mfMustSession(t, c, r, 2, []string{"pwd", "mfa"})
		m := box.next(t, email, mfSubjRecoveryUsed)
		if !strings.Contains(m.Subject, "A recovery code was used on your "+h.cfg.ProductName+" account") {
			t.Errorf("notice subject %q", m.Subject)
		}
		if strings.Contains(m.Text, codes[0]) {
			t.Errorf("the notice repeats the code:\n%s", m.Text)
		}
		if on, left := mfStatus(t, c); !on || left != 9 {
			t.Errorf("after one recovery code: totp %v, %d codes left, want 9", on, left)
		}
		// Again, in any spelling: refused.
		for _, again := range []string{codes[0], strings.ToUpper(codes[0]), strings.ReplaceAll(codes[0], "-", "")} {
			d := h.client()
			siProblem(t, mfRecover(d, mfChallenge(t, h, email, goodPassword), again), http.StatusUnauthorized, "invalid_code")
			if d.cookie != nil {
				t.Fatal("a used recovery code set a cookie")
			}
		}
		siProblem(t, mfRecover(h.client(), mfChallenge(t, h, email, goodPassword), "aaaa-bbbb-cccc-dddd"), http.StatusUnauthorized, "invalid_code")
		// Another code, typed loosely, works once.
		loose := strings.ToUpper(strings.ReplaceAll(codes[1], "-", " "))
		mustStatus(t, mfRecover(h.client(), mfChallenge(t, h, email, goodPassword), loose), http.StatusOK)
		box.next(t, email, mfSubjRecoveryUsed)
		if _, left := mfStatus(t, c); left != 8 {
			t.Errorf("%d codes left, want 8", left)
		}
		fails := siEvents(siActivity(t, c), "mfa.failed")
		if len(fails) != 4 || fails[0].Details["method"] != "recovery_code" {
			t.Errorf("mfa.failed events %+v, want 4 by recovery_code", fails)
		}
		// Another account's code is no good either.
		_, other := mfEnrol(t, h, h.newUser("other-recovery@example.com"))
		siProblem(t, mfRecover(h.client(), mfChallenge(t, h, email, goodPassword), other[0]), http.StatusUnauthorized, "invalid_code")
	})
}

func TestRecoveryCodesRegenerate(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		const email = "regen@example.com"
		c := h.newUser(email)
		siProblem(t, c.do("POST", "/v1/mfa/recovery-codes", nil), http.StatusConflict, "conflict")
		secret, old := mfEnrol(t, h, c)
		h.clock.Advance(11 * time.Minute)
		siProblem(t, c.do("POST", "/v1/mfa/recovery-codes", nil), http.StatusForbidden, "reauthentication_required")
		siProblem(t, h.client().do("POST", "/v1/mfa/recovery-codes", nil), http.StatusUnauthorized, "unauthenticated")

		fresh := mfSignIn(t, h, email, goodPassword, secret)
		r := fresh.do("POST", "/v1/mfa/recovery-codes", nil)
		mustStatus(t, r, http.StatusOK)
		codes := siStrings(r.json(t)["recovery_codes"])
		if len(codes) != 10 {
			t.Fatalf("%d new codes: %s", len(codes), r.body)
		}
		for _, nc := range codes {
			if slices.Contains(old, nc) || !mfRecoveryCodeRE.MatchString(nc) {
				t.Errorf("new code %q malformed or from the old set", nc)
			}
		}
		if on, left := mfStatus(t, fresh); !on || left != 10 {
			t.Errorf("after regeneration: totp %v, %d left", on, left)
		}
		for _, oc := range old[:3] {
			siProblem(t, mfRecover(h.client(), mfChallenge(t, h, email, goodPassword), oc), http.StatusUnauthorized, "invalid_code")
		}
		mustStatus(t, mfRecover(h.client(), mfChallenge(t, h, email, goodPassword), codes[0]), http.StatusOK)
		if _, left := mfStatus(t, fresh); left != 9 {
			t.Errorf("%d left, want 9", left)
		}
		if n := len(siEvents(siActivity(t, fresh), "mfa.recovery_codes_regenerated")); n != 1 {
			t.Errorf("%d regeneration events, want 1", n)
		}
	})
}

func TestMFADisable(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		const email = "disable@example.com"
		c := h.newUser(email)
		secret, codes := mfEnrol(t, h, c)
		h.clock.Advance(11 * time.Minute)
		siProblem(t, c.do("DELETE", "/v1/mfa/totp", nil), http.StatusForbidden, "reauthentication_required")
		siProblem(t, h.client().do("DELETE", "/v1/mfa/totp", nil), http.StatusUnauthorized, "unauthenticated")
		if on, _ := mfStatus(t, c); !on {
			t.Fatal("a refused removal turned the factor off")
		}

		ch := mfChallenge(t, h, email, goodPassword) // waiting while the factor goes
		fresh := mfSignIn(t, h, email, goodPassword, secret)
		mustStatus(t, fresh.do("DELETE", "/v1/mfa/totp", nil), http.StatusNoContent)
		if on, left := mfStatus(t, fresh); on || left != 0 {
			t.Errorf("after removal: totp %v, %d codes left", on, left)
		}
		siProblem(t, fresh.do("DELETE", "/v1/mfa/totp", nil), http.StatusNotFound, "not_found")
		mfDirectSession(t, h, email)
		// A challenge from before can no longer be answered with the app or
		// an old recovery code.
		siProblem(t, mfComplete(h.client(), ch, mfNextCode(t, h, secret)), http.StatusUnauthorized, "invalid_code")
		if n := len(siEvents(siActivity(t, fresh), "mfa.totp_disabled")); n != 1 {
			t.Errorf("%d mfa.totp_disabled events, want 1", n)
		}
		// Enrolling again starts from scratch: a new secret, new codes.
		secret2, codes2 := mfEnrol(t, h, fresh)
		if secret2 == secret || slices.Contains(codes2, codes[0]) {
			t.Error("re-enrolment reused the old secret or codes")
		}
		mustStatus(t, mfRecover(h.client(), mfChallenge(t, h, email, goodPassword), codes2[0]), http.StatusOK)
		siProblem(t, mfRecover(h.client(), mfChallenge(t, h, email, goodPassword), codes[1]), http.StatusUnauthorized, "invalid_code")
	})
}

func TestAttackMagicLinkNeedsSecondFactor(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		box := siMails(h)
		const email = "ml-mfa@example.com"
		owner := h.newUser(email)
		siVerifyEmail(t, box, email)
		secret, _ := mfEnrol(t, h, owner)

		tok := siLink(t, box, h.client(), email)
		c := h.client()
		r := c.do("POST", "/v1/magic-link/verify", map[string]string{"token": tok})
		ch := mfMustChallenge(t, c, r)
		// The link is spent.
		for _, body := range []map[string]string{{"token": tok}, {"token": tok, "mode": "token", "client": "native"}} {
			d := h.client()
			rr := d.do("POST", "/v1/magic-link/verify", body)
			siProblem(t, rr, http.StatusBadRequest, "invalid_token")
			if d.cookie != nil || bytes.Contains(rr.body, []byte("challenge")) {
				t.Fatalf("a spent link gave something: %s", rr.body)
			}
		}
		// Two factors, but a mailbox is no NIST SP 800-63B authenticator:
		// the session is AAL1 (session.AALOf).
		r = mfComplete(c, ch, mfNextCode(t, h, secret))
		mfMustSession(t, c, r, 1, []string{"email", "otp", "mfa"})
		if u := siUser(t, r); u["email_verified"] != true {
			t.Errorf("user: %v", u)
		}

		// Token mode too.
		tok = siLink(t, box, h.client(), email)
		r = h.raw("POST", "/v1/magic-link/verify", "application/json", jsonBody(map[string]string{"token": tok, "mode": "token", "client": "native"}), nil)
		ch = mfMustChallenge(t, nil, r)
		r = h.raw("POST", "/v1/login/mfa", "application/json", jsonBody(map[string]string{"challenge": ch, "code": mfNextCode(t, h, secret)}), nil)
		mustStatus(t, r, http.StatusOK)
		_, claims := jwtParts(t, tokensOf(t, r, refreshCookie).access)
		if claims["acr"] == "aal2" || !slices.Equal(siStrings(claims["amr"]), []string{"email", "otp", "mfa"}) {
			t.Errorf("access token acr %v amr %v", claims["acr"], claims["amr"])
		}
	})
}

func TestAttackEmailOTPNeedsSecondFactor(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		box := siMails(h)
		const email = "otp-mfa@example.com"
		owner := h.newUser(email)
		siVerifyEmail(t, box, email)
		secret, codes := mfEnrol(t, h, owner)

		code := siMailCode(t, box, h.client(), email)
		body := map[string]string{"email": email, "code": code}
		c := h.client()
		ch := mfMustChallenge(t, c, c.do("POST", "/v1/otp/verify", body))
		// The code is spent.
		d := h.client()
		siProblem(t, d.do("POST", "/v1/otp/verify", body), http.StatusUnauthorized, "invalid_code")
		if d.cookie != nil {
			t.Fatal("a spent code set a cookie")
		}
		r := mfComplete(c, ch, mfNextCode(t, h, secret))
		mustStatus(t, r, http.StatusOK)
		s := siSession(t, r)
		amr := siStrings(s["amr"])
		if s["aal"] != float64(1) || !slices.Contains(amr, "email") || !slices.Contains(amr, "otp") || amr[len(amr)-1] != "mfa" {
			t.Errorf("session aal %v amr %v, want aal 1 (a mailbox is no AAL2 factor) with email, otp, mfa", s["aal"], amr)
		}
		if len(slices.Compact(slices.Sorted(slices.Values(amr)))) != len(amr) {
			t.Errorf("session amr %v repeats a method (want [email otp mfa])", amr)
		}

		// With a recovery code instead.
		code = siMailCode(t, box, h.client(), email)
		ch = mfMustChallenge(t, nil, h.client().do("POST", "/v1/otp/verify", map[string]string{"email": email, "code": code}))
		e := h.client()
		r = mfRecover(e, ch, codes[0])
		mustStatus(t, r, http.StatusOK)
		if amr := siStrings(siSession(t, r)["amr"]); !slices.Equal(amr, []string{"email", "mfa"}) {
			t.Errorf("amr with a recovery code %v, want [email mfa]", amr)
		}
	})
}

// A pre-hijacker's authenticator app must not survive the owner's claim of
// the address, or it would lock the owner out (or let the attacker back in
// once the password is reset).
func TestAttackPreHijackerTOTPRemovedByClaim(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		for _, m := range siClaimMethods {
			t.Run(m.name, func(t *testing.T) {
				h := newHarness(t, backend, nil)
				box := siMails(h)
				const victimAddr = "totp-victim@example.com"
				attacker := h.client()
				mustStatus(t, attacker.signup(victimAddr, siSquatterPassword), http.StatusCreated)
				mfEnrol(t, h, attacker)
				mfChallenge(t, h, victimAddr, siSquatterPassword)

				victim := h.client()
				r := m.signIn(t, box, victim, victimAddr)
				mustStatus(t, r, http.StatusOK)
				if r.json(t)["mfa_required"] != nil {
					t.Fatalf("the owner's claim was challenged with the squatter's factor: %s", r.body)
				}
				if victim.cookie == nil {
					t.Fatal("no session for the owner")
				}
				if u := siUser(t, r); u["email_verified"] != true {
					t.Errorf("user: %v", u)
				}
				if on, left := mfStatus(t, victim); on || left != 0 {
					t.Errorf("after the claim: totp %v, %d recovery codes left", on, left)
				}
				siProblem(t, attacker.do("GET", "/v1/mfa", nil), http.StatusUnauthorized, "unauthenticated")
				siProblem(t, h.client().login(victimAddr, siSquatterPassword), http.StatusUnauthorized, "invalid_credentials")

				// The owner's later sign-ins are not challenged, and once the
				// owner sets a password, the squatter's app and codes do nothing.
				r = m.signIn(t, box, h.client(), victimAddr)
				mustStatus(t, r, http.StatusOK)
				if r.json(t)["mfa_required"] != nil {
					t.Fatalf("a later sign-in was challenged: %s", r.body)
				}
				mustStatus(t, h.client().do("POST", "/v1/recovery", map[string]string{"email": victimAddr}), http.StatusAccepted)
				reset := linkToken(t, box.next(t, victimAddr, siSubjReset))
				mustStatus(t, h.client().do("POST", "/v1/recovery/complete", map[string]string{"token": reset, "new_password": siNewPassword}), http.StatusOK)
				c := h.client()
				r = c.login(victimAddr, siNewPassword)
				mustStatus(t, r, http.StatusOK)
				if r.json(t)["mfa_required"] != nil || c.cookie == nil {
					t.Fatalf("the owner's password sign-in: %s", r.body)
				}
			})
		}
	})
}

// mfRace sends body to POST /v1/login/mfa n times at once and returns each
// answer as "status" or "status problem-code".
func mfRace(t *testing.T, h *harness, n int, body string) []string {
	t.Helper()
	out := make([]string, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			res, err := h.ts.Client().Post(h.ts.URL+"/v1/login/mfa", "application/json", strings.NewReader(body))
			if err != nil {
				out[i] = err.Error()
				return
			}
			defer res.Body.Close()
			var p struct {
				Code string `json:"code"`
			}
			_ = json.NewDecoder(res.Body).Decode(&p)
			out[i] = strings.TrimSpace(fmt.Sprintf("%d %s", res.StatusCode, p.Code))
		})
	}
	close(start)
	wg.Wait()
	return out
}

// Of many simultaneous completions of one challenge with the right code,
// exactly one signs in.
func TestAttackMFAChallengeConcurrentCompletion(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		const email = "race-mfa@example.com"
		secret, codes := mfEnrol(t, h, h.newUser(email))
		for _, tc := range []struct{ name, field, value string }{
			{"totp", "code", mfNextCode(t, h, secret)},
			{"recovery code", "recovery_code", codes[0]},
		} {
			ch := mfChallenge(t, h, email, goodPassword)
			statuses := mfRace(t, h, 8, jsonBody(map[string]string{"challenge": ch, tc.field: tc.value}))
			ok := 0
			for _, s := range statuses {
				switch s {
				case "200":
					ok++
				case "401 invalid_challenge":
				default:
					t.Errorf("%s: answer %q among %v", tc.name, s, statuses)
				}
			}
			if ok != 1 {
				t.Errorf("%s: %d of 8 parallel completions signed in (%v), want exactly 1", tc.name, ok, statuses)
			}
		}
		// Two different challenges racing with one code: the step is spent
		// once.
		code := mfNextCode(t, h, secret)
		chs := []string{mfChallenge(t, h, email, goodPassword), mfChallenge(t, h, email, goodPassword)}
		statuses := make([]int, len(chs))
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, ch := range chs {
			wg.Go(func() {
				<-start
				res, err := h.ts.Client().Post(h.ts.URL+"/v1/login/mfa", "application/json", strings.NewReader(jsonBody(map[string]string{"challenge": ch, "code": code})))
				if err != nil {
					return
				}
				res.Body.Close()
				statuses[i] = res.StatusCode
			})
		}
		close(start)
		wg.Wait()
		slices.Sort(statuses)
		if !slices.Equal(statuses, []int{http.StatusOK, http.StatusUnauthorized}) {
			t.Errorf("one code on two challenges at once: %v, want one 200 and one 401", statuses)
		}
		if _, left := mfStatus(t, mfSignIn(t, h, email, goodPassword, secret)); left != 9 {
			t.Errorf("%d recovery codes left, want 9", left)
		}
	})
}

// TestMFAStepUpWithAppCode: POST /v1/reauthenticate takes an app code as
// well as the password; the code's step serves once, and an account
// without an app has no code that works.
func TestMFAStepUpWithAppCode(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		const email = "stepup@example.com"
		owner := h.newUser(email)
		secret, _ := mfEnrol(t, h, owner)
		h.clock.Advance(11 * time.Minute) // past --reauth-max-age
		siProblem(t, owner.do("POST", "/v1/mfa/recovery-codes", nil), http.StatusForbidden, "reauthentication_required")

		siProblem(t, owner.do("POST", "/v1/reauthenticate", map[string]string{"password": goodPassword, "code": "123456"}), http.StatusBadRequest, "missing_field")
		siProblem(t, owner.do("POST", "/v1/reauthenticate", map[string]string{"code": mfWrong(t, h, secret, 0)}), http.StatusUnauthorized, "invalid_code")
		code := mfNextCode(t, h, secret)
		r := owner.do("POST", "/v1/reauthenticate", map[string]string{"code": code})
		mustStatus(t, r, http.StatusOK)
		mustStatus(t, owner.do("POST", "/v1/mfa/recovery-codes", nil), http.StatusOK)

		// The same step again: refused, even for another session.
		other := mfSignIn(t, h, email, goodPassword, secret)
		h.clock.Advance(11 * time.Minute)
		siProblem(t, other.do("POST", "/v1/reauthenticate", map[string]string{"code": mfCode(t, secret, h.clock.Now().Add(-11*time.Minute))}), http.StatusUnauthorized, "invalid_code")

		// No app, no code.
		plain := h.newUser("plain@example.com")
		siProblem(t, plain.do("POST", "/v1/reauthenticate", map[string]string{"code": "123456"}), http.StatusUnauthorized, "invalid_code")
	})
}

// TestMFAChangesAreAnnounced: turning the app on or off and making new
// recovery codes each e-mail the account's address.
func TestMFAChangesAreAnnounced(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	const email = "told@example.com"
	c := h.newUser(email)
	h.nextMail(email) // the sign-up's verification
	mfEnrol(t, h, c)
	if m := h.nextMail(email); !strings.Contains(m.Subject, "Two-step sign-in changed") || !strings.Contains(m.Text, "turned on") {
		t.Fatalf("after enrolment: %q\n%s", m.Subject, m.Text)
	}
	mustStatus(t, c.do("POST", "/v1/mfa/recovery-codes", nil), http.StatusOK)
	if m := h.nextMail(email); !strings.Contains(m.Text, "New recovery codes") {
		t.Fatalf("after regeneration: %q\n%s", m.Subject, m.Text)
	}
	mustStatus(t, c.do("DELETE", "/v1/mfa/totp", nil), http.StatusNoContent)
	if m := h.nextMail(email); !strings.Contains(m.Text, "authenticator app was removed") {
		t.Fatalf("after removal: %q\n%s", m.Subject, m.Text)
	}
}

// TestAttackAAL1SessionRefusedWhereAAL2Required: once an account has a
// second factor, its sensitive actions need a recent proof at AAL2. A
// session from before the factor, refreshed with the password alone, is
// refused with the level and age it needs, until it steps up with the
// factor. The session that enrolled the factor keeps its level until its
// sign-in ages out.
func TestAttackAAL1SessionRefusedWhereAAL2Required(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		const email = "aal2@example.com"
		old := h.newUser(email) // AAL1: ["pwd"]
		h.clock.Advance(time.Second)
		secret, _ := mfEnrol(t, h, old)
		// The enrolling session: its proof predates the factor.
		mustStatus(t, old.do("POST", "/v1/mfa/recovery-codes", nil), http.StatusOK)

		h.clock.Advance(11 * time.Minute)
		mustStatus(t, old.do("POST", "/v1/reauthenticate", map[string]string{"password": goodPassword}), http.StatusOK)
		for _, req := range []struct{ method, path string }{
			{"DELETE", "/v1/mfa/totp"},
			{"POST", "/v1/mfa/recovery-codes"},
			{"POST", "/v1/sessions/revoke-others"},
			{"POST", "/v1/webauthn/register/begin"},
		} {
			var body any
			if req.method == "POST" {
				body = map[string]any{}
			}
			r := old.do(req.method, req.path, body)
			siProblem(t, r, http.StatusForbidden, "reauthentication_required")
			if m := r.json(t); m["aal"] != float64(2) || m["max_age"] != float64(600) {
				t.Errorf("%s %s: %s", req.method, req.path, r.body)
			}
		}
		r := old.do("POST", "/v1/password", map[string]string{"current_password": goodPassword, "new_password": "an entirely new passphrase"})
		siProblem(t, r, http.StatusForbidden, "reauthentication_required")

		// Step-up with the app: ["pwd","otp","mfa"], AAL2.
		r = old.do("POST", "/v1/reauthenticate", map[string]string{"code": mfNextCode(t, h, secret)})
		mustStatus(t, r, http.StatusOK)
		if s := siSession(t, r); s["aal"] != float64(2) || !slices.Equal(siStrings(s["amr"]), []string{"pwd", "otp", "mfa"}) {
			t.Fatalf("after the app step-up: %s", r.body)
		}
		mustStatus(t, old.do("POST", "/v1/mfa/recovery-codes", nil), http.StatusOK)

		// A session that signed in with both factors is AAL2 from the start.
		h.clock.Advance(time.Minute)
		both := mfSignIn(t, h, email, goodPassword, secret)
		mustStatus(t, both.do("POST", "/v1/sessions/revoke-others", map[string]any{}), http.StatusOK)
	})
}

// TestRequireMFAPolicy: with --require-mfa, a session that has not passed
// a second factor may read itself, enrol a factor and step up with it, and
// nothing else — not the API's sensitive routes, not forward-auth — in
// cookie and token mode; passing a factor (at sign-in or by step-up)
// lifts it.
func TestRequireMFAPolicy(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, func(c *config.Config) {
			c.RequireMFA = true
			c.PublicURL = localhostURL
		})
		const email = "policy@example.com"
		c := h.client()
		r := c.signup(email, goodPassword)
		mustStatus(t, r, http.StatusCreated)
		if siSession(t, r)["mfa_enrollment_required"] != true {
			t.Errorf("sign-up session not marked: %s", r.body)
		}
		mustStatus(t, c.do("GET", "/v1/me", nil), http.StatusOK)
		mustStatus(t, c.do("GET", "/v1/sessions", nil), http.StatusOK)
		mustStatus(t, c.do("GET", "/v1/mfa", nil), http.StatusOK)
		for _, req := range []struct{ method, path string }{
			{"POST", "/v1/password"},
			{"POST", "/v1/sessions/revoke-others"},
			{"DELETE", "/v1/phone"},
			{"POST", "/v1/mfa/recovery-codes"},
			{"GET", "/v1/forward-auth"},
		} {
			siProblem(t, c.do(req.method, req.path, map[string]any{}), http.StatusForbidden, "mfa_enrollment_required")
		}

		// Enrolling is allowed; the enrolling session then steps up with
		// the new factor.
		secret, _ := mfEnrol(t, h, c)
		siProblem(t, c.do("POST", "/v1/sessions/revoke-others", map[string]any{}), http.StatusForbidden, "mfa_enrollment_required")
		r = c.do("POST", "/v1/reauthenticate", map[string]string{"code": mfNextCode(t, h, secret)})
		mustStatus(t, r, http.StatusOK)
		if s := siSession(t, r); s["mfa_enrollment_required"] != nil || s["aal"] != float64(2) {
			t.Errorf("after the step-up: %s", r.body)
		}
		mustStatus(t, c.do("POST", "/v1/sessions/revoke-others", map[string]any{}), http.StatusOK)
		mustStatus(t, c.do("GET", "/v1/forward-auth", nil), http.StatusOK)

		// A sign-in with both factors is unrestricted from the start.
		both := mfSignIn(t, h, email, goodPassword, secret)
		mustStatus(t, both.do("GET", "/v1/forward-auth", nil), http.StatusOK)

		// Token mode: a bearer token without a second factor is held to
		// the same rule.
		other := h.client()
		mustStatus(t, other.signup("token-policy@example.com", goodPassword), http.StatusCreated)
		tr := h.client().do("POST", "/v1/login", map[string]string{"email": "token-policy@example.com", "password": goodPassword, "mode": "token", "client": "native"})
		mustStatus(t, tr, http.StatusOK)
		at, _ := tr.json(t)["access_token"].(string)
		bearer := h.client()
		bearer.headers = map[string]string{"Authorization": "Bearer " + at}
		mustStatus(t, bearer.do("GET", "/v1/me", nil), http.StatusOK)
		siProblem(t, bearer.do("POST", "/v1/sessions/revoke-others", map[string]any{}), http.StatusForbidden, "mfa_enrollment_required")
		siProblem(t, bearer.do("GET", "/v1/forward-auth", nil), http.StatusForbidden, "mfa_enrollment_required")

		// A passkey that verifies its user passes the policy by itself.
		key := pkAuthenticator(h)
		pkMustRegister(t, other, key, "passkey")
		pc, pr := pkPasswordless(t, h, key)
		mfMustSession(t, pc, pr, 2, []string{"hwk", "user", "mfa"})
		mustStatus(t, pc.do("POST", "/v1/sessions/revoke-others", map[string]any{}), http.StatusOK)
	})
}

// TestRequireMFAForAdminsPolicy: with --require-mfa-for-admins, only the
// sessions of administrators are held to enrolment until they pass a
// second factor — cookie and bearer alike; everyone else is unaffected.
func TestRequireMFAForAdminsPolicy(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, func(c *config.Config) { c.RequireMFAForAdmins = true })
		ctx := context.Background()
		const email = "admin@example.com"
		admin := h.newUser(email)
		user := h.newUser("user@example.com")
		me := admin.do("GET", "/v1/me", nil)
		id := siUser(t, me)["id"].(string)
		if err := h.srv.DB.Users().SetAdmin(ctx, id, true, h.clock.Now()); err != nil {
			t.Fatal(err)
		}
		h.srv.Sessions.UserChanged(ctx, id)

		siProblem(t, admin.do("POST", "/v1/sessions/revoke-others", map[string]any{}), http.StatusForbidden, "mfa_enrollment_required")
		siProblem(t, admin.do("GET", "/v1/forward-auth", nil), http.StatusForbidden, "mfa_enrollment_required")
		mustStatus(t, user.do("POST", "/v1/sessions/revoke-others", map[string]any{}), http.StatusOK)
		r := admin.do("GET", "/v1/sessions", nil)
		mustStatus(t, r, http.StatusOK)
		if s := r.json(t)["sessions"].([]any)[0].(map[string]any); s["mfa_enrollment_required"] != true {
			t.Errorf("the admin's session view: %s", r.body)
		}

		// A bearer token of the admin, without a second factor.
		tr := h.client().do("POST", "/v1/login", map[string]string{"email": email, "password": goodPassword, "mode": "token", "client": "native"})
		mustStatus(t, tr, http.StatusOK)
		if s := siSession(t, tr); s["mfa_enrollment_required"] != true {
			t.Errorf("the admin's token sign-in: %s", tr.body)
		}
		bearer := h.client()
		bearer.headers = map[string]string{"Authorization": "Bearer " + tr.json(t)["access_token"].(string)}
		siProblem(t, bearer.do("POST", "/v1/sessions/revoke-others", map[string]any{}), http.StatusForbidden, "mfa_enrollment_required")

		// Enrol, step up: lifted.
		secret, _ := mfEnrol(t, h, admin)
		mustStatus(t, admin.do("POST", "/v1/reauthenticate", map[string]string{"code": mfNextCode(t, h, secret)}), http.StatusOK)
		mustStatus(t, admin.do("POST", "/v1/sessions/revoke-others", map[string]any{}), http.StatusOK)

		// No longer an admin: no longer held.
		if err := h.srv.DB.Users().SetAdmin(ctx, id, false, h.clock.Now()); err != nil {
			t.Fatal(err)
		}
		h.srv.Sessions.UserChanged(ctx, id)
		other := h.client()
		mustStatus(t, other.do("POST", "/v1/login/mfa", map[string]string{"challenge": mfChallenge(t, h, email, goodPassword), "code": mfNextCode(t, h, secret)}), http.StatusOK)
		mustStatus(t, other.do("POST", "/v1/sessions/revoke-others", map[string]any{}), http.StatusOK)
	})
}
