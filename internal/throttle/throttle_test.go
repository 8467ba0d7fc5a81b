package throttle

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse-auth/gatehouse/internal/ephemeral/ephemeraltest"
)

var rules = map[string]Rule{"acct": {Limit: 3, Window: time.Minute}}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestAttemptLimitsAndRegains(t *testing.T) {
	ctx := context.Background()
	clk := ephemeraltest.NewClock(time.Time{})
	mem := NewMemory(clk.Now, DefaultMemoryKeys)
	th := New(rules, mem, mem, quiet())
	k := Key{Class: "acct", ID: "a@example.com"}
	for i := range 3 {
		if w := th.Attempt(ctx, k).Wait; w != 0 {
			t.Fatalf("attempt %d blocked", i+1)
		}
	}
	d := th.Attempt(ctx, k)
	if d.Wait != 20*time.Second || !d.Tripped {
		t.Fatalf("4th attempt %+v, want a 20s wait (one hit per Window/Limit) and Tripped", d)
	}
	if d := th.Attempt(ctx, k); d.Wait <= 0 || d.Tripped {
		t.Fatalf("5th attempt %+v, want a wait, not Tripped again", d)
	}
	if w := th.Attempt(ctx, Key{Class: "acct", ID: "b@example.com"}).Wait; w != 0 {
		t.Fatal("another key was blocked")
	}
	if w := th.Attempt(ctx, Key{Class: "unlimited", ID: "x"}).Wait; w != 0 {
		t.Fatal("a class without a rule was limited")
	}
	clk.Advance(20 * time.Second)
	if w := th.Attempt(ctx, k).Wait; w != 0 {
		t.Fatal("one hit was not regained after Window/Limit")
	}
	if w := th.Attempt(ctx, k).Wait; w == 0 {
		t.Fatal("more than one hit regained after Window/Limit")
	}
	th.Reset(ctx, k)
	for i := range 3 {
		if w := th.Attempt(ctx, k).Wait; w != 0 {
			t.Fatalf("after reset, attempt %d blocked", i+1)
		}
	}
}

// The GCRA state after each hit: what RateLimit headers report.
func TestMemoryGCRAState(t *testing.T) {
	ctx := context.Background()
	clk := ephemeraltest.NewClock(time.Time{})
	mem := NewMemory(clk.Now, DefaultMemoryKeys)
	rule := Rule{Limit: 4, Window: time.Minute}
	for i, want := range []Result{
		{Allowed: true, Remaining: 3, ResetAfter: 15 * time.Second},
		{Allowed: true, Remaining: 2, ResetAfter: 30 * time.Second},
		{Allowed: true, Remaining: 1, ResetAfter: 45 * time.Second},
		{Allowed: true, Remaining: 0, ResetAfter: time.Minute},
		{Allowed: false, RetryAfter: 15 * time.Second, ResetAfter: time.Minute},
	} {
		got, err := mem.Allow(ctx, "k", rule)
		if err != nil || got != want {
			t.Fatalf("hit %d = %+v, %v; want %+v", i+1, got, err, want)
		}
	}
	clk.Advance(time.Minute)
	if got, _ := mem.Allow(ctx, "k", rule); got.Remaining != 3 {
		t.Fatalf("after a whole window, remaining = %d, want the full burst minus one", got.Remaining)
	}
}

// Counting happens before the work, so a parallel burst is bounded.
func TestAttackParallelBurstBounded(t *testing.T) {
	for name, lim := range limiters(t) {
		t.Run(name, func(t *testing.T) {
			th := New(rules, lim, lim, quiet())
			var allowed atomic.Int32
			var wg sync.WaitGroup
			for range 100 {
				wg.Go(func() {
					if th.Attempt(context.Background(), Key{Class: "acct", ID: "v"}).Wait == 0 {
						allowed.Add(1)
					}
				})
			}
			wg.Wait()
			if allowed.Load() != 3 {
				t.Fatalf("%d of 100 parallel attempts allowed, want exactly 3", allowed.Load())
			}
		})
	}
}

// limiters are the implementations under test: memory always, Redis when a
// test Redis is configured.
func limiters(t *testing.T) map[string]Limiter {
	out := map[string]Limiter{"memory": NewMemory(nil, DefaultMemoryKeys)}
	if testing.Short() {
		return out
	}
	if ephemeraltest.RedisURLIsSet() {
		r := ephemeraltest.NewRedis(t)
		client, prefix := r.Client()
		ephemeraltest.CleanupPrefix(t, ephemeraltest.RedisURL(t), "rate:"+prefix)
		out["redis"] = NewRedis(client, prefix)
	}
	return out
}

// Both limiters make the same decisions and report the same state.
func TestLimitersAgree(t *testing.T) {
	ls := limiters(t)
	if len(ls) < 2 {
		t.Skip("skipping: needs a test Redis (" + ephemeraltest.RedisURLEnv + ")")
	}
	ctx := context.Background()
	rule := Rule{Limit: 5, Window: time.Hour}
	for i := range 7 {
		m, err := ls["memory"].Allow(ctx, "agree", rule)
		if err != nil {
			t.Fatal(err)
		}
		r, err := ls["redis"].Allow(ctx, "agree", rule)
		if err != nil {
			t.Fatal(err)
		}
		// The two clocks differ by the round trip: compare to the second.
		if m.Allowed != r.Allowed || m.Remaining != r.Remaining ||
			(m.RetryAfter-r.RetryAfter).Abs() > time.Second || (m.ResetAfter-r.ResetAfter).Abs() > time.Second {
			t.Fatalf("hit %d: memory %+v, redis %+v", i+1, m, r)
		}
	}
	if err := ls["redis"].Reset(ctx, "agree"); err != nil {
		t.Fatal(err)
	}
	if r, _ := ls["redis"].Allow(ctx, "agree", rule); r.Remaining != 4 {
		t.Fatalf("after Reset, remaining %d, want 4", r.Remaining)
	}
}

// broken is a shared limiter that is down.
type broken struct{}

func (broken) Allow(context.Context, string, Rule) (Result, error) {
	return Result{}, errors.New("connection refused")
}
func (broken) Reset(context.Context, ...string) error { return errors.New("connection refused") }

// Shared limiter down: limits still hold, per replica — never "no limits",
// never "everyone blocked" — and each fallback decision is counted.
func TestAttackSharedLimiterDownFallsBackToLocal(t *testing.T) {
	th := New(rules, broken{}, NewMemory(nil, DefaultMemoryKeys), quiet())
	var fallbacks atomic.Int32
	th.OnFallback = func() { fallbacks.Add(1) }
	k := Key{Class: "acct", ID: "v"}
	for range 3 {
		if th.Attempt(context.Background(), k).Wait != 0 {
			t.Fatal("blocked too early: everyone would be locked out")
		}
	}
	if th.Attempt(context.Background(), k).Wait == 0 {
		t.Fatal("no limit while the shared limiter is down")
	}
	if fallbacks.Load() < 4 {
		t.Fatalf("%d fallbacks counted, want one per decision", fallbacks.Load())
	}
}

// Redis stopped while the server runs: limiting continues in memory, and
// resumes in Redis when it is back.
func TestAttackRedisStoppedMidTestFallsBackToMemory(t *testing.T) {
	url, stop := ephemeraltest.StartRedis(t)
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opt)
	defer client.Close()
	th := New(rules, NewRedis(client, "test:"), NewMemory(nil, DefaultMemoryKeys), quiet())
	var fallbacks atomic.Int32
	th.OnFallback = func() { fallbacks.Add(1) }
	ctx := context.Background()
	if th.Attempt(ctx, Key{Class: "acct", ID: "before"}).Wait != 0 || fallbacks.Load() != 0 {
		t.Fatal("the first attempt did not go to Redis")
	}
	stop()
	k := Key{Class: "acct", ID: "during"}
	for i := range 3 {
		if th.Attempt(ctx, k).Wait != 0 {
			t.Fatalf("attempt %d refused with Redis down: everyone would be locked out", i+1)
		}
	}
	if th.Attempt(ctx, k).Wait == 0 {
		t.Fatal("no limit with Redis down")
	}
	if fallbacks.Load() == 0 {
		t.Fatal("fallback decisions were not counted")
	}
}

// If nothing can decide (a full or failed limiter), attempts are refused
// rather than allowed without limit.
func TestAttackUndecidableAttemptFailsClosed(t *testing.T) {
	th := New(rules, broken{}, broken{}, quiet())
	if th.Attempt(context.Background(), Key{Class: "acct", ID: "v"}).Wait == 0 {
		t.Fatal("an attempt that could not be decided was allowed")
	}
}

// A flood of fresh keys cannot evict live ones: the full memory limiter
// refuses new keys (fail closed) until old ones are whole again.
func TestAttackMemoryFloodCannotEvictLiveKeys(t *testing.T) {
	ctx := context.Background()
	clk := ephemeraltest.NewClock(time.Time{})
	mem := NewMemory(clk.Now, 10)
	rule := Rule{Limit: 1, Window: time.Minute}
	if res, _ := mem.Allow(ctx, "victim-guess", rule); !res.Allowed {
		t.Fatal("first hit refused")
	}
	for i := range 9 {
		_, _ = mem.Allow(ctx, "flood"+strconv.Itoa(i), rule)
	}
	if _, err := mem.Allow(ctx, "one-more", rule); err == nil {
		t.Fatal("a full limiter took a new key")
	}
	if res, _ := mem.Allow(ctx, "victim-guess", rule); res.Allowed {
		t.Fatal("the flood reset a live key")
	}
	clk.Advance(time.Minute)
	if res, err := mem.Allow(ctx, "one-more", rule); err != nil || !res.Allowed {
		t.Fatalf("keys whole again were not swept: %+v %v", res, err)
	}
}

// A key over its limit stops the count: a throttled IP cannot mint state
// for other keys (which would fill the limiter).
func TestAttackThrottledKeyStopsCounting(t *testing.T) {
	ctx := context.Background()
	mem := NewMemory(nil, DefaultMemoryKeys)
	th := New(map[string]Rule{"ip": {Limit: 1, Window: time.Minute}, "acct": {Limit: 100, Window: time.Minute}}, mem, mem, quiet())
	ip := Key{Class: "ip", ID: "192.0.2.1"}
	th.Attempt(ctx, ip, Key{Class: "acct", ID: "first"})
	before := mem.Len()
	for i := range 10 {
		th.Attempt(ctx, ip, Key{Class: "acct", ID: string(rune('a' + i))})
	}
	if mem.Len() != before+1 { // the one "tripped" marker
		t.Fatalf("throttled IP created %d keys, want only its tripped marker", mem.Len()-before)
	}
}

// Allow-listed requests are not counted against per-IP classes, and still
// against the others.
func TestExemptSkipsPerIPClassesOnly(t *testing.T) {
	mem := NewMemory(nil, DefaultMemoryKeys)
	th := New(map[string]Rule{"ip": {Limit: 1, Window: time.Minute, PerIP: true}, "acct": {Limit: 2, Window: time.Minute}}, mem, mem, quiet())
	ctx := WithExempt(context.Background())
	for range 2 {
		if th.Attempt(ctx, Key{Class: "ip", ID: "192.0.2.1"}, Key{Class: "acct", ID: "a"}).Wait != 0 {
			t.Fatal("an allow-listed request was limited per IP")
		}
	}
	if th.Attempt(ctx, Key{Class: "ip", ID: "192.0.2.1"}, Key{Class: "acct", ID: "a"}).Wait == 0 {
		t.Fatal("an allow-listed request escaped the account limit")
	}
}

func TestHeaders(t *testing.T) {
	mem := NewMemory(nil, DefaultMemoryKeys)
	th := New(map[string]Rule{
		"login_ip":      {Limit: 100, Window: 15 * time.Minute, PerIP: true},
		"login_account": {Limit: 2, Window: 10 * time.Minute},
	}, mem, mem, quiet())
	h := Headers(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := th.Attempt(r.Context(), Key{Class: "login_ip", ID: "192.0.2.1"}, Key{Class: "login_account", ID: "a"})
		if d.Wait > 0 {
			w.WriteHeader(http.StatusTooManyRequests)
		}
	}))
	var last *httptest.ResponseRecorder
	for range 3 {
		last = httptest.NewRecorder()
		h.ServeHTTP(last, httptest.NewRequest("POST", "/v1/login", nil))
	}
	if last.Code != http.StatusTooManyRequests {
		t.Fatalf("third request: %d", last.Code)
	}
	// Only per-IP state is shown: an account's counter would tell what
	// others did with it.
	if got, want := last.Header().Get("RateLimit-Policy"), `"login_ip";q=100;w=900`; got != want {
		t.Errorf("RateLimit-Policy = %q, want %q", got, want)
	}
	if got, want := last.Header().Get("RateLimit"), `"login_ip";r=97;t=27`; got != want {
		t.Errorf("RateLimit = %q, want %q", got, want)
	}
	rec := httptest.NewRecorder()
	Headers(http.NotFoundHandler()).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Header().Get("RateLimit") != "" || rec.Header().Get("RateLimit-Policy") != "" {
		t.Error("headers on a request that was not limited")
	}
}

func TestIPKeyGroupsIPv6By64(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":            "192.0.2.7",
		"::ffff:192.0.2.7":     "192.0.2.7",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1": "2001:db8:1:2::/64",
		"2001:db8:1:3::1":      "2001:db8:1:3::/64",
	} {
		if got := IPKey(netip.MustParseAddr(in)); got != want {
			t.Errorf("IPKey(%s) = %s, want %s", in, got, want)
		}
	}
}
