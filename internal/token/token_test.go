package token

import (
	"bytes"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/gatehouse-auth/gatehouse/internal/id"
)

func TestSuccessorIsDeterministicKeyedAndWellFormed(t *testing.T) {
	k1, err := DeriveSuccessorKey(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := DeriveSuccessorKey(bytes.Repeat([]byte{2}, 32))
	if bytes.Equal(k1, k2) {
		t.Fatal("different KEKs derived the same successor key")
	}
	s1 := &Service{cfg: Config{SuccessorKey: k1}}
	s2 := &Service{cfg: Config{SuccessorKey: k2}}
	tok := id.NewSecret(RefreshPrefix)
	next := s1.successor(tok)
	if next != s1.successor(tok) {
		t.Fatal("successor is not deterministic: a grace replay would fork the family")
	}
	if next == tok || next == s1.successor(id.NewSecret(RefreshPrefix)) {
		t.Fatal("successor collides")
	}
	if s2.successor(tok) == next {
		t.Fatal("successor does not depend on the server key: anyone holding a token could compute the next one")
	}
	if _, ok := id.ParseSecret(RefreshPrefix, string(next)); !ok {
		t.Fatalf("successor %q is not a well-formed refresh token", next)
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
