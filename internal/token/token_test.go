package token

import (
	"bytes"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/gatehouse-auth/gatehouse/internal/id"
)

func TestSuccessorSealOpensOnlyWithThePresentedToken(t *testing.T) {
	tok, other, next := id.NewSecret(RefreshPrefix), id.NewSecret(RefreshPrefix), id.NewSecret(RefreshPrefix)
	sealed, err := sealSuccessor(tok, next, "rt_1")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte(next)) {
		t.Fatal("successor stored in clear")
	}
	if got, ok := openSuccessor(tok, sealed, "rt_1"); !ok || got != next {
		t.Fatalf("open with the presented token: %q %v", got, ok)
	}
	for name, open := range map[string]func() bool{
		"another token":  func() bool { _, ok := openSuccessor(other, sealed, "rt_1"); return ok },
		"another row":    func() bool { _, ok := openSuccessor(tok, sealed, "rt_2"); return ok },
		"nothing sealed": func() bool { _, ok := openSuccessor(tok, nil, "rt_1"); return ok },
		"truncated":      func() bool { _, ok := openSuccessor(tok, sealed[:len(sealed)-1], "rt_1"); return ok },
		"flipped ciphertext": func() bool {
			b := bytes.Clone(sealed)
			b[len(b)/2] ^= 1
			_, ok := openSuccessor(tok, b, "rt_1")
			return ok
		},
	} {
		if open() {
			t.Errorf("TestAttack: successor opened with %s", name)
		}
	}
	again, _ := sealSuccessor(tok, next, "rt_1")
	if bytes.Equal(again, sealed) {
		t.Error("sealing is deterministic (nonce reuse)")
	}
}

func TestFingerprintSeparatesChannelsAndAgents(t *testing.T) {
	r := httptest.NewRequest("POST", "/", nil)
	r.Header.Set("User-Agent", "A")
	a := fingerprint(channelBody, r)
	if a != fingerprint(channelBody, r) {
		t.Fatal("fingerprint not stable")
	}
	if a == fingerprint(channelCookie, r) {
		t.Fatal("cookie and body channels share a fingerprint")
	}
	r.Header.Set("User-Agent", "B")
	if a == fingerprint(channelBody, r) {
		t.Fatal("user agents share a fingerprint")
	}
}

func TestResourceServersAuthenticate(t *testing.T) {
	const secret = "s3cret+with/odd&chars=0123456789abcdef"
	rs := NewResourceServers([]string{"api:" + secret, "billing:" + secret + "x"}, nil)
	tests := []struct {
		name       string
		user, pass string
		noAuth     bool
		want       string
	}{
		{name: "right", user: "api", pass: url.QueryEscape(secret), want: "api"},
		{name: "raw secret with form characters", user: "api", pass: secret, want: "api"},
		{name: "wrong secret", user: "api", pass: "nope"},
		{name: "other server's secret", user: "api", pass: url.QueryEscape(secret + "x")},
		{name: "unknown id", user: "ghost", pass: url.QueryEscape(secret)},
		{name: "bad escape", user: "api", pass: "%zz"},
		{name: "no credentials", noAuth: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/oauth2/introspect", nil)
			if !tt.noAuth {
				r.SetBasicAuth(tt.user, tt.pass)
			}
			got, ok := rs.Authenticate(r)
			if got != tt.want || ok != (tt.want != "") {
				t.Fatalf("Authenticate = %q, %v; want %q", got, ok, tt.want)
			}
		})
	}
}
