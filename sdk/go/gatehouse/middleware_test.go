package gatehouse

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

func TestMiddleware(t *testing.T) {
	f := newFixture(t)
	valid := f.token(t, f.ed, f.claims())
	revokedTok := f.token(t, f.ed, f.claims().with("sid", "ses_revoked"))
	f.revs.revoke("ses_revoked")

	stale := newFixture(t, func(c *VerifierConfig) {
		c.Revocations = NewRevocationFeed("http://127.0.0.1:1", "a", "b", RevocationFeedOptions{Logger: discardLogger()})
	})
	staleTok := stale.token(t, stale.ed, stale.claims())
	down := newFixture(t, func(c *VerifierConfig) {
		c.Keys = keySourceFunc(func(context.Context, string) (*jose.JSONWebKey, error) {
			return nil, errors.New("JWKS unreachable")
		})
	})
	downTok := down.token(t, down.ed, down.claims())

	const challengeInvalid = `Bearer error="invalid_token"`
	cases := []struct {
		name      string
		v         *Verifier
		auth      []string
		status    int
		code      string
		challenge string
	}{
		{"valid", f.v, []string{"Bearer " + valid}, 200, "", ""},
		{"scheme lowercase", f.v, []string{"bearer " + valid}, 200, "", ""},
		{"scheme uppercase", f.v, []string{"BEARER " + valid}, 200, "", ""},
		{"no header", f.v, nil, 401, CodeUnauthenticated, "Bearer"},
		{"other scheme", f.v, []string{"Basic dXNlcjpwYXNz"}, 401, CodeUnauthenticated, "Bearer"},
		{"scheme only", f.v, []string{"Bearer"}, 401, CodeInvalidToken, challengeInvalid},
		{"empty token", f.v, []string{"Bearer "}, 401, CodeInvalidToken, challengeInvalid},
		{"token with space", f.v, []string{"Bearer " + valid + " x"}, 401, CodeInvalidToken, challengeInvalid},
		{"token with tab", f.v, []string{"Bearer " + valid + "\tx"}, 401, CodeInvalidToken, challengeInvalid},
		{"two headers", f.v, []string{"Bearer " + valid, "Bearer " + valid}, 401, CodeInvalidToken, challengeInvalid},
		{"garbage", f.v, []string{"Bearer abc.def.ghi"}, 401, CodeInvalidToken, challengeInvalid},
		{"tampered", f.v, []string{"Bearer " + valid[:len(valid)-4] + "AAAA"}, 401, CodeInvalidToken, challengeInvalid},
		{"revoked", f.v, []string{"Bearer " + revokedTok}, 401, CodeTokenRevoked, challengeInvalid},
		{"feed stale", stale.v, []string{"Bearer " + staleTok}, 503, CodeRevocationFeedStale, ""},
		{"keys unavailable", down.v, []string{"Bearer " + downTok}, 503, CodeVerificationUnavailable, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got *Claims
			h := Middleware(tc.v)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, ok := ClaimsFromContext(r.Context())
				if !ok {
					t.Error("no claims in context")
				}
				got = c
				io.WriteString(w, "ok")
			}))
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			for _, a := range tc.auth {
				req.Header.Add("Authorization", a)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			res := rec.Result()
			body := rec.Body.String()

			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%s)", res.StatusCode, tc.status, body)
			}
			if tc.status == 200 {
				if got == nil || got.Subject != "usr_123" || got.SessionID != "ses_1" {
					t.Fatalf("claims %+v", got)
				}
				return
			}
			if got != nil {
				t.Fatal("handler called")
			}
			if c := res.Header.Get("WWW-Authenticate"); c != tc.challenge {
				t.Errorf("WWW-Authenticate %q, want %q", c, tc.challenge)
			}
			if tc.status == 503 && res.Header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type %q", ct)
			}
			if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q", cc)
			}
			var p struct {
				Status int    `json:"status"`
				Code   string `json:"code"`
			}
			if err := json.Unmarshal([]byte(body), &p); err != nil || p.Code != tc.code || p.Status != tc.status {
				t.Errorf("body %s: %+v %v", body, p, err)
			}
			for _, a := range tc.auth {
				if tok := strings.TrimPrefix(a, "Bearer "); len(tok) > 8 && strings.Contains(body, tok[:8]) {
					t.Errorf("body echoes the token: %s", body)
				}
			}
		})
	}
}

func TestClaimsFromContextEmpty(t *testing.T) {
	if c, ok := ClaimsFromContext(context.Background()); ok || c != nil {
		t.Fatal("claims in an empty context")
	}
}
