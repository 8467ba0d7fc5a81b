// Package session owns cookie sessions: the record created at every
// sign-in, the __Host- cookie that carries its secret, the middleware that
// authenticates requests with it (with a per-replica cache kept honest by
// invalidations on the ephemeral bus), idle and absolute expiry, step-up
// freshness, and the device-control endpoints (list, revoke one, revoke
// others, log out).
package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/httpx"
	"github.com/gatehouse-auth/gatehouse/internal/id"
	"github.com/gatehouse-auth/gatehouse/internal/problem"
	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// TokenPrefix marks session secrets ("ghs_…") so scanners recognise leaked
// ones and no other kind of token is accepted as a session.
const TokenPrefix = "ghs"

// touchInterval bounds how often activity is written back: idle expiry has
// this granularity, and a busy session costs one write per interval, not
// one per request.
const touchInterval = time.Minute

// Config is the session policy.
type Config struct {
	IdleTimeout  time.Duration
	Lifetime     time.Duration
	ReauthMaxAge time.Duration
	// CacheTTL bounds how long a replica trusts its cached copy of a session
	// if an invalidation is lost; 0 disables the cache.
	CacheTTL time.Duration
	// Secure sets the cookie's Secure attribute and __Host- prefix. Only
	// plain-http localhost development turns it off.
	Secure bool
}

// Bus carries invalidations to every replica (ephemeral.Store satisfies it).
type Bus interface {
	Publish(ctx context.Context, channel string, msg []byte) error
	Subscribe(ctx context.Context, channel string, handler func(msg []byte), onReset func()) error
}

const busChannel = "session-invalidation"

// Manager creates, authenticates and revokes sessions.
type Manager struct {
	cfg   Config
	db    store.Store
	bus   Bus
	log   *slog.Logger
	now   func() time.Time
	cache *cache
}

// NewManager returns a Manager. now may be nil (time.Now).
func NewManager(cfg Config, db store.Store, bus Bus, log *slog.Logger, now func() time.Time) *Manager {
	if now == nil {
		now = time.Now
	}
	return &Manager{cfg: cfg, db: db, bus: bus, log: log, now: now, cache: newCache(cfg.CacheTTL, now)}
}

// Start subscribes to invalidations from other replicas; it returns once the
// subscription is live and keeps it until ctx is done.
func (m *Manager) Start(ctx context.Context) error {
	return m.bus.Subscribe(ctx, busChannel, m.cache.apply, m.cache.flush)
}

// Now is the manager's clock.
func (m *Manager) Now() time.Time { return m.now().UTC().Truncate(time.Microsecond) }

// CookieName is the session cookie's name.
func (m *Manager) CookieName() string {
	if m.cfg.Secure {
		return "__Host-gh_session"
	}
	return "gh_session"
}

// Principal is the authenticated caller of a request.
type Principal struct {
	Session store.Session
	User    store.User
}

type ctxKey struct{}

// FromContext returns the request's principal, if it is authenticated.
func FromContext(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(*Principal)
	return p, ok
}

// UserID returns the authenticated user's id (audit.UserFunc).
func UserID(r *http.Request) (string, bool) {
	p, ok := FromContext(r.Context())
	if !ok {
		return "", false
	}
	return p.User.ID, true
}

// Require wraps h so that it runs only for authenticated requests.
func Require(h func(w http.ResponseWriter, r *http.Request, p *Principal) error) httpx.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		p, ok := FromContext(r.Context())
		if !ok {
			return problem.Unauthenticated
		}
		return h(w, r, p)
	}
}

// RequireFresh refuses with reauthentication_required unless the session's
// last proof of a credential is within ReauthMaxAge.
func (m *Manager) RequireFresh(p *Principal) error {
	if m.Now().Sub(p.Session.AuthTime) <= m.cfg.ReauthMaxAge {
		return nil
	}
	return problem.ReauthRequired.With("max_age", int(m.cfg.ReauthMaxAge/time.Second))
}

// New builds a fresh session record for userID with a new random id and
// secret. The caller inserts it (inside its transaction) and, after commit,
// calls SetCookie. A sign-in never reuses any id or secret the client sent.
func (m *Manager) New(r *http.Request, userID string, amr []string) (*store.Session, id.Secret) {
	now := m.Now()
	token := id.NewSecret(TokenPrefix)
	s := &store.Session{
		ID:         id.New("ses"),
		UserID:     userID,
		TokenHash:  token.Hash(),
		CreatedAt:  now,
		LastSeenAt: now,
		AuthTime:   now,
		ExpiresAt:  now.Add(m.cfg.Lifetime),
		UserAgent:  clip(r.UserAgent(), 512),
		AAL:        1,
		AMR:        amr,
	}
	if ip := httpx.ClientIP(r); ip.IsValid() {
		s.IP = ip.String()
	}
	return s, token
}

// SetCookie hands the session secret to the browser: HttpOnly, Secure,
// SameSite=Lax, Path=/, no Domain (the __Host- prefix enforces the last
// three), expiring with the session.
func (m *Manager) SetCookie(w http.ResponseWriter, token id.Secret, expires time.Time) {
	http.SetCookie(w, &http.Cookie{
		Name:     m.CookieName(),
		Value:    string(token),
		Path:     "/",
		Expires:  expires,
		MaxAge:   int(expires.Sub(m.Now()) / time.Second),
		Secure:   m.cfg.Secure,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	})
}

// ClearCookie tells the browser to forget the session cookie.
func (m *Manager) ClearCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name:     m.CookieName(),
		Value:    "",
		Path:     "/",
		MaxAge:   -1,
		Secure:   m.cfg.Secure,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	})
}

// Revoked must be called after a transaction that revoked sessions commits:
// it drops them from this replica's cache at once and tells every other
// replica to do the same.
func (m *Manager) Revoked(ctx context.Context, ids ...string) {
	for _, sid := range ids {
		msg := []byte("s:" + sid)
		m.cache.apply(msg)
		if err := m.bus.Publish(ctx, busChannel, msg); err != nil {
			m.log.ErrorContext(ctx, "session: publish revocation failed; other replicas rely on their cache TTL", slog.String("session_id", sid), slog.Any("error", err))
		}
	}
}

// cookieToken returns the request's session secret, or false if there is
// none, it is malformed, or the cookie appears more than once (a sibling
// subdomain tossing a second cookie must not choose the session).
func (m *Manager) cookieToken(r *http.Request) (id.Secret, bool) {
	name := m.CookieName()
	var value string
	n := 0
	for _, c := range r.CookiesNamed(name) {
		value = c.Value
		n++
	}
	if n != 1 {
		return "", false
	}
	return id.ParseSecret(TokenPrefix, value)
}

// Authenticate resolves the session cookie, if any, into a Principal in the
// request context. It never rejects: handlers that need a principal use
// Require.
func (m *Manager) Authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := m.cookieToken(r)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		p, err := m.resolve(r, token)
		if err != nil {
			if !errors.Is(err, errNoSession) {
				problem.Write(w, r, m.log, problem.Unavailable.Wrap(err))
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, p)))
	})
}

var errNoSession = errors.New("session: no valid session")

// resolve finds the live session of token: from the cache when fresh, else
// from the store. An expired-looking cached copy is re-read before refusing,
// because another replica may have seen later activity.
func (m *Manager) resolve(r *http.Request, token id.Secret) (*Principal, error) {
	hash := token.Hash()
	now := m.Now()
	p, cached := m.cache.get(hash)
	if cached && !m.live(&p.Session, now) {
		cached = false
	}
	if !cached {
		var err error
		if p, err = m.load(r.Context(), hash); err != nil {
			return nil, err
		}
		if !m.live(&p.Session, now) {
			m.cache.drop(hash)
			return nil, errNoSession
		}
		m.cache.put(hash, p)
	}
	if err := m.touch(r, hash, p, now); err != nil {
		return nil, err
	}
	return p, nil
}

func (m *Manager) load(ctx context.Context, hash []byte) (*Principal, error) {
	s, err := m.db.Sessions().SessionByTokenHash(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNoSession
	}
	if err != nil {
		return nil, fmt.Errorf("session: load: %w", err)
	}
	u, err := m.db.Users().UserByID(ctx, s.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNoSession
	}
	if err != nil {
		return nil, fmt.Errorf("session: load user: %w", err)
	}
	return &Principal{Session: *s, User: *u}, nil
}

// live applies the server-side expiry policy: not revoked, within the
// absolute lifetime, and used within the idle timeout.
func (m *Manager) live(s *store.Session, now time.Time) bool {
	return s.RevokedAt == nil && now.Before(s.ExpiresAt) && now.Before(s.LastSeenAt.Add(m.cfg.IdleTimeout))
}

// IdleExpiry is when s expires if it stays unused.
func (m *Manager) IdleExpiry(s *store.Session) time.Time {
	return minTime(s.LastSeenAt.Add(m.cfg.IdleTimeout), s.ExpiresAt)
}

// touch records activity at most once per touchInterval, or at once when
// the client's IP or user agent changed.
func (m *Manager) touch(r *http.Request, hash []byte, p *Principal, now time.Time) error {
	ip := ""
	if a := httpx.ClientIP(r); a.IsValid() {
		ip = a.String()
	}
	ua := clip(r.UserAgent(), 512)
	s := &p.Session
	if now.Sub(s.LastSeenAt) < touchInterval && ip == s.IP && ua == s.UserAgent {
		return nil
	}
	if err := m.db.Sessions().TouchSession(r.Context(), s.ID, now, ip, ua); err != nil {
		return fmt.Errorf("session: touch: %w", err)
	}
	s.LastSeenAt, s.IP, s.UserAgent = now, ip, ua
	m.cache.update(hash, p)
	return nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
