package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

const userColumns = `id, email, email_key, name, password_hash, email_verified, phone, admin, created_at, updated_at`

func scanUser(s scanner) (*store.User, error) {
	var u store.User
	err := s.Scan(&u.ID, &u.Email, &u.EmailKey, &u.Name, &u.PasswordHash, &u.EmailVerified, &u.Phone, &u.Admin,
		timeCol{&u.CreatedAt}, timeCol{&u.UpdatedAt})
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// CreateUser implements store.Users. The unique indexes on id and email_key
// decide between concurrent sign-ups: exactly one insert succeeds. A phone
// number another user has is store.ErrConflict too.
func (q *queries) CreateUser(ctx context.Context, u *store.User) error {
	_, err := q.exec(ctx, `INSERT INTO users (`+userColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		u.ID, u.Email, u.EmailKey, u.Name, u.PasswordHash, u.EmailVerified, u.Phone, u.Admin,
		q.t(u.CreatedAt), q.t(u.UpdatedAt))
	if q.d.isUniqueViolation(err) {
		return fmt.Errorf("sqlstore: create user: id, e-mail or phone already registered: %w", store.ErrConflict)
	}
	if err != nil {
		return q.fail("create user", err)
	}
	return nil
}

// UserByID implements store.Users.
func (q *queries) UserByID(ctx context.Context, id string) (*store.User, error) {
	u, err := scanUser(q.queryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlstore: user by id: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, q.fail("user by id", err)
	}
	return u, nil
}

// UserByEmailKey implements store.Users.
func (q *queries) UserByEmailKey(ctx context.Context, emailKey string) (*store.User, error) {
	u, err := scanUser(q.queryRow(ctx, `SELECT `+userColumns+` FROM users WHERE email_key = ?`, emailKey))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlstore: user by e-mail key: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, q.fail("user by e-mail key", err)
	}
	return u, nil
}

// SetPasswordHash implements store.Users as one guarded UPDATE: under
// concurrency the row lock (PostgreSQL) or the single writer (SQLite) lets
// exactly one of several writers holding the same oldHash succeed.
func (q *queries) SetPasswordHash(ctx context.Context, userID, oldHash, newHash string, at time.Time) error {
	changed, err := q.guardedUpdate(ctx, "set password hash", "users", userID,
		`UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ? AND password_hash = ?`,
		newHash, q.t(at), userID, oldHash)
	if err == nil && !changed {
		return fmt.Errorf("sqlstore: set password hash: stored hash changed concurrently: %w", store.ErrConflict)
	}
	return err
}

// MarkEmailVerified implements store.Users as one guarded UPDATE on the
// e-mail key. Marking a verified address again changes nothing, not even
// UpdatedAt.
func (q *queries) MarkEmailVerified(ctx context.Context, userID, emailKey string, at time.Time) error {
	changed, err := q.guardedUpdate(ctx, "mark e-mail verified", "users", userID,
		`UPDATE users SET email_verified = ?, updated_at = CASE WHEN email_verified THEN updated_at ELSE ? END
		WHERE id = ? AND email_key = ?`,
		true, q.t(at), userID, emailKey)
	if err == nil && !changed {
		return fmt.Errorf("sqlstore: mark e-mail verified: e-mail changed: %w", store.ErrConflict)
	}
	return err
}

// ChangeEmail implements store.Users as one guarded UPDATE on the current
// e-mail key; the unique index on email_key refuses a new key another user
// holds.
func (q *queries) ChangeEmail(ctx context.Context, userID, oldEmailKey, newEmail, newEmailKey string, at time.Time) error {
	changed, err := q.guardedUpdate(ctx, "change e-mail", "users", userID,
		`UPDATE users SET email = ?, email_key = ?, email_verified = ?, updated_at = ?
		WHERE id = ? AND email_key = ?`,
		newEmail, newEmailKey, true, q.t(at), userID, oldEmailKey)
	switch {
	case q.d.isUniqueViolation(err):
		return fmt.Errorf("sqlstore: change e-mail: new e-mail already registered: %w", store.ErrConflict)
	case err == nil && !changed:
		return fmt.Errorf("sqlstore: change e-mail: e-mail changed concurrently: %w", store.ErrConflict)
	}
	return err
}

// SetPhone implements store.Users; the unique index on phone refuses a
// number another user holds. Setting the number the user already has
// changes nothing, not even UpdatedAt.
func (q *queries) SetPhone(ctx context.Context, userID, phone string, at time.Time) error {
	res, err := q.exec(ctx, `UPDATE users SET phone = ?, updated_at = CASE WHEN phone = ? THEN updated_at ELSE ? END
		WHERE id = ?`, phone, phone, q.t(at), userID)
	if q.d.isUniqueViolation(err) {
		return fmt.Errorf("sqlstore: set phone: phone already registered: %w", store.ErrConflict)
	}
	if err != nil {
		return q.fail("set phone", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return q.fail("set phone", err)
	} else if n == 0 {
		return fmt.Errorf("sqlstore: set phone: %w", store.ErrNotFound)
	}
	return nil
}

// SetAdmin implements store.Users. Setting the value the user already has
// changes nothing, not even UpdatedAt.
func (q *queries) SetAdmin(ctx context.Context, userID string, admin bool, at time.Time) error {
	return q.execOne(ctx, "set admin", `UPDATE users SET admin = ?, updated_at = CASE WHEN admin = ? THEN updated_at ELSE ? END
		WHERE id = ?`, admin, admin, q.t(at), userID)
}

// UserByPhone implements store.Users. "" is no number, so it finds no
// one, not the users without a phone.
func (q *queries) UserByPhone(ctx context.Context, phone string) (*store.User, error) {
	if phone == "" {
		return nil, fmt.Errorf("sqlstore: user by phone: empty number: %w", store.ErrNotFound)
	}
	u, err := scanUser(q.queryRow(ctx, `SELECT `+userColumns+` FROM users WHERE phone = ?`, phone))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlstore: user by phone: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, q.fail("user by phone", err)
	}
	return u, nil
}
