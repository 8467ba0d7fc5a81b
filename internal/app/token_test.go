package app_test

import (
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/config"
)

const (
	uaFirefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
	uaCurl    = "curl/8.5.0"
)

// raw sends one request with explicit headers and cookies.
func (h *harness) raw(method, path, contentType string, body string, hdr map[string]string, cookies ...*http.Cookie) *response {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.ts.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("User-Agent", uaFirefox)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	res, err := h.ts.Client().Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return &response{status: res.StatusCode, header: res.Header, body: b}
}

func jsonBody(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// tokenSet is what a token-mode sign-in or refresh hands out.
type tokenSet struct {
	access  string
	refresh string       // native clients
	cookie  *http.Cookie // browsers
}

func tokensOf(t testing.TB, r *response, cookieName string) tokenSet {
	t.Helper()
	m := r.json(t)
	ts := tokenSet{}
	ts.access, _ = m["access_token"].(string)
	ts.refresh, _ = m["refresh_token"].(string)
	if m["token_type"] != "Bearer" || ts.access == "" {
		t.Fatalf("not a token response: %s", r.body)
	}
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == cookieName {
			ts.cookie = c
		}
	}
	return ts
}

const refreshCookie = "__Secure-gh_refresh"

// tokenUser signs up email in token mode with the given client kind.
func (h *harness) tokenUser(email, client string) tokenSet {
	h.t.Helper()
	// A native app signs up with the HTTP client it refreshes with
	// (refreshNative): another one would be a risk signal.
	var hdr map[string]string
	if client == "native" {
		hdr = map[string]string{"User-Agent": uaCurl}
	}
	r := h.raw("POST", "/v1/signup", "application/json", jsonBody(map[string]string{"email": email, "password": goodPassword, "mode": "token", "client": client}), hdr)
	mustStatus(h.t, r, http.StatusCreated)
	return tokensOf(h.t, r, refreshCookie)
}

func (h *harness) refreshNative(refresh, ua string) *response {
	h.t.Helper()
	return h.raw("POST", "/v1/token/refresh", "application/json", jsonBody(map[string]string{"refresh_token": refresh}), map[string]string{"User-Agent": ua})
}

func bearer(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

// jwtParts decodes a compact JWS's header and claims (no verification).
func jwtParts(t testing.TB, tok string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %q", tok)
	}
	dec := func(s string) map[string]any {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	return dec(parts[0]), dec(parts[1])
}

func TestTokenModeSignInAndAccessToken(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		h.newUser("tok@example.com")
		r := h.raw("POST", "/v1/login", "application/json", jsonBody(map[string]string{"email": "tok@example.com", "password": goodPassword, "mode": "token", "client": "native"}), nil)
		mustStatus(t, r, http.StatusOK)
		if cc := r.header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("token response Cache-Control %q, want no-store", cc)
		}
		ts := tokensOf(t, r, refreshCookie)
		if ts.cookie != nil || !strings.HasPrefix(ts.refresh, "ghr_") || len(ts.refresh) != 47 {
			t.Fatalf("native client: refresh token %q cookie %v", ts.refresh, ts.cookie)
		}
		if got := r.json(t)["expires_in"]; got != float64(600) {
			t.Errorf("expires_in %v, want 600", got)
		}
		hdr, claims := jwtParts(t, ts.access)
		if hdr["alg"] != "EdDSA" || hdr["typ"] != "at+jwt" || hdr["kid"] == "" {
			t.Errorf("header %v", hdr)
		}
		for _, c := range []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "sid", "auth_time", "amr", "acr", "client_id"} {
			if _, ok := claims[c]; !ok {
				t.Errorf("claim %s missing: %v", c, claims)
			}
		}
		if claims["iss"] != h.cfg.BaseURL() || claims["exp"].(float64)-claims["iat"].(float64) != 600 {
			t.Errorf("claims %v", claims)
		}
		me := h.raw("GET", "/v1/me", "", "", bearer(ts.access))
		mustStatus(t, me, http.StatusOK)
		if u := me.json(t)["user"].(map[string]any); u["email"] != "tok@example.com" || u["id"] != claims["sub"] {
			t.Errorf("/v1/me with bearer: %s", me.body)
		}
		// The session appears among the user's devices.
		list := h.raw("GET", "/v1/sessions", "", "", bearer(ts.access))
		mustStatus(t, list, http.StatusOK)
		if !strings.Contains(string(list.body), claims["sid"].(string)) {
			t.Errorf("token session not listed: %s", list.body)
		}
	})
}

func TestTokenModeBrowserRefreshCookie(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	ts := h.tokenUser("browser@example.com", "")
	c := ts.cookie
	if ts.refresh != "" || c == nil {
		t.Fatalf("browser client: refresh in body %q, cookie %v", ts.refresh, c)
	}
	if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/v1/token/" || c.Domain != "" {
		t.Fatalf("refresh cookie attributes: %+v", c)
	}
	r := h.raw("POST", "/v1/token/refresh", "", "", nil, c)
	mustStatus(t, r, http.StatusOK)
	next := tokensOf(t, r, refreshCookie)
	if next.refresh != "" || next.cookie == nil || next.cookie.Value == c.Value {
		t.Fatalf("rotation via cookie: body refresh %q, cookie %v", next.refresh, next.cookie)
	}
	mustStatus(t, h.raw("GET", "/v1/me", "", "", bearer(next.access)), http.StatusOK)
	// Cookie and body together are ambiguous.
	both := h.raw("POST", "/v1/token/refresh", "application/json", jsonBody(map[string]string{"refresh_token": next.cookie.Value}), nil, next.cookie)
	mustStatus(t, both, http.StatusBadRequest)
}

func TestTokenRefreshRotatesWithGrace(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		ts := h.tokenUser("rot@example.com", "native")
		r1 := h.refreshNative(ts.refresh, uaCurl)
		mustStatus(t, r1, http.StatusOK)
		t1 := tokensOf(t, r1, refreshCookie)
		if t1.refresh == ts.refresh {
			t.Fatal("refresh token not rotated")
		}
		// A second tab racing with the same token inside the grace window
		// gets the very same successor.
		h.clock.Advance(5 * time.Second)
		r2 := h.refreshNative(ts.refresh, uaCurl)
		mustStatus(t, r2, http.StatusOK)
		if t2 := tokensOf(t, r2, refreshCookie); t2.refresh != t1.refresh {
			t.Fatal("grace-window replay got a different successor: the family forked")
		}
		// The OAuth token endpoint rotates the same family.
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {t1.refresh}}.Encode()
		o := h.raw("POST", "/oauth2/token", "application/x-www-form-urlencoded", form, map[string]string{"User-Agent": uaCurl})
		mustStatus(t, o, http.StatusOK)
		if o.header.Get("Cache-Control") != "no-store" {
			t.Error("oauth token response cacheable")
		}
		t3 := tokensOf(t, o, refreshCookie)
		mustStatus(t, h.raw("GET", "/v1/me", "", "", bearer(t3.access)), http.StatusOK)
	})
}

func TestAttackRefreshReplayAfterGraceRevokesFamily(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		stolen := h.tokenUser("victim@example.com", "native")
		// The victim refreshes; the attacker kept the old token.
		victim := tokensOf(t, h.refreshNative(stolen.refresh, uaCurl), refreshCookie)
		h.clock.Advance(11 * time.Second)
		r := h.refreshNative(stolen.refresh, uaCurl)
		if r.status != http.StatusUnauthorized || r.code(t) != "refresh_token_reused" {
			t.Fatalf("replay after grace: %d %s", r.status, r.body)
		}
		// Both the attacker's and the victim's tokens are dead.
		if r := h.refreshNative(victim.refresh, uaCurl); r.status != http.StatusUnauthorized || r.code(t) != "invalid_grant" {
			t.Fatalf("victim's successor still refreshes: %d %s", r.status, r.body)
		}
		for name, at := range map[string]string{"attacker's": stolen.access, "victim's": victim.access} {
			if r := h.raw("GET", "/v1/me", "", "", bearer(at)); r.status != http.StatusUnauthorized {
				t.Errorf("%s unexpired access token still accepted after reuse detection: %d", name, r.status)
			}
		}
		act := h.raw("POST", "/v1/login", "application/json", jsonBody(map[string]string{"email": "victim@example.com", "password": goodPassword, "mode": "token", "client": "native"}), nil)
		mustStatus(t, act, http.StatusOK)
		events := h.raw("GET", "/v1/activity", "", "", bearer(tokensOf(t, act, refreshCookie).access))
		if !strings.Contains(string(events.body), `"refresh_token.reused"`) {
			t.Errorf("no refresh_token.reused audit event: %s", events.body)
		}
	})
}

func TestAttackRefreshReplayFromAnotherClientInsideGrace(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	ts := h.tokenUser("other@example.com", "native")
	mustStatus(t, h.refreshNative(ts.refresh, uaCurl), http.StatusOK)
	// Within the grace window, but another user agent: not a racing tab.
	r := h.refreshNative(ts.refresh, uaFirefox)
	if r.status != http.StatusUnauthorized || r.code(t) != "refresh_token_reused" {
		t.Fatalf("replay from another client inside grace: %d %s", r.status, r.body)
	}
}

func TestAttackRefreshGraceZeroMeansEveryReplayIsReuse(t *testing.T) {
	h := newHarness(t, "sqlite", func(c *config.Config) { c.RefreshGrace = 0 })
	ts := h.tokenUser("nograce@example.com", "native")
	mustStatus(t, h.refreshNative(ts.refresh, uaCurl), http.StatusOK)
	h.clock.Advance(time.Millisecond)
	if r := h.refreshNative(ts.refresh, uaCurl); r.status != http.StatusUnauthorized || r.code(t) != "refresh_token_reused" {
		t.Fatalf("grace 0 replay: %d %s", r.status, r.body)
	}
}

func TestAttackConcurrentRefreshDoesNotFork(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		ts := h.tokenUser("race@example.com", "native")
		const n = 50
		var wg sync.WaitGroup
		results := make([]*response, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = h.refreshNative(ts.refresh, uaCurl)
			}()
		}
		wg.Wait()
		successors := map[string]int{}
		for i, r := range results {
			if r.status != http.StatusOK {
				t.Fatalf("request %d: %d %s", i, r.status, r.body)
			}
			successors[r.json(t)["refresh_token"].(string)]++
		}
		if len(successors) != 1 {
			t.Fatalf("%d different successors: the family forked", len(successors))
		}
		for next := range successors {
			mustStatus(t, h.refreshNative(next, uaCurl), http.StatusOK)
		}
	})
}

func TestAttackRefreshTokenOfAnotherUserWithCookie(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	a := h.tokenUser("a@example.com", "native")
	_, aClaims := jwtParts(t, a.access)
	b := h.newUser("b@example.com") // a cookie session
	r := h.raw("POST", "/v1/token/refresh", "application/json", jsonBody(map[string]string{"refresh_token": a.refresh}), map[string]string{"User-Agent": uaCurl}, b.cookie)
	mustStatus(t, r, http.StatusOK)
	_, claims := jwtParts(t, tokensOf(t, r, refreshCookie).access)
	if claims["sub"] != aClaims["sub"] || claims["sid"] != aClaims["sid"] {
		t.Fatalf("refresh mixed identities: got sub %v sid %v, want A's %v %v", claims["sub"], claims["sid"], aClaims["sub"], aClaims["sid"])
	}
	// B's session is untouched.
	mustStatus(t, b.do("GET", "/v1/me", nil), http.StatusOK)
	// And a session cookie is never accepted as a refresh token.
	fake := &http.Cookie{Name: refreshCookie, Value: b.cookie.Value}
	if r := h.raw("POST", "/v1/token/refresh", "", "", nil, fake); r.status != http.StatusUnauthorized {
		t.Fatalf("session secret accepted as refresh token: %d", r.status)
	}
}

func TestRefreshIdleAndAbsoluteLifetime(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	ts := h.tokenUser("life@example.com", "native")
	h.clock.Advance(14*24*time.Hour + time.Second)
	if r := h.refreshNative(ts.refresh, uaCurl); r.status != http.StatusUnauthorized || r.code(t) != "invalid_grant" {
		t.Fatalf("idle-expired refresh token: %d %s", r.status, r.body)
	}

	ts = h.tokenUser("life2@example.com", "native")
	cur := ts.refresh
	for day := 13; day < 90; day += 13 {
		h.clock.Advance(13 * 24 * time.Hour)
		r := h.refreshNative(cur, uaCurl)
		mustStatus(t, r, http.StatusOK)
		cur = r.json(t)["refresh_token"].(string)
	}
	h.clock.Advance(13 * 24 * time.Hour) // day 91
	if r := h.refreshNative(cur, uaCurl); r.status != http.StatusUnauthorized {
		t.Fatalf("refresh past the absolute lifetime: %d %s", r.status, r.body)
	}
}

func TestAttackRevokedAccessTokenRejectedAtOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		ts := h.tokenUser("logout@example.com", "native")
		mustStatus(t, h.raw("GET", "/v1/forward-auth", "", "", bearer(ts.access)), http.StatusOK)
		mustStatus(t, h.raw("POST", "/v1/logout", "", "", bearer(ts.access)), http.StatusNoContent)
		for _, path := range []string{"/v1/me", "/v1/forward-auth"} {
			if r := h.raw("GET", path, "", "", bearer(ts.access)); r.status != http.StatusUnauthorized {
				t.Errorf("%s: logged-out access token still accepted: %d", path, r.status)
			}
		}
		if r := h.refreshNative(ts.refresh, uaCurl); r.status != http.StatusUnauthorized {
			t.Errorf("logged-out session still refreshes: %d", r.status)
		}
	})
}

func TestAttackAccessTokenExpiredAndTampered(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	ts := h.tokenUser("exp@example.com", "native")
	parts := strings.Split(ts.access, ".")
	_, claims := jwtParts(t, ts.access)
	claims["sub"] = "usr_attacker"
	forged, _ := json.Marshal(claims)
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(forged) + "." + parts[2]
	if r := h.raw("GET", "/v1/forward-auth", "", "", bearer(tampered)); r.status != http.StatusUnauthorized {
		t.Fatalf("tampered payload accepted: %d", r.status)
	}
	h.clock.Advance(10*time.Minute + 11*time.Second) // past exp and the leeway
	if r := h.raw("GET", "/v1/forward-auth", "", "", bearer(ts.access)); r.status != http.StatusUnauthorized {
		t.Fatalf("expired access token accepted: %d", r.status)
	}
	// An invalid bearer token never falls back to a valid cookie.
	c := h.newUser("cookie@example.com")
	r := h.raw("GET", "/v1/me", "", "", bearer("garbage"), c.cookie)
	if r.status != http.StatusUnauthorized {
		t.Fatalf("invalid bearer fell back to the cookie: %d", r.status)
	}
}

func TestForwardAuth(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	ts := h.tokenUser("fa@example.com", "native")
	_, claims := jwtParts(t, ts.access)
	r := h.raw("GET", "/v1/forward-auth", "", "", bearer(ts.access))
	mustStatus(t, r, http.StatusOK)
	if r.header.Get("X-Gatehouse-User") != claims["sub"] || r.header.Get("X-Gatehouse-Session") != claims["sid"] ||
		r.header.Get("X-Gatehouse-AAL") != "1" || r.header.Get("X-Gatehouse-AMR") != "pwd" {
		t.Fatalf("forward-auth headers: %v", r.header)
	}
	c := h.newUser("fa-cookie@example.com")
	r = h.raw("GET", "/v1/forward-auth", "", "", nil, c.cookie)
	mustStatus(t, r, http.StatusOK)
	if !strings.HasPrefix(r.header.Get("X-Gatehouse-User"), "usr_") {
		t.Fatalf("cookie forward-auth headers: %v", r.header)
	}
	r = h.raw("GET", "/v1/forward-auth", "", "", nil)
	if r.status != http.StatusUnauthorized || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("anonymous forward-auth: %d %v", r.status, r.header)
	}
}

const rsSecret = "0123456789abcdef0123456789abcdef-api"

func withResourceServer(c *config.Config) { c.ResourceServers = []string{"api:" + rsSecret} }

func TestOAuthRevokeAndIntrospect(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, withResourceServer)
		ts := h.tokenUser("intro@example.com", "native")
		basic := map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("api:"+rsSecret))}
		form := func(tok string) string { return url.Values{"token": {tok}}.Encode() }
		const formCT = "application/x-www-form-urlencoded"

		if r := h.raw("POST", "/oauth2/introspect", formCT, form(ts.access), nil); r.status != http.StatusUnauthorized {
			t.Fatalf("introspection without credentials: %d", r.status)
		}
		wrong := map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("api:wrong"))}
		if r := h.raw("POST", "/oauth2/introspect", formCT, form(ts.access), wrong); r.status != http.StatusUnauthorized {
			t.Fatalf("introspection with a wrong secret: %d", r.status)
		}
		r := h.raw("POST", "/oauth2/introspect", formCT, form(ts.access), basic)
		mustStatus(t, r, http.StatusOK)
		if m := r.json(t); m["active"] != true || m["token_type"] != "Bearer" || m["sid"] == "" {
			t.Fatalf("introspect access token: %s", r.body)
		}
		r = h.raw("POST", "/oauth2/introspect", formCT, form(ts.refresh), basic)
		if m := r.json(t); m["active"] != true || m["token_type"] != "refresh_token" {
			t.Fatalf("introspect refresh token: %s", r.body)
		}
		if m := h.raw("POST", "/oauth2/introspect", formCT, form("nonsense"), basic).json(t); m["active"] != false || len(m) != 1 {
			t.Fatalf("introspect garbage: %v", m)
		}

		// RFC 7009: 200 for an unknown token, and revoking the refresh
		// token ends the session, access token included.
		mustStatus(t, h.raw("POST", "/oauth2/revoke", formCT, form("ghr_unknown"), nil), http.StatusOK)
		mustStatus(t, h.raw("POST", "/oauth2/revoke", formCT, form(ts.refresh), nil), http.StatusOK)
		if m := h.raw("POST", "/oauth2/introspect", formCT, form(ts.access), basic).json(t); m["active"] != false {
			t.Fatalf("access token active after its refresh token was revoked: %v", m)
		}
		if r := h.raw("GET", "/v1/me", "", "", bearer(ts.access)); r.status != http.StatusUnauthorized {
			t.Fatalf("revoked session's access token accepted: %d", r.status)
		}
		if r := h.raw("POST", "/oauth2/revoke", formCT, "", nil); r.status != http.StatusBadRequest || r.json(t)["error"] != "invalid_request" {
			t.Fatalf("revoke without token: %d %s", r.status, r.body)
		}
		dup := "token=a&token=b"
		if r := h.raw("POST", "/oauth2/revoke", formCT, dup, nil); r.status != http.StatusBadRequest {
			t.Fatalf("repeated parameter accepted: %d", r.status)
		}
	})
}

func TestOAuthTokenErrors(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	const formCT = "application/x-www-form-urlencoded"
	for _, tt := range []struct {
		name, ct, body, want string
	}{
		{"json body", "application/json", `{"grant_type":"refresh_token"}`, "invalid_request"},
		{"no grant", formCT, "refresh_token=x", "invalid_request"},
		{"password grant", formCT, "grant_type=password&username=a&password=b", "unsupported_grant_type"},
		{"malformed token", formCT, "grant_type=refresh_token&refresh_token=ghs_notarefresh", "invalid_grant"},
		{"unknown token", formCT, "grant_type=refresh_token&refresh_token=ghr_" + strings.Repeat("A", 43), "invalid_grant"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := h.raw("POST", "/oauth2/token", tt.ct, tt.body, nil)
			if r.status != http.StatusBadRequest || r.json(t)["error"] != tt.want {
				t.Fatalf("%d %s, want 400 %s", r.status, r.body, tt.want)
			}
		})
	}
}

func TestDiscoveryAndJWKS(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	d := h.raw("GET", "/.well-known/openid-configuration", "", "", nil)
	mustStatus(t, d, http.StatusOK)
	doc := d.json(t)
	if doc["issuer"] != h.cfg.BaseURL() || doc["jwks_uri"] != h.cfg.BaseURL()+"/.well-known/jwks.json" {
		t.Fatalf("discovery: %s", d.body)
	}
	j := h.raw("GET", "/.well-known/jwks.json", "", "", nil)
	mustStatus(t, j, http.StatusOK)
	if cc := j.header.Get("Cache-Control"); !strings.Contains(cc, "max-age=300") {
		t.Errorf("JWKS Cache-Control %q", cc)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(j.body, &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("JWKS: %v %s", err, j.body)
	}
	if _, private := set.Keys[0]["d"]; private || set.Keys[0]["alg"] != "EdDSA" {
		t.Fatalf("JWKS key: %v", set.Keys[0])
	}
	ts := h.tokenUser("jwks@example.com", "native")
	if hdr, _ := jwtParts(t, ts.access); hdr["kid"] != set.Keys[0]["kid"] {
		t.Fatalf("token kid %v not in JWKS", hdr["kid"])
	}
}

func TestTokenModeStepUpAndPasswordChange(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	ts := h.tokenUser("step@example.com", "native")
	other := h.raw("POST", "/v1/login", "application/json", jsonBody(map[string]string{"email": "step@example.com", "password": goodPassword, "mode": "token", "client": "native"}), nil)
	otherTS := tokensOf(t, other, refreshCookie)
	h.clock.Advance(11 * time.Minute)
	// The access token expired with the clock; refresh first.
	cur := tokensOf(t, h.refreshNative(ts.refresh, uaCurl), refreshCookie)
	r := h.raw("POST", "/v1/password", "application/json", jsonBody(map[string]string{"current_password": goodPassword, "new_password": "another long passphrase here"}), bearer(cur.access))
	if r.status != http.StatusForbidden || r.code(t) != "reauthentication_required" {
		t.Fatalf("stale token-mode password change: %d %s", r.status, r.body)
	}
	re := h.raw("POST", "/v1/reauthenticate", "application/json", jsonBody(map[string]string{"password": goodPassword}), bearer(cur.access))
	mustStatus(t, re, http.StatusOK)
	fresh := re.json(t)["access_token"].(string)
	_, c := jwtParts(t, fresh)
	if int64(c["auth_time"].(float64)) != h.clock.Now().Unix() {
		t.Fatalf("step-up token auth_time %v, want now", c["auth_time"])
	}
	r = h.raw("POST", "/v1/password", "application/json", jsonBody(map[string]string{"current_password": goodPassword, "new_password": "another long passphrase here"}), bearer(fresh))
	mustStatus(t, r, http.StatusOK)
	repl := tokensOf(t, r, refreshCookie)
	// Every earlier credential died with the old password: the other
	// device, and the caller's own old refresh family.
	for name, rt := range map[string]string{"other device": otherTS.refresh, "own old family": cur.refresh} {
		if r := h.refreshNative(rt, uaCurl); r.status != http.StatusUnauthorized {
			t.Errorf("%s refresh token survived the password change: %d", name, r.status)
		}
	}
	if r := h.raw("GET", "/v1/me", "", "", bearer(fresh)); r.status != http.StatusUnauthorized {
		t.Errorf("old access token survived the password change: %d", r.status)
	}
	mustStatus(t, h.raw("GET", "/v1/me", "", "", bearer(repl.access)), http.StatusOK)
}

func TestTokenModeInputErrors(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	h.newUser("in@example.com")
	for _, tt := range []struct {
		name string
		body map[string]string
	}{
		{"unknown mode", map[string]string{"mode": "jwt"}},
		{"client without token mode", map[string]string{"client": "native"}},
		{"unknown client", map[string]string{"mode": "token", "client": "desktop"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := map[string]string{"email": "in@example.com", "password": goodPassword}
			for k, v := range tt.body {
				body[k] = v
			}
			r := h.raw("POST", "/v1/login", "application/json", jsonBody(body), nil)
			if r.status != http.StatusBadRequest || r.code(t) != "invalid_field" {
				t.Fatalf("%d %s", r.status, r.body)
			}
		})
	}
	r := h.raw("POST", "/v1/token/refresh", "", "", nil)
	if r.status != http.StatusUnauthorized || r.code(t) != "invalid_grant" {
		t.Fatalf("refresh with nothing: %d %s", r.status, r.body)
	}
	r = h.raw("POST", "/v1/token/refresh", "application/json", `{"refresh_token":"x","extra":1}`, nil)
	if r.status != http.StatusBadRequest {
		t.Fatalf("refresh with unknown field: %d %s", r.status, r.body)
	}
}

func TestAttackBrowserLogoutWithExpiredAccessToken(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	ts := h.tokenUser("shared-pc@example.com", "browser")
	h.clock.Advance(11 * time.Minute) // the in-memory access token is gone
	r := h.raw("POST", "/v1/logout", "", "", bearer(ts.access))
	if r.status != http.StatusUnauthorized || r.header.Get("WWW-Authenticate") == "" {
		t.Fatalf("logout with an expired token pretended to succeed: %d %v", r.status, r.header)
	}
	r = h.raw("POST", "/v1/token/logout", "", "", nil, ts.cookie)
	mustStatus(t, r, http.StatusNoContent)
	cleared := false
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		cleared = cleared || (c.Name == refreshCookie && c.MaxAge < 0)
	}
	if !cleared {
		t.Error("token logout did not clear the refresh cookie")
	}
	if r := h.raw("POST", "/v1/token/refresh", "", "", nil, ts.cookie); r.status != http.StatusUnauthorized {
		t.Fatalf("the next person at the computer refreshed into the session: %d", r.status)
	}
	mustStatus(t, h.raw("POST", "/v1/token/logout", "", "", nil, ts.cookie), http.StatusNoContent) // idempotent
}

func TestAttackRefreshCookieTossing(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	ts := h.tokenUser("tossed@example.com", "browser")
	attacker := h.tokenUser("attacker@example.com", "browser")
	tossed := &http.Cookie{Name: refreshCookie, Value: attacker.cookie.Value}
	r := h.raw("POST", "/v1/token/refresh", "", "", nil, tossed, ts.cookie)
	if r.status != http.StatusUnauthorized {
		t.Fatalf("two refresh cookies: %d %s", r.status, r.body)
	}
	if sc := r.header.Values("Set-Cookie"); len(sc) != 0 {
		t.Fatalf("refusal cleared a cookie (the tossed one would be left alone): %v", sc)
	}
	mustStatus(t, h.raw("POST", "/v1/token/refresh", "", "", nil, ts.cookie), http.StatusOK)
}

func TestAttackStepUpCannotExtendExpiredSession(t *testing.T) {
	h := newHarness(t, "sqlite", func(c *config.Config) {
		c.RefreshLifetime = 5 * time.Minute
		c.RefreshIdleTimeout = 5 * time.Minute
	})
	ts := h.tokenUser("expiring@example.com", "native")
	h.clock.Advance(6 * time.Minute) // session over, access token not yet expired
	r := h.raw("POST", "/v1/reauthenticate", "application/json", jsonBody(map[string]string{"password": goodPassword}), bearer(ts.access))
	if r.status != http.StatusUnauthorized {
		t.Fatalf("step-up on an expired session minted a token: %d %s", r.status, r.body)
	}
}

// TestAttackLongTokenAfterTTLLowered: after the access-token lifetime is
// lowered, the revocation set remembers revocations only that long; a
// token issued under the old, longer lifetime is refused outright rather
// than outliving the memory of its session's revocation.
func TestAttackLongTokenAfterTTLLowered(t *testing.T) {
	h := newHarness(t, "sqlite", func(c *config.Config) { c.AccessTokenTTL = time.Hour })
	ts := h.tokenUser("ttl@example.com", "native")
	mustStatus(t, h.raw("GET", "/v1/forward-auth", "", "", bearer(ts.access)), http.StatusOK)
	cfg := h.cfg
	cfg.AccessTokenTTL = time.Minute
	lowered := startHarness(t, cfg) // a replica (or restart) with the new setting
	if r := lowered.raw("GET", "/v1/forward-auth", "", "", bearer(ts.access)); r.status != http.StatusUnauthorized {
		t.Fatalf("hour-long token accepted under a one-minute TTL: %d", r.status)
	}
}

// TestAttackStoreCopyCannotWalkRefreshFamily: a copy of the store plus an
// old refresh token must not lead to the live one. Each used token's
// sealed successor opens only with that token, and is erased once the
// grace window is over: after a few rotations only the newest used token
// (still inside its window) keeps one.
func TestAttackStoreCopyCannotWalkRefreshFamily(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	cur := h.tokenUser("walk@example.com", "native").refresh
	for range 4 {
		r := h.refreshNative(cur, uaCurl)
		mustStatus(t, r, http.StatusOK)
		cur = r.json(t)["refresh_token"].(string)
		h.clock.Advance(11 * time.Second)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(h.cfg.DataDir, "gatehouse.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var sealed int
	if err := db.QueryRow("SELECT count(*) FROM refresh_tokens WHERE successor IS NOT NULL").Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	if sealed != 1 {
		t.Fatalf("%d used tokens still hold a sealed successor, want only the newest", sealed)
	}
}
