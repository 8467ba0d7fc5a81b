package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"log/slog"
	"regexp"
)

// KEK is one version of the key-encryption key: 32 bytes for AES-256-GCM,
// used to seal the private halves of the signing keys stored in the
// database. The newest version seals new keys; older versions are kept to
// open keys sealed under them.
//
// A new version is added by writing 32 random bytes, base64-encoded, to
// keys/kek-v<N+1>.key (mode 0600) on every replica; nothing re-seals the
// keys sealed under older versions, so keep those files until every key
// they sealed has expired.
type KEK struct {
	Version int
	Key     []byte
}

// String redacts the key, so a KEK printed by accident does not leak it.
func (k KEK) String() string { return fmt.Sprintf("KEK v%d [REDACTED]", k.Version) }

// LogValue redacts the key in log/slog output.
func (k KEK) LogValue() slog.Value {
	return slog.GroupValue(slog.Int("version", k.Version), slog.String("key", "[REDACTED]"))
}

var keks = family{prefix: "kek", pattern: regexp.MustCompile(`^kek-v([1-9][0-9]{0,5})\.key$`), strict: true}

// LoadKEKs reads every keys/kek-vN.key under dataDir, generating kek-v1.key
// if there is none. Versions are returned in ascending order: the last one
// is the newest, the one that seals new keys.
//
// Unlike the peppers, a KEK file readable by group or others, or holding
// anything but exactly 32 base64-encoded bytes, is refused with an error.
// For PostgreSQL deployments every replica and the CLI must see the same
// files: a replica that generated its own kek-v1.key cannot open the keys
// the others sealed.
func LoadKEKs(dataDir string, log *slog.Logger) ([]KEK, error) {
	keys, err := keks.load(dataDir, "generated key-encryption key", log)
	if err != nil {
		return nil, err
	}
	out := make([]KEK, len(keys))
	for i, k := range keys {
		out[i] = KEK{Version: k.version, Key: k.key}
	}
	return out, nil
}

// Seal encrypts plaintext with AES-256-GCM under k: a random 96-bit nonce,
// then the ciphertext and tag. aad binds the result to its place (a row's
// id): opened with other aad, it fails.
func (k KEK) Seal(plaintext, aad []byte) ([]byte, error) {
	aead, err := k.aead()
	if err != nil {
		return nil, err
	}
	return aead.Seal(nil, nil, plaintext, aad), nil
}

// Open reverses Seal. It fails on a wrong key, altered bytes or other aad.
func (k KEK) Open(sealed, aad []byte) ([]byte, error) {
	aead, err := k.aead()
	if err != nil {
		return nil, err
	}
	return aead.Open(nil, nil, sealed, aad)
}

func (k KEK) aead() (cipher.AEAD, error) {
	if len(k.Key) != 32 {
		return nil, fmt.Errorf("secrets: a key-encryption key must be 32 bytes, not %d", len(k.Key))
	}
	block, err := aes.NewCipher(k.Key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCMWithRandomNonce(block)
}

// FindKEK returns the KEK of the given version.
func FindKEK(keks []KEK, version int) (KEK, bool) {
	for _, k := range keks {
		if k.Version == version {
			return k, true
		}
	}
	return KEK{}, false
}
