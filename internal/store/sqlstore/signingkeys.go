package sqlstore

import (
	"context"
	"fmt"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

const signingKeyColumns = `id, algorithm, public_jwk, private_sealed, kek_version, created_at, activates_at`

// CreateSigningKey implements store.SigningKeys. PublicJWK must be a JSON
// object; it is stored as text, byte for byte.
func (q *queries) CreateSigningKey(ctx context.Context, k *store.SigningKey) error {
	_, err := q.exec(ctx, `INSERT INTO signing_keys (`+signingKeyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.Algorithm, string(k.PublicJWK), k.PrivateSealed, k.KEKVersion, q.t(k.CreatedAt), q.t(k.ActivatesAt))
	if q.d.isUniqueViolation(err) {
		return fmt.Errorf("sqlstore: create signing key: id already in use: %w", store.ErrConflict)
	}
	if err != nil {
		return q.fail("create signing key", err)
	}
	return nil
}

// ListSigningKeys implements store.SigningKeys. The table holds a handful
// of rows per rotation period, so it is read whole. Ids compare bytewise on
// both backends.
func (q *queries) ListSigningKeys(ctx context.Context) ([]*store.SigningKey, error) {
	rows, err := q.query(ctx, `SELECT `+signingKeyColumns+` FROM signing_keys ORDER BY activates_at, id`)
	if err != nil {
		return nil, q.fail("list signing keys", err)
	}
	defer rows.Close()
	var out []*store.SigningKey
	for rows.Next() {
		var k store.SigningKey
		if err := rows.Scan(&k.ID, &k.Algorithm, &k.PublicJWK, &k.PrivateSealed, &k.KEKVersion,
			timeCol{&k.CreatedAt}, timeCol{&k.ActivatesAt}); err != nil {
			return nil, q.fail("list signing keys", err)
		}
		out = append(out, &k)
	}
	if err := rows.Err(); err != nil {
		return nil, q.fail("list signing keys", err)
	}
	return out, nil
}
