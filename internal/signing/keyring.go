// Package signing owns the access-token signing keys: their generation,
// the sealing of their private halves (AES-256-GCM under the newest
// key-encryption key of internal/secrets, bound to the kid and algorithm),
// their schedule (pending → active → retiring → expired), the in-memory
// keyring a replica signs with and verifies against, and the JWKS.
//
// Every state follows from the stored times, so replicas agree without
// coordinating: a key is published from its creation, signs from its
// ActivatesAt until a newer key activates, and stays published for
// TokenLifetime after that, so every token it signed can still be
// verified. Rotate publishes a new key PublishDelay before it signs, which
// must exceed the JWKS cache lifetime plus the reload interval so every
// verifier has the key before the first token it signs.
package signing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-auth/gatehouse/internal/secrets"
	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/sdk/go/gatehouse"
)

// Config are the signing-key settings.
type Config struct {
	Algorithm      string        // of keys created by Ensure and Rotate: "EdDSA" or "ES256"
	PublishDelay   time.Duration // a rotated-in key is published this long before it signs
	TokenLifetime  time.Duration // longest access-token lifetime incl. leeway: a retired key stays published this long after its successor activates
	ReloadInterval time.Duration // how often Run re-reads the table (config.KeyReloadInterval)
	JWKSMaxAge     time.Duration // Cache-Control max-age of the JWKS
}

func (c Config) validate() error {
	var errs []error
	if err := checkAlgorithm(c.Algorithm); err != nil {
		errs = append(errs, err)
	}
	if c.PublishDelay < 0 {
		errs = append(errs, errors.New("signing: the publish delay must not be negative"))
	}
	if c.TokenLifetime <= 0 {
		errs = append(errs, errors.New("signing: the token lifetime must be positive"))
	}
	return errors.Join(errs...)
}

// unknownKeyReloadInterval is the shortest interval between two reloads
// caused by a lookup of an unknown kid, so tokens with made-up kids cannot
// hammer the database.
const unknownKeyReloadInterval = 10 * time.Second

// defaultReloadInterval is used by Run when Config.ReloadInterval is not
// positive.
const defaultReloadInterval = time.Minute

// Keyring is a replica's view of the signing keys: it signs access tokens
// with the active key and serves the published public keys. It is safe for
// concurrent use; Sign and Key read an immutable set through an atomic
// pointer that Reload swaps.
type Keyring struct {
	db   store.SigningKeys
	keks []secrets.KEK
	cfg  Config
	log  *slog.Logger
	now  func() time.Time

	set atomic.Pointer[keySet]

	reloadMu sync.Mutex // serialises Reload, so an older read never replaces a newer one

	missMu     sync.Mutex
	lastMissAt time.Time // of the last reload caused by an unknown kid
}

// A Keyring is the key source of the server's own token verifier.
var _ gatehouse.KeySource = (*Keyring)(nil)

// keySet is an immutable snapshot of the keys that were not expired when
// it was loaded, in schedule order.
type keySet struct {
	keys  []*loadedKey
	times timeline
	byID  map[string]int
}

// NewKeyring returns a keyring over db. It holds no key until Ensure or
// Reload. now is the clock (nil means time.Now).
func NewKeyring(db store.SigningKeys, keks []secrets.KEK, cfg Config, log *slog.Logger, now func() time.Time) *Keyring {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Keyring{db: db, keks: keks, cfg: cfg, log: log, now: now}
}

// Ensure loads the keys and, if none is active now, creates one that
// activates immediately: the zero-configuration first start, when no
// verifier can have cached a JWKS yet. It fails if a key cannot be opened.
//
// Replicas starting together on an empty table may each create a key.
// That is harmless: the one activated last (by time, then kid) signs, the
// others retire and stay published for TokenLifetime, so the tokens they
// signed until their replica's next reload still verify. Until every
// replica has reloaded, a JWKS served by one may lack another's key, which
// a verifier finds again by refetching on the unknown kid.
func (k *Keyring) Ensure(ctx context.Context) error {
	if err := k.cfg.validate(); err != nil {
		return err
	}
	if err := k.Reload(ctx); err != nil {
		return err
	}
	now := k.now().UTC()
	if k.set.Load().times.active(now) >= 0 {
		return nil
	}
	key, err := newKey(k.cfg.Algorithm, k.keks, now, now)
	if err != nil {
		return err
	}
	if err := k.db.CreateSigningKey(ctx, key); err != nil {
		return fmt.Errorf("signing: store key %s: %w", key.ID, err)
	}
	k.log.Info("created a signing key that signs from now on", slog.String("kid", key.ID), slog.String("alg", key.Algorithm), slog.Int("kek_version", key.KEKVersion))
	return k.Reload(ctx)
}

// Reload re-reads the keys from the store, opens the private halves of
// those not expired and swaps the loaded set. On error the loaded set is
// kept: a key that cannot be opened (missing or wrong KEK, altered row)
// fails the whole reload rather than silently dropping the key.
func (k *Keyring) Reload(ctx context.Context) error {
	k.reloadMu.Lock()
	defer k.reloadMu.Unlock()
	rows, err := k.db.ListSigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("signing: list keys: %w", err)
	}
	set, err := buildSet(rows, k.keks, k.cfg.TokenLifetime, k.now())
	if err != nil {
		return err
	}
	if old := k.set.Swap(set); old == nil || !slices.Equal(old.ids(), set.ids()) {
		k.log.Info("signing keys loaded", slog.Any("kids", set.ids()))
	}
	return nil
}

// buildSet opens the keys not expired at now. Expired keys are skipped
// unopened: they never sign or verify again (expiry is final, as a key's
// successor never changes), and their KEK may have been retired.
func buildSet(rows []*store.SigningKey, keks []secrets.KEK, lifetime time.Duration, now time.Time) (*keySet, error) {
	rows = slices.Clone(rows)
	sortKeys(rows)
	all := make(timeline, len(rows))
	for i, r := range rows {
		all[i] = r.ActivatesAt
	}
	set := &keySet{byID: make(map[string]int, len(rows))}
	for i, r := range rows {
		if !all.published(i, lifetime, now) {
			continue
		}
		if _, dup := set.byID[r.ID]; dup {
			return nil, fmt.Errorf("signing: duplicate key id %s", r.ID)
		}
		lk, err := open(r, keks)
		if err != nil {
			return nil, err
		}
		set.byID[r.ID] = len(set.keys)
		set.keys = append(set.keys, lk)
		set.times = append(set.times, r.ActivatesAt)
	}
	return set, nil
}

func (s *keySet) ids() []string {
	ids := make([]string, len(s.keys))
	for i, k := range s.keys {
		ids[i] = k.id
	}
	return ids
}

// Run reloads the keys every ReloadInterval until ctx is done. A failed
// reload is logged and the loaded keys are kept.
func (k *Keyring) Run(ctx context.Context) {
	interval := k.cfg.ReloadInterval
	if interval <= 0 {
		interval = defaultReloadInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := k.Reload(ctx); err != nil && ctx.Err() == nil {
				k.log.Error("signing keys reload failed; keeping the loaded keys", slog.Any("err", err))
			}
		}
	}
}

// Sign returns the compact JWS of payload (the claims JSON, marshalled by
// the caller) signed with the active key, with headers alg, kid and typ
// "at+jwt".
func (k *Keyring) Sign(payload []byte) (string, error) {
	set := k.set.Load()
	if set == nil {
		return "", errors.New("signing: no keys loaded (Ensure was not called)")
	}
	i := set.times.active(k.now())
	if i < 0 {
		return "", errors.New("signing: no signing key is active yet: every key is pending")
	}
	jws, err := set.keys[i].signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("signing: sign with key %s: %w", set.keys[i].id, err)
	}
	return jws.CompactSerialize()
}

// Key returns the published public key with the given kid (the SDK's
// KeySource). For a kid not loaded it reloads, at most once per 10
// seconds, so a key rotated in by another replica is found; then it fails
// with an error wrapping gatehouse.ErrUnknownKey. Expired keys are unknown.
func (k *Keyring) Key(ctx context.Context, kid string) (*jose.JSONWebKey, error) {
	if jwk := k.published(kid); jwk != nil {
		return jwk, nil
	}
	if k.reloadForMiss() {
		if err := k.Reload(ctx); err != nil {
			k.log.Warn("signing keys reload for an unknown kid failed", slog.Any("err", err))
		} else if jwk := k.published(kid); jwk != nil {
			return jwk, nil
		}
	}
	return nil, fmt.Errorf("signing: kid %.64q: %w", kid, gatehouse.ErrUnknownKey)
}

// published returns a copy of the public key kid if it is published now.
func (k *Keyring) published(kid string) *jose.JSONWebKey {
	set := k.set.Load()
	if set == nil {
		return nil
	}
	i, ok := set.byID[kid]
	if !ok || !set.times.published(i, k.cfg.TokenLifetime, k.now()) {
		return nil
	}
	jwk := *set.keys[i].public
	return &jwk
}

// reloadForMiss reports whether a lookup of an unknown kid may reload now,
// and if so records it.
func (k *Keyring) reloadForMiss() bool {
	k.missMu.Lock()
	defer k.missMu.Unlock()
	now := k.now()
	if !k.lastMissAt.IsZero() && now.Sub(k.lastMissAt) < unknownKeyReloadInterval {
		return false
	}
	k.lastMissAt = now
	return true
}
