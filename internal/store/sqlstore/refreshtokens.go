package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

const refreshTokenColumns = `id, session_id, hash, created_at, expires_at, used_at, client, successor`

func scanRefreshToken(s scanner) (*store.RefreshToken, error) {
	var t store.RefreshToken
	err := s.Scan(&t.ID, &t.SessionID, &t.Hash, timeCol{&t.CreatedAt}, timeCol{&t.ExpiresAt},
		nullTimeCol{&t.UsedAt}, &t.Client, &t.Successor)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// CreateRefreshToken implements store.RefreshTokens. The unique index on
// hash (and the primary key) make a duplicate fail as store.ErrConflict.
func (q *queries) CreateRefreshToken(ctx context.Context, t *store.RefreshToken) error {
	var usedAt any
	if t.UsedAt != nil {
		usedAt = q.t(*t.UsedAt)
	}
	_, err := q.exec(ctx, `INSERT INTO refresh_tokens (`+refreshTokenColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.SessionID, t.Hash, q.t(t.CreatedAt), q.t(t.ExpiresAt), usedAt, t.Client, t.Successor)
	if q.d.isUniqueViolation(err) {
		return fmt.Errorf("sqlstore: create refresh token: id or hash already in use: %w", store.ErrConflict)
	}
	if err != nil {
		return q.fail("create refresh token", err)
	}
	return nil
}

// RefreshTokenByHash implements store.RefreshTokens.
func (q *queries) RefreshTokenByHash(ctx context.Context, hash []byte) (*store.RefreshToken, error) {
	t, err := scanRefreshToken(q.queryRow(ctx, `SELECT `+refreshTokenColumns+` FROM refresh_tokens WHERE hash = ?`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlstore: refresh token by hash: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, q.fail("refresh token by hash", err)
	}
	return t, nil
}

// MarkRefreshTokenUsed implements store.RefreshTokens as one guarded
// UPDATE: the row lock (PostgreSQL, held until commit inside a
// transaction) or the single writer (SQLite) lets exactly one of several
// concurrent rotations of a token succeed. client is a fingerprint, not
// client-supplied text, and is stored as is.
func (q *queries) MarkRefreshTokenUsed(ctx context.Context, id string, at time.Time, client string, successor []byte) error {
	changed, err := q.guardedUpdate(ctx, "mark refresh token used", "refresh_tokens", id,
		`UPDATE refresh_tokens SET used_at = ?, client = ?, successor = ? WHERE id = ? AND used_at IS NULL`,
		q.t(at), client, successor, id)
	if err == nil && !changed {
		return fmt.Errorf("sqlstore: mark refresh token used: already used: %w", store.ErrConflict)
	}
	return err
}

// ForgetRefreshSuccessors implements store.RefreshTokens.
func (q *queries) ForgetRefreshSuccessors(ctx context.Context, sessionID string, usedBefore time.Time) error {
	_, err := q.exec(ctx, `UPDATE refresh_tokens SET successor = NULL
		WHERE session_id = ? AND used_at < ? AND successor IS NOT NULL`, sessionID, q.t(usedBefore))
	if err != nil {
		return q.fail("forget refresh successors", err)
	}
	return nil
}
