// Package token owns token mode: JWT access tokens minted for a session,
// the family of rotating refresh tokens behind each token-mode session
// (rotation in one transaction, the same-client grace window, reuse
// detection that revokes the family), the refresh endpoints (/v1/token/
// refresh and the OAuth /oauth2/token), token revocation (RFC 7009),
// introspection for resource servers (RFC 7662) and the discovery document.
package token

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/id"
	"github.com/gatehouse-auth/gatehouse/internal/risk"
	"github.com/gatehouse-auth/gatehouse/internal/session"
	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/throttle"
)

// RefreshPrefix marks refresh tokens ("ghr_…") so secret scanners find
// leaked ones and no other secret is ever accepted as one.
const RefreshPrefix = "ghr"

// ClientID is the client_id claim of tokens issued to first-party apps
// through the /v1 API (RFC 9068 requires one).
const ClientID = "gatehouse-first-party"

// Client kinds: where the refresh token lives.
const (
	// ClientBrowser: in an HttpOnly, Secure, SameSite=Strict cookie scoped
	// to the refresh path; never visible to scripts.
	ClientBrowser = "browser"
	// ClientNative: in the response body, for apps with secure storage.
	ClientNative = "native"
)

// Config is the token policy.
type Config struct {
	Issuer          string
	Audience        string
	AccessTTL       time.Duration
	RefreshIdle     time.Duration
	RefreshLifetime time.Duration
	// Grace is how long a rotated refresh token may be presented again by
	// the same client and get the same successor; 0 makes every second
	// presentation a reuse.
	Grace time.Duration
	// Secure sets Secure and the __Secure- prefix on the refresh cookie.
	Secure bool
}

// Signer signs access-token claims (signing.Keyring).
type Signer interface {
	Sign(payload []byte) (string, error)
}

// Deps are what a Service works with.
type Deps struct {
	DB       store.Store
	Sessions *session.Manager
	Signer   Signer
	// Verifier checks access tokens presented for revocation and
	// introspection (the same verifier as the API's).
	Verifier        session.Verifier
	ResourceServers *ResourceServers
	// Throttle limits the token endpoints per client IP (ClassTokenIP);
	// nil: no limit.
	Throttle Throttler
	// Risk scores each refresh against the session's last use; nil: no
	// scoring.
	Risk *risk.Engine
	// StepUps counts the step-up answers of each session (a
	// throttle.Backoff that only counts); past MaxStepUps the session is
	// revoked as in the deny band, so a thief cannot retry the token from
	// address after address. nil: no cap.
	StepUps Counter
	// OnRisk, if set, counts each risk decision (a metric).
	OnRisk func(decision string)
	Log    *slog.Logger
}

// MaxStepUps is how many step-up answers a session gets (per day) before
// a further risky refresh revokes it.
const MaxStepUps = 5

// Counter counts attempts per key (throttle.Backoff).
type Counter interface {
	Reserve(ctx context.Context, key string) (n int64, wait time.Duration)
}

// Throttler decides rate limits (throttle.Throttle).
type Throttler interface {
	Attempt(ctx context.Context, keys ...throttle.Key) throttle.Decision
}

// Service issues, rotates, revokes and introspects tokens.
type Service struct {
	cfg Config
	Deps
}

// New returns a Service.
func New(cfg Config, d Deps) *Service {
	return &Service{cfg: cfg, Deps: d}
}

// accessClaims is the JWT body (RFC 9068 profile).
type accessClaims struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Audience string   `json:"aud"`
	Expires  int64    `json:"exp"`
	IssuedAt int64    `json:"iat"`
	NotBef   int64    `json:"nbf"`
	ID       string   `json:"jti"`
	Session  string   `json:"sid"`
	AuthTime int64    `json:"auth_time"`
	AMR      []string `json:"amr"`
	ACR      string   `json:"acr"`
	ClientID string   `json:"client_id"`
}

// Mint signs a new access token for session s; it returns the token and
// its lifetime.
func (s *Service) Mint(sess *store.Session) (string, time.Duration, error) {
	now := s.Sessions.Now()
	amr := sess.AMR
	if amr == nil {
		amr = []string{}
	}
	acr := "aal1"
	if sess.AAL >= 2 {
		acr = "aal2"
	}
	c := accessClaims{
		Issuer:   s.cfg.Issuer,
		Subject:  sess.UserID,
		Audience: s.cfg.Audience,
		Expires:  now.Add(s.cfg.AccessTTL).Unix(),
		IssuedAt: now.Unix(),
		NotBef:   now.Unix(),
		ID:       id.New("at"),
		Session:  sess.ID,
		AuthTime: sess.AuthTime.Unix(),
		AMR:      amr,
		ACR:      acr,
		ClientID: ClientID,
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", 0, fmt.Errorf("token: encode claims: %w", err)
	}
	tok, err := s.Signer.Sign(payload)
	if err != nil {
		return "", 0, fmt.Errorf("token: sign: %w", err)
	}
	return tok, s.cfg.AccessTTL, nil
}

// Response is the body of every token answer (RFC 6749 §5.1 members).
type Response struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
}

func (s *Service) response(sess *store.Session, refresh id.Secret, inBody bool) (Response, error) {
	at, ttl, err := s.Mint(sess)
	if err != nil {
		return Response{}, err
	}
	resp := Response{AccessToken: at, TokenType: "Bearer", ExpiresIn: int64(ttl / time.Second)}
	if inBody {
		resp.RefreshToken = string(refresh)
	}
	return resp, nil
}
