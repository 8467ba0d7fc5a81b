// Package gatehouse is the Go SDK of Gatehouse: net/http middleware and a
// verifier for Gatehouse access tokens (JWT, RFC 9068 profile) that checks
// signatures against the server's JWKS, pins algorithms, validates the
// claims and consults the server's revocation feed, failing closed when the
// feed goes stale.
//
// # Usage
//
// A resource server needs its issuer URL, audience and resource-server
// credentials:
//
//	gh, err := gatehouse.New(ctx, gatehouse.Config{
//		Issuer:       "https://auth.example.com",
//		Audience:     "api://orders",
//		ClientID:     os.Getenv("GATEHOUSE_CLIENT_ID"),
//		ClientSecret: os.Getenv("GATEHOUSE_CLIENT_SECRET"),
//	})
//	...
//	mux.Handle("GET /orders", gh.Middleware(ordersHandler))
//
// and in the handler:
//
//	claims, _ := gatehouse.ClaimsFromContext(r.Context())
//
// Lower-level pieces (NewVerifier, NewRemoteKeySet, NewStaticKeySet,
// NewRevocationFeed, Middleware) can be combined directly.
//
// # What Verify checks
//
//   - At most MaxTokenSize bytes; JWS compact serialization only, so exactly
//     one signature and no unprotected header.
//   - "alg" is EdDSA or ES256 (or the configured subset); "none", HMAC, RSA
//     and everything else is refused before any key is looked up.
//   - "typ" is "at+jwt" or "application/at+jwt"; "kid" is present and sane.
//   - Headers that carry or point at keys ("jwk", "jku", "x5u", "x5c") and
//     "crit"/"b64" are refused: keys come only from the KeySource.
//   - The key named by "kid" is pinned to the token's algorithm: its own
//     "alg" must match, and its type too (Ed25519 for EdDSA, P-256 for
//     ES256). Then go-jose verifies the signature.
//   - The claims decode strictly (exact, unique member names; JSON types as
//     RFC 7519 and RFC 9068 define them); iss matches exactly, aud contains
//     the audience, exp/nbf/iat hold within the leeway, and iss, sub, aud,
//     exp, iat, jti and sid are present.
//   - The session ("sid") is not revoked. A RevocationFeed answers
//     ErrRevocationStale when it has no current state, and Verify fails.
//
// Verified tokens are cached by SHA-256 of the token; a cache hit skips
// parsing and the signature check, but still checks expiry, that the
// signing key is still in the key set, and revocation.
//
// Errors wrap ErrInvalidToken, ErrRevoked or ErrRevocationStale (test with
// errors.Is); Middleware maps them to 401 and 503 responses. Tokens are
// never logged, and never included in errors or responses.
package gatehouse
