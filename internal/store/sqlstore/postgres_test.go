package sqlstore_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver for the admin connection

	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/store/sqlstore"
	"github.com/gatehouse-auth/gatehouse/internal/store/storetest"
)

const postgresEnv = "GATEHOUSE_TEST_POSTGRES_URL"

// newPostgresSchema creates an empty schema gh_test_<random>, dropped when
// the test ends, and returns the URL of the test database with search_path
// set to it, so that runs never see each other's data.
func newPostgresSchema(t *testing.T) string {
	t.Helper()
	base := postgresURL(t)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("%s: %v", postgresEnv, err)
	}
	suffix := make([]byte, 8)
	rand.Read(suffix)
	schema := "gh_test_" + hex.EncodeToString(suffix)
	if _, err := admin.ExecContext(t.Context(), "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
		admin.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", postgresEnv, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// postgresURL returns the test server's URL, or skips the test if none is
// configured.
func postgresURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv(postgresEnv)
	if u == "" {
		t.Skip(postgresEnv + " is not set; set it (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable) to run the PostgreSQL tests")
	}
	return u
}

func TestPostgres(t *testing.T) {
	postgresURL(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		return mustOpen(t, newPostgresSchema(t), sqlstore.Options{Migrate: true})
	})
}

// TestPostgresConcurrentMigrate starts several replicas on one empty schema
// at once: the advisory lock lets each migration run exactly once.
func TestPostgresConcurrentMigrate(t *testing.T) {
	dsn := newPostgresSchema(t)
	const replicas = 4
	dbs := make([]*sqlstore.DB, replicas)
	for i := range dbs {
		dbs[i] = mustOpen(t, dsn, sqlstore.Options{})
	}
	errs := make(chan error, replicas)
	for _, db := range dbs {
		go func() { errs <- db.Migrate(t.Context()) }()
	}
	for range replicas {
		if err := <-errs; err != nil {
			t.Errorf("Migrate: %v", err)
		}
	}
	for _, db := range dbs {
		if err := db.Ping(t.Context()); err != nil {
			t.Errorf("Ping: %v", err)
		}
	}
}
