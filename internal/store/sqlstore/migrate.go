package sqlstore

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"
)

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFiles embed.FS

// newMigrations builds the goose provider for the embedded migrations of
// dialect dir ("sqlite" or "postgres"), run on db. It records the newest
// embedded version, which Ping requires the database to have reached.
func (db *DB) newMigrations(gooseDialect goose.Dialect, dir string, opts ...goose.ProviderOption) error {
	fsys, err := fs.Sub(migrationFiles, "migrations/"+dir)
	if err != nil {
		return fmt.Errorf("sqlstore: migrations: %w", err)
	}
	opts = append(opts, goose.WithDisableGlobalRegistry(true))
	p, err := goose.NewProvider(gooseDialect, db.w, fsys, opts...)
	if err != nil {
		return fmt.Errorf("sqlstore: migrations: %w", err)
	}
	sources := p.ListSources()
	db.migrations = p
	db.schemaVersion = sources[len(sources)-1].Version // goose refuses an empty set
	db.migrationStore, err = database.NewStore(gooseDialect, goose.DefaultTablename)
	if err != nil {
		return fmt.Errorf("sqlstore: migrations: %w", err)
	}
	return nil
}

// appliedSchemaVersion reads the newest applied migration without creating
// goose's version table, so that Ping never writes.
func (db *DB) appliedSchemaVersion(ctx context.Context) (int64, error) {
	v, err := db.migrationStore.GetLatestVersion(ctx, db.r)
	if errors.Is(err, database.ErrVersionNotFound) {
		return 0, nil
	}
	return v, err
}
