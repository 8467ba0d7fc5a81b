package signing

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-auth/gatehouse/internal/secrets"
	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/sdk/go/gatehouse"
)

var algorithms = []string{EdDSA, ES256}

// verify checks token the way a resource server does: the kid's published
// key from ring, only the expected algorithm accepted.
func verify(ring *Keyring, token, alg string) (kid string, payload []byte, err error) {
	obj, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
	if err != nil {
		return "", nil, err
	}
	kid = obj.Signatures[0].Header.KeyID
	jwk, err := ring.Key(context.Background(), kid)
	if err != nil {
		return kid, nil, err
	}
	payload, err = obj.Verify(jwk)
	return kid, payload, err
}

func signedKid(t *testing.T, ring *Keyring) string {
	t.Helper()
	token, err := ring.Sign([]byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	return obj.Signatures[0].Header.KeyID
}

// jwksKids fetches the JWKS and returns its kids.
func jwksKids(t *testing.T, ring *Keyring) []string {
	t.Helper()
	rec := httptest.NewRecorder()
	ring.ServeJWKS(rec, httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("JWKS status %d", rec.Code)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(rec.Body.Bytes(), &set); err != nil {
		t.Fatal(err)
	}
	kids := []string{}
	for _, k := range set.Keys {
		kids = append(kids, k.KeyID)
	}
	return kids
}

func listKeys(t *testing.T, db store.SigningKeys) []*store.SigningKey {
	t.Helper()
	keys, err := db.ListSigningKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestSignVerify(t *testing.T) {
	for _, alg := range algorithms {
		t.Run(alg, func(t *testing.T) {
			h := newHarness(t, alg)
			payload := []byte(`{"sub":"usr_1","exp":1}`)
			token, err := h.ring.Sign(payload)
			if err != nil {
				t.Fatal(err)
			}
			obj, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
			if err != nil {
				t.Fatal(err)
			}
			hdr := obj.Signatures[0].Protected
			if hdr.Algorithm != alg || hdr.ExtraHeaders[jose.HeaderType] != "at+jwt" || !regexp.MustCompile(`^k_[a-z2-7]{26}$`).MatchString(hdr.KeyID) {
				t.Errorf("protected header alg %q typ %v kid %q", hdr.Algorithm, hdr.ExtraHeaders[jose.HeaderType], hdr.KeyID)
			}
			jwk, err := h.ring.Key(context.Background(), hdr.KeyID)
			if err != nil {
				t.Fatal(err)
			}
			if jwk.Algorithm != alg || jwk.Use != "sig" || jwk.KeyID != hdr.KeyID || !jwk.IsPublic() {
				t.Errorf("Key = alg %q use %q kid %q public %v", jwk.Algorithm, jwk.Use, jwk.KeyID, jwk.IsPublic())
			}
			got, err := obj.Verify(jwk)
			if err != nil || !bytes.Equal(got, payload) {
				t.Fatalf("Verify = %q, %v", got, err)
			}
			// The returned key is a copy: changing it does not change the keyring.
			jwk.Algorithm = "none"
			if again, _ := h.ring.Key(context.Background(), hdr.KeyID); again.Algorithm != alg {
				t.Error("Key returned the keyring's own JWK")
			}
			keys := listKeys(t, h.db)
			if len(keys) != 1 || keys[0].ID != hdr.KeyID || keys[0].Algorithm != alg || keys[0].KEKVersion != 1 || !keys[0].ActivatesAt.Equal(keys[0].CreatedAt) {
				t.Errorf("stored %+v", keys)
			}
		})
	}
}

func TestEnsure(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, EdDSA)
	first := listKeys(t, h.db)
	// Idempotent, and a second replica starting later reuses the key.
	if err := h.ring.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	replica := h.replica(nil)
	if err := replica.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if keys := listKeys(t, h.db); len(keys) != 1 || keys[0].ID != first[0].ID {
		t.Fatalf("Ensure created more keys: %d", len(keys))
	}
	if signedKid(t, replica) != first[0].ID {
		t.Error("the replica signs with another key")
	}

	t.Run("only pending keys", func(t *testing.T) {
		h := &harness{db: openDB(t), keks: []secrets.KEK{testKEK(1, 1)}, cfg: testConfig(ES256), clock: newHarness(t, EdDSA).clock}
		pending := h.rotate(t) // e.g. `gatehouse keys rotate` before the first start
		ring := h.replica(nil)
		if err := ring.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		keys := listKeys(t, h.db)
		if len(keys) != 2 {
			t.Fatalf("%d keys, want the pending one and an immediate one", len(keys))
		}
		if kid := signedKid(t, ring); kid == pending.ID {
			t.Error("signed with the pending key")
		}
	})

	t.Run("invalid config", func(t *testing.T) {
		for _, cfg := range []Config{
			{Algorithm: "RS256", TokenLifetime: time.Minute},
			{Algorithm: "none", TokenLifetime: time.Minute},
			{Algorithm: EdDSA},
			{Algorithm: EdDSA, TokenLifetime: time.Minute, PublishDelay: -time.Second},
		} {
			ring := NewKeyring(openDB(t), h.keks, cfg, nil, nil)
			if err := ring.Ensure(ctx); err == nil {
				t.Errorf("Ensure accepted %+v", cfg)
			}
		}
	})
}

// A rotated-in key is published at once, signs only from ActivatesAt, and
// the old key stays published exactly TokenLifetime longer.
func TestRotationLifecycle(t *testing.T) {
	for _, alg := range algorithms {
		t.Run(alg, func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t, alg)
			oldKid := signedKid(t, h.ring)
			oldToken, err := h.ring.Sign([]byte(`{"n":1}`))
			if err != nil {
				t.Fatal(err)
			}

			next := h.rotate(t)
			if !next.ActivatesAt.Equal(h.clock.Now().Add(h.cfg.PublishDelay)) {
				t.Errorf("ActivatesAt %v, want now + %v", next.ActivatesAt, h.cfg.PublishDelay)
			}
			if err := h.ring.Reload(ctx); err != nil {
				t.Fatal(err)
			}
			if got := jwksKids(t, h.ring); !slices.Equal(got, []string{oldKid, next.ID}) {
				t.Errorf("JWKS after rotate = %v, want both keys", got)
			}
			if _, err := h.ring.Key(ctx, next.ID); err != nil {
				t.Errorf("pending key not published: %v", err)
			}

			h.clock.Advance(h.cfg.PublishDelay - time.Nanosecond)
			if kid := signedKid(t, h.ring); kid != oldKid {
				t.Fatalf("signed with %s before the new key activates", kid)
			}
			h.clock.Advance(time.Nanosecond)
			if kid := signedKid(t, h.ring); kid != next.ID {
				t.Fatalf("signed with %s once the new key is active", kid)
			}

			// Tokens of the old key keep verifying while they can be live.
			h.clock.Advance(h.cfg.TokenLifetime - time.Nanosecond)
			if _, _, err := verify(h.ring, oldToken, alg); err != nil {
				t.Fatalf("old key's token no longer verifies within its lifetime: %v", err)
			}
			if got := jwksKids(t, h.ring); !slices.Equal(got, []string{oldKid, next.ID}) {
				t.Errorf("JWKS while retiring = %v", got)
			}

			h.clock.Advance(time.Nanosecond)
			if got := jwksKids(t, h.ring); !slices.Equal(got, []string{next.ID}) {
				t.Errorf("JWKS after expiry = %v, want only the new key", got)
			}
			if _, err := h.ring.Key(ctx, oldKid); err == nil || !errors.Is(err, gatehouse.ErrUnknownKey) {
				t.Errorf("Key(expired) = %v, want ErrUnknownKey", err)
			}
			if _, _, err := verify(h.ring, oldToken, alg); err == nil {
				t.Error("a token of an expired key verified")
			}
			// A restart does not bring the expired key back.
			fresh := h.replica(nil)
			if err := fresh.Ensure(ctx); err != nil {
				t.Fatal(err)
			}
			if got := jwksKids(t, fresh); !slices.Equal(got, []string{next.ID}) {
				t.Errorf("JWKS after restart = %v", got)
			}
		})
	}
}

// A replica picks up another replica's rotation on reload, without a
// restart.
func TestReplicaPicksUpRotation(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, EdDSA)
	counting := &wrapStore{SigningKeys: h.db}
	replica := h.replica(counting)
	if err := replica.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	oldKid := signedKid(t, replica)
	h.cfg.Algorithm = ES256 // the operator switches algorithm with the rotation
	next := h.rotate(t)

	// A verifier asking the replica for the new kid before the periodic
	// reload finds it through the unknown-kid reload.
	if _, err := replica.Key(ctx, next.ID); err != nil {
		t.Fatalf("replica does not know the rotated-in key: %v", err)
	}
	if err := replica.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if got := jwksKids(t, replica); !slices.Equal(got, []string{oldKid, next.ID}) {
		t.Errorf("replica JWKS = %v", got)
	}
	h.clock.Advance(h.cfg.PublishDelay)
	token, err := replica.Sign([]byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if kid, _, err := verify(h.ring, token, ES256); err != nil || kid != next.ID {
		t.Errorf("replica token: kid %s, verify on the first replica: %v", kid, err)
	}
}

func TestJWKS(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, EdDSA)
	serve := func(inm ...string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil)
		for _, v := range inm {
			r.Header.Add("If-None-Match", v)
		}
		rec := httptest.NewRecorder()
		h.ring.ServeJWKS(rec, r)
		return rec
	}
	res := serve()
	etag := res.Header().Get("ETag")
	if res.Code != http.StatusOK || res.Header().Get("Content-Type") != "application/json" ||
		res.Header().Get("Cache-Control") != "public, max-age=300" || !regexp.MustCompile(`^"[A-Za-z0-9_-]+"$`).MatchString(etag) {
		t.Fatalf("status %d headers %v", res.Code, res.Header())
	}
	for _, tc := range []struct {
		name string
		inm  []string
		want int
	}{
		{"no validator", nil, http.StatusOK},
		{"same ETag", []string{etag}, http.StatusNotModified},
		{"weak form", []string{"W/" + etag}, http.StatusNotModified},
		{"in a list", []string{`"other", ` + etag}, http.StatusNotModified},
		{"in a second header", []string{`"other"`, etag}, http.StatusNotModified},
		{"wildcard", []string{"*"}, http.StatusNotModified},
		{"other ETag", []string{`"other"`}, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := serve(tc.inm...)
			if res.Code != tc.want {
				t.Fatalf("status %d, want %d", res.Code, tc.want)
			}
			if res.Header().Get("ETag") != etag || res.Header().Get("Cache-Control") != "public, max-age=300" {
				t.Errorf("headers %v", res.Header())
			}
			if tc.want == http.StatusNotModified && res.Body.Len() != 0 {
				t.Error("304 with a body")
			}
		})
	}

	// Contents per state: pending and active published, expired not.
	active := signedKid(t, h.ring)
	next := h.rotate(t)
	if err := h.ring.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	res = serve(etag)
	if res.Code != http.StatusOK || res.Header().Get("ETag") == etag {
		t.Fatalf("a rotation did not change the ETag (status %d)", res.Code)
	}
	var body struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(res.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if len(body.Keys) != 2 || body.Keys[0]["kid"] != active || body.Keys[1]["kid"] != next.ID {
		t.Fatalf("JWKS %s", res.Body)
	}
	for _, k := range body.Keys {
		if k["use"] != "sig" || k["alg"] != EdDSA || k["kty"] != "OKP" || k["crv"] != "Ed25519" {
			t.Errorf("JWK %v", k)
		}
	}
	h.clock.Advance(h.cfg.PublishDelay + h.cfg.TokenLifetime)
	if got := jwksKids(t, h.ring); !slices.Equal(got, []string{next.ID}) {
		t.Errorf("JWKS once the old key expired = %v", got)
	}

	t.Run("not loaded", func(t *testing.T) {
		rec := httptest.NewRecorder()
		NewKeyring(h.db, h.keks, h.cfg, nil, nil).ServeJWKS(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("status %d, Cache-Control %q", rec.Code, rec.Header().Get("Cache-Control"))
		}
	})
}

// No private member of a JWK (RFC 7518: "d", and "p", "q", "dp", "dq",
// "qi", "oth", "k") is ever served, whatever the state of the keys.
func TestAttackPrivateKeyNeverInJWKS(t *testing.T) {
	private := []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
	for _, alg := range algorithms {
		t.Run(alg, func(t *testing.T) {
			h := newHarness(t, alg)
			h.rotate(t)
			if err := h.ring.Reload(context.Background()); err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			h.ring.ServeJWKS(rec, httptest.NewRequest(http.MethodGet, "/", nil))
			var body struct {
				Keys []map[string]json.RawMessage `json:"keys"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || len(body.Keys) != 2 {
				t.Fatalf("JWKS %s: %v", rec.Body, err)
			}
			for _, k := range body.Keys {
				for _, m := range private {
					if _, ok := k[m]; ok {
						t.Errorf("JWKS member %q served: %s", m, rec.Body)
					}
				}
			}
			// Nor is it in the stored public JWK.
			for _, row := range listKeys(t, h.db) {
				var m map[string]json.RawMessage
				if err := json.Unmarshal(row.PublicJWK, &m); err != nil {
					t.Fatal(err)
				}
				for _, p := range private {
					if _, ok := m[p]; ok {
						t.Errorf("stored public JWK has %q", p)
					}
				}
			}
		})
	}
}

// Moving a sealed private half to another row fails: the additional data
// binds it to its kid and algorithm. The keyring keeps its loaded keys.
func TestAttackSealedKeySwap(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, EdDSA)
	tamper := &wrapStore{SigningKeys: h.db}
	ring := h.replica(tamper)
	h.rotate(t)
	if err := ring.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	before := signedKid(t, ring)
	tamper.setMutate(func(rows []*store.SigningKey) {
		rows[0].PrivateSealed, rows[1].PrivateSealed = rows[1].PrivateSealed, rows[0].PrivateSealed
	})
	err := ring.Reload(ctx)
	if err == nil {
		t.Fatal("Reload accepted swapped sealed keys")
	}
	rows := listKeys(t, h.db)
	if !strings.Contains(err.Error(), rows[0].ID) || !strings.Contains(err.Error(), "KEK version 1") {
		t.Errorf("error does not name the kid and KEK version: %v", err)
	}
	// The replica keeps signing and publishing with what it had.
	if kid := signedKid(t, ring); kid != before {
		t.Errorf("signs with %s after a failed reload, had %s", kid, before)
	}
	if got := jwksKids(t, ring); len(got) != 2 {
		t.Errorf("JWKS after a failed reload = %v", got)
	}
	// And a start with the swapped rows fails.
	if err := h.replica(tamper).Ensure(ctx); err == nil {
		t.Error("Ensure accepted swapped sealed keys")
	}
}

// Every other alteration of a row an attacker with write access to the
// table could make is refused when the keys are loaded.
func TestAttackTamperedRow(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		mutate func(rows []*store.SigningKey)
		want   string
	}{
		{"algorithm relabelled", func(r []*store.SigningKey) { r[0].Algorithm = ES256 }, "the stored JWK names"},
		{"algorithm relabelled with matching JWK", func(r []*store.SigningKey) {
			r[0].Algorithm = ES256
			r[0].PublicJWK = r[1].PublicJWK
		}, "the stored JWK names"},
		{"sealed blob flipped", func(r []*store.SigningKey) { r[0].PrivateSealed[20] ^= 1 }, "cannot open"},
		{"sealed blob truncated", func(r []*store.SigningKey) { r[0].PrivateSealed = r[0].PrivateSealed[:10] }, "cannot open"},
		{"KEK version missing", func(r []*store.SigningKey) { r[0].KEKVersion = 7 }, "KEK version 7, which is not loaded"},
		{"public keys swapped", func(r []*store.SigningKey) {
			r[0].PublicJWK, r[1].PublicJWK = r[1].PublicJWK, r[0].PublicJWK
		}, "the stored JWK names"},
		{"public key replaced (same kid)", func(r []*store.SigningKey) {
			other, err := newKey(EdDSA, []secrets.KEK{testKEK(1, 1)}, time.Now(), time.Now())
			if err != nil {
				panic(err)
			}
			r[0].PublicJWK = bytes.Replace(other.PublicJWK, []byte(other.ID), []byte(r[0].ID), 1)
		}, "does not match the published public key"},
		{"private key in the public JWK", func(r []*store.SigningKey) {
			_, priv, _ := ed25519.GenerateKey(rand.Reader)
			r[0].PublicJWK, _ = json.Marshal(jose.JSONWebKey{Key: priv, KeyID: r[0].ID, Algorithm: EdDSA, Use: "sig"})
		}, "not a valid public key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, EdDSA)
			h.cfg.Algorithm = ES256
			h.rotate(t)
			tamper := &wrapStore{SigningKeys: h.db, mutate: tt.mutate}
			err := h.replica(tamper).Ensure(ctx)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Ensure = %v, want an error with %q", err, tt.want)
			}
		})
	}
}

// A private half opens only with the KEK that sealed it; a replica with
// another kek-v1.key (or none of the row's version) refuses to start.
func TestAttackWrongKEK(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, ES256)
	kid := listKeys(t, h.db)[0].ID
	tests := []struct {
		name string
		keks []secrets.KEK
		want string
	}{
		{"other key, same version", []secrets.KEK{testKEK(1, 2)}, "cannot open the private half of key " + kid + " with KEK version 1"},
		{"version missing", []secrets.KEK{testKEK(2, 1)}, "key " + kid + " is sealed with KEK version 1, which is not loaded"},
		{"no KEK", nil, "KEK version 1, which is not loaded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ring := NewKeyring(h.db, tt.keks, h.cfg, nil, h.clock.Now)
			err := ring.Ensure(ctx)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Ensure = %v, want %q", err, tt.want)
			}
			if _, err := ring.Sign([]byte(`{}`)); err == nil {
				t.Error("a keyring that failed to load signs")
			}
			// Nor does a CLI with these KEKs add a key the servers cannot open.
			if _, err := Rotate(ctx, h.db, tt.keks, h.cfg, h.clock.Now()); err == nil || !strings.Contains(err.Error(), "not rotating") {
				t.Errorf("Rotate = %v", err)
			}
			if n := len(listKeys(t, h.db)); n != 1 {
				t.Errorf("%d keys stored", n)
			}
		})
	}
}

// Keys are sealed under the newest KEK; older versions still open the keys
// they sealed.
func TestRotateSealsUnderNewestKEK(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, EdDSA)
	first := listKeys(t, h.db)[0]
	h.keks = []secrets.KEK{testKEK(2, 2), testKEK(1, 1)} // order does not matter
	next := h.rotate(t)
	if next.KEKVersion != 2 || first.KEKVersion != 1 {
		t.Fatalf("KEK versions %d, %d", first.KEKVersion, next.KEKVersion)
	}
	if err := h.replica(nil).Ensure(ctx); err != nil {
		t.Fatalf("both KEKs loaded: %v", err)
	}
	h.keks = []secrets.KEK{testKEK(1, 1)}
	if err := h.replica(nil).Ensure(ctx); err == nil || !strings.Contains(err.Error(), "KEK version 2") {
		t.Fatalf("without kek-v2: %v", err)
	}
	// Once the key sealed with v1 has expired, v1 is no longer needed.
	h.clock.Advance(h.cfg.PublishDelay + h.cfg.TokenLifetime)
	h.keks = []secrets.KEK{testKEK(2, 2)}
	if err := h.replica(nil).Ensure(ctx); err != nil {
		t.Fatalf("kek-v1 needed for an expired key: %v", err)
	}
}

func TestSealUsesFreshNonces(t *testing.T) {
	kek := testKEK(1, 9)
	der := []byte("the same plaintext")
	a, err := seal(kek, "k_a", EdDSA, der)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := seal(kek, "k_a", EdDSA, der)
	if bytes.Equal(a[:12], b[:12]) || bytes.Equal(a, b) {
		t.Error("two seals share a nonce")
	}
	if len(a) != 12+len(der)+16 {
		t.Errorf("sealed length %d, want nonce + plaintext + tag", len(a))
	}
	if _, err := seal(secrets.KEK{Version: 1, Key: make([]byte, 16)}, "k_a", EdDSA, der); err == nil {
		t.Error("a 128-bit KEK was accepted")
	}
}

// Lookups of unknown kids (a forged token's header) reload at most once
// per 10 seconds.
func TestAttackUnknownKidReloadRateLimit(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, EdDSA)
	counting := &wrapStore{SigningKeys: h.db}
	ring := h.replica(counting)
	if err := ring.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	base := counting.listCount()
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := ring.Key(ctx, "k_forged"+strings.Repeat("x", i))
			if !errors.Is(err, gatehouse.ErrUnknownKey) {
				t.Errorf("Key(unknown) = %v", err)
			}
		}()
	}
	wg.Wait()
	if n := counting.listCount() - base; n > 1 {
		t.Fatalf("%d reloads for 100 unknown kids", n)
	}
	h.clock.Advance(9 * time.Second)
	for range 100 {
		_, _ = ring.Key(ctx, "k_forged")
	}
	if n := counting.listCount() - base; n > 1 {
		t.Fatalf("%d reloads within 10 s", n)
	}
	h.clock.Advance(time.Second)
	for range 100 {
		_, _ = ring.Key(ctx, "k_forged")
	}
	if n := counting.listCount() - base; n != 2 {
		t.Fatalf("%d reloads after 10 s, want 2", n)
	}
	// Known kids never reload.
	kid := signedKid(t, ring)
	for range 100 {
		if _, err := ring.Key(ctx, kid); err != nil {
			t.Fatal(err)
		}
	}
	if n := counting.listCount() - base; n != 2 {
		t.Fatalf("lookups of a known kid reloaded (%d)", n)
	}
}

func TestSignWithoutActiveKey(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, EdDSA)
	if _, err := NewKeyring(h.db, h.keks, h.cfg, nil, nil).Sign([]byte(`{}`)); err == nil {
		t.Error("an unloaded keyring signed")
	}
	// Only a pending key (Reload, not Ensure): nothing signs, but the key is
	// published.
	db := openDB(t)
	pending, err := Rotate(ctx, db, h.keks, h.cfg, h.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	ring := NewKeyring(db, h.keks, h.cfg, nil, h.clock.Now)
	if err := ring.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ring.Sign([]byte(`{}`)); err == nil || !strings.Contains(err.Error(), "pending") {
		t.Errorf("Sign with only a pending key = %v", err)
	}
	if _, err := ring.Key(ctx, pending.ID); err != nil {
		t.Errorf("pending key not published: %v", err)
	}
}

// Run reloads periodically; a failing reload keeps the loaded keys.
func TestRun(t *testing.T) {
	h := newHarness(t, EdDSA)
	tamper := &wrapStore{SigningKeys: h.db}
	var logs syncBuffer
	h.cfg.ReloadInterval = 5 * time.Millisecond
	ring := NewKeyring(tamper, h.keks, h.cfg, slog.New(slog.NewTextHandler(&logs, nil)), h.clock.Now)
	if err := ring.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		ring.Run(ctx)
		close(done)
	}()
	next := h.rotate(t)
	waitFor(t, func() bool { return len(ring.set.Load().keys) == 2 })
	if got := jwksKids(t, ring); len(got) != 2 || got[1] != next.ID {
		t.Errorf("JWKS after a periodic reload = %v", got)
	}
	tamper.setMutate(func(rows []*store.SigningKey) { rows[1].KEKVersion = 9 })
	waitFor(t, func() bool { return strings.Contains(logs.String(), "reload failed") })
	if got := jwksKids(t, ring); len(got) != 2 {
		t.Errorf("JWKS after failed reloads = %v", got)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
}

func TestList(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, EdDSA)
	h.cfg.Algorithm = ES256
	next := h.rotate(t)
	got, err := List(ctx, h.db, h.cfg, h.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].State != StateActive || got[0].Algorithm != EdDSA || got[1].ID != next.ID || got[1].State != StatePending || got[1].Algorithm != ES256 {
		t.Fatalf("List = %+v", got)
	}
	got, _ = List(ctx, h.db, h.cfg, next.ActivatesAt.Add(h.cfg.TokenLifetime))
	if got[0].State != StateExpired || !got[0].RetiredAt.Equal(next.ActivatesAt) || got[1].State != StateActive {
		t.Fatalf("List later = %+v", got)
	}
	if _, err := List(ctx, h.db, Config{}, h.clock.Now()); err == nil {
		t.Error("List without a token lifetime")
	}
}

func TestRotateRejectsBadInput(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, EdDSA)
	for name, tc := range map[string]struct {
		cfg  Config
		keks []secrets.KEK
	}{
		"unsupported algorithm": {Config{Algorithm: "HS256", TokenLifetime: time.Minute}, h.keks},
		"no KEK":                {h.cfg, nil},
		"short KEK":             {h.cfg, []secrets.KEK{{Version: 1, Key: []byte("short")}}},
	} {
		if _, err := Rotate(ctx, h.db, tc.keks, tc.cfg, h.clock.Now()); err == nil {
			t.Errorf("%s: Rotate succeeded", name)
		}
	}
	if n := len(listKeys(t, h.db)); n != 1 {
		t.Errorf("%d keys stored", n)
	}
}

func BenchmarkSign(b *testing.B) {
	payload := []byte(`{"iss":"https://auth.example.com","sub":"usr_abcdefghijklmnopqrstuvwxyz","aud":"https://api.example.com","exp":1900000000,"iat":1899999400,"jti":"at_abcdefghijklmnopqrstuvwxyz","sid":"ses_abcdefghijklmnopqrstuvwxyz","client_id":"web"}`)
	for _, alg := range algorithms {
		h := newHarness(b, alg)
		b.Run(alg, func(b *testing.B) {
			for b.Loop() {
				if _, err := h.ring.Sign(payload); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(alg+"/parallel", func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := h.ring.Sign(payload); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5 s")
		}
		time.Sleep(time.Millisecond)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
