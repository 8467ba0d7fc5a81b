package gatehouse

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

// Stable error codes in the problem+json bodies written by Middleware.
const (
	CodeUnauthenticated         = "unauthenticated"          // 401: no bearer token
	CodeInvalidToken            = "invalid_token"            // 401
	CodeTokenRevoked            = "token_revoked"            // 401
	CodeRevocationFeedStale     = "revocation_feed_stale"    // 503
	CodeVerificationUnavailable = "verification_unavailable" // 503: e.g. JWKS unreachable
)

// retryAfterSeconds is sent with 503 responses.
const retryAfterSeconds = "5"

type claimsKey struct{}

// ClaimsFromContext returns the claims Middleware stored in ctx.
func ClaimsFromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok && c != nil
}

// Middleware returns middleware that requires a valid Gatehouse access token
// in the Authorization header (RFC 6750 §2.1: exactly one header, scheme
// "Bearer" in any case) and passes the request on with the token's claims
// in its context (see ClaimsFromContext). Otherwise it responds with an
// RFC 6750 WWW-Authenticate challenge and a small application/problem+json
// body whose "code" is one of the Code constants:
//
//   - no bearer token: 401, unauthenticated (challenge without error);
//   - malformed or invalid token: 401, invalid_token;
//   - revoked session: 401, token_revoked;
//   - revocation feed stale: 503, revocation_feed_stale, with Retry-After;
//   - any other failure to verify: 503, verification_unavailable.
//
// The token is never logged or echoed.
func Middleware(v *Verifier) func(http.Handler) http.Handler {
	if v == nil {
		panic("gatehouse: Middleware requires a Verifier")
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			token, present := bearerToken(r.Header)
			if !present {
				writeProblem(w, http.StatusUnauthorized, CodeUnauthenticated, "Authentication required")
				return
			}
			if token == "" {
				writeProblem(w, http.StatusUnauthorized, CodeInvalidToken, "Invalid access token")
				return
			}
			claims, err := v.Verify(r.Context(), token)
			switch {
			case err == nil:
				next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), claimsKey{}, claims)))
			case errors.Is(err, ErrRevocationStale):
				writeProblem(w, http.StatusServiceUnavailable, CodeRevocationFeedStale, "Token revocation state unavailable")
			case errors.Is(err, ErrRevoked):
				writeProblem(w, http.StatusUnauthorized, CodeTokenRevoked, "Access token revoked")
			case errors.Is(err, ErrInvalidToken):
				writeProblem(w, http.StatusUnauthorized, CodeInvalidToken, "Invalid access token")
			default:
				writeProblem(w, http.StatusServiceUnavailable, CodeVerificationUnavailable, "Token verification unavailable")
			}
		})
	}
}

// bearerToken extracts the token from the Authorization header. present is
// false when there is no header or it uses another scheme; token is empty
// when a bearer token is present but malformed (or there are several
// Authorization headers).
func bearerToken(h http.Header) (token string, present bool) {
	values := h.Values("Authorization")
	switch len(values) {
	case 0:
		return "", false
	case 1:
	default:
		return "", true
	}
	scheme, rest, _ := strings.Cut(values[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimLeft(rest, " ")
	if strings.ContainsAny(token, " \t") {
		return "", true
	}
	return token, true
}

// problem is an RFC 9457 problem details body.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Code   string `json:"code"`
}

// writeProblem writes an error response. Its content is fixed per code:
// nothing from the request is reflected.
func writeProblem(w http.ResponseWriter, status int, code, title string) {
	h := w.Header()
	switch {
	case code == CodeUnauthenticated:
		h.Set("WWW-Authenticate", "Bearer")
	case status == http.StatusUnauthorized:
		h.Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	case status == http.StatusServiceUnavailable:
		h.Set("Retry-After", retryAfterSeconds)
	}
	body, _ := json.Marshal(problem{Type: "about:blank", Title: title, Status: status, Code: code})
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
