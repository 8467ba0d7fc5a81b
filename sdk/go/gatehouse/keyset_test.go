package gatehouse

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// jwksServer serves a JWKS the test can change, and counts fetches.
type jwksServer struct {
	*httptest.Server
	fetches atomic.Int32

	mu           sync.Mutex
	body         []byte
	status       int
	cacheControl string
	gate         chan struct{} // if set, responses wait until it is closed
}

func newJWKSServer(t *testing.T, keys ...jose.JSONWebKey) *jwksServer {
	t.Helper()
	s := &jwksServer{status: http.StatusOK, cacheControl: "public, max-age=300"}
	s.setKeys(t, keys...)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		body, status, cc, gate := s.body, s.status, s.cacheControl, s.gate
		s.mu.Unlock()
		if gate != nil {
			<-gate
		}
		w.Header().Set("Cache-Control", cc)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) setKeys(t *testing.T, keys ...jose.JSONWebKey) {
	s.setBody(mustJSON(t, jose.JSONWebKeySet{Keys: keys}))
}

func (s *jwksServer) setBody(b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body = b
}

func (s *jwksServer) set(f func(s *jwksServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func newTestKeySet(srv *jwksServer, clock *fakeClock) *RemoteKeySet {
	return NewRemoteKeySet(srv.URL+"/.well-known/jwks.json", RemoteKeySetOptions{
		HTTPClient: srv.Client(), Now: clock.Now, MinRefetchInterval: 10 * time.Second,
	})
}

func TestRemoteKeySetFetchesLazily(t *testing.T) {
	k := newEd25519Key(t, "ed-1")
	srv := newJWKSServer(t, k.pub)
	s := newTestKeySet(srv, newFakeClock())
	if n := srv.fetches.Load(); n != 0 {
		t.Fatalf("%d fetches before first use", n)
	}
	got, err := s.Key(context.Background(), "ed-1")
	if err != nil || !samePublicKey(got.Key, k.pub.Key) {
		t.Fatalf("Key = %v, %v", got, err)
	}
	for range 10 {
		if _, err := s.Key(context.Background(), "ed-1"); err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}
}

func TestRemoteKeySetUnknownKidTriggersOneRefetch(t *testing.T) {
	clock := newFakeClock()
	k1, k2 := newEd25519Key(t, "k1"), newP256Key(t, "k2")
	srv := newJWKSServer(t, k1.pub)
	s := newTestKeySet(srv, clock)
	ctx := context.Background()
	if _, err := s.Key(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	srv.setKeys(t, k1.pub, k2.pub) // key rotation on the server

	// Within MinRefetchInterval of the last fetch: no refetch.
	if _, err := s.Key(ctx, "k2"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("err = %v", err)
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}
	clock.Advance(10 * time.Second)
	if _, err := s.Key(ctx, "k2"); err != nil {
		t.Fatal(err)
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
	// Another unknown kid right after: refused without a fetch.
	if _, err := s.Key(ctx, "k3"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("err = %v", err)
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
}

// TestAttackUnknownKidBurst: a flood of tokens with random kids must not
// turn into a flood of JWKS fetches.
func TestAttackUnknownKidBurst(t *testing.T) {
	clock := newFakeClock()
	k := newEd25519Key(t, "k1")
	srv := newJWKSServer(t, k.pub)
	s := newTestKeySet(srv, clock)
	if _, err := s.Key(context.Background(), "k1"); err != nil {
		t.Fatal(err)
	}
	burst := func(wantFetches int32, gated bool) {
		t.Helper()
		gate := make(chan struct{})
		if gated { // hold the fetch so that the burst really overlaps it
			srv.set(func(s *jwksServer) { s.gate = gate })
		}
		var wg sync.WaitGroup
		var unknown atomic.Int32
		for i := range 100 {
			wg.Go(func() {
				_, err := s.Key(context.Background(), "nope-"+string(rune('a'+i%26)))
				if errors.Is(err, ErrUnknownKey) {
					unknown.Add(1)
				}
			})
		}
		if gated {
			// Let the requests pile up on the single in-flight fetch.
			deadline := time.Now().Add(5 * time.Second)
			for srv.fetches.Load() < wantFetches && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			time.Sleep(20 * time.Millisecond)
			srv.set(func(s *jwksServer) { s.gate = nil })
			close(gate)
		}
		wg.Wait()
		if n := srv.fetches.Load(); n != wantFetches {
			t.Fatalf("%d fetches after burst, want %d", n, wantFetches)
		}
		if unknown.Load() != 100 {
			t.Fatalf("%d of 100 lookups reported ErrUnknownKey", unknown.Load())
		}
	}
	clock.Advance(10 * time.Second)
	burst(2, true)  // one refetch for the whole burst
	burst(2, false) // none within MinRefetchInterval
	clock.Advance(5 * time.Second)
	burst(2, false)
	clock.Advance(5 * time.Second)
	burst(3, true) // the next interval allows exactly one more
}

func TestRemoteKeySetOversizedJWKS(t *testing.T) {
	k := newEd25519Key(t, "k1")
	set := string(mustJSON(t, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{k.pub}}))
	pad := func(total int) []byte {
		prefix := `{"pad":"`
		rest := `",` + strings.TrimPrefix(set, "{")
		return []byte(prefix + strings.Repeat("x", total-len(prefix)-len(rest)) + rest)
	}
	for _, tc := range []struct {
		size int
		ok   bool
	}{{maxJWKSSize, true}, {maxJWKSSize + 1, false}, {8 << 20, false}} {
		srv := newJWKSServer(t)
		body := pad(tc.size)
		if len(body) != tc.size {
			t.Fatalf("body is %d bytes", len(body))
		}
		srv.setBody(body)
		_, err := newTestKeySet(srv, newFakeClock()).Key(context.Background(), "k1")
		if tc.ok != (err == nil) {
			t.Fatalf("size %d: err = %v", tc.size, err)
		}
		if !tc.ok && errors.Is(err, ErrUnknownKey) {
			t.Fatalf("size %d: a failed fetch reported an unknown key", tc.size)
		}
	}
}

func TestRemoteKeySetDropsUnusableKeys(t *testing.T) {
	ed := newEd25519Key(t, "ed")
	ec := newP256Key(t, "ec")
	ec.pub.Use = ""
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	other := newEd25519Key(t, "x")
	with := func(k jose.JSONWebKey, kid, alg, use string) jose.JSONWebKey {
		k.KeyID, k.Algorithm, k.Use = kid, alg, use
		return k
	}
	raw := []json.RawMessage{
		mustJSON(t, ed.pub),
		mustJSON(t, ec.pub),
		mustJSON(t, jose.JSONWebKey{Key: &rsaKey.PublicKey, KeyID: "rsa", Algorithm: "RS256", Use: "sig"}),
		mustJSON(t, jose.JSONWebKey{Key: &rsaKey.PublicKey, KeyID: "rsa-as-es256", Algorithm: "ES256"}),
		mustJSON(t, jose.JSONWebKey{Key: &p384.PublicKey, KeyID: "p384", Algorithm: "ES384"}),
		mustJSON(t, jose.JSONWebKey{Key: &p384.PublicKey, KeyID: "p384-as-es256", Algorithm: "ES256"}),
		mustJSON(t, jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "hmac", Algorithm: "HS256"}),
		mustJSON(t, with(other.pub, "enc", "EdDSA", "enc")),
		mustJSON(t, with(other.pub, "noalg", "", "sig")),
		mustJSON(t, with(other.pub, "liar", "ES256", "sig")),
		mustJSON(t, with(other.pub, "none", "none", "sig")),
		mustJSON(t, jose.JSONWebKey{Key: other.priv, KeyID: "private", Algorithm: "EdDSA"}),
		mustJSON(t, with(other.pub, "dup", "EdDSA", "sig")),
		mustJSON(t, with(ed.pub, "dup", "EdDSA", "sig")),
		mustJSON(t, with(other.pub, "", "EdDSA", "sig")),
		mustJSON(t, with(other.pub, "../x", "EdDSA", "sig")),
		json.RawMessage(`{"kty":"AKP","kid":"future","alg":"ML-DSA-44","pub":"AAAA"}`),
		json.RawMessage(`{"kty":"OKP","crv":"X25519","kid":"x25519","alg":"EdDSA","x":"hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo"}`),
		json.RawMessage(`"not a key"`),
	}
	srv := newJWKSServer(t)
	srv.setBody(mustJSON(t, map[string]any{"keys": raw}))
	s := newTestKeySet(srv, newFakeClock())
	for _, kid := range []string{"ed", "ec"} {
		if _, err := s.Key(context.Background(), kid); err != nil {
			t.Fatalf("%s: %v", kid, err)
		}
	}
	s.mu.Lock()
	kids := slices.Sorted(func(yield func(string) bool) {
		for k := range s.keys {
			if !yield(k) {
				return
			}
		}
	})
	s.mu.Unlock()
	if !slices.Equal(kids, []string{"ec", "ed"}) {
		t.Fatalf("kept keys %q, want only ec and ed", kids)
	}
}

func TestRemoteKeySetMaxAgeAndFailedRefetch(t *testing.T) {
	clock := newFakeClock()
	k := newEd25519Key(t, "k1")
	srv := newJWKSServer(t, k.pub)
	srv.set(func(s *jwksServer) { s.cacheControl = "public, max-age=60" })
	s := newTestKeySet(srv, clock)
	ctx := context.Background()
	if _, err := s.Key(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(59 * time.Second)
	if _, err := s.Key(ctx, "k1"); err != nil || srv.fetches.Load() != 1 {
		t.Fatalf("within max-age: %v, %d fetches", err, srv.fetches.Load())
	}
	// max-age lapsed: refetch; the server fails; the old set stays.
	srv.set(func(s *jwksServer) { s.status = http.StatusInternalServerError })
	clock.Advance(2 * time.Second)
	if _, err := s.Key(ctx, "k1"); err != nil {
		t.Fatalf("old key lost after failed refetch: %v", err)
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
	// A new key from the server, once it recovers, after the interval.
	k2 := newEd25519Key(t, "k2")
	srv.set(func(s *jwksServer) { s.status = http.StatusOK })
	srv.setKeys(t, k2.pub)
	clock.Advance(10 * time.Second)
	if _, err := s.Key(ctx, "k2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Key(ctx, "k1"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("removed key still served: %v", err)
	}
}

func TestRemoteKeySetUnavailable(t *testing.T) {
	srv := newJWKSServer(t)
	srv.set(func(s *jwksServer) { s.status = http.StatusServiceUnavailable })
	s := newTestKeySet(srv, newFakeClock())
	_, err := s.Key(context.Background(), "k1")
	if err == nil || errors.Is(err, ErrUnknownKey) {
		t.Fatalf("err = %v; want a fetch error", err)
	}
	// A well-formed empty set is authoritative: every key was withdrawn.
	srv.set(func(s *jwksServer) { s.status = http.StatusOK })
	srv.setBody([]byte(`{"keys":[]}`))
	s = newTestKeySet(srv, newFakeClock())
	if _, err := s.Key(context.Background(), "k1"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("err = %v, want ErrUnknownKey", err)
	}
}

func TestRemoteKeySetCallerCancellation(t *testing.T) {
	k := newEd25519Key(t, "k1")
	srv := newJWKSServer(t, k.pub)
	gate := make(chan struct{})
	srv.set(func(s *jwksServer) { s.gate = gate })
	defer close(gate)
	s := newTestKeySet(srv, newFakeClock())
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.Key(ctx, "k1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}

func TestCacheMaxAge(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"":                              0,
		"public, max-age=300":           300 * time.Second,
		"max-age=60, public":            60 * time.Second,
		"MAX-AGE=5":                     5 * time.Second,
		`max-age="7"`:                   7 * time.Second,
		"max-age=-1":                    0,
		"max-age=abc":                   0,
		"no-store, max-age=60":          0,
		"max-age=60, no-cache":          0,
		"max-age=99999999999":           maxJWKSAge,
		"max-age=999999999999999999999": 0,
	} {
		h := http.Header{}
		if in != "" {
			h.Set("Cache-Control", in)
		}
		if got := cacheMaxAge(h); got != want {
			t.Errorf("%q: %v, want %v", in, got, want)
		}
	}
}

// TestAttackWithdrawnKeyNotTrustedForeverWhenJWKSUnreachable: after the
// max-age lapses, a set that cannot be refreshed is used for at most
// maxStaleKeys; a withdrawn (say, stolen) key must not stay trusted because
// the JWKS is down.
func TestAttackWithdrawnKeyNotTrustedForeverWhenJWKSUnreachable(t *testing.T) {
	clock := newFakeClock()
	k := newEd25519Key(t, "k1")
	srv := newJWKSServer(t, k.pub)
	srv.set(func(s *jwksServer) { s.cacheControl = "public, max-age=60" })
	s := newTestKeySet(srv, clock)
	ctx := context.Background()
	if _, err := s.Key(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	srv.set(func(s *jwksServer) { s.status = http.StatusServiceUnavailable })
	clock.Advance(30 * time.Minute)
	if _, err := s.Key(ctx, "k1"); err != nil {
		t.Fatalf("within the stale bound: %v", err)
	}
	clock.Advance(31 * time.Minute)
	if _, err := s.Key(ctx, "k1"); err == nil {
		t.Fatal("key still trusted an hour after the JWKS max-age with every refetch failing")
	}
}
