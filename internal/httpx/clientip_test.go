package httpx

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestRealIP(t *testing.T) {
	trusted, err := ParseTrustedProxies([]string{"10.0.0.0/8", "192.0.2.7", "2001:db8:f::/48", "::ffff:198.51.100.9"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		peer    string
		headers map[string][]string
		trusted TrustedProxies
		want    string
	}{
		{"no proxies: the peer, headers ignored", "203.0.113.5:1234", map[string][]string{"X-Forwarded-For": {"1.2.3.4"}}, nil, "203.0.113.5"},
		{"untrusted peer: headers ignored (spoofing)", "203.0.113.5:1234", map[string][]string{"X-Forwarded-For": {"1.2.3.4"}}, trusted, "203.0.113.5"},
		{"trusted peer, one hop", "10.1.2.3:80", map[string][]string{"X-Forwarded-For": {"198.51.100.1"}}, trusted, "198.51.100.1"},
		{"client-supplied left part is skipped", "10.1.2.3:80", map[string][]string{"X-Forwarded-For": {"6.6.6.6, 198.51.100.1"}}, trusted, "198.51.100.1"},
		{"through two trusted proxies", "10.1.2.3:80", map[string][]string{"X-Forwarded-For": {"6.6.6.6, 198.51.100.1, 192.0.2.7"}}, trusted, "198.51.100.1"},
		{"several header lines, in order", "10.1.2.3:80", map[string][]string{"X-Forwarded-For": {"6.6.6.6", "198.51.100.1, 10.9.9.9"}}, trusted, "198.51.100.1"},
		{"garbage hop stops at the last known", "10.1.2.3:80", map[string][]string{"X-Forwarded-For": {"198.51.100.1, nonsense"}}, trusted, "10.1.2.3"},
		{"empty header: the proxy", "10.1.2.3:80", map[string][]string{"X-Forwarded-For": {""}}, trusted, "10.1.2.3"},
		{"no header: the proxy", "10.1.2.3:80", nil, trusted, "10.1.2.3"},
		{"all hops trusted: the leftmost", "10.1.2.3:80", map[string][]string{"X-Forwarded-For": {"10.0.0.1, 10.0.0.2"}}, trusted, "10.0.0.1"},
		{"Forwarded wins over X-Forwarded-For", "10.1.2.3:80", map[string][]string{"Forwarded": {`for=198.51.100.2;proto=https`}, "X-Forwarded-For": {"6.6.6.6"}}, trusted, "198.51.100.2"},
		{"Forwarded, quoted IPv6 with a port", "[2001:db8:f::1]:443", map[string][]string{"Forwarded": {`for=6.6.6.6, For="[2001:db8:cafe::17]:4711"`}}, trusted, "2001:db8:cafe::17"},
		{"Forwarded, obfuscated hop stops", "10.1.2.3:80", map[string][]string{"Forwarded": {`for=198.51.100.2, for=_hidden`}}, trusted, "10.1.2.3"},
		{"Forwarded, element without for", "10.1.2.3:80", map[string][]string{"Forwarded": {`proto=https`}}, trusted, "10.1.2.3"},
		{"IPv4-mapped peer matches an IPv4 entry", "[::ffff:192.0.2.7]:80", map[string][]string{"X-Forwarded-For": {"198.51.100.3"}}, trusted, "198.51.100.3"},
		{"IPv4-mapped hop is unmapped", "10.1.2.3:80", map[string][]string{"X-Forwarded-For": {"::ffff:198.51.100.4"}}, trusted, "198.51.100.4"},
		{"hop with a port", "10.1.2.3:80", map[string][]string{"X-Forwarded-For": {"198.51.100.5:5555"}}, trusted, "198.51.100.5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.peer
			for k, vs := range tc.headers {
				for _, v := range vs {
					r.Header.Add(k, v)
				}
			}
			var got netip.Addr
			RealIP(tc.trusted)(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got = ClientIP(r) })).ServeHTTP(httptest.NewRecorder(), r)
			if got.String() != tc.want {
				t.Errorf("client %s, want %s", got, tc.want)
			}
		})
	}
}

func TestParseTrustedProxiesRefuses(t *testing.T) {
	for _, bad := range []string{"", "10.0.0.0/33", "example.com", "10.0.0.1/8x"} {
		if _, err := ParseTrustedProxies([]string{bad}); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// FuzzRealIP: whatever the forwarding headers say, the client is the peer
// or an address the headers named, never an invalid address when the peer
// is valid, and an untrusted peer is always itself.
func FuzzRealIP(f *testing.F) {
	f.Add("10.0.0.1:80", "198.51.100.1, 10.0.0.2", "")
	f.Add("10.0.0.1:80", "", `for="[2001:db8::1]:80";proto=http, for=_x`)
	f.Add("203.0.113.1:80", "1.1.1.1", "for=1.1.1.1")
	trusted, _ := ParseTrustedProxies([]string{"10.0.0.0/8"})
	f.Fuzz(func(t *testing.T, peer, xff, fwd string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = peer
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		if fwd != "" {
			r.Header.Set("Forwarded", fwd)
		}
		var got netip.Addr
		RealIP(trusted)(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got = ClientIP(r) })).ServeHTTP(httptest.NewRecorder(), r)
		p := peerIP(r)
		if p.IsValid() && !got.IsValid() {
			t.Fatalf("peer %s gave no client (xff %q, fwd %q)", p, xff, fwd)
		}
		if p.IsValid() && !trusted.contains(p) && got != p {
			t.Fatalf("untrusted peer %s became %s", p, got)
		}
	})
}
