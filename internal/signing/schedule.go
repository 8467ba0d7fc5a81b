package signing

import (
	"cmp"
	"slices"
	"sort"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// The states of a signing key, as reported by List.
const (
	StatePending  = "pending"  // published, signs from ActivatesAt
	StateActive   = "active"   // published and signing
	StateRetiring = "retiring" // published until the tokens it signed have expired
	StateExpired  = "expired"  // neither published nor signing; kept for the record
)

// Status is the state of one signing key at some instant.
type Status struct {
	ID, Algorithm, State   string
	CreatedAt, ActivatesAt time.Time
	// RetiredAt is when the key's successor activated; UnpublishAt is when
	// the key leaves the JWKS (RetiredAt + TokenLifetime). Both are nil
	// while the key has no activated successor.
	RetiredAt, UnpublishAt *time.Time
}

// sortKeys sorts keys by ActivatesAt, then ID: the schedule's order.
func sortKeys(keys []*store.SigningKey) {
	slices.SortFunc(keys, func(a, b *store.SigningKey) int {
		if c := a.ActivatesAt.Compare(b.ActivatesAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
}

// timeline holds the activation times of keys in schedule order. Every
// state follows from it, the token lifetime and the clock.
type timeline []time.Time

// active returns the index of the key that signs at now, the latest one
// activated, or -1 if every key is still pending.
func (tl timeline) active(now time.Time) int {
	return sort.Search(len(tl), func(i int) bool { return tl[i].After(now) }) - 1
}

// state returns the state of the i-th key at now and, once its successor
// has activated, when that happened.
func (tl timeline) state(i int, lifetime time.Duration, now time.Time) (state string, retiredAt time.Time) {
	a := tl.active(now)
	switch {
	case i > a:
		return StatePending, time.Time{}
	case i == a:
		return StateActive, time.Time{}
	}
	// Keys after i up to a have activated, so i+1 is the successor.
	retiredAt = tl[i+1]
	if now.Before(retiredAt.Add(lifetime)) {
		return StateRetiring, retiredAt
	}
	return StateExpired, retiredAt
}

// published reports whether the i-th key is in the JWKS at now.
func (tl timeline) published(i int, lifetime time.Duration, now time.Time) bool {
	s, _ := tl.state(i, lifetime, now)
	return s != StateExpired
}

// schedule returns the status of every key at now, in schedule order. It
// sorts keys in place.
func schedule(keys []*store.SigningKey, lifetime time.Duration, now time.Time) []Status {
	sortKeys(keys)
	tl := make(timeline, len(keys))
	for i, k := range keys {
		tl[i] = k.ActivatesAt
	}
	out := make([]Status, len(keys))
	for i, k := range keys {
		state, retired := tl.state(i, lifetime, now)
		out[i] = Status{ID: k.ID, Algorithm: k.Algorithm, State: state, CreatedAt: k.CreatedAt, ActivatesAt: k.ActivatesAt}
		if !retired.IsZero() {
			unpublish := retired.Add(lifetime)
			out[i].RetiredAt, out[i].UnpublishAt = &retired, &unpublish
		}
	}
	return out
}
