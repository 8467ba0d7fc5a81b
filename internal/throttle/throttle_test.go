package throttle

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/ephemeral"
	"github.com/gatehouse-auth/gatehouse/internal/ephemeral/ephemeraltest"
)

var rules = map[string]Rule{"acct": {Limit: 3, Window: time.Minute}}

func TestAttemptLimitsAndWindow(t *testing.T) {
	ctx := context.Background()
	clk := ephemeraltest.NewClock(time.Time{})
	mem := ephemeral.NewMemory(clk.Now)
	th := New(rules, mem, mem, slog.New(slog.DiscardHandler))
	k := Key{Class: "acct", ID: "a@example.com"}
	for i := range 3 {
		if w := th.Attempt(ctx, k).Wait; w != 0 {
			t.Fatalf("attempt %d blocked", i+1)
		}
	}
	d := th.Attempt(ctx, k)
	if d.Wait <= 0 || d.Wait > time.Minute || !d.Tripped {
		t.Fatalf("4th attempt %+v, want a wait and Tripped", d)
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
	clk.Advance(time.Minute)
	if w := th.Attempt(ctx, k).Wait; w != 0 {
		t.Fatal("window did not expire")
	}
	th.Attempt(ctx, k)
	th.Attempt(ctx, k)
	th.Reset(ctx, k)
	if w := th.Attempt(ctx, k).Wait; w != 0 {
		t.Fatal("reset did not clear the counter")
	}
}

// Counting happens before the work, so a parallel burst is bounded.
func TestAttackParallelBurstBounded(t *testing.T) {
	mem := ephemeral.NewMemory(nil)
	th := New(rules, mem, mem, slog.New(slog.DiscardHandler))
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
}

// broken is a shared store that is down.
type broken struct{ ephemeral.Store }

func (broken) Incr(context.Context, string, time.Duration) (int64, time.Duration, error) {
	return 0, 0, errors.New("connection refused")
}
func (broken) Delete(context.Context, ...string) error { return errors.New("connection refused") }

// Shared store down: limits still hold, per replica — never "no limits".
func TestAttackSharedStoreDownFallsBackToLocal(t *testing.T) {
	local := ephemeral.NewMemory(nil)
	th := New(rules, broken{}, local, slog.New(slog.DiscardHandler))
	k := Key{Class: "acct", ID: "v"}
	for range 3 {
		if th.Attempt(context.Background(), k).Wait != 0 {
			t.Fatal("blocked too early: everyone would be locked out")
		}
	}
	if th.Attempt(context.Background(), k).Wait == 0 {
		t.Fatal("no limit while the shared store is down")
	}
}

// If nothing can count (a full or failed store), attempts are refused
// rather than allowed without limit.
func TestAttackUncountableAttemptFailsClosed(t *testing.T) {
	th := New(rules, broken{}, broken{}, slog.New(slog.DiscardHandler))
	if th.Attempt(context.Background(), Key{Class: "acct", ID: "v"}).Wait == 0 {
		t.Fatal("an attempt that could not be counted was allowed")
	}
}

// A key over its limit stops the count: a throttled IP cannot mint counters
// for other keys (which would fill the store).
func TestAttackThrottledKeyStopsCounting(t *testing.T) {
	ctx := context.Background()
	mem := ephemeral.NewMemory(nil)
	th := New(map[string]Rule{"ip": {Limit: 1, Window: time.Minute}, "acct": {Limit: 100, Window: time.Minute}}, mem, mem, slog.New(slog.DiscardHandler))
	ip := Key{Class: "ip", ID: "192.0.2.1"}
	th.Attempt(ctx, ip, Key{Class: "acct", ID: "first"})
	for i := range 10 {
		th.Attempt(ctx, ip, Key{Class: "acct", ID: string(rune('a' + i))})
	}
	for i := range 10 {
		if n, _, _ := mem.Count(ctx, "throttle:acct:"+string(rune('a'+i))); n != 0 {
			t.Fatalf("throttled IP created account counter %d", i)
		}
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
