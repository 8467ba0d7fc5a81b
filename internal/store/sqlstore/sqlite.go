package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// sqliteBusyTimeout bounds how long a connection waits for a lock held by
// another process (the writer pool serialises this process's writers).
const sqliteBusyTimeout = 10 * time.Second

type sqliteDialect struct{}

func (sqliteDialect) name() string               { return "sqlite" }
func (sqliteDialect) rebind(query string) string { return query }
func (sqliteDialect) timeArg(t time.Time) any    { return t.UnixMicro() }

// scrub keeps SQLite errors as they are: their messages name the
// constraint or column, never a value.
func (sqliteDialect) scrub(err error) error { return err }

func (sqliteDialect) isUniqueViolation(err error) bool {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return true
	}
	return false
}

// openSQLite opens the SQLite file at path with one writer connection and a
// pool of read-only connections; see the package documentation.
func openSQLite(ctx context.Context, path string, log *slog.Logger) (*DB, error) {
	if path == "" || path == ":memory:" {
		return nil, fmt.Errorf("sqlstore: open sqlite: %q is not a database file path", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: open sqlite: %w", err)
	}
	if err := createPrivateFile(abs, log); err != nil {
		return nil, err
	}

	busy := fmt.Sprintf("busy_timeout(%d)", sqliteBusyTimeout.Milliseconds())
	w, err := openSQLitePool(ctx, abs, url.Values{
		"_pragma": {busy, "foreign_keys(1)", "journal_mode(WAL)", "synchronous(NORMAL)"},
		"_txlock": {"immediate"},
	}, 1)
	if err != nil {
		return nil, err
	}
	// journal_mode=WAL silently stays as it was where WAL is unsupported
	// (e.g. some network filesystems); the reader pool depends on it.
	var mode string
	if err := w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return nil, errors.Join(fmt.Errorf("sqlstore: open sqlite %s: read journal_mode: %w", abs, err), w.Close())
	}
	if !strings.EqualFold(mode, "wal") {
		return nil, errors.Join(fmt.Errorf("sqlstore: open sqlite %s: cannot enable WAL, journal_mode is %q", abs, mode), w.Close())
	}
	r, err := openSQLitePool(ctx, abs, url.Values{
		"_pragma": {busy, "query_only(1)"},
	}, max(4, runtime.NumCPU()))
	if err != nil {
		return nil, errors.Join(err, w.Close())
	}

	db := &DB{d: sqliteDialect{}, w: w, r: r, log: log}
	if err := db.newMigrations(goose.DialectSQLite3, "sqlite"); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	return db, nil
}

// openSQLitePool opens a pool of at most size connections to the file at
// abs with the driver parameters params, and checks one connection opens.
func openSQLitePool(ctx context.Context, abs string, params url.Values, size int) (*sql.DB, error) {
	// A file: URI with an escaped path, so that no character of the path
	// ('?', '#', '%') can be mistaken for a parameter.
	dsn := (&url.URL{Scheme: "file", Path: abs, RawQuery: params.Encode()}).String()
	c, err := sqlite.NewConnector(dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: open sqlite %s: %w", abs, err)
	}
	db := sql.OpenDB(c)
	db.SetMaxOpenConns(size)
	db.SetMaxIdleConns(size)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	if err := db.PingContext(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("sqlstore: open sqlite %s: %w", abs, err), db.Close())
	}
	return db, nil
}

// createPrivateFile creates the database file with mode 0600 if it does not
// exist (SQLite gives its -wal and -shm files the same mode), and warns if
// an existing file is open to other users.
func createPrivateFile(abs string, log *slog.Logger) error {
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("sqlstore: open sqlite: %w", err)
	}
	fi, err := f.Stat()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sqlstore: open sqlite: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		log.Warn("sqlite database file is accessible to other users; consider chmod 600",
			"path", abs, "mode", perm.String())
	}
	return nil
}
