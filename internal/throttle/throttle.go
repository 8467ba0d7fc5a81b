// Package throttle owns rate limiting: one GCRA engine (in memory, or on
// Redis shared by every replica) applied per key class — client IP,
// account, (account, IP) pair, endpoint class — by every sensitive
// endpoint; the RateLimit and RateLimit-Policy response headers; and the
// progressive delay between failed sign-ins of one (account, IP) pair.
//
// If Redis fails, decisions fall back to this process's memory: limits
// degrade to per replica (logged and counted), never to "no limits" and
// never to "everyone blocked". If neither can decide, the attempt is
// refused (fail closed).
package throttle

import (
	"context"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"
)

// Rule is the limit of one key class: at most Limit hits per Window, as a
// GCRA: a fresh key may spend its whole Limit at once, then regains one
// hit every Window/Limit.
type Rule struct {
	Limit  int64
	Window time.Duration
	// PerIP marks a class keyed by client address: requests from an
	// allow-listed block (see [WithExempt]) are not counted against it.
	PerIP bool
}

// Key names one counter: a class (which Rule applies) and an identifier
// (an IP, a normalized e-mail). Identifiers are the limiter's keys, never
// logged.
type Key struct {
	Class string
	ID    string
}

// Throttle decides hits against rules.
type Throttle struct {
	rules    map[string]Rule
	primary  Limiter
	fallback Limiter
	log      *slog.Logger
	// downUntil (unix nanoseconds): after a failure of the primary, the
	// fallback decides alone until then, so that an outage costs each
	// request no connection attempt and timeout.
	downUntil atomic.Int64
	// OnFallback, if set, is called each time the primary limiter failed
	// and the fallback decided (a metric).
	OnFallback func()
}

// New returns a Throttle deciding with primary, or with fallback (this
// process's memory) when primary fails. fallback may be primary itself in
// embedded mode.
func New(rules map[string]Rule, primary, fallback Limiter, log *slog.Logger) *Throttle {
	return &Throttle{rules: rules, primary: primary, fallback: fallback, log: log}
}

func storeKey(k Key) string { return "throttle:" + k.Class + ":" + k.ID }

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
// cannot keep creating counters for other keys. If neither the shared
// limiter nor the local fallback can decide, the attempt is refused (fail
// closed). The state of every per-IP key decided is reported to the
// request's RateLimit headers (see [Headers]).
func (t *Throttle) Attempt(ctx context.Context, keys ...Key) Decision {
	exempt := exempted(ctx)
	for _, k := range keys {
		rule, ok := t.rules[k.Class]
		if !ok || rule.Limit <= 0 || (rule.PerIP && exempt) {
			continue
		}
		res, err := t.allow(ctx, storeKey(k), rule)
		if err != nil {
			t.log.ErrorContext(ctx, "throttle: cannot decide; refusing", slog.String("class", k.Class), slog.Any("error", err))
			return Decision{Wait: rule.Window / time.Duration(rule.Limit)}
		}
		if rule.PerIP {
			// Only per-address state is shown: the state of a per-account
			// or per-address-named counter would tell a caller what other
			// requests (or background notices) did with that account.
			report(ctx, k.Class, rule, res)
		}
		if !res.Allowed {
			return Decision{Wait: res.RetryAfter, Tripped: t.trip(ctx, k, rule)}
		}
	}
	return Decision{}
}

// retryPrimary is how long the fallback decides alone after the primary
// failed.
const retryPrimary = 5 * time.Second

// allow decides with the primary limiter, or the fallback if it fails or
// failed less than retryPrimary ago.
func (t *Throttle) allow(ctx context.Context, key string, rule Rule) (Result, error) {
	if t.fallback == t.primary {
		return t.primary.Allow(ctx, key, rule)
	}
	if time.Now().UnixNano() >= t.downUntil.Load() {
		res, err := t.primary.Allow(ctx, key, rule)
		if err == nil {
			return res, nil
		}
		if t.downUntil.Swap(time.Now().Add(retryPrimary).UnixNano()) < time.Now().UnixNano() {
			t.log.WarnContext(ctx, "throttle: shared limiter failed; deciding in this replica's memory", slog.Any("error", err))
		}
	}
	if t.OnFallback != nil {
		t.OnFallback()
	}
	return t.fallback.Allow(ctx, key, rule)
}

// trip reports whether this refusal is the first of k's window: a marker
// key that allows one hit per window.
func (t *Throttle) trip(ctx context.Context, k Key, rule Rule) bool {
	res, err := t.allow(ctx, "tripped:"+storeKey(k), Rule{Limit: 1, Window: rule.Window})
	return err == nil && res.Allowed
}

// Reset clears the given keys' state (the account's after a successful
// sign-in), in the shared limiter and in the fallback.
func (t *Throttle) Reset(ctx context.Context, keys ...Key) {
	sk := make([]string, len(keys))
	for i, k := range keys {
		sk[i] = storeKey(k)
	}
	if err := t.primary.Reset(ctx, sk...); err != nil {
		t.log.WarnContext(ctx, "throttle: shared limiter failed on reset", slog.Any("error", err))
	}
	if t.fallback != t.primary {
		_ = t.fallback.Reset(ctx, sk...)
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

type exemptKey struct{}

// WithExempt marks ctx as a request from an allow-listed address block:
// per-IP classes do not count it.
func WithExempt(ctx context.Context) context.Context {
	return context.WithValue(ctx, exemptKey{}, true)
}

func exempted(ctx context.Context) bool {
	v, _ := ctx.Value(exemptKey{}).(bool)
	return v
}
