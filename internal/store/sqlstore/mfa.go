package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

const totpColumns = `user_id, secret_sealed, kek_version, created_at, confirmed_at, last_step`

const recoveryCodeColumns = `id, user_id, hash, created_at, used_at`

func scanTOTPFactor(s scanner) (*store.TOTPFactor, error) {
	var f store.TOTPFactor
	err := s.Scan(&f.UserID, bytesCol{&f.SecretSealed}, &f.KEKVersion,
		timeCol{&f.CreatedAt}, nullTimeCol{&f.ConfirmedAt}, &f.LastStep)
	if err != nil {
		return nil, err
	}
	return &f, nil
}

// dbMFA is the store.MFA of a DB outside any transaction:
// ReplaceRecoveryCodes runs its statements in a transaction of its own, so
// that the deletion of the old codes and the insertion of the new ones
// commit together.
type dbMFA struct {
	*queries
	db *DB
}

// ReplaceRecoveryCodes implements store.MFA.
func (m dbMFA) ReplaceRecoveryCodes(ctx context.Context, userID string, codes []*store.RecoveryCode) error {
	return m.db.InTx(ctx, func(tx store.Tx) error {
		return tx.MFA().ReplaceRecoveryCodes(ctx, userID, codes)
	})
}

// PutPendingTOTP implements store.MFA as one upsert whose update is
// guarded by the stored factor being pending: the check and the write are
// one statement, so a concurrent ConfirmTOTP either precedes it (and the
// upsert changes nothing: store.ErrConflict) or follows it (and confirms
// the factor this call stored). f.ConfirmedAt is ignored: the stored
// factor is always pending. A missing user fails on the foreign key.
func (q *queries) PutPendingTOTP(ctx context.Context, f *store.TOTPFactor) error {
	res, err := q.exec(ctx, `INSERT INTO totp_factors (`+totpColumns+`) VALUES (?, ?, ?, ?, NULL, ?)
		ON CONFLICT (user_id) DO UPDATE SET secret_sealed = excluded.secret_sealed,
			kek_version = excluded.kek_version, created_at = excluded.created_at,
			confirmed_at = NULL, last_step = excluded.last_step
		WHERE totp_factors.confirmed_at IS NULL`,
		f.UserID, f.SecretSealed, f.KEKVersion, q.t(f.CreatedAt), f.LastStep)
	if err != nil {
		return q.fail("put pending totp", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return q.fail("put pending totp", err)
	}
	if n == 0 {
		return fmt.Errorf("sqlstore: put pending totp: the user has a confirmed factor: %w", store.ErrConflict)
	}
	return nil
}

// TOTPByUser implements store.MFA.
func (q *queries) TOTPByUser(ctx context.Context, userID string) (*store.TOTPFactor, error) {
	f, err := scanTOTPFactor(q.queryRow(ctx, `SELECT `+totpColumns+` FROM totp_factors WHERE user_id = ?`, userID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlstore: totp by user: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, q.fail("totp by user", err)
	}
	return f, nil
}

// ConfirmTOTP implements store.MFA as one guarded UPDATE: of concurrent
// confirmations exactly one succeeds.
func (q *queries) ConfirmTOTP(ctx context.Context, userID string, step int64, at time.Time) error {
	changed, err := q.guardedTOTPUpdate(ctx, "confirm totp", userID,
		`UPDATE totp_factors SET confirmed_at = ?, last_step = ? WHERE user_id = ? AND confirmed_at IS NULL`,
		q.t(at), step, userID)
	if err == nil && !changed {
		return fmt.Errorf("sqlstore: confirm totp: already confirmed: %w", store.ErrConflict)
	}
	return err
}

// UseTOTPStep implements store.MFA as one guarded UPDATE: the row lock
// (PostgreSQL, held until commit inside a transaction) or the single writer
// (SQLite) lets exactly one of several concurrent uses of a step succeed;
// PostgreSQL re-checks last_step < step after waiting for the winner.
func (q *queries) UseTOTPStep(ctx context.Context, userID string, step int64) error {
	changed, err := q.guardedTOTPUpdate(ctx, "use totp step", userID,
		`UPDATE totp_factors SET last_step = ? WHERE user_id = ? AND confirmed_at IS NOT NULL AND last_step < ?`,
		step, userID, step)
	if err == nil && !changed {
		return fmt.Errorf("sqlstore: use totp step: replayed step or pending factor: %w", store.ErrConflict)
	}
	return err
}

// guardedTOTPUpdate is guardedUpdate for totp_factors, whose key is
// user_id rather than id: it reports whether the row changed, and a
// factor that does not exist at all is store.ErrNotFound.
func (q *queries) guardedTOTPUpdate(ctx context.Context, op, userID, query string, args ...any) (bool, error) {
	res, err := q.exec(ctx, query, args...)
	if err != nil {
		return false, q.fail(op, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return false, q.fail(op, err)
	} else if n > 0 {
		return true, nil
	}
	// Read on the write side, so that inside a transaction it sees the
	// transaction's own state.
	var n int
	if err := q.writeQueryRow(ctx, `SELECT COUNT(*) FROM totp_factors WHERE user_id = ?`, userID).Scan(&n); err != nil {
		return false, q.fail(op, err)
	}
	if n == 0 {
		return false, fmt.Errorf("sqlstore: %s: %w", op, store.ErrNotFound)
	}
	return false, nil
}

// DeleteTOTP implements store.MFA.
func (q *queries) DeleteTOTP(ctx context.Context, userID string) error {
	return q.execOne(ctx, "delete totp", `DELETE FROM totp_factors WHERE user_id = ?`, userID)
}

// ReplaceRecoveryCodes implements store.MFA; q must be inside a
// transaction (dbMFA sees to it). Every code must carry userID as its
// UserID; otherwise nothing is written. A duplicate id, or a hash repeated
// among codes, fails as store.ErrConflict; the old codes are then already
// deleted inside the transaction, and come back when it rolls back (InTx
// does, on the error).
//
// Concurrent replacements for one user must not both leave their codes:
// at READ COMMITTED neither one's DELETE would see the other's
// uncommitted inserts. So the transaction first takes the user's row lock,
// until commit, as CreateVerification does; on SQLite the single writer
// already serialises the transactions. A missing user fails on the foreign
// key as soon as there is a code to insert.
func (q *queries) ReplaceRecoveryCodes(ctx context.Context, userID string, codes []*store.RecoveryCode) error {
	for _, c := range codes {
		if c.UserID != userID {
			return errors.New("sqlstore: replace recovery codes: a code of another user")
		}
	}
	if _, err := q.exec(ctx, `UPDATE users SET updated_at = updated_at WHERE id = ?`, userID); err != nil {
		return q.fail("replace recovery codes: lock user", err)
	}
	if _, err := q.exec(ctx, `DELETE FROM recovery_codes WHERE user_id = ?`, userID); err != nil {
		return q.fail("replace recovery codes: delete old ones", err)
	}
	for _, c := range codes {
		var usedAt any
		if c.UsedAt != nil {
			usedAt = q.t(*c.UsedAt)
		}
		_, err := q.exec(ctx, `INSERT INTO recovery_codes (`+recoveryCodeColumns+`) VALUES (?, ?, ?, ?, ?)`,
			c.ID, c.UserID, c.Hash, q.t(c.CreatedAt), usedAt)
		if q.d.isUniqueViolation(err) {
			return fmt.Errorf("sqlstore: replace recovery codes: id or hash already in use: %w", store.ErrConflict)
		}
		if err != nil {
			return q.fail("replace recovery codes", err)
		}
	}
	return nil
}

// UseRecoveryCode implements store.MFA as one guarded UPDATE: of
// concurrent uses of one code exactly one succeeds, the others find no
// unused code. A nil hash matches nothing.
func (q *queries) UseRecoveryCode(ctx context.Context, userID string, hash []byte, at time.Time) error {
	return q.execOne(ctx, "use recovery code", `UPDATE recovery_codes SET used_at = ? WHERE user_id = ? AND hash = ? AND used_at IS NULL`,
		q.t(at), userID, hash)
}

// CountRecoveryCodes implements store.MFA.
func (q *queries) CountRecoveryCodes(ctx context.Context, userID string) (int, error) {
	var n int
	err := q.queryRow(ctx, `SELECT COUNT(*) FROM recovery_codes WHERE user_id = ? AND used_at IS NULL`, userID).Scan(&n)
	if err != nil {
		return 0, q.fail("count recovery codes", err)
	}
	return n, nil
}
