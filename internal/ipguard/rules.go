package ipguard

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"

	"github.com/gatehouse-auth/gatehouse/internal/audit"
	"github.com/gatehouse-auth/gatehouse/internal/ephemeral"
	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// The broadest prefixes an operator may write, so that nobody bans (or
// exempts) the Internet by a typo: IPv4 /8, IPv6 /32.
const (
	MinBitsIPv4 = 8
	MinBitsIPv6 = 32
)

// MaxReason is the longest rule reason, in characters.
const MaxReason = 200

// ParsePrefix reads an operator's block: an address ("192.0.2.7", a /32
// or /128) or a CIDR prefix ("198.51.100.0/24", "2001:db8::/48"), masked.
// An IPv4-mapped IPv6 prefix becomes the IPv4 prefix it names; zones are
// refused.
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an address or a CIDR prefix", s)
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q is not an address or a CIDR prefix", s)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if p.Addr().Is4In6() && p.Bits() < 96 {
		return netip.Prefix{}, fmt.Errorf("%q: an IPv4-mapped prefix must be at least /96", s)
	}
	p, _ = normalize(p)
	return p, nil
}

// CheckRule refuses what an operator must not write: an unknown action, a
// prefix broader than /8 (IPv4) or /32 (IPv6), a reason longer than
// MaxReason characters or holding control characters.
func CheckRule(r *store.IPRule) error {
	if r.Action != store.IPAllow && r.Action != store.IPDeny {
		return fmt.Errorf("action must be %q or %q", store.IPAllow, store.IPDeny)
	}
	if err := CheckPrefix(r.Prefix); err != nil {
		return err
	}
	if utf8.RuneCountInString(r.Reason) > MaxReason {
		return fmt.Errorf("reason must be at most %d characters", MaxReason)
	}
	for _, c := range r.Reason {
		if c < 0x20 || c == 0x7f {
			return errors.New("reason must not contain control characters")
		}
	}
	return nil
}

// CheckPrefix refuses a prefix broader than /8 (IPv4) or /32 (IPv6).
func CheckPrefix(p netip.Prefix) error {
	least := MinBitsIPv6
	if p.Addr().Is4() {
		least = MinBitsIPv4
	}
	if p.Bits() < least {
		return fmt.Errorf("prefix %s is broader than /%d: refused", p, least)
	}
	return nil
}

// Put writes r (replacing the rule for its prefix) and the audit event e
// (type audit.IPRuleChanged; details prefix, action and op "put" are
// added) in one transaction. The caller announces the change.
func Put(ctx context.Context, db store.Store, r *store.IPRule, e *store.Event) error {
	e.Type = audit.IPRuleChanged
	audit.With(e, "prefix", r.Prefix.String())
	audit.With(e, "action", r.Action)
	audit.With(e, "op", "put")
	return db.InTx(ctx, func(tx store.Tx) error {
		if err := tx.IPRules().PutIPRule(ctx, r); err != nil {
			return err
		}
		return tx.Audit().AppendEvent(ctx, e)
	})
}

// Delete removes the rule for prefix and writes the audit event e (type
// audit.IPRuleChanged; details prefix, op "delete" and, when the rule is
// still live, its action) in one transaction: store.ErrNotFound if there
// is no rule. The caller announces the change.
func Delete(ctx context.Context, db store.Store, prefix netip.Prefix, e *store.Event) error {
	e.Type = audit.IPRuleChanged
	audit.With(e, "prefix", prefix.String())
	audit.With(e, "op", "delete")
	return db.InTx(ctx, func(tx store.Tx) error {
		live, err := tx.IPRules().ListIPRules(ctx, e.At)
		if err != nil {
			return err
		}
		for _, r := range live {
			if r.Prefix == prefix {
				audit.With(e, "action", r.Action)
			}
		}
		if err := tx.IPRules().DeleteIPRule(ctx, prefix); err != nil {
			return err
		}
		return tx.Audit().AppendEvent(ctx, e)
	})
}

// Announce tells every replica listening on eph to reload its rules.
func Announce(ctx context.Context, eph ephemeral.Store) error {
	return eph.Publish(ctx, Channel, []byte("changed"))
}

// Forget clears the detector's ban marker of prefix, so that stuffing from
// it can be banned again at once (after an operator deleted its ban).
func Forget(ctx context.Context, eph ephemeral.Store, prefix netip.Prefix) error {
	return eph.Delete(ctx, "stuff:ban:"+prefix.String())
}
