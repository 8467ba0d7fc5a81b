package token

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/audit"
	"github.com/gatehouse-auth/gatehouse/internal/httpx"
	"github.com/gatehouse-auth/gatehouse/internal/id"
	"github.com/gatehouse-auth/gatehouse/internal/risk"
	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// Revocation reasons this package stores on sessions.
const (
	ReasonRefreshReused = "refresh_token_reused"
	ReasonTokenRevoked  = "token_revoked"
	// ReasonRiskDenied: a refresh scored in the deny band (risk).
	ReasonRiskDenied = "risk_denied"
)

// refreshPath scopes the refresh cookie: the browser sends it to the
// refresh endpoint and nowhere else.
const refreshPath = "/v1/token/"

// Grant is a new token-mode session with the first member of its refresh
// family, built before the transaction that stores it.
type Grant struct {
	Session *store.Session
	Client  string
	refresh id.Secret
	first   *store.RefreshToken
}

// Begin builds a token-mode session for userID (never reusing anything the
// client sent) and its first refresh token. The caller stores it with
// Create inside its transaction and answers with Respond after commit.
func (s *Service) Begin(r *http.Request, userID string, amr []string, client string) *Grant {
	sess, _ := s.Sessions.New(r, userID, amr) // the cookie secret is never handed out
	sess.Kind = store.SessionToken
	sess.ExpiresAt = sess.CreatedAt.Add(s.cfg.RefreshLifetime)
	secret := id.NewSecret(RefreshPrefix)
	return &Grant{
		Session: sess,
		Client:  client,
		refresh: secret,
		first:   s.newRefresh(sess, secret, sess.CreatedAt),
	}
}

// Create stores the grant's session and first refresh token in tx.
func (g *Grant) Create(ctx context.Context, tx store.Tx) error {
	if err := tx.Sessions().CreateSession(ctx, g.Session); err != nil {
		return err
	}
	return tx.RefreshTokens().CreateRefreshToken(ctx, g.first)
}

// Respond answers a sign-in or sign-up in token mode: the access token,
// and the refresh token in a cookie (browser) or the body (native). extra
// members (the user, the session) are added to the body.
func (s *Service) Respond(w http.ResponseWriter, status int, g *Grant, extra map[string]any) error {
	resp, err := s.response(g.Session, g.refresh, g.Client == ClientNative)
	if err != nil {
		return err
	}
	if g.Client != ClientNative {
		s.setCookie(w, g.refresh, g.first.ExpiresAt)
	}
	body := map[string]any{
		"access_token": resp.AccessToken, "token_type": resp.TokenType, "expires_in": resp.ExpiresIn,
	}
	if resp.RefreshToken != "" {
		body["refresh_token"] = resp.RefreshToken
	}
	for k, v := range extra {
		body[k] = v
	}
	noStore(w)
	return httpx.WriteJSON(w, status, body)
}

func (s *Service) newRefresh(sess *store.Session, secret id.Secret, now time.Time) *store.RefreshToken {
	exp := now.Add(s.cfg.RefreshIdle)
	if exp.After(sess.ExpiresAt) {
		exp = sess.ExpiresAt
	}
	return &store.RefreshToken{ID: id.New("rt"), SessionID: sess.ID, Hash: secret.Hash(), CreatedAt: now, ExpiresAt: exp}
}

// sealSuccessor seals the successor's secret under a key derived from the
// presented token's own secret: a grace-window replay (which presents
// that token) can open it and get the same successor, while the store
// alone (a dump) cannot, and no server key is involved.
func sealSuccessor(presented, next id.Secret, tokenID string) ([]byte, error) {
	aead, err := successorAEAD(presented)
	if err != nil {
		return nil, err
	}
	return aead.Seal(nil, nil, []byte(next), []byte(tokenID)), nil
}

// openSuccessor reverses sealSuccessor; false if sealed is absent or does
// not open with presented.
func openSuccessor(presented id.Secret, sealed []byte, tokenID string) (id.Secret, bool) {
	aead, err := successorAEAD(presented)
	if err != nil || len(sealed) == 0 {
		return "", false
	}
	plain, err := aead.Open(nil, nil, sealed, []byte(tokenID))
	if err != nil {
		return "", false
	}
	return id.ParseSecret(RefreshPrefix, string(plain))
}

func successorAEAD(presented id.Secret) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, []byte(presented), nil, "gatehouse refresh-token successor seal v1", 32)
	if err != nil {
		return nil, fmt.Errorf("token: derive seal key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("token: seal cipher: %w", err)
	}
	return cipher.NewGCMWithRandomNonce(block)
}

// channel names how a refresh token travels; the grace window only
// forgives a replay over the same channel from the same user agent.
const (
	channelCookie = "cookie"
	channelBody   = "body"
)

// fingerprint identifies "the same client" for the grace window: channel
// and user agent. The IP is left out on purpose: two tabs may reach the
// server over IPv4 and IPv6, and phones change networks.
func fingerprint(channel string, r *http.Request) string {
	h := sha256.Sum256([]byte(channel + "\x00" + r.UserAgent()))
	return hex.EncodeToString(h[:16])
}

var (
	errInvalidGrant = errors.New("token: invalid grant")
	errReused       = errors.New("token: refresh token reused")
	errStepUp       = errors.New("token: refresh needs a new sign-in (risk)")
	errRiskDenied   = errors.New("token: refresh denied (risk)")
)

// rotated is the outcome of a successful rotation.
type rotated struct {
	session *store.Session
	next    id.Secret
	expires time.Time
}

// rotate consumes presented and returns its successor, in one transaction:
//
//   - unused and live: mark it used (compare-and-set: concurrent rotations
//     serialize on the row and exactly one wins), insert the successor in
//     the same family, record activity on the session;
//   - already used, within the grace window, by the same client: the same
//     successor again (two tabs racing must not log the user out);
//   - already used otherwise: reuse. The whole session is revoked and
//     audited (committed), and errReused is returned.
//
// Anything else (unknown, expired, revoked session) is errInvalidGrant.
func (s *Service) rotate(r *http.Request, presented id.Secret, channel string) (*rotated, error) {
	ctx := r.Context()
	now := s.Sessions.Now()
	client := fingerprint(channel, r)
	ip := ""
	if a := httpx.ClientIP(r); a.IsValid() {
		ip = a.String()
	}
	var (
		out        *rotated
		reused     string // the session revoked for reuse
		judged     *risk.Assessment
		judgedSess *store.Session
		denied     string // the session revoked for risk
	)
	err := s.DB.InTx(ctx, func(tx store.Tx) error {
		out, reused, judged, denied = nil, "", nil, ""
		t, err := tx.RefreshTokens().RefreshTokenByHash(ctx, presented.Hash())
		if errors.Is(err, store.ErrNotFound) {
			return errInvalidGrant
		}
		if err != nil {
			return err
		}
		sess, err := tx.Sessions().SessionByID(ctx, t.SessionID)
		if err != nil {
			return err
		}
		if sess.Kind != store.SessionToken || !s.Sessions.Live(sess, now) {
			return errInvalidGrant
		}
		if t.UsedAt == nil {
			if !now.Before(t.ExpiresAt) {
				return errInvalidGrant
			}
			if s.Risk != nil {
				a := s.assess(r, sess, now)
				judged, judgedSess = &a, sess
				if a.Decision == risk.StepUp && s.StepUps != nil {
					if n, _ := s.StepUps.Reserve(ctx, "stepup:"+sess.ID); n > MaxStepUps {
						a.Decision = risk.Deny
						a.Reasons = append(a.Reasons, "step_up_retries")
					}
				}
				switch a.Decision {
				case risk.StepUp:
					return errStepUp // nothing consumed: the token stays valid
				case risk.Deny:
					denied = sess.ID
					if _, err := tx.Sessions().RevokeSession(ctx, sess.ID, now, ReasonRiskDenied); err != nil {
						return err
					}
					return tx.Audit().AppendEvent(ctx, riskEvent(r, now, sess, a))
				case risk.Audit:
					if err := tx.Audit().AppendEvent(ctx, riskEvent(r, now, sess, a)); err != nil {
						return err
					}
				}
			}
			next := id.NewSecret(RefreshPrefix)
			sealed, err := sealSuccessor(presented, next, t.ID)
			if err != nil {
				return err
			}
			err = tx.RefreshTokens().MarkRefreshTokenUsed(ctx, t.ID, now, client, sealed)
			if err == nil {
				// Only tokens still inside the grace window keep a sealed
				// successor: older ones could only serve to walk the family.
				if err := tx.RefreshTokens().ForgetRefreshSuccessors(ctx, sess.ID, now.Add(-s.cfg.Grace)); err != nil {
					return err
				}
				succ := s.newRefresh(sess, next, now)
				if err := tx.RefreshTokens().CreateRefreshToken(ctx, succ); err != nil {
					return err
				}
				if err := tx.Sessions().TouchSession(ctx, sess.ID, now, ip, clip(r.UserAgent(), 512)); err != nil {
					return err
				}
				sess.LastSeenAt = now
				out = &rotated{session: sess, next: next, expires: succ.ExpiresAt}
				return nil
			}
			if !errors.Is(err, store.ErrConflict) {
				return err
			}
			// A concurrent rotation won: decide as for a used token.
			if t, err = tx.RefreshTokens().RefreshTokenByHash(ctx, presented.Hash()); err != nil {
				return err
			}
		}
		if t.UsedAt != nil && now.Sub(*t.UsedAt) <= s.cfg.Grace && t.Client == client {
			if next, ok := openSuccessor(presented, t.Successor, t.ID); ok {
				succ, err := tx.RefreshTokens().RefreshTokenByHash(ctx, next.Hash())
				if err == nil {
					out = &rotated{session: sess, next: next, expires: succ.ExpiresAt}
					return nil
				}
				if !errors.Is(err, store.ErrNotFound) {
					return err
				}
			}
			// No successor to give back: treat it as reuse, never as a
			// server error that a client would retry into.
		}
		reused = sess.ID
		was, err := tx.Sessions().RevokeSession(ctx, sess.ID, now, ReasonRefreshReused)
		if err != nil || !was {
			return err
		}
		e := audit.New(r, now, audit.RefreshReused, sess.UserID, sess.ID)
		audit.With(e, "refresh_token_id", t.ID)
		audit.With(e, "channel", channel)
		return tx.Audit().AppendEvent(ctx, e)
	})
	if judged != nil && s.OnRisk != nil {
		s.OnRisk(judged.Decision.String())
	}
	if errors.Is(err, errStepUp) {
		// Recorded outside the rolled-back transaction, best effort.
		audit.Append(ctx, s.DB.Audit(), s.Log, riskEvent(r, now, judgedSess, *judged))
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	if reused != "" {
		s.Sessions.Revoked(ctx, reused)
		return nil, errReused
	}
	if denied != "" {
		s.Sessions.Revoked(ctx, denied)
		return nil, errRiskDenied
	}
	return out, nil
}

// assess scores this refresh against the session's last use (its address,
// user agent and time, which every refresh and request updates).
func (s *Service) assess(r *http.Request, sess *store.Session, now time.Time) risk.Assessment {
	ip := ""
	if a := httpx.ClientIP(r); a.IsValid() {
		ip = a.String()
	}
	prev := s.Risk.Observe(sess.LastSeenAt, sess.IP, sess.UserAgent, sess.ID)
	return s.Risk.Assess([]risk.Observation{prev}, s.Risk.Observe(now, ip, clip(r.UserAgent(), 512), sess.ID))
}

// riskEvent is the audit record of a risk decision on sess.
func riskEvent(r *http.Request, now time.Time, sess *store.Session, a risk.Assessment) *store.Event {
	e := audit.New(r, now, audit.RiskAssessed, sess.UserID, sess.ID)
	audit.With(e, "on", "refresh")
	audit.With(e, "decision", a.Decision.String())
	audit.With(e, "score", strconv.Itoa(a.Score))
	return audit.With(e, "reasons", strings.Join(a.Reasons, " "))
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// cookieName is the refresh cookie's name. __Secure- (not __Host-) because
// the cookie is scoped to the refresh path.
func (s *Service) cookieName() string {
	if s.cfg.Secure {
		return "__Secure-gh_refresh"
	}
	return "gh_refresh"
}

func (s *Service) setCookie(w http.ResponseWriter, secret id.Secret, expires time.Time) {
	http.SetCookie(w, &http.Cookie{
		Name:     s.cookieName(),
		Value:    string(secret),
		Path:     refreshPath,
		Expires:  expires,
		MaxAge:   int(expires.Sub(s.Sessions.Now()) / time.Second),
		Secure:   s.cfg.Secure,
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
	})
}

func (s *Service) clearCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name: s.cookieName(), Value: "", Path: refreshPath, MaxAge: -1,
		Secure: s.cfg.Secure, HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
}

// cookieTokens returns the values of every refresh cookie sent. More than
// one means a sibling subdomain tossed its own (it cannot be told apart):
// callers refuse, without clearing anything, so the tossed cookie never
// becomes the only one left.
func (s *Service) cookieTokens(r *http.Request) []string {
	var vals []string
	for _, c := range r.CookiesNamed(s.cookieName()) {
		vals = append(vals, c.Value)
	}
	return vals
}

func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
}
