package signing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/secrets"
	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// Rotate creates a key of cfg.Algorithm, sealed under the newest KEK, that
// is published at once (replicas pick it up on their next reload) and
// signs from now + PublishDelay. The current key keeps signing until then,
// then retires.
//
// It first checks that keks open every published key, so a caller with the
// wrong keys/ directory (e.g. a freshly generated kek-v1.key) cannot store
// a key the replicas would fail to open.
func Rotate(ctx context.Context, db store.SigningKeys, keks []secrets.KEK, cfg Config, now time.Time) (*store.SigningKey, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	now = now.UTC()
	rows, err := db.ListSigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("signing: list keys: %w", err)
	}
	if _, err := buildSet(rows, keks, cfg.TokenLifetime, now); err != nil {
		return nil, fmt.Errorf("%w; not rotating: check that this data directory's keys/ folder is the one the servers use", err)
	}
	key, err := newKey(cfg.Algorithm, keks, now, now.Add(cfg.PublishDelay))
	if err != nil {
		return nil, err
	}
	if err := db.CreateSigningKey(ctx, key); err != nil {
		return nil, fmt.Errorf("signing: store key %s: %w", key.ID, err)
	}
	return key, nil
}

// List returns the status of every stored key at now, oldest ActivatesAt
// first. It opens no private key.
func List(ctx context.Context, db store.SigningKeys, cfg Config, now time.Time) ([]Status, error) {
	if cfg.TokenLifetime <= 0 {
		return nil, errors.New("signing: the token lifetime must be positive")
	}
	keys, err := db.ListSigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("signing: list keys: %w", err)
	}
	return schedule(keys, cfg.TokenLifetime, now), nil
}
