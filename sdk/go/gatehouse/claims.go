package gatehouse

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	josejson "github.com/go-jose/go-jose/v4/json"
)

// Claims are the verified claims of a Gatehouse access token.
type Claims struct {
	Issuer    string    // iss
	Subject   string    // sub: the user id
	Audience  []string  // aud
	ExpiresAt time.Time // exp
	IssuedAt  time.Time // iat
	NotBefore time.Time // nbf; zero when absent
	AuthTime  time.Time // auth_time; zero when absent
	ID        string    // jti
	SessionID string    // sid
	AMR       []string  // amr
	ACR       string    // acr, e.g. "aal1"
	ClientID  string    // client_id
}

// clone returns a deep copy, so that callers never share mutable state with
// the verified-token cache.
func (c *Claims) clone() *Claims {
	out := *c
	out.Audience = slices.Clone(c.Audience)
	out.AMR = slices.Clone(c.AMR)
	return &out
}

// maxNumericDate is 9999-12-31T23:59:59Z; later values are refused so that
// conversions to time.Time can never overflow.
const maxNumericDate = 253402300799

// rawClaims is the wire form of the claims set.
type rawClaims struct {
	Issuer    string      `json:"iss"`
	Subject   string      `json:"sub"`
	Audience  audience    `json:"aud"`
	ExpiresAt numericDate `json:"exp"`
	IssuedAt  numericDate `json:"iat"`
	NotBefore numericDate `json:"nbf"`
	AuthTime  numericDate `json:"auth_time"`
	ID        string      `json:"jti"`
	SessionID string      `json:"sid"`
	AMR       []string    `json:"amr"`
	ACR       string      `json:"acr"`
	ClientID  string      `json:"client_id"`
}

// decodeClaims decodes a JWT claims set strictly, with go-jose's JSON
// package rather than encoding/json because it
//
//   - matches member names exactly (encoding/json matches struct fields
//     case-insensitively, so "ISS" would be read as "iss"), and
//   - rejects duplicate member names (RFC 7519 §4 allows this instead of
//     last-one-wins, a known source of disagreement between parsers).
//
// The payload must be one JSON object. Each claim must have the JSON type
// the profile defines: NumericDate claims are non-negative numbers, aud is a
// string or an array of strings, amr an array of strings, the others
// strings (a null string claim counts as absent). Unknown claims are
// ignored, as RFC 7519 requires. Presence of the required claims is checked
// by the caller.
func decodeClaims(payload []byte) (*Claims, error) {
	if t := bytes.TrimLeft(payload, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return nil, errors.New("claims are not a JSON object")
	}
	var r rawClaims
	if err := josejson.Unmarshal(payload, &r); err != nil {
		return nil, errors.New("malformed claims: " + claimsErrorReason(err))
	}
	if slices.Contains(r.AMR, "") { // also catches null elements
		return nil, errors.New("malformed claims: empty string in amr")
	}
	return &Claims{
		Issuer:    r.Issuer,
		Subject:   r.Subject,
		Audience:  r.Audience,
		ExpiresAt: time.Time(r.ExpiresAt),
		IssuedAt:  time.Time(r.IssuedAt),
		NotBefore: time.Time(r.NotBefore),
		AuthTime:  time.Time(r.AuthTime),
		ID:        r.ID,
		SessionID: r.SessionID,
		AMR:       r.AMR,
		ACR:       r.ACR,
		ClientID:  r.ClientID,
	}, nil
}

// claimsErrorReason describes a decoding error without quoting the payload.
func claimsErrorReason(err error) string {
	var typeErr *josejson.UnmarshalTypeError
	var claimErr *claimError
	switch {
	case errors.As(err, &claimErr):
		return claimErr.Error()
	case errors.As(err, &typeErr):
		return "a claim has the wrong JSON type"
	case strings.Contains(err.Error(), "duplicate key"):
		return "duplicate claim"
	default:
		return "invalid JSON"
	}
}

// claimError is returned by the claim types' UnmarshalJSON methods.
type claimError struct{ reason string }

func (e *claimError) Error() string { return e.reason }

// audience accepts a non-empty JSON string or an array of non-empty strings
// (RFC 7519 §4.1.3).
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var out []string
	switch {
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := josejson.Unmarshal(b, &s); err != nil {
			return &claimError{"aud is not a string or an array of strings"}
		}
		out = []string{s}
	case len(b) > 0 && b[0] == '[':
		if err := josejson.Unmarshal(b, &out); err != nil {
			return &claimError{"aud is not a string or an array of strings"}
		}
	default:
		return &claimError{"aud is not a string or an array of strings"}
	}
	if slices.Contains(out, "") { // also catches null elements
		return &claimError{"empty string in aud"}
	}
	*a = out
	return nil
}

// numericDate accepts only a non-negative JSON number of seconds since the
// epoch (RFC 7519 §2). Fractional seconds are allowed, as the RFC permits.
type numericDate time.Time

func (d *numericDate) UnmarshalJSON(b []byte) error {
	if len(b) == 0 || (b[0] < '0' || b[0] > '9') {
		// Refuses null, strings, booleans, objects and negative numbers.
		return &claimError{"a NumericDate claim is not a non-negative number"}
	}
	// b is a JSON number token (the JSON decoder has validated it). The
	// common case, a plain integer, is converted without allocating.
	if len(b) <= 12 && isDigits(b) {
		var n int64
		for _, c := range b {
			n = n*10 + int64(c-'0')
		}
		if n > maxNumericDate {
			return &claimError{"a NumericDate claim is out of range"}
		}
		*d = numericDate(time.Unix(n, 0))
		return nil
	}
	// A fraction, an exponent, or too many digits.
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return &claimError{"a NumericDate claim is out of range"}
	}
	sec, frac := math.Modf(f)
	*d = numericDate(time.Unix(int64(sec), int64(frac*1e9)))
	return nil
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}
