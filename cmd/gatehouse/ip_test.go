package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/audit"
	"github.com/gatehouse-auth/gatehouse/internal/ephemeral/ephemeraltest"
	"github.com/gatehouse-auth/gatehouse/internal/ipguard"
	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/store/sqlstore"
	"github.com/gatehouse-auth/gatehouse/internal/testutil"
)

// ipRun runs `gatehouse ip args… storage…` and returns its stdout.
func ipRun(t *testing.T, storage []string, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), append(append([]string{"ip"}, args...), storage...), nil, &stdout, &stderr)
	return stdout.String() + stderr.String(), err
}

func ipMust(t *testing.T, storage []string, args ...string) string {
	t.Helper()
	out, err := ipRun(t, storage, args...)
	if err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// TestIPCommand: operators list, allow, deny and delete rules from the
// command line, on either database; changes are audited as by=cli, and
// announced to the servers when --redis is given.
func TestIPCommand(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			storage := []string{"--data-dir", dir, "--log-level", "error"}
			dsn := dir + "/gatehouse.db"
			if backend == "postgres" {
				dsn = testutil.PostgresURL(t)
				storage = append(storage, "--database", dsn)
			}

			out := ipMust(t, storage, "deny", "198.51.100.9/24", "--for", "1h", "--reason", "abuse ticket 42")
			if !strings.Contains(out, "deny 198.51.100.0/24 until ") || !strings.Contains(out, "within 10s") {
				t.Errorf("deny printed %q", out)
			}
			ipMust(t, storage, "allow", "--reason", "office", "2001:db8:1::/48")
			for _, bad := range [][]string{
				{"deny", "0.0.0.0/0"}, {"allow", "10.0.0.0/7"}, {"deny", "2001::/16"}, {"deny", "nonsense"},
				{"deny"}, {"deny", "192.0.2.1", "192.0.2.2"}, {"deny", "192.0.2.1", "--for", "-1h"},
				{"deny", "192.0.2.1", "--reason", strings.Repeat("x", 201)}, {"frobnicate"}, {"list", "extra"},
				{"delete", "192.0.2.99"},
			} {
				if out, err := ipRun(t, storage, bad...); err == nil {
					t.Errorf("ip %q accepted: %s", bad, out)
				}
			}

			out = ipMust(t, storage, "list")
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 3 || !strings.HasPrefix(lines[0], "PREFIX") {
				t.Fatalf("list:\n%s", out)
			}
			if f := strings.Fields(lines[1]); f[0] != "198.51.100.0/24" || f[1] != "deny" || f[2] == "never" || f[4] != "cli" || !strings.Contains(lines[1], "abuse ticket 42") {
				t.Errorf("deny row %q", lines[1])
			}
			if f := strings.Fields(lines[2]); f[0] != "2001:db8:1::/48" || f[1] != "allow" || f[2] != "never" {
				t.Errorf("allow row %q", lines[2])
			}

			if out := ipMust(t, storage, "delete", "198.51.100.0/24"); !strings.Contains(out, "deleted the rule of 198.51.100.0/24") {
				t.Errorf("delete printed %q", out)
			}
			if out, err := ipRun(t, storage, "delete", "198.51.100.0/24"); err == nil || !strings.Contains(err.Error(), "no rule") {
				t.Errorf("second delete: %v %s", err, out)
			}

			db, err := sqlstore.Open(context.Background(), dsn, sqlstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			rules, err := db.IPRules().ListIPRules(context.Background(), time.Now())
			if err != nil || len(rules) != 1 || rules[0].Prefix.String() != "2001:db8:1::/48" {
				t.Fatalf("rules %v %v", rules, err)
			}
			evs, err := db.Audit().QueryEvents(context.Background(), store.EventFilter{Type: audit.IPRuleChanged, Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range evs {
				if e.UserID != "" || e.Details["by"] != "cli" {
					t.Errorf("event %+v", e)
				}
				got = append(got, e.Details["op"]+" "+e.Details["action"]+" "+e.Details["prefix"])
			}
			if want := "[put deny 198.51.100.0/24 put allow 2001:db8:1::/48 delete deny 198.51.100.0/24]"; fmt.Sprint(got) != want {
				t.Errorf("audited %q, want %s", got, want)
			}
		})
	}
}

// TestIPCommandAnnouncesOverRedis: with --redis, servers subscribed to
// the rules channel hear of a change at once.
func TestIPCommandAnnouncesOverRedis(t *testing.T) {
	url := ephemeraltest.RedisURL(t)
	prefix := ephemeraltest.RandomPrefix(t)
	sub := ephemeraltest.OpenRedis(t, url, prefix)
	heard := make(chan struct{}, 4)
	if err := sub.Subscribe(t.Context(), ipguard.Channel, func([]byte) { heard <- struct{}{} }, nil); err != nil {
		t.Fatal(err)
	}
	storage := []string{"--data-dir", t.TempDir(), "--log-level", "error", "--redis", url, "--redis-prefix", prefix}
	for _, args := range [][]string{{"deny", "192.0.2.0/24"}, {"delete", "192.0.2.0/24"}} {
		if out := ipMust(t, storage, args...); !strings.Contains(out, "told at once") {
			t.Errorf("ip %q printed %q", args, out)
		}
		select {
		case <-heard:
		case <-time.After(5 * time.Second):
			t.Fatalf("ip %q: no announcement on %s", args, ipguard.Channel)
		}
	}
}
