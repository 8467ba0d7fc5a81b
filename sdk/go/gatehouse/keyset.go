package gatehouse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/sync/singleflight"
)

const (
	// maxJWKSSize caps the JWKS response body.
	maxJWKSSize = 1 << 20
	// maxJWKSAge caps the Cache-Control max-age honoured, so that a key
	// removed from the server's set is eventually forgotten here too.
	maxJWKSAge                = 24 * time.Hour
	defaultMinRefetchInterval = 10 * time.Second
	jwksFetchTimeout          = 30 * time.Second
)

// usableKey reports whether k may enter a key set: a public Ed25519 key
// pinned to EdDSA or a public P-256 key pinned to ES256, for signatures,
// with a well-formed kid.
func usableKey(k *jose.JSONWebKey) error {
	if !validKeyID(k.KeyID) {
		return errors.New("missing or malformed kid")
	}
	if !k.Valid() || !k.IsPublic() {
		return errors.New("not a valid public key")
	}
	if k.Use != "" && k.Use != "sig" {
		return errors.New(`"use" is not "sig"`)
	}
	if _, err := publicKeyFor(k, k.Algorithm); err != nil {
		return err
	}
	return nil
}

// StaticKeySet is a fixed KeySource, for tests and for services that hold
// the verification keys themselves.
type StaticKeySet struct {
	keys map[string]*jose.JSONWebKey
}

// NewStaticKeySet returns a KeySource serving keys. Private keys are reduced
// to their public halves. Each key must have a unique, well-formed kid, an
// "alg" of EdDSA (Ed25519) or ES256 (P-256), and a "use" of "sig" or none.
func NewStaticKeySet(keys ...jose.JSONWebKey) (*StaticKeySet, error) {
	s := &StaticKeySet{keys: make(map[string]*jose.JSONWebKey, len(keys))}
	for _, k := range keys {
		pub := k.Public()
		if err := usableKey(&pub); err != nil {
			return nil, fmt.Errorf("gatehouse: key %q: %w", k.KeyID, err)
		}
		if _, dup := s.keys[pub.KeyID]; dup {
			return nil, fmt.Errorf("gatehouse: duplicate kid %q", pub.KeyID)
		}
		s.keys[pub.KeyID] = &pub
	}
	return s, nil
}

// Key implements KeySource.
func (s *StaticKeySet) Key(_ context.Context, kid string) (*jose.JSONWebKey, error) {
	k, ok := s.keys[kid]
	if !ok {
		return nil, ErrUnknownKey
	}
	out := *k
	return &out, nil
}

// RemoteKeySetOptions configures a RemoteKeySet.
type RemoteKeySetOptions struct {
	// HTTPClient fetches the JWKS; nil means a client with a 30s timeout.
	HTTPClient *http.Client
	// MinRefetchInterval is the least time between two fetches, whatever
	// the reason (unknown kid, expired max-age, earlier failure). Default 10s.
	MinRefetchInterval time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// RemoteKeySet is a KeySource backed by a JWKS URL. It fetches lazily on
// first use, refreshes when the response's Cache-Control max-age lapses,
// and refetches on an unknown kid, all at most once per MinRefetchInterval;
// concurrent callers share one fetch. A failed fetch keeps the previous
// set. Only keys usable with EdDSA or ES256 signatures are kept.
type RemoteKeySet struct {
	url         string
	client      *http.Client
	minInterval time.Duration
	now         func() time.Time
	group       singleflight.Group

	mu        sync.Mutex
	keys      map[string]*jose.JSONWebKey // nil until the first successful fetch
	expires   time.Time                   // when the current set's max-age lapses
	nextFetch time.Time                   // no fetch starts before this
	lastErr   error                       // outcome of the last fetch
}

// NewRemoteKeySet returns a KeySource that reads the JWKS at jwksURL.
// Nothing is fetched until the first Key call.
func NewRemoteKeySet(jwksURL string, opts RemoteKeySetOptions) *RemoteKeySet {
	s := &RemoteKeySet{
		url:         jwksURL,
		client:      opts.HTTPClient,
		minInterval: opts.MinRefetchInterval,
		now:         opts.Now,
	}
	if s.client == nil {
		s.client = &http.Client{Timeout: jwksFetchTimeout}
	}
	if s.minInterval <= 0 {
		s.minInterval = defaultMinRefetchInterval
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// Key implements KeySource.
func (s *RemoteKeySet) Key(ctx context.Context, kid string) (*jose.JSONWebKey, error) {
	if k, fresh := s.lookup(kid); k != nil && fresh {
		return k, nil
	}
	// Unknown kid, or the set's max-age has lapsed: refresh, unless a fetch
	// happened less than minInterval ago. Concurrent callers share the call.
	// The fetch is not tied to ctx, so one caller giving up does not fail
	// the fetch for the others.
	select {
	case <-s.group.DoChan("jwks", s.refresh):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if k, fresh := s.lookup(kid); k != nil {
		if fresh || s.staleUsable() {
			return k, nil
		}
		return nil, fmt.Errorf("gatehouse: JWKS could not be refreshed for %s past its max-age; refusing its keys", maxStaleKeys)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys == nil {
		if s.lastErr == nil { // the fetch we waited for was not ours to report
			return nil, errors.New("gatehouse: JWKS not loaded yet")
		}
		return nil, fmt.Errorf("gatehouse: JWKS unavailable: %w", s.lastErr)
	}
	return nil, ErrUnknownKey
}

// maxStaleKeys bounds how long a set whose max-age has lapsed keeps being
// used while refetching fails: a key the issuer withdrew (say, a stolen
// one) must not stay trusted forever because the JWKS is unreachable.
const maxStaleKeys = time.Hour

func (s *RemoteKeySet) staleUsable() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now().Before(s.expires.Add(maxStaleKeys))
}

// lookup returns a copy of the key with kid, if any, and whether the set is
// within its max-age.
func (s *RemoteKeySet) lookup(kid string) (key *jose.JSONWebKey, fresh bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[kid]
	if !ok {
		return nil, false
	}
	out := *k
	return &out, s.now().Before(s.expires)
}

// refresh fetches the JWKS unless the rate limit forbids it.
func (s *RemoteKeySet) refresh() (any, error) {
	s.mu.Lock()
	now := s.now()
	if now.Before(s.nextFetch) {
		s.mu.Unlock()
		return nil, nil
	}
	s.nextFetch = now.Add(s.minInterval)
	s.mu.Unlock()

	keys, maxAge, err := s.fetch()

	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastErr = err
	if err != nil {
		return nil, err // keep the previous set
	}
	s.keys = keys
	s.expires = now.Add(maxAge)
	return nil, nil
}

func (s *RemoteKeySet) fetch() (map[string]*jose.JSONWebKey, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), jwksFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("JWKS: HTTP status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSSize+1))
	if err != nil {
		return nil, 0, fmt.Errorf("JWKS: %w", err)
	}
	if len(body) > maxJWKSSize {
		return nil, 0, fmt.Errorf("JWKS: response larger than %d bytes", maxJWKSSize)
	}
	keys, err := parseJWKS(body)
	if err != nil {
		return nil, 0, err
	}
	return keys, cacheMaxAge(resp.Header), nil
}

// parseJWKS parses a JWK Set and keeps the usable keys. Each key is parsed
// on its own so that one key of a type this package does not know (or
// refuses) does not make the whole set unusable. A kid that appears on more
// than one usable key is ambiguous and dropped entirely.
func parseJWKS(body []byte) (map[string]*jose.JSONWebKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, errors.New("JWKS: malformed JSON")
	}
	keys := make(map[string]*jose.JSONWebKey, len(set.Keys))
	dups := make(map[string]bool)
	for _, raw := range set.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			continue
		}
		if usableKey(&k) != nil {
			continue
		}
		if _, dup := keys[k.KeyID]; dup {
			dups[k.KeyID] = true
		}
		keys[k.KeyID] = &k
	}
	for kid := range dups {
		delete(keys, kid)
	}
	// A well-formed set without usable keys is authoritative: the issuer
	// has withdrawn every key it had.
	return keys, nil
}

// cacheMaxAge returns the max-age of a response's Cache-Control header,
// capped at maxJWKSAge; zero if absent, malformed, or no-store/no-cache.
func cacheMaxAge(h http.Header) time.Duration {
	var maxAge time.Duration
	for _, v := range h.Values("Cache-Control") {
		for d := range strings.SplitSeq(v, ",") {
			name, val, _ := strings.Cut(strings.TrimSpace(d), "=")
			switch strings.ToLower(name) {
			case "no-store", "no-cache":
				return 0
			case "max-age":
				n, err := strconv.ParseInt(strings.Trim(val, `"`), 10, 64)
				if err != nil || n < 0 {
					return 0
				}
				maxAge = time.Duration(min(n, int64(maxJWKSAge/time.Second))) * time.Second
			}
		}
	}
	return maxAge
}

var (
	_ KeySource = (*RemoteKeySet)(nil)
	_ KeySource = (*StaticKeySet)(nil)
)
