// Package testutil owns helpers shared by tests: the real PostgreSQL and
// Redis that integration tests use (read from GATEHOUSE_TEST_POSTGRES_URL and
// GATEHOUSE_TEST_REDIS_URL, skipped with a clear message when unset), each
// test isolated in its own schema or key prefix.
package testutil

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
)

// PostgresURL returns a URL of the test PostgreSQL whose search_path is a
// fresh schema dropped when the test ends. It skips the test if
// GATEHOUSE_TEST_POSTGRES_URL is unset.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv("GATEHOUSE_TEST_POSTGRES_URL")
	if base == "" {
		t.Skip("PostgreSQL test skipped: set GATEHOUSE_TEST_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable); .ci/run sets it")
	}
	schema := "gh_test_" + RandomHex(8)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("testutil: open postgres: %v", err)
	}
	ctx := context.Background()
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		t.Fatalf("testutil: create schema: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("testutil: drop schema %s: %v", schema, err)
		}
		admin.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("testutil: parse GATEHOUSE_TEST_POSTGRES_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// RedisURL returns GATEHOUSE_TEST_REDIS_URL, skipping the test if unset.
// Callers isolate themselves with a RandomHex key prefix.
func RedisURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("GATEHOUSE_TEST_REDIS_URL")
	if u == "" {
		t.Skip("Redis test skipped: set GATEHOUSE_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/0); .ci/run sets it")
	}
	return u
}

// RandomHex returns 2n random hex characters.
func RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
