package id

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestNewIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		v := New("usr")
		if !strings.HasPrefix(v, "usr_") || len(v) != 4+26 || seen[v] {
			t.Fatalf("bad or repeated id %q", v)
		}
		seen[v] = true
	}
}

func TestSecretShapeAndRedaction(t *testing.T) {
	s := NewSecret("ghs")
	if len(s) != SecretLen {
		t.Fatalf("len %d", len(s))
	}
	if _, ok := ParseSecret("ghs", string(s)); !ok {
		t.Fatal("own secret refused")
	}
	if fmt.Sprint(s) != "[REDACTED]" || fmt.Sprintf("%v", s) != "[REDACTED]" {
		t.Fatal("secret printable")
	}
	for name, h := range map[string]func(*strings.Builder) slog.Handler{
		"text": func(b *strings.Builder) slog.Handler { return slog.NewTextHandler(b, nil) },
		"json": func(b *strings.Builder) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var b strings.Builder
		slog.New(h(&b)).Info("x", "token", s, slog.Any("any", s))
		if strings.Contains(b.String(), string(s)[4:]) || !strings.Contains(b.String(), "[REDACTED]") {
			t.Fatalf("%s handler: secret logged: %s", name, b.String())
		}
	}
	if len(s.Hash()) != 32 {
		t.Fatal("hash is not SHA-256")
	}
}

func TestParseSecretRefuses(t *testing.T) {
	good := string(NewSecret("ghs"))
	for name, v := range map[string]string{
		"other prefix":  "ghr" + good[3:],
		"no prefix":     good[4:],
		"short":         good[:len(good)-1],
		"long":          good + "A",
		"padding":       good[:len(good)-1] + "=",
		"bad alphabet":  good[:len(good)-1] + "+",
		"non-canonical": "ghs_" + strings.Repeat("A", 42) + "B", // trailing bits set
		"empty":         "",
		"prefix only":   "ghs_",
	} {
		if _, ok := ParseSecret("ghs", v); ok {
			t.Errorf("%s: %q accepted", name, v)
		}
	}
}

func FuzzParseSecret(f *testing.F) {
	f.Add(string(NewSecret("ghs")))
	f.Add("ghs_")
	f.Fuzz(func(t *testing.T, s string) {
		if v, ok := ParseSecret("ghs", s); ok && string(v) != s {
			t.Fatal("parse changed the value")
		}
	})
}
