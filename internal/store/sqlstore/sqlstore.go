package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// Options configures Open.
type Options struct {
	// Migrate applies the embedded migrations at open.
	Migrate bool
	// Logger receives migration and configuration messages; may be nil.
	Logger *slog.Logger
}

// DB is a SQLite or PostgreSQL database holding the Gatehouse data model.
// It implements store.Store and is safe for concurrent use.
type DB struct {
	d dialect
	// w runs writes and transactions; r runs plain reads. They are the same
	// pool on PostgreSQL and two pools on one file on SQLite (see the
	// package documentation).
	w, r   *sql.DB
	txOpts *sql.TxOptions
	log    *slog.Logger

	migrations     *goose.Provider
	migrationStore database.Store // reads goose's version table for Ping
	schemaVersion  int64          // newest embedded migration
	schemaReady    atomic.Bool    // Ping saw schemaVersion applied
	q              *queries
}

var _ store.Store = (*DB)(nil)

// Open opens (and migrates, if opts.Migrate) the database named by dsn:
// a "postgres://" or "postgresql://" URL is PostgreSQL, anything else is
// the path of a SQLite file, created with mode 0600 if missing.
func Open(ctx context.Context, dsn string, opts Options) (*DB, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var (
		db  *DB
		err error
	)
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		db, err = openPostgres(ctx, dsn, log)
	} else {
		db, err = openSQLite(ctx, dsn, log)
	}
	if err != nil {
		return nil, err
	}
	db.q = &queries{d: db.d, r: db.r, w: db.w}
	if opts.Migrate {
		if err := db.Migrate(ctx); err != nil {
			return nil, errors.Join(err, db.Close())
		}
	}
	return db, nil
}

// Migrate applies every embedded migration not yet applied (used by
// `gatehouse migrate`). It is idempotent. On PostgreSQL it is safe to run
// from several processes at once; a SQLite file must be migrated by one
// process at a time.
func (db *DB) Migrate(ctx context.Context) error {
	results, err := db.migrations.Up(ctx)
	if err != nil {
		return fmt.Errorf("sqlstore: migrate %s: %w", db.d.name(), err)
	}
	for _, r := range results {
		db.log.InfoContext(ctx, "applied database migration",
			"dialect", db.d.name(), "version", r.Source.Version, "duration", r.Duration)
	}
	return nil
}

// Dialect reports the backend: "sqlite" or "postgres".
func (db *DB) Dialect() string { return db.d.name() }

// Users implements store.Tx.
func (db *DB) Users() store.Users { return db.q }

// Sessions implements store.Tx.
func (db *DB) Sessions() store.Sessions { return db.q }

// RefreshTokens implements store.Tx.
func (db *DB) RefreshTokens() store.RefreshTokens { return db.q }

// SigningKeys implements store.Tx.
func (db *DB) SigningKeys() store.SigningKeys { return db.q }

// Verifications implements store.Tx.
func (db *DB) Verifications() store.Verifications { return dbVerifications{db.q, db} }

// MFA implements store.Tx.
func (db *DB) MFA() store.MFA { return dbMFA{db.q, db} }

// WebAuthn implements store.Tx.
func (db *DB) WebAuthn() store.WebAuthn { return db.q }

// Audit implements store.Tx.
func (db *DB) Audit() store.Audit { return dbAudit{db.q} }

// IPRules implements store.Tx.
func (db *DB) IPRules() store.IPRules { return db.q }

// InTx runs fn in one transaction (READ COMMITTED on PostgreSQL, BEGIN
// IMMEDIATE on SQLite). The transaction is rolled back if fn returns an
// error, panics (the panic continues) or exits the goroutine; fn's error is
// returned as is. fn must not use the outer DB: on SQLite its writes would
// wait for the one writer connection, which this transaction holds.
func (db *DB) InTx(ctx context.Context, fn func(tx store.Tx) error) error {
	tx, err := db.w.BeginTx(ctx, db.txOpts)
	if err != nil {
		return fmt.Errorf("sqlstore: begin transaction: %w", err)
	}
	finished := false
	defer func() {
		if !finished {
			_ = tx.Rollback() // fn panicked or called runtime.Goexit
		}
	}()
	fnErr := fn(txStore{&queries{d: db.d, r: tx, w: tx}})
	finished = true
	if fnErr != nil {
		if err := tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
			return errors.Join(fnErr, fmt.Errorf("sqlstore: rollback: %w", err))
		}
		return fnErr
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlstore: commit: %w", err)
	}
	return nil
}

// txStore is the store.Tx handed to an InTx callback.
type txStore struct{ q *queries }

func (t txStore) Users() store.Users                 { return t.q }
func (t txStore) Sessions() store.Sessions           { return t.q }
func (t txStore) RefreshTokens() store.RefreshTokens { return t.q }
func (t txStore) SigningKeys() store.SigningKeys     { return t.q }
func (t txStore) Verifications() store.Verifications { return t.q }
func (t txStore) MFA() store.MFA                     { return t.q }
func (t txStore) WebAuthn() store.WebAuthn           { return t.q }
func (t txStore) Audit() store.Audit                 { return t.q }
func (t txStore) IPRules() store.IPRules             { return t.q }

// Ping checks that the database is reachable and that its schema is at
// least the version this build was compiled with.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.w.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlstore: ping: %w", err)
	}
	if db.r != db.w {
		if err := db.r.PingContext(ctx); err != nil {
			return fmt.Errorf("sqlstore: ping: %w", err)
		}
	}
	if db.schemaReady.Load() {
		return nil
	}
	v, err := db.appliedSchemaVersion(ctx)
	if err != nil {
		return fmt.Errorf("sqlstore: ping: cannot read the schema version (has `gatehouse migrate` run?): %w", err)
	}
	if v < db.schemaVersion {
		return fmt.Errorf("sqlstore: ping: database schema is at version %d, this build needs %d: run `gatehouse migrate`", v, db.schemaVersion)
	}
	db.schemaReady.Store(true)
	return nil
}

// Close closes every pool.
func (db *DB) Close() error {
	var err error
	if db.r != db.w {
		err = db.r.Close()
	}
	return errors.Join(err, db.w.Close())
}
