package sqlstore_test

import (
	"errors"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/store/sqlstore"
)

// TestMigrateTokensUpgradesSessions applies migration 2 to a database that
// already holds a session: it reads back as a cookie session. Rolling
// migration 2 back and applying it again keeps the data.
func TestMigrateTokensUpgradesSessions(t *testing.T) {
	for _, b := range backends {
		t.Run(b.dialect, func(t *testing.T) {
			ctx := t.Context()
			now := time.Now()
			db := mustOpen(t, b.newDSN(t), sqlstore.Options{})
			if err := db.MigrateToForTest(ctx, 1); err != nil {
				t.Fatalf("migrate to version 1: %v", err)
			}
			if err := db.Users().CreateUser(ctx, &store.User{ID: "u1", Email: "a@example.com", EmailKey: "a@example.com"}); err != nil {
				t.Fatal(err)
			}
			err := db.ExecForTest(ctx, `INSERT INTO sessions (id, user_id, token_hash, created_at, last_seen_at, auth_time, expires_at)
				VALUES (?, ?, ?, ?, ?, ?, ?)`, "s1", "u1", []byte{1}, now, now, now, now.Add(time.Hour))
			if err != nil {
				t.Fatalf("insert a version 1 session: %v", err)
			}
			for _, step := range []struct {
				name    string
				version int64
			}{{"up", 2}, {"down", 1}, {"up again", 2}} {
				if err := db.MigrateToForTest(ctx, step.version); err != nil {
					t.Fatalf("%s to version %d: %v", step.name, step.version, err)
				}
			}
			if err := db.Ping(ctx); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			ss, err := db.Sessions().SessionByID(ctx, "s1")
			if err != nil {
				t.Fatalf("SessionByID: %v", err)
			}
			if ss.Kind != store.SessionCookie {
				t.Errorf("Kind of a session from before migration 2 = %q, want %q", ss.Kind, store.SessionCookie)
			}
		})
	}
}

// TestRefreshTokensCascade checks a refresh-token family goes with its
// session and with the session's user; the store interfaces delete
// neither, so the rows are deleted directly.
func TestRefreshTokensCascade(t *testing.T) {
	for _, b := range backends {
		t.Run(b.dialect, func(t *testing.T) {
			ctx := t.Context()
			now := time.Now()
			db := mustOpen(t, b.newDSN(t), sqlstore.Options{Migrate: true})
			if err := db.Users().CreateUser(ctx, &store.User{ID: "u1", Email: "a@example.com", EmailKey: "a@example.com"}); err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				name      string
				sessionID string
				delete    string
				arg       string
			}{
				{"delete the session", "s1", "DELETE FROM sessions WHERE id = ?", "s1"},
				{"delete the user", "s2", "DELETE FROM users WHERE id = ?", "u1"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					sid := tc.sessionID
					err := db.Sessions().CreateSession(ctx, &store.Session{ID: sid, UserID: "u1", Kind: store.SessionToken,
						TokenHash: []byte(sid), CreatedAt: now, LastSeenAt: now, AuthTime: now, ExpiresAt: now.Add(time.Hour)})
					if err != nil {
						t.Fatal(err)
					}
					hashes := [][]byte{[]byte("rt1-" + sid), []byte("rt2-" + sid)}
					for i, h := range hashes {
						rt := &store.RefreshToken{ID: string(h), SessionID: sid, Hash: h, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
						if i == 0 {
							rt.UsedAt, rt.Client = &now, "fp"
						}
						if err := db.RefreshTokens().CreateRefreshToken(ctx, rt); err != nil {
							t.Fatal(err)
						}
					}
					if err := db.ExecForTest(ctx, tc.delete, tc.arg); err != nil {
						t.Fatalf("%s: %v", tc.delete, err)
					}
					for _, h := range hashes {
						if _, err := db.RefreshTokens().RefreshTokenByHash(ctx, h); !errors.Is(err, store.ErrNotFound) {
							t.Errorf("RefreshTokenByHash(%s) after the delete = %v, want ErrNotFound", h, err)
						}
					}
				})
			}
		})
	}
}

// TestSchemaRejectsInvalidRows checks the constraints the schema adds for
// token sessions, refresh tokens and signing keys: each insert fails, with
// an error that is not a store sentinel.
func TestSchemaRejectsInvalidRows(t *testing.T) {
	now := time.Now()
	session := func(mod func(*store.Session)) func(store.Store) error {
		return func(s store.Store) error {
			ss := &store.Session{ID: "s-new", UserID: "u1", TokenHash: []byte("s-new"),
				CreatedAt: now, LastSeenAt: now, AuthTime: now, ExpiresAt: now.Add(time.Hour)}
			mod(ss)
			return s.Sessions().CreateSession(t.Context(), ss)
		}
	}
	refresh := func(mod func(*store.RefreshToken)) func(store.Store) error {
		return func(s store.Store) error {
			rt := &store.RefreshToken{ID: "rt-new", SessionID: "s1", Hash: []byte("rt-new"), CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
			mod(rt)
			return s.RefreshTokens().CreateRefreshToken(t.Context(), rt)
		}
	}
	key := func(mod func(*store.SigningKey)) func(store.Store) error {
		return func(s store.Store) error {
			k := &store.SigningKey{ID: "k-new", Algorithm: "EdDSA", PublicJWK: []byte(`{"kty":"OKP"}`),
				PrivateSealed: []byte("sealed"), KEKVersion: 1, CreatedAt: now, ActivatesAt: now}
			mod(k)
			return s.SigningKeys().CreateSigningKey(t.Context(), k)
		}
	}
	cases := []struct {
		name   string
		insert func(store.Store) error
	}{
		{"session of an unknown kind", session(func(ss *store.Session) { ss.Kind = "bearer" })},
		{"refresh token of a missing session", refresh(func(rt *store.RefreshToken) { rt.SessionID = "no-such-session" })},
		{"refresh token with an empty id", refresh(func(rt *store.RefreshToken) { rt.ID = "" })},
		{"refresh token with an empty hash", refresh(func(rt *store.RefreshToken) { rt.Hash = nil })},
		{"signing key with an empty id", key(func(k *store.SigningKey) { k.ID = "" })},
		{"signing key of an unknown algorithm", key(func(k *store.SigningKey) { k.Algorithm = "RS256" })},
		{"signing key with algorithm none", key(func(k *store.SigningKey) { k.Algorithm = "none" })},
		{"public JWK that is not JSON", key(func(k *store.SigningKey) { k.PublicJWK = []byte(`{"kty":`) })},
		{"public JWK that is a JSON array", key(func(k *store.SigningKey) { k.PublicJWK = []byte(`[{"kty":"OKP"}]`) })},
		{"public JWK that is a JSON string", key(func(k *store.SigningKey) { k.PublicJWK = []byte(`"{}"`) })},
		{"empty public JWK", key(func(k *store.SigningKey) { k.PublicJWK = nil })},
		{"empty sealed private key", key(func(k *store.SigningKey) { k.PrivateSealed = nil })},
		{"KEK version 0", key(func(k *store.SigningKey) { k.KEKVersion = 0 })},
	}
	for _, b := range backends {
		t.Run(b.dialect, func(t *testing.T) {
			db := mustOpen(t, b.newDSN(t), sqlstore.Options{Migrate: true})
			if err := db.Users().CreateUser(t.Context(), &store.User{ID: "u1", Email: "a@example.com", EmailKey: "a@example.com"}); err != nil {
				t.Fatal(err)
			}
			if err := session(func(ss *store.Session) { ss.ID = "s1" })(db); err != nil {
				t.Fatal(err)
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					err := tc.insert(db)
					if err == nil {
						t.Fatal("insert succeeded, want a constraint violation")
					}
					if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
						t.Errorf("error %v is a store sentinel, want a schema error", err)
					}
				})
			}
			if ks, err := db.SigningKeys().ListSigningKeys(t.Context()); err != nil || len(ks) != 0 {
				t.Errorf("ListSigningKeys = %d keys, %v; want none", len(ks), err)
			}
		})
	}
}
