// Package id owns identifiers and bearer secrets: public record ids with a
// typed prefix ("usr_…", "ses_…"), and opaque secrets ("ghs_…") that are
// compared and stored only as hashes.
package id

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"log/slog"
	"strings"
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// New returns prefix + "_" + 26 lower-case base32 characters of 128 random
// bits. Ids are not secrets, but they are unguessable so that knowing one
// never helps an attacker enumerate another.
func New(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return prefix + "_" + strings.ToLower(b32.EncodeToString(b[:]))
}

// Secret is a bearer secret as handed to a client. Its String method hides
// the value so it cannot leak into logs by accident.
type Secret string

// String redacts the secret.
func (Secret) String() string { return "[REDACTED]" }

// LogValue redacts the secret in log/slog output.
func (Secret) LogValue() slog.Value { return slog.StringValue("[REDACTED]") }

// NewSecret returns prefix + "_" + base64url of 256 random bits.
func NewSecret(prefix string) Secret {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return Secret(prefix + "_" + base64.RawURLEncoding.EncodeToString(b[:]))
}

// SecretLen is the length of a secret made by NewSecret with a 3-letter prefix.
const SecretLen = 3 + 1 + 43

// ParseSecret checks that s is shaped like a secret of the given prefix
// (so a token of one kind is never accepted as another) and returns it.
func ParseSecret(prefix, s string) (Secret, bool) {
	rest, ok := strings.CutPrefix(s, prefix+"_")
	if !ok || len(rest) != 43 {
		return "", false
	}
	if _, err := base64.RawURLEncoding.Strict().DecodeString(rest); err != nil {
		return "", false
	}
	return Secret(s), true
}

// Hash returns SHA-256 of the secret: what the store keeps. A 256-bit random
// secret needs no salt or slow hash.
func (s Secret) Hash() []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}
