package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/sdk/go/gatehouse"
)

// TestSDKAgainstServer runs the Go SDK's middleware in a resource server
// against a real Gatehouse: JWKS discovery, the authenticated revocation
// feed, and instant rejection of a logged-out session's unexpired token.
func TestSDKAgainstServer(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, withResourceServer)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		client, err := gatehouse.New(ctx, gatehouse.Config{
			Issuer:       h.cfg.BaseURL(),
			Audience:     h.cfg.Audience(),
			ClientID:     "api",
			ClientSecret: rsSecret,
			Logger:       slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		api := httptest.NewServer(client.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, _ := gatehouse.ClaimsFromContext(r.Context())
			fmt.Fprintf(w, "%s %s", c.Subject, c.SessionID)
		})))
		defer api.Close()
		select {
		case <-client.Ready():
		case <-time.After(5 * time.Second):
			t.Fatal("revocation feed never delivered its snapshot")
		}

		call := func(tok string) (int, string) {
			req, _ := http.NewRequest("GET", api.URL+"/orders", nil)
			if tok != "" {
				req.Header.Set("Authorization", "Bearer "+tok)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			buf := make([]byte, 256)
			n, _ := res.Body.Read(buf)
			return res.StatusCode, string(buf[:n])
		}
		if code, _ := call(""); code != http.StatusUnauthorized {
			t.Fatalf("no token: %d", code)
		}
		ts := h.tokenUser("sdk@example.com", "native")
		_, claims := jwtParts(t, ts.access)
		if code, body := call(ts.access); code != http.StatusOK || body != fmt.Sprintf("%s %s", claims["sub"], claims["sid"]) {
			t.Fatalf("valid token: %d %q", code, body)
		}

		mustStatus(t, h.raw("POST", "/v1/logout", "", "", bearer(ts.access)), http.StatusNoContent)
		start := time.Now()
		for {
			code, _ := call(ts.access)
			if code == http.StatusUnauthorized {
				break
			}
			if time.Since(start) > 2*time.Second {
				t.Fatalf("SDK still accepts a logged-out session's token after %s (status %d)", time.Since(start), code)
			}
			time.Sleep(5 * time.Millisecond)
		}

		// A feed without valid credentials never becomes ready: the SDK
		// refuses every token rather than skipping revocation.
		bad, err := gatehouse.New(ctx, gatehouse.Config{
			Issuer: h.cfg.BaseURL(), Audience: h.cfg.Audience(), ClientID: "api", ClientSecret: "wrong-secret-wrong-secret-wrong-secret",
			Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		fresh := h.tokenUser("sdk2@example.com", "native")
		if _, err := bad.Verifier().Verify(ctx, fresh.access); err == nil {
			t.Fatal("a verifier whose revocation feed is refused accepted a token")
		}
	})
}
