package ephemeraltest

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/ephemeral"
)

// Window is the TTL/window the suite uses. It is short so that stores on a
// real clock (Redis) can be tested with sleeps.
const Window = 300 * time.Millisecond

// deliveryTimeout bounds how long the suite waits for a pub/sub message.
const deliveryTimeout = 5 * time.Second

// Run runs the conformance suite. newStore must return a fresh, isolated,
// empty store for each subtest and arrange for its cleanup. If the store
// implements [Advancer], the suite moves its clock instead of sleeping.
func Run(t *testing.T, newStore func(t *testing.T) ephemeral.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s ephemeral.Store)
	}{
		// Counters.
		{"IncrCountsFromOne", testIncrCountsFromOne},
		{"IncrFixedWindowExpires", testIncrFixedWindowExpires},
		{"IncrDoesNotExtendWindow", testIncrDoesNotExtendWindow},
		{"IncrRejectsNonPositiveWindow", testIncrRejectsNonPositiveWindow},
		{"IncrOnNonCounterFails", testIncrOnNonCounterFails},
		{"CountAbsentIsZero", testCountAbsentIsZero},
		{"CountReportsCountAndTTL", testCountReportsCountAndTTL},
		{"RaceIncrExactCount", testRaceIncrExactCount},
		// Values.
		{"GetMissingIsErrNotFound", testGetMissingIsErrNotFound},
		{"SetGetBinaryValues", testSetGetBinaryValues},
		{"SetOverwritesAndResetsTTL", testSetOverwritesAndResetsTTL},
		{"SetExpires", testSetExpires},
		{"SetRejectsNonPositiveTTL", testSetRejectsNonPositiveTTL},
		{"ReturnedValuesAreCopies", testReturnedValuesAreCopies},
		{"SetNXOnlyWhenAbsent", testSetNXOnlyWhenAbsent},
		{"SetNXAfterExpiry", testSetNXAfterExpiry},
		{"RaceSetNXSingleWinner", testRaceSetNXSingleWinner},
		{"TakeIsSingleUse", testTakeIsSingleUse},
		{"TakeExpiredIsErrNotFound", testTakeExpiredIsErrNotFound},
		{"RaceTakeSingleUse", testRaceTakeSingleUse},
		{"DeleteRemovesKeys", testDeleteRemovesKeys},
		// Pub/sub.
		{"SubscribeThenPublishDelivered", testSubscribeThenPublishDelivered},
		{"PubSubOrder", testPubSubOrder},
		{"PubSubChannelIsolation", testPubSubChannelIsolation},
		{"PubSubFanOut", testPubSubFanOut},
		{"PubSubBinaryPayload", testPubSubBinaryPayload},
		{"PubSubStopsWhenContextDone", testPubSubStopsWhenContextDone},
		{"SubscribeRejectsDoneContextAndNilHandler", testSubscribeRejects},
		{"SlowSubscriberNeverBlocksPublishNorLosesSilently", testSlowSubscriber},
		// Lifecycle.
		{"Ping", testPing},
		{"ClosedStoreFailsClosed", testClosedStoreFailsClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

// wait lets d pass for s: on the fake clock if it has one, else for real.
func wait(s ephemeral.Store, d time.Duration) {
	if a, ok := s.(Advancer); ok {
		a.Advance(d)
		return
	}
	time.Sleep(d)
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func checkTTL(t *testing.T, what string, got, lo, hi time.Duration) {
	t.Helper()
	if got < lo || got > hi {
		t.Errorf("%s: ttl = %v, want in [%v, %v]", what, got, lo, hi)
	}
	if got%time.Millisecond != 0 {
		t.Errorf("%s: ttl = %v, want millisecond precision", what, got)
	}
}

func mustIncr(t *testing.T, s ephemeral.Store, key string, window time.Duration) (int64, time.Duration) {
	t.Helper()
	n, ttl, err := s.Incr(ctxFor(t), key, window)
	if err != nil {
		t.Fatalf("Incr(%q): %v", key, err)
	}
	return n, ttl
}

func mustCount(t *testing.T, s ephemeral.Store, key string) (int64, time.Duration) {
	t.Helper()
	n, ttl, err := s.Count(ctxFor(t), key)
	if err != nil {
		t.Fatalf("Count(%q): %v", key, err)
	}
	return n, ttl
}

func testIncrCountsFromOne(t *testing.T, s ephemeral.Store) {
	for want := int64(1); want <= 5; want++ {
		n, ttl := mustIncr(t, s, "c", Window)
		if n != want {
			t.Fatalf("Incr #%d = %d", want, n)
		}
		checkTTL(t, "Incr", ttl, time.Millisecond, Window)
	}
	if n, _ := mustIncr(t, s, "other", Window); n != 1 {
		t.Errorf("independent key: Incr = %d, want 1", n)
	}
}

func testIncrFixedWindowExpires(t *testing.T, s ephemeral.Store) {
	for range 3 {
		mustIncr(t, s, "c", Window)
	}
	wait(s, Window+50*time.Millisecond)
	if n, ttl := mustCount(t, s, "c"); n != 0 || ttl != 0 {
		t.Errorf("after window: Count = %d, %v; want 0, 0", n, ttl)
	}
	n, ttl := mustIncr(t, s, "c", Window)
	if n != 1 {
		t.Errorf("first Incr of new window = %d, want 1", n)
	}
	checkTTL(t, "new window", ttl, Window-100*time.Millisecond, Window)
}

func testIncrDoesNotExtendWindow(t *testing.T, s ephemeral.Store) {
	// The key must survive the first wait even on a loaded machine (a real
	// clock can overshoot a sleep), hence a window well above the wait.
	const window = 2 * Window
	mustIncr(t, s, "c", window)
	wait(s, 200*time.Millisecond)
	n, ttl := mustIncr(t, s, "c", window)
	if n != 2 {
		t.Fatalf("second Incr = %d, want 2", n)
	}
	checkTTL(t, "second Incr", ttl, time.Millisecond, window-200*time.Millisecond)
	// A different window on a later Incr must not move the expiry either.
	_, ttl = mustIncr(t, s, "c", time.Hour)
	checkTTL(t, "Incr with longer window", ttl, time.Millisecond, window-200*time.Millisecond)
	wait(s, window-200*time.Millisecond+50*time.Millisecond)
	if n, _ := mustCount(t, s, "c"); n != 0 {
		t.Errorf("window was extended: Count = %d after the original window passed", n)
	}
}

func testIncrRejectsNonPositiveWindow(t *testing.T, s ephemeral.Store) {
	for _, w := range []time.Duration{0, -time.Second} {
		if _, _, err := s.Incr(ctxFor(t), "c", w); err == nil {
			t.Errorf("Incr with window %v: want error (counters must expire)", w)
		}
	}
	if n, _ := mustCount(t, s, "c"); n != 0 {
		t.Errorf("rejected Incr left count %d", n)
	}
}

func testIncrOnNonCounterFails(t *testing.T, s ephemeral.Store) {
	ctx := ctxFor(t)
	if err := s.Set(ctx, "v", []byte("not a number"), Window); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Incr(ctx, "v", Window); err == nil {
		t.Error("Incr on a non-integer value: want error")
	}
	if _, _, err := s.Count(ctx, "v"); err == nil {
		t.Error("Count on a non-integer value: want error")
	}
}

func testCountAbsentIsZero(t *testing.T, s ephemeral.Store) {
	if n, ttl := mustCount(t, s, "absent"); n != 0 || ttl != 0 {
		t.Errorf("Count(absent) = %d, %v; want 0, 0", n, ttl)
	}
}

func testCountReportsCountAndTTL(t *testing.T, s ephemeral.Store) {
	const window = 10 * Window // must stay live across the wait
	mustIncr(t, s, "c", window)
	mustIncr(t, s, "c", window)
	wait(s, 100*time.Millisecond)
	n, ttl := mustCount(t, s, "c")
	if n != 2 {
		t.Errorf("Count = %d, want 2", n)
	}
	checkTTL(t, "Count", ttl, time.Millisecond, window-100*time.Millisecond)
	// Count must not modify the counter.
	if n, _ := mustCount(t, s, "c"); n != 2 {
		t.Errorf("second Count = %d, want 2", n)
	}
}

func testRaceIncrExactCount(t *testing.T, s ephemeral.Store) {
	const workers, each = 50, 20
	ctx := ctxFor(t)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		seen  = make(map[int64]int)
		start = make(chan struct{})
	)
	for range workers {
		wg.Go(func() {
			<-start
			for range each {
				n, _, err := s.Incr(ctx, "race", time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				seen[n]++
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	if n, _ := mustCount(t, s, "race"); n != workers*each {
		t.Errorf("Count = %d, want %d", n, workers*each)
	}
	// Every count 1..N was handed out exactly once: no lost or duplicated increments.
	for i := int64(1); i <= workers*each; i++ {
		if seen[i] != 1 {
			t.Errorf("count %d returned %d times, want 1", i, seen[i])
			break
		}
	}
}

func testGetMissingIsErrNotFound(t *testing.T, s ephemeral.Store) {
	if _, err := s.Get(ctxFor(t), "missing"); !errors.Is(err, ephemeral.ErrNotFound) {
		t.Errorf("Get(missing) err = %v, want ErrNotFound", err)
	}
	if _, err := s.Take(ctxFor(t), "missing"); !errors.Is(err, ephemeral.ErrNotFound) {
		t.Errorf("Take(missing) err = %v, want ErrNotFound", err)
	}
}

func allBytes() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func testSetGetBinaryValues(t *testing.T, s ephemeral.Store) {
	ctx := ctxFor(t)
	values := []struct {
		name string
		v    []byte
	}{
		{"empty", []byte{}},
		{"nul", []byte{0}},
		{"all-bytes", allBytes()},
		{"text", []byte("hello")},
		{"large", bytes.Repeat([]byte("x"), 64<<10)},
	}
	for _, v := range values {
		if err := s.Set(ctx, "k:"+v.name, v.v, Window); err != nil {
			t.Fatalf("Set(%s): %v", v.name, err)
		}
	}
	for _, v := range values {
		got, err := s.Get(ctx, "k:"+v.name)
		if err != nil {
			t.Fatalf("Get(%s): %v", v.name, err)
		}
		if !bytes.Equal(got, v.v) {
			t.Errorf("Get(%s) = %q, want %q", v.name, trunc(got), trunc(v.v))
		}
	}
}

func trunc(b []byte) []byte {
	if len(b) > 32 {
		return b[:32]
	}
	return b
}

func testSetOverwritesAndResetsTTL(t *testing.T, s ephemeral.Store) {
	ctx := ctxFor(t)
	// Longer TTL replaces a shorter one.
	if err := s.Set(ctx, "k", []byte("v1"), Window); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, "k", []byte("v2"), time.Minute); err != nil {
		t.Fatal(err)
	}
	// Shorter TTL replaces a longer one.
	if err := s.Set(ctx, "short", []byte("v1"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, "short", []byte("v2"), Window); err != nil {
		t.Fatal(err)
	}
	wait(s, Window+50*time.Millisecond)
	if got, err := s.Get(ctx, "k"); err != nil || string(got) != "v2" {
		t.Errorf("Get(k) = %q, %v; want v2 (kept alive by the second Set)", got, err)
	}
	if _, err := s.Get(ctx, "short"); !errors.Is(err, ephemeral.ErrNotFound) {
		t.Errorf("Get(short) err = %v; want ErrNotFound (second Set shortened the TTL)", err)
	}
}

func testSetExpires(t *testing.T, s ephemeral.Store) {
	ctx := ctxFor(t)
	if err := s.Set(ctx, "k", []byte("v"), Window); err != nil {
		t.Fatal(err)
	}
	wait(s, Window+50*time.Millisecond)
	if _, err := s.Get(ctx, "k"); !errors.Is(err, ephemeral.ErrNotFound) {
		t.Errorf("Get after TTL: err = %v, want ErrNotFound", err)
	}
}

func testSetRejectsNonPositiveTTL(t *testing.T, s ephemeral.Store) {
	ctx := ctxFor(t)
	for _, ttl := range []time.Duration{0, -time.Second} {
		if err := s.Set(ctx, "k", []byte("v"), ttl); err == nil {
			t.Errorf("Set with ttl %v: want error (values must expire)", ttl)
		}
		if _, err := s.SetNX(ctx, "k", []byte("v"), ttl); err == nil {
			t.Errorf("SetNX with ttl %v: want error (values must expire)", ttl)
		}
	}
	if _, err := s.Get(ctx, "k"); !errors.Is(err, ephemeral.ErrNotFound) {
		t.Errorf("rejected Set stored a value: err = %v", err)
	}
}

func testReturnedValuesAreCopies(t *testing.T, s ephemeral.Store) {
	ctx := ctxFor(t)
	v := []byte("secret")
	if err := s.Set(ctx, "k", v, Window); err != nil {
		t.Fatal(err)
	}
	v[0] = 'X'
	got, err := s.Get(ctx, "k")
	if err != nil || string(got) != "secret" {
		t.Fatalf("Get after caller mutated input = %q, %v", got, err)
	}
	got[0] = 'Y'
	got2, err := s.Get(ctx, "k")
	if err != nil || string(got2) != "secret" {
		t.Errorf("Get after caller mutated output = %q, %v", got2, err)
	}
}

func testSetNXOnlyWhenAbsent(t *testing.T, s ephemeral.Store) {
	ctx := ctxFor(t)
	ok, err := s.SetNX(ctx, "k", []byte("first"), Window)
	if err != nil || !ok {
		t.Fatalf("SetNX(absent) = %v, %v; want true", ok, err)
	}
	ok, err = s.SetNX(ctx, "k", []byte("second"), Window)
	if err != nil || ok {
		t.Fatalf("SetNX(present) = %v, %v; want false", ok, err)
	}
	if got, err := s.Get(ctx, "k"); err != nil || string(got) != "first" {
		t.Errorf("Get = %q, %v; want first", got, err)
	}
}

func testSetNXAfterExpiry(t *testing.T, s ephemeral.Store) {
	ctx := ctxFor(t)
	if ok, err := s.SetNX(ctx, "k", []byte("a"), Window); err != nil || !ok {
		t.Fatalf("SetNX = %v, %v", ok, err)
	}
	wait(s, Window+50*time.Millisecond)
	if ok, err := s.SetNX(ctx, "k", []byte("b"), Window); err != nil || !ok {
		t.Errorf("SetNX after expiry = %v, %v; want true", ok, err)
	}
}

func testRaceSetNXSingleWinner(t *testing.T, s ephemeral.Store) {
	const workers, rounds = 50, 10
	ctx := ctxFor(t)
	for round := range rounds {
		key := "nx:" + strconv.Itoa(round)
		var wins atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range workers {
			wg.Go(func() {
				<-start
				ok, err := s.SetNX(ctx, key, []byte(strconv.Itoa(i)), time.Minute)
				if err != nil {
					t.Error(err)
				}
				if ok {
					wins.Add(1)
				}
			})
		}
		close(start)
		wg.Wait()
		if w := wins.Load(); w != 1 {
			t.Fatalf("round %d: %d SetNX winners, want exactly 1", round, w)
		}
	}
}

func testTakeIsSingleUse(t *testing.T, s ephemeral.Store) {
	ctx := ctxFor(t)
	if err := s.Set(ctx, "challenge", []byte("nonce"), Window); err != nil {
		t.Fatal(err)
	}
	got, err := s.Take(ctx, "challenge")
	if err != nil || string(got) != "nonce" {
		t.Fatalf("Take = %q, %v; want nonce", got, err)
	}
	if _, err := s.Take(ctx, "challenge"); !errors.Is(err, ephemeral.ErrNotFound) {
		t.Errorf("second Take err = %v, want ErrNotFound", err)
	}
	if _, err := s.Get(ctx, "challenge"); !errors.Is(err, ephemeral.ErrNotFound) {
		t.Errorf("Get after Take err = %v, want ErrNotFound", err)
	}
}

func testTakeExpiredIsErrNotFound(t *testing.T, s ephemeral.Store) {
	ctx := ctxFor(t)
	if err := s.Set(ctx, "challenge", []byte("nonce"), Window); err != nil {
		t.Fatal(err)
	}
	wait(s, Window+50*time.Millisecond)
	if _, err := s.Take(ctx, "challenge"); !errors.Is(err, ephemeral.ErrNotFound) {
		t.Errorf("Take after expiry err = %v, want ErrNotFound", err)
	}
}

// testRaceTakeSingleUse is the replay attack: 50 concurrent redemptions of
// one single-use value must produce exactly one success.
func testRaceTakeSingleUse(t *testing.T, s ephemeral.Store) {
	const workers, rounds = 50, 20
	ctx := ctxFor(t)
	for round := range rounds {
		key := "take:" + strconv.Itoa(round)
		want := "value-" + strconv.Itoa(round)
		if err := s.Set(ctx, key, []byte(want), time.Minute); err != nil {
			t.Fatal(err)
		}
		var winners, notFound atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range workers {
			wg.Go(func() {
				<-start
				v, err := s.Take(ctx, key)
				switch {
				case err == nil:
					if string(v) != want {
						t.Errorf("Take = %q, want %q", v, want)
					}
					winners.Add(1)
				case errors.Is(err, ephemeral.ErrNotFound):
					notFound.Add(1)
				default:
					t.Error(err)
				}
			})
		}
		close(start)
		wg.Wait()
		if w, n := winners.Load(), notFound.Load(); w != 1 || n != workers-1 {
			t.Fatalf("round %d: %d winners, %d ErrNotFound; want 1 and %d", round, w, n, workers-1)
		}
	}
}

func testDeleteRemovesKeys(t *testing.T, s ephemeral.Store) {
	ctx := ctxFor(t)
	for _, k := range []string{"a", "b", "c"} {
		if err := s.Set(ctx, k, []byte(k), Window); err != nil {
			t.Fatal(err)
		}
	}
	mustIncr(t, s, "n", Window)
	if err := s.Delete(ctx); err != nil {
		t.Errorf("Delete() with no keys: %v", err)
	}
	if err := s.Delete(ctx, "a", "b", "absent", "n"); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b"} {
		if _, err := s.Get(ctx, k); !errors.Is(err, ephemeral.ErrNotFound) {
			t.Errorf("Get(%s) after Delete err = %v, want ErrNotFound", k, err)
		}
	}
	if n, _ := mustCount(t, s, "n"); n != 0 {
		t.Errorf("counter after Delete = %d, want 0", n)
	}
	if got, err := s.Get(ctx, "c"); err != nil || string(got) != "c" {
		t.Errorf("untouched key: Get = %q, %v", got, err)
	}
}

// collector records messages delivered to a subscription.
type collector struct {
	mu     sync.Mutex
	msgs   []string
	resets atomic.Int32
	notify chan struct{}
}

func newCollector() *collector { return &collector{notify: make(chan struct{}, 1)} }

func (c *collector) handle(msg []byte) {
	c.mu.Lock()
	c.msgs = append(c.msgs, string(msg))
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

func (c *collector) reset() { c.resets.Add(1) }

func (c *collector) snapshot() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.msgs...)
}

// waitFor waits until the collector holds at least n messages.
func (c *collector) waitFor(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.After(deliveryTimeout)
	for {
		if got := c.snapshot(); len(got) >= n {
			return got
		}
		select {
		case <-c.notify:
		case <-deadline:
			t.Fatalf("timed out waiting for %d messages; got %q", n, c.snapshot())
		}
	}
}

func subscribe(t *testing.T, ctx context.Context, s ephemeral.Store, channel string) *collector {
	t.Helper()
	c := newCollector()
	if err := s.Subscribe(ctx, channel, c.handle, c.reset); err != nil {
		t.Fatalf("Subscribe(%q): %v", channel, err)
	}
	return c
}

func publish(t *testing.T, s ephemeral.Store, channel, msg string) {
	t.Helper()
	if err := s.Publish(ctxFor(t), channel, []byte(msg)); err != nil {
		t.Fatalf("Publish(%q): %v", channel, err)
	}
}

func testSubscribeThenPublishDelivered(t *testing.T, s ephemeral.Store) {
	c := subscribe(t, ctxFor(t), s, "revocations")
	// No sleep: Subscribe returning means the subscription is active.
	publish(t, s, "revocations", "session-1")
	if got := c.waitFor(t, 1); got[0] != "session-1" {
		t.Errorf("got %q", got)
	}
}

func testPubSubOrder(t *testing.T, s ephemeral.Store) {
	const n = 200
	c := subscribe(t, ctxFor(t), s, "ordered")
	for i := range n {
		publish(t, s, "ordered", strconv.Itoa(i))
	}
	got := c.waitFor(t, n)
	for i := range n {
		if got[i] != strconv.Itoa(i) {
			t.Fatalf("message %d = %q; delivery out of order", i, got[i])
		}
	}
	if c.resets.Load() != 0 {
		t.Errorf("onReset called %d times without any loss", c.resets.Load())
	}
}

func testPubSubChannelIsolation(t *testing.T, s ephemeral.Store) {
	ctx := ctxFor(t)
	chans := []string{"chan", "chan2", "cha", "chan:sub", "*", "Chan"}
	cols := make(map[string]*collector)
	for _, ch := range chans {
		cols[ch] = subscribe(t, ctx, s, ch)
	}
	for _, ch := range chans {
		publish(t, s, ch, "to "+ch)
	}
	for _, ch := range chans {
		publish(t, s, ch, "end")
	}
	for _, ch := range chans {
		got := cols[ch].waitFor(t, 2)
		if len(got) != 2 || got[0] != "to "+ch || got[1] != "end" {
			t.Errorf("subscriber of %q got %q; want only its own messages", ch, got)
		}
	}
}

func testPubSubFanOut(t *testing.T, s ephemeral.Store) {
	ctx := ctxFor(t)
	a := subscribe(t, ctx, s, "fan")
	b := subscribe(t, ctx, s, "fan")
	publish(t, s, "fan", "1")
	publish(t, s, "fan", "2")
	for name, c := range map[string]*collector{"a": a, "b": b} {
		if got := c.waitFor(t, 2); len(got) != 2 || got[0] != "1" || got[1] != "2" {
			t.Errorf("subscriber %s got %q", name, got)
		}
	}
}

func testPubSubBinaryPayload(t *testing.T, s ephemeral.Store) {
	c := subscribe(t, ctxFor(t), s, "bin")
	payloads := [][]byte{allBytes(), {}, {0, 0}, []byte("\r\n*3\r\n$7\r\nmessage\r\n")}
	for _, p := range payloads {
		if err := s.Publish(ctxFor(t), "bin", p); err != nil {
			t.Fatal(err)
		}
	}
	got := c.waitFor(t, len(payloads))
	for i, p := range payloads {
		if got[i] != string(p) {
			t.Errorf("payload %d = %q, want %q", i, trunc([]byte(got[i])), trunc(p))
		}
	}
}

func testPubSubStopsWhenContextDone(t *testing.T, s ephemeral.Store) {
	ctx, cancel := context.WithCancel(ctxFor(t))
	c := subscribe(t, ctx, s, "ch")
	publish(t, s, "ch", "before")
	c.waitFor(t, 1)
	cancel()
	publish(t, s, "ch", "after")
	// Prove the bus still works for others, then check nothing leaked through.
	other := subscribe(t, ctxFor(t), s, "ch")
	publish(t, s, "ch", "probe")
	other.waitFor(t, 1)
	time.Sleep(100 * time.Millisecond)
	if got := c.snapshot(); len(got) != 1 {
		t.Errorf("cancelled subscription received %q", got)
	}
}

func testSubscribeRejects(t *testing.T, s ephemeral.Store) {
	ctx, cancel := context.WithCancel(ctxFor(t))
	cancel()
	if err := s.Subscribe(ctx, "ch", func([]byte) {}, nil); err == nil {
		t.Error("Subscribe with a done context: want error")
	}
	if err := s.Subscribe(ctxFor(t), "ch", nil, nil); err == nil {
		t.Error("Subscribe with a nil handler: want error")
	}
}

// testSlowSubscriber checks that a handler that stalls neither blocks
// publishers nor loses messages silently: whatever it misses must be
// reported through onReset, and what it gets must be in order.
func testSlowSubscriber(t *testing.T, s ephemeral.Store) {
	const n = 5000
	release := make(chan struct{})
	c := newCollector()
	var first sync.Once
	handler := func(msg []byte) {
		first.Do(func() { <-release })
		c.handle(msg)
	}
	if err := s.Subscribe(ctxFor(t), "slow", handler, c.reset); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(ctxFor(t), 20*time.Second)
	defer cancel()
	for i := range n {
		if err := s.Publish(ctx, "slow", []byte(strconv.Itoa(i))); err != nil {
			close(release)
			t.Fatalf("Publish %d while a handler is stalled: %v", i, err)
		}
	}
	close(release)
	// Publish a sentinel until it arrives (the queue may still be full).
	deadline := time.Now().Add(deliveryTimeout)
	for done := false; !done; {
		if time.Now().After(deadline) {
			t.Fatalf("sentinel never delivered; got %d messages", len(c.snapshot()))
		}
		publish(t, s, "slow", "end")
		time.Sleep(20 * time.Millisecond)
		got := c.snapshot()
		done = len(got) > 0 && got[len(got)-1] == "end"
	}
	var nums []int
	for _, m := range c.snapshot() {
		if m == "end" {
			continue
		}
		i, err := strconv.Atoi(m)
		if err != nil {
			t.Fatalf("unexpected message %q", m)
		}
		if len(nums) > 0 && i <= nums[len(nums)-1] {
			t.Fatalf("out of order or duplicated: %d after %d", i, nums[len(nums)-1])
		}
		nums = append(nums, i)
	}
	if len(nums) < n {
		// Missed messages must be reported (onReset runs on the handler
		// goroutine, so it may trail the sentinel slightly).
		for end := time.Now().Add(deliveryTimeout); c.resets.Load() == 0 && time.Now().Before(end); {
			time.Sleep(10 * time.Millisecond)
		}
		if c.resets.Load() == 0 {
			t.Errorf("%d of %d messages lost without onReset", n-len(nums), n)
		}
	}
	t.Logf("delivered %d/%d messages, %d resets", len(nums), n, c.resets.Load())
}

func testPing(t *testing.T, s ephemeral.Store) {
	if err := s.Ping(ctxFor(t)); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

// testClosedStoreFailsClosed: after Close, operations must fail with an
// error that is not ErrNotFound (which a caller could read as "absent", e.g.
// "no rate-limit record") and never report success.
func testClosedStoreFailsClosed(t *testing.T, s ephemeral.Store) {
	ctx := ctxFor(t)
	if err := s.Set(ctx, "k", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	notAbsent := func(op string, err error) {
		t.Helper()
		if err == nil || errors.Is(err, ephemeral.ErrNotFound) {
			t.Errorf("%s on closed store: err = %v; want a failure that is not ErrNotFound", op, err)
		}
	}
	_, err := s.Get(ctx, "k")
	notAbsent("Get", err)
	_, err = s.Take(ctx, "k")
	notAbsent("Take", err)
	_, _, err = s.Incr(ctx, "n", time.Minute)
	notAbsent("Incr", err)
	_, _, err = s.Count(ctx, "n")
	notAbsent("Count", err)
	ok, err := s.SetNX(ctx, "x", []byte("v"), time.Minute)
	notAbsent("SetNX", err)
	if ok {
		t.Error("SetNX on closed store reported success")
	}
	notAbsent("Set", s.Set(ctx, "k", []byte("v"), time.Minute))
	notAbsent("Publish", s.Publish(ctx, "ch", []byte("m")))
	notAbsent("Subscribe", s.Subscribe(ctx, "ch", func([]byte) {}, nil))
	notAbsent("Ping", s.Ping(ctx))
}
