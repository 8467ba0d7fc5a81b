package password

import (
	"context"
	"testing"

	"golang.org/x/crypto/argon2"
)

const benchPassword = "correct horse battery staple"

func benchHasher(b *testing.B) *Hasher {
	b.Helper()
	h, err := NewHasher(Config{Params: DefaultParams(), Peppers: []Pepper{testPepper(1, 'a')}})
	if err != nil {
		b.Fatal(err)
	}
	return h
}

// BenchmarkArgon2idRaw is the floor for BenchmarkHash: argon2id alone with
// DefaultParams.
func BenchmarkArgon2idRaw(b *testing.B) {
	p := DefaultParams()
	salt := make([]byte, p.SaltLen)
	for b.Loop() {
		argon2.IDKey([]byte(benchPassword), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	}
}

func BenchmarkHash(b *testing.B) {
	h := benchHasher(b)
	ctx := context.Background()
	for b.Loop() {
		if _, err := h.Hash(ctx, benchPassword); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	h := benchHasher(b)
	ctx := context.Background()
	encoded := mustHash(b, h, benchPassword)
	for b.Loop() {
		if _, err := h.Verify(ctx, benchPassword, encoded); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkArgon2idRawParallel(b *testing.B) {
	p := DefaultParams()
	b.RunParallel(func(pb *testing.PB) {
		salt := make([]byte, p.SaltLen)
		for pb.Next() {
			argon2.IDKey([]byte(benchPassword), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
		}
	})
}

// BenchmarkVerifyParallel runs GOMAXPROCS callers against the default
// MaxConcurrent of runtime.NumCPU(), so nobody queues.
func BenchmarkVerifyParallel(b *testing.B) {
	h := benchHasher(b)
	encoded := mustHash(b, h, benchPassword)
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if _, err := h.Verify(ctx, benchPassword, encoded); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkPolicyCheck(b *testing.B) {
	var p Policy
	blocklist() // load outside the timed loop
	for b.Loop() {
		_ = p.Check(benchPassword, "alice.smith", "alice.smith@example.com", "Alice", "Smith", "gatehouse")
	}
}

func BenchmarkLoadBlocklist(b *testing.B) {
	for b.Loop() {
		loadBlocklist()
	}
}
