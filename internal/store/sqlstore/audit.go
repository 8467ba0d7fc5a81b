package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

const eventColumns = `id, type, user_id, session_id, ip, user_agent, at, details, seq, prev_hash, hash`

// auditChainLockKey is the first key of the PostgreSQL advisory lock that
// serialises audit sealers: pg_advisory_xact_lock(auditChainLockKey,
// hashtext(current_schema())). The constant ("GHAC" in ASCII) names the
// audit chain; the second key scopes it to the schema, so deployments (or
// parallel test runs) sharing one database do not wait for each other.
const auditChainLockKey = 0x47484143

// AppendEvent implements store.Audit. Details are stored as a JSON object
// (jsonb on PostgreSQL); they, IP and UserAgent go through cleanText so
// that attacker-supplied bytes can never make an audit write fail. The
// event is inserted unsealed: the chain columns are set later by the
// sealer, so appends on the request path never wait for one another.
func (q *queries) AppendEvent(ctx context.Context, e *store.Event) error {
	details := []byte("{}")
	if len(e.Details) > 0 {
		clean := make(map[string]string, len(e.Details))
		for k, v := range e.Details {
			clean[cleanText(k)] = cleanText(v)
		}
		var err error
		if details, err = json.Marshal(clean); err != nil {
			return fmt.Errorf("sqlstore: append event: encode details: %w", err)
		}
	}
	var id int64
	err := q.writeQueryRow(ctx, `INSERT INTO audit_events (type, user_id, session_id, ip, user_agent, at, details)
		VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		e.Type, e.UserID, e.SessionID, cleanText(e.IP), cleanText(e.UserAgent), q.t(e.At), string(details)).Scan(&id)
	if err != nil {
		return q.fail("append event", err)
	}
	e.ID = id
	return nil
}

// ListUserEvents implements store.Audit, paging backwards by id through the
// (user_id, id) index. limit must be positive.
func (q *queries) ListUserEvents(ctx context.Context, userID string, before int64, limit int) ([]*store.Event, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("sqlstore: list user events: limit must be positive, got %d", limit)
	}
	if before <= 0 {
		before = math.MaxInt64
	}
	return q.events(ctx, "list user events", `SELECT `+eventColumns+` FROM audit_events
		WHERE user_id = ? AND id < ? ORDER BY id DESC LIMIT ?`, userID, before, limit)
}

// QueryEvents implements store.Audit. A user filter pages through the
// (user_id, id) index; the others scan in id order from f.After.
func (q *queries) QueryEvents(ctx context.Context, f store.EventFilter) ([]*store.Event, error) {
	if f.Limit <= 0 {
		return nil, fmt.Errorf("sqlstore: query events: limit must be positive, got %d", f.Limit)
	}
	where := []string{"id > ?"}
	args := []any{max(f.After, 0)}
	if f.UserID != "" {
		where, args = append(where, "user_id = ?"), append(args, f.UserID)
	}
	if f.Type != "" {
		where, args = append(where, "type = ?"), append(args, f.Type)
	}
	if f.IP != "" {
		where, args = append(where, "ip = ?"), append(args, f.IP)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "at >= ?"), append(args, q.t(f.Since))
	}
	if !f.Until.IsZero() {
		where, args = append(where, "at < ?"), append(args, q.t(f.Until))
	}
	args = append(args, f.Limit)
	return q.events(ctx, "query events", `SELECT `+eventColumns+` FROM audit_events
		WHERE `+strings.Join(where, " AND ")+` ORDER BY id LIMIT ?`, args...)
}

// dbAudit is the store.Audit of a DB outside any transaction, where an
// advisory lock would end with the statement that took it.
type dbAudit struct{ *queries }

// LockAuditChain implements store.Audit: outside a transaction it fails.
func (dbAudit) LockAuditChain(context.Context) error {
	return errors.New("sqlstore: lock audit chain: must be called inside InTx")
}

// LockAuditChain implements store.Audit; q must be inside a transaction
// (dbAudit refuses otherwise). On PostgreSQL it takes the transaction
// advisory lock (auditChainLockKey, hashtext(current_schema())), released
// at commit or rollback; on SQLite the transaction (BEGIN IMMEDIATE)
// already holds the database's write lock, which excludes every other
// sealer, in this process or another.
func (q *queries) LockAuditChain(ctx context.Context) error {
	if q.d.name() != "postgres" {
		return nil
	}
	if _, err := q.exec(ctx, `SELECT pg_advisory_xact_lock(?, hashtext(current_schema()))`, auditChainLockKey); err != nil {
		return q.fail("lock audit chain", err)
	}
	return nil
}

// ChainHead implements store.Audit through the unique seq index. Inside
// the sealer's transaction, after LockAuditChain, it sees the chain as the
// previous sealer committed it (READ COMMITTED takes a snapshot per
// statement).
func (q *queries) ChainHead(ctx context.Context) (store.ChainLink, error) {
	var l store.ChainLink
	err := q.queryRow(ctx, `SELECT seq, hash FROM audit_events WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1`).Scan(&l.Seq, &l.Hash)
	if errors.Is(err, sql.ErrNoRows) {
		return store.ChainLink{}, nil
	}
	if err != nil {
		return store.ChainLink{}, q.fail("chain head", err)
	}
	return l, nil
}

// UnsealedEvents implements store.Audit through the partial index on
// unsealed ids.
func (q *queries) UnsealedEvents(ctx context.Context, limit int) ([]*store.Event, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("sqlstore: unsealed events: limit must be positive, got %d", limit)
	}
	return q.events(ctx, "unsealed events", `SELECT `+eventColumns+` FROM audit_events
		WHERE seq IS NULL ORDER BY id LIMIT ?`, limit)
}

// UnsealedEventStats implements store.Audit.
func (q *queries) UnsealedEventStats(ctx context.Context) (int64, time.Time, error) {
	var (
		n      int64
		oldest *time.Time
	)
	err := q.queryRow(ctx, `SELECT COUNT(*), MIN(at) FROM audit_events WHERE seq IS NULL`).Scan(&n, nullTimeCol{&oldest})
	if err != nil {
		return 0, time.Time{}, q.fail("unsealed event stats", err)
	}
	if oldest == nil {
		return n, time.Time{}, nil
	}
	return n, *oldest, nil
}

// SealEvent implements store.Audit with one guarded UPDATE: the unique
// seq index refuses a position already taken (ErrConflict), and "seq IS
// NULL" a second sealing of the event.
func (q *queries) SealEvent(ctx context.Context, id, seq int64, prevHash, hash []byte) error {
	if seq <= 0 || len(prevHash) != 32 || len(hash) != 32 {
		return fmt.Errorf("sqlstore: seal event %d: want seq > 0 and 32-byte hashes, got seq %d and %d- and %d-byte hashes", id, seq, len(prevHash), len(hash))
	}
	res, err := q.exec(ctx, `UPDATE audit_events SET seq = ?, prev_hash = ?, hash = ? WHERE id = ? AND seq IS NULL`,
		seq, prevHash, hash, id)
	if err != nil {
		if q.d.isUniqueViolation(err) {
			return fmt.Errorf("sqlstore: seal event %d: seq %d is taken: %w", id, seq, store.ErrConflict)
		}
		return q.fail("seal event", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return q.fail("seal event", err)
	} else if n > 0 {
		return nil
	}
	var exists int
	if err := q.writeQueryRow(ctx, `SELECT COUNT(*) FROM audit_events WHERE id = ?`, id).Scan(&exists); err != nil {
		return q.fail("seal event", err)
	}
	if exists == 0 {
		return fmt.Errorf("sqlstore: seal event %d: %w", id, store.ErrNotFound)
	}
	return fmt.Errorf("sqlstore: seal event %d: already sealed: %w", id, store.ErrConflict)
}

// ChainEvents implements store.Audit through the unique seq index.
func (q *queries) ChainEvents(ctx context.Context, afterSeq int64, limit int) ([]*store.Event, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("sqlstore: chain events: limit must be positive, got %d", limit)
	}
	return q.events(ctx, "chain events", `SELECT `+eventColumns+` FROM audit_events
		WHERE seq > ? ORDER BY seq LIMIT ?`, afterSeq, limit)
}

// ClaimAuditSink implements store.Audit: the row is created if missing,
// then one guarded UPDATE takes the lease, so concurrent claimers are
// decided by the row lock (PostgreSQL) or the single writer (SQLite).
func (q *queries) ClaimAuditSink(ctx context.Context, sink, holder string, now, until time.Time) (int64, error) {
	if sink == "" || holder == "" {
		return 0, errors.New("sqlstore: claim audit sink: sink and holder must not be empty")
	}
	if _, err := q.exec(ctx, `INSERT INTO audit_sinks (name) VALUES (?) ON CONFLICT (name) DO NOTHING`, sink); err != nil {
		return 0, q.fail("claim audit sink", err)
	}
	var cursor int64
	err := q.writeQueryRow(ctx, `UPDATE audit_sinks SET holder = ?, lease_until = ?
		WHERE name = ? AND (holder = ? OR holder = '' OR lease_until IS NULL OR lease_until <= ?)
		RETURNING delivered_seq`, holder, q.t(until), sink, holder, q.t(now)).Scan(&cursor)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("sqlstore: claim audit sink %q: held by another replica: %w", sink, store.ErrConflict)
	}
	if err != nil {
		return 0, q.fail("claim audit sink", err)
	}
	return cursor, nil
}

// AdvanceAuditSink implements store.Audit with one guarded UPDATE.
func (q *queries) AdvanceAuditSink(ctx context.Context, sink, holder string, from, to int64) error {
	if to <= from {
		return fmt.Errorf("sqlstore: advance audit sink %q: cursor must move forward, got %d to %d", sink, from, to)
	}
	res, err := q.exec(ctx, `UPDATE audit_sinks SET delivered_seq = ? WHERE name = ? AND holder = ? AND delivered_seq = ?`,
		to, sink, holder, from)
	if err != nil {
		return q.fail("advance audit sink", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return q.fail("advance audit sink", err)
	} else if n > 0 {
		return nil
	}
	var exists int
	if err := q.writeQueryRow(ctx, `SELECT COUNT(*) FROM audit_sinks WHERE name = ?`, sink).Scan(&exists); err != nil {
		return q.fail("advance audit sink", err)
	}
	if exists == 0 {
		return fmt.Errorf("sqlstore: advance audit sink %q: %w", sink, store.ErrNotFound)
	}
	return fmt.Errorf("sqlstore: advance audit sink %q: lease lost or cursor moved: %w", sink, store.ErrConflict)
}

// ReleaseAuditSink implements store.Audit.
func (q *queries) ReleaseAuditSink(ctx context.Context, sink, holder string) error {
	if _, err := q.exec(ctx, `UPDATE audit_sinks SET holder = '', lease_until = NULL WHERE name = ? AND holder = ?`, sink, holder); err != nil {
		return q.fail("release audit sink", err)
	}
	return nil
}

// events runs a SELECT of eventColumns and scans the rows (op names the
// operation in errors).
func (q *queries) events(ctx context.Context, op, query string, args ...any) ([]*store.Event, error) {
	rows, err := q.query(ctx, query, args...)
	if err != nil {
		return nil, q.fail(op, err)
	}
	defer rows.Close()
	var out []*store.Event
	for rows.Next() {
		var (
			e       store.Event
			details []byte
			seq     sql.NullInt64
		)
		if err := rows.Scan(&e.ID, &e.Type, &e.UserID, &e.SessionID, &e.IP, &e.UserAgent,
			timeCol{&e.At}, &details, &seq, &e.PrevHash, &e.Hash); err != nil {
			return nil, q.fail(op, err)
		}
		e.Seq = seq.Int64
		if err := json.Unmarshal(details, &e.Details); err != nil {
			return nil, fmt.Errorf("sqlstore: %s: decode details of event %d: %w", op, e.ID, err)
		}
		if len(e.Details) == 0 {
			e.Details = nil
		}
		out = append(out, &e)
	}
	if err := rows.Err(); err != nil {
		return nil, q.fail(op, err)
	}
	return out, nil
}
