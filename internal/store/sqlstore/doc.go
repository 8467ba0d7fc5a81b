// Package sqlstore owns the SQLite and PostgreSQL implementations of the
// store interfaces (store.Users, store.Sessions, store.RefreshTokens,
// store.SigningKeys, store.Verifications, store.MFA, store.WebAuthn,
// store.Audit, store.Store) and their embedded migrations.
//
// # One set of queries
//
// Every query is written once, in portable SQL with '?' placeholders, and
// runs on both backends through database/sql. A small dialect layer covers
// the differences: placeholders are rebound to $n for PostgreSQL, times are
// bound as unix microseconds for SQLite and as timestamptz for PostgreSQL
// (the scanner accepts both), and each driver's unique-violation error is
// mapped to store.ErrConflict. PostgreSQL is reached through pgx's
// database/sql adapter (github.com/jackc/pgx/v5/stdlib) rather than pgxpool
// so that both backends share that one query implementation; database/sql
// provides the connection pool.
//
// All times are stored and returned in UTC, truncated to the microsecond,
// so a value round-trips identically through either backend.
//
// # Schema
//
// The schema is plain SQL per dialect, in migrations/sqlite and
// migrations/postgres, embedded in the binary and applied by goose's
// Provider (Open with Options.Migrate, or DB.Migrate). On PostgreSQL the
// migration holds a session advisory lock keyed on the database and schema,
// so several replicas starting at once apply each migration exactly once.
// Ping reports a schema that is missing or older than this build.
//
// # SQLite concurrency
//
// SQLite allows one writer at a time. Instead of letting concurrent writers
// collide and fail with "database is locked", a DB opens two pools on the
// same file:
//
//   - a writer pool of exactly one connection, opened with _txlock=immediate,
//     used for every write and every transaction (InTx). Writers queue in
//     database/sql for that connection, and BEGIN IMMEDIATE takes the write
//     lock up front so a transaction can never fail to upgrade a read lock
//     half-way through;
//   - a reader pool of several query_only connections for plain reads,
//     which WAL lets proceed alongside the writer.
//
// The writer sets journal_mode=WAL (Open fails if the filesystem cannot do
// WAL), foreign_keys=ON and synchronous=NORMAL (durable across application
// crashes; a power loss may lose the last commits, never corrupt the file).
// Every connection has a busy_timeout, which covers other processes, such
// as `gatehouse migrate`, using the file at the same time. The database
// file is created with mode 0600; SQLite gives its -wal and -shm files the
// same mode.
//
// A consequence of the single writer: inside InTx, fn must not write (or
// open another transaction) through the outer DB, as the contract says; on
// SQLite that waits for the connection fn's own transaction holds, until
// ctx ends.
//
// # Hostile input
//
// Client-supplied metadata (session IP, user agent and location, audit IP,
// user agent and details) is stored with NUL and invalid UTF-8 replaced by
// U+FFFD: PostgreSQL would reject such text, and a crafted header must not
// be able to make a session or audit write fail, nor make the backends
// disagree. Driver errors are wrapped without any part that can quote row
// values, so no password or token hash reaches an error message; unique
// violations become store.ErrConflict without the driver's detail.
//
// # PostgreSQL concurrency
//
// Transactions run at READ COMMITTED. Every compare-and-set is a single
// guarded statement (UPDATE ... WHERE ... AND <precondition>), so the row
// lock PostgreSQL takes and the re-check it performs after waiting for a
// concurrent writer decide the race; inside a transaction the lock is held
// until commit, which is how concurrent refresh-token rotations serialize.
// Uniqueness (e-mail key, session token hash, refresh token hash) is
// enforced by unique indexes, never by a read-then-insert.
package sqlstore
