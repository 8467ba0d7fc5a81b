package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

const verificationColumns = `id, user_id, purpose, link_hash, code_hash, target, session_id, binding,
	attempts, created_at, expires_at, used_at`

func scanVerification(s scanner) (*store.Verification, error) {
	var v store.Verification
	err := s.Scan(&v.ID, &v.UserID, &v.Purpose, bytesCol{&v.LinkHash}, bytesCol{&v.CodeHash},
		&v.Target, &v.SessionID, bytesCol{&v.Binding}, &v.Attempts,
		timeCol{&v.CreatedAt}, timeCol{&v.ExpiresAt}, nullTimeCol{&v.UsedAt})
	if err != nil {
		return nil, err
	}
	return &v, nil
}

// bytesCol scans a nullable BLOB (bytea) column keeping NULL and empty
// apart: NULL leaves *dst nil, an empty value makes it empty but not nil.
// (database/sql's own conversion turns SQLite's empty blob into nil.)
type bytesCol struct{ dst *[]byte }

func (c bytesCol) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*c.dst = nil
	case []byte:
		*c.dst = append([]byte{}, v...) // the driver may reuse v
	default:
		return fmt.Errorf("sqlstore: cannot scan %T into a byte slice", src)
	}
	return nil
}

// dbVerifications is the store.Verifications of a DB outside any
// transaction: CreateVerification runs its statements in a transaction of
// its own, so that the new verification and the retirement of the older
// ones commit together.
type dbVerifications struct {
	*queries
	db *DB
}

// CreateVerification implements store.Verifications.
func (v dbVerifications) CreateVerification(ctx context.Context, ver *store.Verification) error {
	return v.db.InTx(ctx, func(tx store.Tx) error {
		return tx.Verifications().CreateVerification(ctx, ver)
	})
}

// CreateVerification implements store.Verifications; q must be inside a
// transaction (dbVerifications sees to it). The unique indexes on id and
// link_hash make a duplicate fail as store.ErrConflict, before anything is
// retired.
//
// Concurrent creations for one user must not both leave their
// verification unused: at READ COMMITTED neither one's retirement would
// see the other's uncommitted insert. So the transaction first takes the
// user's row lock, until commit, with an UPDATE that changes nothing
// (portable, unlike SELECT ... FOR UPDATE; it does not block inserts that
// reference the user); on SQLite the single writer already serialises the
// transactions. A missing user fails on the foreign key.
func (q *queries) CreateVerification(ctx context.Context, v *store.Verification) error {
	if _, err := q.exec(ctx, `UPDATE users SET updated_at = updated_at WHERE id = ?`, v.UserID); err != nil {
		return q.fail("create verification: lock user", err)
	}
	var usedAt any
	if v.UsedAt != nil {
		usedAt = q.t(*v.UsedAt)
	}
	_, err := q.exec(ctx, `INSERT INTO verifications (`+verificationColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		v.ID, v.UserID, v.Purpose, v.LinkHash, v.CodeHash, v.Target, v.SessionID, v.Binding,
		v.Attempts, q.t(v.CreatedAt), q.t(v.ExpiresAt), usedAt)
	if q.d.isUniqueViolation(err) {
		return fmt.Errorf("sqlstore: create verification: id or link hash already in use: %w", store.ErrConflict)
	}
	if err != nil {
		return q.fail("create verification", err)
	}
	// A not_me link belongs to one session's notice: a later sign-in's
	// notice must not void the link of an earlier one.
	_, err = q.exec(ctx, `UPDATE verifications SET used_at = ?
		WHERE user_id = ? AND purpose = ? AND used_at IS NULL AND id <> ?
		AND (purpose <> ? OR session_id = ?)`,
		q.t(v.CreatedAt), v.UserID, v.Purpose, v.ID, store.PurposeNotMe, v.SessionID)
	if err != nil {
		return q.fail("create verification: retire older ones", err)
	}
	return nil
}

// VerificationByLinkHash implements store.Verifications. A nil hash
// matches nothing (a verification without a link stores NULL).
func (q *queries) VerificationByLinkHash(ctx context.Context, hash []byte) (*store.Verification, error) {
	v, err := scanVerification(q.queryRow(ctx, `SELECT `+verificationColumns+` FROM verifications WHERE link_hash = ?`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlstore: verification by link hash: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, q.fail("verification by link hash", err)
	}
	return v, nil
}

// CurrentVerification implements store.Verifications. CreateVerification
// leaves at most one unused verification per user and purpose; should there
// be more (one created already used is never current), the newest wins,
// ties broken by id.
func (q *queries) CurrentVerification(ctx context.Context, userID, purpose string) (*store.Verification, error) {
	v, err := scanVerification(q.queryRow(ctx, `SELECT `+verificationColumns+` FROM verifications
		WHERE user_id = ? AND purpose = ? AND used_at IS NULL
		ORDER BY created_at DESC, id DESC LIMIT 1`, userID, purpose))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlstore: current verification: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, q.fail("current verification", err)
	}
	return v, nil
}

// ConsumeVerification implements store.Verifications as one guarded
// UPDATE: the row lock (PostgreSQL, held until commit inside a
// transaction) or the single writer (SQLite) lets exactly one of several
// concurrent consumers succeed.
func (q *queries) ConsumeVerification(ctx context.Context, id string, at time.Time) error {
	changed, err := q.guardedUpdate(ctx, "consume verification", "verifications", id,
		`UPDATE verifications SET used_at = ? WHERE id = ? AND used_at IS NULL AND expires_at > ?`,
		q.t(at), id, q.t(at))
	if err == nil && !changed {
		return fmt.Errorf("sqlstore: consume verification: used or expired: %w", store.ErrConflict)
	}
	return err
}

// AttemptVerification implements store.Verifications as one atomic increment
// that returns the new count: concurrent failures each see their own count,
// and exactly one of them reaches max and marks the verification used. A
// max of 1 or less kills it at the first failure. Expiry is not checked.
func (q *queries) AttemptVerification(ctx context.Context, id string, max int, at time.Time) (int, error) {
	var attempts int
	err := q.writeQueryRow(ctx, `UPDATE verifications
		SET attempts = attempts + 1, used_at = CASE WHEN attempts + 1 >= ? THEN ? ELSE used_at END
		WHERE id = ? AND used_at IS NULL
		RETURNING attempts`, max, q.t(at), id).Scan(&attempts)
	if errors.Is(err, sql.ErrNoRows) {
		exists, err := q.existsAfterWrite(ctx, "verifications", id)
		switch {
		case err != nil:
			return 0, q.fail("fail verification", err)
		case !exists:
			return 0, fmt.Errorf("sqlstore: fail verification: %w", store.ErrNotFound)
		}
		return 0, fmt.Errorf("sqlstore: fail verification: already used: %w", store.ErrConflict)
	}
	if err != nil {
		return 0, q.fail("fail verification", err)
	}
	return attempts, nil
}

// RetireVerifications implements store.Verifications. With no purposes it
// retires nothing and returns 0.
func (q *queries) RetireVerifications(ctx context.Context, userID string, at time.Time, purposes ...string) (int, error) {
	if len(purposes) == 0 {
		return 0, nil
	}
	args := make([]any, 0, 2+len(purposes))
	args = append(args, q.t(at), userID)
	for _, p := range purposes {
		args = append(args, p)
	}
	placeholders := strings.TrimSuffix(strings.Repeat("?, ", len(purposes)), ", ")
	res, err := q.exec(ctx, `UPDATE verifications SET used_at = ?
		WHERE user_id = ? AND used_at IS NULL AND purpose IN (`+placeholders+`)`, args...)
	if err != nil {
		return 0, q.fail("retire verifications", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, q.fail("retire verifications", err)
	}
	return int(n), nil
}

// DeleteVerificationsBefore implements store.Verifications through the
// index on expires_at; used or not, a verification is deleted once it has
// expired before before.
func (q *queries) DeleteVerificationsBefore(ctx context.Context, before time.Time) (int, error) {
	res, err := q.exec(ctx, `DELETE FROM verifications WHERE expires_at < ?`, q.t(before))
	if err != nil {
		return 0, q.fail("delete verifications", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, q.fail("delete verifications", err)
	}
	return int(n), nil
}
