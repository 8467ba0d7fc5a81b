package gatehouse

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

const (
	testIssuer   = "https://auth.example.test"
	testAudience = "api://orders"
)

// fakeClock is a settable clock for Now options.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testKey is a freshly generated signing key and its public JWK.
type testKey struct {
	alg  jose.SignatureAlgorithm
	kid  string
	priv crypto.Signer
	pub  jose.JSONWebKey
}

func newEd25519Key(t testing.TB, kid string) testKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{alg: jose.EdDSA, kid: kid, priv: priv,
		pub: jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: "EdDSA", Use: "sig"}}
}

func newP256Key(t testing.TB, kid string) testKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{alg: jose.ES256, kid: kid, priv: priv,
		pub: jose.JSONWebKey{Key: &priv.PublicKey, KeyID: kid, Algorithm: "ES256", Use: "sig"}}
}

// header is a set of JOSE header parameters added to a token.
type header map[jose.HeaderKey]any

// atHeader is the header Gatehouse puts on access tokens, besides alg.
func atHeader(kid string) header {
	return header{"kid": kid, "typ": "at+jwt"}
}

// signRaw signs payload as a compact JWS with the given algorithm, key and
// header parameters (alg is set by go-jose).
func signRaw(t testing.TB, alg jose.SignatureAlgorithm, key any, h header, payload []byte) string {
	t.Helper()
	opts := &jose.SignerOptions{}
	for k, v := range h {
		opts.WithHeader(k, v)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// claimSet is a mutable set of claims for building tokens.
type claimSet map[string]any

func validClaims(now time.Time) claimSet {
	return claimSet{
		"iss":       testIssuer,
		"sub":       "usr_123",
		"aud":       []string{testAudience, "api://other"},
		"exp":       now.Add(5 * time.Minute).Unix(),
		"iat":       now.Add(-time.Minute).Unix(),
		"nbf":       now.Add(-time.Minute).Unix(),
		"auth_time": now.Add(-2 * time.Minute).Unix(),
		"jti":       "jti_abc",
		"sid":       "ses_1",
		"amr":       []string{"pwd", "otp"},
		"acr":       "aal2",
		"client_id": "cli_web",
	}
}

func (c claimSet) with(k string, v any) claimSet {
	out := maps.Clone(c)
	out[k] = v
	return out
}

func (c claimSet) without(k string) claimSet {
	out := maps.Clone(c)
	delete(out, k)
	return out
}

// fakeRevocations is a RevocationChecker controlled by the test.
type fakeRevocations struct {
	mu      sync.Mutex
	revoked map[string]bool
	err     error
	calls   int
}

func (r *fakeRevocations) Revoked(_ context.Context, sid string) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	return r.revoked[sid], r.err
}

func (r *fakeRevocations) revoke(sid string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.revoked == nil {
		r.revoked = map[string]bool{}
	}
	r.revoked[sid] = true
}

// keySourceFunc adapts a function to KeySource.
type keySourceFunc func(ctx context.Context, kid string) (*jose.JSONWebKey, error)

func (f keySourceFunc) Key(ctx context.Context, kid string) (*jose.JSONWebKey, error) {
	return f(ctx, kid)
}

// spyKeySource records whether it was asked for a key.
type spyKeySource struct {
	mu    sync.Mutex
	inner KeySource
	kids  []string
}

func (s *spyKeySource) Key(ctx context.Context, kid string) (*jose.JSONWebKey, error) {
	s.mu.Lock()
	s.kids = append(s.kids, kid)
	s.mu.Unlock()
	return s.inner.Key(ctx, kid)
}

func (s *spyKeySource) calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.kids)
}

// fixture is a Verifier over two fresh keys (Ed25519 "ed-1", P-256 "ec-1"),
// a fake clock and fake revocations.
type fixture struct {
	clock *fakeClock
	ed    testKey
	ec    testKey
	keys  *spyKeySource
	revs  *fakeRevocations
	v     *Verifier
}

func newFixture(t testing.TB, mods ...func(*VerifierConfig)) *fixture {
	t.Helper()
	f := &fixture{
		clock: newFakeClock(),
		ed:    newEd25519Key(t, "ed-1"),
		ec:    newP256Key(t, "ec-1"),
		revs:  &fakeRevocations{},
	}
	static, err := NewStaticKeySet(f.ed.pub, f.ec.pub)
	if err != nil {
		t.Fatal(err)
	}
	f.keys = &spyKeySource{inner: static}
	cfg := VerifierConfig{
		Issuer:      testIssuer,
		Audience:    testAudience,
		Keys:        f.keys,
		Revocations: f.revs,
		Now:         f.clock.Now,
	}
	for _, m := range mods {
		m(&cfg)
	}
	f.v, err = NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// token signs claims with k and Gatehouse's usual header.
func (f *fixture) token(t testing.TB, k testKey, c claimSet) string {
	t.Helper()
	return signRaw(t, k.alg, k.priv, atHeader(k.kid), mustJSON(t, c))
}

func (f *fixture) claims() claimSet { return validClaims(f.clock.Now()) }

// mustReject asserts that Verify fails with an error matching want.
func mustReject(t *testing.T, v *Verifier, token string, want error) error {
	t.Helper()
	c, err := v.Verify(context.Background(), token)
	if err == nil {
		t.Fatalf("Verify accepted the token: %+v", c)
	}
	if c != nil {
		t.Errorf("Verify returned claims with an error")
	}
	if !errors.Is(err, want) {
		t.Fatalf("Verify error = %v, want errors.Is(_, %v)", err, want)
	}
	t.Logf("refused: %v", err)
	return err
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
