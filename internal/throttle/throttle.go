// Package throttle owns the first brute-force defence: counting attempts
// (sign-ins, sign-ups, re-authentications) per key class — client IP,
// account — in fixed windows on the ephemeral store, and refusing further
// attempts once a class's limit is reached. A success resets the account's
// counter, so the account limit bounds consecutive failures. If the shared store fails, counting falls
// back to this process's memory: limits degrade to per replica, never to
// "no limits" and never to "everyone blocked".
package throttle

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/ephemeral"
)

// Rule is the limit of one key class: at most Limit hits per Window.
type Rule struct {
	Limit  int64
	Window time.Duration
}

// Key names one counter: a class (which Rule applies) and an identifier
// (an IP, a normalized e-mail). Identifiers are hashed by nobody: they are
// the store's keys, never logged.
type Key struct {
	Class string
	ID    string
}

// Throttle counts hits against rules.
type Throttle struct {
	rules    map[string]Rule
	primary  ephemeral.Store
	fallback ephemeral.Store
	log      *slog.Logger
}

// New returns a Throttle counting in primary, or in fallback (this process's
// memory) when primary fails. fallback may be primary itself in embedded mode.
func New(rules map[string]Rule, primary, fallback ephemeral.Store, log *slog.Logger) *Throttle {
	return &Throttle{rules: rules, primary: primary, fallback: fallback, log: log}
}

func (t *Throttle) storeKey(k Key) string { return "throttle:" + k.Class + ":" + k.ID }

// Decision is the outcome of Attempt.
type Decision struct {
	// Wait is how long the caller must wait; 0 means go ahead.
	Wait time.Duration
	// Tripped is true only for the first refused attempt of a window, so
	// callers can record the event once instead of once per refusal.
	Tripped bool
}

// Attempt counts one attempt against the keys, in order, and reports whether
// the caller must wait. Counting comes first and is atomic per key, so a
// burst of parallel requests cannot slip past the limit between a check and
// a count. Counting stops at the first key over its limit: a throttled IP
// cannot keep creating counters for other keys. If neither the shared store
// nor the local fallback can count, the attempt is refused (fail closed).
func (t *Throttle) Attempt(ctx context.Context, keys ...Key) Decision {
	for _, k := range keys {
		rule, ok := t.rules[k.Class]
		if !ok {
			continue
		}
		n, ttl, err := t.primary.Incr(ctx, t.storeKey(k), rule.Window)
		if err != nil && t.fallback != t.primary {
			t.log.WarnContext(ctx, "throttle: shared store failed; using local counters", slog.Any("error", err))
			n, ttl, err = t.fallback.Incr(ctx, t.storeKey(k), rule.Window)
		}
		if err != nil {
			t.log.ErrorContext(ctx, "throttle: cannot count attempts; refusing", slog.String("class", k.Class), slog.Any("error", err))
			return Decision{Wait: rule.Window}
		}
		if n > rule.Limit {
			return Decision{Wait: ttl, Tripped: n == rule.Limit+1}
		}
	}
	return Decision{}
}

// Reset clears the given keys' counters (the account's after a successful
// sign-in).
func (t *Throttle) Reset(ctx context.Context, keys ...Key) {
	sk := make([]string, len(keys))
	for i, k := range keys {
		sk[i] = t.storeKey(k)
	}
	if err := t.primary.Delete(ctx, sk...); err != nil {
		t.log.WarnContext(ctx, "throttle: shared store failed on reset", slog.Any("error", err))
	}
	if t.fallback != t.primary {
		_ = t.fallback.Delete(ctx, sk...)
	}
}

// IPKey is the identifier of a client address for per-IP classes: the IPv4
// address, or the IPv6 /64 — one subscriber usually holds a whole /64, so
// counting single IPv6 addresses would give an attacker 2^64 fresh budgets.
func IPKey(ip netip.Addr) string {
	if ip.Is6() && !ip.Is4In6() {
		return netip.PrefixFrom(ip, 64).Masked().String()
	}
	return ip.Unmap().String()
}
