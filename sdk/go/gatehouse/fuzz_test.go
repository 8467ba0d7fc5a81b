package gatehouse

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// deterministicKeys returns fixed Ed25519 and P-256 keys (kids "ed-1" and
// "ec-1") derived from label, so that every fuzzing worker process uses the
// same keys and a corpus token valid in one is valid in all.
func deterministicKeys(t testing.TB, label string) (testKey, testKey) {
	t.Helper()
	seed := sha256.Sum256([]byte(label + "/ed25519"))
	edPriv := ed25519.NewKeyFromSeed(seed[:])
	ed := testKey{alg: jose.EdDSA, kid: "ed-1", priv: edPriv,
		pub: jose.JSONWebKey{Key: edPriv.Public(), KeyID: "ed-1", Algorithm: "EdDSA", Use: "sig"}}
	d := sha256.Sum256([]byte(label + "/p256"))
	ecPriv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d[:])
	if err != nil {
		t.Fatal(err)
	}
	ec := testKey{alg: jose.ES256, kid: "ec-1", priv: ecPriv,
		pub: jose.JSONWebKey{Key: &ecPriv.PublicKey, KeyID: "ec-1", Algorithm: "ES256", Use: "sig"}}
	return ed, ec
}

func fuzzVerifier(t testing.TB, label string, now time.Time) (*Verifier, testKey, testKey) {
	ed, ec := deterministicKeys(t, label)
	keys, err := NewStaticKeySet(ed.pub, ec.pub)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(VerifierConfig{Issuer: testIssuer, Audience: testAudience, Keys: keys,
		Revocations: &fakeRevocations{}, CacheSize: -1, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return v, ed, ec
}

// FuzzVerify: arbitrary token strings never panic, never verify under keys
// that did not sign them, and the only tokens that verify under the right
// keys carry claims this test signed.
func FuzzVerify(f *testing.F) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	v, ed, ec := fuzzVerifier(f, "gatehouse-fuzz", now)
	wrong, _, _ := fuzzVerifier(f, "attacker", now) // same kids, other keys

	claims := validClaims(now)
	signed := map[string]bool{}
	for i, k := range []testKey{ed, ec} {
		c := claims.with("jti", "fuzz-"+string(rune('a'+i)))
		signed[c["jti"].(string)] = true
		tok := signRaw(f, k.alg, k.priv, atHeader(k.kid), mustJSON(f, c))
		f.Add(tok)
		p := strings.Split(tok, ".")
		f.Add(p[0] + "." + p[1] + ".")
		f.Add(p[0] + ".." + p[2])
		f.Add(`{"protected":"` + p[0] + `","payload":"` + p[1] + `","signature":"` + p[2] + `"}`)
	}
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("")
	f.Add("...")

	f.Fuzz(func(t *testing.T, token string) {
		ctx := context.Background()
		if c, err := v.Verify(ctx, token); err == nil {
			if !signed[c.ID] || c.Issuer != testIssuer || c.SessionID != "ses_1" {
				t.Fatalf("verified claims nobody signed: %+v", c)
			}
		}
		if c, err := wrong.Verify(ctx, token); err == nil {
			t.Fatalf("verified without the signing key: %+v", c)
		}
	})
}
