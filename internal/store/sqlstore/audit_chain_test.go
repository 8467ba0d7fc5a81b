package sqlstore_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/store/sqlstore"
)

// TestMigrateAuditChainKeepsEvents: events written before migration 7
// come through it unsealed (the first sealer run links them); rolling it
// back drops only the links, and migrating again leaves every event
// unsealed once more.
func TestMigrateAuditChainKeepsEvents(t *testing.T) {
	for _, b := range backends {
		t.Run(b.dialect, func(t *testing.T) {
			ctx := t.Context()
			now := time.Now()
			db := mustOpen(t, b.newDSN(t), sqlstore.Options{})
			if err := db.MigrateToForTest(ctx, 6); err != nil {
				t.Fatalf("migrate to version 6: %v", err)
			}
			for _, typ := range []string{"login.succeeded", "password.changed"} {
				if err := db.ExecForTest(ctx, `INSERT INTO audit_events (type, user_id, at, details) VALUES (?, 'u1', ?, '{"k":"v"}')`, typ, now); err != nil {
					t.Fatalf("insert a version 6 event: %v", err)
				}
			}
			unsealed := func(when string, want int) []*store.Event {
				t.Helper()
				got, err := db.Audit().UnsealedEvents(ctx, 10)
				if err != nil {
					t.Fatalf("UnsealedEvents %s: %v", when, err)
				}
				if len(got) != want {
					t.Fatalf("%d unsealed events %s, want %d", len(got), when, want)
				}
				for _, e := range got {
					if e.Seq != 0 || e.Hash != nil || e.UserID != "u1" || e.Details["k"] != "v" || !e.At.Equal(now.UTC().Truncate(time.Microsecond)) {
						t.Errorf("event %s: %+v", when, e)
					}
				}
				return got
			}
			if err := db.MigrateToForTest(ctx, 7); err != nil {
				t.Fatalf("migrate to version 7: %v", err)
			}
			events := unsealed("after migration 7", 2)
			link := bytes.Repeat([]byte{7}, 32)
			if err := db.Audit().SealEvent(ctx, events[0].ID, 1, make([]byte, 32), link); err != nil {
				t.Fatalf("SealEvent: %v", err)
			}
			unsealed("after sealing one", 1)
			if err := db.MigrateToForTest(ctx, 6); err != nil {
				t.Fatalf("down to version 6: %v", err)
			}
			if err := db.MigrateToForTest(ctx, 7); err != nil {
				t.Fatalf("up again to version 7: %v", err)
			}
			unsealed("after rolling migration 7 back and forth", 2)
			if err := db.Migrate(ctx); err != nil {
				t.Fatalf("migrate to the newest: %v", err)
			}
			if err := db.Ping(ctx); err != nil {
				t.Fatalf("Ping: %v", err)
			}
		})
	}
}

// TestAuditChainSchemaRejectsBadLinks: the schema itself refuses a partial
// link, a malformed one and a seq given twice, whatever writes the rows.
func TestAuditChainSchemaRejectsBadLinks(t *testing.T) {
	for _, b := range backends {
		t.Run(b.dialect, func(t *testing.T) {
			ctx := t.Context()
			db := mustOpen(t, b.newDSN(t), sqlstore.Options{Migrate: true})
			var ids []int64
			for range 2 {
				e := &store.Event{Type: "e", At: time.Now()}
				if err := db.Audit().AppendEvent(ctx, e); err != nil {
					t.Fatal(err)
				}
				ids = append(ids, e.ID)
			}
			h := bytes.Repeat([]byte{1}, 32)
			for _, tc := range []struct {
				name string
				set  string
				args []any
			}{
				{"seq without hashes", "seq = 1", nil},
				{"hashes without seq", "prev_hash = ?, hash = ?", []any{h, h}},
				{"no prev_hash", "seq = 1, hash = ?", []any{h}},
				{"seq 0", "seq = 0, prev_hash = ?, hash = ?", []any{h, h}},
				{"short hash", "seq = 1, prev_hash = ?, hash = ?", []any{h, h[:31]}},
				{"long prev_hash", "seq = 1, prev_hash = ?, hash = ?", []any{append(h, 0), h}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					if err := db.ExecForTest(ctx, `UPDATE audit_events SET `+tc.set+` WHERE id = ?`, append(tc.args, ids[0])...); err == nil {
						t.Error("the schema accepted it")
					}
				})
			}
			if err := db.ExecForTest(ctx, `UPDATE audit_events SET seq = 1, prev_hash = ?, hash = ? WHERE id = ?`, h, h, ids[0]); err != nil {
				t.Fatalf("a whole link: %v", err)
			}
			if err := db.ExecForTest(ctx, `UPDATE audit_events SET seq = 1, prev_hash = ?, hash = ? WHERE id = ?`, h, h, ids[1]); err == nil {
				t.Error("the schema accepted a seq given twice")
			}
			if err := db.ExecForTest(ctx, `INSERT INTO audit_sinks (name, delivered_seq) VALUES ('webhook', -1)`); err == nil {
				t.Error("the schema accepted a negative sink cursor")
			}
		})
	}
}
