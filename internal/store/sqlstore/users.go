package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

const userColumns = `id, email, email_key, name, password_hash, email_verified, created_at, updated_at`

func scanUser(s scanner) (*store.User, error) {
	var u store.User
	err := s.Scan(&u.ID, &u.Email, &u.EmailKey, &u.Name, &u.PasswordHash, &u.EmailVerified,
		timeCol{&u.CreatedAt}, timeCol{&u.UpdatedAt})
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// CreateUser implements store.Users. The unique indexes on id and email_key
// decide between concurrent sign-ups: exactly one insert succeeds.
func (q *queries) CreateUser(ctx context.Context, u *store.User) error {
	_, err := q.exec(ctx, `INSERT INTO users (`+userColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		u.ID, u.Email, u.EmailKey, u.Name, u.PasswordHash, u.EmailVerified, q.t(u.CreatedAt), q.t(u.UpdatedAt))
	if q.d.isUniqueViolation(err) {
		return fmt.Errorf("sqlstore: create user: id or e-mail already registered: %w", store.ErrConflict)
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
