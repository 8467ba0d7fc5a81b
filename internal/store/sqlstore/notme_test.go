package sqlstore_test

import (
	"errors"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/store/sqlstore"
)

// TestMigrateNotMePurpose applies migration 9 (the not_me purpose) to a
// database that holds a verification: it reads back unchanged, its
// indexes still hold, and not_me, refused before, is accepted. Rolling
// migration 9 back drops the not_me rows only, and applying it again
// works on the rolled-back data.
func TestMigrateNotMePurpose(t *testing.T) {
	for _, b := range backends {
		t.Run(b.dialect, func(t *testing.T) {
			ctx := t.Context()
			now := time.Now()
			db := mustOpen(t, b.newDSN(t), sqlstore.Options{})
			if err := db.MigrateToForTest(ctx, 8); err != nil {
				t.Fatalf("migrate to version 8: %v", err)
			}
			// Written directly: the store's queries of users want the
			// newest schema.
			if err := db.ExecForTest(ctx, `INSERT INTO users (id, email, email_key, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`,
				"u1", "a@example.com", "a@example.com", now, now); err != nil {
				t.Fatalf("insert a version 8 user: %v", err)
			}
			kept := &store.Verification{ID: "v1", UserID: "u1", Purpose: store.PurposeRecovery, LinkHash: []byte{1},
				Target: "a@example.com", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
			if err := db.Verifications().CreateVerification(ctx, kept); err != nil {
				t.Fatal(err)
			}
			notMe := func(id string, hash byte) error {
				return db.Verifications().CreateVerification(ctx, &store.Verification{ID: id, UserID: "u1", Purpose: store.PurposeNotMe,
					LinkHash: []byte{hash}, Target: "a@example.com", SessionID: "s1", CreatedAt: now, ExpiresAt: now.Add(time.Hour)})
			}
			if err := notMe("v-early", 9); err == nil {
				t.Fatal("version 8 accepted a not_me verification")
			}
			check := func(when string) {
				t.Helper()
				v, err := db.Verifications().VerificationByLinkHash(ctx, []byte{1})
				if err != nil {
					t.Fatalf("VerificationByLinkHash %s: %v", when, err)
				}
				if v.ID != "v1" || v.Purpose != store.PurposeRecovery || v.Target != "a@example.com" || v.UsedAt != nil {
					t.Errorf("verification %s = %+v", when, v)
				}
				if cur, err := db.Verifications().CurrentVerification(ctx, "u1", store.PurposeRecovery); err != nil || cur.ID != "v1" {
					t.Errorf("CurrentVerification %s = %v, %v", when, cur, err)
				}
			}
			if err := db.MigrateToForTest(ctx, 9); err != nil {
				t.Fatalf("migrate to version 9: %v", err)
			}
			check("after migration 9")
			if err := notMe("v2", 2); err != nil {
				t.Fatalf("not_me verification after migration 9: %v", err)
			}
			// The unique index on link_hash survived the rebuild.
			if err := notMe("v3", 1); !errors.Is(err, store.ErrConflict) {
				t.Errorf("a duplicate link hash after migration 9 = %v, want ErrConflict", err)
			}
			if err := db.Verifications().CreateVerification(ctx, &store.Verification{ID: "v4", UserID: "u1", Purpose: "login",
				LinkHash: []byte{4}, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err == nil {
				t.Error("an unknown purpose was accepted after migration 9")
			}
			if err := db.MigrateToForTest(ctx, 8); err != nil {
				t.Fatalf("down to version 8: %v", err)
			}
			check("after rolling migration 9 back")
			if _, err := db.Verifications().VerificationByLinkHash(ctx, []byte{2}); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("the not_me verification after rolling back = %v, want ErrNotFound", err)
			}
			if err := db.MigrateToForTest(ctx, 9); err != nil {
				t.Fatalf("up again to version 9: %v", err)
			}
			check("after applying migration 9 again")
			if err := db.Migrate(ctx); err != nil {
				t.Fatalf("migrate to the newest: %v", err)
			}
			if err := db.Ping(ctx); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			// The user's verifications still go with the user.
			if err := db.ExecForTest(ctx, "DELETE FROM users WHERE id = ?", "u1"); err != nil {
				t.Fatalf("delete the user: %v", err)
			}
			if _, err := db.Verifications().VerificationByLinkHash(ctx, []byte{1}); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("verification after its user was deleted = %v, want ErrNotFound", err)
			}
		})
	}
}

// TestNotMeVerificationsPerSession checks a new not_me verification
// retires only the older one of the same session: every notice's link
// stays good, while other purposes keep one live proof per user.
func TestNotMeVerificationsPerSession(t *testing.T) {
	for _, b := range backends {
		t.Run(b.dialect, func(t *testing.T) {
			ctx := t.Context()
			now := time.Now()
			db := mustOpen(t, b.newDSN(t), sqlstore.Options{Migrate: true})
			if err := db.Users().CreateUser(ctx, &store.User{ID: "u1", Email: "a@example.com", EmailKey: "a@example.com"}); err != nil {
				t.Fatal(err)
			}
			create := func(id, purpose, session string, hash byte) {
				t.Helper()
				if err := db.Verifications().CreateVerification(ctx, &store.Verification{ID: id, UserID: "u1", Purpose: purpose,
					LinkHash: []byte{hash}, SessionID: session, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
					t.Fatal(err)
				}
			}
			used := func(hash byte) bool {
				t.Helper()
				v, err := db.Verifications().VerificationByLinkHash(ctx, []byte{hash})
				if err != nil {
					t.Fatal(err)
				}
				return v.UsedAt != nil
			}
			create("n1", store.PurposeNotMe, "s1", 1)
			create("n2", store.PurposeNotMe, "s2", 2)
			create("r1", store.PurposeRecovery, "", 3)
			create("r2", store.PurposeRecovery, "", 4)
			if used(1) || used(2) {
				t.Error("a not_me verification of another session retired an earlier one")
			}
			if !used(3) || used(4) {
				t.Error("a newer recovery verification did not replace the older one")
			}
			create("n3", store.PurposeNotMe, "s1", 5)
			if !used(1) || used(2) || used(5) {
				t.Error("a newer not_me verification of the same session did not replace only its own older one")
			}
		})
	}
}
