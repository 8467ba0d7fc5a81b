// Package storetest is the one conformance suite for store.Store backends.
// Every backend runs it; a backend that passes honours every method and
// error contract documented in package store, including under concurrency
// (the Race/... subtests).
package storetest

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// Run runs every conformance test against stores made by newStore (a fresh,
// empty, migrated store per call). newStore is called once per subtest,
// sequentially, and should register the store's cleanup with t.Cleanup.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	groups := []struct {
		name  string
		tests []storeTest
	}{
		{"Users", usersTests},
		{"Sessions", sessionsTests},
		{"RefreshTokens", refreshTokensTests},
		{"SigningKeys", signingKeysTests},
		{"Verifications", verificationsTests},
		{"MFA", mfaTests},
		{"WebAuthn", webAuthnTests},
		{"Audit", auditTests},
		{"IPRules", ipRulesTests},
		{"Tx", txTests},
		{"RoundTrip", roundTripTests},
		{"Secrets", secretsTests},
		{"Race", raceTests},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, tt := range g.tests {
				t.Run(tt.name, func(t *testing.T) {
					tt.fn(t, newStore(t))
				})
			}
		})
	}
}

// storeTest is one conformance test; it gets a fresh store.
type storeTest struct {
	name string
	fn   func(t *testing.T, s store.Store)
}

// base is an arbitrary instant with nanoseconds in a zone other than UTC,
// so every stored time exercises the UTC/microsecond normalisation.
var base = time.Date(2025, 3, 14, 15, 9, 26, 535_897_932, time.FixedZone("UTC+05:30", 5*3600+1800))

// norm is the normalisation every backend applies to stored times.
func norm(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// tokenHash is the SHA-256 of s, like the hash of a cookie token.
func tokenHash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func newUser(id string) *store.User {
	return &store.User{
		ID:            id,
		Email:         "User." + id + "@Example.com",
		EmailKey:      "user." + id + "@example.com",
		Name:          "User " + id,
		PasswordHash:  "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$" + id,
		EmailVerified: true,
		CreatedAt:     base,
		UpdatedAt:     base,
	}
}

func newSession(id, userID string) *store.Session {
	return &store.Session{
		ID:         id,
		UserID:     userID,
		TokenHash:  tokenHash("token-" + id),
		CreatedAt:  base,
		LastSeenAt: base,
		AuthTime:   base,
		ExpiresAt:  base.Add(24 * time.Hour),
		IP:         "192.0.2.10",
		UserAgent:  "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0",
		Location:   "Lisbon, PT",
		AAL:        1,
		AMR:        []string{"pwd"},
	}
}

// wantUser is u as a store returns it.
func wantUser(u *store.User) *store.User {
	w := *u
	w.CreatedAt, w.UpdatedAt = norm(u.CreatedAt), norm(u.UpdatedAt)
	return &w
}

// newRefreshToken is an unused refresh token of session sessionID.
func newRefreshToken(id, sessionID string) *store.RefreshToken {
	return &store.RefreshToken{
		ID:        id,
		SessionID: sessionID,
		Hash:      tokenHash("refresh-" + id),
		CreatedAt: base,
		ExpiresAt: base.Add(12 * time.Hour),
	}
}

// newSigningKey is a key that signs from activatesAt on.
func newSigningKey(id string, activatesAt time.Time) *store.SigningKey {
	return &store.SigningKey{
		ID:            id,
		Algorithm:     "EdDSA",
		PublicJWK:     []byte(`{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"` + id + `"}`),
		PrivateSealed: tokenHash("sealed-" + id),
		KEKVersion:    1,
		CreatedAt:     base,
		ActivatesAt:   activatesAt,
	}
}

// wantSession is s as a store returns it.
func wantSession(s *store.Session) *store.Session {
	w := *s
	if w.Kind == "" {
		w.Kind = store.SessionCookie
	}
	w.CreatedAt, w.LastSeenAt, w.AuthTime, w.ExpiresAt =
		norm(s.CreatedAt), norm(s.LastSeenAt), norm(s.AuthTime), norm(s.ExpiresAt)
	if s.RevokedAt != nil {
		r := norm(*s.RevokedAt)
		w.RevokedAt = &r
	}
	return &w
}

// wantRefreshToken is t as a store returns it.
func wantRefreshToken(t *store.RefreshToken) *store.RefreshToken {
	w := *t
	w.CreatedAt, w.ExpiresAt = norm(t.CreatedAt), norm(t.ExpiresAt)
	if t.UsedAt != nil {
		u := norm(*t.UsedAt)
		w.UsedAt = &u
	}
	return &w
}

// wantSigningKeys is ks as a store returns them.
func wantSigningKeys(ks ...*store.SigningKey) []*store.SigningKey {
	out := make([]*store.SigningKey, len(ks))
	for i, k := range ks {
		w := *k
		w.CreatedAt, w.ActivatesAt = norm(k.CreatedAt), norm(k.ActivatesAt)
		out[i] = &w
	}
	return out
}

// diff compares records; times compare by instant (UTC-ness is checked by
// RoundTrip/Time) and nil equals empty for slices and maps.
func diff(want, got any) string {
	return cmp.Diff(want, got, cmpopts.EquateEmpty())
}

// diffKeys compares signing keys like diff, except that PublicJWK only
// needs to hold the same JSON value, not the same bytes.
func diffKeys(want, got []*store.SigningKey) string {
	return diff(canonicalJWKs(want), canonicalJWKs(got))
}

// canonicalJWKs copies ks with every PublicJWK re-encoded canonically
// (sorted members, no insignificant space); one that does not parse is
// kept as is.
func canonicalJWKs(ks []*store.SigningKey) []*store.SigningKey {
	out := make([]*store.SigningKey, len(ks))
	for i, k := range ks {
		c := *k
		var v any
		if err := json.Unmarshal(k.PublicJWK, &v); err == nil {
			c.PublicJWK, _ = json.Marshal(v) // a decoded value always marshals
		}
		out[i] = &c
	}
	return out
}

func mustCreateUser(t *testing.T, s store.Tx, u *store.User) *store.User {
	t.Helper()
	if err := s.Users().CreateUser(t.Context(), u); err != nil {
		t.Fatalf("CreateUser(%s): %v", u.ID, err)
	}
	return u
}

func mustCreateSession(t *testing.T, s store.Tx, ss *store.Session) *store.Session {
	t.Helper()
	if err := s.Sessions().CreateSession(t.Context(), ss); err != nil {
		t.Fatalf("CreateSession(%s): %v", ss.ID, err)
	}
	return ss
}

func mustSession(t *testing.T, s store.Tx, id string) *store.Session {
	t.Helper()
	ss, err := s.Sessions().SessionByID(t.Context(), id)
	if err != nil {
		t.Fatalf("SessionByID(%s): %v", id, err)
	}
	return ss
}

func mustCreateRefreshToken(t *testing.T, s store.Tx, rt *store.RefreshToken) *store.RefreshToken {
	t.Helper()
	if err := s.RefreshTokens().CreateRefreshToken(t.Context(), rt); err != nil {
		t.Fatalf("CreateRefreshToken(%s): %v", rt.ID, err)
	}
	return rt
}

func mustRefreshToken(t *testing.T, s store.Tx, hash []byte) *store.RefreshToken {
	t.Helper()
	rt, err := s.RefreshTokens().RefreshTokenByHash(t.Context(), hash)
	if err != nil {
		t.Fatalf("RefreshTokenByHash: %v", err)
	}
	return rt
}

func mustCreateSigningKey(t *testing.T, s store.Tx, k *store.SigningKey) *store.SigningKey {
	t.Helper()
	if err := s.SigningKeys().CreateSigningKey(t.Context(), k); err != nil {
		t.Fatalf("CreateSigningKey(%s): %v", k.ID, err)
	}
	return k
}

func mustListSigningKeys(t *testing.T, s store.Tx) []*store.SigningKey {
	t.Helper()
	ks, err := s.SigningKeys().ListSigningKeys(t.Context())
	if err != nil {
		t.Fatalf("ListSigningKeys: %v", err)
	}
	return ks
}

// mustSigningKey finds key id among the listed keys.
func mustSigningKey(t *testing.T, s store.Tx, id string) *store.SigningKey {
	t.Helper()
	for _, k := range mustListSigningKeys(t, s) {
		if k.ID == id {
			return k
		}
	}
	t.Fatalf("signing key %s not listed", id)
	return nil
}

func mustUser(t *testing.T, s store.Tx, id string) *store.User {
	t.Helper()
	u, err := s.Users().UserByID(t.Context(), id)
	if err != nil {
		t.Fatalf("UserByID(%s): %v", id, err)
	}
	return u
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

// concurrently runs fn(0..n-1) on n goroutines released at the same moment
// and waits for all of them.
func concurrently(n int, fn func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			fn(i)
		})
	}
	close(start)
	wg.Wait()
}
