package token

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/gatehouse-auth/gatehouse/internal/audit"
	"github.com/gatehouse-auth/gatehouse/internal/httpx"
	"github.com/gatehouse-auth/gatehouse/internal/id"
	"github.com/gatehouse-auth/gatehouse/internal/problem"
	"github.com/gatehouse-auth/gatehouse/internal/session"
	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/throttle"
)

// OAuthPaths are the endpoints called by non-browser clients with
// credentials in the body, never with cookies: they are exempt from the
// cross-origin check.
var OAuthPaths = []string{"/oauth2/token", "/oauth2/revoke", "/oauth2/introspect"}

// ClassTokenIP is the throttle class of the token endpoints (refresh,
// logout, OAuth token, revocation and introspection), per client IP.
const ClassTokenIP = "token_ip"

// Register adds the token routes to mux.
func (s *Service) Register(mux *http.ServeMux, adapt func(httpx.HandlerFunc) http.Handler) {
	mux.Handle("POST /v1/token/refresh", s.limited(adapt(s.refresh)))
	mux.Handle("POST /v1/token/logout", s.limited(adapt(s.logout)))
	mux.Handle("POST /oauth2/token", s.limited(http.HandlerFunc(s.oauthToken)))
	mux.Handle("POST /oauth2/revoke", s.limited(http.HandlerFunc(s.oauthRevoke)))
	mux.Handle("POST /oauth2/introspect", s.limited(s.ResourceServers.Require(http.HandlerFunc(s.oauthIntrospect))))
	mux.HandleFunc("GET /.well-known/openid-configuration", s.discovery)
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", s.discovery) // RFC 8414
}

// refresh is the first-party refresh: the token comes from the refresh
// cookie (browsers) or a JSON body (native apps), never both.
func (s *Service) refresh(w http.ResponseWriter, r *http.Request) error {
	presented, channel, err := s.presented(w, r)
	if err != nil {
		return err
	}
	rot, err := s.rotate(r, presented, channel)
	if err != nil {
		if channel == channelCookie && (errors.Is(err, errInvalidGrant) || errors.Is(err, errReused) || errors.Is(err, errRiskDenied)) {
			s.clearCookie(w)
		}
		return grantProblem(err)
	}
	resp, err := s.response(rot.session, rot.next, channel == channelBody)
	if err != nil {
		return err
	}
	if channel == channelCookie {
		s.setCookie(w, rot.next, rot.expires)
	}
	noStore(w)
	return httpx.WriteJSON(w, http.StatusOK, resp)
}

// presented reads the refresh token of a first-party request: from the
// refresh cookie (browsers) or a JSON body (native apps), never both.
func (s *Service) presented(w http.ResponseWriter, r *http.Request) (id.Secret, string, error) {
	cookies := s.cookieTokens(r)
	hasBody := r.ContentLength != 0 || r.Header.Get("Content-Type") != ""
	switch {
	case hasBody && len(cookies) > 0:
		return "", "", problem.BadRequest.WithDetail("Send the refresh token in the cookie or in the body, not both.")
	case hasBody:
		var req struct {
			RefreshToken string `json:"refresh_token"`
		}
		if err := httpx.DecodeJSON(w, r, &req); err != nil {
			return "", "", err
		}
		t, ok := id.ParseSecret(RefreshPrefix, req.RefreshToken)
		if !ok {
			return "", "", problem.InvalidGrant
		}
		return t, channelBody, nil
	case len(cookies) > 1:
		return "", "", problem.InvalidGrant.WithDetail("More than one refresh cookie was sent.")
	case len(cookies) == 1:
		t, ok := id.ParseSecret(RefreshPrefix, cookies[0])
		if !ok {
			s.clearCookie(w)
			return "", "", problem.InvalidGrant
		}
		return t, channelCookie, nil
	default:
		return "", "", problem.InvalidGrant.WithDetail("No refresh token was sent.")
	}
}

// logout ends the session of the presented refresh token: the way out for
// a browser whose access token (kept in memory) is gone, since the
// HttpOnly refresh cookie is sent to the refresh path only. Idempotent:
// 204 whether or not the token was live.
func (s *Service) logout(w http.ResponseWriter, r *http.Request) error {
	presented, channel, err := s.presented(w, r)
	if errors.Is(err, problem.InvalidGrant) {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err != nil {
		return err
	}
	sid, uid, found, err := s.sessionOf(r.Context(), string(presented))
	if err == nil && found {
		err = s.endSession(r, sid, uid, session.ReasonLogout, audit.LoggedOut)
	}
	if err != nil {
		return fmt.Errorf("token: logout: %w", err)
	}
	if channel == channelCookie {
		s.clearCookie(w)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// limited counts the request against the per-IP token_ip limit before h
// runs (before any token or credential is looked up): 429 rate_limited
// with Retry-After over it.
func (s *Service) limited(h http.Handler) http.Handler {
	if s.Throttle == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d := s.Throttle.Attempt(r.Context(), throttle.Key{Class: ClassTokenIP, ID: throttle.IPKey(httpx.ClientIP(r))}); d.Wait > 0 {
			problem.Write(w, r, s.Log, problem.RateLimited.WithRetryAfter(d.Wait))
			return
		}
		h.ServeHTTP(w, r)
	})
}

func grantProblem(err error) error {
	switch {
	case errors.Is(err, errReused):
		return problem.RefreshReused.With("error", "invalid_grant")
	case errors.Is(err, errInvalidGrant):
		return problem.InvalidGrant.With("error", "invalid_grant")
	case errors.Is(err, errStepUp):
		return problem.StepUpRequired
	case errors.Is(err, errRiskDenied):
		return problem.RiskDenied.With("error", "invalid_grant")
	default:
		return fmt.Errorf("token: refresh: %w", err)
	}
}

// oauthError is an RFC 6749 §5.2 error body.
type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

func (s *Service) writeOAuthError(w http.ResponseWriter, r *http.Request, status int, code, desc string) {
	noStore(w)
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="gatehouse"`)
	}
	_ = httpx.WriteJSON(w, status, oauthError{Error: code, Description: desc})
}

// maxFormBytes bounds OAuth form bodies.
const maxFormBytes = 16 << 10

// parseForm reads an application/x-www-form-urlencoded body, refusing
// repeated parameters (RFC 6749 §3.2). It returns a description of what is
// wrong, or "".
func parseForm(w http.ResponseWriter, r *http.Request) (url.Values, string) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, "The body must be application/x-www-form-urlencoded."
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return nil, "The body is not a valid form."
	}
	for k, v := range r.PostForm {
		if len(v) > 1 {
			return nil, "Parameter " + k + " is repeated."
		}
	}
	return r.PostForm, ""
}

// oauthToken is the OAuth 2.0 token endpoint; so far it serves the
// refresh_token grant for public clients (no client authentication).
// Errors follow RFC 6749 §5.2 (400 invalid_grant, also for reuse).
func (s *Service) oauthToken(w http.ResponseWriter, r *http.Request) {
	form, bad := parseForm(w, r)
	if bad != "" {
		s.writeOAuthError(w, r, http.StatusBadRequest, "invalid_request", bad)
		return
	}
	switch form.Get("grant_type") {
	case "refresh_token":
	case "":
		s.writeOAuthError(w, r, http.StatusBadRequest, "invalid_request", "grant_type is required.")
		return
	default:
		s.writeOAuthError(w, r, http.StatusBadRequest, "unsupported_grant_type", "Only the refresh_token grant is supported.")
		return
	}
	presented, ok := id.ParseSecret(RefreshPrefix, form.Get("refresh_token"))
	if !ok {
		s.writeOAuthError(w, r, http.StatusBadRequest, "invalid_grant", "The refresh token is invalid.")
		return
	}
	rot, err := s.rotate(r, presented, channelBody)
	switch {
	case errors.Is(err, errReused):
		s.writeOAuthError(w, r, http.StatusBadRequest, "invalid_grant", "The refresh token was already used; the session has been revoked.")
		return
	case errors.Is(err, errInvalidGrant):
		s.writeOAuthError(w, r, http.StatusBadRequest, "invalid_grant", "The refresh token is invalid, expired or revoked.")
		return
	case errors.Is(err, errStepUp):
		s.writeOAuthError(w, r, http.StatusBadRequest, "invalid_grant", "The session is being used from an unusual place or device; sign in again.")
		return
	case errors.Is(err, errRiskDenied):
		s.writeOAuthError(w, r, http.StatusBadRequest, "invalid_grant", "The session was revoked: it was used from a place or device that could not be the owner's.")
		return
	case err != nil:
		problem.Write(w, r, s.Log, fmt.Errorf("token: oauth refresh: %w", err))
		return
	}
	resp, err := s.response(rot.session, rot.next, true)
	if err != nil {
		problem.Write(w, r, s.Log, err)
		return
	}
	noStore(w)
	_ = httpx.WriteJSON(w, http.StatusOK, resp)
}

// sessionOf resolves a presented token of either kind to its session id
// and user: a refresh token by its hash, an access token by verification
// (signature, claims, revocation). ok is false for anything else.
func (s *Service) sessionOf(ctx context.Context, tok string) (sid, uid string, ok bool, err error) {
	if t, isRefresh := id.ParseSecret(RefreshPrefix, tok); isRefresh {
		rt, err := s.DB.RefreshTokens().RefreshTokenByHash(ctx, t.Hash())
		if errors.Is(err, store.ErrNotFound) {
			return "", "", false, nil
		}
		if err != nil {
			return "", "", false, err
		}
		sess, err := s.DB.Sessions().SessionByID(ctx, rt.SessionID)
		if err != nil {
			return "", "", false, err
		}
		return sess.ID, sess.UserID, true, nil
	}
	c, err := s.Verifier.Verify(ctx, tok)
	if err != nil {
		return "", "", false, nil
	}
	return c.SessionID, c.Subject, true, nil
}

// oauthRevoke is RFC 7009 revocation for public clients: possession of a
// refresh or access token is enough to end its session (the whole family:
// RFC 7009 §2.1 lets revoking a refresh token revoke its access tokens,
// and an access token's only handle is its session). The answer is 200
// whether or not the token was valid.
func (s *Service) oauthRevoke(w http.ResponseWriter, r *http.Request) {
	tok, ok := s.tokenParam(w, r)
	if !ok {
		return
	}
	sid, uid, found, err := s.sessionOf(r.Context(), tok)
	if err == nil && found {
		err = s.endSession(r, sid, uid, ReasonTokenRevoked, audit.TokenRevoked)
	}
	if err != nil {
		problem.Write(w, r, s.Log, fmt.Errorf("token: revoke: %w", err))
		return
	}
	noStore(w)
	w.WriteHeader(http.StatusOK)
}

// tokenParam reads the "token" parameter of a revocation or introspection
// form, answering the RFC 6749 error itself when it is missing.
func (s *Service) tokenParam(w http.ResponseWriter, r *http.Request) (string, bool) {
	form, bad := parseForm(w, r)
	if bad == "" && form.Get("token") == "" {
		bad = "token is required."
	}
	if bad != "" {
		s.writeOAuthError(w, r, http.StatusBadRequest, "invalid_request", bad)
		return "", false
	}
	return form.Get("token"), true
}

// endSession revokes session sid of user uid, records eventType in the
// same transaction, and broadcasts the revocation. Ending an ended
// session does nothing.
func (s *Service) endSession(r *http.Request, sid, uid, reason, eventType string) error {
	ctx := r.Context()
	now := s.Sessions.Now()
	err := s.DB.InTx(ctx, func(tx store.Tx) error {
		was, err := tx.Sessions().RevokeSession(ctx, sid, now, reason)
		if err != nil || !was {
			return err
		}
		return tx.Audit().AppendEvent(ctx, audit.New(r, now, eventType, uid, sid))
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	s.Sessions.Revoked(ctx, sid)
	return nil
}

// oauthIntrospect is RFC 7662 introspection for authenticated resource
// servers. An access token is active if it verifies (signature, claims,
// revocation set) and its session is still live in the store; a refresh
// token if it is unused, unexpired and its session live.
func (s *Service) oauthIntrospect(w http.ResponseWriter, r *http.Request) {
	tok, ok := s.tokenParam(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	body, err := s.introspect(ctx, tok)
	if err != nil {
		problem.Write(w, r, s.Log, fmt.Errorf("token: introspect: %w", err))
		return
	}
	noStore(w)
	_ = httpx.WriteJSON(w, http.StatusOK, body)
}

func (s *Service) introspect(ctx context.Context, tok string) (map[string]any, error) {
	inactive := map[string]any{"active": false}
	now := s.Sessions.Now()
	if t, isRefresh := id.ParseSecret(RefreshPrefix, tok); isRefresh {
		rt, err := s.DB.RefreshTokens().RefreshTokenByHash(ctx, t.Hash())
		if errors.Is(err, store.ErrNotFound) {
			return inactive, nil
		}
		if err != nil {
			return nil, err
		}
		sess, err := s.DB.Sessions().SessionByID(ctx, rt.SessionID)
		if err != nil {
			return nil, err
		}
		if rt.UsedAt != nil || !now.Before(rt.ExpiresAt) || !s.Sessions.Live(sess, now) {
			return inactive, nil
		}
		return map[string]any{
			"active": true, "token_type": "refresh_token", "client_id": ClientID, "iss": s.cfg.Issuer,
			"sub": sess.UserID, "sid": sess.ID, "exp": rt.ExpiresAt.Unix(), "iat": rt.CreatedAt.Unix(),
		}, nil
	}
	c, err := s.Verifier.Verify(ctx, tok)
	if err != nil {
		return inactive, nil
	}
	sess, err := s.DB.Sessions().SessionByID(ctx, c.SessionID)
	if errors.Is(err, store.ErrNotFound) {
		return inactive, nil
	}
	if err != nil {
		return nil, err
	}
	if sess.UserID != c.Subject || !s.Sessions.Live(sess, now) {
		return inactive, nil
	}
	return map[string]any{
		"active": true, "token_type": "Bearer", "client_id": c.ClientID, "iss": c.Issuer, "sub": c.Subject,
		"aud": c.Audience, "exp": c.ExpiresAt.Unix(), "iat": c.IssuedAt.Unix(), "nbf": c.NotBefore.Unix(),
		"jti": c.ID, "sid": c.SessionID, "auth_time": c.AuthTime.Unix(), "amr": c.AMR, "acr": c.ACR,
	}, nil
}

// discovery lists what this server offers so far, served both as RFC 8414
// authorization-server metadata and at the OpenID Connect discovery path
// (no authorization endpoint or ID tokens exist yet, so the OIDC members
// that name them are absent).
func (s *Service) discovery(w http.ResponseWriter, r *http.Request) {
	base := strings.TrimRight(s.cfg.Issuer, "/")
	doc := map[string]any{
		"issuer":                                        base,
		"jwks_uri":                                      base + "/.well-known/jwks.json",
		"token_endpoint":                                base + "/oauth2/token",
		"revocation_endpoint":                           base + "/oauth2/revoke",
		"introspection_endpoint":                        base + "/oauth2/introspect",
		"grant_types_supported":                         []string{"refresh_token"},
		"token_endpoint_auth_methods_supported":         []string{"none"},
		"revocation_endpoint_auth_methods_supported":    []string{"none"},
		"introspection_endpoint_auth_methods_supported": []string{"client_secret_basic"},
		"subject_types_supported":                       []string{"public"},
		"access_token_signing_alg_values_supported":     []string{"EdDSA", "ES256"},
		"gatehouse_revocation_feed_endpoint":            base + "/v1/revocations",
	}
	b, err := json.Marshal(doc)
	if err != nil {
		problem.Write(w, r, s.Log, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(b)
}
