// Package problem owns the error wire format of the product API: RFC 9457
// "application/problem+json" bodies with a stable machine-readable code, the
// one table of known problems, and the single renderer that turns any error a
// handler returns into a response.
//
// Handlers return errors; they never write error bodies themselves. An error
// that is (or wraps) a *Problem is rendered as such; anything else is a 500
// whose cause is logged and never shown to the client.
package problem

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"
)

// TypeBase prefixes every problem type URI. The URIs identify problems; they
// are not required to resolve.
const TypeBase = "https://gatehouse.dev/problems/"

// Problem is an API error with a public face (status, code, title, detail)
// and an optional private cause that is logged but never sent.
type Problem struct {
	Status int
	Code   string
	Title  string
	Detail string
	// RetryAfter, when positive, is sent as the Retry-After header.
	RetryAfter time.Duration
	// Extra members added to the body (e.g. "max_age" for step-up).
	Extra map[string]any
	cause error
}

func (p *Problem) Error() string {
	if p.cause != nil {
		return p.Code + ": " + p.cause.Error()
	}
	return p.Code
}

// Unwrap exposes the private cause to errors.Is/As.
func (p *Problem) Unwrap() error { return p.cause }

// Is matches any *Problem with the same code, so a copy made by WithDetail
// or Wrap still matches its sentinel.
func (p *Problem) Is(target error) bool {
	t, ok := target.(*Problem)
	return ok && t.Code == p.Code
}

func (p *Problem) clone() *Problem {
	c := *p
	if p.Extra != nil {
		c.Extra = make(map[string]any, len(p.Extra))
		for k, v := range p.Extra {
			c.Extra[k] = v
		}
	}
	return &c
}

// WithDetail returns a copy with a public, human-readable detail.
func (p *Problem) WithDetail(format string, args ...any) *Problem {
	c := p.clone()
	c.Detail = fmt.Sprintf(format, args...)
	return c
}

// Wrap returns a copy carrying a private cause (logged, never sent).
func (p *Problem) Wrap(cause error) *Problem {
	c := p.clone()
	c.cause = cause
	return c
}

// With returns a copy with an extra body member.
func (p *Problem) With(key string, value any) *Problem {
	c := p.clone()
	if c.Extra == nil {
		c.Extra = map[string]any{}
	}
	c.Extra[key] = value
	return c
}

// WithRetryAfter returns a copy that sends Retry-After.
func (p *Problem) WithRetryAfter(d time.Duration) *Problem {
	c := p.clone()
	c.RetryAfter = d
	return c
}

func newProblem(status int, code, title string) *Problem {
	return &Problem{Status: status, Code: code, Title: title}
}

// The table of problems. Codes are part of the public API: never rename one.
var (
	BadRequest            = newProblem(http.StatusBadRequest, "bad_request", "The request is malformed.")
	MalformedJSON         = newProblem(http.StatusBadRequest, "malformed_json", "The request body is not valid JSON.")
	UnknownField          = newProblem(http.StatusBadRequest, "unknown_field", "The request body has a field this endpoint does not accept.")
	InvalidField          = newProblem(http.StatusBadRequest, "invalid_field", "A field of the request body is invalid.")
	MissingField          = newProblem(http.StatusBadRequest, "missing_field", "A required field is missing.")
	InvalidEmail          = newProblem(http.StatusBadRequest, "invalid_email", "The e-mail address is not valid.")
	InvalidPhone          = newProblem(http.StatusBadRequest, "invalid_phone", "The phone number is not valid or cannot receive text messages.")
	PhoneTaken            = newProblem(http.StatusConflict, "phone_taken", "This phone number belongs to another account.")
	EmailChangeLocked     = newProblem(http.StatusConflict, "email_change_locked", "The e-mail address was changed recently and can still be changed back from the previous address. Try again later.")
	WeakPassword          = newProblem(http.StatusBadRequest, "weak_password", "The password does not meet the password policy.")
	BodyTooLarge          = newProblem(http.StatusRequestEntityTooLarge, "body_too_large", "The request body is too large.")
	UnsupportedMedia      = newProblem(http.StatusUnsupportedMediaType, "unsupported_media_type", "The request body must be application/json.")
	Unauthenticated       = newProblem(http.StatusUnauthorized, "unauthenticated", "Authentication is required.")
	InvalidCredentials    = newProblem(http.StatusUnauthorized, "invalid_credentials", "The e-mail address or password is incorrect.")
	InvalidGrant          = newProblem(http.StatusUnauthorized, "invalid_grant", "The refresh token is invalid, expired or revoked.")
	RefreshReused         = newProblem(http.StatusUnauthorized, "refresh_token_reused", "The refresh token was already used. The session has been revoked; sign in again.")
	ReauthRequired        = newProblem(http.StatusForbidden, "reauthentication_required", "This action needs a recent sign-in. Re-authenticate and try again.")
	CrossOrigin           = newProblem(http.StatusForbidden, "cross_origin_request", "Cross-origin state-changing requests are refused.")
	IncorrectPassword     = newProblem(http.StatusForbidden, "incorrect_password", "The password is incorrect.")
	InvalidToken          = newProblem(http.StatusBadRequest, "invalid_token", "The link is invalid, expired or already used. Ask for a new one.")
	InvalidCode           = newProblem(http.StatusUnauthorized, "invalid_code", "The code is incorrect or expired.")
	InvalidChallenge      = newProblem(http.StatusUnauthorized, "invalid_challenge", "The sign-in challenge is invalid, expired or used up. Sign in again.")
	ExtraProofRequired    = newProblem(http.StatusForbidden, "extra_proof_required", "Too many failed sign-ins on this account. Sign in with a code sent by e-mail, a sign-in link or a passkey, or from a device you have signed in with before.")
	StepUpRequired        = newProblem(http.StatusUnauthorized, "step_up_required", "This session is being used from an unusual place or device. Sign in again to continue.")
	RiskDenied            = newProblem(http.StatusUnauthorized, "risk_denied", "This session was ended because it was used from a place or device that could not be the owner's. Sign in again.")
	AdminRequired         = newProblem(http.StatusForbidden, "admin_required", "This action is for administrators.")
	IPBlocked             = newProblem(http.StatusForbidden, "ip_blocked", "Requests from this network address are not accepted.")
	MFAEnrollmentRequired = newProblem(http.StatusForbidden, "mfa_enrollment_required", "This server requires a second factor. Add an authenticator app or a passkey, then re-authenticate with it.")
	InvalidCeremony       = newProblem(http.StatusUnauthorized, "invalid_ceremony", "The passkey ceremony is invalid, expired or already used. Start again.")
	PasskeyRefused        = newProblem(http.StatusUnauthorized, "passkey_refused", "The passkey or security key was not accepted.")
	SMSUnavailable        = newProblem(http.StatusNotFound, "sms_unavailable", "Text messages are not enabled on this server.")
	NotFound              = newProblem(http.StatusNotFound, "not_found", "The resource does not exist.")
	MethodNotAllowed      = newProblem(http.StatusMethodNotAllowed, "method_not_allowed", "The method is not allowed on this resource.")
	EmailTaken            = newProblem(http.StatusConflict, "email_taken", "An account with this e-mail address already exists.")
	Conflict              = newProblem(http.StatusConflict, "conflict", "The resource changed concurrently. Try again.")
	RateLimited           = newProblem(http.StatusTooManyRequests, "rate_limited", "Too many attempts. Wait and try again.")
	Overloaded            = newProblem(http.StatusServiceUnavailable, "overloaded", "The server is busy. Try again shortly.")
	Unavailable           = newProblem(http.StatusServiceUnavailable, "unavailable", "A dependency is unavailable.")
	Internal              = newProblem(http.StatusInternalServerError, "internal_error", "An internal error occurred.")
)

// ContentType is the media type of problem bodies.
const ContentType = "application/problem+json"

type recorderKey struct{}

// WithRecorder returns a context in which Write records the code of the
// problem it renders, and where it will be ("" until then): metrics label
// requests with it.
func WithRecorder(ctx context.Context) (context.Context, *string) {
	code := new(string)
	return context.WithValue(ctx, recorderKey{}, code), code
}

// Write renders err as a problem response. A *Problem in err's chain is sent
// as is; any other error becomes internal_error and is logged with its cause.
// Problems with a private cause are logged at warn (4xx) or error (5xx).
func Write(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var p *Problem
	if !errors.As(err, &p) {
		p = Internal.Wrap(err)
	}
	if log != nil && (p.Status >= 500 || p.cause != nil) {
		level := slog.LevelWarn
		if p.Status >= 500 {
			level = slog.LevelError
		}
		log.LogAttrs(r.Context(), level, "request failed",
			slog.String("code", p.Code), slog.Int("status", p.Status),
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.String("request_id", w.Header().Get("X-Request-Id")),
			slog.Any("error", err))
	}
	if code, ok := r.Context().Value(recorderKey{}).(*string); ok {
		*code = p.Code
	}
	body := map[string]any{}
	for k, v := range p.Extra {
		body[k] = v
	}
	body["type"] = TypeBase + p.Code
	body["title"] = p.Title
	body["status"] = p.Status
	body["code"] = p.Code
	if p.Detail != "" {
		body["detail"] = p.Detail
	}
	if id := w.Header().Get("X-Request-Id"); id != "" {
		body["request_id"] = id
	}
	h := w.Header()
	h.Set("Content-Type", ContentType)
	h.Set("Cache-Control", "no-store")
	if p.Status == http.StatusUnauthorized && h.Get("WWW-Authenticate") == "" {
		h.Set("WWW-Authenticate", `Bearer realm="gatehouse"`) // RFC 9110 §15.5.2: a 401 carries a challenge
	}
	if p.RetryAfter > 0 {
		secs := int64((p.RetryAfter + time.Second - 1) / time.Second)
		h.Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(body)
}
