package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/app"
	"github.com/gatehouse-auth/gatehouse/internal/audit"
	"github.com/gatehouse-auth/gatehouse/internal/config"
	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/testutil"
)

// auditFixture is a database holding a sealed chain of n events (types
// alternating login.failed and login.succeeded), the storage flags that
// name it, and a raw connection to tamper with it.
type auditFixture struct {
	flags   []string
	raw     *sql.DB
	dialect string
}

func newAuditFixture(t *testing.T, backend string, n int) *auditFixture {
	t.Helper()
	cfg := config.Default()
	f := &auditFixture{dialect: backend}
	driver, dsn := "sqlite", ""
	switch backend {
	case "sqlite":
		cfg.DataDir = t.TempDir()
		f.flags = []string{"--data-dir", cfg.DataDir}
		dsn = "file:" + filepath.Join(cfg.DataDir, "gatehouse.db")
	case "postgres":
		cfg.Database = testutil.PostgresURL(t)
		f.flags = []string{"--database", cfg.Database}
		driver, dsn = "pgx", cfg.Database
	}
	ctx := context.Background()
	db, err := app.OpenStore(ctx, &cfg, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := range n {
		typ := audit.LoginFailed
		if i%2 == 1 {
			typ = audit.LoginSucceeded
		}
		e := &store.Event{Type: typ, UserID: fmt.Sprintf("usr_%d", i), IP: "203.0.113.9", At: time.Now()}
		if err := db.Audit().AppendEvent(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := audit.NewSealer(db, nil).Seal(ctx); err != nil {
		t.Fatal(err)
	}
	f.raw, err = sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.raw.Close() })
	return f
}

func (f *auditFixture) tamper(t *testing.T, query string) {
	t.Helper()
	if _, err := f.raw.Exec(query); err != nil {
		t.Fatalf("tamper: %v", err)
	}
}

func (f *auditFixture) run(args ...string) (string, error) {
	var stdout bytes.Buffer
	err := run(context.Background(), append(args, f.flags...), nil, &stdout, io.Discard)
	return stdout.String(), err
}

var headLine = regexp.MustCompile(`head seq (\d+) hash ([0-9a-f]{64})`)

// TestAuditVerifyCommand: a clean chain verifies (exit 0) and prints its
// head; after an edit, a deletion or a truncation the command fails and
// names the break.
func TestAuditVerifyCommand(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			f := newAuditFixture(t, backend, 5)
			out, err := f.run("audit", "verify")
			if err != nil || !strings.Contains(out, "audit chain intact: 5 events, head seq 5") {
				t.Fatalf("clean chain: %v\n%s", err, out)
			}
			head := headLine.FindStringSubmatch(out)
			anchor := head[1] + ":" + head[2]
			if out, err := f.run("audit", "verify", "--anchor", anchor); err != nil || !strings.Contains(out, "all 1 anchors found") {
				t.Fatalf("with the head as anchor: %v\n%s", err, out)
			}

			f.tamper(t, "DELETE FROM audit_events WHERE seq = 5")
			out, err = f.run("audit", "verify")
			if err != nil {
				t.Fatalf("a truncated tail passes the links alone: %v\n%s", err, out)
			}
			out, err = f.run("audit", "verify", "--anchor", anchor)
			if err == nil || !strings.Contains(out, "TAMPERED: truncated at seq 5") {
				t.Fatalf("truncation with anchor: %v\n%s", err, out)
			}

			f.tamper(t, "UPDATE audit_events SET type = 'login.succeeded' WHERE seq = 3")
			out, err = f.run("audit", "verify")
			if err == nil || !strings.Contains(out, "TAMPERED: edited at seq 3") || !strings.Contains(out, "verified 2 events before the first break") {
				t.Fatalf("edited event: %v\n%s", err, out)
			}

			f.tamper(t, "DELETE FROM audit_events WHERE seq = 2")
			out, err = f.run("audit", "verify")
			if err == nil || !strings.Contains(out, "TAMPERED: missing at seq 2") {
				t.Fatalf("deleted event: %v\n%s", err, out)
			}
		})
	}
}

func TestAuditVerifyWarnsOfUnsealedEvents(t *testing.T) {
	f := newAuditFixture(t, "sqlite", 2)
	f.tamper(t, fmt.Sprintf("INSERT INTO audit_events (type, at) VALUES ('login.failed', %d)", time.Now().Add(-time.Hour).UnixMicro()))
	out, err := f.run("audit", "verify")
	if err != nil || !strings.Contains(out, "1 events not yet sealed") || !strings.Contains(out, "WARNING: unsealed events older than 1m0s") {
		t.Fatalf("%v\n%s", err, out)
	}
}

func TestAuditVerifyRefusesBadArguments(t *testing.T) {
	f := newAuditFixture(t, "sqlite", 1)
	for _, args := range [][]string{
		{"audit", "verify", "--anchor", "5"},
		{"audit", "verify", "--anchor", "0:" + strings.Repeat("00", 32)},
		{"audit", "verify", "extra"},
		{"audit", "export", "--since", "yesterday"},
		{"audit", "export", "--ip", "not-an-ip"},
		{"audit", "nonsense"},
		{"audit"},
	} {
		if _, err := f.run(args...); err == nil {
			t.Errorf("%q succeeded", args)
		}
	}
}

// TestAuditExportCommand writes the matching events as JSON lines.
func TestAuditExportCommand(t *testing.T) {
	f := newAuditFixture(t, "sqlite", 5)
	out, err := f.run("audit", "export", "--type", audit.LoginFailed)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []int64
	for line := range strings.Lines(out) {
		var e audit.EventJSON
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if e.Type != audit.LoginFailed || len(e.Hash) != 64 {
			t.Errorf("exported %+v", e)
		}
		seqs = append(seqs, e.Seq)
	}
	if fmt.Sprint(seqs) != "[1 3 5]" {
		t.Errorf("exported seqs %v, want [1 3 5]", seqs)
	}
	if out, err := f.run("audit", "export", "--user", "usr_1", "--since", time.Now().Add(-time.Hour).Format(time.RFC3339)); err != nil || strings.Count(out, "\n") != 1 {
		t.Errorf("--user: %v\n%s", err, out)
	}
	if out, err := f.run("audit", "export", "--until", time.Now().Add(-time.Hour).Format(time.RFC3339)); err != nil || out != "" {
		t.Errorf("--until an hour ago: %v\n%q", err, out)
	}
}
