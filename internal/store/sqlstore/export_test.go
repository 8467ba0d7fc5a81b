package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// Hooks for the tests of the schema itself, which need to reach past the
// store interfaces. They exist only in test binaries.

// ExecForTest runs statement query ('?' placeholders) on the writer; a
// time.Time argument is bound as the dialect stores times.
func (db *DB) ExecForTest(ctx context.Context, query string, args ...any) error {
	for i, a := range args {
		if t, ok := a.(time.Time); ok {
			args[i] = db.q.t(t)
		}
	}
	_, err := db.q.exec(ctx, query, args...)
	return err
}

// MigrateToForTest applies or rolls back migrations until the schema is at
// version.
func (db *DB) MigrateToForTest(ctx context.Context, version int64) error {
	current, err := db.migrations.GetDBVersion(ctx)
	if err != nil {
		return err
	}
	if version < current {
		_, err = db.migrations.DownTo(ctx, version)
	} else {
		_, err = db.migrations.UpTo(ctx, version)
	}
	return err
}

// userColumnsBeforeAdmin are the columns of users from migration 3 (phone)
// until migration 6 added admin.
const userColumnsBeforeAdmin = `id, email, email_key, name, password_hash, email_verified, phone, created_at, updated_at`

// CreateUserForTest inserts u as the schema at its current version (3 or
// later) holds users: the store's queries want the newest schema, and the
// tests of a migration need users before it. u may set only the fields
// that version has. A later migration that changes users adds a case.
func (db *DB) CreateUserForTest(ctx context.Context, u *store.User) error {
	v, err := db.migrations.GetDBVersion(ctx)
	switch {
	case err != nil:
		return err
	case v >= 6:
		return db.Users().CreateUser(ctx, u)
	case v < 3:
		return fmt.Errorf("CreateUserForTest: no hook for schema version %d", v)
	case u.Admin:
		return fmt.Errorf("CreateUserForTest: schema version %d has no admin column", v)
	}
	return db.ExecForTest(ctx, `INSERT INTO users (`+userColumnsBeforeAdmin+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		u.ID, u.Email, u.EmailKey, u.Name, u.PasswordHash, u.EmailVerified, u.Phone, u.CreatedAt, u.UpdatedAt)
}

// UserForTest reads user id as the schema at its current version (3 or
// later) holds it, like CreateUserForTest: the fields that version lacks
// are zero. No such user is store.ErrNotFound.
func (db *DB) UserForTest(ctx context.Context, id string) (*store.User, error) {
	v, err := db.migrations.GetDBVersion(ctx)
	switch {
	case err != nil:
		return nil, err
	case v >= 6:
		return db.Users().UserByID(ctx, id)
	case v < 3:
		return nil, fmt.Errorf("UserForTest: no hook for schema version %d", v)
	}
	var u store.User
	err = db.q.queryRow(ctx, `SELECT `+userColumnsBeforeAdmin+` FROM users WHERE id = ?`, id).Scan(
		&u.ID, &u.Email, &u.EmailKey, &u.Name, &u.PasswordHash, &u.EmailVerified, &u.Phone,
		timeCol{&u.CreatedAt}, timeCol{&u.UpdatedAt})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("UserForTest: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return &u, nil
}
