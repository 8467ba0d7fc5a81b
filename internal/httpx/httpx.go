// Package httpx owns the HTTP plumbing shared by every feature: the
// error-returning handler adapter, strict JSON request decoding, JSON
// responses, and the middleware chain (request ids, access log, panic
// recovery, security headers, cross-origin protection).
package httpx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/gatehouse-auth/gatehouse/internal/problem"
)

// HandlerFunc is an HTTP handler that reports failure by returning an error;
// the error is rendered by problem.Write, the one place errors become
// responses.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Adapt turns h into an http.Handler that renders h's error, if any.
func Adapt(log *slog.Logger, h HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			problem.Write(w, r, log, err)
		}
	})
}

// MaxBodyBytes bounds every JSON request body.
const MaxBodyBytes = 64 << 10

// DecodeJSON reads exactly one JSON object from r's body into dst. It
// refuses a non-JSON content type (415, which also stops HTML-form CSRF),
// bodies over MaxBodyBytes (413), malformed JSON, duplicate keys (parameter
// pollution), unknown fields, wrong types and trailing data (400).
func DecodeJSON(w http.ResponseWriter, r *http.Request, dst any) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return problem.UnsupportedMedia
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return problem.BodyTooLarge.WithDetail("The body must be at most %d bytes.", MaxBodyBytes)
		}
		return problem.BadRequest.WithDetail("The request body could not be read.")
	}
	if !utf8.Valid(body) {
		return problem.MalformedJSON.WithDetail("The body is not valid UTF-8.")
	}
	if err := checkDuplicateKeys(body); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeProblem(err)
	}
	if dec.More() {
		return problem.MalformedJSON.WithDetail("The body must hold exactly one JSON value.")
	}
	return nil
}

func decodeProblem(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.As(err, &syntax):
		return problem.MalformedJSON
	case errors.As(err, &typ):
		if typ.Field == "" {
			return problem.MalformedJSON.WithDetail("The body must be a JSON object.")
		}
		return problem.InvalidField.WithDetail("Field %q must be of type %s.", typ.Field, typ.Type.String()).With("field", typ.Field)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return problem.UnknownField.WithDetail("Field %q is not accepted here.", field).With("field", field)
	default:
		return problem.MalformedJSON
	}
}

// checkDuplicateKeys walks the token stream and refuses any object with a
// repeated member name: encoding/json would silently keep the last one, and
// a validator and a consumer that disagree on which one wins is how
// parameter-pollution attacks start.
func checkDuplicateKeys(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	type frame struct {
		object bool
		keys   map[string]bool
		expect bool // next string token in an object is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return problem.MalformedJSON
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if top != nil && top.object {
					top.expect = true
				}
				stack = append(stack, &frame{object: t == '{', keys: map[string]bool{}, expect: t == '{'})
			case '}', ']':
				stack = stack[:len(stack)-1]
			}
			continue
		case string:
			if top != nil && top.object && top.expect {
				if top.keys[t] {
					return problem.MalformedJSON.WithDetail("Field %q appears more than once.", t)
				}
				top.keys[t] = true
				top.expect = false
				continue
			}
		}
		if top != nil && top.object {
			top.expect = true
		}
	}
}

// WriteJSON writes v as a JSON response with the given status. API responses
// are never cached: they carry per-user data.
func WriteJSON(w http.ResponseWriter, status int, v any) error {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		return fmt.Errorf("httpx: write json: %w", err)
	}
	return nil
}

// CheckString refuses a string field longer than max runes or holding
// control characters other than none at all.
func CheckString(field, value string, max int) error {
	if utf8.RuneCountInString(value) > max {
		return problem.InvalidField.WithDetail("Field %q must be at most %d characters.", field, max).With("field", field)
	}
	for _, r := range value {
		if r < 0x20 || r == 0x7f {
			return problem.InvalidField.WithDetail("Field %q must not contain control characters.", field).With("field", field)
		}
	}
	return nil
}
