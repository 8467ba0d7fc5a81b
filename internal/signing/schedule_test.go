package signing

import (
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

func TestSchedule(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	const life = 10 * time.Minute
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	type key struct {
		id        string
		activates time.Duration // after t0
	}
	type want struct {
		id, state string
		retired   time.Duration // after t0; -1 = not retired
	}
	const notRetired = -1
	tests := []struct {
		name string
		keys []key
		now  time.Duration
		want []want
	}{
		{"no keys", nil, 0, []want{}},
		{"single active", []key{{"a", 0}}, time.Hour, []want{{"a", StateActive, notRetired}}},
		{"active from its ActivatesAt on", []key{{"a", time.Hour}}, time.Hour, []want{{"a", StateActive, notRetired}}},
		{"single pending", []key{{"a", time.Hour}}, time.Hour - 1, []want{{"a", StatePending, notRetired}}},
		{"rotated in, not yet signing", []key{{"a", 0}, {"b", time.Hour}}, 30 * time.Minute,
			[]want{{"a", StateActive, notRetired}, {"b", StatePending, notRetired}}},
		{"successor activated", []key{{"a", 0}, {"b", time.Hour}}, time.Hour,
			[]want{{"a", StateRetiring, time.Hour}, {"b", StateActive, notRetired}}},
		{"retiring until the lifetime has passed", []key{{"a", 0}, {"b", time.Hour}}, time.Hour + life - 1,
			[]want{{"a", StateRetiring, time.Hour}, {"b", StateActive, notRetired}}},
		{"expired once the lifetime has passed", []key{{"a", 0}, {"b", time.Hour}}, time.Hour + life,
			[]want{{"a", StateExpired, time.Hour}, {"b", StateActive, notRetired}}},
		{"three generations", []key{{"a", 0}, {"b", time.Hour}, {"c", 2 * time.Hour}}, 2*time.Hour + time.Minute,
			[]want{{"a", StateExpired, time.Hour}, {"b", StateRetiring, 2 * time.Hour}, {"c", StateActive, notRetired}}},
		{"successor is the next activated key, not the active one", []key{{"a", 0}, {"b", time.Hour}, {"c", time.Hour + time.Minute}}, time.Hour + 2*time.Minute,
			[]want{{"a", StateRetiring, time.Hour}, {"b", StateRetiring, time.Hour + time.Minute}, {"c", StateActive, notRetired}}},
		{"two pending keys", []key{{"a", 0}, {"b", time.Hour}, {"c", 2 * time.Hour}}, time.Minute,
			[]want{{"a", StateActive, notRetired}, {"b", StatePending, notRetired}, {"c", StatePending, notRetired}}},
		{"all pending", []key{{"a", time.Hour}, {"b", 2 * time.Hour}}, 0,
			[]want{{"a", StatePending, notRetired}, {"b", StatePending, notRetired}}},
		{"same ActivatesAt: the larger ID is active", []key{{"b", 0}, {"a", 0}}, time.Minute,
			[]want{{"a", StateRetiring, 0}, {"b", StateActive, notRetired}}},
		{"input order does not matter", []key{{"c", 2 * time.Hour}, {"a", 0}, {"b", time.Hour}}, 65 * time.Minute,
			[]want{{"a", StateRetiring, time.Hour}, {"b", StateActive, notRetired}, {"c", StatePending, notRetired}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var keys []*store.SigningKey
			for _, k := range tt.keys {
				keys = append(keys, &store.SigningKey{ID: k.id, Algorithm: EdDSA, CreatedAt: t0.Add(-time.Hour), ActivatesAt: at(k.activates)})
			}
			got := schedule(keys, life, at(tt.now))
			if len(got) != len(tt.want) {
				t.Fatalf("got %d statuses, want %d", len(got), len(tt.want))
			}
			for i, w := range tt.want {
				g := got[i]
				if g.ID != w.id || g.State != w.state {
					t.Errorf("#%d = %s %s, want %s %s", i, g.ID, g.State, w.id, w.state)
				}
				if w.retired == notRetired {
					if g.RetiredAt != nil || g.UnpublishAt != nil {
						t.Errorf("%s: RetiredAt %v UnpublishAt %v, want nil", g.ID, g.RetiredAt, g.UnpublishAt)
					}
					continue
				}
				if g.RetiredAt == nil || !g.RetiredAt.Equal(at(w.retired)) || g.UnpublishAt == nil || !g.UnpublishAt.Equal(at(w.retired).Add(life)) {
					t.Errorf("%s: RetiredAt %v UnpublishAt %v, want %v and +%v", g.ID, g.RetiredAt, g.UnpublishAt, at(w.retired), life)
				}
			}
			// The keyring's view agrees with the schedule.
			tl := make(timeline, len(keys))
			for i, k := range keys {
				tl[i] = k.ActivatesAt
			}
			active := tl.active(at(tt.now))
			for i, g := range got {
				if (g.State == StateActive) != (i == active) {
					t.Errorf("%s: state %s but active index %d", g.ID, g.State, active)
				}
				if tl.published(i, life, at(tt.now)) != (g.State != StateExpired) {
					t.Errorf("%s: published disagrees with state %s", g.ID, g.State)
				}
			}
		})
	}
}
