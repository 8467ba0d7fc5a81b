package throttle

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/ephemeral"
	"github.com/gatehouse-auth/gatehouse/internal/ephemeral/ephemeraltest"
)

func TestBackoffDelay(t *testing.T) {
	b := &Backoff{After: 3, Base: time.Second, Cap: 10 * time.Second}
	for n, want := range map[int64]time.Duration{1: 0, 3: 0, 4: time.Second, 5: 2 * time.Second, 6: 4 * time.Second, 7: 8 * time.Second, 8: 10 * time.Second, 1000: 10 * time.Second} {
		if got := b.Delay(n); got != want {
			t.Errorf("Delay(%d) = %v, want %v", n, got, want)
		}
	}
}

func TestBackoffReserve(t *testing.T) {
	ctx := context.Background()
	clk := ephemeraltest.NewClock(time.Time{})
	mem := ephemeral.NewMemory(clk.Now)
	b := &Backoff{After: 2, Base: time.Second, Cap: time.Minute, Window: time.Hour, Primary: mem, Log: quiet()}
	for i := range 3 {
		if _, w := b.Reserve(ctx, "k"); w != 0 {
			t.Fatalf("attempt %d waited", i+1)
		}
	}
	if _, w := b.Reserve(ctx, "k"); w != time.Second {
		t.Fatalf("attempt during the first delay: wait %v, want 1s", w)
	}
	clk.Advance(time.Second)
	if n, w := b.Reserve(ctx, "k"); w != 0 || n != 5 {
		t.Fatalf("after the delay: n=%d wait %v", n, w)
	}
	if _, w := b.Reserve(ctx, "k"); w != 4*time.Second {
		t.Fatalf("the fifth attempt's delay (Base·2^(5-3)) was not running: %v", w)
	}
	b.Reset(ctx, "k")
	if n, w := b.Reserve(ctx, "k"); n != 1 || w != 0 {
		t.Fatalf("after reset: n=%d wait %v", n, w)
	}
}

// A parallel burst cannot pass the check before the first count: at most
// After+1 attempts go ahead.
func TestAttackBackoffParallelBurst(t *testing.T) {
	mem := ephemeral.NewMemory(nil)
	b := &Backoff{After: 3, Base: time.Minute, Cap: time.Hour, Window: time.Hour, Primary: mem, Log: quiet()}
	var ahead atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if _, w := b.Reserve(context.Background(), "k"); w == 0 {
				ahead.Add(1)
			}
		})
	}
	wg.Wait()
	if ahead.Load() != 4 {
		t.Fatalf("%d of 50 parallel attempts went ahead, want After+1 = 4", ahead.Load())
	}
}

// With no store able to count, attempts wait (fail closed).
func TestAttackBackoffUncountableFailsClosed(t *testing.T) {
	mem := ephemeral.NewMemory(nil)
	_ = mem.Close()
	b := &Backoff{After: NoDelay, Window: time.Hour, Primary: mem, Log: quiet()}
	if _, w := b.Reserve(context.Background(), "k"); w == 0 {
		t.Fatal("an attempt that could not be counted went ahead")
	}
}
