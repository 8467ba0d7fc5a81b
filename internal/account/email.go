package account

import (
	"errors"
	"net/mail"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"
)

// maxEmailLen is RFC 5321's bound on a forward path's address.
const maxEmailLen = 254

var errBadEmail = errors.New("account: invalid e-mail address")

// Email is a validated address: Display is what the user typed, trimmed,
// NFC-normalized, with the domain in ASCII (punycode); Key is the form used
// for uniqueness: Display lower-cased.
type Email struct {
	Display string
	Key     string
	Local   string // local part, for the password context check
}

// idnaProfile converts and validates domains as registries do (UTS #46,
// transitional processing off, STD3 rules).
var idnaProfile = idna.New(idna.MapForLookup(), idna.Transitional(false), idna.StrictDomainName(true), idna.BidiRule())

// ParseEmail validates and normalizes an address. It accepts only a bare
// addr-spec (no display name, no comments, no source route), a dotted
// domain, and at most 254 characters.
func ParseEmail(s string) (Email, error) {
	s = norm.NFC.String(strings.TrimSpace(s))
	if s == "" || len(s) > 4*maxEmailLen || !utf8.ValidString(s) {
		return Email{}, errBadEmail
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return Email{}, errBadEmail
	}
	local, domain := s[:at], s[at+1:]
	if strings.ContainsAny(local, " \t\r\n\"(),:;<>[\\]") || strings.HasPrefix(local, ".") || strings.HasSuffix(local, ".") || strings.Contains(local, "..") {
		return Email{}, errBadEmail
	}
	ascii, err := idnaProfile.ToASCII(domain)
	if err != nil || !strings.Contains(ascii, ".") || strings.HasSuffix(ascii, ".") {
		return Email{}, errBadEmail
	}
	addr := local + "@" + ascii
	if utf8.RuneCountInString(addr) > maxEmailLen {
		return Email{}, errBadEmail
	}
	if parsed, err := mail.ParseAddress(addr); err != nil || parsed.Name != "" || parsed.Address != addr {
		return Email{}, errBadEmail
	}
	return Email{Display: addr, Key: strings.ToLower(addr), Local: local}, nil
}
