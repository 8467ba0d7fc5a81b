// Package ephemeral owns the short-lived state that Gatehouse replicas share:
// counters for rate limits, single-use values (challenges, later), a small
// cache, and a pub/sub bus (used to push session revocations to every
// replica).
//
// There are two implementations of [Store]:
//
//   - [Memory], for embedded mode: one process, no dependencies.
//   - [Redis], for scale-out: every replica points at the same Redis.
//
// Losing this state never loses a user or a session: it holds nothing
// durable. The worst outcomes of a flush are reset rate-limit windows,
// invalidated in-flight challenges and a cold cache; the durable store remains
// the source of truth. Because of that, everything written here must expire:
// a zero or negative TTL or window is rejected rather than meaning "forever".
//
// # Failure semantics
//
// Store methods never guess. When the backend is unavailable (Redis down,
// memory store full, store closed) they return an error, and callers decide
// how to degrade; security-relevant callers (rate limits, single-use
// challenges) are expected to fail closed. In particular the memory store
// never evicts a live entry to make room, because evicting a live counter
// would let an attacker reset their own rate limit by flooding the store with
// fresh keys; it returns [ErrFull] instead.
//
// # Pub/sub
//
// Pub/sub is at-most-once, like Redis pub/sub. Every situation in which a
// subscriber may have missed a message (Redis connection lost, subscriber
// buffer overflow) is reported to that subscriber's onReset callback, so a
// cache fed by the bus can flush itself instead of serving stale entries.
// Loss is never silent. Publishers are never blocked by slow subscribers.
//
// TTLs and windows have millisecond precision: durations are rounded up to a
// whole millisecond on the way in, and remaining TTLs are reported in whole
// milliseconds (a live key always reports at least 1ms).
package ephemeral

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrNotFound is returned by Get and Take when the key is absent or expired.
var ErrNotFound = errors.New("ephemeral: not found")

// ErrFull is returned by the memory store when a write would create a new
// key while the store holds its maximum number of live (unexpired) keys.
// Updates to existing keys, deletes and takes still succeed. Callers should
// treat it like any other store failure (rate limiters: fail closed).
var ErrFull = errors.New("ephemeral: store full")

// errClosed is returned by operations on a closed store.
var errClosed = errors.New("ephemeral: store closed")

// errNotInteger is returned when Incr or Count finds a non-counter value.
var errNotInteger = errors.New("ephemeral: value is not an integer counter")

// errOverflow is returned when Incr would overflow int64.
var errOverflow = errors.New("ephemeral: counter would overflow")

// Store is short-lived shared state. All methods are safe for concurrent use.
type Store interface {
	// Incr adds 1 to the counter at key and returns the new count and the time left in its window.
	// The window starts at the first Incr (fixed window): the key expires window after that; later Incr calls do not extend it.
	Incr(ctx context.Context, key string, window time.Duration) (count int64, ttl time.Duration, err error)
	// Count returns the current count and ttl (0, 0 if absent).
	Count(ctx context.Context, key string) (int64, time.Duration, error)
	// Get returns the value at key, or ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, error)
	// Set stores value at key for ttl (> 0), replacing any previous value.
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// SetNX stores value at key for ttl (> 0) only if key is absent; it reports whether it stored.
	SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error)
	// Take atomically gets and deletes the value at key (single use), or returns ErrNotFound.
	// Of any number of concurrent Takes of the same key, at most one gets the value.
	Take(ctx context.Context, key string) ([]byte, error)
	// Delete removes keys; absent keys are ignored.
	Delete(ctx context.Context, keys ...string) error
	// Publish sends msg to every current subscriber of channel. It never waits for subscribers' handlers.
	Publish(ctx context.Context, channel string, msg []byte) error
	// Subscribe delivers every message published on channel after Subscribe returns, to handler, until ctx is done.
	// It returns once the subscription is active. Handlers run on one goroutine per subscription, in order.
	// onReset (may be nil) is called when the subscription may have missed messages (Redis reconnect), so caches can flush.
	// onReset runs on the handler goroutine (never concurrently with handler), may be called more than
	// once for one incident, and must be idempotent.
	Subscribe(ctx context.Context, channel string, handler func(msg []byte), onReset func()) error
	// Ping reports whether the backend is reachable.
	Ping(ctx context.Context) error
	// Close stops all subscriptions and releases resources. Later operations fail
	// (never with ErrNotFound); calling Close again returns nil.
	Close() error
}

var (
	_ Store = (*Memory)(nil)
	_ Store = (*Redis)(nil)
)

// toMillis validates a TTL or window and rounds it up to whole milliseconds.
func toMillis(d time.Duration, what string) (int64, error) {
	if d <= 0 {
		return 0, fmt.Errorf("ephemeral: %s must be positive, got %v", what, d)
	}
	ms := int64(d / time.Millisecond)
	if d%time.Millisecond != 0 {
		ms++
	}
	return ms, nil
}

// remaining converts the time left until expiry to a reported TTL: whole
// milliseconds, rounded up so that a live key never reports 0.
func remaining(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	if r := d % time.Millisecond; r != 0 {
		d += time.Millisecond - r
	}
	return d
}

// subscriberBuffer is how many messages a subscription queues for a slow
// handler before it starts dropping (and reporting the loss via onReset).
const subscriberBuffer = 1024

// subscriber decouples message reception from the handler: deliver never
// blocks, and the handler goroutine runs handler and onReset in order.
type subscriber struct {
	handler func([]byte)
	onReset func()
	queue   chan []byte
	resetc  chan struct{} // capacity 1: pending resets coalesce
	done    <-chan struct{}
}

func newSubscriber(done <-chan struct{}, handler func([]byte), onReset func()) *subscriber {
	return &subscriber{
		handler: handler,
		onReset: onReset,
		queue:   make(chan []byte, subscriberBuffer),
		resetc:  make(chan struct{}, 1),
		done:    done,
	}
}

// deliver queues msg (which the subscriber now owns) without blocking. If
// the queue is full the message is dropped and a reset is signalled.
func (s *subscriber) deliver(msg []byte) {
	select {
	case s.queue <- msg:
	default:
		s.signalReset()
	}
}

// signalReset schedules a call to onReset on the handler goroutine. The call
// is guaranteed to start after signalReset was called, so anything lost
// before that point is covered by it.
func (s *subscriber) signalReset() {
	if s.onReset == nil {
		return
	}
	select {
	case s.resetc <- struct{}{}:
	default: // a reset is already pending and has not started yet
	}
}

// run is the handler goroutine. It exits when done is closed; queued
// messages are then discarded.
func (s *subscriber) run() {
	for {
		select {
		case <-s.done:
			return
		case <-s.resetc:
			s.onReset()
		case msg := <-s.queue:
			select {
			case <-s.done:
				return
			default:
			}
			s.handler(msg)
		}
	}
}

func validateSubscribe(ctx context.Context, handler func([]byte)) error {
	if handler == nil {
		return errors.New("ephemeral: Subscribe: nil handler")
	}
	return ctx.Err()
}
