package ephemeral

import (
	"context"
	"math"
	"strconv"
	"sync"
	"time"
)

// DefaultMemoryMaxKeys bounds the number of live keys a [Memory] holds.
const DefaultMemoryMaxKeys = 1 << 20

// sweepSample is how many entries each write inspects for expiry, so that
// expired entries are reclaimed without a janitor goroutine or long pauses.
const sweepSample = 16

// Memory is the in-process [Store] for embedded (single-process) mode.
//
// Bounds: at most [DefaultMemoryMaxKeys] live keys. Expired entries are
// removed lazily on access, by a small random sample on every write, and by
// a full sweep when the map is full (at most once per earliest-expiry, so a
// full store of live keys cannot be turned into a CPU sink). When the store
// is full of live keys, writes that would create a key fail with [ErrFull]
// instead of evicting live entries (see the package documentation).
//
// Pub/sub delivers to in-process subscribers only; each subscription has its
// own buffered queue and goroutine, so Publish never blocks. A subscription
// whose queue overflows drops the message and has its onReset called.
type Memory struct {
	now     func() time.Time
	maxKeys int

	mu        sync.Mutex
	items     map[string]memItem
	nextSweep time.Time // no entry expires before this (valid while full)
	closed    bool

	subMu sync.RWMutex
	subs  map[string]map[*memSub]struct{} // nil once closed
}

type memItem struct {
	val []byte
	exp time.Time
}

type memSub struct {
	s      *subscriber
	cancel context.CancelFunc
}

// NewMemory returns an empty in-memory store. now is the clock used for all
// expiry computations (nil means time.Now), so tests can move time.
func NewMemory(now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{
		now:     now,
		maxKeys: DefaultMemoryMaxKeys,
		items:   make(map[string]memItem),
		subs:    make(map[string]map[*memSub]struct{}),
	}
}

// lookup returns the live entry at key, deleting it if expired. m.mu held.
func (m *Memory) lookup(key string, now time.Time) (memItem, bool) {
	it, ok := m.items[key]
	if !ok {
		return memItem{}, false
	}
	if !now.Before(it.exp) {
		delete(m.items, key)
		return memItem{}, false
	}
	return it, true
}

// sweepSome removes expired entries among a small random sample. m.mu held.
func (m *Memory) sweepSome(now time.Time) {
	n := 0
	for k, it := range m.items { // map iteration starts at a random position
		if !now.Before(it.exp) {
			delete(m.items, k)
		}
		if n++; n >= sweepSample {
			return
		}
	}
}

// makeRoom ensures a new key can be inserted. m.mu held.
func (m *Memory) makeRoom(now time.Time) error {
	if len(m.items) < m.maxKeys {
		return nil
	}
	if now.Before(m.nextSweep) {
		return ErrFull // nothing can have expired since the last full sweep
	}
	earliest := time.Time{}
	for k, it := range m.items {
		if !now.Before(it.exp) {
			delete(m.items, k)
			continue
		}
		if earliest.IsZero() || it.exp.Before(earliest) {
			earliest = it.exp
		}
	}
	m.nextSweep = earliest
	if len(m.items) < m.maxKeys {
		return nil
	}
	return ErrFull
}

// store writes an entry (m.mu held, room already ensured when key is new).
func (m *Memory) store(key string, it memItem) {
	m.items[key] = it
	if it.exp.Before(m.nextSweep) {
		m.nextSweep = it.exp
	}
}

// write runs fn under the lock after the common write-path housekeeping.
func (m *Memory) write(ctx context.Context, fn func(now time.Time) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errClosed
	}
	now := m.now()
	m.sweepSome(now)
	return fn(now)
}

func (m *Memory) read(ctx context.Context, fn func(now time.Time) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errClosed
	}
	return fn(m.now())
}

// Incr implements [Store].
func (m *Memory) Incr(ctx context.Context, key string, window time.Duration) (int64, time.Duration, error) {
	ms, err := toMillis(window, "window")
	if err != nil {
		return 0, 0, err
	}
	var count int64
	var ttl time.Duration
	err = m.write(ctx, func(now time.Time) error {
		it, ok := m.lookup(key, now)
		if !ok {
			if err := m.makeRoom(now); err != nil {
				return err
			}
			it = memItem{exp: now.Add(time.Duration(ms) * time.Millisecond)}
		} else {
			n, err := strconv.ParseInt(string(it.val), 10, 64)
			if err != nil {
				return errNotInteger
			}
			if n == math.MaxInt64 {
				return errOverflow
			}
			count = n
		}
		count++
		it.val = strconv.AppendInt(nil, count, 10)
		m.store(key, it)
		ttl = remaining(it.exp.Sub(now))
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	return count, ttl, nil
}

// Count implements [Store].
func (m *Memory) Count(ctx context.Context, key string) (int64, time.Duration, error) {
	var count int64
	var ttl time.Duration
	err := m.read(ctx, func(now time.Time) error {
		it, ok := m.lookup(key, now)
		if !ok {
			return nil
		}
		n, err := strconv.ParseInt(string(it.val), 10, 64)
		if err != nil {
			return errNotInteger
		}
		count, ttl = n, remaining(it.exp.Sub(now))
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	return count, ttl, nil
}

// Get implements [Store]. The returned slice is a copy.
func (m *Memory) Get(ctx context.Context, key string) ([]byte, error) {
	var val []byte
	err := m.read(ctx, func(now time.Time) error {
		it, ok := m.lookup(key, now)
		if !ok {
			return ErrNotFound
		}
		val = clone(it.val)
		return nil
	})
	return val, err
}

// Set implements [Store].
func (m *Memory) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	ms, err := toMillis(ttl, "ttl")
	if err != nil {
		return err
	}
	return m.write(ctx, func(now time.Time) error {
		if _, ok := m.lookup(key, now); !ok {
			if err := m.makeRoom(now); err != nil {
				return err
			}
		}
		m.store(key, memItem{val: clone(value), exp: now.Add(time.Duration(ms) * time.Millisecond)})
		return nil
	})
}

// SetNX implements [Store].
func (m *Memory) SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	ms, err := toMillis(ttl, "ttl")
	if err != nil {
		return false, err
	}
	stored := false
	err = m.write(ctx, func(now time.Time) error {
		if _, ok := m.lookup(key, now); ok {
			return nil
		}
		if err := m.makeRoom(now); err != nil {
			return err
		}
		m.store(key, memItem{val: clone(value), exp: now.Add(time.Duration(ms) * time.Millisecond)})
		stored = true
		return nil
	})
	return stored, err
}

// Take implements [Store].
func (m *Memory) Take(ctx context.Context, key string) ([]byte, error) {
	var val []byte
	err := m.read(ctx, func(now time.Time) error {
		it, ok := m.lookup(key, now)
		if !ok {
			return ErrNotFound
		}
		delete(m.items, key)
		val = it.val // no longer reachable from the map: no copy needed
		return nil
	})
	return val, err
}

// Delete implements [Store].
func (m *Memory) Delete(ctx context.Context, keys ...string) error {
	return m.read(ctx, func(time.Time) error {
		for _, k := range keys {
			delete(m.items, k)
		}
		return nil
	})
}

// Publish implements [Store]. Each subscriber gets its own copy of msg.
func (m *Memory) Publish(ctx context.Context, channel string, msg []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.subMu.RLock()
	defer m.subMu.RUnlock()
	if m.subs == nil {
		return errClosed
	}
	for ms := range m.subs[channel] {
		ms.s.deliver(clone(msg))
	}
	return nil
}

// Subscribe implements [Store]. Messages are never lost on the memory bus
// except by overflow of this subscription's queue, which calls onReset.
func (m *Memory) Subscribe(ctx context.Context, channel string, handler func(msg []byte), onReset func()) error {
	if err := validateSubscribe(ctx, handler); err != nil {
		return err
	}
	subCtx, cancel := context.WithCancel(ctx)
	ms := &memSub{s: newSubscriber(subCtx.Done(), handler, onReset), cancel: cancel}

	m.subMu.Lock()
	if m.subs == nil {
		m.subMu.Unlock()
		cancel()
		return errClosed
	}
	set := m.subs[channel]
	if set == nil {
		set = make(map[*memSub]struct{})
		m.subs[channel] = set
	}
	set[ms] = struct{}{}
	m.subMu.Unlock()

	go ms.s.run()
	context.AfterFunc(subCtx, func() {
		m.subMu.Lock()
		defer m.subMu.Unlock()
		if set := m.subs[channel]; set != nil {
			delete(set, ms)
			if len(set) == 0 {
				delete(m.subs, channel)
			}
		}
	})
	return nil
}

// Ping implements [Store]; it fails only after Close.
func (m *Memory) Ping(ctx context.Context) error {
	return m.read(ctx, func(time.Time) error { return nil })
}

// Close implements [Store]: it cancels every subscription and drops all
// state. It does not wait for running handlers to return. Calling it again
// returns nil.
func (m *Memory) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.items = nil
	m.mu.Unlock()

	m.subMu.Lock()
	subs := m.subs
	m.subs = nil
	m.subMu.Unlock()
	for _, set := range subs {
		for ms := range set {
			ms.cancel()
		}
	}
	return nil
}

func clone(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return append(make([]byte, 0, len(b)), b...)
}
