package password

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

func TestPolicyValidate(t *testing.T) {
	tests := []struct {
		policy Policy
		ok     bool
	}{
		{Policy{}, true},
		{Policy{MinLength: 8}, true},
		{Policy{MinLength: 64, MaxLength: 64}, true},
		{Policy{MaxLength: 4096}, true},
		{Policy{MinLength: 7}, false},
		{Policy{MinLength: -1}, false},
		{Policy{MaxLength: 63}, false},
		{Policy{MaxLength: 4097}, false},
		{Policy{MinLength: 65, MaxLength: 64}, false},
		{Policy{MinLength: 300}, false}, // above the default maximum
	}
	for _, tt := range tests {
		if err := tt.policy.Validate(); (err == nil) != tt.ok {
			t.Errorf("%+v.Validate() = %v, want ok=%v", tt.policy, err, tt.ok)
		}
	}
}

var contextWords = []string{"alice.smith", "alice.smith@example.com", "Alice", "Smith", "Al", "gatehouse"}

func TestPolicyCheck(t *testing.T) {
	tests := []struct {
		name     string
		policy   Policy
		password string
		want     string // violation code, "" for none
	}{
		{"empty", Policy{}, "", codeTooShort},
		{"14 code points", Policy{}, "tangerine-dusk", codeTooShort},
		{"15 code points", Policy{}, "tangerine-dusks", ""},
		{"14 decomposed é count as 14", Policy{}, strings.Repeat("e\u0301", 14), codeTooShort},
		{"15 decomposed é count as 15", Policy{}, strings.Repeat("e\u0301", 15), ""},
		{"64 chars", Policy{}, strings.Repeat("abcdefgh", 8), ""},
		{"128 chars", Policy{}, strings.Repeat("abcdefgh", 16), ""},
		{"256 chars", Policy{}, strings.Repeat("abcdefgh", 32), ""},
		{"257 chars", Policy{}, strings.Repeat("abcdefgh", 32) + "i", codeTooLong},
		{"256 four-byte emoji", Policy{}, strings.Repeat("🦑", 256), ""},
		{"257 four-byte emoji", Policy{}, strings.Repeat("🦑", 257), codeTooLong},
		{"1025 bytes", Policy{}, strings.Repeat("x", 1025), codeTooLong},
		{"MaxLength 64: 65 chars", Policy{MaxLength: 64}, strings.Repeat("x", 65), codeTooLong},
		{"correct horse battery staple", Policy{}, "correct horse battery staple", ""},
		{"15 emoji", Policy{}, "🐙🦑🐚🦀🦞🐠🐟🐡🦈🐬🐳🐋🦭🐊🐢", ""},
		{"15 CJK", Policy{}, "春眠不覚暁処処聞啼鳥夜来風雨声", ""},
		{"spaces and punctuation", Policy{}, "  ~!@#$%^&*()_+{}|:\"<>?`-=[]\\;',./  ", ""},
		{"only spaces", Policy{}, strings.Repeat(" ", 15), ""},
		{"invalid UTF-8", Policy{}, "long enough but \xff broken", codeInvalid},
		{"lone surrogate encoding", Policy{}, "long enough but \xed\xa0\x80 broken", codeInvalid},
		{"common", Policy{}, "passwordpassword", codeCommon},
		{"common, other case", Policy{}, "PassWordPassWord", codeCommon},
		{"common, fullwidth", Policy{}, "ｐａｓｓｗｏｒｄｐａｓｓｗｏｒｄ", codeCommon},
		{"common, long", Policy{}, "qwerty123456789", codeCommon},
		{"common with MinLength 8", Policy{MinLength: 8}, "baseball", codeCommon},
		{"common with MinLength 8, upper case", Policy{MinLength: 8}, "TRUSTNO1", codeCommon},
		{"not common: common plus a word", Policy{}, "passwordpassword tangerine", ""},
		{"e-mail local part", Policy{}, "alice.smith rocks forever", codeContext},
		{"full e-mail", Policy{}, "mail me at alice.smith@example.com", codeContext},
		{"name word, other case", Policy{}, "my name is SMITH and i fly", codeContext},
		{"service name", Policy{}, "GateHouse login password", codeContext},
		{"context word of 2 runes is ignored", Policy{}, "always a long passphrase", ""},
		{"no context word", Policy{}, "tangerine dusk over the bay", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.policy.Check(tt.password, contextWords...)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Check(%.40q) = %v, want nil", tt.password, err)
				}
				return
			}
			var v *Violation
			if !errors.As(err, &v) {
				t.Fatalf("Check(%.40q) = %v, want a *Violation %s", tt.password, err, tt.want)
			}
			if v.Code != tt.want {
				t.Errorf("Check(%.40q) code = %s, want %s", tt.password, v.Code, tt.want)
			}
			if tt.password != "" && strings.Contains(v.Error(), tt.password) {
				t.Errorf("Violation %q echoes the password", v.Error())
			}
			for _, w := range contextWords {
				if strings.Contains(strings.ToLower(v.Reason), strings.ToLower(w)) && len(w) > 2 {
					t.Errorf("Violation %q echoes context word %q", v.Error(), w)
				}
			}
		})
	}
}

func TestPolicyCheckWithoutContext(t *testing.T) {
	if err := (Policy{}).Check("alice.smith rocks forever"); err != nil {
		t.Errorf("Check without context words = %v", err)
	}
}

func TestViolationError(t *testing.T) {
	err := Policy{}.Check("short")
	want := "password refused (password_too_short): Use at least 15 characters. Several unrelated words make a long password that is easy to remember."
	if err == nil || err.Error() != want {
		t.Errorf("Check(short).Error() = %v, want %q", err, want)
	}
}

func TestAttackPolicyRefusesHugePasswordAtOnce(t *testing.T) {
	// Decomposed é: normalizing all of it to NFKC alone takes about 100ms,
	// so the bound below fails unless Check refuses before normalizing.
	huge := strings.Repeat("e\u0301", 1<<19) // 1.5 MiB
	start := time.Now()
	err := Policy{}.Check(huge, contextWords...)
	took := time.Since(start)
	var v *Violation
	if !errors.As(err, &v) || v.Code != codeTooLong {
		t.Fatalf("Check(1.5 MiB) = %v, want %s", err, codeTooLong)
	}
	if took > 50*time.Millisecond {
		t.Errorf("Check(1.5 MiB) took %v, want well under 50ms", took)
	}
}

func TestBlocklist(t *testing.T) {
	list := blocklist()
	if len(list) < 10_000 {
		t.Errorf("blocklist has %d entries, want >= 10,000", len(list))
	}
	if !slices.IsSorted(list) {
		t.Error("blocklist.txt is not sorted; binary search would miss entries")
	}
	for i, e := range list {
		if i > 0 && list[i-1] == e {
			t.Errorf("duplicate entry %q", e)
		}
		if fold(norm.NFKC.String(e)) != e {
			t.Errorf("entry %q is not NFKC-normalized and case-folded", e)
		}
		if n := utf8.RuneCountInString(e); n < minMinLength {
			t.Errorf("entry %q has %d code points; Policy refuses it as too short before looking it up", e, n)
		}
	}
	for _, e := range []string{"passwordpassword", "qwerty123456789", "baseball", "iloveyou", "1qaz2wsx3edc4rfv"} {
		if !isCommon(e) {
			t.Errorf("isCommon(%q) = false", e)
		}
	}
	for _, e := range []string{"correct horse battery staple", "", list[0] + "x"} {
		if isCommon(e) {
			t.Errorf("isCommon(%q) = true", e)
		}
	}
}
