package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/config"
)

// The session cookie carries exactly the attributes the design demands.
func TestAttackCookieAttributes(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	c := h.client()
	r := c.signup("hank@example.com", goodPassword)
	mustStatus(t, r, http.StatusCreated)
	sc := strings.Join(r.header.Values("Set-Cookie"), "\n")
	for _, want := range []string{"__Host-gh_session=ghs_", "Path=/", "HttpOnly", "Secure", "SameSite=Lax", "Max-Age="} {
		if !strings.Contains(sc, want) {
			t.Errorf("Set-Cookie %q lacks %q", sc, want)
		}
	}
	if strings.Contains(strings.ToLower(sc), "domain=") {
		t.Errorf("Set-Cookie %q has a Domain", sc)
	}
	if len(c.cookie.Name)+len(c.cookie.Value) > 4096 {
		t.Error("cookie over 4096 bytes")
	}
	if bytes.Contains(r.body, []byte(c.cookie.Value)) {
		t.Error("the session secret appears in the response body")
	}
	// 256 random bits: 43 base64url characters after the prefix.
	if !regexp.MustCompile(`^ghs_[A-Za-z0-9_-]{43}$`).MatchString(c.cookie.Value) {
		t.Errorf("session token %q is not ghs_ + 256 bits", c.cookie.Value)
	}
	// The cookie dies with the session: Max-Age is the absolute lifetime.
	if c.cookie.MaxAge <= 0 || time.Duration(c.cookie.MaxAge)*time.Second > h.cfg.SessionLifetime {
		t.Errorf("Max-Age %d outside (0, lifetime]", c.cookie.MaxAge)
	}
}

func TestDevModeCookieDropsSecureOnly(t *testing.T) {
	h := newHarness(t, "sqlite", func(c *config.Config) { c.Dev = true })
	r := h.client().signup("ivy@example.com", goodPassword)
	mustStatus(t, r, http.StatusCreated)
	var sc string
	for _, v := range r.header.Values("Set-Cookie") {
		if strings.HasPrefix(v, "gh_session=") {
			sc = v
		}
	}
	if !strings.HasPrefix(sc, "gh_session=ghs_") || strings.Contains(sc, "Secure") || !strings.Contains(sc, "HttpOnly") || !strings.Contains(sc, "SameSite=Lax") {
		t.Errorf("dev Set-Cookie = %q", sc)
	}
}

// A planted cookie (fixation) is never promoted: sign-in issues a new id
// and secret, and the browser's previous session is revoked.
func TestAttackSessionFixation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		h.newUser("jack@example.com")

		// The attacker signs in to their own account and plants that cookie
		// in the victim's browser.
		attacker := h.newUser("mallory@example.com")
		planted := *attacker.cookie
		victim := h.client()
		victim.cookie = &planted
		r := victim.login("jack@example.com", goodPassword)
		mustStatus(t, r, http.StatusOK)
		if victim.cookie.Value == planted.Value {
			t.Fatal("sign-in kept the planted session secret")
		}
		if r.json(t)["user"].(map[string]any)["email"] != "jack@example.com" {
			t.Fatal("signed in as the wrong user")
		}
		// The planted (superseded) session is dead.
		mustStatus(t, attacker.do("GET", "/v1/me", nil), http.StatusUnauthorized)

		// A forged, well-formed secret that was never issued is refused.
		forged := h.client()
		forged.cookie = &http.Cookie{Name: planted.Name, Value: "ghs_" + strings.Repeat("A", 43)}
		mustStatus(t, forged.do("GET", "/v1/me", nil), http.StatusUnauthorized)
	})
}

// A sibling subdomain tossing a second cookie of the same name must not
// choose the session: duplicates are refused.
func TestAttackCookieTossing(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	victim := h.newUser("kate@example.com")
	attacker := h.newUser("eve@example.com")
	req, _ := http.NewRequest("GET", h.ts.URL+"/v1/me", nil)
	req.Header.Set("Cookie", victim.cookie.Name+"="+victim.cookie.Value+"; "+attacker.cookie.Name+"="+attacker.cookie.Value)
	res, err := h.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("duplicate session cookies: status %d, want 401", res.StatusCode)
	}
	// Only the __Host- name is read: a plain-named cookie is ignored.
	plain := h.client()
	plain.cookie = &http.Cookie{Name: "gh_session", Value: victim.cookie.Value}
	mustStatus(t, plain.do("GET", "/v1/me", nil), http.StatusUnauthorized)
}

// Unknown e-mail and wrong password are indistinguishable.
func TestAttackLoginEnumeration(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		h.newUser("liam@example.com")
		wrong := h.client().login("liam@example.com", "not the right password at all")
		unknown := h.client().login("nobody@example.com", "not the right password at all")
		for _, r := range []*response{wrong, unknown} {
			if r.status != http.StatusUnauthorized || r.code(t) != "invalid_credentials" {
				t.Fatalf("status %d body %s", r.status, r.body)
			}
		}
		strip := func(r *response) string {
			m := r.json(t)
			delete(m, "request_id")
			b, _ := json.Marshal(m)
			return string(b)
		}
		if strip(wrong) != strip(unknown) {
			t.Errorf("bodies differ:\n%s\n%s", wrong.body, unknown.body)
		}
		for _, hdr := range []string{"Content-Type", "Cache-Control", "Set-Cookie", "Retry-After", "Content-Security-Policy"} {
			if wrong.header.Get(hdr) != unknown.header.Get(hdr) {
				t.Errorf("header %s differs: %q vs %q", hdr, wrong.header.Get(hdr), unknown.header.Get(hdr))
			}
		}
	})
}

// Timing: an unknown e-mail costs a dummy argon2id verification, so its
// median latency matches a wrong password's. The bound is coarse (the
// machine is noisy); without the dummy hash the gap is the full hash time.
func TestAttackLoginTimingOracle(t *testing.T) {
	h := newHarness(t, "sqlite", func(c *config.Config) {
		c.LoginFailuresPerAccount, c.LoginMaxFailuresPerAccount = 1000, 1000
		c.LoginAttemptsPerIP = 1000
	})
	h.newUser("mia@example.com")
	median := func(email string) time.Duration {
		var ds []time.Duration
		for range 15 {
			start := time.Now()
			h.client().login(email, "not the right password at all")
			ds = append(ds, time.Since(start))
		}
		for i := range ds {
			for j := i + 1; j < len(ds); j++ {
				if ds[j] < ds[i] {
					ds[i], ds[j] = ds[j], ds[i]
				}
			}
		}
		return ds[len(ds)/2]
	}
	known, unknown := median("mia@example.com"), median("nobody@example.com")
	if unknown < known/2 {
		t.Errorf("unknown e-mail median %v vs wrong password %v: a timing oracle", unknown, known)
	}
}

// Login CSRF and CSRF in general: cross-origin state-changing requests are
// refused; form-encodable content types are refused.
func TestAttackCrossOriginRequests(t *testing.T) {
	h := newHarness(t, "sqlite", func(c *config.Config) { c.TrustedOrigins = []string{"https://app.example.com"} })
	victim := h.newUser("noah@example.com")
	cases := []struct {
		name    string
		headers map[string]string
		want    int
	}{
		{"cross-site fetch metadata", map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"same-site sibling", map[string]string{"Sec-Fetch-Site": "same-site"}, http.StatusForbidden},
		{"foreign Origin without fetch metadata", map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
		{"trusted origin", map[string]string{"Origin": "https://app.example.com", "Sec-Fetch-Site": "cross-site"}, 0},
		{"same-origin", map[string]string{"Sec-Fetch-Site": "same-origin"}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := h.client()
			c.headers = tc.headers
			r := c.login("noah@example.com", goodPassword)
			if tc.want == 0 {
				mustStatus(t, r, http.StatusOK)
				return
			}
			if r.status != tc.want || r.code(t) != "cross_origin_request" {
				t.Fatalf("login: %d %s", r.status, r.body)
			}
			if c.cookie != nil {
				t.Fatal("a refused cross-origin login set a cookie")
			}
			// The same attack on a cookie-authenticated action (logout CSRF).
			v := *victim
			v.headers = tc.headers
			if r := v.do("POST", "/v1/logout", nil); r.status != tc.want {
				t.Fatalf("logout: %d", r.status)
			}
		})
	}
	mustStatus(t, victim.do("GET", "/v1/me", nil), http.StatusOK)

	// A classic HTML form can only send form-encoded or text/plain bodies.
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"} {
		req, _ := http.NewRequest("POST", h.ts.URL+"/v1/login", strings.NewReader(`{"email":"noah@example.com","password":"`+goodPassword+`"}`))
		req.Header.Set("Content-Type", ct)
		res, err := h.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusUnsupportedMediaType {
			t.Errorf("Content-Type %s: status %d, want 415", ct, res.StatusCode)
		}
	}
}

// Brute force: past the configured attempts from unfamiliar devices, the
// password is no longer checked for the account (403
// extra_proof_required, right password or not), even in a parallel burst;
// unknown addresses answer the same.
func TestAttackBruteForceParallelBurstBounded(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, func(c *config.Config) { c.LoginFailuresPerAccount, c.LoginDelayAfter = 5, 1000 })
		h.newUser("olga@example.com")
		var unauthorized, refused atomic.Int32
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				switch r := h.client().login("olga@example.com", "a wrong guess of the password"); r.code(t) {
				case "invalid_credentials":
					unauthorized.Add(1)
				case "extra_proof_required":
					refused.Add(1)
				default:
					t.Errorf("status %d: %s", r.status, r.body)
				}
			})
		}
		wg.Wait()
		if unauthorized.Load() > 5 {
			t.Fatalf("%d guesses reached the hasher in a burst; the limit is 5", unauthorized.Load())
		}
		r := h.client().login("olga@example.com", goodPassword)
		if r.status != http.StatusForbidden || r.code(t) != "extra_proof_required" {
			t.Fatalf("right password from an unfamiliar device: %d %s", r.status, r.body)
		}
		// Other accounts from the same IP are unaffected.
		h.newUser("pete@example.com")
		mustStatus(t, h.client().login("pete@example.com", goodPassword), http.StatusOK)
		// An unknown e-mail is refused identically (no enumeration).
		for range 5 {
			h.client().login("ghost@example.com", "a wrong guess of the password")
		}
		if g := h.client().login("ghost@example.com", "x"); g.status != r.status || g.code(t) != r.code(t) {
			t.Errorf("unknown e-mail: %d %s", g.status, g.body)
		}
	})
}

func TestAccountProtectionWindowExpires(t *testing.T) {
	h := newHarness(t, "sqlite", func(c *config.Config) { c.LoginFailuresPerAccount = 2 })
	h.newUser("quinn@example.com")
	for range 2 {
		mustStatus(t, h.client().login("quinn@example.com", "a wrong guess of the password"), http.StatusUnauthorized)
	}
	mustStatus(t, h.client().login("quinn@example.com", goodPassword), http.StatusForbidden)
	h.clock.Advance(h.cfg.LoginAccountFailureWindow + time.Second)
	mustStatus(t, h.client().login("quinn@example.com", goodPassword), http.StatusOK)
}

func TestAttackSignupThrottledPerIP(t *testing.T) {
	h := newHarness(t, "sqlite", func(c *config.Config) { c.SignupsPerIP = 3 })
	h.newUser("rita@example.com")
	for range 2 {
		mustStatus(t, h.client().signup("rita@example.com", goodPassword), http.StatusConflict)
	}
	r := h.client().signup("rita@example.com", goodPassword)
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("4th sign-up from one IP: %d %s", r.status, r.body)
	}
}

// Step-up: revoking another device or changing the password needs a
// sign-in within reauth-max-age; re-authentication rotates the secret.
func TestAttackStaleSessionNeedsReauthentication(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		a := h.newUser("sam@example.com")
		b := h.client()
		r := b.login("sam@example.com", goodPassword)
		bID := r.json(t)["session"].(map[string]any)["id"].(string)
		mustStatus(t, a.do("GET", "/v1/me", nil), http.StatusOK)

		h.clock.Advance(h.cfg.ReauthMaxAge + time.Second)
		for _, req := range []struct{ method, path string }{
			{"DELETE", "/v1/sessions/" + bID},
			{"POST", "/v1/sessions/revoke-others"},
		} {
			r := a.do(req.method, req.path, nil)
			if r.status != http.StatusForbidden || r.code(t) != "reauthentication_required" {
				t.Fatalf("%s %s with a stale sign-in: %d %s", req.method, req.path, r.status, r.body)
			}
			if r.json(t)["max_age"] != float64(600) {
				t.Errorf("max_age = %v", r.json(t)["max_age"])
			}
		}
		r = a.do("POST", "/v1/password", map[string]string{"current_password": goodPassword, "new_password": "a completely different passphrase"})
		if r.status != http.StatusForbidden || r.code(t) != "reauthentication_required" {
			t.Fatalf("password change with a stale sign-in: %d %s", r.status, r.body)
		}

		if r := a.do("POST", "/v1/reauthenticate", map[string]string{"password": "wrong password entirely"}); r.status != http.StatusForbidden || r.code(t) != "incorrect_password" {
			t.Fatalf("reauthenticate with a wrong password: %d %s", r.status, r.body)
		}
		old := *a.cookie
		mustStatus(t, a.do("POST", "/v1/reauthenticate", map[string]string{"password": goodPassword}), http.StatusOK)
		if a.cookie.Value == old.Value {
			t.Fatal("re-authentication kept the session secret")
		}
		stale := h.client()
		stale.cookie = &old
		mustStatus(t, stale.do("GET", "/v1/me", nil), http.StatusUnauthorized)
		mustStatus(t, a.do("DELETE", "/v1/sessions/"+bID, nil), http.StatusNoContent)
		mustStatus(t, b.do("GET", "/v1/me", nil), http.StatusUnauthorized)
	})
}

// Someone else's session id is indistinguishable from an unknown one.
func TestAttackRevokeOtherUsersSession(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	victim := h.newUser("tina@example.com")
	vID := victim.do("GET", "/v1/me", nil).json(t)["session"].(map[string]any)["id"].(string)
	attacker := h.newUser("oscar@example.com")
	r := attacker.do("DELETE", "/v1/sessions/"+vID, nil)
	if r.status != http.StatusNotFound || r.code(t) != "not_found" {
		t.Fatalf("revoking another user's session: %d %s", r.status, r.body)
	}
	unknown := attacker.do("DELETE", "/v1/sessions/ses_doesnotexist", nil)
	if unknown.status != r.status || unknown.code(t) != r.code(t) {
		t.Errorf("unknown id answered differently: %d %s", unknown.status, unknown.body)
	}
	mustStatus(t, victim.do("GET", "/v1/me", nil), http.StatusOK)
}

// Idle timeout and absolute lifetime are enforced by the server, whatever
// the browser keeps.
func TestAttackExpiredSessionReplay(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, func(c *config.Config) {
			c.SessionIdleTimeout = time.Hour
			c.SessionLifetime = 3 * time.Hour
		})
		idle := h.newUser("uma@example.com")
		h.clock.Advance(time.Hour - time.Second)
		mustStatus(t, idle.do("GET", "/v1/me", nil), http.StatusOK) // activity resets the idle timer
		h.clock.Advance(time.Hour - time.Second)
		mustStatus(t, idle.do("GET", "/v1/me", nil), http.StatusOK)
		h.clock.Advance(time.Hour + time.Second)
		mustStatus(t, idle.do("GET", "/v1/me", nil), http.StatusUnauthorized)

		busy := h.newUser("victor@example.com")
		for range 5 {
			h.clock.Advance(30 * time.Minute)
			mustStatus(t, busy.do("GET", "/v1/me", nil), http.StatusOK)
		}
		h.clock.Advance(30*time.Minute - time.Second) // lifetime − 1 s
		mustStatus(t, busy.do("GET", "/v1/me", nil), http.StatusOK)
		h.clock.Advance(2 * time.Second) // lifetime + 1 s, despite constant activity
		mustStatus(t, busy.do("GET", "/v1/me", nil), http.StatusUnauthorized)
	})
}

// Two concurrent sign-ups with one e-mail (in any case) create one account.
func TestAttackConcurrentSignupSameEmail(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		var created, conflict atomic.Int32
		var wg sync.WaitGroup
		for i := range 12 {
			wg.Go(func() {
				email := "race@example.com"
				if i%2 == 1 {
					email = "RACE@Example.com"
				}
				switch r := h.client().signup(email, goodPassword); r.status {
				case http.StatusCreated:
					created.Add(1)
				case http.StatusConflict:
					conflict.Add(1)
				default:
					t.Errorf("status %d: %s", r.status, r.body)
				}
			})
		}
		wg.Wait()
		if created.Load() != 1 || conflict.Load() != 11 {
			t.Fatalf("created %d, conflicts %d; want exactly one account", created.Load(), conflict.Load())
		}
	})
}

// Secrets never reach the logs: not passwords, not session secrets.
func TestAttackNoSecretsInLogs(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	c := h.newUser("wendy@example.com")
	h.client().login("wendy@example.com", "a wrong guess of the password")
	c.do("POST", "/v1/reauthenticate", map[string]string{"password": goodPassword})
	c.do("POST", "/v1/password", map[string]string{"current_password": goodPassword, "new_password": "1234567890qwerty"})
	logs := h.logs.String()
	for _, secret := range []string{goodPassword, "a wrong guess of the password", "1234567890qwerty", c.cookie.Value, "ghs_", "$argon2id$"} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain %q", secret)
		}
	}
	if !strings.Contains(logs, `"path":"/v1/login"`) {
		t.Error("the access log is missing: the assertion above proves nothing")
	}
}

// Sign-up with a planted cookie also replaces, never promotes, it.
func TestAttackSignupSupersedesPlantedSession(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	attacker := h.newUser("planter@example.com")
	victim := h.client()
	planted := *attacker.cookie
	victim.cookie = &planted
	mustStatus(t, victim.signup("fresh@example.com", goodPassword), http.StatusCreated)
	if victim.cookie.Value == planted.Value {
		t.Fatal("sign-up kept the planted secret")
	}
	mustStatus(t, attacker.do("GET", "/v1/me", nil), http.StatusUnauthorized)
}

// One IP spraying many accounts hits the per-IP attempt limit.
func TestAttackPasswordSprayPerIPLimit(t *testing.T) {
	h := newHarness(t, "sqlite", func(c *config.Config) { c.LoginAttemptsPerIP = 5 })
	for i := range 5 {
		mustStatus(t, h.client().login(fmt.Sprintf("spray%d@example.com", i), "Winter2026!Winter2026!"), http.StatusUnauthorized)
	}
	r := h.client().login("spray99@example.com", "Winter2026!Winter2026!")
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("6th attempt from one IP: %d %s", r.status, r.body)
	}
	// The refusal is audited once per window, not once per request.
	for range 5 {
		h.client().login("spray99@example.com", "x")
	}
	n := 0
	if err := queryCount(h, "login.throttled", &n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("%d login.throttled events for one window, want 1", n)
	}
}

// A stolen session cannot brute-force the password through step-up.
func TestAttackReauthenticationBruteForce(t *testing.T) {
	h := newHarness(t, "sqlite", func(c *config.Config) { c.LoginFailuresPerAccount = 3 })
	c := h.newUser("stolen@example.com")
	for range 3 {
		r := c.do("POST", "/v1/reauthenticate", map[string]string{"password": "guess guess guess guess"})
		if r.status != http.StatusForbidden {
			t.Fatalf("guess: %d %s", r.status, r.body)
		}
	}
	r := c.do("POST", "/v1/reauthenticate", map[string]string{"password": goodPassword})
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("4th step-up attempt: %d %s", r.status, r.body)
	}
}

// Two replicas share PostgreSQL and Redis. Revoking on replica A ends the
// session on replica B at once, even though B had it cached.
func TestAttackRevocationReachesOtherReplica(t *testing.T) {
	a := newHarness(t, "postgres+redis", func(c *config.Config) { c.SessionCacheTTL = time.Hour })
	b := startHarness(t, a.cfg) // same database, Redis prefix and keys
	owner := a.newUser("replicas@example.com")
	phone := b.client()
	mustStatus(t, phone.login("replicas@example.com", goodPassword), http.StatusOK)
	r := phone.do("GET", "/v1/me", nil) // warms B's cache
	mustStatus(t, r, http.StatusOK)
	sid := r.json(t)["session"].(map[string]any)["id"].(string)

	mustStatus(t, owner.do("DELETE", "/v1/sessions/"+sid, nil), http.StatusNoContent)
	deadline := time.Now().Add(2 * time.Second)
	for {
		r := phone.do("GET", "/v1/me", nil)
		if r.status == http.StatusUnauthorized {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("replica B still accepts a session revoked on replica A")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// An attacker holding the old password signs in again and again while the
// owner changes it: no session created with the old password may survive
// the change (the sign-in's transaction re-checks and locks the hash).
func TestAttackOldPasswordSignInRacingPasswordChange(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, func(c *config.Config) {
			c.LoginFailuresPerAccount, c.LoginMaxFailuresPerAccount = 100000, 100000
			c.LoginAttemptsPerIP = 100000
		})
		owner := h.newUser("race-change@example.com")
		var mu sync.Mutex
		var attackers []*client
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for i := 0; i < 200; i++ { // bounded; stop ends it sooner
					select {
					case <-stop:
						return
					default:
					}
					c := h.client()
					if c.login("race-change@example.com", goodPassword).status == http.StatusOK {
						mu.Lock()
						attackers = append(attackers, c)
						mu.Unlock()
					}
				}
			})
		}
		time.Sleep(300 * time.Millisecond)
		mustStatus(t, owner.do("POST", "/v1/password", map[string]string{"current_password": goodPassword, "new_password": "a completely different passphrase"}), http.StatusOK)
		time.Sleep(300 * time.Millisecond)
		close(stop)
		wg.Wait()
		if len(attackers) == 0 {
			t.Fatal("no sign-in succeeded before the change: the race was not exercised")
		}
		for _, c := range attackers {
			if r := c.do("GET", "/v1/me", nil); r.status != http.StatusUnauthorized {
				t.Fatalf("a session signed in with the old password survived the change: GET /v1/me answered %d (%d old-password sign-ins)", r.status, len(attackers))
			}
		}
	})
}

// Changing the password rotates the caller's own session secret: a stolen
// copy of this very cookie dies with the old password.
func TestAttackPasswordChangeKillsStolenCopyOfCurrentCookie(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	owner := h.newUser("stolen-copy@example.com")
	thief := h.client()
	stolen := *owner.cookie
	thief.cookie = &stolen
	mustStatus(t, thief.do("GET", "/v1/me", nil), http.StatusOK)
	mustStatus(t, owner.do("POST", "/v1/password", map[string]string{"current_password": goodPassword, "new_password": "a completely different passphrase"}), http.StatusOK)
	if owner.cookie.Value == stolen.Value {
		t.Fatal("the password change kept the session secret")
	}
	mustStatus(t, owner.do("GET", "/v1/me", nil), http.StatusOK)
	mustStatus(t, thief.do("GET", "/v1/me", nil), http.StatusUnauthorized)
}
