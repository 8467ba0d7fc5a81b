package storetest

import (
	"math"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

var auditTests = []storeTest{
	{"AppendAndList", testAppendAndListEvents},
	{"Pagination", testEventPagination},
	{"PerUserIsolation", testEventIsolation},
}

func newEvent(typ, userID string, i int) *store.Event {
	return &store.Event{
		Type:      typ,
		UserID:    userID,
		SessionID: "s1",
		IP:        "198.51.100.7",
		UserAgent: "Mozilla/5.0",
		At:        base.Add(time.Duration(i) * time.Second),
		Details:   map[string]string{"n": string(rune('a' + i%26))},
	}
}

func mustAppend(t *testing.T, s store.Tx, e *store.Event) *store.Event {
	t.Helper()
	if err := s.Audit().AppendEvent(t.Context(), e); err != nil {
		t.Fatalf("AppendEvent(%s): %v", e.Type, err)
	}
	return e
}

// wantEvents is the events as a store returns them.
func wantEvents(es ...*store.Event) []*store.Event {
	out := make([]*store.Event, len(es))
	for i, e := range es {
		w := *e
		w.At = norm(e.At)
		out[i] = &w
	}
	return out
}

func testAppendAndListEvents(t *testing.T, s store.Store) {
	e1 := mustAppend(t, s, newEvent("signin.succeeded", "u1", 1))
	e2 := mustAppend(t, s, &store.Event{Type: "signin.failed", UserID: "u1", At: base.Add(2 * time.Second)})
	e3 := mustAppend(t, s, newEvent("password.changed", "u1", 3))
	if e1.ID <= 0 || e2.ID <= e1.ID || e3.ID <= e2.ID {
		t.Fatalf("event ids %d, %d, %d: want positive and increasing", e1.ID, e2.ID, e3.ID)
	}
	got, err := s.Audit().ListUserEvents(t.Context(), "u1", 0, 10)
	if err != nil {
		t.Fatalf("ListUserEvents: %v", err)
	}
	if d := diff(wantEvents(e3, e2, e1), got); d != "" {
		t.Errorf("ListUserEvents (-want +got):\n%s", d)
	}
}

func testEventPagination(t *testing.T, s store.Store) {
	var ev []*store.Event // u1's events, oldest first
	for i := range 7 {
		ev = append(ev, mustAppend(t, s, newEvent("e", "u1", i)))
		mustAppend(t, s, newEvent("e", "u2", i)) // interleaved ids
	}
	for _, tc := range []struct {
		name   string
		before int64
		limit  int
		want   []*store.Event
	}{
		{"newest page", 0, 3, []*store.Event{ev[6], ev[5], ev[4]}},
		{"negative before means newest", -1, 2, []*store.Event{ev[6], ev[5]}},
		{"max before", math.MaxInt64, 1, []*store.Event{ev[6]}},
		{"before a cursor", ev[4].ID, 2, []*store.Event{ev[3], ev[2]}},
		{"cursor is exclusive", ev[1].ID, 10, []*store.Event{ev[0]}},
		{"before the oldest", ev[0].ID, 10, nil},
		{"limit beyond the end", 0, 100, []*store.Event{ev[6], ev[5], ev[4], ev[3], ev[2], ev[1], ev[0]}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Audit().ListUserEvents(t.Context(), "u1", tc.before, tc.limit)
			if err != nil {
				t.Fatalf("ListUserEvents: %v", err)
			}
			if d := diff(wantEvents(tc.want...), got); d != "" {
				t.Errorf("ListUserEvents(before=%d, limit=%d) (-want +got):\n%s", tc.before, tc.limit, d)
			}
		})
	}
	t.Run("walk every page", func(t *testing.T) {
		var walked []*store.Event
		before := int64(0)
		for range len(ev) + 1 {
			page, err := s.Audit().ListUserEvents(t.Context(), "u1", before, 2)
			if err != nil {
				t.Fatalf("ListUserEvents: %v", err)
			}
			if len(page) == 0 {
				break
			}
			walked = append(walked, page...)
			before = page[len(page)-1].ID
		}
		want := wantEvents(ev[6], ev[5], ev[4], ev[3], ev[2], ev[1], ev[0])
		if d := diff(want, walked); d != "" {
			t.Errorf("walked pages (-want +got):\n%s", d)
		}
	})
}

func testEventIsolation(t *testing.T, s store.Store) {
	a := mustAppend(t, s, newEvent("e", "alice", 1))
	mustAppend(t, s, newEvent("e", "bob", 2))
	mustAppend(t, s, newEvent("signin.failed", "", 3)) // unknown actor
	mustAppend(t, s, newEvent("e", "alice2", 4))       // a prefix is not a match
	for _, tc := range []struct {
		user string
		want []*store.Event
	}{
		{"alice", []*store.Event{a}},
		{"ali", nil},
		{"carol", nil},
	} {
		t.Run(tc.user, func(t *testing.T) {
			got, err := s.Audit().ListUserEvents(t.Context(), tc.user, 0, 10)
			if err != nil {
				t.Fatalf("ListUserEvents: %v", err)
			}
			if d := diff(wantEvents(tc.want...), got); d != "" {
				t.Errorf("ListUserEvents(%q) (-want +got):\n%s", tc.user, d)
			}
		})
	}
}
