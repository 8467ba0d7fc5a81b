package gatehouse

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// MaxTokenSize is the length in bytes above which Verify refuses a token
// without parsing it.
const MaxTokenSize = 8 << 10

// maxKeyIDLength bounds the "kid" header parameter.
const maxKeyIDLength = 128

const (
	defaultLeeway = 10 * time.Second
	// maxLeeway bounds VerifierConfig.Leeway. RevocationFeed keeps entries
	// this long past their "until", so a larger leeway could let a revoked
	// session's token through.
	maxLeeway        = 5 * time.Minute
	defaultCacheSize = 10_000
)

// supportedAlgorithms is the complete set of algorithms this package will
// ever accept. VerifierConfig.Algorithms may narrow it, never widen it.
var supportedAlgorithms = []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256}

// KeySource returns the public key with the given key ID. It returns an error
// wrapping ErrUnknownKey if it has no such key. The kid passed in has already
// been checked by Verify (at most 128 printable ASCII characters, no '/',
// '\\' or ".."), but implementations must still never use it as a path or
// URL.
type KeySource interface {
	Key(ctx context.Context, kid string) (*jose.JSONWebKey, error)
}

// RevocationChecker reports whether a session has been revoked. It must
// fail closed: when it cannot tell, it returns an error (RevocationFeed
// returns ErrRevocationStale), never (false, nil).
type RevocationChecker interface {
	Revoked(ctx context.Context, sid string) (bool, error)
}

// VerifierConfig configures a Verifier.
type VerifierConfig struct {
	// Issuer is compared byte for byte with the "iss" claim. Required.
	Issuer string
	// Audience must be one of the token's "aud" values. Required.
	Audience string
	// Algorithms allowed in the token header. Default {"EdDSA", "ES256"};
	// any other algorithm makes NewVerifier fail.
	Algorithms []string
	// Leeway tolerated on exp, nbf and iat for clock skew. Default 10s,
	// at most 5 minutes.
	Leeway time.Duration
	// Keys supplies the verification keys. Required.
	Keys KeySource
	// Revocations is consulted on every successful verification. Required:
	// there is deliberately no way to turn revocation checking off.
	Revocations RevocationChecker
	// MaxTokenLifetime, if positive, refuses tokens whose exp - iat is
	// longer. A revocation checker that knows the issuer's current bound
	// (the RevocationFeed learns it from the server) tightens it further:
	// the server forgets a revocation once every token it issues now has
	// expired, so a longer-lived token issued under an older setting must
	// not outlive that memory.
	MaxTokenLifetime time.Duration
	// CacheSize is the number of verified tokens remembered (default
	// 10,000; negative disables the cache). A cache hit skips parsing and
	// signature verification, but still checks expiry, that the signing key
	// is still trusted, and revocation.
	CacheSize int
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Verifier verifies Gatehouse access tokens. It is safe for concurrent use.
type Verifier struct {
	issuer      string
	audience    string
	algs        []jose.SignatureAlgorithm
	leeway      time.Duration
	keys        KeySource
	revocations RevocationChecker
	maxLifetime time.Duration
	now         func() time.Time
	cache       *tokenCache // nil when disabled
}

// LifetimeBound is implemented by revocation checkers that know the
// longest access-token lifetime the issuer currently accepts.
type LifetimeBound interface {
	MaxTokenLifetime() time.Duration
}

// NewVerifier checks cfg and returns a Verifier.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	switch {
	case cfg.Issuer == "":
		return nil, errors.New("gatehouse: VerifierConfig.Issuer is required")
	case cfg.Audience == "":
		return nil, errors.New("gatehouse: VerifierConfig.Audience is required")
	case cfg.Keys == nil:
		return nil, errors.New("gatehouse: VerifierConfig.Keys is required")
	case cfg.Revocations == nil:
		return nil, errors.New("gatehouse: VerifierConfig.Revocations is required")
	case cfg.Leeway < 0 || cfg.Leeway > maxLeeway:
		return nil, fmt.Errorf("gatehouse: VerifierConfig.Leeway must be between 0 and %s", maxLeeway)
	}
	v := &Verifier{
		issuer:      cfg.Issuer,
		audience:    cfg.Audience,
		leeway:      cfg.Leeway,
		keys:        cfg.Keys,
		revocations: cfg.Revocations,
		maxLifetime: cfg.MaxTokenLifetime,
		now:         cfg.Now,
	}
	if len(cfg.Algorithms) == 0 {
		v.algs = slices.Clone(supportedAlgorithms)
	}
	for _, a := range cfg.Algorithms {
		alg := jose.SignatureAlgorithm(a)
		if !slices.Contains(supportedAlgorithms, alg) {
			return nil, fmt.Errorf("gatehouse: algorithm %q is not supported (only EdDSA and ES256)", a)
		}
		if !slices.Contains(v.algs, alg) {
			v.algs = append(v.algs, alg)
		}
	}
	if v.leeway == 0 {
		v.leeway = defaultLeeway
	}
	if v.now == nil {
		v.now = time.Now
	}
	switch {
	case cfg.CacheSize == 0:
		v.cache = newTokenCache(defaultCacheSize)
	case cfg.CacheSize > 0:
		v.cache = newTokenCache(cfg.CacheSize)
	}
	return v, nil
}

// Verify verifies token and returns its claims. The error wraps
// ErrInvalidToken (and, for an unknown kid, also ErrUnknownKey), ErrRevoked,
// or the revocation checker's error (ErrRevocationStale when the feed is
// stale). Any other error (for example, the key set could not be fetched)
// means the token could not be checked; treat it as a temporary failure.
//
// The returned Claims belong to the caller.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	if token == "" {
		return nil, invalid("empty token")
	}
	if len(token) > MaxTokenSize {
		return nil, invalid("token too large")
	}
	if !canonicalCompact(token) {
		return nil, invalid("not a canonical compact JWS")
	}
	now := v.now()

	var id [sha256.Size]byte
	if v.cache != nil {
		id = sha256.Sum256([]byte(token))
		if e, ok := v.cache.get(id); ok {
			return v.verifyCached(ctx, id, e, now)
		}
	}

	e, err := v.verifyToken(ctx, token, now)
	if err != nil {
		return nil, err
	}
	if err := v.checkRevocation(ctx, e.claims); err != nil {
		return nil, err
	}
	if v.cache == nil {
		return e.claims, nil // nobody else holds these claims
	}
	v.cache.put(id, &e)
	return e.claims.clone(), nil
}

// verifyCached re-checks what can change after a token was first verified:
// the clock, the key set, and revocation.
func (v *Verifier) verifyCached(ctx context.Context, id [sha256.Size]byte, e *cacheEntry, now time.Time) (*Claims, error) {
	if !now.Before(e.claims.ExpiresAt.Add(v.leeway)) {
		v.cache.remove(id)
		return nil, invalid("token expired")
	}
	key, err := v.lookupKey(ctx, e.kid)
	if err != nil {
		return nil, err
	}
	pub, err := publicKeyFor(key, e.alg)
	if err != nil {
		v.cache.remove(id)
		return nil, invalid(err.Error())
	}
	if !samePublicKey(pub, e.pub) {
		v.cache.remove(id)
		return nil, invalid("signing key has been replaced")
	}
	if err := v.checkRevocation(ctx, e.claims); err != nil {
		return nil, err
	}
	return e.claims.clone(), nil
}

// verifyToken does everything except the revocation check.
func (v *Verifier) verifyToken(ctx context.Context, token string, now time.Time) (cacheEntry, error) {
	// Only the compact serialization is accepted: it carries exactly one
	// signature and no unprotected header. ParseSignedCompact also enforces
	// the algorithm allowlist, so "none", HS256 and anything else not in
	// v.algs is refused here, before any key is looked up.
	jws, err := jose.ParseSignedCompact(token, v.algs)
	if err != nil {
		if _, ok := errors.AsType[*jose.ErrUnexpectedSignatureAlgorithm](err); ok {
			return cacheEntry{}, invalid("algorithm not allowed")
		}
		return cacheEntry{}, invalid("malformed JWS")
	}
	kid, alg, err := checkHeader(jws)
	if err != nil {
		return cacheEntry{}, invalid(err.Error())
	}
	key, err := v.lookupKey(ctx, kid)
	if err != nil {
		return cacheEntry{}, err
	}
	payload, pub, err := verifySignature(jws, key)
	if err != nil {
		return cacheEntry{}, invalid(err.Error())
	}
	claims, err := decodeClaims(payload)
	if err != nil {
		return cacheEntry{}, invalid(err.Error())
	}
	if err := v.checkClaims(claims, now); err != nil {
		return cacheEntry{}, err
	}
	return cacheEntry{claims: claims, kid: kid, alg: alg, pub: pub}, nil
}

func (v *Verifier) lookupKey(ctx context.Context, kid string) (*jose.JSONWebKey, error) {
	key, err := v.keys.Key(ctx, kid)
	switch {
	case errors.Is(err, ErrUnknownKey):
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	case err != nil:
		return nil, fmt.Errorf("gatehouse: looking up signing key: %w", err)
	case key == nil:
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, ErrUnknownKey)
	}
	return key, nil
}

// checkRevocation asks the revocation checker about the token's session,
// after refusing a token that would outlive the checker's memory.
func (v *Verifier) checkRevocation(ctx context.Context, c *Claims) error {
	limit := v.maxLifetime
	if lb, ok := v.revocations.(LifetimeBound); ok {
		if d := lb.MaxTokenLifetime(); d > 0 && (limit <= 0 || d < limit) {
			limit = d
		}
	}
	if limit > 0 && c.ExpiresAt.Sub(c.IssuedAt) > limit {
		return invalid("token lifetime exceeds the issuer's maximum")
	}
	revoked, err := v.revocations.Revoked(ctx, c.SessionID)
	if err != nil {
		return fmt.Errorf("gatehouse: revocation check: %w", err)
	}
	if revoked {
		return fmt.Errorf("%w: session revoked", ErrRevoked)
	}
	return nil
}

func (v *Verifier) checkClaims(c *Claims, now time.Time) error {
	var missing []string
	for _, m := range []struct {
		name    string
		present bool
	}{
		{"iss", c.Issuer != ""},
		{"sub", c.Subject != ""},
		{"aud", len(c.Audience) > 0},
		{"exp", !c.ExpiresAt.IsZero()},
		{"iat", !c.IssuedAt.IsZero()},
		{"jti", c.ID != ""},
		{"sid", c.SessionID != ""},
		{"client_id", c.ClientID != ""}, // RFC 9068 §2.2
	} {
		if !m.present {
			missing = append(missing, m.name)
		}
	}
	switch {
	case len(missing) > 0:
		return invalid("missing required claims: " + strings.Join(missing, ", "))
	case c.Issuer != v.issuer:
		return invalid("wrong issuer")
	case !slices.Contains(c.Audience, v.audience):
		return invalid("wrong audience")
	case !now.Before(c.ExpiresAt.Add(v.leeway)):
		return invalid("token expired")
	case !c.NotBefore.IsZero() && c.NotBefore.After(now.Add(v.leeway)):
		return invalid("token not yet valid (nbf)")
	case c.IssuedAt.After(now.Add(v.leeway)):
		return invalid("token issued in the future (iat)")
	}
	return nil
}

// forbiddenHeaders are header parameters that point at, or carry, key
// material or change how the signature is computed. Keys come only from the
// KeySource, so a token carrying any of them is refused outright rather
// than having the parameter ignored.
var forbiddenHeaders = []jose.HeaderKey{"jku", "x5u", "crit", "b64"}

// noRoots makes Header.Certificates fail fast without touching the system
// certificate pool; we only call it to learn whether "x5c" is present.
var noRoots = x509.NewCertPool()

// checkHeader checks the JOSE header of a parsed compact JWS and returns the
// kid and alg.
func checkHeader(jws *jose.JSONWebSignature) (kid, alg string, err error) {
	if len(jws.Signatures) != 1 {
		return "", "", errors.New("exactly one signature required")
	}
	sig := jws.Signatures[0]
	h := sig.Header // protected and unprotected merged; compact has only protected
	if h.JSONWebKey != nil {
		return "", "", errors.New(`"jwk" header not allowed`)
	}
	for _, name := range forbiddenHeaders {
		if _, ok := h.ExtraHeaders[name]; ok {
			return "", "", fmt.Errorf("%q header not allowed", name)
		}
	}
	// go-jose parses "x5c" into an unexported field; Certificates reports
	// ErrMissingX5cHeader exactly when there is none. (An empty "x5c" array
	// carries no certificate and is indistinguishable from absence here.)
	if _, err := h.Certificates(x509.VerifyOptions{Roots: noRoots}); !errors.Is(err, jose.ErrMissingX5cHeader) {
		return "", "", errors.New(`"x5c" header not allowed`)
	}
	typ, _ := sig.Protected.ExtraHeaders[jose.HeaderType].(string)
	if !strings.EqualFold(typ, "at+jwt") && !strings.EqualFold(typ, "application/at+jwt") {
		return "", "", errors.New(`"typ" header must be "at+jwt"`)
	}
	kid = sig.Protected.KeyID
	if !validKeyID(kid) {
		return "", "", errors.New(`missing or malformed "kid" header`)
	}
	return kid, sig.Protected.Algorithm, nil
}

// validKeyID accepts 1 to 128 printable ASCII characters other than '/' and
// '\\', and no "..". A kid is only ever used as a map key, but refusing
// anything path-like keeps it harmless in any KeySource.
func validKeyID(kid string) bool {
	if kid == "" || len(kid) > maxKeyIDLength || strings.Contains(kid, "..") {
		return false
	}
	for i := 0; i < len(kid); i++ {
		c := kid[i]
		if c <= ' ' || c > '~' || c == '/' || c == '\\' {
			return false
		}
	}
	return true
}

// verifySignature is the signature layer of Verify: it checks that key may
// be used with the algorithm in the protected header and verifies the one
// signature of jws with go-jose, returning the payload and the public key
// used. It does not look at any other header parameter or at the payload.
func verifySignature(jws *jose.JSONWebSignature, key *jose.JSONWebKey) ([]byte, crypto.PublicKey, error) {
	if len(jws.Signatures) != 1 {
		return nil, nil, errors.New("exactly one signature required")
	}
	sig := jws.Signatures[0]
	alg := sig.Protected.Algorithm
	if alg == "" || sig.Header.Algorithm != alg {
		return nil, nil, errors.New(`"alg" must be in the protected header`)
	}
	pub, err := publicKeyFor(key, alg)
	if err != nil {
		return nil, nil, err
	}
	// pub is a concrete public key type, never []byte, so go-jose cannot be
	// steered into HMAC verification with a public key as the secret.
	payload, err := jws.Verify(pub)
	if err != nil {
		return nil, nil, errors.New("bad signature")
	}
	return payload, pub, nil
}

// publicKeyFor returns the public key of key if, and only if, key is pinned
// to alg: its own "alg" must equal alg, its "use" must be empty or "sig",
// and its type must be the one alg requires (Ed25519 for EdDSA, P-256 for
// ES256).
func publicKeyFor(key *jose.JSONWebKey, alg string) (crypto.PublicKey, error) {
	if key == nil {
		return nil, ErrUnknownKey
	}
	if key.Use != "" && key.Use != "sig" {
		return nil, errors.New(`key "use" is not "sig"`)
	}
	if key.Algorithm != alg {
		return nil, errors.New("key is not for the token's algorithm")
	}
	switch jose.SignatureAlgorithm(alg) {
	case jose.EdDSA:
		if pk, ok := key.Key.(ed25519.PublicKey); ok && len(pk) == ed25519.PublicKeySize {
			return pk, nil
		}
	case jose.ES256:
		if pk, ok := key.Key.(*ecdsa.PublicKey); ok && pk != nil && pk.Curve == elliptic.P256() {
			return pk, nil
		}
	}
	return nil, errors.New("key type does not match the token's algorithm")
}

// samePublicKey reports whether a and b are the same public key.
func samePublicKey(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

func invalid(reason string) error {
	return fmt.Errorf("%w: %s", ErrInvalidToken, reason)
}

// canonicalCompact reports whether token is three strictly encoded
// base64url segments: the alphabet only, no padding, no line breaks, and
// zero trailing bits. go-jose's decoding is more lenient, which would let
// one token be written as many different strings (each its own cache
// entry, each defeating any list keyed on the token). One pass, no
// allocation: this runs before every verification.
func canonicalCompact(token string) bool {
	dots, segStart := 0, 0
	for i := 0; i <= len(token); i++ {
		if i < len(token) && token[i] != '.' {
			if b64Value(token[i]) < 0 {
				return false
			}
			continue
		}
		if !canonicalSegment(token[segStart:i]) {
			return false
		}
		if i < len(token) {
			dots++
		}
		segStart = i + 1
	}
	return dots == 2
}

// canonicalSegment checks the length and the unused low bits of the last
// character of one unpadded base64url segment.
func canonicalSegment(seg string) bool {
	if len(seg) == 0 {
		return false
	}
	last := b64Value(seg[len(seg)-1])
	switch len(seg) % 4 {
	case 1:
		return false
	case 2:
		return last&0x0f == 0
	case 3:
		return last&0x03 == 0
	}
	return true
}

func b64Value(c byte) int {
	switch {
	case c >= 'A' && c <= 'Z':
		return int(c - 'A')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 26
	case c >= '0' && c <= '9':
		return int(c-'0') + 52
	case c == '-':
		return 62
	case c == '_':
		return 63
	}
	return -1
}
