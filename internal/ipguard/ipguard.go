// Package ipguard owns the client-address rules — operator allow and deny
// lists and automatic credential-stuffing bans — and their enforcement.
//
// Rules live in the store (store.IPRules), keyed by a masked prefix. Every
// replica holds the live rules in memory and decides each request from
// that copy alone: no store or Redis call per request. The copy is
// reloaded every Config.Refresh, and at once when a change is announced
// on the ephemeral pub/sub channel [Channel] (every writer publishes after
// a change; a subscription that may have missed messages reloads too).
//
// # Matching
//
// The most specific rule wins: of the unexpired rules whose prefix holds
// the client address, the longest prefix decides. An allow rule inside a
// deny rule punches a hole in it (an office /28 in a banned /24 stays
// reachable), and a deny rule inside an allow rule blocks its part. At
// equal specificity allow wins; that can only happen when an IPv4-mapped
// IPv6 rule (::ffff:192.0.2.0/120) and an IPv4 rule (192.0.2.0/24) name
// the same block, as both are matched as IPv4. Client addresses are
// matched unmapped and without zone.
//
// A client under a deny rule gets 403 ip_blocked on every route but the
// health checks and /.well-known/; a client under an allow rule is exempt
// from per-IP rate limits (throttle.WithExempt) and from stuffing bans.
//
// # Credential stuffing
//
// LoginFailed counts the distinct accounts that fail to sign in from one
// address (an IPv4 address or an IPv6 /64, as throttle.IPKey) and from one
// block (an IPv4 /24 or an IPv6 /56) within Config.StuffingWindow. Over a
// threshold the address or the block is denied for Config.BanDuration. Many
// failures against one account never ban anything: that is the
// per-account protection's job, and a ban keyed on one account would let
// anyone lock an address out by failing on purpose.
package ipguard

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-auth/gatehouse/internal/ephemeral"
	"github.com/gatehouse-auth/gatehouse/internal/httpx"
	"github.com/gatehouse-auth/gatehouse/internal/problem"
	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/throttle"
)

// Channel is the ephemeral pub/sub channel that announces rule changes.
const Channel = "ip-rules"

// Purge: rules expired longer than purgeRetention ago are deleted every
// purgeInterval by every replica (the deletes are idempotent).
const (
	purgeInterval  = time.Hour
	purgeRetention = 24 * time.Hour
)

// Config tunes the guard; zero fields take the defaults.
type Config struct {
	// StuffingAccounts is how many distinct accounts may fail from one
	// address (IPv4 address, IPv6 /64) per window before it is banned
	// (default 20; negative: never).
	StuffingAccounts int
	// StuffingAccountsPerBlock is the same for an IPv4 /24 or IPv6 /56
	// (default 60; negative: never).
	StuffingAccountsPerBlock int
	// StuffingWindow is the counting window (default 10m).
	StuffingWindow time.Duration
	// BanDuration is how long a stuffing ban lasts (default 1h).
	BanDuration time.Duration
	// Refresh is how often the rules are reloaded from the store without
	// an announcement (default 10s).
	Refresh time.Duration
}

func (c Config) withDefaults() Config {
	if c.StuffingAccounts == 0 {
		c.StuffingAccounts = 20
	}
	if c.StuffingAccountsPerBlock == 0 {
		c.StuffingAccountsPerBlock = 60
	}
	if c.StuffingWindow <= 0 {
		c.StuffingWindow = 10 * time.Minute
	}
	if c.BanDuration <= 0 {
		c.BanDuration = time.Hour
	}
	if c.Refresh <= 0 {
		c.Refresh = 10 * time.Second
	}
	return c
}

// Deps are the guard's collaborators.
type Deps struct {
	DB  store.Store
	Eph ephemeral.Store
	Log *slog.Logger
	// Now is the clock of rule expiry and counting windows (nil: time.Now).
	Now func() time.Time
	// Decisions counts bans as ("ip_ban", "banned"); may be nil.
	Decisions *prometheus.CounterVec
}

// Guard enforces the rules and detects credential stuffing. Its methods
// are safe for concurrent use.
type Guard struct {
	cfg       Config
	db        store.Store
	eph       ephemeral.Store
	log       *slog.Logger
	now       func() time.Time
	decisions *prometheus.CounterVec
	id        string // this replica, as the holder of ban markers

	// rules is the live copy. Reloads are numbered when they start;
	// one never replaces a copy loaded by a later-started reload, so a
	// slow reload cannot bring back a state older than the one in use.
	rules   atomic.Pointer[ruleSet]
	tickets atomic.Uint64
	mu      sync.Mutex // serialises replacements of rules
	kick    chan struct{}
}

// New returns a Guard with no rules; Start loads them.
func New(cfg Config, d Deps) *Guard {
	g := &Guard{
		cfg: cfg.withDefaults(), db: d.DB, eph: d.Eph, log: d.Log, now: d.Now, decisions: d.Decisions,
		id: rand.Text(), kick: make(chan struct{}, 1),
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.now == nil {
		g.now = time.Now
	}
	g.rules.Store(buildRuleSet(nil, 0))
	return g
}

// Start subscribes to change announcements, loads the rules (an error if
// the store fails) and keeps them current — reloading every Refresh and on
// each announcement, purging long-expired rules hourly — until ctx is done.
func (g *Guard) Start(ctx context.Context) error {
	// Subscribed first: a change made during the load is announced to us.
	if err := g.eph.Subscribe(ctx, Channel, func([]byte) { g.requestReload() }, g.requestReload); err != nil {
		return fmt.Errorf("ipguard: subscribe to rule changes: %w", err)
	}
	if err := g.Reload(ctx); err != nil {
		return err
	}
	go g.run(ctx)
	return nil
}

func (g *Guard) run(ctx context.Context) {
	refresh := time.NewTicker(g.cfg.Refresh)
	defer refresh.Stop()
	purge := time.NewTicker(purgeInterval)
	defer purge.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-refresh.C:
		case <-g.kick:
		case <-purge.C:
			if err := g.db.IPRules().PurgeIPRules(ctx, g.now().Add(-purgeRetention)); err != nil && ctx.Err() == nil {
				g.log.WarnContext(ctx, "ipguard: purge of expired rules failed", slog.Any("error", err))
			}
			continue
		}
		if err := g.Reload(ctx); err != nil && ctx.Err() == nil {
			g.log.WarnContext(ctx, "ipguard: reload of rules failed; keeping the rules in memory", slog.Any("error", err))
		}
	}
}

// requestReload asks the loop for a reload without waiting; pending
// requests coalesce.
func (g *Guard) requestReload() {
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

// Reload replaces the rules in memory with the store's.
func (g *Guard) Reload(ctx context.Context) error {
	ticket := g.tickets.Add(1)
	list, err := g.db.IPRules().ListIPRules(ctx, g.now())
	if err != nil {
		return fmt.Errorf("ipguard: load rules: %w", err)
	}
	rs := buildRuleSet(list, ticket)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.rules.Load().ticket < ticket {
		g.rules.Store(rs)
	}
	return nil
}

// add puts r into the rules in memory at once (this replica enforces a
// ban it wrote without waiting for the reload its announcement causes).
func (g *Guard) add(r *store.IPRule) {
	g.mu.Lock()
	defer g.mu.Unlock()
	cur := g.rules.Load()
	g.rules.Store(buildRuleSet(append(cur.list(), r), cur.ticket))
}

// Decide returns the action of the rule deciding ip (store.IPAllow or
// store.IPDeny), or "" when no rule holds it.
func (g *Guard) Decide(ip netip.Addr) string {
	if r := g.rules.Load().match(ip, 128, g.now()); r != nil {
		return r.Action
	}
	return ""
}

// Middleware enforces the rules on the client address (httpx.ClientIP, so
// it must run after httpx.RealIP): a denied client gets 403 ip_blocked,
// except on GET and HEAD of /healthz, /readyz and /.well-known/…; an
// allowed client's request is marked exempt from per-IP limits.
func (g *Guard) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch g.Decide(httpx.ClientIP(r)) {
		case store.IPDeny:
			if !alwaysOpen(r) {
				// No detail: the rule's reason is for operators.
				problem.Write(w, r, nil, problem.IPBlocked)
				return
			}
		case store.IPAllow:
			r = r.WithContext(throttle.WithExempt(r.Context()))
		}
		next.ServeHTTP(w, r)
	})
}

// alwaysOpen: health checks (a load balancer's address may sit in a denied
// block) and discovery documents stay reachable.
func alwaysOpen(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	p := r.URL.Path
	return p == "/healthz" || p == "/readyz" || strings.HasPrefix(p, "/.well-known/")
}

// ruleSet is an immutable copy of the rules, indexed for longest-prefix
// match: per address family, the prefix lengths present (longest first)
// and the rules by masked prefix. A lookup costs one map probe per
// distinct length.
type ruleSet struct {
	v4, v6 table
	ticket uint64
}

type table struct {
	bits  []int
	rules map[netip.Prefix]*store.IPRule
}

func buildRuleSet(list []*store.IPRule, ticket uint64) *ruleSet {
	rs := &ruleSet{ticket: ticket, v4: table{rules: map[netip.Prefix]*store.IPRule{}}, v6: table{rules: map[netip.Prefix]*store.IPRule{}}}
	for _, r := range list {
		p, ok := normalize(r.Prefix)
		if !ok || (r.Action != store.IPAllow && r.Action != store.IPDeny) {
			continue
		}
		t := &rs.v6
		if p.Addr().Is4() {
			t = &rs.v4
		}
		if old, dup := t.rules[p]; dup && !prefer(r, old) {
			continue
		}
		c := *r
		c.Prefix = p
		t.rules[p] = &c
	}
	for _, t := range []*table{&rs.v4, &rs.v6} {
		for p := range t.rules {
			if !slices.Contains(t.bits, p.Bits()) {
				t.bits = append(t.bits, p.Bits())
			}
		}
		slices.Sort(t.bits)
		slices.Reverse(t.bits)
	}
	return rs
}

// prefer decides between two rules that normalise to the same prefix:
// allow wins; between equal actions, the longer-lived.
func prefer(r, old *store.IPRule) bool {
	if r.Action != old.Action {
		return r.Action == store.IPAllow
	}
	return !old.ExpiresAt.IsZero() && (r.ExpiresAt.IsZero() || r.ExpiresAt.After(old.ExpiresAt))
}

// list returns the rules of rs.
func (rs *ruleSet) list() []*store.IPRule {
	out := make([]*store.IPRule, 0, len(rs.v4.rules)+len(rs.v6.rules))
	for _, t := range []table{rs.v4, rs.v6} {
		for _, r := range t.rules {
			out = append(out, r)
		}
	}
	return out
}

// match returns the most specific rule unexpired at now whose prefix is at
// most maxBits long and holds ip, or nil.
func (rs *ruleSet) match(ip netip.Addr, maxBits int, now time.Time) *store.IPRule {
	if !ip.IsValid() {
		return nil
	}
	ip = ip.Unmap().WithZone("")
	t := &rs.v6
	if ip.Is4() {
		t = &rs.v4
	}
	for _, b := range t.bits {
		if b > maxBits {
			continue
		}
		p, err := ip.Prefix(b)
		if err != nil {
			continue
		}
		if r, ok := t.rules[p]; ok && (r.ExpiresAt.IsZero() || now.Before(r.ExpiresAt)) {
			return r
		}
	}
	return nil
}

// normalize masks p and turns an IPv4-mapped prefix of at least /96 into
// the IPv4 prefix it names. A mapped prefix shorter than /96 reaches
// beyond the mapped space and stays IPv6.
func normalize(p netip.Prefix) (netip.Prefix, bool) {
	if !p.IsValid() {
		return netip.Prefix{}, false
	}
	a := p.Addr().WithZone("")
	if a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96).Masked(), true
	}
	return netip.PrefixFrom(a, p.Bits()).Masked(), true
}
