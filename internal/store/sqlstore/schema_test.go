package sqlstore_test

import (
	"errors"
	"math"
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
			// The store's queries expect the newest schema: version 1 rows
			// are written directly.
			err := db.ExecForTest(ctx, `INSERT INTO users (id, email, email_key, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?)`, "u1", "a@example.com", "a@example.com", now, now)
			if err != nil {
				t.Fatalf("insert a version 1 user: %v", err)
			}
			err = db.ExecForTest(ctx, `INSERT INTO sessions (id, user_id, token_hash, created_at, last_seen_at, auth_time, expires_at)
				VALUES (?, ?, ?, ?, ?, ?, ?)`, "s1", "u1", []byte{1}, now, now, now, now.Add(time.Hour))
			if err != nil {
				t.Fatalf("insert a version 1 session: %v", err)
			}
			for _, step := range []struct {
				name    string
				version int64
			}{{"up", 2}, {"down", 1}, {"up again", 2}, {"up to the newest", math.MaxInt64}} {
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

// TestMigrateVerificationsKeepsUsers applies migration 3 to a database
// that already holds a user: the user reads back with no phone. Rolling
// migration 3 back drops phones and verifications but keeps the user, and
// applying it again works on the rolled-back data.
func TestMigrateVerificationsKeepsUsers(t *testing.T) {
	for _, b := range backends {
		t.Run(b.dialect, func(t *testing.T) {
			ctx := t.Context()
			now := time.Now()
			db := mustOpen(t, b.newDSN(t), sqlstore.Options{})
			if err := db.MigrateToForTest(ctx, 2); err != nil {
				t.Fatalf("migrate to version 2: %v", err)
			}
			err := db.ExecForTest(ctx, `INSERT INTO users (id, email, email_key, email_verified, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?)`, "u1", "A@example.com", "a@example.com", true, now, now)
			if err != nil {
				t.Fatalf("insert a version 2 user: %v", err)
			}
			want := &store.User{ID: "u1", Email: "A@example.com", EmailKey: "a@example.com", EmailVerified: true,
				CreatedAt: now.UTC().Truncate(time.Microsecond), UpdatedAt: now.UTC().Truncate(time.Microsecond)}
			// Ping wants the newest schema, so it is asked only at the end.
			check := func(when string) {
				t.Helper()
				got, err := db.UserForTest(ctx, "u1")
				if err != nil {
					t.Fatalf("UserForTest %s: %v", when, err)
				}
				if *got != *want {
					t.Errorf("user %s = %+v, want %+v", when, got, want)
				}
			}
			if err := db.MigrateToForTest(ctx, 3); err != nil {
				t.Fatalf("migrate to version 3: %v", err)
			}
			check("after migration 3")
			if err := db.Users().SetPhone(ctx, "u1", "+14155550100", now); err != nil {
				t.Fatal(err)
			}
			v := &store.Verification{ID: "v1", UserID: "u1", Purpose: store.PurposeVerifyPhone, CodeHash: []byte{1},
				Target: "+14155550101", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
			if err := db.Verifications().CreateVerification(ctx, v); err != nil {
				t.Fatal(err)
			}
			for _, step := range []struct {
				name    string
				version int64
			}{{"down", 2}, {"up again", 3}} {
				if err := db.MigrateToForTest(ctx, step.version); err != nil {
					t.Fatalf("%s to version %d: %v", step.name, step.version, err)
				}
			}
			check("after rolling migration 3 back and forth")
			_, err = db.Verifications().CurrentVerification(ctx, "u1", store.PurposeVerifyPhone)
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("CurrentVerification after rolling migration 3 back and forth = %v, want ErrNotFound", err)
			}
			if err := db.Migrate(ctx); err != nil {
				t.Fatalf("migrate to the newest: %v", err)
			}
			if err := db.Ping(ctx); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			check("after migrating to the newest")
		})
	}
}

// TestVerificationsCascade checks a user's verifications go with the
// user; the store interfaces delete no user, so the row is deleted
// directly. The verifications of other users stay.
func TestVerificationsCascade(t *testing.T) {
	for _, b := range backends {
		t.Run(b.dialect, func(t *testing.T) {
			ctx := t.Context()
			now := time.Now()
			db := mustOpen(t, b.newDSN(t), sqlstore.Options{Migrate: true})
			for _, u := range []string{"u1", "u2"} {
				if err := db.Users().CreateUser(ctx, &store.User{ID: u, Email: u + "@example.com", EmailKey: u + "@example.com"}); err != nil {
					t.Fatal(err)
				}
			}
			for _, v := range []*store.Verification{
				{ID: "v1", UserID: "u1", Purpose: store.PurposeVerifyEmail, LinkHash: []byte("l1")},
				{ID: "v2", UserID: "u1", Purpose: store.PurposeRecovery, LinkHash: []byte("l2"), UsedAt: &now},
				{ID: "v3", UserID: "u2", Purpose: store.PurposeVerifyEmail, LinkHash: []byte("l3")},
			} {
				v.CreatedAt, v.ExpiresAt = now, now.Add(time.Hour)
				if err := db.Verifications().CreateVerification(ctx, v); err != nil {
					t.Fatal(err)
				}
			}
			if err := db.ExecForTest(ctx, "DELETE FROM users WHERE id = ?", "u1"); err != nil {
				t.Fatalf("delete the user: %v", err)
			}
			for _, h := range []string{"l1", "l2"} {
				if _, err := db.Verifications().VerificationByLinkHash(ctx, []byte(h)); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("VerificationByLinkHash(%s) after the delete = %v, want ErrNotFound", h, err)
				}
			}
			if _, err := db.Verifications().VerificationByLinkHash(ctx, []byte("l3")); err != nil {
				t.Errorf("another user's verification after the delete: %v", err)
			}
		})
	}
}

// TestPhoneFormat checks both schemas accept exactly the E.164 numbers:
// '+', a digit other than 0, then 6 to 14 more digits.
func TestPhoneFormat(t *testing.T) {
	for _, b := range backends {
		t.Run(b.dialect, func(t *testing.T) {
			db := mustOpen(t, b.newDSN(t), sqlstore.Options{Migrate: true})
			if err := db.Users().CreateUser(t.Context(), &store.User{ID: "u1", Email: "a@example.com", EmailKey: "a@example.com"}); err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				phone string
				ok    bool
			}{
				{"", true},
				{"+1234567", true},         // 7 digits, the shortest
				{"+123456789012345", true}, // 15 digits, the longest
				{"+351912345678", true},
				{"+123456", false},
				{"+1234567890123456", false},
				{"+0123456789", false},
				{"14155550100", false},
				{"++14155550100", false},
				{"+1 415 555 0100", false},
				{"+1-415-555-0100", false},
				{"+1415555010a", false},
				{"+14155550100 ", false},
				{"+14155550100\n", false},
				{"+１4155550100", false}, // a fullwidth digit
				{"+", false},
			} {
				err := db.Users().SetPhone(t.Context(), "u1", tc.phone, time.Now())
				switch {
				case tc.ok && err != nil:
					t.Errorf("SetPhone(%q): %v", tc.phone, err)
				case !tc.ok && err == nil:
					t.Errorf("SetPhone(%q) succeeded, want a constraint violation", tc.phone)
				case errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound):
					t.Errorf("SetPhone(%q) = %v, a store sentinel; want a schema error", tc.phone, err)
				}
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
// token sessions, refresh tokens, signing keys, verifications and phone
// numbers: each insert fails, with an error that is not a store sentinel.
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
	verification := func(mod func(*store.Verification)) func(store.Store) error {
		return func(s store.Store) error {
			v := &store.Verification{ID: "v-new", UserID: "u1", Purpose: store.PurposeVerifyEmail,
				LinkHash: []byte("link"), CodeHash: []byte("code"), CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
			mod(v)
			return s.Verifications().CreateVerification(t.Context(), v)
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
		{"verification with an empty id", verification(func(v *store.Verification) { v.ID = "" })},
		{"verification of a missing user", verification(func(v *store.Verification) { v.UserID = "no-such-user" })},
		{"verification of an unknown purpose", verification(func(v *store.Verification) { v.Purpose = "login" })},
		{"verification of no purpose", verification(func(v *store.Verification) { v.Purpose = "" })},
		{"verification with neither link nor code", verification(func(v *store.Verification) { v.LinkHash, v.CodeHash = nil, nil })},
		{"verification with negative attempts", verification(func(v *store.Verification) { v.Attempts = -1 })},
		{"user with a malformed phone", func(s store.Store) error {
			return s.Users().CreateUser(t.Context(), &store.User{ID: "u-new", Email: "b@example.com", EmailKey: "b@example.com", Phone: "555-0100"})
		}},
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
			if _, err := db.Verifications().CurrentVerification(t.Context(), "u1", store.PurposeVerifyEmail); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("CurrentVerification = %v, want ErrNotFound", err)
			}
		})
	}
}

// TestMigrateMFAKeepsData applies migration 4 to a database that already
// holds a user and a verification: both read back unchanged. Rolling
// migration 4 back drops the factors and recovery codes but keeps the
// rest, and applying it again works on the rolled-back data. Ping wants
// the newest schema, so it is asked only at the end.
func TestMigrateMFAKeepsData(t *testing.T) {
	for _, b := range backends {
		t.Run(b.dialect, func(t *testing.T) {
			ctx := t.Context()
			now := time.Now()
			db := mustOpen(t, b.newDSN(t), sqlstore.Options{})
			if err := db.MigrateToForTest(ctx, 3); err != nil {
				t.Fatalf("migrate to version 3: %v", err)
			}
			u := &store.User{ID: "u1", Email: "A@example.com", EmailKey: "a@example.com", EmailVerified: true,
				Phone: "+14155550100", CreatedAt: now, UpdatedAt: now}
			if err := db.CreateUserForTest(ctx, u); err != nil {
				t.Fatal(err)
			}
			v := &store.Verification{ID: "v1", UserID: "u1", Purpose: store.PurposeVerifyEmail, LinkHash: []byte{1},
				CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
			if err := db.Verifications().CreateVerification(ctx, v); err != nil {
				t.Fatal(err)
			}
			want := *u
			want.CreatedAt, want.UpdatedAt = now.UTC().Truncate(time.Microsecond), now.UTC().Truncate(time.Microsecond)
			check := func(when string) {
				t.Helper()
				got, err := db.UserForTest(ctx, "u1")
				if err != nil {
					t.Fatalf("UserForTest %s: %v", when, err)
				}
				if *got != want {
					t.Errorf("user %s = %+v, want %+v", when, got, want)
				}
				if _, err := db.Verifications().VerificationByLinkHash(ctx, []byte{1}); err != nil {
					t.Errorf("VerificationByLinkHash %s: %v", when, err)
				}
			}
			if err := db.MigrateToForTest(ctx, 4); err != nil {
				t.Fatalf("migrate to version 4: %v", err)
			}
			check("after migration 4")
			if err := db.MFA().PutPendingTOTP(ctx, &store.TOTPFactor{UserID: "u1", SecretSealed: []byte("sealed"),
				KEKVersion: 1, CreatedAt: now}); err != nil {
				t.Fatal(err)
			}
			if err := db.MFA().ConfirmTOTP(ctx, "u1", 7, now); err != nil {
				t.Fatal(err)
			}
			codes := []*store.RecoveryCode{{ID: "rc1", UserID: "u1", Hash: []byte("h1"), CreatedAt: now}}
			if err := db.MFA().ReplaceRecoveryCodes(ctx, "u1", codes); err != nil {
				t.Fatal(err)
			}
			for _, step := range []struct {
				name    string
				version int64
			}{{"down", 3}, {"up again", 4}} {
				if err := db.MigrateToForTest(ctx, step.version); err != nil {
					t.Fatalf("%s to version %d: %v", step.name, step.version, err)
				}
			}
			check("after rolling migration 4 back and forth")
			if _, err := db.MFA().TOTPByUser(ctx, "u1"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("TOTPByUser after rolling migration 4 back and forth = %v, want ErrNotFound", err)
			}
			if n, err := db.MFA().CountRecoveryCodes(ctx, "u1"); err != nil || n != 0 {
				t.Errorf("CountRecoveryCodes after rolling migration 4 back and forth = %d, %v; want 0", n, err)
			}
			if err := db.Migrate(ctx); err != nil {
				t.Fatalf("migrate to the newest: %v", err)
			}
			if err := db.Ping(ctx); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			check("after migrating to the newest")
		})
	}
}

// TestMFACascade checks a user's factor and recovery codes go with the
// user; the store interfaces delete no user, so the row is deleted
// directly. Those of other users stay.
func TestMFACascade(t *testing.T) {
	for _, b := range backends {
		t.Run(b.dialect, func(t *testing.T) {
			ctx := t.Context()
			now := time.Now()
			db := mustOpen(t, b.newDSN(t), sqlstore.Options{Migrate: true})
			for _, u := range []string{"u1", "u2"} {
				if err := db.Users().CreateUser(ctx, &store.User{ID: u, Email: u + "@example.com", EmailKey: u + "@example.com"}); err != nil {
					t.Fatal(err)
				}
				if err := db.MFA().PutPendingTOTP(ctx, &store.TOTPFactor{UserID: u, SecretSealed: []byte("sealed-" + u),
					KEKVersion: 1, CreatedAt: now}); err != nil {
					t.Fatal(err)
				}
				codes := []*store.RecoveryCode{
					{ID: u + "-rc1", UserID: u, Hash: []byte("h1"), CreatedAt: now},
					{ID: u + "-rc2", UserID: u, Hash: []byte("h2"), CreatedAt: now, UsedAt: &now},
				}
				if err := db.MFA().ReplaceRecoveryCodes(ctx, u, codes); err != nil {
					t.Fatal(err)
				}
			}
			if err := db.MFA().ConfirmTOTP(ctx, "u1", 1, now); err != nil {
				t.Fatal(err)
			}
			if err := db.ExecForTest(ctx, "DELETE FROM users WHERE id = ?", "u1"); err != nil {
				t.Fatalf("delete the user: %v", err)
			}
			if _, err := db.MFA().TOTPByUser(ctx, "u1"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("TOTPByUser after the delete = %v, want ErrNotFound", err)
			}
			if err := db.ExecForTest(ctx, "INSERT INTO users (id, email, email_key, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
				"u1", "u1@example.com", "u1@example.com", now, now); err != nil {
				t.Fatal(err)
			}
			// Nothing of the deleted user is left for a new user of the same id.
			if n, err := db.MFA().CountRecoveryCodes(ctx, "u1"); err != nil || n != 0 {
				t.Errorf("CountRecoveryCodes after the delete = %d, %v; want 0", n, err)
			}
			if err := db.MFA().UseRecoveryCode(ctx, "u1", []byte("h1"), now); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("UseRecoveryCode after the delete = %v, want ErrNotFound", err)
			}
			if _, err := db.MFA().TOTPByUser(ctx, "u2"); err != nil {
				t.Errorf("another user's factor after the delete: %v", err)
			}
			if n, err := db.MFA().CountRecoveryCodes(ctx, "u2"); err != nil || n != 1 {
				t.Errorf("another user's recovery codes after the delete = %d, %v; want 1", n, err)
			}
		})
	}
}

// TestMFASchemaRejectsInvalidRows checks the constraints the schema puts
// on factors and recovery codes: each write fails, with an error that is
// not a store sentinel, and leaves nothing behind.
func TestMFASchemaRejectsInvalidRows(t *testing.T) {
	now := time.Now()
	totp := func(mod func(*store.TOTPFactor)) func(store.Store) error {
		return func(s store.Store) error {
			f := &store.TOTPFactor{UserID: "u1", SecretSealed: []byte("sealed"), KEKVersion: 1, CreatedAt: now}
			mod(f)
			return s.MFA().PutPendingTOTP(t.Context(), f)
		}
	}
	code := func(userID string, mod func(*store.RecoveryCode)) func(store.Store) error {
		return func(s store.Store) error {
			c := &store.RecoveryCode{ID: "rc-new", UserID: userID, Hash: []byte("hash"), CreatedAt: now}
			mod(c)
			return s.MFA().ReplaceRecoveryCodes(t.Context(), userID, []*store.RecoveryCode{c})
		}
	}
	cases := []struct {
		name  string
		write func(store.Store) error
	}{
		{"factor of a missing user", totp(func(f *store.TOTPFactor) { f.UserID = "no-such-user" })},
		{"factor with a nil secret", totp(func(f *store.TOTPFactor) { f.SecretSealed = nil })},
		{"factor with an empty secret", totp(func(f *store.TOTPFactor) { f.SecretSealed = []byte{} })},
		{"factor with KEK version 0", totp(func(f *store.TOTPFactor) { f.KEKVersion = 0 })},
		{"factor with a negative KEK version", totp(func(f *store.TOTPFactor) { f.KEKVersion = -1 })},
		{"factor with a negative last step", totp(func(f *store.TOTPFactor) { f.LastStep = -1 })},
		{"confirmation at a negative step", func(s store.Store) error {
			return s.MFA().ConfirmTOTP(t.Context(), "u2", -1, now) // u2 has a pending factor
		}},
		{"recovery code of a missing user", code("no-such-user", func(*store.RecoveryCode) {})},
		{"recovery code with an empty id", code("u1", func(c *store.RecoveryCode) { c.ID = "" })},
		{"recovery code with a nil hash", code("u1", func(c *store.RecoveryCode) { c.Hash = nil })},
		{"recovery code with an empty hash", code("u1", func(c *store.RecoveryCode) { c.Hash = []byte{} })},
	}
	for _, b := range backends {
		t.Run(b.dialect, func(t *testing.T) {
			db := mustOpen(t, b.newDSN(t), sqlstore.Options{Migrate: true})
			for _, u := range []string{"u1", "u2"} {
				if err := db.Users().CreateUser(t.Context(), &store.User{ID: u, Email: u + "@example.com", EmailKey: u + "@example.com"}); err != nil {
					t.Fatal(err)
				}
			}
			if err := totp(func(f *store.TOTPFactor) { f.UserID = "u2" })(db); err != nil {
				t.Fatal(err)
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					err := tc.write(db)
					if err == nil {
						t.Fatal("write succeeded, want a constraint violation")
					}
					if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
						t.Errorf("error %v is a store sentinel, want a schema error", err)
					}
				})
			}
			if _, err := db.MFA().TOTPByUser(t.Context(), "u1"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("TOTPByUser = %v, want ErrNotFound", err)
			}
			if f, err := db.MFA().TOTPByUser(t.Context(), "u2"); err != nil || f.ConfirmedAt != nil || f.LastStep != 0 {
				t.Errorf("TOTPByUser(u2) = %+v, %v; want the pending factor unchanged", f, err)
			}
			for _, u := range []string{"u1", "no-such-user"} {
				if n, err := db.MFA().CountRecoveryCodes(t.Context(), u); err != nil || n != 0 {
					t.Errorf("CountRecoveryCodes(%s) = %d, %v; want 0", u, n, err)
				}
			}
		})
	}
}

// TestMigrateWebAuthnKeepsData applies migration 5 to a database that
// already holds a user with a session and a second factor: they read back
// unchanged. Rolling migration 5 back drops the WebAuthn credentials but
// keeps the rest, and applying it again works on the rolled-back data.
func TestMigrateWebAuthnKeepsData(t *testing.T) {
	for _, b := range backends {
		t.Run(b.dialect, func(t *testing.T) {
			ctx := t.Context()
			now := time.Now()
			db := mustOpen(t, b.newDSN(t), sqlstore.Options{})
			if err := db.MigrateToForTest(ctx, 4); err != nil {
				t.Fatalf("migrate to version 4: %v", err)
			}
			u := &store.User{ID: "u1", Email: "A@example.com", EmailKey: "a@example.com", EmailVerified: true,
				CreatedAt: now, UpdatedAt: now}
			if err := db.CreateUserForTest(ctx, u); err != nil {
				t.Fatal(err)
			}
			if err := db.Sessions().CreateSession(ctx, &store.Session{ID: "s1", UserID: "u1", TokenHash: []byte{1},
				CreatedAt: now, LastSeenAt: now, AuthTime: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			if err := db.MFA().PutPendingTOTP(ctx, &store.TOTPFactor{UserID: "u1", SecretSealed: []byte("sealed"),
				KEKVersion: 1, CreatedAt: now}); err != nil {
				t.Fatal(err)
			}
			want := *u
			want.CreatedAt, want.UpdatedAt = now.UTC().Truncate(time.Microsecond), now.UTC().Truncate(time.Microsecond)
			// Ping wants the newest schema, so it is asked only at the end.
			check := func(when string) {
				t.Helper()
				got, err := db.UserForTest(ctx, "u1")
				if err != nil {
					t.Fatalf("UserForTest %s: %v", when, err)
				}
				if *got != want {
					t.Errorf("user %s = %+v, want %+v", when, got, want)
				}
				if _, err := db.Sessions().SessionByTokenHash(ctx, []byte{1}); err != nil {
					t.Errorf("SessionByTokenHash %s: %v", when, err)
				}
				if _, err := db.MFA().TOTPByUser(ctx, "u1"); err != nil {
					t.Errorf("TOTPByUser %s: %v", when, err)
				}
			}
			if err := db.MigrateToForTest(ctx, 5); err != nil {
				t.Fatalf("migrate to version 5: %v", err)
			}
			check("after migration 5")
			c := webAuthnCredential("wac_1", "u1", now)
			if err := db.WebAuthn().CreateWebAuthnCredential(ctx, c); err != nil {
				t.Fatal(err)
			}
			for _, step := range []struct {
				name    string
				version int64
			}{{"down", 4}, {"up again", 5}} {
				if err := db.MigrateToForTest(ctx, step.version); err != nil {
					t.Fatalf("%s to version %d: %v", step.name, step.version, err)
				}
			}
			check("after rolling migration 5 back and forth")
			if _, err := db.WebAuthn().WebAuthnCredentialByCredentialID(ctx, c.CredentialID); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("WebAuthnCredentialByCredentialID after rolling migration 5 back and forth = %v, want ErrNotFound", err)
			}
			if err := db.WebAuthn().CreateWebAuthnCredential(ctx, c); err != nil {
				t.Errorf("CreateWebAuthnCredential after rolling migration 5 back and forth: %v", err)
			}
			if err := db.Migrate(ctx); err != nil {
				t.Fatalf("migrate to the newest: %v", err)
			}
			if err := db.Ping(ctx); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			check("after migrating to the newest")
		})
	}
}

// webAuthnCredential is a valid credential of the user, created at now.
func webAuthnCredential(id, userID string, now time.Time) *store.WebAuthnCredential {
	return &store.WebAuthnCredential{ID: id, UserID: userID, CredentialID: []byte("credential-" + id),
		PublicKey: []byte("cose-key-" + id), AttestationType: "none", AAGUID: make([]byte, 16),
		Transports: []string{"internal"}, Name: "Passkey", CreatedAt: now}
}

// TestWebAuthnCascade checks a user's WebAuthn credentials go with the
// user; the store interfaces delete no user, so the row is deleted
// directly. Those of other users stay, and the deleted user's credential
// ids are free again.
func TestWebAuthnCascade(t *testing.T) {
	for _, b := range backends {
		t.Run(b.dialect, func(t *testing.T) {
			ctx := t.Context()
			now := time.Now()
			db := mustOpen(t, b.newDSN(t), sqlstore.Options{Migrate: true})
			var creds []*store.WebAuthnCredential
			for _, u := range []string{"u1", "u2"} {
				if err := db.Users().CreateUser(ctx, &store.User{ID: u, Email: u + "@example.com", EmailKey: u + "@example.com"}); err != nil {
					t.Fatal(err)
				}
				for _, id := range []string{u + "-wac1", u + "-wac2"} {
					c := webAuthnCredential(id, u, now)
					if err := db.WebAuthn().CreateWebAuthnCredential(ctx, c); err != nil {
						t.Fatal(err)
					}
					creds = append(creds, c)
				}
			}
			if err := db.ExecForTest(ctx, "DELETE FROM users WHERE id = ?", "u1"); err != nil {
				t.Fatalf("delete the user: %v", err)
			}
			for _, c := range creds[:2] {
				if _, err := db.WebAuthn().WebAuthnCredentialByCredentialID(ctx, c.CredentialID); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("WebAuthnCredentialByCredentialID(%s) after the delete = %v, want ErrNotFound", c.ID, err)
				}
			}
			if cs, err := db.WebAuthn().WebAuthnCredentialsByUser(ctx, "u1"); err != nil || len(cs) != 0 {
				t.Errorf("WebAuthnCredentialsByUser(u1) after the delete = %d credentials, %v; want none", len(cs), err)
			}
			if cs, err := db.WebAuthn().WebAuthnCredentialsByUser(ctx, "u2"); err != nil || len(cs) != 2 {
				t.Errorf("another user's credentials after the delete = %d, %v; want 2", len(cs), err)
			}
			again := webAuthnCredential("u2-wac3", "u2", now)
			again.CredentialID = creds[0].CredentialID
			if err := db.WebAuthn().CreateWebAuthnCredential(ctx, again); err != nil {
				t.Errorf("registering a deleted user's credential id again: %v", err)
			}
		})
	}
}

// TestWebAuthnSchemaRejectsInvalidRows checks the constraints the schema
// puts on WebAuthn credentials: each write fails, with an error that is
// not a store sentinel, and leaves nothing behind.
func TestWebAuthnSchemaRejectsInvalidRows(t *testing.T) {
	now := time.Now()
	cred := func(mod func(*store.WebAuthnCredential)) func(*sqlstore.DB) error {
		return func(db *sqlstore.DB) error {
			c := webAuthnCredential("wac-new", "u1", now)
			mod(c)
			return db.WebAuthn().CreateWebAuthnCredential(t.Context(), c)
		}
	}
	// signCount inserts a row directly: a uint32 cannot leave the range.
	signCount := func(n int64) func(*sqlstore.DB) error {
		return func(db *sqlstore.DB) error {
			return db.ExecForTest(t.Context(), `INSERT INTO webauthn_credentials (id, user_id, credential_id, public_key,
				attestation_type, aaguid, transports, discoverable, backup_eligible, backup_state, sign_count, name, created_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				"wac-new", "u1", []byte("credential-new"), []byte("key"), "none", make([]byte, 16), "[]",
				false, false, false, n, "", now)
		}
	}
	cases := []struct {
		name  string
		write func(*sqlstore.DB) error
	}{
		{"credential of a missing user", cred(func(c *store.WebAuthnCredential) { c.UserID = "no-such-user" })},
		{"credential with an empty id", cred(func(c *store.WebAuthnCredential) { c.ID = "" })},
		{"credential with a nil credential id", cred(func(c *store.WebAuthnCredential) { c.CredentialID = nil })},
		{"credential with an empty credential id", cred(func(c *store.WebAuthnCredential) { c.CredentialID = []byte{} })},
		{"credential with a 1024-byte credential id", cred(func(c *store.WebAuthnCredential) { c.CredentialID = make([]byte, 1024) })},
		{"credential with a nil public key", cred(func(c *store.WebAuthnCredential) { c.PublicKey = nil })},
		{"credential with an empty public key", cred(func(c *store.WebAuthnCredential) { c.PublicKey = []byte{} })},
		{"credential with a nil AAGUID", cred(func(c *store.WebAuthnCredential) { c.AAGUID = nil })},
		{"credential with a 15-byte AAGUID", cred(func(c *store.WebAuthnCredential) { c.AAGUID = make([]byte, 15) })},
		{"credential with a 17-byte AAGUID", cred(func(c *store.WebAuthnCredential) { c.AAGUID = make([]byte, 17) })},
		{"credential backed up but not backup eligible", cred(func(c *store.WebAuthnCredential) {
			c.BackupEligible, c.BackupState = false, true
		})},
		{"use that backs up a credential not backup eligible", func(db *sqlstore.DB) error {
			return db.WebAuthn().UseWebAuthnCredential(t.Context(), "wac-1", 0, 1, true, now)
		}},
		{"negative sign count", signCount(-1)},
		{"sign count above 32 bits", signCount(1 << 32)},
	}
	for _, b := range backends {
		t.Run(b.dialect, func(t *testing.T) {
			db := mustOpen(t, b.newDSN(t), sqlstore.Options{Migrate: true})
			if err := db.Users().CreateUser(t.Context(), &store.User{ID: "u1", Email: "a@example.com", EmailKey: "a@example.com"}); err != nil {
				t.Fatal(err)
			}
			existing := webAuthnCredential("wac-1", "u1", now)
			if err := db.WebAuthn().CreateWebAuthnCredential(t.Context(), existing); err != nil {
				t.Fatal(err)
			}
			if err := signCount(1<<32 - 1)(db); err != nil {
				t.Fatalf("the largest sign count: %v", err)
			}
			if err := db.ExecForTest(t.Context(), "DELETE FROM webauthn_credentials WHERE id = ?", "wac-new"); err != nil {
				t.Fatal(err)
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					err := tc.write(db)
					if err == nil {
						t.Fatal("write succeeded, want a constraint violation")
					}
					if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
						t.Errorf("error %v is a store sentinel, want a schema error", err)
					}
				})
			}
			for _, u := range []string{"u1", "no-such-user"} {
				cs, err := db.WebAuthn().WebAuthnCredentialsByUser(t.Context(), u)
				if err != nil {
					t.Fatal(err)
				}
				if u == "u1" && (len(cs) != 1 || cs[0].ID != existing.ID || cs[0].SignCount != 0 || cs[0].LastUsedAt != nil) {
					t.Errorf("WebAuthnCredentialsByUser(u1) = %+v; want only wac-1, unused", cs)
				} else if u != "u1" && len(cs) != 0 {
					t.Errorf("WebAuthnCredentialsByUser(%s) = %d credentials, want none", u, len(cs))
				}
			}
		})
	}
}

// TestMigrateAdminKeepsData applies migration 6 to a database that already
// holds users, one with a session, a second factor and a passkey: they read
// back unchanged, none an administrator. Rolling migration 6 back drops
// the admin flags but keeps the rest, and applying it again works on the
// rolled-back data, where every user is again not an administrator.
func TestMigrateAdminKeepsData(t *testing.T) {
	for _, b := range backends {
		t.Run(b.dialect, func(t *testing.T) {
			ctx := t.Context()
			now := time.Now()
			db := mustOpen(t, b.newDSN(t), sqlstore.Options{})
			if err := db.MigrateToForTest(ctx, 5); err != nil {
				t.Fatalf("migrate to version 5: %v", err)
			}
			users := []*store.User{
				{ID: "u1", Email: "A@example.com", EmailKey: "a@example.com", Name: "A", PasswordHash: "$argon2id$hash",
					EmailVerified: true, Phone: "+14155550100", CreatedAt: now, UpdatedAt: now},
				{ID: "u2", Email: "b@example.com", EmailKey: "b@example.com", CreatedAt: now, UpdatedAt: now},
			}
			want := map[string]*store.User{}
			for _, u := range users {
				if err := db.CreateUserForTest(ctx, u); err != nil {
					t.Fatal(err)
				}
				w := *u
				w.CreatedAt, w.UpdatedAt = now.UTC().Truncate(time.Microsecond), now.UTC().Truncate(time.Microsecond)
				want[u.ID] = &w
			}
			if err := db.Sessions().CreateSession(ctx, &store.Session{ID: "s1", UserID: "u1", TokenHash: []byte{1},
				CreatedAt: now, LastSeenAt: now, AuthTime: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			if err := db.MFA().PutPendingTOTP(ctx, &store.TOTPFactor{UserID: "u1", SecretSealed: []byte("sealed"),
				KEKVersion: 1, CreatedAt: now}); err != nil {
				t.Fatal(err)
			}
			c := webAuthnCredential("wac_1", "u1", now)
			if err := db.WebAuthn().CreateWebAuthnCredential(ctx, c); err != nil {
				t.Fatal(err)
			}
			// Ping wants the newest schema, so it is asked only at the end.
			check := func(when string) {
				t.Helper()
				for _, u := range users {
					got, err := db.UserForTest(ctx, u.ID)
					if err != nil {
						t.Fatalf("UserForTest(%s) %s: %v", u.ID, when, err)
					}
					if *got != *want[u.ID] {
						t.Errorf("user %s %s = %+v, want %+v", u.ID, when, got, want[u.ID])
					}
				}
				if _, err := db.Sessions().SessionByTokenHash(ctx, []byte{1}); err != nil {
					t.Errorf("SessionByTokenHash %s: %v", when, err)
				}
				if _, err := db.MFA().TOTPByUser(ctx, "u1"); err != nil {
					t.Errorf("TOTPByUser %s: %v", when, err)
				}
				if _, err := db.WebAuthn().WebAuthnCredentialByCredentialID(ctx, c.CredentialID); err != nil {
					t.Errorf("WebAuthnCredentialByCredentialID %s: %v", when, err)
				}
			}
			setAdmin := func(at time.Time) {
				t.Helper()
				if err := db.Users().SetAdmin(ctx, "u1", true, at); err != nil {
					t.Fatalf("SetAdmin: %v", err)
				}
				want["u1"].Admin, want["u1"].UpdatedAt = true, at.UTC().Truncate(time.Microsecond)
			}
			if err := db.MigrateToForTest(ctx, 6); err != nil {
				t.Fatalf("migrate to version 6: %v", err)
			}
			check("after migration 6")
			setAdmin(now.Add(time.Minute))
			check("after SetAdmin")
			if err := db.MigrateToForTest(ctx, 5); err != nil {
				t.Fatalf("down to version 5: %v", err)
			}
			want["u1"].Admin = false
			check("after rolling migration 6 back")
			if err := db.MigrateToForTest(ctx, 6); err != nil {
				t.Fatalf("up again to version 6: %v", err)
			}
			check("after rolling migration 6 back and forth")
			setAdmin(now.Add(2 * time.Minute))
			if err := db.Migrate(ctx); err != nil {
				t.Fatalf("migrate to the newest: %v", err)
			}
			if err := db.Ping(ctx); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			check("after migrating to the newest")
		})
	}
}

// TestAdminIsBoolean checks the schema stores admin as a boolean only (on
// SQLite 0 or 1, like the other flags), and a new row defaults to false.
func TestAdminIsBoolean(t *testing.T) {
	for _, b := range backends {
		t.Run(b.dialect, func(t *testing.T) {
			ctx := t.Context()
			now := time.Now()
			db := mustOpen(t, b.newDSN(t), sqlstore.Options{Migrate: true})
			insert := `INSERT INTO users (id, email, email_key, admin, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`
			for _, v := range []int{2, -1} {
				err := db.ExecForTest(ctx, insert, "u-bad", "bad@example.com", "bad@example.com", v, now, now)
				if err == nil {
					t.Errorf("inserting admin = %v succeeded, want an error", v)
				} else if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
					t.Errorf("inserting admin = %v: error %v is a store sentinel, want a schema error", v, err)
				}
			}
			if _, err := db.Users().UserByID(ctx, "u-bad"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("UserByID(u-bad) = %v, want ErrNotFound", err)
			}
			if err := db.ExecForTest(ctx, insert, "u-admin", "a@example.com", "a@example.com", true, now, now); err != nil {
				t.Fatalf("inserting admin = true: %v", err)
			}
			if err := db.ExecForTest(ctx, `INSERT INTO users (id, email, email_key, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`,
				"u-default", "d@example.com", "d@example.com", now, now); err != nil {
				t.Fatalf("inserting a user without admin: %v", err)
			}
			for id, want := range map[string]bool{"u-admin": true, "u-default": false} {
				if u, err := db.Users().UserByID(ctx, id); err != nil || u.Admin != want {
					t.Errorf("UserByID(%s) = %+v, %v; want Admin %v", id, u, err, want)
				}
			}
		})
	}
}
