package audit

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// EventJSON is an event as the admin API, `gatehouse audit export` and
// the streaming sinks write it. Seq, prev_hash and hash (hex) are absent
// while the event is unsealed. With these fields a receiver can recompute
// LinkHash and check the chain itself.
type EventJSON struct {
	ID        int64             `json:"id"`
	Seq       int64             `json:"seq,omitempty"`
	Type      string            `json:"type"`
	At        time.Time         `json:"at"`
	UserID    string            `json:"user_id,omitempty"`
	SessionID string            `json:"session_id,omitempty"`
	IP        string            `json:"ip,omitempty"`
	UserAgent string            `json:"user_agent,omitempty"`
	Details   map[string]string `json:"details,omitempty"`
	PrevHash  string            `json:"prev_hash,omitempty"`
	Hash      string            `json:"hash,omitempty"`
}

// ToJSON converts e for output.
func ToJSON(e *store.Event) EventJSON {
	j := EventJSON{
		ID: e.ID, Seq: e.Seq, Type: e.Type, At: e.At.UTC(), UserID: e.UserID, SessionID: e.SessionID,
		IP: e.IP, UserAgent: e.UserAgent, Details: e.Details,
	}
	if e.Seq > 0 {
		j.PrevHash, j.Hash = hex.EncodeToString(e.PrevHash), hex.EncodeToString(e.Hash)
	}
	return j
}

// FilterField is a filter input that is not valid; Field names it (user,
// type, ip, since or until).
type FilterField struct {
	Field  string
	Reason string
}

func (e *FilterField) Error() string { return e.Field + ": " + e.Reason }

// maxFilterText bounds the user and type filters.
const maxFilterText = 200

// ParseFilter builds the filter of the admin API and of `gatehouse audit
// export` from its text inputs; empty ones match everything. ip must be an
// IP address (it is compared in canonical form), since and until RFC 3339
// times with since before until. A bad input is a *FilterField.
func ParseFilter(user, typ, ip, since, until string) (store.EventFilter, error) {
	var f store.EventFilter
	for _, t := range []struct{ name, v string }{{"user", user}, {"type", typ}} {
		if len(t.v) > maxFilterText || !utf8.ValidString(t.v) || strings.IndexFunc(t.v, unicode.IsControl) >= 0 {
			return f, &FilterField{t.name, fmt.Sprintf("must be at most %d characters without control characters", maxFilterText)}
		}
	}
	f.UserID, f.Type = user, typ
	if ip != "" {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return f, &FilterField{"ip", "must be an IPv4 or IPv6 address"}
		}
		f.IP = a.Unmap().String()
	}
	for _, t := range []struct {
		name, v string
		dst     *time.Time
	}{{"since", since, &f.Since}, {"until", until, &f.Until}} {
		if t.v == "" {
			continue
		}
		v, err := time.Parse(time.RFC3339, t.v)
		if err != nil {
			return f, &FilterField{t.name, "must be an RFC 3339 time, e.g. 2025-03-14T15:09:26Z"}
		}
		*t.dst = v
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return f, &FilterField{"until", "must be after since"}
	}
	return f, nil
}

// exportPage is how many events Export reads at a time.
const exportPage = 500

// Export writes every event matching f with ID > f.After as JSON lines,
// oldest first, reading one page at a time (f.Limit is ignored). page, if
// not nil, runs after each page is written (to flush, extend a deadline).
func Export(ctx context.Context, a store.Audit, f store.EventFilter, w io.Writer, page func() error) error {
	f.Limit = exportPage
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for {
		events, err := a.QueryEvents(ctx, f)
		if err != nil {
			return fmt.Errorf("audit: export: %w", err)
		}
		for _, e := range events {
			if err := enc.Encode(ToJSON(e)); err != nil {
				return fmt.Errorf("audit: export: %w", err)
			}
		}
		if page != nil {
			if err := page(); err != nil {
				return err
			}
		}
		if len(events) < exportPage {
			return nil
		}
		f.After = events[len(events)-1].ID
	}
}
