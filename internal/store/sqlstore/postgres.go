package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// Pool limits. Gatehouse's queries are short single-row statements, so a
// modest pool serves a lot of traffic while leaving room under the default
// max_connections (100) for several replicas and for operators.
const (
	pgMaxOpenConns    = 20
	pgMaxIdleConns    = 10
	pgConnMaxIdleTime = 5 * time.Minute
	// Recycling connections lets a replica rebalance after a failover or a
	// connection pooler restart.
	pgConnMaxLifetime = 30 * time.Minute
)

type postgresDialect struct{}

func (postgresDialect) name() string               { return "postgres" }
func (postgresDialect) rebind(query string) string { return rebindDollar(query) }
func (postgresDialect) timeArg(t time.Time) any    { return t }

func (postgresDialect) isUniqueViolation(err error) bool {
	var e *pgconn.PgError
	return errors.As(err, &e) && e.Code == pgerrcode.UniqueViolation
}

// scrub replaces a server error by a copy without Detail, Where and
// InternalQuery, which can quote row values (a password hash in "Failing
// row contains (...)", a token hash in "Key (token_hash)=(...)"). The copy
// keeps the SQLSTATE, message and object names, and is still a
// *pgconn.PgError for errors.As.
func (postgresDialect) scrub(err error) error {
	var e *pgconn.PgError
	if !errors.As(err, &e) {
		return err
	}
	return &pgconn.PgError{
		Severity:            e.Severity,
		SeverityUnlocalized: e.SeverityUnlocalized,
		Code:                e.Code,
		Message:             e.Message,
		Hint:                e.Hint,
		SchemaName:          e.SchemaName,
		TableName:           e.TableName,
		ColumnName:          e.ColumnName,
		DataTypeName:        e.DataTypeName,
		ConstraintName:      e.ConstraintName,
	}
}

// openPostgres connects to the PostgreSQL URL dsn through pgx's
// database/sql driver. Objects live in the first existing schema of the
// connection's search_path (settable as a URL parameter).
func openPostgres(ctx context.Context, dsn string, log *slog.Logger) (*DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx quotes the URL in its parse errors and masks the password
		// only on a best-effort basis, so its message is not passed on.
		return nil, errors.New("sqlstore: open postgres: the connection URL does not parse")
	}
	if _, ok := cfg.RuntimeParams["application_name"]; !ok {
		cfg.RuntimeParams["application_name"] = "gatehouse"
	}
	pool := stdlib.OpenDB(*cfg)
	pool.SetMaxOpenConns(pgMaxOpenConns)
	pool.SetMaxIdleConns(pgMaxIdleConns)
	pool.SetConnMaxIdleTime(pgConnMaxIdleTime)
	pool.SetConnMaxLifetime(pgConnMaxLifetime)

	var dbName string
	var schema sql.NullString
	if err := pool.QueryRowContext(ctx, "SELECT current_database(), current_schema()").Scan(&dbName, &schema); err != nil {
		return nil, errors.Join(fmt.Errorf("sqlstore: open postgres: %w", err), pool.Close())
	}
	if !schema.Valid {
		return nil, errors.Join(errors.New("sqlstore: open postgres: no schema named in search_path exists"), pool.Close())
	}
	// Serialise migrations of this schema across processes; retry every
	// second for up to five minutes while another replica migrates.
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(migrationLockID(dbName, schema.String)),
		lock.WithLockTimeout(1, 300),
	)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("sqlstore: open postgres: %w", err), pool.Close())
	}

	db := &DB{
		d:      postgresDialect{},
		w:      pool,
		r:      pool,
		txOpts: &sql.TxOptions{Isolation: sql.LevelReadCommitted},
		log:    log,
	}
	if err := db.newMigrations(goose.DialectPostgres, "postgres", goose.WithSessionLocker(locker)); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	return db, nil
}

// migrationLockID is the advisory-lock key guarding migrations of one
// schema: migrations of different schemas (e.g. parallel test runs) do not
// wait for each other.
func migrationLockID(database, schema string) int64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "gatehouse-migrations\x00%s\x00%s", database, schema)
	return int64(h.Sum64())
}
