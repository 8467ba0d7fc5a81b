package throttle

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Limiter makes GCRA decisions (the generic cell rate algorithm: a key's
// state is one "theoretical arrival time", so a decision is one atomic
// read-modify-write). Both implementations make the same decisions for the
// same history: [Memory] in this process, [Redis] shared by every replica.
type Limiter interface {
	// Allow spends one unit of key's quota under rule if one is left, and
	// reports the state after the decision. A refusal spends nothing.
	Allow(ctx context.Context, key string, rule Rule) (Result, error)
	// Reset forgets keys (their quota is whole again).
	Reset(ctx context.Context, keys ...string) error
}

// Result is a limiter's decision and the key's state after it.
type Result struct {
	Allowed bool
	// Remaining is the number of further hits allowed right now.
	Remaining int64
	// RetryAfter is how long until the next hit would be allowed; 0 when
	// Allowed.
	RetryAfter time.Duration
	// ResetAfter is how long until the quota is whole again.
	ResetAfter time.Duration
}

// gcra is the decision for one hit at now, given the key's theoretical
// arrival time tat (zero: a fresh key). It mirrors redis_rate's script, so
// that the fallback decides like Redis did: the emission interval is
// Window/Limit and the burst is Limit.
func gcra(tat, now time.Time, rule Rule) (Result, time.Time) {
	interval := rule.Window / time.Duration(rule.Limit)
	burst := rule.Window
	if tat.Before(now) {
		tat = now
	}
	next := tat.Add(interval)
	allowAt := next.Add(-burst)
	diff := now.Sub(allowAt)
	if diff < 0 {
		return Result{RetryAfter: -diff, ResetAfter: tat.Sub(now)}, tat
	}
	return Result{Allowed: true, Remaining: int64(diff / interval), ResetAfter: next.Sub(now)}, next
}

// errMemoryFull is returned when the memory limiter holds maxKeys live
// keys and a hit would add another.
var errMemoryFull = errors.New("throttle: in-memory limiter full")

// Memory is the in-process [Limiter]: the embedded default, and every
// replica's fallback while Redis is unreachable. It never evicts a live
// key to make room (that would let a flood of fresh keys reset a limit);
// when full it fails, and the throttle fails closed.
type Memory struct {
	now     func() time.Time
	maxKeys int

	mu   sync.Mutex
	tats map[string]time.Time
}

// DefaultMemoryKeys bounds the keys of a Memory limiter: about 100 MB at
// worst.
const DefaultMemoryKeys = 1 << 20

// NewMemory returns an in-memory limiter reading time from now (nil:
// time.Now) and holding at most maxKeys keys.
func NewMemory(now func() time.Time, maxKeys int) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{now: now, maxKeys: maxKeys, tats: make(map[string]time.Time)}
}

// Allow implements [Limiter].
func (m *Memory) Allow(_ context.Context, key string, rule Rule) (Result, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	tat, ok := m.tats[key]
	if !ok && len(m.tats) >= m.maxKeys {
		m.sweep(now)
		if len(m.tats) >= m.maxKeys {
			return Result{}, errMemoryFull
		}
	}
	res, next := gcra(tat, now, rule)
	if res.Allowed {
		m.tats[key] = next
	}
	return res, nil
}

// sweep drops the keys whose quota is whole again: forgetting them
// changes no decision.
func (m *Memory) sweep(now time.Time) {
	for k, tat := range m.tats {
		if !tat.After(now) {
			delete(m.tats, k)
		}
	}
}

// Reset implements [Limiter].
func (m *Memory) Reset(_ context.Context, keys ...string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		delete(m.tats, k)
	}
	return nil
}

// Len reports the number of keys held (for tests and benchmarks).
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.tats)
}
