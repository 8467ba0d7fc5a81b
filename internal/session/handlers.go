package session

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mileusna/useragent"

	"github.com/gatehouse-auth/gatehouse/internal/audit"
	"github.com/gatehouse-auth/gatehouse/internal/httpx"
	"github.com/gatehouse-auth/gatehouse/internal/problem"
	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// Revocation reasons stored with revoked sessions.
const (
	ReasonLogout          = "logout"
	ReasonRevokedByUser   = "revoked_by_user"
	ReasonPasswordChanged = "password_changed"
	ReasonSuperseded      = "superseded"
	ReasonPasswordReset   = "password_reset"
	ReasonEmailChanged    = "email_changed"
	// ReasonSecondFactor: the account's first second factor was enrolled
	// from another session; this one signed in without it.
	ReasonSecondFactor = "second_factor_enabled"
	// ReasonEmailVerified: the first proof of an unverified account's
	// address ended the sessions opened before it.
	ReasonEmailVerified = "email_verified"
	// ReasonNotMe: the owner reported the session's sign-in as not theirs
	// (the link of the new-device notice).
	ReasonNotMe = "not_me"
)

// Register adds the device-control routes to mux.
func (m *Manager) Register(mux *http.ServeMux, adapt func(httpx.HandlerFunc) http.Handler) {
	mux.Handle("POST /v1/logout", adapt(m.logout))
	mux.Handle("GET /v1/sessions", adapt(RequireEnrolling(m.list)))
	mux.Handle("DELETE /v1/sessions/{id}", adapt(Require(m.revokeOne)))
	mux.Handle("POST /v1/sessions/revoke-others", adapt(Require(m.revokeOthers)))
	mux.Handle("GET /v1/forward-auth", http.HandlerFunc(m.forwardAuth))
}

// forwardAuth answers a reverse proxy's sub-request (nginx auth_request,
// Traefik ForwardAuth, Caddy forward_auth): 200 with the caller's identity
// in headers for a valid access token (verified with no store read) or
// session cookie, 401 otherwise. The proxy copies the X-Gatehouse-*
// headers to the upstream and must strip any the client sent.
func (m *Manager) forwardAuth(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	p, ok := FromContext(r.Context())
	if !ok {
		h.Set("WWW-Authenticate", `Bearer realm="gatehouse"`)
		problem.Write(w, r, nil, problem.Unauthenticated)
		return
	}
	if p.EnrolOnly {
		problem.Write(w, r, nil, problem.MFAEnrollmentRequired)
		return
	}
	if !p.Bearer && m.csrf != nil {
		// A cookie rides along on cross-site requests: apply to the
		// proxied request the cross-origin rule the API applies to its
		// own. A bearer token is never sent by a browser on its own.
		if err := m.csrf(proxiedRequest(r)); err != nil {
			problem.Write(w, r, m.log, problem.CrossOrigin)
			return
		}
	}
	h.Set("X-Gatehouse-User", p.User.ID)
	h.Set("X-Gatehouse-Session", p.Session.ID)
	h.Set("X-Gatehouse-AAL", strconv.Itoa(max(p.Session.AAL, 1)))
	h.Set("X-Gatehouse-AMR", strings.Join(p.Session.AMR, " "))
	h.Set("X-Gatehouse-Auth-Time", strconv.FormatInt(p.Session.AuthTime.Unix(), 10))
	w.WriteHeader(http.StatusOK)
}

// View is the JSON form of a session (a device).
type View struct {
	ID            string    `json:"id"`
	CreatedAt     time.Time `json:"created_at"`
	LastSeenAt    time.Time `json:"last_seen_at"`
	ExpiresAt     time.Time `json:"expires_at"`
	IdleExpiresAt time.Time `json:"idle_expires_at"`
	AuthTime      time.Time `json:"auth_time"`
	IP            string    `json:"ip,omitempty"`
	UserAgent     string    `json:"user_agent,omitempty"`
	Device        string    `json:"device"`
	Location      string    `json:"location,omitempty"`
	AAL           int       `json:"aal"`
	AMR           []string  `json:"amr"`
	Current       bool      `json:"current"`
	// MFAEnrollmentRequired: the deployment requires a second factor and
	// this session has not passed one (see Principal.EnrolOnly).
	MFAEnrollmentRequired bool `json:"mfa_enrollment_required,omitempty"`
}

// ViewOf renders s, a session of u, for the API; current marks the
// caller's own session.
func (m *Manager) ViewOf(s *store.Session, u *store.User, current bool) View {
	amr := s.AMR
	if amr == nil {
		amr = []string{}
	}
	return View{
		ID: s.ID, CreatedAt: s.CreatedAt, LastSeenAt: s.LastSeenAt, ExpiresAt: s.ExpiresAt,
		IdleExpiresAt: m.IdleExpiry(s), AuthTime: s.AuthTime, IP: s.IP, UserAgent: s.UserAgent,
		Device: DeviceLabel(s.UserAgent), Location: s.Location, AAL: s.AAL, AMR: amr, Current: current,
		MFAEnrollmentRequired: m.MFARequired(u) && !slices.Contains(amr, "mfa"),
	}
}

// labels memoizes DeviceLabel: a deployment sees few distinct user agents,
// and parsing one on every request was a measurable share of GET /v1/me.
var labels struct {
	sync.Mutex
	m map[string]string
}

// maxLabels bounds the memo (user agents are client-chosen strings).
const maxLabels = 10_000

// DeviceLabel turns a user agent into "Firefox on Linux".
func DeviceLabel(ua string) string {
	labels.Lock()
	l, ok := labels.m[ua]
	labels.Unlock()
	if ok {
		return l
	}
	l = parseLabel(ua)
	labels.Lock()
	if labels.m == nil {
		labels.m = map[string]string{}
	}
	if len(labels.m) < maxLabels {
		labels.m[ua] = l
	}
	labels.Unlock()
	return l
}

func parseLabel(ua string) string {
	if ua == "" {
		return "Unknown device"
	}
	p := useragent.Parse(ua)
	name, os := p.Name, p.OS
	switch {
	case name != "" && os != "":
		return name + " on " + os
	case name != "":
		return name
	case os != "":
		return "Unknown browser on " + os
	default:
		return "Unknown device"
	}
}

// proxiedRequest is the request the proxy is asking about, as far as the
// cross-origin check needs it: the original method (nginx: X-Original-Method
// as configured in the docs; Traefik and Caddy: X-Forwarded-Method) and
// host (X-Forwarded-Host); the browser's Sec-Fetch-Site and Origin headers
// arrive unchanged. Without a method header it is judged as a GET.
func proxiedRequest(r *http.Request) *http.Request {
	c := r.Clone(r.Context())
	c.Method = http.MethodGet
	for _, h := range []string{"X-Forwarded-Method", "X-Original-Method"} {
		if v := r.Header.Get(h); v != "" {
			c.Method = strings.ToUpper(v)
			break
		}
	}
	if v := r.Header.Get("X-Forwarded-Host"); v != "" {
		c.Host = v
	}
	return c
}

// logout revokes the caller's session, if any, and clears the cookie. It is
// idempotent: without a valid session it still answers 204.
func (m *Manager) logout(w http.ResponseWriter, r *http.Request) error {
	p, ok := FromContext(r.Context())
	if _, bearer := r.Header["Authorization"]; bearer && !ok {
		// The caller meant to end a token-mode session but its token is
		// invalid or expired: say so rather than pretend. A browser then
		// uses POST /v1/token/logout, which its refresh cookie reaches.
		return problem.Unauthenticated.WithDetail("The access token is invalid or expired; nothing was logged out. Use POST /v1/token/logout with the refresh token.")
	}
	m.ClearCookie(w)
	if !ok {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err := m.revoke(r, p, p.Session.ID, ReasonLogout, audit.LoggedOut); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (m *Manager) list(w http.ResponseWriter, r *http.Request, p *Principal) error {
	now := m.Now()
	sessions, err := m.db.Sessions().ListActiveSessions(r.Context(), p.User.ID, now)
	if err != nil {
		return fmt.Errorf("session: list: %w", err)
	}
	views := make([]View, 0, len(sessions))
	for _, s := range sessions {
		if !m.live(s, now) {
			continue
		}
		views = append(views, m.ViewOf(s, &p.User, s.ID == p.Session.ID))
	}
	return httpx.WriteJSON(w, http.StatusOK, map[string]any{"sessions": views})
}

// revokeOne revokes one of the caller's own sessions. Another user's id, an
// unknown id and an already ended session are all 404, so ids cannot be
// probed. Ending the current session is a logout; ending another needs a
// recent sign-in.
func (m *Manager) revokeOne(w http.ResponseWriter, r *http.Request, p *Principal) error {
	sid := r.PathValue("id")
	if sid == p.Session.ID {
		m.ClearCookie(w)
		if err := m.revoke(r, p, sid, ReasonLogout, audit.LoggedOut); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err := m.RequireFresh(r.Context(), p); err != nil {
		return err
	}
	s, err := m.db.Sessions().SessionByID(r.Context(), sid)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (s.UserID != p.User.ID || !m.live(s, m.Now()))) {
		return problem.NotFound.WithDetail("You have no active session with this id.")
	}
	if err != nil {
		return fmt.Errorf("session: revoke: %w", err)
	}
	if err := m.revoke(r, p, sid, ReasonRevokedByUser, audit.SessionRevoked); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// revoke ends session sid of p's user and records it, in one transaction.
func (m *Manager) revoke(r *http.Request, p *Principal, sid, reason, eventType string) error {
	ctx := r.Context()
	now := m.Now()
	err := m.db.InTx(ctx, func(tx store.Tx) error {
		was, err := tx.Sessions().RevokeSession(ctx, sid, now, reason)
		if err != nil || !was {
			return err
		}
		e := audit.New(r, now, eventType, p.User.ID, p.Session.ID)
		if sid != p.Session.ID {
			audit.With(e, "revoked_session_id", sid)
		}
		return tx.Audit().AppendEvent(ctx, e)
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("session: revoke: %w", err)
	}
	m.Revoked(ctx, sid)
	return nil
}

// revokeOthers is "log out of all other devices".
func (m *Manager) revokeOthers(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if err := m.RequireFresh(r.Context(), p); err != nil {
		return err
	}
	ctx := r.Context()
	now := m.Now()
	var ids []string
	err := m.db.InTx(ctx, func(tx store.Tx) error {
		var err error
		if ids, err = tx.Sessions().RevokeUserSessions(ctx, p.User.ID, p.Session.ID, now, ReasonRevokedByUser); err != nil {
			return err
		}
		e := audit.New(r, now, audit.OthersRevoked, p.User.ID, p.Session.ID)
		audit.With(e, "count", strconv.Itoa(len(ids)))
		return tx.Audit().AppendEvent(ctx, e)
	})
	if err != nil {
		return fmt.Errorf("session: revoke others: %w", err)
	}
	m.Revoked(ctx, ids...)
	return httpx.WriteJSON(w, http.StatusOK, map[string]int{"revoked": len(ids)})
}
