package password

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Policy is the password policy of NIST SP 800-63B rev. 4: it constrains
// length, not composition. The zero value is the default policy.
type Policy struct {
	MinLength int // code points; zero value means 15; values below 8 are invalid
	MaxLength int // code points; zero value means 256; must be 64..4096
}

const (
	defaultMinLength = 15
	defaultMaxLength = 256
	minMinLength     = 8
	minMaxLength     = 64
	maxMaxLength     = 4096 // bounds the work Check does before refusing
	minContextRunes  = 3
)

// Violation codes, stable for API clients.
const (
	codeTooShort = "password_too_short"
	codeTooLong  = "password_too_long"
	codeInvalid  = "password_invalid"
	codeCommon   = "password_common"
	codeContext  = "password_contains_context"
)

func (p Policy) minLength() int {
	if p.MinLength == 0 {
		return defaultMinLength
	}
	return p.MinLength
}

func (p Policy) maxLength() int {
	if p.MaxLength == 0 {
		return defaultMaxLength
	}
	return p.MaxLength
}

// Validate reports whether p is a usable policy. Check assumes it is.
func (p Policy) Validate() error {
	minLen, maxLen := p.minLength(), p.maxLength()
	switch {
	case minLen < minMinLength:
		return fmt.Errorf("password policy: minimum length %d is below %d", minLen, minMinLength)
	case maxLen < minMaxLength || maxLen > maxMaxLength:
		return fmt.Errorf("password policy: maximum length %d is outside %d..%d", maxLen, minMaxLength, maxMaxLength)
	case minLen > maxLen:
		return fmt.Errorf("password policy: minimum length %d is above maximum length %d", minLen, maxLen)
	}
	return nil
}

// Violation is a password refused by Policy.Check.
type Violation struct {
	Code   string // stable: password_too_short, password_too_long, password_invalid, password_common or password_contains_context
	Reason string // human guidance; never echoes the password
}

func (v *Violation) Error() string {
	return "password refused (" + v.Code + "): " + v.Reason
}

// Check returns nil if password is acceptable, or else a *Violation. Length
// is counted in code points after NFKC normalization; any printable ASCII,
// space and Unicode is accepted, with no composition rules. In order:
//
//   - empty or shorter than MinLength: password_too_short;
//   - longer than MaxLength, or more than 4*MaxLength bytes (checked before
//     any other work): password_too_long;
//   - not valid UTF-8: password_invalid;
//   - on the embedded blocklist of common and breached passwords, compared
//     case-insensitively after NFKC: password_common;
//   - containing, case-insensitively, any of the context words of at least 3
//     code points (callers pass the e-mail local part, the full e-mail
//     address, the words of the user's name and "gatehouse"):
//     password_contains_context.
func (p Policy) Check(password string, context ...string) error {
	minLen, maxLen := p.minLength(), p.maxLength()
	if len(password) > 4*maxLen {
		return p.violation(codeTooLong)
	}
	normalized := norm.NFKC.String(password)
	switch n := utf8.RuneCountInString(normalized); {
	case n < minLen:
		return p.violation(codeTooShort)
	case n > maxLen:
		return p.violation(codeTooLong)
	case !utf8.ValidString(password):
		return p.violation(codeInvalid)
	}
	folded := fold(normalized)
	if isCommon(folded) {
		return p.violation(codeCommon)
	}
	for _, word := range context {
		w := fold(norm.NFKC.String(strings.TrimSpace(word)))
		if utf8.RuneCountInString(w) >= minContextRunes && strings.Contains(folded, w) {
			return p.violation(codeContext)
		}
	}
	return nil
}

// fold case-folds s for case-insensitive comparison. internal/genblocklist
// folds the blocklist the same way.
func fold(s string) string {
	return cases.Fold().String(s)
}

// violation returns the Violation for code. Its Reason depends only on the
// code and the policy, never on the password.
func (p Policy) violation(code string) *Violation {
	var reason string
	switch code {
	case codeTooShort:
		reason = fmt.Sprintf("Use at least %d characters. Several unrelated words make a long password that is easy to remember.", p.minLength())
	case codeTooLong:
		reason = fmt.Sprintf("Use at most %d characters.", p.maxLength())
	case codeInvalid:
		reason = "The password is not valid UTF-8 text."
	case codeCommon:
		reason = "This password is on a list of common or breached passwords. Choose one that nobody else is likely to use."
	case codeContext:
		reason = "The password must not contain your e-mail address, your name or the name of this service."
	}
	return &Violation{Code: code, Reason: reason}
}
