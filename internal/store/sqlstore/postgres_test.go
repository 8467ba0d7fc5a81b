package sqlstore_test

import (
	"testing"

	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/store/sqlstore"
	"github.com/gatehouse-auth/gatehouse/internal/store/storetest"
	"github.com/gatehouse-auth/gatehouse/internal/testutil"
)

// newPostgresSchema returns the URL of a fresh, empty schema of the test
// PostgreSQL (dropped when the test ends), or skips the test.
func newPostgresSchema(t *testing.T) string { return testutil.PostgresURL(t) }

func TestPostgres(t *testing.T) {
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
