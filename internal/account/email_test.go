package account

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseEmail(t *testing.T) {
	cases := []struct {
		in, display, key string
	}{
		{"  Alice@Example.COM ", "Alice@example.com", "alice@example.com"},
		{"a+tag@sub.example.co.uk", "a+tag@sub.example.co.uk", "a+tag@sub.example.co.uk"},
		{"a@bücher.de", "a@xn--bcher-kva.de", "a@xn--bcher-kva.de"},
		{"a@BÜCHER.de", "a@xn--bcher-kva.de", "a@xn--bcher-kva.de"},
		{"e\u0301@example.com", "é@example.com", "é@example.com"}, // NFC
	}
	for _, tc := range cases {
		e, err := ParseEmail(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if e.Display != tc.display || e.Key != tc.key {
			t.Errorf("%q → %q / %q, want %q / %q", tc.in, e.Display, e.Key, tc.display, tc.key)
		}
	}
	for _, bad := range []string{
		"", "plain", "a@b", "@example.com", "a@", "a@@example.com", "Eve <eve@example.com>",
		`"a b"@example.com`, "a.@example.com", ".a@example.com", "a..b@example.com", "a@example.com.",
		"a@exa mple.com", "a@-example.com", "a@example..com", "a\n@example.com",
		strings.Repeat("a", 250) + "@example.com",
		"victim@example.com,attacker@evil.example",
	} {
		if e, err := ParseEmail(bad); err == nil {
			t.Errorf("%q accepted as %+v", bad, e)
		}
	}
}

// FuzzParseEmail: accepted addresses are bounded, valid UTF-8, stable under
// re-parsing, and their key is their lower-cased display form.
func FuzzParseEmail(f *testing.F) {
	for _, s := range []string{"Alice@Example.COM", "a@bücher.de", "a@b", "x@y.z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := ParseEmail(s)
		if err != nil {
			return
		}
		if utf8.RuneCountInString(e.Display) > maxEmailLen || !utf8.ValidString(e.Display) {
			t.Fatalf("accepted %q", e.Display)
		}
		again, err := ParseEmail(e.Display)
		if err != nil || again != e {
			t.Fatalf("not idempotent: %q → %+v → %+v (%v)", s, e, again, err)
		}
		if e.Key != strings.ToLower(e.Display) {
			t.Fatalf("key %q", e.Key)
		}
	})
}
