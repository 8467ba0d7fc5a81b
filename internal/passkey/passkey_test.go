package passkey

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestCheckName(t *testing.T) {
	for _, tc := range []struct {
		in       string
		optional bool
		want     string
		ok       bool
	}{
		{"YubiKey 5C", false, "YubiKey 5C", true},
		{"  trimmed  ", false, "trimmed", true},
		{"", true, "", true},
		{"", false, "", false},
		{"   ", false, "", false},
		{strings.Repeat("é", maxNameLen), false, strings.Repeat("é", maxNameLen), true},
		{strings.Repeat("é", maxNameLen+1), false, "", false},
		{"tab\there", false, "", false},
		{"nul\x00", false, "", false},
		{"bidi\u202e", false, "", false},
		{"zero\u200bwidth", false, "", false},
		{"\xff\xfe", false, "", false},
	} {
		got, err := checkName(tc.in, tc.optional)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("checkName(%q, %v) = %q, %v; want %q, ok %v", tc.in, tc.optional, got, err, tc.want, tc.ok)
		}
	}
}

// FuzzCheckName: a name that passes is valid UTF-8, bounded, trimmed and
// free of control and format characters, whatever the client sent.
func FuzzCheckName(f *testing.F) {
	for _, s := range []string{"Passkey", " a ", "\x00", "\xff", strings.Repeat("x", 80), "日本語のキー"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := checkName(in, true)
		if err != nil {
			return
		}
		if !utf8.ValidString(got) || utf8.RuneCountInString(got) > maxNameLen || got != strings.TrimSpace(got) ||
			strings.ContainsFunc(got, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }) {
			t.Fatalf("checkName(%q) accepted %q", in, got)
		}
	})
}
