// Package audit owns the security event vocabulary (the stable event type
// names), the construction of events from requests, and the endpoint where
// users read their own security activity. Events are written through
// store.Audit, inside the same transaction as the change they record
// whenever there is one, so an action and its audit record land together.
package audit

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/httpx"
	"github.com/gatehouse-auth/gatehouse/internal/problem"
	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// Event types. They are part of the public API (GET /v1/activity, exports):
// never rename one.
const (
	SignedUp       = "user.signed_up"
	LoginSucceeded = "login.succeeded"
	LoginFailed    = "login.failed"
	LoginThrottled = "login.throttled"
	// AccountProtected: a password attempt on an account was refused
	// because too many were made from unfamiliar devices (then only known
	// devices may use the password) or from known ones (then none may);
	// once per window (details: devices "unfamiliar" or "known").
	AccountProtected = "account.protected"
	// RiskAssessed: a sign-in or refresh scored above the allow band
	// (details: on "sign_in" or "refresh", decision, score, reasons).
	RiskAssessed      = "risk.assessed"
	LoggedOut         = "session.logged_out"
	SessionRevoked    = "session.revoked"
	OthersRevoked     = "session.revoked_others"
	Reauthenticated   = "session.reauthenticated"
	PasswordChanged   = "password.changed"
	PasswordRehashed  = "password.rehashed"
	ReauthFailed      = "reauthentication.failed"
	UserImported      = "user.imported"
	SignupEmailExists = "signup.email_taken"
	// RefreshReused: a rotated refresh token came back after the grace
	// window (or from another client): the session was revoked.
	RefreshReused = "refresh_token.reused"
	// TokenRevoked: a client revoked a token (RFC 7009); its session ended.
	TokenRevoked = "token.revoked"
	// VerificationSent: a link or code was sent (details: purpose,
	// channel, message_id).
	VerificationSent = "verification.sent"
	// VerificationFailed: a wrong one-time code (details: purpose,
	// attempts); the code dies at the limit.
	VerificationFailed = "verification.failed"
	// NoticeSent: an e-mail that needs no answer was sent (details: kind,
	// message_id): password changed, address changed, sign-up attempted.
	NoticeSent           = "notice.sent"
	EmailVerified        = "email.verified"
	EmailChangeRequested = "email.change_requested"
	EmailChanged         = "email.changed"
	// EmailChangeReverted: the old address undid a change of address; the
	// account's sessions, password and phone number were cleared.
	EmailChangeReverted = "email.change_reverted"
	PasswordReset       = "password.reset"
	PhoneVerified       = "phone.verified"
	PhoneRemoved        = "phone.removed"
	// MFAFailed: a wrong second factor (details: method).
	MFAFailed                = "mfa.failed"
	MFAEnabled               = "mfa.totp_enabled"
	MFADisabled              = "mfa.totp_disabled"
	RecoveryCodesRegenerated = "mfa.recovery_codes_regenerated"
	// AdminGranted and AdminRevoked: `gatehouse users admin` changed the
	// administrator mark (details: by).
	AdminGranted = "user.admin_granted"
	AdminRevoked = "user.admin_revoked"
	// WebAuthnRegistered: a passkey or security key was added (details:
	// credential, type).
	WebAuthnRegistered = "webauthn.registered"
	WebAuthnRenamed    = "webauthn.renamed"
	WebAuthnRemoved    = "webauthn.removed"
	// WebAuthnFailed: a registration or assertion was refused (details:
	// ceremony, reason, credential when known). A signature counter that
	// went backwards is reason "sign_count" (a cloned authenticator).
	WebAuthnFailed = "webauthn.failed"
	// IPBanned: the credential-stuffing detector denied a block of client
	// addresses for a while (details: prefix, accounts, expires_at).
	IPBanned = "ip.banned"
	// IPRuleChanged: an operator put or deleted an allow or deny rule of
	// client addresses (details: prefix, action, op "put" or "delete";
	// by "cli" from the command line).
	IPRuleChanged = "ip.rule_changed"
	// SessionReportedNotMe: the owner said a new device's sign-in was not
	// them (POST /v1/not-me): that session was revoked (details:
	// session_revoked "true", or "false" if it had already ended) and a
	// password reset begun. The new-device e-mail itself is a NoticeSent
	// of kind "new_device" (details also purpose "not_me", location).
	SessionReportedNotMe = "session.reported_not_me"
)

// New builds an event of type typ from the request: time, client IP and
// user agent. userID and sessionID may be empty.
func New(r *http.Request, now time.Time, typ, userID, sessionID string) *store.Event {
	e := &store.Event{
		Type:      typ,
		UserID:    userID,
		SessionID: sessionID,
		At:        now,
	}
	if r != nil {
		if ip := httpx.ClientIP(r); ip.IsValid() {
			e.IP = ip.String()
		}
		e.UserAgent = truncate(r.UserAgent(), 512)
	}
	return e
}

// With adds a detail to e and returns it. Details must never hold secrets.
func With(e *store.Event, key, value string) *store.Event {
	if e.Details == nil {
		e.Details = map[string]string{}
	}
	e.Details[key] = value
	return e
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// Append writes e through a, logging (not failing) when it cannot: it is
// used for events outside any transaction, such as failed sign-ins, where
// the request's outcome must not depend on the audit write.
func Append(ctx context.Context, a store.Audit, log *slog.Logger, e *store.Event) {
	if err := a.AppendEvent(ctx, e); err != nil {
		log.ErrorContext(ctx, "audit write failed", slog.String("type", e.Type), slog.Any("error", err))
	}
}

// UserFunc returns the authenticated user's id, or ok=false.
type UserFunc func(r *http.Request) (userID string, ok bool)

// Describe labels an event's origin for people: the device of a user
// agent ("Firefox on Linux") and the place of an address ("Lyon, FR"; ""
// when unknown).
type Describe struct {
	Device func(userAgent string) string
	Place  func(ip string) string
}

// ActivityHandler serves GET /v1/activity: the caller's own security events,
// newest first, with the device and place they came from, paginated with
// ?limit= (1..100, default 20) and ?before=<id> (the next_before of the
// previous page).
func ActivityHandler(a store.Audit, user UserFunc, describe Describe) httpx.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		uid, ok := user(r)
		if !ok {
			return problem.Unauthenticated
		}
		q := r.URL.Query()
		limit, err := intParam(q.Get("limit"), 20, 1, 100, "limit")
		if err != nil {
			return err
		}
		before, err := intParam(q.Get("before"), 0, 1, 1<<62, "before")
		if err != nil {
			return err
		}
		events, err := a.ListUserEvents(r.Context(), uid, int64(before), limit+1)
		if err != nil {
			return fmt.Errorf("audit: list events: %w", err)
		}
		type item struct {
			ID        int64             `json:"id"`
			Type      string            `json:"type"`
			At        time.Time         `json:"at"`
			IP        string            `json:"ip,omitempty"`
			UserAgent string            `json:"user_agent,omitempty"`
			Device    string            `json:"device,omitempty"`
			Location  string            `json:"location,omitempty"`
			SessionID string            `json:"session_id,omitempty"`
			Details   map[string]string `json:"details,omitempty"`
		}
		resp := struct {
			Events     []item `json:"events"`
			NextBefore *int64 `json:"next_before,omitempty"`
		}{Events: []item{}}
		for i, e := range events {
			if i == limit {
				next := events[i-1].ID
				resp.NextBefore = &next
				break
			}
			it := item{ID: e.ID, Type: e.Type, At: e.At, IP: e.IP, UserAgent: e.UserAgent, SessionID: e.SessionID, Details: e.Details}
			if e.UserAgent != "" && describe.Device != nil {
				it.Device = describe.Device(e.UserAgent)
			}
			if e.IP != "" && describe.Place != nil {
				it.Location = describe.Place(e.IP)
			}
			resp.Events = append(resp.Events, it)
		}
		return httpx.WriteJSON(w, http.StatusOK, resp)
	}
}

func intParam(s string, def, min, max int, name string) (int, error) {
	if s == "" {
		return def, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < min || v > max {
		return 0, problem.BadRequest.WithDetail("Query parameter %q must be an integer from %d to %d.", name, min, max).With("field", name)
	}
	return v, nil
}
