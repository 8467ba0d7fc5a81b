package gatehouse

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// TestClientEndToEnd runs New against an httptest server that serves both the
// JWKS and the revocation feed, and checks that a revocation reaches the
// middleware.
func TestClientEndToEnd(t *testing.T) {
	k := newEd25519Key(t, "ed-1")
	feed := newFeedServer(t)
	jwks := mustJSON(t, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{k.pub}})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Write(jwks)
	})
	mux.Handle("GET /v1/revocations", feed.Config.Handler)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := New(ctx, Config{
		Issuer: srv.URL, Audience: testAudience, ClientID: feedClientID, ClientSecret: feedClientSecret,
		HTTPClient: srv.Client(), Logger: discardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(c.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, _ := ClaimsFromContext(r.Context())
		io.WriteString(w, claims.Subject)
	})))
	defer api.Close()

	now := time.Now()
	claims := validClaims(now).with("iss", srv.URL)
	tok := signRaw(t, jose.EdDSA, k.priv, atHeader("ed-1"), mustJSON(t, claims))
	call := func() (int, string) {
		req, _ := http.NewRequest(http.MethodGet, api.URL, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := api.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}

	if status, _ := call(); status != http.StatusServiceUnavailable {
		t.Fatalf("before the first snapshot: status %d, want 503", status)
	}
	conn := feed.accept(t)
	conn.send(t, snapshot(5))
	select {
	case <-c.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("not ready")
	}
	if status, body := call(); status != http.StatusOK || body != "usr_123" {
		t.Fatalf("status %d body %q", status, body)
	}
	conn.send(t, revokeEvent("ses_1", now.Add(time.Hour).Unix()))
	eventually(t, "revocation", func() bool { status, _ := call(); return status == http.StatusUnauthorized })
}

func TestNewConfigErrors(t *testing.T) {
	ok := Config{Issuer: "https://auth.example.test", Audience: "a", ClientID: "id", ClientSecret: "s"}
	for name, mod := range map[string]func(*Config){
		"empty issuer":       func(c *Config) { c.Issuer = "" },
		"relative issuer":    func(c *Config) { c.Issuer = "auth.example.test" },
		"ftp issuer":         func(c *Config) { c.Issuer = "ftp://auth.example.test" },
		"issuer with query":  func(c *Config) { c.Issuer = "https://auth.example.test/?a=b" },
		"issuer with creds":  func(c *Config) { c.Issuer = "https://u:p@auth.example.test" },
		"issuer with frag":   func(c *Config) { c.Issuer = "https://auth.example.test/#x" },
		"no audience":        func(c *Config) { c.Audience = "" },
		"no client id":       func(c *Config) { c.ClientID = "" },
		"no client secret":   func(c *Config) { c.ClientSecret = "" },
		"leeway too large":   func(c *Config) { c.Leeway = time.Hour },
		"leeway is negative": func(c *Config) { c.Leeway = -1 },
	} {
		cfg := ok
		mod(&cfg)
		if _, err := New(context.Background(), cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestNewRefusesCleartextIssuer(t *testing.T) {
	for _, issuer := range []string{"http://auth.example.com", "http://10.0.0.5:8080"} {
		if _, err := New(context.Background(), Config{Issuer: issuer, Audience: "a", ClientID: "id", ClientSecret: "s"}); err == nil {
			t.Errorf("%s accepted", issuer)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, issuer := range []string{"http://127.0.0.1:8080", "http://localhost:8080", "https://auth.example.com"} {
		if _, err := New(ctx, Config{Issuer: issuer, Audience: "a", ClientID: "id", ClientSecret: "s", Logger: discardLogger()}); err != nil {
			t.Errorf("%s refused: %v", issuer, err)
		}
	}
}
