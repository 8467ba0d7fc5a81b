package ephemeral

import "time"

// Test hooks, compiled only into this package's tests.

// SetHealthInterval shortens the subscription health check of r. Call it
// before Subscribe.
func SetHealthInterval(r *Redis, d time.Duration) { r.healthInterval = d }

// SetMaxKeys changes the key bound of m.
func SetMaxKeys(m *Memory, n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.maxKeys = n
}

// Len reports how many entries (live or not yet swept) m holds.
func Len(m *Memory) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.items)
}
