package sqlstore_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/store/sqlstore"
)

// backends lists a constructor of a fresh, empty database per backend; the
// PostgreSQL one skips its subtest when no server is configured.
var backends = []struct {
	dialect string
	newDSN  func(t *testing.T) string
}{
	{"sqlite", func(t *testing.T) string { return filepath.Join(t.TempDir(), "gatehouse.db") }},
	{"postgres", newPostgresSchema},
}

func TestMigrateIsIdempotent(t *testing.T) {
	for _, b := range backends {
		t.Run(b.dialect, func(t *testing.T) {
			dsn := b.newDSN(t)
			db := mustOpen(t, dsn, sqlstore.Options{Migrate: true})
			if got := db.Dialect(); got != b.dialect {
				t.Errorf("Dialect() = %q, want %q", got, b.dialect)
			}
			for range 2 {
				if err := db.Migrate(t.Context()); err != nil {
					t.Fatalf("Migrate again: %v", err)
				}
			}
			if err := db.Users().CreateUser(t.Context(), &store.User{ID: "u1", Email: "a@example.com", EmailKey: "a@example.com"}); err != nil {
				t.Fatal(err)
			}
			// Opening an up-to-date database with Migrate keeps its data.
			again := mustOpen(t, dsn, sqlstore.Options{Migrate: true})
			if err := again.Ping(t.Context()); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			if _, err := again.Users().UserByID(t.Context(), "u1"); err != nil {
				t.Fatalf("UserByID after re-migrating: %v", err)
			}
		})
	}
}

// TestUnmigratedDatabase opens an empty database with Migrate=false: Open
// succeeds (so `gatehouse migrate` can run), Ping says the schema is
// missing, queries fail with an error that is not a store sentinel, and
// Migrate repairs all of it.
func TestUnmigratedDatabase(t *testing.T) {
	for _, b := range backends {
		t.Run(b.dialect, func(t *testing.T) {
			db := mustOpen(t, b.newDSN(t), sqlstore.Options{})
			err := db.Ping(t.Context())
			if err == nil || !strings.Contains(err.Error(), "gatehouse migrate") {
				t.Fatalf("Ping on an unmigrated database = %v, want an error telling to run `gatehouse migrate`", err)
			}
			_, err = db.Users().UserByID(t.Context(), "u1")
			if err == nil || errors.Is(err, store.ErrNotFound) {
				t.Fatalf("UserByID on an unmigrated database = %v, want a schema error", err)
			}
			if err := db.Migrate(t.Context()); err != nil {
				t.Fatalf("Migrate: %v", err)
			}
			if err := db.Ping(t.Context()); err != nil {
				t.Fatalf("Ping after Migrate: %v", err)
			}
			_, err = db.Users().UserByID(t.Context(), "u1")
			if !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("UserByID after Migrate = %v, want ErrNotFound", err)
			}
		})
	}
}

// TestForeignKeysEnforced checks sessions.user_id references users (on
// SQLite this needs foreign_keys=ON on the writer connection).
func TestForeignKeysEnforced(t *testing.T) {
	for _, b := range backends {
		t.Run(b.dialect, func(t *testing.T) {
			db := mustOpen(t, b.newDSN(t), sqlstore.Options{Migrate: true})
			err := db.Sessions().CreateSession(t.Context(), &store.Session{
				ID: "s1", UserID: "no-such-user", TokenHash: []byte{1},
				CreatedAt: time.Now(), LastSeenAt: time.Now(), AuthTime: time.Now(), ExpiresAt: time.Now(),
			})
			if err == nil {
				t.Fatal("CreateSession for a missing user succeeded")
			}
		})
	}
}

func TestListUserEventsRejectsNonPositiveLimit(t *testing.T) {
	for _, b := range backends {
		t.Run(b.dialect, func(t *testing.T) {
			db := mustOpen(t, b.newDSN(t), sqlstore.Options{Migrate: true})
			for _, limit := range []int{0, -1} {
				if _, err := db.Audit().ListUserEvents(t.Context(), "u1", 0, limit); err == nil {
					t.Errorf("ListUserEvents(limit=%d) succeeded, want an error", limit)
				}
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	for _, tc := range []struct {
		name, dsn string
	}{
		{"empty", ""},
		{"in-memory", ":memory:"},
		{"missing directory", filepath.Join(t.TempDir(), "missing", "gatehouse.db")},
		{"unparsable postgres URL", "postgres://gatehouse:s3cret-pw@127.0.0.1:notaport/db"},
		{"unreachable postgres", "postgresql://gatehouse:s3cret-pw@127.0.0.1:1/db?connect_timeout=5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, err := sqlstore.Open(t.Context(), tc.dsn, sqlstore.Options{Migrate: true})
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded, want an error")
			}
			if !strings.HasPrefix(err.Error(), "sqlstore: open") {
				t.Errorf("error %q lacks the operation context", err)
			}
			if strings.Contains(err.Error(), "s3cret-pw") {
				t.Errorf("error %q leaks the database password", err)
			}
		})
	}
}
