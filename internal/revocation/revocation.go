// Package revocation owns the set of revoked session ids that makes logout
// instant for stateless access tokens: every replica keeps the sessions
// revoked within the last access-token lifetime in memory, fed by the
// session manager (in-process and over the pub/sub bus) and reconciled
// with the store, and streams the set to SDK verifiers as server-sent
// events (the revocation feed).
package revocation

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// Entry is one revoked session, remembered until Until: after that every
// access token naming it has expired.
type Entry struct {
	SessionID string
	Until     time.Time
}

// Source lists recent revocations (store.Sessions satisfies it).
type Source interface {
	RevokedSessionsSince(ctx context.Context, since time.Time) ([]store.Revocation, error)
}

// maxWatchBacklog is how many entries a feed subscriber may fall behind
// before it is dropped (it reconnects and gets a fresh snapshot).
const maxWatchBacklog = 1024

// Set is the revoked-session set of one replica. It is safe for concurrent
// use; lookups take a read lock and touch no I/O.
type Set struct {
	window time.Duration
	now    func() time.Time

	mu       sync.RWMutex
	revoked  map[string]time.Time // session id → until
	watchers map[chan Entry]struct{}
	lastSync time.Time // of the last successful Sync
}

// NewSet returns an empty set that remembers each revocation for window
// (the longest access-token lifetime plus verifier leeway). now may be nil.
func NewSet(window time.Duration, now func() time.Time) *Set {
	if now == nil {
		now = time.Now
	}
	return &Set{window: window, now: now, revoked: map[string]time.Time{}, watchers: map[chan Entry]struct{}{}}
}

// Add records that sid was revoked at revokedAt and tells every watcher.
// Adding a known id again only extends its Until.
func (s *Set) Add(sid string, revokedAt time.Time) {
	until := revokedAt.Add(s.window)
	if !until.After(s.now()) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if prev, ok := s.revoked[sid]; ok && !until.After(prev) {
		return
	}
	s.revoked[sid] = until
	e := Entry{SessionID: sid, Until: until}
	for ch := range s.watchers {
		select {
		case ch <- e:
		default:
			// Too far behind: drop it; its reader reconnects and starts
			// again from a snapshot instead of silently missing one.
			delete(s.watchers, ch)
			close(ch)
		}
	}
}

// Revoked reports whether sid is revoked (gatehouse.RevocationChecker). It
// never fails: the local set is always current up to the bus.
func (s *Set) Revoked(_ context.Context, sid string) (bool, error) {
	s.mu.RLock()
	until, ok := s.revoked[sid]
	s.mu.RUnlock()
	return ok && s.now().Before(until), nil
}

// Snapshot returns every live entry.
func (s *Set) Snapshot() []Entry {
	now := s.now()
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Entry, 0, len(s.revoked))
	for sid, until := range s.revoked {
		if now.Before(until) {
			out = append(out, Entry{SessionID: sid, Until: until})
		}
	}
	return out
}

// Watch returns the live entries and a channel of every later addition,
// atomically (nothing falls between the two). The channel is closed if the
// watcher falls too far behind; cancel releases it.
func (s *Set) Watch() (snapshot []Entry, ch <-chan Entry, cancel func()) {
	c := make(chan Entry, maxWatchBacklog)
	s.mu.Lock()
	s.watchers[c] = struct{}{}
	s.mu.Unlock()
	// Entries added after registration arrive on c as well as possibly in
	// the snapshot; duplicates are harmless to a set.
	snapshot = s.Snapshot()
	return snapshot, c, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if _, ok := s.watchers[c]; ok {
			delete(s.watchers, c)
			close(c)
		}
	}
}

// Sync adds every session the store says was revoked within the window,
// and forgets expired entries. It repairs whatever the bus lost: a restart,
// a Redis outage, a dropped message.
func (s *Set) Sync(ctx context.Context, src Source) error {
	now := s.now()
	revs, err := src.RevokedSessionsSince(ctx, now.Add(-s.window))
	if err != nil {
		return fmt.Errorf("revocation: sync: %w", err)
	}
	for _, r := range revs {
		s.Add(r.SessionID, r.RevokedAt)
	}
	s.prune(now)
	s.mu.Lock()
	s.lastSync = now
	s.mu.Unlock()
	return nil
}

// SyncedWithin reports whether a Sync succeeded within d: then the set
// lags the store by at most d even if the bus is down.
func (s *Set) SyncedWithin(d time.Duration) bool {
	s.mu.RLock()
	last := s.lastSync
	s.mu.RUnlock()
	return !last.IsZero() && s.now().Sub(last) <= d
}

// Run syncs every interval until ctx is done, logging failures (the set
// keeps what it has; the bus keeps feeding it).
func (s *Set) Run(ctx context.Context, src Source, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.Sync(ctx, src); err != nil && ctx.Err() == nil {
				log.WarnContext(ctx, "revocation sync failed", slog.Any("error", err))
			}
		}
	}
}

func (s *Set) prune(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sid, until := range s.revoked {
		if !now.Before(until) {
			delete(s.revoked, sid)
		}
	}
}
