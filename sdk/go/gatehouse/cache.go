package gatehouse

import (
	"crypto"
	"crypto/sha256"
	"sync"
)

// cacheEntry is what Verify remembers about a token it has fully verified.
// The claims are never handed out; callers get copies.
type cacheEntry struct {
	claims *Claims
	kid    string
	alg    string
	pub    crypto.PublicKey // the key that verified the signature
}

// tokenCache is a bounded map from SHA-256(token) to its verified claims.
// When full, inserting evicts an arbitrary entry (Go randomises map
// iteration order), which is simple and cannot be steered into pathological
// behaviour by an attacker choosing tokens. Expired entries are dropped when
// they are looked up; the bound keeps the rest in check.
type tokenCache struct {
	mu      sync.Mutex
	max     int
	entries map[[sha256.Size]byte]*cacheEntry
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{max: max, entries: make(map[[sha256.Size]byte]*cacheEntry)}
}

func (c *tokenCache) get(id [sha256.Size]byte) (*cacheEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[id]
	return e, ok
}

func (c *tokenCache) put(id [sha256.Size]byte, e *cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[id]; !ok && len(c.entries) >= c.max {
		for k := range c.entries {
			delete(c.entries, k)
			break
		}
	}
	c.entries[id] = e
}

func (c *tokenCache) remove(id [sha256.Size]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, id)
}

func (c *tokenCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
