package session

import (
	"crypto/sha256"
	"sync"
	"time"
)

// maxCacheEntries bounds the cache's memory; when full, entries past their
// TTL go first, then arbitrary ones (a miss only costs a store read).
const maxCacheEntries = 100_000

// cache is this replica's copy of recently used sessions, keyed by token
// hash. Correctness never depends on it: an invalidation drops an entry at
// once (locally, and on other replicas through the bus), and an entry older
// than the TTL is re-read. A revoked session id is remembered for one TTL
// (a tombstone) so that a read racing the revocation cannot put the stale
// copy back.
type cache struct {
	ttl time.Duration
	now func() time.Time

	mu         sync.Mutex
	byHash     map[[sha256.Size]byte]cacheEntry
	tombstones map[string]time.Time // session id → until
	swept      time.Time            // last sweep of expired tombstones
}

type cacheEntry struct {
	p       Principal
	fetched time.Time
}

func newCache(ttl time.Duration, now func() time.Time) *cache {
	return &cache{ttl: ttl, now: now, byHash: map[[sha256.Size]byte]cacheEntry{}, tombstones: map[string]time.Time{}}
}

func key(hash []byte) (k [sha256.Size]byte) {
	copy(k[:], hash)
	return k
}

// get returns a private copy of the cached principal, if fresh.
func (c *cache) get(hash []byte) (*Principal, bool) {
	if c.ttl <= 0 {
		return nil, false
	}
	c.mu.Lock()
	e, ok := c.byHash[key(hash)]
	c.mu.Unlock()
	if !ok || c.now().Sub(e.fetched) >= c.ttl {
		return nil, false
	}
	p := e.p
	return &p, true
}

func (c *cache) put(hash []byte, p *Principal) {
	if c.ttl <= 0 {
		return
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if until, ok := c.tombstones[p.Session.ID]; ok && now.Before(until) {
		return
	}
	if len(c.byHash) >= maxCacheEntries {
		c.evict(now)
	}
	c.byHash[key(hash)] = cacheEntry{p: *p, fetched: now}
}

// evict makes room; c.mu is held.
func (c *cache) evict(now time.Time) {
	for k, e := range c.byHash {
		if now.Sub(e.fetched) >= c.ttl {
			delete(c.byHash, k)
		}
	}
	for k := range c.byHash {
		if len(c.byHash) < maxCacheEntries*9/10 {
			break
		}
		delete(c.byHash, k)
	}
}

// update replaces the principal of an existing entry but keeps its fetch
// time: local activity must never extend how long a copy is trusted without
// a store read (else a client changing its User-Agent on every request could
// keep a revoked session's stale copy alive forever).
func (c *cache) update(hash []byte, p *Principal) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := key(hash)
	if e, ok := c.byHash[k]; ok {
		c.byHash[k] = cacheEntry{p: *p, fetched: e.fetched}
	}
}

func (c *cache) drop(hash []byte) {
	c.mu.Lock()
	delete(c.byHash, key(hash))
	c.mu.Unlock()
}

// invalidate drops every cached copy of session sid and keeps it out for
// one TTL.
func (c *cache) invalidate(sid string) {
	if c.ttl <= 0 {
		return
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.Sub(c.swept) >= c.ttl {
		for id, until := range c.tombstones {
			if !now.Before(until) {
				delete(c.tombstones, id)
			}
		}
		c.swept = now
	}
	c.tombstones[sid] = now.Add(c.ttl)
	for k, e := range c.byHash {
		if e.p.Session.ID == sid {
			delete(c.byHash, k)
		}
	}
}

// flush forgets everything: called when invalidations may have been missed.
func (c *cache) flush() {
	c.mu.Lock()
	clear(c.byHash)
	c.mu.Unlock()
}
