package dispatch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// logBuffer collects log output written from any goroutine.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// count returns how many log lines hold every one of subs.
func (b *logBuffer) count(subs ...string) int {
	n := 0
lines:
	for l := range strings.Lines(b.String()) {
		for _, s := range subs {
			if !strings.Contains(l, s) {
				continue lines
			}
		}
		n++
	}
	return n
}

func newQueue(cfg Config) (*Queue, *logBuffer) {
	logs := &logBuffer{}
	return New(cfg, slog.New(slog.NewTextHandler(logs, nil))), logs
}

// start runs q's workers until the test ends.
func start(t *testing.T, q *Queue) {
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	q.Start(ctx)
}

var errFlaky = errors.New("flaky")

func TestRetriesUntilSuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q, logs := newQueue(Config{BaseDelay: time.Second, MaxDelay: time.Minute})
		start(t, q)
		var calls []time.Time
		q.Submit("flaky", 5, func(context.Context) error {
			calls = append(calls, time.Now())
			if len(calls) < 3 {
				return errFlaky
			}
			return nil
		})
		time.Sleep(time.Hour)
		synctest.Wait()
		if len(calls) != 3 {
			t.Fatalf("job ran %d times, want 3", len(calls))
		}
		// Full jitter: retry n waits less than BaseDelay·2^(n-1).
		if d := calls[1].Sub(calls[0]); d >= time.Second {
			t.Errorf("first retry after %s, want < 1s", d)
		}
		if d := calls[2].Sub(calls[1]); d >= 2*time.Second {
			t.Errorf("second retry after %s, want < 2s", d)
		}
		if n := logs.count("level=WARN", "job=flaky", "attempt=", "error=flaky"); n != 2 {
			t.Errorf("%d warnings, want 2:\n%s", n, logs)
		}
		if n := logs.count("level=ERROR"); n != 0 {
			t.Errorf("errors logged for a job that succeeded:\n%s", logs)
		}
		if err := q.Drain(t.Context()); err != nil {
			t.Errorf("Drain: %v", err)
		}
	})
}

func TestStopsOnPermanent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q, logs := newQueue(Config{})
		start(t, q)
		var calls atomic.Int32
		q.Submit("rejected", 5, func(context.Context) error {
			calls.Add(1)
			return fmt.Errorf("send: %w", Permanent(errors.New("550 no such user")))
		})
		time.Sleep(time.Hour)
		synctest.Wait()
		if n := calls.Load(); n != 1 {
			t.Errorf("job ran %d times, want 1", n)
		}
		if n := logs.count("level=ERROR", "job=rejected", "550 no such user"); n != 1 {
			t.Errorf("want one error line:\n%s", logs)
		}
	})
}

func TestGivesUpAfterAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q, logs := newQueue(Config{})
		start(t, q)
		var calls atomic.Int32
		q.Submit("doomed", 3, func(context.Context) error {
			calls.Add(1)
			return errFlaky
		})
		time.Sleep(time.Hour)
		synctest.Wait()
		if n := calls.Load(); n != 3 {
			t.Errorf("job ran %d times, want 3", n)
		}
		if n := logs.count("level=WARN", "job=doomed"); n != 2 {
			t.Errorf("%d warnings, want 2:\n%s", n, logs)
		}
		if n := logs.count("level=ERROR", "job=doomed", "attempt=3", "giving up"); n != 1 {
			t.Errorf("want one give-up line:\n%s", logs)
		}
	})
}

func TestAtLeastOneAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q, _ := newQueue(Config{})
		start(t, q)
		var calls atomic.Int32
		q.Submit("zero", 0, func(context.Context) error { calls.Add(1); return errFlaky })
		time.Sleep(time.Hour)
		synctest.Wait()
		if n := calls.Load(); n != 1 {
			t.Errorf("job ran %d times, want 1", n)
		}
	})
}

func TestFullQueueRefusesWithoutBlocking(t *testing.T) {
	// No workers: nothing leaves the queue.
	q, logs := newQueue(Config{Capacity: 2})
	noop := func(context.Context) error { return nil }
	done := make(chan []bool)
	go func() {
		done <- []bool{q.Submit("a", 1, noop), q.Submit("b", 1, noop), q.Submit("c", 1, noop)}
	}()
	select {
	case got := <-done:
		if !got[0] || !got[1] || got[2] {
			t.Errorf("Submit results %v, want [true true false]", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Submit blocked on a full queue")
	}
	if n := logs.count("level=ERROR", "job=c", "full"); n != 1 {
		t.Errorf("want one error line for the refused job:\n%s", logs)
	}
}

func TestRetriesCountAgainstCapacity(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q, _ := newQueue(Config{Capacity: 1, BaseDelay: time.Minute, MaxDelay: time.Minute})
		start(t, q)
		q.Submit("waiting", 2, func(context.Context) error { return errFlaky })
		synctest.Wait() // failed once, waiting for its retry
		if q.Submit("more", 1, func(context.Context) error { return nil }) {
			t.Error("Submit accepted a job while a retry held the only slot")
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if !q.Submit("more", 1, func(context.Context) error { return nil }) {
			t.Error("Submit refused a job once the slot was free")
		}
	})
}

func TestDrainWaitsForRunningJobs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q, _ := newQueue(Config{Workers: 2})
		start(t, q)
		var finished atomic.Int32
		for i := range 5 {
			q.Submit(fmt.Sprint("slow", i), 1, func(ctx context.Context) error {
				time.Sleep(10 * time.Second)
				finished.Add(1)
				return nil
			})
		}
		synctest.Wait()
		began := time.Now()
		if err := q.Drain(t.Context()); err != nil {
			t.Fatalf("Drain: %v", err)
		}
		if n := finished.Load(); n != 5 {
			t.Errorf("Drain returned with %d of 5 jobs finished", n)
		}
		if d := time.Since(began); d != 30*time.Second {
			t.Errorf("Drain took %s, want 30s (5 jobs of 10s on 2 workers)", d)
		}
		if q.Submit("late", 1, func(context.Context) error { return nil }) {
			t.Error("Submit accepted a job after Drain")
		}
	})
}

func TestDrainAbandonsPendingRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q, logs := newQueue(Config{BaseDelay: time.Minute, MaxDelay: time.Minute})
		start(t, q)
		var calls atomic.Int32
		q.Submit("retrying", 5, func(context.Context) error { calls.Add(1); return errFlaky })
		synctest.Wait()
		began := time.Now()
		if err := q.Drain(t.Context()); err != nil {
			t.Fatalf("Drain: %v", err)
		}
		if d := time.Since(began); d != 0 {
			t.Errorf("Drain waited %s for a pending retry", d)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if n := calls.Load(); n != 1 {
			t.Errorf("job ran %d times after Drain, want 1", n)
		}
		if n := logs.count("level=ERROR", "job=retrying", "abandoned"); n != 1 {
			t.Errorf("want one abandon line:\n%s", logs)
		}
	})
}

func TestDrainGivesUpWhenContextDone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q, _ := newQueue(Config{})
		start(t, q)
		q.Submit("stuck", 1, func(ctx context.Context) error { <-ctx.Done(); return nil })
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		if err := q.Drain(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Drain = %v, want a deadline error", err)
		}
	})
}

func TestDrainReturnsWhenWorkersStopped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q, _ := newQueue(Config{})
		ctx, cancel := context.WithCancel(t.Context())
		q.Start(ctx)
		cancel()
		synctest.Wait()
		q.Submit("never", 1, func(context.Context) error { return nil })
		if err := q.Drain(t.Context()); err == nil || !strings.Contains(err.Error(), "1 jobs unfinished") {
			t.Errorf("Drain = %v, want an error about the unfinished job", err)
		}
	})
}

func TestJobsAreCancelledWithStartContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q, logs := newQueue(Config{})
		ctx, cancel := context.WithCancel(t.Context())
		q.Start(ctx)
		var calls atomic.Int32
		q.Submit("waits", 5, func(ctx context.Context) error {
			calls.Add(1)
			<-ctx.Done()
			return ctx.Err()
		})
		synctest.Wait()
		cancel()
		time.Sleep(time.Hour)
		synctest.Wait()
		if n := calls.Load(); n != 1 {
			t.Errorf("job ran %d times, want 1 (no retry after shutdown)", n)
		}
		if n := logs.count("level=ERROR", "job=waits", "shutting down"); n != 1 {
			t.Errorf("want one error line:\n%s", logs)
		}
	})
}

func TestPanicDoesNotKillWorker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q, logs := newQueue(Config{Workers: 1})
		start(t, q)
		var panics, after atomic.Int32
		q.Submit("boom", 5, func(context.Context) error { panics.Add(1); panic("kaboom") })
		q.Submit("next", 1, func(context.Context) error { after.Add(1); return nil })
		time.Sleep(time.Hour)
		synctest.Wait()
		if n := panics.Load(); n != 1 {
			t.Errorf("panicking job ran %d times, want 1 (not retried)", n)
		}
		if n := after.Load(); n != 1 {
			t.Errorf("the job after the panic ran %d times, want 1", n)
		}
		if n := logs.count("level=ERROR", "job=boom", "kaboom"); n != 1 {
			t.Errorf("want one panic line:\n%s", logs)
		}
	})
}

func TestConcurrencyBoundedByWorkers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q, _ := newQueue(Config{Workers: 3})
		start(t, q)
		var running, peak, done atomic.Int32
		for i := range 20 {
			q.Submit(fmt.Sprint("job", i), 1, func(context.Context) error {
				n := running.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				time.Sleep(time.Second)
				running.Add(-1)
				done.Add(1)
				return nil
			})
		}
		if err := q.Drain(t.Context()); err != nil {
			t.Fatal(err)
		}
		if done.Load() != 20 || peak.Load() != 3 {
			t.Errorf("%d jobs done, peak concurrency %d; want 20 and 3", done.Load(), peak.Load())
		}
	})
}

func TestBackoff(t *testing.T) {
	q := New(Config{BaseDelay: time.Second, MaxDelay: 10 * time.Second}, slog.New(slog.DiscardHandler))
	for _, tt := range []struct {
		n     int
		limit time.Duration
	}{{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {4, 8 * time.Second}, {5, 10 * time.Second}, {1000, 10 * time.Second}} {
		for range 100 {
			if d := q.backoff(tt.n); d < 0 || d >= tt.limit {
				t.Fatalf("backoff(%d) = %s, want in [0, %s)", tt.n, d, tt.limit)
			}
		}
	}
}

func TestPermanent(t *testing.T) {
	if Permanent(nil) != nil {
		t.Error("Permanent(nil) != nil")
	}
	base := errors.New("550 rejected")
	err := fmt.Errorf("send: %w", Permanent(base))
	if !IsPermanent(err) || !errors.Is(err, base) || err.Error() != "send: 550 rejected" {
		t.Errorf("wrapped permanent error: %v, IsPermanent %v, Is base %v", err, IsPermanent(err), errors.Is(err, base))
	}
	if IsPermanent(base) || IsPermanent(nil) {
		t.Error("IsPermanent of an unmarked error")
	}
}
