package revocation

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/sdk/go/gatehouse"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)} }

func TestSetRemembersForTheWindow(t *testing.T) {
	c := newClock()
	s := NewSet(10*time.Minute, c.Now)
	s.Add("ses_a", c.Now())
	tests := []struct {
		after time.Duration
		want  bool
	}{
		{0, true},
		{10*time.Minute - time.Second, true},
		{10 * time.Minute, false},
	}
	for _, tt := range tests {
		c2 := &clock{t: c.Now().Add(tt.after)}
		s.now = c2.Now
		if got, err := s.Revoked(context.Background(), "ses_a"); got != tt.want || err != nil {
			t.Errorf("after %s: revoked=%v err=%v, want %v", tt.after, got, err, tt.want)
		}
	}
	if got, _ := s.Revoked(context.Background(), "ses_other"); got {
		t.Error("unknown session reported revoked")
	}
}

func TestSetIgnoresAncientRevocations(t *testing.T) {
	c := newClock()
	s := NewSet(time.Minute, c.Now)
	s.Add("ses_old", c.Now().Add(-2*time.Minute))
	if len(s.Snapshot()) != 0 {
		t.Fatal("an entry past its window was kept")
	}
}

type fakeSource struct {
	revs []store.Revocation
	err  error
	asks []time.Time
}

func (f *fakeSource) RevokedSessionsSince(_ context.Context, since time.Time) ([]store.Revocation, error) {
	f.asks = append(f.asks, since)
	return f.revs, f.err
}

func TestSyncRepairsLostMessagesAndPrunes(t *testing.T) {
	c := newClock()
	s := NewSet(10*time.Minute, c.Now)
	s.Add("ses_expiring", c.Now())
	c.Advance(9 * time.Minute)
	src := &fakeSource{revs: []store.Revocation{{SessionID: "ses_lost", RevokedAt: c.Now().Add(-time.Minute)}}}
	if err := s.Sync(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	if want := c.Now().Add(-10 * time.Minute); !src.asks[0].Equal(want) {
		t.Errorf("asked since %s, want %s", src.asks[0], want)
	}
	if got, _ := s.Revoked(context.Background(), "ses_lost"); !got {
		t.Error("a revocation the bus lost was not repaired by sync")
	}
	c.Advance(2 * time.Minute)
	src.revs = nil
	if err := s.Sync(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, e := range s.Snapshot() {
		ids = append(ids, e.SessionID)
	}
	if !slices.Equal(ids, []string{"ses_lost"}) {
		t.Errorf("after prune: %v, want [ses_lost]", ids)
	}
	src.err = errors.New("db down")
	if err := s.Sync(context.Background(), src); err == nil {
		t.Error("sync error swallowed")
	}
}

func TestWatchDeliversAndDropsSlowWatchers(t *testing.T) {
	c := newClock()
	s := NewSet(time.Hour, c.Now)
	s.Add("ses_before", c.Now())
	snap, ch, cancel := s.Watch()
	defer cancel()
	if len(snap) != 1 || snap[0].SessionID != "ses_before" {
		t.Fatalf("snapshot %v", snap)
	}
	s.Add("ses_after", c.Now())
	if e := <-ch; e.SessionID != "ses_after" {
		t.Fatalf("got %v", e)
	}
	for i := range maxWatchBacklog + 1 {
		s.Add("ses_"+strings.Repeat("x", i%7)+time.Duration(i).String(), c.Now())
	}
	n := 0
	for range ch {
		n++
	}
	if n != maxWatchBacklog {
		t.Fatalf("slow watcher got %d entries before being dropped, want %d", n, maxWatchBacklog)
	}
	cancel() // after the drop: must not panic
}

// readEvents parses an SSE stream into (event, data) pairs.
func readEvents(t *testing.T, sc *bufio.Scanner, n int) [][2]string {
	t.Helper()
	var out [][2]string
	var ev string
	for len(out) < n && sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			ev = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			out = append(out, [2]string{ev, strings.TrimPrefix(line, "data: ")})
		}
	}
	if len(out) < n {
		t.Fatalf("stream ended after %d events: %v", len(out), sc.Err())
	}
	return out
}

func TestFeedStreamsSnapshotRevocationsAndHeartbeats(t *testing.T) {
	c := newClock()
	set := NewSet(time.Hour, c.Now)
	set.Add("ses_a", c.Now())
	var unhealthy sync.Mutex
	healthy := true
	feed := &Feed{Set: set, Heartbeat: 50 * time.Millisecond, Log: slog.New(slog.DiscardHandler), Healthy: func(context.Context) error {
		unhealthy.Lock()
		defer unhealthy.Unlock()
		if !healthy {
			return errors.New("bus down")
		}
		return nil
	}}
	srv := httptest.NewServer(feed)
	defer srv.Close()
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	sc := bufio.NewScanner(res.Body)
	first := readEvents(t, sc, 1)[0]
	if first[0] != "snapshot" {
		t.Fatalf("first event %q, want snapshot", first[0])
	}
	var snap struct {
		Revoked []struct {
			SID   string `json:"sid"`
			Until int64  `json:"until"`
		} `json:"revoked"`
		Heartbeat int `json:"heartbeat"`
	}
	if err := json.Unmarshal([]byte(first[1]), &snap); err != nil {
		t.Fatal(err)
	}
	if len(snap.Revoked) != 1 || snap.Revoked[0].SID != "ses_a" || snap.Revoked[0].Until != c.Now().Add(time.Hour).Unix() || snap.Heartbeat != 1 {
		t.Fatalf("snapshot %+v", snap)
	}
	set.Add("ses_b", c.Now())
	// The revoke event arrives (heartbeats may interleave).
	for {
		ev := readEvents(t, sc, 1)[0]
		if ev[0] == "revoke" {
			if !strings.Contains(ev[1], `"sid":"ses_b"`) {
				t.Fatalf("revoke %s", ev[1])
			}
			break
		}
	}
	if ev := readEvents(t, sc, 1)[0]; ev[0] != "heartbeat" {
		t.Fatalf("got %q, want heartbeat", ev[0])
	}
	// An unhealthy bus silences heartbeats (the SDK then fails closed),
	// but revocations still flow.
	unhealthy.Lock()
	healthy = false
	unhealthy.Unlock()
	time.Sleep(300 * time.Millisecond) // six heartbeat intervals
	set.Add("ses_c", c.Now())
	beats := 0
	got := readEvents(t, sc, 1)[0]
	for got[0] == "heartbeat" {
		beats++
		got = readEvents(t, sc, 1)[0]
	}
	if got[0] != "revoke" || !strings.Contains(got[1], "ses_c") {
		t.Fatalf("got %v, want the revoke of ses_c", got)
	}
	if beats > 1 { // one may have been in flight when health changed
		t.Fatalf("%d heartbeats sent while the bus was unhealthy", beats)
	}
}

func TestFeedRefusesWhileBusUnhealthy(t *testing.T) {
	feed := &Feed{Set: NewSet(time.Hour, nil), Heartbeat: time.Second, Log: slog.New(slog.DiscardHandler),
		Healthy: func(context.Context) error { return errors.New("bus down") }}
	rec := httptest.NewRecorder()
	feed.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/revocations", nil))
	if rec.Code != http.StatusServiceUnavailable || strings.Contains(rec.Body.String(), "snapshot") {
		t.Fatalf("unhealthy feed answered %d %q: a snapshot would count as fresh", rec.Code, rec.Body.String())
	}
}

// TestAttackMassRevocationDoesNotBlindSDKs: tens of thousands of recent
// revocations (a burst of logouts, or an attacker revoking their own
// sessions) still reach an SDK client, in snapshot parts small enough for
// its event limit, instead of leaving every SDK failed-closed.
func TestAttackMassRevocationDoesNotBlindSDKs(t *testing.T) {
	set := NewSet(time.Hour, nil)
	const n = 100_000
	now := time.Now()
	for i := range n {
		set.Add(fmt.Sprintf("ses_%07d", i), now)
	}
	feed := &Feed{Set: set, Heartbeat: time.Second, MaxTokenLifetime: 10 * time.Minute, Log: slog.New(slog.DiscardHandler)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, secret, ok := r.BasicAuth(); !ok || id != "api" || secret != "secret" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		feed.ServeHTTP(w, r)
	}))
	defer srv.Close()
	client := gatehouse.NewRevocationFeed(srv.URL, "api", "secret", gatehouse.RevocationFeedOptions{Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = client.Run(ctx) }()
	select {
	case <-client.Ready():
	case <-time.After(20 * time.Second):
		t.Fatal("the SDK never assembled the snapshot")
	}
	for _, sid := range []string{"ses_0000000", "ses_0050000", fmt.Sprintf("ses_%07d", n-1)} {
		if r, err := client.Revoked(ctx, sid); err != nil || !r {
			t.Fatalf("%s: revoked=%v err=%v", sid, r, err)
		}
	}
	if client.MaxTokenLifetime() != 10*time.Minute {
		t.Fatalf("max token lifetime %s", client.MaxTokenLifetime())
	}
}

func TestSyncedWithin(t *testing.T) {
	c := newClock()
	s := NewSet(time.Hour, c.Now)
	if s.SyncedWithin(time.Minute) {
		t.Fatal("never synced, yet reported synced")
	}
	if err := s.Sync(context.Background(), &fakeSource{}); err != nil {
		t.Fatal(err)
	}
	c.Advance(30 * time.Second)
	if !s.SyncedWithin(30 * time.Second) {
		t.Fatal("a sync 30 s ago is not within 30 s")
	}
	c.Advance(time.Second)
	if s.SyncedWithin(30 * time.Second) {
		t.Fatal("a sync 31 s ago reported within 30 s")
	}
	if err := s.Sync(context.Background(), &fakeSource{err: errors.New("down")}); err == nil || s.SyncedWithin(30*time.Second) {
		t.Fatal("a failed sync counted")
	}
}
