package audit_test

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/audit"
	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/store/sqlstore"
	"github.com/gatehouse-auth/gatehouse/internal/testutil"
)

// backends are the databases every chain test runs on; PostgreSQL skips
// without GATEHOUSE_TEST_POSTGRES_URL.
var backends = []string{"sqlite", "postgres"}

func forEachBackend(t *testing.T, fn func(t *testing.T, c *chainDB)) {
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			t.Parallel()
			fn(t, newChainDB(t, b))
		})
	}
}

// chainDB is a migrated store plus a raw connection to the same database,
// through which the tests play an attacker with write access to it.
type chainDB struct {
	t       *testing.T
	dialect string
	dsn     string
	db      *sqlstore.DB
	raw     *sql.DB
	logs    *testutil.SyncBuffer
	sealer  *audit.Sealer
}

func newChainDB(t *testing.T, backend string) *chainDB {
	t.Helper()
	c := &chainDB{t: t, dialect: backend, logs: &testutil.SyncBuffer{}}
	driver, rawDSN := "sqlite", ""
	switch backend {
	case "sqlite":
		c.dsn = filepath.Join(t.TempDir(), "gatehouse.db")
		rawDSN = "file:" + c.dsn + "?_pragma=busy_timeout(10000)"
	case "postgres":
		c.dsn = testutil.PostgresURL(t)
		driver, rawDSN = "pgx", c.dsn
	}
	c.db = c.open()
	raw, err := sql.Open(driver, rawDSN)
	if err != nil {
		t.Fatalf("open raw %s: %v", backend, err)
	}
	t.Cleanup(func() { raw.Close() })
	c.raw = raw
	c.sealer = audit.NewSealer(c.db, slog.New(slog.NewJSONHandler(c.logs, nil)))
	return c
}

// open opens another handle on the database (another replica).
func (c *chainDB) open() *sqlstore.DB {
	c.t.Helper()
	db, err := sqlstore.Open(context.Background(), c.dsn, sqlstore.Options{Migrate: true})
	if err != nil {
		c.t.Fatalf("open %s: %v", c.dialect, err)
	}
	c.t.Cleanup(func() { db.Close() })
	return db
}

// exec runs an attacker's statement ('?' placeholders) on the raw
// connection and returns the rows it touched.
func (c *chainDB) exec(query string, args ...any) int64 {
	c.t.Helper()
	if c.dialect == "postgres" {
		var b strings.Builder
		n := 0
		for _, r := range query {
			if r == '?' {
				n++
				b.WriteString("$" + strconv.Itoa(n))
				continue
			}
			b.WriteRune(r)
		}
		query = b.String()
	}
	res, err := c.raw.Exec(query, args...)
	if err != nil {
		c.t.Fatalf("tamper %q: %v", query, err)
	}
	n, _ := res.RowsAffected()
	return n
}

// append writes n events like the server does.
func (c *chainDB) append(n int) []*store.Event {
	c.t.Helper()
	var out []*store.Event
	for i := range n {
		e := &store.Event{
			Type: audit.LoginFailed, UserID: fmt.Sprintf("usr_%d", i%3), SessionID: "ses_1",
			IP: "203.0.113.9", UserAgent: "Mozilla/5.0", At: time.Now().Add(time.Duration(i) * time.Millisecond),
			Details: map[string]string{"reason": "password", "n": strconv.Itoa(i)},
		}
		if err := c.db.Audit().AppendEvent(c.t.Context(), e); err != nil {
			c.t.Fatalf("AppendEvent: %v", err)
		}
		out = append(out, e)
	}
	return out
}

// seal runs the sealer once and returns how many events it linked.
func (c *chainDB) seal() int {
	c.t.Helper()
	n, err := c.sealer.Seal(c.t.Context())
	if err != nil {
		c.t.Fatalf("Seal: %v", err)
	}
	return n
}

func (c *chainDB) verify(anchors ...audit.Anchor) *audit.Report {
	c.t.Helper()
	r, err := audit.Verify(c.t.Context(), c.db.Audit(), anchors, time.Now())
	if err != nil {
		c.t.Fatalf("Verify: %v", err)
	}
	return r
}

// loggedAnchors are the heads the sealer logged ("audit chain sealed"),
// as an operator would collect them.
func (c *chainDB) loggedAnchors() []audit.Anchor {
	c.t.Helper()
	var out []audit.Anchor
	for line := range strings.Lines(c.logs.String()) {
		var rec struct {
			Msg   string `json:"msg"`
			Level string `json:"level"`
			Seq   int64  `json:"seq"`
			Hash  string `json:"hash"`
		}
		if json.Unmarshal([]byte(line), &rec) != nil || rec.Msg != "audit chain sealed" {
			continue
		}
		if rec.Level != "INFO" {
			c.t.Errorf("chain head logged at %s, want INFO", rec.Level)
		}
		a, err := audit.ParseAnchor(fmt.Sprintf("%d:%s", rec.Seq, rec.Hash))
		if err != nil {
			c.t.Fatalf("logged head: %v", err)
		}
		out = append(out, a)
	}
	return out
}

// mustIntact fails unless r found nothing.
func mustIntact(t *testing.T, r *audit.Report, events int64) {
	t.Helper()
	if !r.Intact() {
		t.Fatalf("clean chain reported tampered: %v", r.Findings)
	}
	if r.Checked != events || r.Head.Seq != events {
		t.Fatalf("verified %d events up to seq %d, want %d", r.Checked, r.Head.Seq, events)
	}
}

// mustFind fails unless the first finding of r is kind at seq.
func mustFind(t *testing.T, r *audit.Report, kind string, seq int64) audit.Finding {
	t.Helper()
	if r.Intact() {
		t.Fatalf("tampering not detected (verified %d events, head seq %d)", r.Checked, r.Head.Seq)
	}
	f := r.Findings[0]
	if f.Kind != kind || f.Seq != seq {
		t.Fatalf("first finding %v, want %s at seq %d (all: %v)", f, kind, seq, r.Findings)
	}
	return f
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}
