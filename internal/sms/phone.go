package sms

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
)

// ErrInvalidPhone: the number cannot be parsed, is not a valid number, or is
// of a type that cannot receive SMS codes safely.
var ErrInvalidPhone = errors.New("sms: invalid phone number")

// maxPhoneInput is the longest input Normalize parses, in characters.
const maxPhoneInput = 32

// refusedTypes are the number types Normalize refuses, with the reason.
// Premium-rate, shared-cost, toll-free and UAN numbers are where SMS pumping
// (toll fraud) sends codes, and they, voicemail access and pure fixed-line
// numbers cannot receive a text anyway. Every other type of valid number —
// mobile, fixed-line-or-mobile (the US and others cannot tell them apart),
// personal, VoIP, pager — is accepted.
var refusedTypes = map[phonenumbers.PhoneNumberType]string{
	phonenumbers.PREMIUM_RATE: "premium-rate number",
	phonenumbers.SHARED_COST:  "shared-cost number",
	phonenumbers.TOLL_FREE:    "toll-free number",
	phonenumbers.UAN:          "universal access number",
	phonenumbers.VOICEMAIL:    "voicemail access number",
	phonenumbers.FIXED_LINE:   "fixed-line number",
}

// Normalize parses raw (as a user typed it: spaces, dashes, parentheses, a
// leading + or a national number) and returns its E.164 form. defaultRegion
// is a CLDR region code ("US", "DE") used for national numbers; "" means the
// number must be international (start with + or 00). It refuses
// (ErrInvalidPhone, wrapped with a reason) numbers that are not valid, longer
// than 32 characters of input, and numbers whose type is premium-rate,
// shared-cost, toll-free, UAN, voicemail or fixed-line (SMS pumping / toll
// fraud, and they cannot receive SMS); it accepts mobile,
// fixed-line-or-mobile, personal, VoIP, pager and unknown-type-but-valid
// numbers.
//
// Only digits (ASCII, Arabic-Indic and full-width), a leading plus, and the
// separators people type (spaces, dashes, dots, slashes, parentheses) are
// accepted: letters (vanity numbers, "ext.", "tel:") are refused rather than
// guessed at. With a default region, a leading 00 is the international
// prefix only where that region dials it so (GB, DE, FR, IN, not US: there
// it is 011). An unknown default region is a configuration error, not
// ErrInvalidPhone.
func Normalize(raw, defaultRegion string) (string, error) {
	if defaultRegion != "" && !phonenumbers.GetSupportedRegions()[defaultRegion] {
		return "", fmt.Errorf("sms: unknown default region %q", defaultRegion)
	}
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", fmt.Errorf("%w: empty", ErrInvalidPhone)
	}
	if utf8.RuneCountInString(s) > maxPhoneInput {
		return "", fmt.Errorf("%w: longer than %d characters", ErrInvalidPhone, maxPhoneInput)
	}
	digits, international, err := phoneDigits(s)
	if err != nil {
		return "", err
	}
	if !international && defaultRegion == "" {
		rest, ok := strings.CutPrefix(digits, "00")
		if !ok {
			return "", fmt.Errorf("%w: not in international format (+ and the country code)", ErrInvalidPhone)
		}
		digits, international = rest, true
	}
	if international {
		digits = "+" + digits
	}
	num, err := phonenumbers.Parse(digits, defaultRegion)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidPhone, err)
	}
	if !phonenumbers.IsValidNumber(num) {
		return "", fmt.Errorf("%w: not a valid number", ErrInvalidPhone)
	}
	if why, refused := refusedTypes[phonenumbers.GetNumberType(num)]; refused {
		return "", fmt.Errorf("%w: %s, cannot receive codes", ErrInvalidPhone, why)
	}
	return phonenumbers.Format(num, phonenumbers.E164), nil
}

// phoneDigits strips separators from s (already trimmed), maps the digits to
// ASCII, and reports whether s started with a plus sign.
func phoneDigits(s string) (digits string, international bool, err error) {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r >= '٠' && r <= '٩': // Arabic-Indic
			b.WriteRune('0' + r - '٠')
		case r >= '۰' && r <= '۹': // Extended Arabic-Indic (Persian, Urdu)
			b.WriteRune('0' + r - '۰')
		case r >= '０' && r <= '９': // full-width (CJK input methods)
			b.WriteRune('0' + r - '０')
		case r == '+' || r == '＋':
			if i != 0 {
				return "", false, fmt.Errorf("%w: plus sign inside the number", ErrInvalidPhone)
			}
			international = true
		case unicode.IsSpace(r), strings.ContainsRune("-‐‑‒–—―−.()/", r):
		default:
			return "", false, fmt.Errorf("%w: unexpected character %q", ErrInvalidPhone, r)
		}
	}
	if b.Len() == 0 {
		return "", false, fmt.Errorf("%w: no digits", ErrInvalidPhone)
	}
	return b.String(), international, nil
}
