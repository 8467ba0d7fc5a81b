// Package ephemeraltest holds the conformance suite every
// [ephemeral.Store] implementation must pass, plus helpers for tests in other
// packages: a fake clock and isolated Redis-backed stores.
package ephemeraltest

import (
	"sync"
	"time"
)

// Advancer is implemented by stores under test whose clock is fake. The
// suite calls Advance instead of sleeping when waiting for expiry.
type Advancer interface {
	Advance(d time.Duration)
}

// Clock is a fake clock for [ephemeral.NewMemory]: pass clock.Now.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock stopped at start (zero means a fixed date).
func NewClock(start time.Time) *Clock {
	if start.IsZero() {
		start = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	}
	return &Clock{now: start}
}

// Now returns the clock's current time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
