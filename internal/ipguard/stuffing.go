package ipguard

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/audit"
	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// Detector is the CreatedBy of stuffing bans.
const Detector = "stuffing-detector"

// detectionTimeout bounds the detector's work for one failure. It runs
// detached from the request: a client that hangs up must not abort a ban
// half-way.
const detectionTimeout = 5 * time.Second

// LoginFailed records a failed sign-in on account (any stable name of it:
// the normalised e-mail; unknown accounts count like known ones, or a ban
// would tell which exist) from ip, and bans the address or its block when
// too many distinct accounts failed from it within the window. Failures
// of the ephemeral store are logged and skip detection: sign-in never
// waits on it. An allow-listed address is never counted or banned.
func (g *Guard) LoginFailed(ctx context.Context, ip netip.Addr, account string) {
	if !ip.IsValid() || account == "" {
		return
	}
	ip = ip.Unmap().WithZone("")
	now := g.now()
	// Allowed: never banned. Denied: already blocked, nothing to add.
	if g.rules.Load().match(ip, 128, now) != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), detectionTimeout)
	defer cancel()
	sum := sha256.Sum256([]byte(account))
	acct := hex.EncodeToString(sum[:8])
	epoch := strconv.FormatInt(now.UnixNano()/int64(g.cfg.StuffingWindow), 36)
	for _, c := range []struct {
		prefix netip.Prefix
		limit  int
	}{
		{addressPrefix(ip), g.cfg.StuffingAccounts},
		{blockPrefix(ip), g.cfg.StuffingAccountsPerBlock},
	} {
		if c.limit <= 0 {
			continue
		}
		n, err := g.countDistinct(ctx, c.prefix, epoch, acct)
		if err != nil {
			g.log.WarnContext(ctx, "ipguard: stuffing detection skipped: ephemeral store failed", slog.Any("error", err))
			return
		}
		if n >= int64(c.limit) {
			g.ban(ctx, ip, c.prefix, n, now)
		}
	}
}

// countDistinct marks acct as failed from prefix in this window and
// returns the number of distinct accounts marked, or 0 if acct was
// already marked (nothing new to decide). Windows are aligned on
// multiples of StuffingWindow, so a window's marks and count expire
// together.
func (g *Guard) countDistinct(ctx context.Context, prefix netip.Prefix, epoch, acct string) (int64, error) {
	base := "stuff:" + prefix.String() + ":" + epoch
	fresh, err := g.eph.SetNX(ctx, base+":seen:"+acct, []byte{1}, g.cfg.StuffingWindow)
	if err != nil || !fresh {
		return 0, err
	}
	n, _, err := g.eph.Incr(ctx, base+":n", g.cfg.StuffingWindow)
	return n, err
}

// addressPrefix is the block counted as one address (throttle.IPKey): the
// IPv4 address, or the IPv6 /64.
func addressPrefix(ip netip.Addr) netip.Prefix {
	if ip.Is4() {
		return netip.PrefixFrom(ip, 32)
	}
	p, _ := ip.Prefix(64)
	return p
}

// blockPrefix is the wider block counted too: an IPv4 /24, an IPv6 /56
// (what ISPs commonly give one customer: a /48 would let one customer
// frame hundreds of neighbours).
func blockPrefix(ip netip.Addr) netip.Prefix {
	bits := 56
	if ip.Is4() {
		bits = 24
	}
	p, _ := ip.Prefix(bits)
	return p
}

// ban denies prefix for BanDuration, once: of every replica and request
// that crosses the threshold, the one that takes the ban marker in the
// ephemeral store writes the rule and its audit event, in one transaction
// that first checks that no allow rule and no longer-lasting deny rule
// already covers the prefix (an operator's permanent rule is never
// replaced by an expiring ban).
func (g *Guard) ban(ctx context.Context, ip netip.Addr, prefix netip.Prefix, accounts int64, now time.Time) {
	until := now.Add(g.cfg.BanDuration)
	if covered(g.rules.Load(), prefix, until, now) {
		return
	}
	marker := "stuff:ban:" + prefix.String()
	won, err := g.eph.SetNX(ctx, marker, []byte(g.id), g.cfg.BanDuration)
	if err != nil {
		g.log.WarnContext(ctx, "ipguard: stuffing ban skipped: ephemeral store failed", slog.Any("error", err))
		return
	}
	if !won {
		return
	}
	rule := &store.IPRule{
		Prefix: prefix, Action: store.IPDeny, CreatedBy: Detector,
		Reason:    fmt.Sprintf("%d accounts failed in %s", accounts, g.cfg.StuffingWindow),
		CreatedAt: now, ExpiresAt: until,
	}
	written := false
	err = g.db.InTx(ctx, func(tx store.Tx) error {
		live, err := tx.IPRules().ListIPRules(ctx, now)
		if err != nil {
			return err
		}
		if covered(buildRuleSet(live, 0), prefix, until, now) {
			return nil
		}
		if err := tx.IPRules().PutIPRule(ctx, rule); err != nil {
			return err
		}
		written = true
		return tx.Audit().AppendEvent(ctx, &store.Event{
			Type: audit.IPBanned, IP: ip.String(), At: now,
			Details: map[string]string{
				"prefix": prefix.String(), "accounts": strconv.FormatInt(accounts, 10),
				"expires_at": until.UTC().Format(time.RFC3339),
			},
		})
	})
	if err != nil {
		g.log.ErrorContext(ctx, "ipguard: stuffing ban not written", slog.String("prefix", prefix.String()), slog.Any("error", err))
		// Let the next failure over the threshold try again.
		if err := g.eph.Delete(ctx, marker); err != nil {
			g.log.WarnContext(ctx, "ipguard: ban marker not cleared", slog.Any("error", err))
		}
		return
	}
	if !written {
		return
	}
	g.add(rule)
	if g.decisions != nil {
		g.decisions.WithLabelValues("ip_ban", "banned").Inc()
	}
	g.log.WarnContext(ctx, "ipguard: credential stuffing: address block banned",
		slog.String("prefix", prefix.String()), slog.Int64("accounts", accounts),
		slog.Duration("window", g.cfg.StuffingWindow), slog.Time("until", until))
	g.announce(ctx)
}

// covered reports whether prefix needs no ban until until: the most
// specific live rule holding the whole prefix allows it, or denies it for
// at least as long.
func covered(rs *ruleSet, prefix netip.Prefix, until, now time.Time) bool {
	r := rs.match(prefix.Addr(), prefix.Bits(), now)
	if r == nil {
		return false
	}
	return r.Action == store.IPAllow || r.ExpiresAt.IsZero() || !r.ExpiresAt.Before(until)
}

// announce tells every replica (this one included) to reload.
func (g *Guard) announce(ctx context.Context) {
	g.requestReload()
	if err := Announce(ctx, g.eph); err != nil {
		g.log.WarnContext(ctx, "ipguard: rule change not announced; other replicas reload within their refresh interval", slog.Any("error", err))
	}
}
