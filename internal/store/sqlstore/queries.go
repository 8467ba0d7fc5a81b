package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// scanner is what *sql.Row and *sql.Rows have in common.
type scanner interface {
	Scan(dest ...any) error
}

// queries implements store.Users, store.Sessions, store.RefreshTokens,
// store.SigningKeys, store.Verifications, store.MFA, store.WebAuthn and
// store.Audit once for both dialects. Outside a transaction r and w are
// the read and write pools; inside one both are the *sql.Tx.
type queries struct {
	d dialect
	r querier
	w querier
}

// fail wraps a driver error with the operation, after the dialect has
// stripped anything that could echo row values (and so secrets).
func (q *queries) fail(op string, err error) error {
	return fmt.Errorf("sqlstore: %s: %w", op, q.d.scrub(err))
}

// cleanText makes client-supplied metadata (user agent, IP, location,
// audit details) storable, identically, by both backends: PostgreSQL
// rejects NUL and invalid UTF-8 in text where SQLite would keep them, and an
// attacker who controls a header must not be able to make a session or an
// audit write fail. Offending bytes become U+FFFD.
func cleanText(s string) string {
	if utf8.ValidString(s) && !strings.ContainsRune(s, 0) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// encodeStrings stores a list of strings (a session's AMR, a credential's
// transports) as a JSON array: values round-trip whatever they contain,
// and nil and empty both become [].
func encodeStrings(ss []string) string {
	if len(ss) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(ss) // a []string always marshals
	return string(b)
}

// decodeStrings reads a list stored by encodeStrings; an empty list comes
// back nil.
func decodeStrings(b []byte) ([]string, error) {
	var ss []string
	if err := json.Unmarshal(b, &ss); err != nil {
		return nil, err
	}
	if len(ss) == 0 {
		return nil, nil
	}
	return ss, nil
}

// t converts a time argument for the dialect.
func (q *queries) t(t time.Time) any { return q.d.timeArg(normTime(t)) }

func (q *queries) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return q.w.ExecContext(ctx, q.d.rebind(query), args...)
}

// writeQuery runs a statement that writes and returns rows (RETURNING).
func (q *queries) writeQuery(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return q.w.QueryContext(ctx, q.d.rebind(query), args...)
}

func (q *queries) writeQueryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return q.w.QueryRowContext(ctx, q.d.rebind(query), args...)
}

func (q *queries) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return q.r.QueryContext(ctx, q.d.rebind(query), args...)
}

func (q *queries) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return q.r.QueryRowContext(ctx, q.d.rebind(query), args...)
}

// guardedUpdate runs an UPDATE of the row id of table whose WHERE clause
// carries a precondition. It reports whether the row changed; a row that
// does not exist at all is store.ErrNotFound (op names the operation in
// errors), one whose precondition failed is (false, nil).
func (q *queries) guardedUpdate(ctx context.Context, op, table, id, query string, args ...any) (bool, error) {
	res, err := q.exec(ctx, query, args...)
	if err != nil {
		return false, q.fail(op, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return false, q.fail(op, err)
	} else if n > 0 {
		return true, nil
	}
	exists, err := q.existsAfterWrite(ctx, table, id)
	switch {
	case err != nil:
		return false, q.fail(op, err)
	case !exists:
		return false, fmt.Errorf("sqlstore: %s: %w", op, store.ErrNotFound)
	}
	return false, nil
}

// execOne runs a statement that must touch a row: none is
// store.ErrNotFound (op names the operation in errors).
func (q *queries) execOne(ctx context.Context, op, query string, args ...any) error {
	res, err := q.exec(ctx, query, args...)
	if err != nil {
		return q.fail(op, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return q.fail(op, err)
	} else if n == 0 {
		return fmt.Errorf("sqlstore: %s: %w", op, store.ErrNotFound)
	}
	return nil
}

// existsAfterWrite reports whether a row with id exists in table, read on
// the write side so that inside a transaction it sees the transaction's
// own state. It tells "missing" from "precondition failed" after a guarded
// UPDATE changed nothing; table is always a constant.
func (q *queries) existsAfterWrite(ctx context.Context, table, id string) (bool, error) {
	var n int
	err := q.writeQueryRow(ctx, "SELECT COUNT(*) FROM "+table+" WHERE id = ?", id).Scan(&n)
	return n > 0, err
}
