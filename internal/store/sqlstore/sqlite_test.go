package sqlstore_test

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/store/sqlstore"
	"github.com/gatehouse-auth/gatehouse/internal/store/storetest"
)

// openSQLite opens a migrated store on a new file in t.TempDir().
func openSQLite(t *testing.T) (*sqlstore.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	return mustOpen(t, path, sqlstore.Options{Migrate: true}), path
}

// mustOpen opens dsn and closes it when the test ends.
func mustOpen(t *testing.T, dsn string, opts sqlstore.Options) *sqlstore.DB {
	t.Helper()
	db, err := sqlstore.Open(t.Context(), dsn, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db
}

func TestSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		db, _ := openSQLite(t)
		return db
	})
}

// TestSQLiteFileMode checks the database file and SQLite's -wal and -shm
// files are private to the owner, whatever the umask.
func TestSQLiteFileMode(t *testing.T) {
	defer setUmask(0)()
	db, path := openSQLite(t)
	if err := db.Users().CreateUser(t.Context(), &store.User{ID: "u1", Email: "a@example.com", EmailKey: "a@example.com"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if mode := fi.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s has mode %v, want 0600", filepath.Base(p), mode)
		}
	}
}

// TestSQLitePathNeedsNoEscaping opens a file whose path holds characters
// that mean something in a URI.
func TestSQLitePathNeedsNoEscaping(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "odd dir?x=1#frag%20")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "gate house.db")
	db := mustOpen(t, path, sqlstore.Options{Migrate: true})
	if err := db.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database not created at the given path: %v", err)
	}
}

// TestSQLiteTwoHandlesConcurrentWrites writes through two DB handles on one
// file, as two processes (`gatehouse serve` and `gatehouse migrate`, say)
// would: busy_timeout, not an error, resolves the contention.
func TestSQLiteTwoHandlesConcurrentWrites(t *testing.T) {
	a, path := openSQLite(t)
	b := mustOpen(t, path, sqlstore.Options{})
	const n = 20
	errs := make(chan error, 2*n)
	for i := range 2 * n {
		db := a
		if i%2 == 1 {
			db = b
		}
		go func() {
			id := fmt.Sprintf("u%02d", i)
			errs <- db.InTx(t.Context(), func(tx store.Tx) error {
				if err := tx.Users().CreateUser(t.Context(), &store.User{ID: id, Email: id, EmailKey: id}); err != nil {
					return err
				}
				return tx.Audit().AppendEvent(t.Context(), &store.Event{Type: "signup", UserID: id})
			})
		}()
	}
	for range 2 * n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestForgetRefreshSuccessorsUsesTheSealedIndex: the erase runs on every
// rotation, so it must visit only the tokens still holding a sealed
// successor (a partial index), never a long-lived family's whole history.
func TestForgetRefreshSuccessorsUsesTheSealedIndex(t *testing.T) {
	_, path := openSQLite(t)
	raw, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	rows, err := raw.Query(`EXPLAIN QUERY PLAN UPDATE refresh_tokens SET successor = NULL
		WHERE session_id = ? AND used_at < ? AND successor IS NOT NULL`, "s", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan strings.Builder
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan.WriteString(detail + "\n")
	}
	if !strings.Contains(plan.String(), "refresh_tokens_sealed_idx") {
		t.Fatalf("the erase does not use the sealed-successor index:\n%s", plan.String())
	}
}
