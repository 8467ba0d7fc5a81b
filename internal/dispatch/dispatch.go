// Package dispatch owns background work taken off the request path: a
// bounded in-memory queue of jobs (sending an e-mail, a text message) run by
// a fixed number of workers, retried with exponential backoff and jitter
// until they succeed, fail permanently or run out of attempts. Nothing is
// persisted: jobs still queued when the process stops are lost, and logged.
package dispatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"time"
)

// permanentError marks an error as not worth retrying.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth retrying (e.g. SMTP 5xx, HTTP 4xx).
// Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err, or an error it wraps, was marked by
// Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// Config sizes a Queue. Zero fields take their defaults.
type Config struct {
	Workers int // jobs run at once; default 4
	// Capacity bounds the jobs accepted and not yet finished: queued,
	// running or waiting for a retry. Default 1000.
	Capacity  int
	BaseDelay time.Duration // first retry delay; default 1s
	MaxDelay  time.Duration // cap of the retry delay; default 5m
}

func (c *Config) setDefaults() {
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.Capacity <= 0 {
		c.Capacity = 1000
	}
	if c.BaseDelay <= 0 {
		c.BaseDelay = time.Second
	}
	if c.MaxDelay <= 0 {
		c.MaxDelay = 5 * time.Minute
	}
	if c.MaxDelay < c.BaseDelay {
		c.MaxDelay = c.BaseDelay
	}
}

type task struct {
	name     string
	attempts int // allowed
	attempt  int // made so far
	run      func(ctx context.Context) error
}

// Queue runs submitted jobs on a pool of workers.
type Queue struct {
	cfg Config
	log *slog.Logger

	// jobs holds the jobs ready to run. Its buffer is cfg.Capacity, and at
	// most cfg.Capacity jobs are ever in flight, so sending never blocks.
	jobs chan *task

	mu       sync.Mutex
	inFlight int                   // accepted and not finished
	retrying map[*task]*time.Timer // waiting for a retry
	draining bool                  // Drain was called: accept nothing more
	idle     chan struct{}         // closed when inFlight drops to 0 while draining
	started  bool                  // Start was called
	stopped  chan struct{}         // closed when the workers have exited
}

// New returns a Queue; call Start to run its workers.
func New(cfg Config, log *slog.Logger) *Queue {
	cfg.setDefaults()
	return &Queue{
		cfg:      cfg,
		log:      log,
		jobs:     make(chan *task, cfg.Capacity),
		retrying: map[*task]*time.Timer{},
		stopped:  make(chan struct{}),
	}
}

// Start starts the workers, which run jobs until ctx is done; it does not
// block. Jobs get ctx, so they are cancelled with it. Start panics if called
// twice.
func (q *Queue) Start(ctx context.Context) {
	q.mu.Lock()
	if q.started {
		q.mu.Unlock()
		panic("dispatch: Start called twice")
	}
	q.started = true
	q.mu.Unlock()

	var wg sync.WaitGroup
	for range q.cfg.Workers {
		wg.Go(func() { q.work(ctx) })
	}
	go func() {
		wg.Wait()
		close(q.stopped)
	}()
}

// Submit queues job to run up to attempts times (at least once) until it
// returns nil or a Permanent error. It never blocks: when the queue is full
// or draining, it logs at error level and returns false.
func (q *Queue) Submit(name string, attempts int, job func(ctx context.Context) error) bool {
	j := &task{name: name, attempts: max(attempts, 1), run: job}
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.draining:
		q.log.Error("job refused: the queue is draining", slog.String("job", name))
		return false
	case q.inFlight >= q.cfg.Capacity:
		q.log.Error("job refused: the queue is full", slog.String("job", name), slog.Int("capacity", q.cfg.Capacity))
		return false
	}
	q.inFlight++
	q.jobs <- j
	return true
}

// Drain stops accepting jobs, abandons (and logs) the jobs waiting for a
// retry, and waits until every queued and running job has finished. It
// returns early with an error when ctx is done, or when the workers have
// stopped (their Start context is done) with jobs left that will never run.
func (q *Queue) Drain(ctx context.Context) error {
	q.mu.Lock()
	q.draining = true
	for j, t := range q.retrying {
		// A timer that already fired abandons its job itself, as it sees
		// draining.
		if t.Stop() {
			delete(q.retrying, j)
			q.abandonLocked(j)
		}
	}
	if q.inFlight == 0 {
		q.mu.Unlock()
		return nil
	}
	if q.idle == nil {
		q.idle = make(chan struct{})
	}
	idle := q.idle
	q.mu.Unlock()

	select {
	case <-idle:
		return nil
	case <-q.stopped:
		q.mu.Lock()
		n := q.inFlight
		q.mu.Unlock()
		if n == 0 {
			return nil
		}
		return fmt.Errorf("dispatch: workers stopped with %d jobs unfinished", n)
	case <-ctx.Done():
		q.mu.Lock()
		n := q.inFlight
		q.mu.Unlock()
		return fmt.Errorf("dispatch: drain gave up with %d jobs unfinished: %w", n, ctx.Err())
	}
}

func (q *Queue) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-q.jobs:
			q.runOnce(ctx, j)
		}
	}
}

// runOnce makes one attempt at j and decides what comes next: done, a
// retry, or giving up.
func (q *Queue) runOnce(ctx context.Context, j *task) {
	j.attempt++
	err, panicked := call(ctx, j.run)
	if err == nil {
		q.finish()
		return
	}
	attrs := []any{slog.String("job", j.name), slog.Int("attempt", j.attempt), slog.Int("attempts", j.attempts), slog.Any("error", err)}
	switch {
	case panicked:
		q.log.Error("job panicked; not retrying", attrs...)
	case IsPermanent(err):
		q.log.Error("job failed permanently; giving up", attrs...)
	case j.attempt >= j.attempts:
		q.log.Error("job failed; out of attempts, giving up", attrs...)
	case ctx.Err() != nil:
		q.log.Error("job failed while shutting down; giving up", attrs...)
	default:
		delay := q.backoff(j.attempt)
		q.log.Warn("job failed; will retry", append(attrs, slog.Duration("retry_in", delay))...)
		q.retry(j, delay)
		return
	}
	q.finish()
}

// call runs fn, turning a panic into an error.
func call(ctx context.Context, fn func(context.Context) error) (err error, panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			err, panicked = fmt.Errorf("panic: %v\n%s", r, debug.Stack()), true
		}
	}()
	return fn(ctx), false
}

// backoff is the delay before retry n (n >= 1): BaseDelay·2^(n-1) capped at
// MaxDelay, with full jitter: uniform in [0, that).
func (q *Queue) backoff(n int) time.Duration {
	d := q.cfg.BaseDelay
	for range n - 1 {
		if d >= q.cfg.MaxDelay/2 {
			d = q.cfg.MaxDelay
			break
		}
		d *= 2
	}
	d = min(d, q.cfg.MaxDelay)
	return rand.N(d) // math/rand: the jitter is not security-relevant
}

// retry puts j back on the queue after delay, without holding a worker.
func (q *Queue) retry(j *task, delay time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.draining {
		q.abandonLocked(j)
		return
	}
	q.retrying[j] = time.AfterFunc(delay, func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		delete(q.retrying, j)
		if q.draining {
			q.abandonLocked(j)
			return
		}
		q.jobs <- j
	})
}

// abandonLocked gives up on j, waiting for a retry during Drain. q.mu is held.
func (q *Queue) abandonLocked(j *task) {
	q.log.Error("job abandoned before its retry: the queue is draining", slog.String("job", j.name), slog.Int("attempt", j.attempt), slog.Int("attempts", j.attempts))
	q.finishLocked()
}

func (q *Queue) finish() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.finishLocked()
}

func (q *Queue) finishLocked() {
	q.inFlight--
	if q.inFlight == 0 && q.idle != nil {
		close(q.idle)
		q.idle = nil
	}
}
