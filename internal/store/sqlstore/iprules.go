package sqlstore

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// PutIPRule implements store.IPRules: an upsert keyed by the masked
// prefix. The reason and author go through cleanText.
func (q *queries) PutIPRule(ctx context.Context, r *store.IPRule) error {
	if !r.Prefix.IsValid() {
		return fmt.Errorf("sqlstore: put ip rule: invalid prefix")
	}
	var expires any
	if !r.ExpiresAt.IsZero() {
		expires = q.t(r.ExpiresAt)
	}
	_, err := q.exec(ctx, `INSERT INTO ip_rules (prefix, action, reason, created_by, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (prefix) DO UPDATE SET action = excluded.action, reason = excluded.reason,
			created_by = excluded.created_by, created_at = excluded.created_at, expires_at = excluded.expires_at`,
		r.Prefix.Masked().String(), r.Action, cleanText(r.Reason), cleanText(r.CreatedBy), q.t(r.CreatedAt), expires)
	if err != nil {
		return q.fail("put ip rule", err)
	}
	return nil
}

// DeleteIPRule implements store.IPRules.
func (q *queries) DeleteIPRule(ctx context.Context, prefix netip.Prefix) error {
	return q.execOne(ctx, "delete ip rule", `DELETE FROM ip_rules WHERE prefix = ?`, prefix.Masked().String())
}

// ListIPRules implements store.IPRules.
func (q *queries) ListIPRules(ctx context.Context, now time.Time) ([]*store.IPRule, error) {
	rows, err := q.query(ctx, `SELECT prefix, action, reason, created_by, created_at, expires_at FROM ip_rules
		WHERE expires_at IS NULL OR expires_at > ? ORDER BY prefix`, q.t(now))
	if err != nil {
		return nil, q.fail("list ip rules", err)
	}
	defer rows.Close()
	var out []*store.IPRule
	for rows.Next() {
		var (
			r       store.IPRule
			prefix  string
			expires *time.Time
		)
		if err := rows.Scan(&prefix, &r.Action, &r.Reason, &r.CreatedBy, timeCol{&r.CreatedAt}, nullTimeCol{&expires}); err != nil {
			return nil, q.fail("list ip rules", err)
		}
		if r.Prefix, err = netip.ParsePrefix(prefix); err != nil {
			return nil, fmt.Errorf("sqlstore: list ip rules: stored prefix %q: %w", prefix, err)
		}
		if expires != nil {
			r.ExpiresAt = *expires
		}
		out = append(out, &r)
	}
	if err := rows.Err(); err != nil {
		return nil, q.fail("list ip rules", err)
	}
	return out, nil
}

// PurgeIPRules implements store.IPRules.
func (q *queries) PurgeIPRules(ctx context.Context, cutoff time.Time) error {
	if _, err := q.exec(ctx, `DELETE FROM ip_rules WHERE expires_at IS NOT NULL AND expires_at < ?`, q.t(cutoff)); err != nil {
		return q.fail("purge ip rules", err)
	}
	return nil
}
