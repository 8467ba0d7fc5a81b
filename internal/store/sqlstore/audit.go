package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"math"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

const eventColumns = `id, type, user_id, session_id, ip, user_agent, at, details`

// AppendEvent implements store.Audit. Details are stored as a JSON object
// (jsonb on PostgreSQL); they, IP and UserAgent go through cleanText so
// that attacker-supplied bytes can never make an audit write fail.
func (q *queries) AppendEvent(ctx context.Context, e *store.Event) error {
	details := []byte("{}")
	if len(e.Details) > 0 {
		clean := make(map[string]string, len(e.Details))
		for k, v := range e.Details {
			clean[cleanText(k)] = cleanText(v)
		}
		var err error
		if details, err = json.Marshal(clean); err != nil {
			return fmt.Errorf("sqlstore: append event: encode details: %w", err)
		}
	}
	var id int64
	err := q.writeQueryRow(ctx, `INSERT INTO audit_events (type, user_id, session_id, ip, user_agent, at, details)
		VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		e.Type, e.UserID, e.SessionID, cleanText(e.IP), cleanText(e.UserAgent), q.t(e.At), string(details)).Scan(&id)
	if err != nil {
		return q.fail("append event", err)
	}
	e.ID = id
	return nil
}

// ListUserEvents implements store.Audit, paging backwards by id through the
// (user_id, id) index. limit must be positive.
func (q *queries) ListUserEvents(ctx context.Context, userID string, before int64, limit int) ([]*store.Event, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("sqlstore: list user events: limit must be positive, got %d", limit)
	}
	if before <= 0 {
		before = math.MaxInt64
	}
	rows, err := q.query(ctx, `SELECT `+eventColumns+` FROM audit_events
		WHERE user_id = ? AND id < ? ORDER BY id DESC LIMIT ?`, userID, before, limit)
	if err != nil {
		return nil, q.fail("list user events", err)
	}
	defer rows.Close()
	var out []*store.Event
	for rows.Next() {
		var (
			e       store.Event
			details []byte
		)
		if err := rows.Scan(&e.ID, &e.Type, &e.UserID, &e.SessionID, &e.IP, &e.UserAgent,
			timeCol{&e.At}, &details); err != nil {
			return nil, q.fail("list user events", err)
		}
		if err := json.Unmarshal(details, &e.Details); err != nil {
			return nil, fmt.Errorf("sqlstore: list user events: decode details of event %d: %w", e.ID, err)
		}
		if len(e.Details) == 0 {
			e.Details = nil
		}
		out = append(out, &e)
	}
	if err := rows.Err(); err != nil {
		return nil, q.fail("list user events", err)
	}
	return out, nil
}
