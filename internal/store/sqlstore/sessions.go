package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

const sessionColumns = `id, user_id, kind, token_hash, created_at, last_seen_at, auth_time, expires_at,
	ip, user_agent, location, aal, amr, revoked_at, revoke_reason`

func scanSession(s scanner) (*store.Session, error) {
	var (
		ss  store.Session
		amr []byte
	)
	err := s.Scan(&ss.ID, &ss.UserID, &ss.Kind, &ss.TokenHash,
		timeCol{&ss.CreatedAt}, timeCol{&ss.LastSeenAt}, timeCol{&ss.AuthTime}, timeCol{&ss.ExpiresAt},
		&ss.IP, &ss.UserAgent, &ss.Location, &ss.AAL, &amr, nullTimeCol{&ss.RevokedAt}, &ss.RevokeReason)
	if err != nil {
		return nil, err
	}
	if ss.AMR, err = decodeStrings(amr); err != nil {
		return nil, fmt.Errorf("decode amr: %w", err)
	}
	return &ss, nil
}

// CreateSession implements store.Sessions. An empty Kind is stored as
// store.SessionCookie; IP, UserAgent and Location are stored through
// cleanText.
func (q *queries) CreateSession(ctx context.Context, s *store.Session) error {
	kind := s.Kind
	if kind == "" {
		kind = store.SessionCookie
	}
	var revokedAt any
	if s.RevokedAt != nil {
		revokedAt = q.t(*s.RevokedAt)
	}
	_, err := q.exec(ctx, `INSERT INTO sessions (`+sessionColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		s.ID, s.UserID, kind, s.TokenHash, q.t(s.CreatedAt), q.t(s.LastSeenAt), q.t(s.AuthTime), q.t(s.ExpiresAt),
		cleanText(s.IP), cleanText(s.UserAgent), cleanText(s.Location), s.AAL, encodeStrings(s.AMR), revokedAt, s.RevokeReason)
	if q.d.isUniqueViolation(err) {
		return fmt.Errorf("sqlstore: create session: id or token hash already in use: %w", store.ErrConflict)
	}
	if err != nil {
		return q.fail("create session", err)
	}
	return nil
}

// SessionByTokenHash implements store.Sessions.
func (q *queries) SessionByTokenHash(ctx context.Context, hash []byte) (*store.Session, error) {
	s, err := scanSession(q.queryRow(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE token_hash = ?`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlstore: session by token hash: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, q.fail("session by token hash", err)
	}
	return s, nil
}

// SessionByID implements store.Sessions.
func (q *queries) SessionByID(ctx context.Context, id string) (*store.Session, error) {
	s, err := scanSession(q.queryRow(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlstore: session by id: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, q.fail("session by id", err)
	}
	return s, nil
}

// ListActiveSessions implements store.Sessions. Ties on last_seen_at are
// broken by id so the order is stable.
func (q *queries) ListActiveSessions(ctx context.Context, userID string, now time.Time) ([]*store.Session, error) {
	rows, err := q.query(ctx, `SELECT `+sessionColumns+` FROM sessions
		WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ?
		ORDER BY last_seen_at DESC, id`, userID, q.t(now))
	if err != nil {
		return nil, q.fail("list active sessions", err)
	}
	defer rows.Close()
	var out []*store.Session
	for rows.Next() {
		s, err := scanSession(rows)
		if err != nil {
			return nil, q.fail("list active sessions", err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, q.fail("list active sessions", err)
	}
	return out, nil
}

// TouchSession implements store.Sessions; ip and userAgent are stored
// through cleanText.
func (q *queries) TouchSession(ctx context.Context, id string, at time.Time, ip, userAgent string) error {
	// A revoked session (precondition failed) has nothing to record.
	_, err := q.guardedUpdate(ctx, "touch session", "sessions", id,
		`UPDATE sessions SET last_seen_at = ?, ip = ?, user_agent = ? WHERE id = ? AND revoked_at IS NULL`,
		q.t(at), cleanText(ip), cleanText(userAgent), id)
	return err
}

// RotateSessionToken implements store.Sessions. A new hash that another
// session already holds is reported as store.ErrConflict.
func (q *queries) RotateSessionToken(ctx context.Context, id string, newHash []byte, authTime time.Time, aal int, amr []string) error {
	res, err := q.exec(ctx, `UPDATE sessions SET token_hash = ?, auth_time = ?, aal = ?, amr = ?
		WHERE id = ? AND revoked_at IS NULL`, newHash, q.t(authTime), aal, encodeStrings(amr), id)
	if q.d.isUniqueViolation(err) {
		return fmt.Errorf("sqlstore: rotate session token: token hash already in use: %w", store.ErrConflict)
	}
	if err != nil {
		return q.fail("rotate session token", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return q.fail("rotate session token", err)
	} else if n == 0 {
		return fmt.Errorf("sqlstore: rotate session token: no active session: %w", store.ErrNotFound)
	}
	return nil
}

// RevokeSession implements store.Sessions. Of concurrent revocations of one
// session exactly one changes the row and reports true.
func (q *queries) RevokeSession(ctx context.Context, id string, at time.Time, reason string) (bool, error) {
	// Already revoked (precondition failed) reports false.
	return q.guardedUpdate(ctx, "revoke session", "sessions", id,
		`UPDATE sessions SET revoked_at = ?, revoke_reason = ? WHERE id = ? AND revoked_at IS NULL`,
		q.t(at), reason, id)
}

// RevokeUserSessions implements store.Sessions in one statement; the ids
// come from RETURNING, so concurrent callers never both report a session.
// Sessions past their absolute expiry are revoked too. The ids are sorted.
func (q *queries) RevokeUserSessions(ctx context.Context, userID, exceptID string, at time.Time, reason string) ([]string, error) {
	rows, err := q.writeQuery(ctx, `UPDATE sessions SET revoked_at = ?, revoke_reason = ?
		WHERE user_id = ? AND id <> ? AND revoked_at IS NULL
		RETURNING id`, q.t(at), reason, userID, exceptID)
	if err != nil {
		return nil, q.fail("revoke user sessions", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, q.fail("revoke user sessions", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, q.fail("revoke user sessions", err)
	}
	slices.Sort(ids)
	return ids, nil
}

// RevokedSessionsSince implements store.Sessions through the partial index
// on revoked_at. Ties on revoked_at are broken by id.
func (q *queries) RevokedSessionsSince(ctx context.Context, since time.Time) ([]store.Revocation, error) {
	rows, err := q.query(ctx, `SELECT id, revoked_at FROM sessions
		WHERE revoked_at >= ?
		ORDER BY revoked_at, id`, q.t(since))
	if err != nil {
		return nil, q.fail("revoked sessions since", err)
	}
	defer rows.Close()
	var out []store.Revocation
	for rows.Next() {
		var r store.Revocation
		if err := rows.Scan(&r.SessionID, timeCol{&r.RevokedAt}); err != nil {
			return nil, q.fail("revoked sessions since", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, q.fail("revoked sessions since", err)
	}
	return out, nil
}
