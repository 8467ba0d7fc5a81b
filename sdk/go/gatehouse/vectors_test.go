package gatehouse

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// Published test vectors, typed into testdata/ from the RFCs. A wrong digit
// anywhere makes a signature check below fail.

func loadVector(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// TestRFC8037AppendixA checks the Ed25519 vectors of RFC 8037 Appendix A
// against the SDK's signature layer (KeySource lookup + verifySignature).
func TestRFC8037AppendixA(t *testing.T) {
	var vec struct {
		Private    jose.JSONWebKey `json:"a1_private_key"`
		Public     jose.JSONWebKey `json:"a2_public_key"`
		Thumbprint string          `json:"a3_thumbprint"`
		Payload    string          `json:"a4_payload"`
		JWS        string          `json:"a4_jws"`
	}
	loadVector(t, "rfc8037_appendix_a.json", &vec)

	// A.1/A.2: the public key is the one derived from the private key.
	priv := vec.Private.Key.(ed25519.PrivateKey)
	if !priv.Public().(ed25519.PublicKey).Equal(vec.Public.Key) {
		t.Fatal("A.2 public key does not match A.1 private key")
	}
	// A.3: RFC 7638 thumbprint.
	tp, err := vec.Public.Thumbprint(crypto.SHA256)
	if err != nil || base64.RawURLEncoding.EncodeToString(tp) != vec.Thumbprint {
		t.Fatalf("A.3 thumbprint mismatch: %v", err)
	}
	// A.4: Ed25519 is deterministic, so signing with A.1 must reproduce the
	// published JWS byte for byte.
	if got := signRaw(t, jose.EdDSA, priv, nil, []byte(vec.Payload)); got != vec.JWS {
		t.Fatalf("A.4 signing:\n got %s\nwant %s", got, vec.JWS)
	}

	// A.4 through the SDK's signature layer. The RFC key has no "alg";
	// Gatehouse pins every key to one, so the test pins it to EdDSA.
	pub := vec.Public
	pub.KeyID, pub.Algorithm = "rfc8037", "EdDSA"
	keys, err := NewStaticKeySet(pub)
	if err != nil {
		t.Fatal(err)
	}
	key, err := keys.Key(context.Background(), "rfc8037")
	if err != nil {
		t.Fatal(err)
	}
	jws, err := jose.ParseSignedCompact(vec.JWS, supportedAlgorithms)
	if err != nil {
		t.Fatal(err)
	}
	payload, _, err := verifySignature(jws, key)
	if err != nil || string(payload) != vec.Payload {
		t.Fatalf("A.4 verification: %q, %v", payload, err)
	}

	// Every single-character change of the signature must fail. (The last
	// character is skipped: part of its bits are base64 padding, which Go's
	// non-strict decoder ignores, so some changes there decode to the same
	// signature bytes.)
	dot := strings.LastIndexByte(vec.JWS, '.')
	for i := dot + 1; i < len(vec.JWS)-1; i++ {
		c := byte('A')
		if vec.JWS[i] == 'A' {
			c = 'B'
		}
		bad := vec.JWS[:i] + string(c) + vec.JWS[i+1:]
		jws, err := jose.ParseSignedCompact(bad, supportedAlgorithms)
		if err != nil {
			continue
		}
		if _, _, err := verifySignature(jws, key); err == nil {
			t.Fatalf("modified signature at %d verified", i)
		}
	}
	// The same key, unpinned as published, is refused.
	unpinned := vec.Public
	if _, _, err := verifySignature(jws, &unpinned); err == nil {
		t.Fatal("key without alg was accepted")
	}
}

// TestRFC7515AppendixA3 checks the ES256 example of RFC 7515 Appendix A.3.
func TestRFC7515AppendixA3(t *testing.T) {
	var vec struct {
		Key     jose.JSONWebKey `json:"key"`
		Payload string          `json:"payload"`
		JWS     string          `json:"jws"`
	}
	loadVector(t, "rfc7515_appendix_a3.json", &vec)
	priv := vec.Key.Key.(*ecdsa.PrivateKey)
	pub := jose.JSONWebKey{Key: &priv.PublicKey, KeyID: "rfc7515-a3", Algorithm: "ES256"}
	keys, err := NewStaticKeySet(pub)
	if err != nil {
		t.Fatal(err)
	}
	key, err := keys.Key(context.Background(), "rfc7515-a3")
	if err != nil {
		t.Fatal(err)
	}
	jws, err := jose.ParseSignedCompact(vec.JWS, supportedAlgorithms)
	if err != nil {
		t.Fatal(err)
	}
	payload, _, err := verifySignature(jws, key)
	if err != nil || string(payload) != vec.Payload {
		t.Fatalf("A.3 verification: %q, %v", payload, err)
	}
	p := strings.Split(vec.JWS, ".")
	tampered := p[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(vec.Payload, "joe", "eve", 1))) + "." + p[2]
	jws, err = jose.ParseSignedCompact(tampered, supportedAlgorithms)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := verifySignature(jws, key); err == nil {
		t.Fatal("tampered A.3 payload verified")
	}
	// The full Verify refuses it as an access token: no kid, no typ, and
	// (as a JWT) long expired. Not a signature matter.
	v, err := NewVerifier(VerifierConfig{Issuer: "joe", Audience: "x", Keys: keys, Revocations: &fakeRevocations{}})
	if err != nil {
		t.Fatal(err)
	}
	mustReject(t, v, vec.JWS, ErrInvalidToken)
}

// TestRFC7520Section4_3 checks that the ES512 example of RFC 7520 §4.3 is a
// genuine signature (go-jose verifies it when ES512 is allowed) and that the
// SDK refuses it: ES512 is not on the allowlist, and no P-521 key can be
// pinned.
func TestRFC7520Section4_3(t *testing.T) {
	var vec struct {
		Key     jose.JSONWebKey `json:"key"`
		Payload string          `json:"payload"`
		JWS     string          `json:"jws"`
	}
	loadVector(t, "rfc7520_section4_3.json", &vec)
	pubKey := &vec.Key.Key.(*ecdsa.PrivateKey).PublicKey

	permissive, err := jose.ParseSignedCompact(vec.JWS, []jose.SignatureAlgorithm{jose.ES512})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := permissive.Verify(pubKey); err != nil || string(p) != vec.Payload {
		t.Fatalf("the vector does not verify with go-jose directly: %v", err)
	}

	// Refused by the allowlist at parse time.
	_, err = jose.ParseSignedCompact(vec.JWS, supportedAlgorithms)
	var unexpected *jose.ErrUnexpectedSignatureAlgorithm
	if !errors.As(err, &unexpected) || unexpected.Got != jose.ES512 {
		t.Fatalf("allowlist parse error = %v", err)
	}
	// Refused by the signature layer even when parsed permissively.
	pub := jose.JSONWebKey{Key: pubKey, KeyID: "bilbo.baggins@hobbiton.example", Algorithm: "ES512", Use: "sig"}
	if _, _, err := verifySignature(permissive, &pub); err == nil {
		t.Fatal("signature layer accepted ES512")
	}
	// No key set will hold the P-521 key.
	if _, err := NewStaticKeySet(pub); err == nil {
		t.Fatal("StaticKeySet accepted a P-521 key")
	}
	// And Verify refuses it, with a key source that would hand out the key.
	v, err := NewVerifier(VerifierConfig{Issuer: "x", Audience: "x", Revocations: &fakeRevocations{},
		Keys: keySourceFunc(func(context.Context, string) (*jose.JSONWebKey, error) { return &pub, nil })})
	if err != nil {
		t.Fatal(err)
	}
	err = mustReject(t, v, vec.JWS, ErrInvalidToken)
	if !strings.Contains(err.Error(), "algorithm not allowed") {
		t.Fatalf("err = %v", err)
	}
}
