// Package gatehouse is the Go SDK of Gatehouse: net/http middleware and a
// verifier for Gatehouse access tokens (JWT, RFC 9068 profile) that checks
// signatures against the server's JWKS, pins algorithms, validates the
// claims and consults the server's revocation feed, failing closed when the
// feed goes stale.
package gatehouse
