package signing

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-auth/gatehouse/internal/id"
	"github.com/gatehouse-auth/gatehouse/internal/secrets"
	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// Supported algorithms of signing keys.
const (
	EdDSA = "EdDSA" // Ed25519
	ES256 = "ES256" // ECDSA P-256 with SHA-256
)

// tokenType is the JWS typ header of access tokens (RFC 9068).
const tokenType = "at+jwt"

func checkAlgorithm(alg string) error {
	if alg != EdDSA && alg != ES256 {
		return fmt.Errorf("signing: unsupported algorithm %q (want %s or %s)", alg, EdDSA, ES256)
	}
	return nil
}

// newestKEK returns the KEK with the highest version: the one that seals
// new keys.
func newestKEK(keks []secrets.KEK) (secrets.KEK, error) {
	if len(keks) == 0 {
		return secrets.KEK{}, errors.New("signing: no key-encryption key loaded")
	}
	newest := keks[0]
	for _, k := range keks[1:] {
		if k.Version > newest.Version {
			newest = k
		}
	}
	return newest, nil
}

// newKey generates a key of the algorithm, with its private half sealed
// under the newest KEK.
func newKey(alg string, keks []secrets.KEK, createdAt, activatesAt time.Time) (*store.SigningKey, error) {
	if err := checkAlgorithm(alg); err != nil {
		return nil, err
	}
	kek, err := newestKEK(keks)
	if err != nil {
		return nil, err
	}
	var priv crypto.Signer
	switch alg {
	case EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		return nil, fmt.Errorf("signing: generate %s key: %w", alg, err)
	}
	kid := id.New("k")
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("signing: encode key %s: %w", kid, err)
	}
	defer clear(der)
	sealed, err := seal(kek, kid, alg, der)
	if err != nil {
		return nil, err
	}
	pub, err := json.Marshal(jose.JSONWebKey{Key: priv.Public(), KeyID: kid, Algorithm: alg, Use: "sig"})
	if err != nil {
		return nil, fmt.Errorf("signing: encode public key %s: %w", kid, err)
	}
	return &store.SigningKey{
		ID:            kid,
		Algorithm:     alg,
		PublicJWK:     pub,
		PrivateSealed: sealed,
		KEKVersion:    kek.Version,
		CreatedAt:     createdAt,
		ActivatesAt:   activatesAt,
	}, nil
}

// additionalData binds a sealed private key to its row: a blob moved to
// another row (other kid or algorithm) fails to open.
func additionalData(kid, alg string) []byte {
	return fmt.Appendf(nil, "gatehouse signing key\x00%s\x00%s", kid, alg)
}

// seal encrypts the PKCS#8 DER of a private key: nonce || ciphertext || tag.
func seal(kek secrets.KEK, kid, alg string, der []byte) ([]byte, error) {
	sealed, err := kek.Seal(der, additionalData(kid, alg))
	if err != nil {
		return nil, fmt.Errorf("signing: seal key %s with KEK version %d: %w", kid, kek.Version, err)
	}
	return sealed, nil
}

// unseal opens the private half of k with the KEK of its version and
// parses it. Errors name the kid and KEK version, never key material.
func unseal(k *store.SigningKey, keks []secrets.KEK) (crypto.Signer, error) {
	kek, ok := secrets.FindKEK(keks, k.KEKVersion)
	if !ok {
		return nil, fmt.Errorf("signing: key %s is sealed with KEK version %d, which is not loaded (is keys/kek-v%d.key missing from the data directory?)", k.ID, k.KEKVersion, k.KEKVersion)
	}
	der, err := kek.Open(k.PrivateSealed, additionalData(k.ID, k.Algorithm))
	if err != nil {
		return nil, fmt.Errorf("signing: cannot open the private half of key %s with KEK version %d: wrong keys/kek-v%d.key (every replica needs the same one), or the row was altered", k.ID, k.KEKVersion, k.KEKVersion)
	}
	defer clear(der)
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("signing: key %s: the private half is not valid PKCS#8", k.ID)
	}
	switch priv := parsed.(type) {
	case ed25519.PrivateKey:
		if k.Algorithm == EdDSA {
			return priv, nil
		}
	case *ecdsa.PrivateKey:
		if k.Algorithm == ES256 && priv.Curve == elliptic.P256() {
			return priv, nil
		}
	}
	return nil, fmt.Errorf("signing: key %s: the private half is a %T, not a %s key", k.ID, parsed, k.Algorithm)
}

// publicKey parses and checks the published half of k: a public key of
// k's algorithm, with k's kid, alg and use "sig".
func publicKey(k *store.SigningKey) (*jose.JSONWebKey, error) {
	var jwk jose.JSONWebKey
	if err := json.Unmarshal(k.PublicJWK, &jwk); err != nil {
		return nil, fmt.Errorf("signing: key %s: invalid public JWK: %w", k.ID, err)
	}
	if !jwk.IsPublic() || !jwk.Valid() {
		return nil, fmt.Errorf("signing: key %s: the stored JWK is not a valid public key", k.ID)
	}
	if jwk.KeyID != k.ID || jwk.Algorithm != k.Algorithm || jwk.Use != "sig" {
		return nil, fmt.Errorf("signing: key %s: the stored JWK names kid %q, alg %q, use %q", k.ID, jwk.KeyID, jwk.Algorithm, jwk.Use)
	}
	switch pub := jwk.Key.(type) {
	case ed25519.PublicKey:
		if k.Algorithm == EdDSA {
			return &jwk, nil
		}
	case *ecdsa.PublicKey:
		if k.Algorithm == ES256 && pub.Curve == elliptic.P256() {
			return &jwk, nil
		}
	}
	return nil, fmt.Errorf("signing: key %s: the stored JWK holds a %T, not a %s key", k.ID, jwk.Key, k.Algorithm)
}

// loadedKey is a key ready to sign and to be published.
type loadedKey struct {
	id, alg     string
	activatesAt time.Time
	public      *jose.JSONWebKey // public half; never modified after load
	publicJSON  []byte           // its JWK, as served in the JWKS
	signer      jose.Signer
}

// open checks k's public half, unseals its private half and builds its
// signer.
func open(k *store.SigningKey, keks []secrets.KEK) (*loadedKey, error) {
	if err := checkAlgorithm(k.Algorithm); err != nil {
		return nil, fmt.Errorf("signing: key %s: %w", k.ID, err)
	}
	pub, err := publicKey(k)
	if err != nil {
		return nil, err
	}
	priv, err := unseal(k, keks)
	if err != nil {
		return nil, err
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if !priv.Public().(equaler).Equal(pub.Key) {
		return nil, fmt.Errorf("signing: key %s: the private half does not match the published public key", k.ID)
	}
	alg := jose.SignatureAlgorithm(k.Algorithm)
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: priv, KeyID: k.ID, Algorithm: k.Algorithm}},
		(&jose.SignerOptions{}).WithType(tokenType),
	)
	if err != nil {
		return nil, fmt.Errorf("signing: key %s: %w", k.ID, err)
	}
	publicJSON, err := json.Marshal(pub)
	if err != nil {
		return nil, fmt.Errorf("signing: key %s: encode public key: %w", k.ID, err)
	}
	return &loadedKey{id: k.ID, alg: k.Algorithm, activatesAt: k.ActivatesAt, public: pub, publicJSON: publicJSON, signer: signer}, nil
}
