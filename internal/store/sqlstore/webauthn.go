package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

const webAuthnColumns = `id, user_id, credential_id, public_key, attestation_type, aaguid, transports,
	discoverable, backup_eligible, backup_state, sign_count, name, created_at, last_used_at`

func scanWebAuthnCredential(s scanner) (*store.WebAuthnCredential, error) {
	var (
		c          store.WebAuthnCredential
		transports []byte
	)
	err := s.Scan(&c.ID, &c.UserID, bytesCol{&c.CredentialID}, bytesCol{&c.PublicKey}, &c.AttestationType,
		bytesCol{&c.AAGUID}, &transports, &c.Discoverable, &c.BackupEligible, &c.BackupState, &c.SignCount,
		&c.Name, timeCol{&c.CreatedAt}, nullTimeCol{&c.LastUsedAt})
	if err != nil {
		return nil, err
	}
	if c.Transports, err = decodeStrings(transports); err != nil {
		return nil, fmt.Errorf("decode transports: %w", err)
	}
	return &c, nil
}

// CreateWebAuthnCredential implements store.WebAuthn. The unique indexes on
// id and credential_id make a duplicate fail as store.ErrConflict, whoever
// owns the other credential. The transports, which the client reports, are
// stored through cleanText; the schema rejects an AAGUID that is not 16
// bytes, a BackupState without BackupEligible and a missing user.
func (q *queries) CreateWebAuthnCredential(ctx context.Context, c *store.WebAuthnCredential) error {
	transports := make([]string, len(c.Transports))
	for i, t := range c.Transports {
		transports[i] = cleanText(t)
	}
	var lastUsedAt any
	if c.LastUsedAt != nil {
		lastUsedAt = q.t(*c.LastUsedAt)
	}
	_, err := q.exec(ctx, `INSERT INTO webauthn_credentials (`+webAuthnColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.UserID, c.CredentialID, c.PublicKey, c.AttestationType, c.AAGUID, encodeStrings(transports),
		c.Discoverable, c.BackupEligible, c.BackupState, c.SignCount, c.Name, q.t(c.CreatedAt), lastUsedAt)
	if q.d.isUniqueViolation(err) {
		return fmt.Errorf("sqlstore: create webauthn credential: id or credential id already in use: %w", store.ErrConflict)
	}
	if err != nil {
		return q.fail("create webauthn credential", err)
	}
	return nil
}

// WebAuthnCredentialsByUser implements store.WebAuthn through the index on
// user_id.
func (q *queries) WebAuthnCredentialsByUser(ctx context.Context, userID string) ([]*store.WebAuthnCredential, error) {
	rows, err := q.query(ctx, `SELECT `+webAuthnColumns+` FROM webauthn_credentials
		WHERE user_id = ?
		ORDER BY created_at, id`, userID)
	if err != nil {
		return nil, q.fail("webauthn credentials by user", err)
	}
	defer rows.Close()
	var out []*store.WebAuthnCredential
	for rows.Next() {
		c, err := scanWebAuthnCredential(rows)
		if err != nil {
			return nil, q.fail("webauthn credentials by user", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, q.fail("webauthn credentials by user", err)
	}
	return out, nil
}

// WebAuthnCredentialByCredentialID implements store.WebAuthn. A nil id
// matches nothing.
func (q *queries) WebAuthnCredentialByCredentialID(ctx context.Context, credentialID []byte) (*store.WebAuthnCredential, error) {
	c, err := scanWebAuthnCredential(q.queryRow(ctx, `SELECT `+webAuthnColumns+` FROM webauthn_credentials
		WHERE credential_id = ?`, credentialID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlstore: webauthn credential by credential id: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, q.fail("webauthn credential by credential id", err)
	}
	return c, nil
}

// UseWebAuthnCredential implements store.WebAuthn as one guarded UPDATE:
// the row lock (PostgreSQL, held until commit inside a transaction) or the
// single writer (SQLite) lets exactly one of several concurrent uses from
// one count succeed, as long as newCount differs from oldCount. An
// authenticator that does not count (newCount == oldCount == 0) leaves the
// precondition true, so every use of it succeeds: the counter detects
// cloned authenticators, it does not stop replays (single-use challenges
// do).
func (q *queries) UseWebAuthnCredential(ctx context.Context, id string, oldCount, newCount uint32, backupState bool, at time.Time) error {
	changed, err := q.guardedUpdate(ctx, "use webauthn credential", "webauthn_credentials", id,
		`UPDATE webauthn_credentials SET sign_count = ?, backup_state = ?, last_used_at = ?
		WHERE id = ? AND sign_count = ?`,
		newCount, backupState, q.t(at), id, oldCount)
	if err == nil && !changed {
		return fmt.Errorf("sqlstore: use webauthn credential: sign count changed: %w", store.ErrConflict)
	}
	return err
}

// RenameWebAuthnCredential implements store.WebAuthn. Renaming to the
// current name is not an error.
func (q *queries) RenameWebAuthnCredential(ctx context.Context, userID, id, name string) error {
	return q.execOne(ctx, "rename webauthn credential", `UPDATE webauthn_credentials SET name = ? WHERE user_id = ? AND id = ?`, name, userID, id)
}

// DeleteWebAuthnCredential implements store.WebAuthn.
func (q *queries) DeleteWebAuthnCredential(ctx context.Context, userID, id string) error {
	return q.execOne(ctx, "delete webauthn credential", `DELETE FROM webauthn_credentials WHERE user_id = ? AND id = ?`, userID, id)
}

// DeleteUserWebAuthnCredentials implements store.WebAuthn.
func (q *queries) DeleteUserWebAuthnCredentials(ctx context.Context, userID string) (int, error) {
	res, err := q.exec(ctx, `DELETE FROM webauthn_credentials WHERE user_id = ?`, userID)
	if err != nil {
		return 0, q.fail("delete user webauthn credentials", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, q.fail("delete user webauthn credentials", err)
	}
	return int(n), nil
}
