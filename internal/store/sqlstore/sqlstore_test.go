package sqlstore_test

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

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

// TestHostileClientText stores client-controlled metadata holding NUL and
// invalid UTF-8 (both legal in an HTTP header, a form value or a JSON
// string, such as a WebAuthn response's transports): PostgreSQL
// would reject such text, so both backends must store the same valid,
// U+FFFD-substituted string instead of failing the write.
func TestHostileClientText(t *testing.T) {
	const hostile, cleaned = "Bad\xff\x00UA", "Bad\uFFFD\uFFFDUA"
	for _, b := range backends {
		t.Run(b.dialect, func(t *testing.T) {
			db := mustOpen(t, b.newDSN(t), sqlstore.Options{Migrate: true})
			ctx := t.Context()
			now := time.Now()
			if err := db.Users().CreateUser(ctx, &store.User{ID: "u1", Email: "a@example.com", EmailKey: "a@example.com"}); err != nil {
				t.Fatal(err)
			}
			err := db.Sessions().CreateSession(ctx, &store.Session{
				ID: "s1", UserID: "u1", TokenHash: []byte{1}, IP: hostile, UserAgent: hostile, Location: hostile,
				CreatedAt: now, LastSeenAt: now, AuthTime: now, ExpiresAt: now.Add(time.Hour),
			})
			if err != nil {
				t.Fatalf("CreateSession: %v", err)
			}
			ss, err := db.Sessions().SessionByID(ctx, "s1")
			if err != nil {
				t.Fatal(err)
			}
			if ss.IP != cleaned || ss.UserAgent != cleaned || ss.Location != cleaned {
				t.Errorf("stored IP %q, UserAgent %q, Location %q; want %q", ss.IP, ss.UserAgent, ss.Location, cleaned)
			}
			if err := db.Sessions().TouchSession(ctx, "s1", now, "x"+hostile, "y"+hostile); err != nil {
				t.Fatalf("TouchSession: %v", err)
			}
			if ss, err = db.Sessions().SessionByID(ctx, "s1"); err != nil || ss.IP != "x"+cleaned || ss.UserAgent != "y"+cleaned {
				t.Errorf("after TouchSession: %+v, %v", ss, err)
			}
			e := &store.Event{Type: "signin.failed", IP: hostile, UserAgent: hostile, At: now,
				Details: map[string]string{"email": hostile, hostile: "v"}}
			if err := db.Audit().AppendEvent(ctx, e); err != nil {
				t.Fatalf("AppendEvent: %v", err)
			}
			evs, err := db.Audit().ListUserEvents(ctx, "", 0, 1)
			if err != nil || len(evs) != 1 {
				t.Fatalf("ListUserEvents = %v, %v", evs, err)
			}
			want := map[string]string{"email": cleaned, cleaned: "v"}
			if got := evs[0]; got.IP != cleaned || got.UserAgent != cleaned || !maps.Equal(got.Details, want) {
				t.Errorf("stored event %+v; want IP, UserAgent %q and details %q", got, cleaned, want)
			}
			c := &store.WebAuthnCredential{ID: "wac_1", UserID: "u1", CredentialID: []byte{1}, PublicKey: []byte{2},
				AAGUID: make([]byte, 16), Transports: []string{"usb", hostile}, CreatedAt: now}
			if err := db.WebAuthn().CreateWebAuthnCredential(ctx, c); err != nil {
				t.Fatalf("CreateWebAuthnCredential: %v", err)
			}
			got, err := db.WebAuthn().WebAuthnCredentialByCredentialID(ctx, c.CredentialID)
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"usb", cleaned}; !slices.Equal(got.Transports, want) {
				t.Errorf("stored transports %q; want %q", got.Transports, want)
			}
		})
	}
}

// TestConstraintErrorsOmitRowValues provokes a constraint violation on a
// row holding a password hash: neither the message nor the driver error
// reachable through errors.As may carry it (PostgreSQL's error detail
// would, as "Failing row contains (...)").
func TestConstraintErrorsOmitRowValues(t *testing.T) {
	const secret = "$argon2id$v=19$m=65536,t=3,p=4$SECRET-HASH"
	for _, b := range backends {
		t.Run(b.dialect, func(t *testing.T) {
			db := mustOpen(t, b.newDSN(t), sqlstore.Options{Migrate: true})
			err := db.Users().CreateUser(t.Context(), &store.User{ID: "", Email: "a@example.com", EmailKey: "a@example.com", PasswordHash: secret})
			if err == nil {
				t.Fatal("CreateUser with an empty id succeeded")
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(fmt.Sprintf("%+v", err), "SECRET-HASH") {
				t.Errorf("error %q quotes the password hash", err)
			}
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && (strings.Contains(pgErr.Detail, "SECRET-HASH") || pgErr.Code == "") {
				t.Errorf("PostgreSQL error detail %q quotes the password hash (code %q)", pgErr.Detail, pgErr.Code)
			}
		})
	}
}
