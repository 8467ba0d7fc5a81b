package storetest

import (
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

var signingKeysTests = []storeTest{
	{"Empty", testNoSigningKeys},
	{"CreateAndList", testCreateAndListSigningKeys},
	{"CreateConflict", testCreateSigningKeyConflict},
	{"Bytes", testSigningKeyBytes},
}

func testNoSigningKeys(t *testing.T, s store.Store) {
	if ks := mustListSigningKeys(t, s); len(ks) != 0 {
		t.Errorf("ListSigningKeys on an empty store = %d keys, want none", len(ks))
	}
}

// testCreateAndListSigningKeys creates keys out of order: the list is by
// ActivatesAt, as stored (microseconds), then by ID in byte order.
func testCreateAndListSigningKeys(t *testing.T, s store.Store) {
	mk := func(id string, activates time.Duration) *store.SigningKey {
		return newSigningKey(id, base.Add(activates))
	}
	var (
		late   = mk("a-late", 48*time.Hour)
		tieB   = mk("tie-b", 24*time.Hour)
		tieA   = mk("tie-a", 24*time.Hour)
		first  = mk("z-first", -24*time.Hour)
		caseK2 = mk("K2", time.Hour) // 'K' sorts before 'k' bytewise
		casek1 = mk("k1", time.Hour)
		// Both activate within one microsecond: stored equal, so the id
		// decides, not the nanoseconds.
		subY = mk("sub-y", 2*time.Hour+100*time.Nanosecond)
		subX = mk("sub-x", 2*time.Hour+900*time.Nanosecond)
	)
	es := mk("es256", 36*time.Hour)
	es.Algorithm = "ES256"
	es.PublicJWK = []byte(`{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"es256"}`)
	es.KEKVersion = 3
	for _, k := range []*store.SigningKey{late, tieB, es, tieA, subY, first, casek1, subX, caseK2} {
		mustCreateSigningKey(t, s, k)
	}
	want := wantSigningKeys(first, caseK2, casek1, subX, subY, tieA, tieB, es, late)
	if d := diffKeys(want, mustListSigningKeys(t, s)); d != "" {
		t.Errorf("ListSigningKeys (-want +got):\n%s", d)
	}
}

func testCreateSigningKeyConflict(t *testing.T, s store.Store) {
	orig := mustCreateSigningKey(t, s, newSigningKey("k1", base))
	for _, tc := range []struct {
		name string
		k    *store.SigningKey
	}{
		{"same key again", newSigningKey("k1", base)},
		{"same id, other key", func() *store.SigningKey {
			k := newSigningKey("k1", base.Add(time.Hour))
			k.Algorithm, k.PrivateSealed, k.KEKVersion = "ES256", tokenHash("other sealed key"), 2
			return k
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, "CreateSigningKey", s.SigningKeys().CreateSigningKey(t.Context(), tc.k), store.ErrConflict)
			if d := diffKeys(wantSigningKeys(orig), mustListSigningKeys(t, s)); d != "" {
				t.Errorf("keys after the rejected insert (-want +got):\n%s", d)
			}
		})
	}
}

// testSigningKeyBytes checks the sealed private half comes back byte for
// byte and the public JWK as the same JSON value.
func testSigningKeyBytes(t *testing.T, s store.Store) {
	allBytes := make([]byte, 256)
	for i := range allBytes {
		allBytes[i] = byte(i)
	}
	for i, tc := range []struct {
		name   string
		jwk    string
		sealed []byte
	}{
		{"every byte value", `{"kty":"OKP","crv":"Ed25519","x":"AAAA"}`, allBytes},
		{"leading NUL", `{"kty":"OKP"}`, []byte{0, 0, 1}},
		{"one byte", `{"kty":"OKP"}`, []byte{0xff}},
		{"JWK with space and nesting", "{\n  \"kty\": \"EC\",\n  \"key_ops\": [\"verify\"],\n  \"ext\": true,\n  \"x5c\": []\n}", tokenHash("sealed")},
		{"JWK with escapes and unicode", `{"kid":"k\u00e9y \"q\" \\ 🔑 山","use":"sig","note":"<&>"}`, tokenHash("sealed")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := newSigningKey(string(rune('a'+i)), base.Add(time.Duration(i)*time.Hour))
			k.PublicJWK, k.PrivateSealed, k.KEKVersion = []byte(tc.jwk), tc.sealed, 1_000_000+i
			mustCreateSigningKey(t, s, k)
			got := mustSigningKey(t, s, k.ID)
			if d := diffKeys(wantSigningKeys(k), []*store.SigningKey{got}); d != "" {
				t.Errorf("stored key (-want +got):\n%s", d)
			}
		})
	}
}
