package ephemeral_test

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/ephemeral"
	"github.com/gatehouse-auth/gatehouse/internal/ephemeral/ephemeraltest"
)

// fakeMemory is a Memory whose clock the suite can advance.
type fakeMemory struct {
	*ephemeral.Memory
	*ephemeraltest.Clock
}

func newFakeMemory(t *testing.T) fakeMemory {
	clock := ephemeraltest.NewClock(time.Time{})
	m := ephemeral.NewMemory(clock.Now)
	t.Cleanup(func() { _ = m.Close() })
	return fakeMemory{m, clock}
}

func TestMemoryConformance(t *testing.T) {
	ephemeraltest.Run(t, func(t *testing.T) ephemeral.Store { return newFakeMemory(t) })
}

func TestMemoryNilClockUsesTimeNow(t *testing.T) {
	m := ephemeral.NewMemory(nil)
	t.Cleanup(func() { _ = m.Close() })
	ctx := t.Context()
	_, ttl, err := m.Incr(ctx, "c", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if ttl < time.Hour-time.Minute || ttl > time.Hour {
		t.Errorf("ttl = %v, want about 1h", ttl)
	}
	if err := m.Set(ctx, "k", []byte("v"), time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if _, err := m.Get(ctx, "k"); !errors.Is(err, ephemeral.ErrNotFound) {
		t.Errorf("Get after real TTL passed: err = %v, want ErrNotFound", err)
	}
}

func TestMemoryMillisecondPrecision(t *testing.T) {
	s := newFakeMemory(t)
	ctx := t.Context()
	_, ttl, err := s.Incr(ctx, "c", 1500*time.Microsecond)
	if err != nil {
		t.Fatal(err)
	}
	if ttl != 2*time.Millisecond {
		t.Errorf("window 1.5ms: ttl = %v, want 2ms (rounded up)", ttl)
	}
	s.Advance(1999 * time.Microsecond)
	if n, ttl, _ := s.Count(ctx, "c"); n != 1 || ttl != time.Millisecond {
		t.Errorf("1µs before expiry: Count = %d, %v; want 1, 1ms (live keys never report 0)", n, ttl)
	}
	s.Advance(time.Microsecond)
	if n, ttl, _ := s.Count(ctx, "c"); n != 0 || ttl != 0 {
		t.Errorf("at expiry: Count = %d, %v; want 0, 0", n, ttl)
	}
}

// TestMemoryBoundFailsClosedWithoutEvicting: a store full of live keys
// refuses new keys with ErrFull and never evicts a live entry (evicting a
// live counter would let an attacker reset their own rate limit by flooding).
func TestMemoryBoundFailsClosedWithoutEvicting(t *testing.T) {
	s := newFakeMemory(t)
	ephemeral.SetMaxKeys(s.Memory, 10)
	ctx := t.Context()
	for i := range 10 {
		if _, _, err := s.Incr(ctx, "victim:"+strconv.Itoa(i), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.Incr(ctx, "new", time.Minute); !errors.Is(err, ephemeral.ErrFull) {
		t.Errorf("Incr(new) when full: err = %v, want ErrFull", err)
	}
	if err := s.Set(ctx, "new", []byte("v"), time.Minute); !errors.Is(err, ephemeral.ErrFull) {
		t.Errorf("Set(new) when full: err = %v, want ErrFull", err)
	}
	if ok, err := s.SetNX(ctx, "new", []byte("v"), time.Minute); ok || !errors.Is(err, ephemeral.ErrFull) {
		t.Errorf("SetNX(new) when full = %v, %v; want false, ErrFull", ok, err)
	}
	// Existing keys keep working, and none was evicted.
	for i := range 10 {
		n, _, err := s.Incr(ctx, "victim:"+strconv.Itoa(i), time.Minute)
		if err != nil || n != 2 {
			t.Errorf("Incr(existing victim:%d) = %d, %v; want 2", i, n, err)
		}
	}
	// Freeing a slot makes room.
	if err := s.Delete(ctx, "victim:0"); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, "new", []byte("v"), 30*time.Second); err != nil {
		t.Errorf("Set after Delete: %v", err)
	}
	// Once entries expire, the full sweep reclaims them.
	s.Advance(45 * time.Second) // "new" expired, victims live
	if err := s.Set(ctx, "new2", []byte("v"), time.Minute); err != nil {
		t.Errorf("Set after an entry expired: %v", err)
	}
	if _, _, err := s.Incr(ctx, "new3", time.Minute); !errors.Is(err, ephemeral.ErrFull) {
		t.Errorf("Incr(new3) when full again: err = %v, want ErrFull", err)
	}
	s.Advance(time.Minute)
	if _, _, err := s.Incr(ctx, "new3", time.Minute); err != nil {
		t.Errorf("Incr after everything expired: %v", err)
	}
	if n := ephemeral.Len(s.Memory); n > 10 {
		t.Errorf("Len = %d exceeds bound 10", n)
	}
}

func TestMemorySweepsExpiredOnWrite(t *testing.T) {
	s := newFakeMemory(t)
	ctx := t.Context()
	for i := range 1000 {
		if err := s.Set(ctx, "k"+strconv.Itoa(i), []byte("v"), time.Second); err != nil {
			t.Fatal(err)
		}
	}
	s.Advance(2 * time.Second)
	for range 1000 {
		if _, _, err := s.Incr(ctx, "hot", time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	n := ephemeral.Len(s.Memory)
	t.Logf("%d of 1000 expired entries left after 1000 writes", n)
	if n > 100 {
		t.Errorf("after 1000 writes, %d entries remain of 1000 expired: expired entries are not swept", n)
	}
}

func TestMemorySlowSubscriberOverflowCallsOnReset(t *testing.T) {
	s := newFakeMemory(t)
	ctx := t.Context()
	release := make(chan struct{})
	var got, resets atomic.Int64
	var first atomic.Bool
	handler := func([]byte) {
		if first.CompareAndSwap(false, true) {
			<-release
		}
		got.Add(1)
	}
	if err := s.Subscribe(ctx, "ch", handler, func() { resets.Add(1) }); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 3000 {
			if err := s.Publish(ctx, "ch", []byte("m")); err != nil {
				t.Error(err)
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Publish blocked on a stalled subscriber")
	}
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for resets.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if resets.Load() == 0 {
		t.Fatal("overflow dropped messages without calling onReset")
	}
	if g := got.Load(); g >= 3000 {
		t.Errorf("got %d messages; expected the 1024-message queue to overflow", g)
	}
}

func TestMemoryCloseEndsSubscriptions(t *testing.T) {
	m := ephemeral.NewMemory(nil)
	var calls atomic.Int32
	if err := m.Subscribe(context.Background(), "ch", func([]byte) { calls.Add(1) }, nil); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Publish(context.Background(), "ch", []byte("x")); err == nil {
		t.Error("Publish after Close succeeded")
	}
	time.Sleep(50 * time.Millisecond)
	if calls.Load() != 0 {
		t.Error("handler ran after Close")
	}
}
