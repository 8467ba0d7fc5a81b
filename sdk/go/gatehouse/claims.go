package gatehouse

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"time"
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

// decodeClaims decodes a JWT claims set strictly:
//
//   - the payload must be exactly one JSON object;
//   - claim names are matched exactly (encoding/json would otherwise match
//     struct fields case-insensitively, so "ISS" would be read as "iss");
//   - a claim this package interprets may appear only once (RFC 7519 §4
//     allows rejecting duplicates; last-one-wins parsers are a known source
//     of confusion between implementations);
//   - every interpreted claim must have the JSON type the profile defines:
//     NumericDate claims are JSON numbers, aud is a string or an array of
//     strings, amr is an array of strings, the rest are strings;
//   - unknown claims are ignored, as RFC 7519 requires.
//
// Presence of the required claims is checked by the caller.
func decodeClaims(payload []byte) (*Claims, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("claims are not a JSON object")
	}
	var (
		c    Claims
		seen = make(map[string]bool, 12)
	)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, errors.New("malformed claims JSON")
		}
		name, ok := tok.(string)
		if !ok {
			return nil, errors.New("malformed claims JSON")
		}
		var target any
		switch name {
		case "iss":
			target = (*strictString)(&c.Issuer)
		case "sub":
			target = (*strictString)(&c.Subject)
		case "aud":
			target = (*audience)(&c.Audience)
		case "exp":
			target = (*numericDate)(&c.ExpiresAt)
		case "iat":
			target = (*numericDate)(&c.IssuedAt)
		case "nbf":
			target = (*numericDate)(&c.NotBefore)
		case "auth_time":
			target = (*numericDate)(&c.AuthTime)
		case "jti":
			target = (*strictString)(&c.ID)
		case "sid":
			target = (*strictString)(&c.SessionID)
		case "amr":
			target = (*stringArray)(&c.AMR)
		case "acr":
			target = (*strictString)(&c.ACR)
		case "client_id":
			target = (*strictString)(&c.ClientID)
		default:
			// Unknown claim: skip its value without interpreting it.
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, errors.New("malformed claims JSON")
			}
			continue
		}
		if seen[name] {
			return nil, fmt.Errorf("duplicate claim %q", name)
		}
		seen[name] = true
		if err := dec.Decode(target); err != nil {
			return nil, fmt.Errorf("claim %q: %w", name, err)
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, errors.New("malformed claims JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after claims")
	}
	return &c, nil
}

// strictString accepts only a JSON string (not null, not a number).
type strictString string

func (s *strictString) UnmarshalJSON(b []byte) error {
	if len(b) == 0 || b[0] != '"' {
		return errors.New("not a string")
	}
	return json.Unmarshal(b, (*string)(s))
}

// stringArray accepts only a JSON array of non-empty strings.
type stringArray []string

func (a *stringArray) UnmarshalJSON(b []byte) error {
	if len(b) == 0 || b[0] != '[' {
		return errors.New("not an array")
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	out := make([]string, 0, len(raw))
	for _, r := range raw {
		var s strictString
		if err := s.UnmarshalJSON(r); err != nil {
			return err
		}
		if s == "" {
			return errors.New("empty string in array")
		}
		out = append(out, string(s))
	}
	*a = out
	return nil
}

// audience accepts a JSON string or an array of strings (RFC 7519 §4.1.3).
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s strictString
		if err := s.UnmarshalJSON(b); err != nil {
			return err
		}
		*a = []string{string(s)}
		return nil
	}
	return (*stringArray)(a).UnmarshalJSON(b)
}

// numericDate accepts only a non-negative JSON number of seconds since the
// epoch (RFC 7519 §2). Fractional seconds are allowed, as the RFC permits.
type numericDate time.Time

func (d *numericDate) UnmarshalJSON(b []byte) error {
	if len(b) == 0 || (b[0] < '0' || b[0] > '9') {
		// Refuses null, strings, booleans, objects and negative numbers.
		return errors.New("not a non-negative number")
	}
	if n, err := strconv.ParseInt(string(b), 10, 64); err == nil {
		if n > maxNumericDate {
			return errors.New("out of range")
		}
		*d = numericDate(time.Unix(n, 0))
		return nil
	}
	// Not a plain integer: the value must still be a valid JSON number.
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return errors.New("not a number")
	}
	if math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return errors.New("out of range")
	}
	sec, frac := math.Modf(f)
	*d = numericDate(time.Unix(int64(sec), int64(frac*1e9)))
	return nil
}
