package ipguard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gatehouse-auth/gatehouse/internal/audit"
	"github.com/gatehouse-auth/gatehouse/internal/httpx"
	"github.com/gatehouse-auth/gatehouse/internal/ipguard"
	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/throttle"
)

// TestIPRuleLongestPrefixMatch: the most specific live rule decides; allow
// wins a tie; mapped and zoned addresses match as their plain form;
// expired rules are ignored even before the next reload.
func TestIPRuleLongestPrefixMatch(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		soon := e.clock.Now().Add(time.Minute)
		for _, r := range []struct{ prefix, action string }{
			{"198.51.100.0/24", store.IPDeny},
			{"198.51.100.16/28", store.IPAllow}, // allow inside deny
			{"203.0.113.0/24", store.IPAllow},
			{"203.0.113.7/32", store.IPDeny}, // deny inside allow
			{"2001:db8:1::/48", store.IPDeny},
			{"2001:db8:1:2::/64", store.IPAllow},
			{"::ffff:192.0.2.0/120", store.IPDeny}, // a mapped rule is an IPv4 rule
			{"100.64.1.0/24", store.IPAllow},
			{"::ffff:100.64.1.0/120", store.IPDeny}, // the same block: allow wins
			{"fe80::/64", store.IPDeny},
			{"10.0.0.0/8", store.IPAllow},
		} {
			e.put(r.prefix, r.action, time.Time{})
		}
		e.put("10.1.0.0/16", store.IPDeny, soon) // expires inside a live allow
		e.put("172.16.0.0/12", store.IPDeny, soon)
		g := e.guard(ipguard.Config{})
		cases := []struct {
			ip, want, wantExpired string
		}{
			{"198.51.100.1", "deny", "deny"},
			{"198.51.100.17", "allow", "allow"},
			{"198.51.100.32", "deny", "deny"},
			{"198.51.101.1", "", ""},
			{"203.0.113.7", "deny", "deny"},
			{"203.0.113.8", "allow", "allow"},
			{"2001:db8:1::5", "deny", "deny"},
			{"2001:db8:1:2::5", "allow", "allow"},
			{"2001:db8:1:3::5", "deny", "deny"},
			{"2001:db8:2::1", "", ""},
			{"192.0.2.5", "deny", "deny"},
			{"::ffff:192.0.2.5", "deny", "deny"},
			{"::ffff:198.51.100.17", "allow", "allow"},
			{"100.64.1.9", "allow", "allow"},
			{"fe80::1%eth0", "deny", "deny"},
			{"10.1.2.3", "deny", "allow"},
			{"10.2.0.1", "allow", "allow"},
			{"172.16.5.5", "deny", ""},
			{"8.8.8.8", "", ""},
		}
		for _, c := range cases {
			if got := g.Decide(netip.MustParseAddr(c.ip)); got != c.want {
				t.Errorf("Decide(%s) = %q, want %q", c.ip, got, c.want)
			}
		}
		if got := g.Decide(netip.Addr{}); got != "" {
			t.Errorf("Decide(invalid) = %q", got)
		}
		e.clock.Advance(2 * time.Minute) // no reload: expiry is checked per decision
		for _, c := range cases {
			if got := g.Decide(netip.MustParseAddr(c.ip)); got != c.wantExpired {
				t.Errorf("after expiry: Decide(%s) = %q, want %q", c.ip, got, c.wantExpired)
			}
		}
	})
}

// TestAttackStuffingOneIPManyAccountsBanned: 20 distinct accounts failing
// from one address ban it (an IPv6 /64 is one address); 19 do not.
func TestAttackStuffingOneIPManyAccountsBanned(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		g := e.guard(ipguard.Config{})
		// 19 accounts, each failed many times: under the threshold.
		for range 5 {
			fail(g, "192.0.2.10", 19, distinct)
		}
		if got := g.Decide(netip.MustParseAddr("192.0.2.10")); got != "" || len(e.rules()) != 0 {
			t.Fatalf("banned under the threshold: %q %v", got, e.rules())
		}
		fail(g, "192.0.2.10", 20, distinct)
		if got := g.Decide(netip.MustParseAddr("192.0.2.10")); got != store.IPDeny {
			t.Fatalf("not banned after 20 accounts: %q", got)
		}
		if got := g.Decide(netip.MustParseAddr("192.0.2.11")); got != "" {
			t.Errorf("the neighbour is banned too: %q", got)
		}
		rules := e.rules()
		if len(rules) != 1 {
			t.Fatalf("rules %v, want one", rules)
		}
		r := rules[0]
		if r.Prefix.String() != "192.0.2.10/32" || r.Action != store.IPDeny || r.CreatedBy != "stuffing-detector" ||
			r.Reason != "20 accounts failed in 10m0s" || !r.ExpiresAt.Equal(e.clock.Now().Add(time.Hour)) {
			t.Errorf("ban %+v", r)
		}
		evs := e.events(audit.IPBanned)
		if len(evs) != 1 || evs[0].Details["prefix"] != "192.0.2.10/32" || evs[0].Details["accounts"] != "20" || evs[0].IP != "192.0.2.10" {
			t.Errorf("audit %+v", evs)
		}
		if n := promtest.ToFloat64(e.bans.WithLabelValues("ip_ban", "banned")); n != 1 {
			t.Errorf("ip_ban metric %v, want 1", n)
		}
		if !strings.Contains(e.logs.String(), `"level":"WARN","msg":"ipguard: credential stuffing`) {
			t.Errorf("no warning logged:\n%s", e.logs)
		}
		// The ban ends.
		e.clock.Advance(time.Hour + time.Second)
		if got := g.Decide(netip.MustParseAddr("192.0.2.10")); got != "" {
			t.Errorf("still banned after the ban duration: %q", got)
		}

		// IPv6: 20 accounts from 20 addresses of one /64 are one address.
		for i := range 20 {
			fail(g, fmt.Sprintf("2001:db8:5:6::%x", i+1), 1, func(int) string { return distinct(100 + i) })
		}
		if got := g.Decide(netip.MustParseAddr("2001:db8:5:6::ffff")); got != store.IPDeny {
			t.Fatalf("the /64 is not banned: %q", got)
		}
		if got := g.Decide(netip.MustParseAddr("2001:db8:5:7::1")); got != "" {
			t.Errorf("another /64 is banned: %q", got)
		}
	})
}

// TestAttackStuffingSpreadAcrossSlash24Banned: one account per address,
// 60 addresses of one /24 (or 60 /64s of one IPv6 /56): the block is
// banned, though no address reached its own threshold.
func TestAttackStuffingSpreadAcrossSlash24Banned(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		g := e.guard(ipguard.Config{})
		for i := range 59 {
			fail(g, fmt.Sprintf("198.51.100.%d", i+1), 3, func(int) string { return distinct(i) })
		}
		if len(e.rules()) != 0 {
			t.Fatalf("banned under the block threshold: %v", e.rules())
		}
		fail(g, "198.51.100.200", 1, func(int) string { return distinct(59) })
		if got := g.Decide(netip.MustParseAddr("198.51.100.250")); got != store.IPDeny {
			t.Fatalf("the /24 is not banned: %q", got)
		}
		if rules := e.rules(); len(rules) != 1 || rules[0].Prefix.String() != "198.51.100.0/24" {
			t.Fatalf("rules %v, want the /24 alone", rules)
		}
		if got := g.Decide(netip.MustParseAddr("198.51.101.1")); got != "" {
			t.Errorf("the next /24 is banned: %q", got)
		}

		for i := range 60 {
			fail(g, fmt.Sprintf("2001:db8:77:%x::1", i), 1, func(int) string { return distinct(1000 + i) })
		}
		if got := g.Decide(netip.MustParseAddr("2001:db8:77:ff::9")); got != store.IPDeny {
			t.Fatalf("the /56 is not banned: %q", got)
		}
		// The next customer's /56 in the same /48 is not framed.
		if got := g.Decide(netip.MustParseAddr("2001:db8:77:100::9")); got != "" {
			t.Errorf("the neighbouring /56 is banned: %q", got)
		}
	})
}

// TestOneAccountManyFailuresNoBan: failures against one account, however
// many, ban nothing (the account's own protection handles them).
func TestOneAccountManyFailuresNoBan(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		g := e.guard(ipguard.Config{})
		fail(g, "192.0.2.20", 500, func(int) string { return "victim@example.com" })
		for i := range 100 {
			fail(g, fmt.Sprintf("192.0.2.%d", 30+i), 5, func(int) string { return "victim@example.com" })
		}
		if got := g.Decide(netip.MustParseAddr("192.0.2.20")); got != "" || len(e.rules()) != 0 || e.db.puts.Load() != 0 {
			t.Fatalf("one account's failures banned: %q %v", got, e.rules())
		}
	})
}

// TestAllowListedAddressNeverBanned: an allow-listed block is never banned
// nor counted; a /24 ban around it leaves it allowed.
func TestAllowListedAddressNeverBanned(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		e.put("192.0.2.0/28", store.IPAllow, time.Time{})
		g := e.guard(ipguard.Config{})
		fail(g, "192.0.2.5", 200, distinct)
		if got := g.Decide(netip.MustParseAddr("192.0.2.5")); got != store.IPAllow {
			t.Fatalf("the allow-listed address: %q", got)
		}
		if n := len(e.rules()); n != 1 {
			t.Fatalf("rules %v: a ban was written", e.rules())
		}
		// The rest of the /24 stuffs: the /24 is banned, the office is not.
		for i := range 60 {
			fail(g, fmt.Sprintf("192.0.2.%d", 100+i), 1, func(int) string { return distinct(500 + i) })
		}
		if got := g.Decide(netip.MustParseAddr("192.0.2.150")); got != store.IPDeny {
			t.Fatalf("the /24 is not banned: %q", got)
		}
		if got := g.Decide(netip.MustParseAddr("192.0.2.5")); got != store.IPAllow {
			t.Fatalf("the allow-listed address is banned with its /24: %q", got)
		}
		// An allow rule for the whole block: no ban of the block at all.
		e.put("198.51.100.0/24", store.IPAllow, time.Time{})
		if err := g.Reload(t.Context()); err != nil {
			t.Fatal(err)
		}
		before := e.db.puts.Load()
		for i := range 100 {
			fail(g, fmt.Sprintf("198.51.100.%d", i+1), 1, func(int) string { return distinct(2000 + i) })
		}
		if e.db.puts.Load() != before {
			t.Fatalf("a ban was written inside an allow-listed block: %v", e.rules())
		}
	})
}

// TestOperatorDenyNotReplacedByBan: a permanent deny written by another
// replica, not yet loaded here, is found in the ban's transaction and left
// as it is.
func TestOperatorDenyNotReplacedByBan(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		g := e.guard(ipguard.Config{Refresh: time.Hour})
		e.put("198.51.100.0/24", store.IPDeny, time.Time{}) // not announced
		fail(g, "198.51.100.7", 25, distinct)
		if n := e.db.puts.Load(); n != 0 {
			t.Fatalf("%d rule writes: the ban replaced or doubled the operator's rule", n)
		}
		if rules := e.rules(); len(rules) != 1 || !rules[0].ExpiresAt.IsZero() || rules[0].CreatedBy != "cli" {
			t.Fatalf("rules %+v", rules)
		}
	})
}

// TestStuffingConcurrentFailuresOneBan: 100 concurrent failures on distinct
// accounts from one address, through two replicas, write exactly one rule
// and one audit event.
func TestStuffingConcurrentFailuresOneBan(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		cfg := ipguard.Config{StuffingAccountsPerBlock: 1000}
		replicas := []*ipguard.Guard{e.guard(cfg), e.guard(cfg)}
		ip := netip.MustParseAddr("203.0.113.99")
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range 100 {
			wg.Go(func() {
				<-start
				replicas[i%2].LoginFailed(context.Background(), ip, distinct(i))
			})
		}
		close(start)
		wg.Wait()
		if n := e.db.puts.Load(); n != 1 {
			t.Fatalf("%d rule writes, want exactly 1", n)
		}
		if evs := e.events(audit.IPBanned); len(evs) != 1 {
			t.Fatalf("%d ip.banned events, want 1", len(evs))
		}
		if n := promtest.ToFloat64(e.bans.WithLabelValues("ip_ban", "banned")); n != 1 {
			t.Errorf("ip_ban metric %v, want 1", n)
		}
	})
}

// TestIPRulesReloadOnAnnouncement: a ban by one replica is enforced by
// another within a second, long before its refresh interval.
func TestIPRulesReloadOnAnnouncement(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		cfg := ipguard.Config{Refresh: time.Hour}
		a, b := e.guard(cfg), e.guard(cfg)
		fail(a, "192.0.2.66", 20, distinct)
		if got := a.Decide(netip.MustParseAddr("192.0.2.66")); got != store.IPDeny {
			t.Fatalf("the banning replica does not enforce its ban: %q", got)
		}
		if !waitFor(time.Second, func() bool { return b.Decide(netip.MustParseAddr("192.0.2.66")) == store.IPDeny }) {
			t.Fatal("the other replica did not enforce the ban within 1s")
		}
		// An operator's change announced by the CLI: the same.
		r := &store.IPRule{Prefix: netip.MustParsePrefix("198.51.100.0/24"), Action: store.IPDeny, CreatedAt: e.clock.Now()}
		if err := ipguard.Put(t.Context(), e.db, r, &store.Event{At: e.clock.Now()}); err != nil {
			t.Fatal(err)
		}
		if err := ipguard.Announce(t.Context(), e.eph); err != nil {
			t.Fatal(err)
		}
		for _, g := range []*ipguard.Guard{a, b} {
			if !waitFor(time.Second, func() bool { return g.Decide(netip.MustParseAddr("198.51.100.1")) == store.IPDeny }) {
				t.Fatal("a replica did not enforce the announced rule within 1s")
			}
		}
	})
}

// TestStuffingDetectionSurvivesEphemeralFailure: with the ephemeral store
// down, failures are logged and nothing is banned or blocked.
func TestStuffingDetectionSurvivesEphemeralFailure(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		g := e.guard(ipguard.Config{})
		e.eph.Close()
		fail(g, "192.0.2.10", 50, distinct)
		if e.db.puts.Load() != 0 {
			t.Fatal("a ban was written without the ephemeral store")
		}
		if !strings.Contains(e.logs.String(), "stuffing detection skipped") {
			t.Errorf("the failure was not logged:\n%s", e.logs)
		}
	})
}

// TestGuardStartFailsWithoutStore: a guard that cannot load the rules does
// not start (a replica must not serve without its deny list).
func TestGuardStartFailsWithoutStore(t *testing.T) {
	e := newEnv(t, "sqlite")
	e.raw.Close()
	g := ipguard.New(ipguard.Config{}, ipguard.Deps{DB: e.db, Eph: e.eph})
	if err := g.Start(t.Context()); err == nil {
		t.Fatal("Start succeeded with the store closed")
	}
}

// TestIPGuardMiddleware: a denied client gets 403 ip_blocked without the
// rule's reason, except on health checks and discovery documents; an
// allowed client is exempt from per-IP limits.
func TestIPGuardMiddleware(t *testing.T) {
	e := newEnv(t, "sqlite")
	r := &store.IPRule{Prefix: netip.MustParsePrefix("192.0.2.0/24"), Action: store.IPDeny, Reason: "secret-reason", CreatedAt: e.clock.Now()}
	if err := e.raw.IPRules().PutIPRule(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	e.put("198.51.100.0/24", store.IPAllow, time.Time{})
	g := e.guard(ipguard.Config{})
	thr := throttle.New(map[string]throttle.Rule{"ip": {Limit: 1, Window: time.Hour, PerIP: true}},
		throttle.NewMemory(nil, 100), throttle.NewMemory(nil, 100), slog.New(slog.DiscardHandler))
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/login" {
			w.WriteHeader(http.StatusOK)
			return
		}
		if d := thr.Attempt(r.Context(), throttle.Key{Class: "ip", ID: throttle.IPKey(httpx.ClientIP(r))}); d.Wait > 0 {
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	h := g.Middleware(next)
	do := func(method, path, ip string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, nil)
		req.RemoteAddr = ip + ":1234"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	rec := do("POST", "/v1/login", "192.0.2.9")
	var body map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &body)
	if rec.Code != http.StatusForbidden || body["code"] != "ip_blocked" {
		t.Fatalf("denied client: %d %s", rec.Code, rec.Body)
	}
	if strings.Contains(rec.Body.String(), "secret-reason") {
		t.Errorf("the rule's reason is shown: %s", rec.Body)
	}
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/healthz", 200}, {"GET", "/readyz", 200}, {"HEAD", "/.well-known/jwks.json", 200},
		{"GET", "/.well-known/openid-configuration", 200},
		{"POST", "/healthz", 403}, {"GET", "/v1/me", 403}, {"GET", "/ui/login", 403}, {"GET", "/.well-knownx", 403},
	} {
		if got := do(c.method, c.path, "192.0.2.9").Code; got != c.want {
			t.Errorf("%s %s from a denied client: %d, want %d", c.method, c.path, got, c.want)
		}
	}
	// The per-IP limit is 1: an allowed client passes again and again,
	// another client does not.
	for i := range 3 {
		if got := do("POST", "/v1/login", "198.51.100.4").Code; got != http.StatusOK {
			t.Fatalf("allowed client, request %d: %d", i+1, got)
		}
	}
	do("POST", "/v1/login", "203.0.113.4")
	if got := do("POST", "/v1/login", "203.0.113.4").Code; got != http.StatusTooManyRequests {
		t.Fatalf("a client without rules was not limited: %d", got)
	}
}

// TestParsePrefixAndCheckRule: operator input.
func TestParsePrefixAndCheckRule(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"192.0.2.7", "192.0.2.7/32"},
		{" 198.51.100.9/24 ", "198.51.100.0/24"},
		{"2001:db8::1", "2001:db8::1/128"},
		{"2001:db8:1:2:3::/48", "2001:db8:1::/48"},
		{"::ffff:192.0.2.7", "192.0.2.7/32"},
		{"::ffff:192.0.2.0/120", "192.0.2.0/24"},
	} {
		p, err := ipguard.ParsePrefix(c.in)
		if err != nil || p.String() != c.want {
			t.Errorf("ParsePrefix(%q) = %v, %v; want %s", c.in, p, err, c.want)
		}
	}
	for _, in := range []string{"", "example.com", "192.0.2.0/33", "fe80::1%eth0", "::ffff:0.0.0.0/90", "192.0.2.1/24/1"} {
		if p, err := ipguard.ParsePrefix(in); err == nil {
			t.Errorf("ParsePrefix(%q) = %v, want an error", in, p)
		}
	}
	for _, c := range []struct {
		prefix, action, reason string
		ok                     bool
	}{
		{"10.0.0.0/8", "deny", "", true},
		{"8.0.0.0/7", "deny", "", false},
		{"0.0.0.0/0", "allow", "", false},
		{"2001:db8::/32", "deny", "", true},
		{"2001::/31", "deny", "", false},
		{"::/0", "allow", "", false},
		{"192.0.2.0/24", "block", "", false},
		{"192.0.2.0/24", "deny", strings.Repeat("é", 200), true},
		{"192.0.2.0/24", "deny", strings.Repeat("x", 201), false},
		{"192.0.2.0/24", "deny", "line\nbreak", false},
	} {
		err := ipguard.CheckRule(&store.IPRule{Prefix: netip.MustParsePrefix(c.prefix), Action: c.action, Reason: c.reason})
		if (err == nil) != c.ok {
			t.Errorf("CheckRule(%s %s %.10q) = %v, want ok=%v", c.prefix, c.action, c.reason, err, c.ok)
		}
	}
}
