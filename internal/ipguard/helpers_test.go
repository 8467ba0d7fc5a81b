package ipguard_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-auth/gatehouse/internal/ephemeral"
	"github.com/gatehouse-auth/gatehouse/internal/ephemeral/ephemeraltest"
	"github.com/gatehouse-auth/gatehouse/internal/ipguard"
	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/store/sqlstore"
	"github.com/gatehouse-auth/gatehouse/internal/testutil"
)

// backends: SQLite with in-process ephemeral state, and PostgreSQL with
// Redis (skipped when their test URLs are unset).
var backends = []string{"sqlite", "postgres+redis"}

func forEachBackend(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			t.Parallel()
			fn(t, newEnv(t, b))
		})
	}
}

// env is one deployment: a store (whose rule writes are counted), an
// ephemeral store shared by its replicas, a stopped clock.
type env struct {
	t     *testing.T
	raw   store.Store // not counted: the operator's direct writes
	db    *countingStore
	eph   ephemeral.Store
	clock *ephemeraltest.Clock
	logs  *testutil.SyncBuffer
	bans  *prometheus.CounterVec
}

func newEnv(t *testing.T, backend string) *env {
	t.Helper()
	e := &env{t: t, clock: ephemeraltest.NewClock(time.Now().UTC().Truncate(time.Second)), logs: &testutil.SyncBuffer{}}
	dsn := filepath.Join(t.TempDir(), "gatehouse.db")
	if backend == "postgres+redis" {
		dsn = testutil.PostgresURL(t)
		e.eph = ephemeraltest.NewRedis(t)
	} else {
		m := ephemeral.NewMemory(e.clock.Now)
		t.Cleanup(func() { m.Close() })
		e.eph = m
	}
	db, err := sqlstore.Open(context.Background(), dsn, sqlstore.Options{Migrate: true})
	if err != nil {
		t.Fatalf("open %s: %v", backend, err)
	}
	t.Cleanup(func() { db.Close() })
	e.raw = db
	e.db = &countingStore{Store: db, puts: &atomic.Int64{}}
	e.bans = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "decisions"}, []string{"kind", "outcome"})
	return e
}

// guard starts a replica's Guard until the test ends.
func (e *env) guard(cfg ipguard.Config) *ipguard.Guard {
	e.t.Helper()
	g := ipguard.New(cfg, ipguard.Deps{
		DB: e.db, Eph: e.eph, Now: e.clock.Now, Decisions: e.bans,
		Log: slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err := g.Start(e.t.Context()); err != nil {
		e.t.Fatalf("Start: %v", err)
	}
	return g
}

// rules returns the live rules in the store.
func (e *env) rules() []*store.IPRule {
	e.t.Helper()
	rs, err := e.raw.IPRules().ListIPRules(context.Background(), e.clock.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return rs
}

// put writes a rule directly to the store, as another replica would.
func (e *env) put(prefix, action string, expires time.Time) {
	e.t.Helper()
	r := &store.IPRule{Prefix: netip.MustParsePrefix(prefix), Action: action, Reason: "test", CreatedBy: "cli", CreatedAt: e.clock.Now(), ExpiresAt: expires}
	if err := e.raw.IPRules().PutIPRule(context.Background(), r); err != nil {
		e.t.Fatal(err)
	}
}

// events returns the audit events of type typ.
func (e *env) events(typ string) []*store.Event {
	e.t.Helper()
	evs, err := e.raw.Audit().QueryEvents(context.Background(), store.EventFilter{Type: typ, Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

// fail makes n failed sign-ins from ip, on accounts named by account(i).
func fail(g *ipguard.Guard, ip string, n int, account func(i int) string) {
	a := netip.MustParseAddr(ip)
	for i := range n {
		g.LoginFailed(context.Background(), a, account(i))
	}
}

func distinct(i int) string { return fmt.Sprintf("user%d@example.com", i) }

// waitFor polls cond for up to d.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// countingStore counts rule writes, inside transactions or not.
type countingStore struct {
	store.Store
	puts *atomic.Int64
}

func (s *countingStore) IPRules() store.IPRules { return countingRules{s.Store.IPRules(), s.puts} }

func (s *countingStore) InTx(ctx context.Context, fn func(tx store.Tx) error) error {
	return s.Store.InTx(ctx, func(tx store.Tx) error { return fn(countingTx{tx, s.puts}) })
}

type countingTx struct {
	store.Tx
	puts *atomic.Int64
}

func (t countingTx) IPRules() store.IPRules { return countingRules{t.Tx.IPRules(), t.puts} }

type countingRules struct {
	store.IPRules
	puts *atomic.Int64
}

func (r countingRules) PutIPRule(ctx context.Context, rule *store.IPRule) error {
	r.puts.Add(1)
	return r.IPRules.PutIPRule(ctx, rule)
}
