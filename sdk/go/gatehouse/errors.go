package gatehouse

import "errors"

// Sentinel errors. Verify wraps them with a reason; test with errors.Is.
var (
	// ErrInvalidToken: the token is malformed, badly signed, not (or no
	// longer) valid, or not meant for this audience. Respond 401.
	ErrInvalidToken = errors.New("gatehouse: invalid token")

	// ErrRevoked: the token's session has been revoked. Respond 401.
	ErrRevoked = errors.New("gatehouse: token revoked")

	// ErrRevocationStale: the revocation state is not known to be current
	// (no snapshot yet, or the feed has been silent for longer than
	// MaxStaleness), so no token can be accepted. Respond 503.
	ErrRevocationStale = errors.New("gatehouse: revocation feed is stale")

	// ErrUnknownKey: the key set has no usable key with the token's kid.
	// Verify reports it wrapped together with ErrInvalidToken.
	ErrUnknownKey = errors.New("gatehouse: unknown signing key")
)
