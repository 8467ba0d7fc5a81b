package gatehouse

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"strings"
	"testing"
)

// Run with: go test -bench . -benchmem -count 5 -run '^$'
//
// BenchmarkVerify against BenchmarkBareEd25519Verify is the overhead of
// everything Verify does besides the signature check itself.

type noRevocations struct{}

func (noRevocations) Revoked(context.Context, string) (bool, error) { return false, nil }

func benchFixture(b *testing.B, cacheSize int) (*fixture, string) {
	f := newFixture(b, func(c *VerifierConfig) {
		c.CacheSize = cacheSize
		c.Revocations = noRevocations{}
	})
	f.v.keys = f.keys.inner // skip the test spy
	return f, f.token(b, f.ed, f.claims())
}

func BenchmarkVerify(b *testing.B) {
	f, tok := benchFixture(b, -1)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyCached(b *testing.B) {
	f, tok := benchFixture(b, 0)
	ctx := context.Background()
	if _, err := f.v.Verify(ctx, tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBareEd25519Verify is the floor: ed25519.Verify over the same
// token's signing input and signature, nothing else.
func BenchmarkBareEd25519Verify(b *testing.B) {
	f, tok := benchFixture(b, -1)
	dot := strings.LastIndexByte(tok, '.')
	input := []byte(tok[:dot])
	sig, err := base64.RawURLEncoding.DecodeString(tok[dot+1:])
	if err != nil {
		b.Fatal(err)
	}
	pub := f.ed.pub.Key.(ed25519.PublicKey)
	b.ReportAllocs()
	for b.Loop() {
		if !ed25519.Verify(pub, input, sig) {
			b.Fatal("bad signature")
		}
	}
}
