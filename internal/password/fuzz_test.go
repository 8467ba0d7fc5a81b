package password

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

func FuzzVerifyEncoded(f *testing.F) {
	// Own hashes run argon2id through a stub: the target is parsing and
	// dispatch, not golang.org/x/crypto/argon2. Imported hashes run go-crypt
	// for real, within the cost limits.
	h := newTestHasher(f, func(c *Config) { c.Peppers = []Pepper{testPepper(1, 'a'), testPepper(2, 'b')} })
	f.Add(mustHash(f, h, "correct horse battery staple"))
	h.idKey = func(_, _ []byte, _, _ uint32, _ uint8, keyLen uint32) []byte { return make([]byte, keyLen) }
	for _, s := range []string{
		"", "$", "$$$$$", "junk",
		"$argon2id$v=19$m=64,t=1,p=1,pv=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"$argon2id$v=19$m=64,t=1,p=1,pv=9$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"$argon2id$v=19$m=64,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"$2b$04$" + strings.Repeat("A", 53),
		"$scrypt$ln=-1,r=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
		"$scrypt$ln=4,r=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
		"$pbkdf2-sha256$1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
		"{CRYPT}$2y$04$" + strings.Repeat("A", 53),
		"{PBKDF2-SHA256}1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
	} {
		f.Add(s)
	}
	for _, fx := range loadFixtures(f) {
		f.Add(fx.encoded)
	}
	f.Fuzz(func(t *testing.T, encoded string) {
		res, err := h.Verify(context.Background(), "correct horse battery staple", encoded)
		if err != nil {
			if res != (Result{}) {
				t.Errorf("Verify returned %+v with error %v", res, err)
			}
			if !errors.Is(err, ErrMalformedHash) && !errors.Is(err, ErrUnknownPepper) {
				t.Errorf("Verify error %v is neither ErrMalformedHash nor ErrUnknownPepper", err)
			}
		}
		if res.NeedsRehash && !res.OK {
			t.Errorf("Verify = %+v: NeedsRehash without OK", res)
		}
		if ValidateImported(encoded) != nil && !errors.Is(err, ErrMalformedHash) {
			t.Errorf("ValidateImported refuses %q but Verify returned %+v, %v", encoded, res, err)
		}
	})
}

func FuzzPolicyCheck(f *testing.F) {
	for _, s := range []string{
		"", "correct horse battery staple", "passwordpassword", "PASSWORDPASSWORD",
		"e\u0301e\u0301e\u0301e\u0301e\u0301e\u0301e\u0301e\u0301e\u0301e\u0301e\u0301e\u0301e\u0301e\u0301e\u0301",
		"\ufdfa\ufdfa\ufdfa", "\xff\xfe\xfd long enough to be checked", "alice.smith is my name really",
		strings.Repeat("🦑", 257), strings.Repeat("x", 1025),
	} {
		f.Add(s, "alice.smith")
	}
	codes := []string{codeTooShort, codeTooLong, codeInvalid, codeCommon, codeContext}
	var p Policy
	f.Fuzz(func(t *testing.T, password, word string) {
		err := p.Check(password, word)
		if again := p.Check(password, word); (err == nil) != (again == nil) || (err != nil && err.Error() != again.Error()) {
			t.Fatalf("Check is not deterministic: %v, then %v", err, again)
		}
		if len(password) > 4*defaultMaxLength {
			var v *Violation
			if !errors.As(err, &v) || v.Code != codeTooLong {
				t.Errorf("Check(%d bytes) = %v, want %s", len(password), err, codeTooLong)
			}
		}
		if err != nil {
			v, ok := err.(*Violation)
			if !ok {
				t.Fatalf("Check returned %T, want *Violation", err)
			}
			if !slices.Contains(codes, v.Code) {
				t.Errorf("unknown code %q", v.Code)
			}
			// The Reason is a function of the code and the policy only, so
			// it cannot echo the password.
			if v.Reason == "" || v.Reason != p.violation(v.Code).Reason {
				t.Errorf("Reason %q is not the fixed reason for %s", v.Reason, v.Code)
			}
			return
		}
		normalized := norm.NFKC.String(password)
		n := utf8.RuneCountInString(normalized)
		folded := fold(normalized)
		switch w := fold(norm.NFKC.String(strings.TrimSpace(word))); {
		case !utf8.ValidString(password):
			t.Errorf("accepted invalid UTF-8 %q", password)
		case n < defaultMinLength || n > defaultMaxLength:
			t.Errorf("accepted %q of %d code points", password, n)
		case isCommon(folded):
			t.Errorf("accepted common password %q", password)
		case utf8.RuneCountInString(w) >= minContextRunes && strings.Contains(folded, w):
			t.Errorf("accepted %q containing context word %q", password, word)
		}
	})
}
