package throttle

import (
	"context"
	"log/slog"
	"math"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/ephemeral"
)

// Backoff counts attempts per key (an account, an (account, IP) pair)
// until a success resets it, and imposes a progressive delay: once more
// than After attempts are counted, each one starts a wait of Base,
// doubling per further attempt up to Cap, and an attempt made while a wait
// runs is refused. With After = NoDelay it only counts.
//
// Attempts are counted before the work they guard (Reserve), atomically,
// so a parallel burst cannot slip between a check and a count: the caller
// resets the key on success, and a failure simply stays counted. Counts
// live Window after the first attempt. Like Throttle, it counts in the
// shared ephemeral store and falls back to this process's memory.
type Backoff struct {
	After  int64
	Base   time.Duration
	Cap    time.Duration
	Window time.Duration

	Primary, Fallback ephemeral.Store
	Log               *slog.Logger
}

// NoDelay is the After of a Backoff that only counts.
const NoDelay = math.MaxInt64

func countKey(key string) string { return "backoff:n:" + key }
func waitKey(key string) string  { return "backoff:wait:" + key }

// Reserve counts one attempt of key and returns the count so far
// (including this one) and, if the attempt must not go ahead, how long to
// wait. If neither store can count, it refuses for Base or a second (fail
// closed).
func (b *Backoff) Reserve(ctx context.Context, key string) (n int64, wait time.Duration) {
	for _, s := range b.stores() {
		n, _, err := s.Incr(ctx, countKey(key), b.Window)
		if err != nil {
			b.Log.WarnContext(ctx, "throttle: cannot count an attempt", slog.Any("error", err))
			continue
		}
		if n <= b.After {
			return n, 0
		}
		running, ttl, err := s.Incr(ctx, waitKey(key), b.Delay(n))
		if err != nil {
			b.Log.WarnContext(ctx, "throttle: cannot start a delay", slog.Any("error", err))
			continue
		}
		if running > 1 {
			return n, ttl
		}
		return n, 0
	}
	b.Log.ErrorContext(ctx, "throttle: cannot count attempts; refusing")
	return 0, max(b.Base, time.Second)
}

// Delay is the wait started by the n-th attempt.
func (b *Backoff) Delay(n int64) time.Duration {
	if n <= b.After {
		return 0
	}
	d := b.Base
	for i := b.After + 1; i < n && d < b.Cap; i++ {
		d *= 2
	}
	return min(d, b.Cap)
}

// Reset forgets keys' attempts and delays.
func (b *Backoff) Reset(ctx context.Context, keys ...string) {
	sk := make([]string, 0, 2*len(keys))
	for _, k := range keys {
		sk = append(sk, countKey(k), waitKey(k))
	}
	for _, s := range b.stores() {
		if err := s.Delete(ctx, sk...); err != nil {
			b.Log.WarnContext(ctx, "throttle: cannot reset attempts", slog.Any("error", err))
		}
	}
}

func (b *Backoff) stores() []ephemeral.Store {
	if b.Fallback == nil || b.Fallback == b.Primary {
		return []ephemeral.Store{b.Primary}
	}
	return []ephemeral.Store{b.Primary, b.Fallback}
}
