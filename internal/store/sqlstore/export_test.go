package sqlstore

import (
	"context"
	"time"
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
