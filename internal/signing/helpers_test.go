package signing

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/ephemeral/ephemeraltest"
	"github.com/gatehouse-auth/gatehouse/internal/secrets"
	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/store/sqlstore"
)

// testConfig mirrors the defaults: keys published 15 minutes before they
// sign, tokens living 10 minutes plus leeway.
func testConfig(alg string) Config {
	return Config{
		Algorithm:      alg,
		PublishDelay:   15 * time.Minute,
		TokenLifetime:  10*time.Minute + 20*time.Second,
		ReloadInterval: time.Minute,
		JWKSMaxAge:     5 * time.Minute,
	}
}

// openDB opens a migrated SQLite store in t.TempDir().
func openDB(t testing.TB) store.SigningKeys {
	t.Helper()
	db, err := sqlstore.Open(context.Background(), filepath.Join(t.TempDir(), "g.db"), sqlstore.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db.SigningKeys()
}

func testKEK(version int, fill byte) secrets.KEK {
	return secrets.KEK{Version: version, Key: bytes.Repeat([]byte{fill}, 32)}
}

// harness is one replica's keyring on a store, with a stopped clock.
type harness struct {
	db    store.SigningKeys
	keks  []secrets.KEK
	cfg   Config
	clock *ephemeraltest.Clock
	ring  *Keyring
}

func newHarness(t testing.TB, alg string) *harness {
	t.Helper()
	h := &harness{db: openDB(t), keks: []secrets.KEK{testKEK(1, 1)}, cfg: testConfig(alg), clock: ephemeraltest.NewClock(time.Time{})}
	h.ring = NewKeyring(h.db, h.keks, h.cfg, slog.New(slog.DiscardHandler), h.clock.Now)
	if err := h.ring.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	return h
}

// replica returns another keyring on the same store and clock.
func (h *harness) replica(db store.SigningKeys) *Keyring {
	if db == nil {
		db = h.db
	}
	return NewKeyring(db, h.keks, h.cfg, slog.New(slog.DiscardHandler), h.clock.Now)
}

func (h *harness) rotate(t testing.TB) *store.SigningKey {
	t.Helper()
	k, err := Rotate(context.Background(), h.db, h.keks, h.cfg, h.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// wrapStore lets a test count reads and alter the rows a keyring sees, as
// an attacker with write access to the table could.
type wrapStore struct {
	store.SigningKeys
	mu     sync.Mutex
	lists  int
	mutate func([]*store.SigningKey)
}

func (w *wrapStore) ListSigningKeys(ctx context.Context) ([]*store.SigningKey, error) {
	rows, err := w.SigningKeys.ListSigningKeys(ctx)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lists++
	if err == nil && w.mutate != nil {
		w.mutate(rows)
	}
	return rows, err
}

func (w *wrapStore) setMutate(f func([]*store.SigningKey)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.mutate = f
}

func (w *wrapStore) listCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lists
}
