package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse-auth/gatehouse/internal/account"
	"github.com/gatehouse-auth/gatehouse/internal/app"
	"github.com/gatehouse-auth/gatehouse/internal/config"
)

// Bad input gets a 4xx problem with a stable code: never a 500, never a
// partial write.
func TestBadInputGetsProblem(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	signedIn := h.newUser("xena@example.com")
	long := strings.Repeat("a", 70<<10)
	cases := []struct {
		name, method, path, ct, body string
		status                       int
		code                         string
	}{
		{"malformed json", "POST", "/v1/signup", "application/json", `{"email":`, 400, "malformed_json"},
		{"empty body", "POST", "/v1/login", "application/json", ``, 400, "malformed_json"},
		{"array body", "POST", "/v1/login", "application/json", `[]`, 400, "malformed_json"},
		{"trailing data", "POST", "/v1/login", "application/json", `{"email":"a@b.co","password":"x"} {}`, 400, "malformed_json"},
		{"unknown field", "POST", "/v1/signup", "application/json", `{"email":"a@b.co","password":"` + goodPassword + `","admin":true}`, 400, "unknown_field"},
		{"wrong type", "POST", "/v1/signup", "application/json", `{"email":["a@b.co"],"password":"` + goodPassword + `"}`, 400, "invalid_field"},
		{"duplicate key (parameter pollution)", "POST", "/v1/login", "application/json", `{"email":"victim@example.com","email":"attacker@example.com","password":"x"}`, 400, "malformed_json"},
		{"nested duplicate key", "POST", "/v1/login", "application/json", `{"email":"a@b.co","password":"x","x":{"a":1,"a":2}}`, 400, "malformed_json"},
		{"invalid utf-8", "POST", "/v1/login", "application/json", "{\"email\":\"a\xff@b.co\",\"password\":\"x\"}", 400, "malformed_json"},
		{"body too large", "POST", "/v1/signup", "application/json", `{"email":"a@b.co","password":"` + long + `"}`, 413, "body_too_large"},
		{"wrong content type", "POST", "/v1/signup", "text/plain", `{}`, 415, "unsupported_media_type"},
		{"missing email", "POST", "/v1/signup", "application/json", `{"password":"` + goodPassword + `"}`, 400, "missing_field"},
		{"invalid email", "POST", "/v1/signup", "application/json", `{"email":"not-an-address","password":"` + goodPassword + `"}`, 400, "invalid_email"},
		{"display-name email", "POST", "/v1/signup", "application/json", `{"email":"Eve <eve@example.com>","password":"` + goodPassword + `"}`, 400, "invalid_email"},
		{"over-long email", "POST", "/v1/signup", "application/json", `{"email":"` + strings.Repeat("a", 250) + `@example.com","password":"` + goodPassword + `"}`, 400, "invalid_email"},
		{"over-long name", "POST", "/v1/signup", "application/json", `{"email":"n@example.com","name":"` + strings.Repeat("n", 101) + `","password":"` + goodPassword + `"}`, 400, "invalid_field"},
		{"control char in name", "POST", "/v1/signup", "application/json", `{"email":"n@example.com","name":"a\u0000b","password":"` + goodPassword + `"}`, 400, "invalid_field"},
		{"short password", "POST", "/v1/signup", "application/json", `{"email":"n@example.com","password":"fourteen chars"}`, 400, "weak_password"},
		{"257-character password", "POST", "/v1/signup", "application/json", `{"email":"n@example.com","password":"` + strings.Repeat("p", 257) + `"}`, 400, "weak_password"},
		{"password with the e-mail local part", "POST", "/v1/signup", "application/json", `{"email":"zachary@example.com","password":"zachary-secret-words"}`, 400, "weak_password"},
		{"common password", "POST", "/v1/signup", "application/json", `{"email":"n@example.com","password":"1234567890qwerty"}`, 400, "weak_password"},
		{"over-long login password", "POST", "/v1/login", "application/json", `{"email":"a@b.co","password":"` + strings.Repeat("p", 2000) + `"}`, 400, "invalid_field"},
		{"missing password", "POST", "/v1/login", "application/json", `{"email":"a@b.co"}`, 400, "missing_field"},
		{"unauthenticated me", "GET", "/v1/me", "", ``, 401, "unauthenticated"},
		{"unknown route", "GET", "/v1/nope", "", ``, 404, "not_found"},
		{"wrong method", "GET", "/v1/login", "", ``, 405, "method_not_allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, h.ts.URL+tc.path, strings.NewReader(tc.body))
			if tc.ct != "" {
				req.Header.Set("Content-Type", tc.ct)
			}
			res, err := h.ts.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			r := readResponse(t, res)
			if r.status != tc.status || r.code(t) != tc.code {
				t.Fatalf("got %d %s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
			if strings.Contains(string(r.body), "password\":\"") {
				t.Error("the problem echoes the request")
			}
		})
	}
	// Nothing half-written: only the one real account exists.
	mustStatus(t, h.client().login("n@example.com", goodPassword), http.StatusUnauthorized)
	mustStatus(t, signedIn.do("GET", "/v1/me", nil), http.StatusOK)
}

func readResponse(t *testing.T, res *http.Response) *response {
	t.Helper()
	defer res.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := res.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return &response{status: res.StatusCode, header: res.Header, body: []byte(b.String())}
}

// NIST: length, not composition; 64+ characters and any Unicode accepted.
func TestPasswordPolicyAccepts(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	for i, pw := range []string{
		"correct horse battery staple",
		strings.Repeat("x1", 32), // 64
		strings.Repeat("y2", 64), // 128
		"密码是一个很长的句子用来测试系统的行为",    // 19 CJK code points
		"🐙🐙🐙🐙🐙🐙🐙🐙🐙🐙🐙🐙🐙🐙🐙",        // 15 emoji
	} {
		email := fmt.Sprintf("policy%d@example.com", i)
		mustStatus(t, h.client().signup(email, pw), http.StatusCreated)
		mustStatus(t, h.client().login(email, pw), http.StatusOK)
	}
}

// A 1 MiB password is refused before any hashing.
func TestAttackHugePasswordRefusedFast(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	body := `{"email":"big@example.com","password":"` + strings.Repeat("p", 1<<20) + `"}`
	for _, path := range []string{"/v1/signup", "/v1/login"} {
		start := time.Now()
		req, _ := http.NewRequest("POST", h.ts.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		res, err := h.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r := readResponse(t, res)
		if r.status != http.StatusRequestEntityTooLarge {
			t.Fatalf("%s: status %d", path, r.status)
		}
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Errorf("%s took %v", path, d)
		}
	}
}

// Every response carries the security headers, errors included.
func TestSecurityHeadersEverywhere(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	c := h.newUser("yara@example.com")
	for _, r := range []*response{
		c.do("GET", "/v1/me", nil),
		h.client().do("GET", "/v1/me", nil),
		h.client().do("GET", "/nope", nil),
		h.client().do("PUT", "/v1/login", nil),
		h.client().do("GET", "/healthz", nil),
		h.client().login("yara@example.com", "wrong"),
	} {
		for hdr, want := range map[string]string{
			"X-Content-Type-Options":  "nosniff",
			"X-Frame-Options":         "DENY",
			"Referrer-Policy":         "no-referrer",
			"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
			"Cache-Control":           "no-store",
		} {
			if got := r.header.Get(hdr); got != want {
				t.Errorf("status %d: %s = %q, want %q", r.status, hdr, got, want)
			}
		}
		if r.header.Get("X-Request-Id") == "" {
			t.Errorf("status %d: no X-Request-Id", r.status)
		}
	}
	tls := newHarness(t, "sqlite", func(c *config.Config) { c.PublicURL = "https://auth.example.com" })
	if got := tls.client().do("GET", "/healthz", nil).header.Get("Strict-Transport-Security"); !strings.Contains(got, "max-age=63072000") || !strings.Contains(got, "includeSubDomains") {
		t.Errorf("HSTS = %q", got)
	}
}

// Imported bcrypt hashes verify once and are replaced by peppered argon2id.
func TestImportedBcryptRehashedAtSignIn(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		legacy := "an imported legacy password"
		hash, err := bcrypt.GenerateFromPassword([]byte(legacy), 10)
		if err != nil {
			t.Fatal(err)
		}
		in := fmt.Sprintf(`{"email":"zoe@example.com","name":"Zoe","password_hash":%q,"email_verified":true}`+"\n"+
			`{"email":"bad","password_hash":"x"}`+"\n"+
			`{"email":"zoe@example.com","password_hash":%q}`+"\n", hash, hash)
		res, err := account.Import(context.Background(), h.srv.DB, strings.NewReader(in), nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Imported != 1 || res.Skipped != 1 || len(res.Errors) != 1 {
			t.Fatalf("import result %+v", res)
		}
		if strings.Contains(res.Errors[0], "$2") {
			t.Errorf("import error leaks a hash: %s", res.Errors[0])
		}
		c := h.client()
		mustStatus(t, c.login("zoe@example.com", legacy), http.StatusOK)
		u, err := h.srv.DB.Users().UserByEmailKey(context.Background(), "zoe@example.com")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(u.PasswordHash, "$argon2id$") || !strings.Contains(u.PasswordHash, "pv=") {
			t.Fatalf("hash not upgraded to peppered argon2id: %.12s…", u.PasswordHash)
		}
		mustStatus(t, h.client().login("zoe@example.com", legacy), http.StatusOK)
		r := c.do("GET", "/v1/activity", nil)
		if !strings.Contains(string(r.body), "password.rehashed") {
			t.Errorf("no password.rehashed event: %s", r.body)
		}
	})
}

// Many goroutines sign in, sign out and revoke at once; the final state is
// exactly what the successful operations imply.
func TestHammerConcurrentSessions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, func(c *config.Config) {
			c.LoginAttemptsPerIP, c.LoginDelayAfter = 10000, 10000
			c.HashConcurrency = 8
		})
		owner := h.newUser("hammer@example.com")
		const workers, rounds = 8, 4
		var mu sync.Mutex
		kept := 0
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := range rounds {
					c := h.client()
					if r := c.login("hammer@example.com", goodPassword); r.status != http.StatusOK {
						t.Errorf("login: %d %s", r.status, r.body)
						return
					}
					if r := c.do("GET", "/v1/me", nil); r.status != http.StatusOK {
						t.Errorf("me: %d", r.status)
					}
					switch (w + i) % 3 {
					case 0:
						if r := c.do("POST", "/v1/logout", nil); r.status != http.StatusNoContent {
							t.Errorf("logout: %d", r.status)
						}
					case 1:
						sid := c.do("GET", "/v1/me", nil).json(t)["session"].(map[string]any)["id"].(string)
						if r := owner.do("DELETE", "/v1/sessions/"+sid, nil); r.status != http.StatusNoContent {
							t.Errorf("revoke: %d %s", r.status, r.body)
						}
						if r := c.do("GET", "/v1/me", nil); r.status != http.StatusUnauthorized {
							t.Errorf("revoked session still works: %d", r.status)
						}
					default:
						mu.Lock()
						kept++
						mu.Unlock()
					}
				}
			})
		}
		wg.Wait()
		r := owner.do("GET", "/v1/sessions", nil)
		mustStatus(t, r, http.StatusOK)
		if got := len(r.json(t)["sessions"].([]any)); got != kept+1 {
			t.Fatalf("%d active sessions, want %d kept + the owner's", got, kept)
		}
	})
}

// TestStartRefusesUnknownSMSRegion: a mistyped --sms-default-region stops
// the start, instead of turning every phone number into the user's error.
func TestStartRefusesUnknownSMSRegion(t *testing.T) {
	for region, ok := range map[string]bool{"US": true, "GB": true, "us": false, "XX": false} {
		cfg := config.Default()
		cfg.DataDir = t.TempDir()
		cfg.SMSDefaultRegion = region
		srv, err := app.New(context.Background(), cfg, slog.New(slog.DiscardHandler), app.Options{})
		if srv != nil {
			srv.Close()
		}
		if (err == nil) != ok {
			t.Errorf("region %q: err %v, want ok=%v", region, err, ok)
		}
	}
}
