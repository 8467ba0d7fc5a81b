package gatehouse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const (
	feedClientID     = "rs_orders"
	feedClientSecret = "s3cret"
)

// feedServer is an httptest SSE server that hands each accepted connection
// to the test, which then writes events to it.
type feedServer struct {
	*httptest.Server
	conns       chan *feedConn
	hits        atomic.Int32
	status      atomic.Int32 // non-zero: answer every request with it
	contentType atomic.Value // string
}

type feedConn struct {
	events chan string
}

func newFeedServer(t *testing.T) *feedServer {
	t.Helper()
	s := &feedServer{conns: make(chan *feedConn)}
	s.contentType.Store("text/event-stream; charset=utf-8")
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		if st := s.status.Load(); st != 0 {
			http.Error(w, "nope", int(st))
			return
		}
		if id, secret, ok := r.BasicAuth(); !ok || id != feedClientID || secret != feedClientSecret {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if r.URL.Path != "/v1/revocations" || r.Header.Get("Accept") != "text/event-stream" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", s.contentType.Load().(string))
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		c := &feedConn{events: make(chan string)}
		select {
		case s.conns <- c:
		case <-r.Context().Done():
			return
		}
		for {
			select {
			case ev, ok := <-c.events:
				if !ok {
					return // the server closes the stream
				}
				io.WriteString(w, ev)
				w.(http.Flusher).Flush()
			case <-r.Context().Done():
				return
			}
		}
	}))
	t.Cleanup(s.Close)
	return s
}

// accept waits for the client's next connection.
func (s *feedServer) accept(t *testing.T) *feedConn {
	t.Helper()
	select {
	case c := <-s.conns:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no connection from the feed client")
		return nil
	}
}

func (c *feedConn) send(t *testing.T, events ...string) {
	t.Helper()
	for _, ev := range events {
		select {
		case c.events <- ev:
		case <-time.After(5 * time.Second):
			t.Fatal("connection is gone")
		}
	}
}

func snapshot(heartbeat int, entries ...string) string {
	return fmt.Sprintf("event: snapshot\ndata: {\"revoked\":[%s],\"heartbeat\":%d}\n\n", strings.Join(entries, ","), heartbeat)
}

func entry(sid string, until int64) string {
	return fmt.Sprintf(`{"sid":%q,"until":%d}`, sid, until)
}

func revokeEvent(sid string, until int64) string {
	return "event: revoke\ndata: " + entry(sid, until) + "\n\n"
}

func heartbeatEvent(at int64) string {
	return fmt.Sprintf("event: heartbeat\ndata: {\"at\":%d}\n\n", at)
}

// startFeed runs a RevocationFeed against srv until the test ends.
func startFeed(t *testing.T, srv *feedServer, clock *fakeClock, opts RevocationFeedOptions) *RevocationFeed {
	t.Helper()
	opts.Now = clock.Now
	opts.Logger = discardLogger()
	if opts.HTTPClient == nil {
		opts.HTTPClient = srv.Client()
	}
	f := NewRevocationFeed(srv.URL+"/v1/revocations", feedClientID, feedClientSecret, opts)
	f.minBackoff, f.maxBackoff = time.Millisecond, 20*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v", err)
		}
	})
	return f
}

// eventually polls cond until it holds or 5s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func revoked(t *testing.T, f *RevocationFeed, sid string) bool {
	t.Helper()
	r, err := f.Revoked(context.Background(), sid)
	if err != nil {
		t.Fatalf("Revoked(%q): %v", sid, err)
	}
	return r
}

func isStale(f *RevocationFeed) bool {
	_, err := f.Revoked(context.Background(), "ses_any")
	return errors.Is(err, ErrRevocationStale)
}

func (f *RevocationFeed) lastEventAt() time.Time {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.lastEvent
}

func (f *RevocationFeed) size() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.revoked)
}

func TestFeedSnapshotReplaces(t *testing.T) {
	clock := newFakeClock()
	srv := newFeedServer(t)
	f := startFeed(t, srv, clock, RevocationFeedOptions{})
	if !isStale(f) {
		t.Fatal("fresh before any snapshot")
	}
	until := clock.Now().Add(time.Hour).Unix()
	c := srv.accept(t)
	c.send(t, snapshot(5, entry("ses_a", until), entry("ses_b", until)))
	select {
	case <-f.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("Ready not closed after the snapshot")
	}
	if !revoked(t, f, "ses_a") || !revoked(t, f, "ses_b") || revoked(t, f, "ses_c") {
		t.Fatal("first snapshot not applied")
	}
	// A later snapshot (here on the same connection) replaces the set.
	c.send(t, snapshot(5, entry("ses_c", until)))
	eventually(t, "second snapshot", func() bool { return revoked(t, f, "ses_c") })
	if revoked(t, f, "ses_a") || revoked(t, f, "ses_b") {
		t.Fatal("snapshot did not replace the set")
	}
}

func TestFeedRevokeAdds(t *testing.T) {
	clock := newFakeClock()
	srv := newFeedServer(t)
	f := startFeed(t, srv, clock, RevocationFeedOptions{})
	until := clock.Now().Add(time.Hour).Unix()
	c := srv.accept(t)
	c.send(t, snapshot(5, entry("ses_a", until)))
	<-f.Ready()
	c.send(t, revokeEvent("ses_y", until))
	eventually(t, "revoke", func() bool { return revoked(t, f, "ses_y") })
	if !revoked(t, f, "ses_a") {
		t.Fatal("revoke replaced the set")
	}
}

func TestFeedUntilPrunes(t *testing.T) {
	clock := newFakeClock()
	srv := newFeedServer(t)
	f := startFeed(t, srv, clock, RevocationFeedOptions{})
	now := clock.Now()
	c := srv.accept(t)
	c.send(t,
		snapshot(5,
			entry("ses_old", now.Add(-revocationGrace-time.Second).Unix()), // already forgettable
			entry("ses_soon", now.Add(5*time.Second).Unix()),
			entry("ses_later", now.Add(time.Hour).Unix())),
	)
	<-f.Ready()
	if revoked(t, f, "ses_old") || !revoked(t, f, "ses_soon") || f.size() != 2 {
		t.Fatalf("snapshot: size %d", f.size())
	}
	// Past "until", the entry is kept for the grace period (which covers
	// the verifier's leeway), then forgotten.
	clock.Advance(10 * time.Second)
	c.send(t, heartbeatEvent(1))
	eventually(t, "heartbeat", func() bool { return f.lastEventAt().Equal(clock.Now()) })
	if !revoked(t, f, "ses_soon") {
		t.Fatal("entry forgotten before until+grace")
	}
	for range int(revocationGrace / (10 * time.Second)) {
		clock.Advance(10 * time.Second)
		c.send(t, heartbeatEvent(1))
		eventually(t, "heartbeat", func() bool { return f.lastEventAt().Equal(clock.Now()) })
	}
	if revoked(t, f, "ses_soon") || !revoked(t, f, "ses_later") {
		t.Fatal("until not honoured")
	}
	// Forgettable entries are dropped from memory at the next prune, which
	// runs on a heartbeat at most once per pruneInterval.
	clock.Advance(pruneInterval)
	c.send(t, heartbeatEvent(1))
	eventually(t, "heartbeat", func() bool { return f.lastEventAt().Equal(clock.Now()) })
	if f.size() != 1 {
		t.Fatalf("size %d after pruning, want 1", f.size())
	}
}

func TestFeedHeartbeatKeepsFresh(t *testing.T) {
	clock := newFakeClock()
	srv := newFeedServer(t)
	f := startFeed(t, srv, clock, RevocationFeedOptions{})
	c := srv.accept(t)
	c.send(t, snapshot(5))
	<-f.Ready()
	for range 5 {
		clock.Advance(10 * time.Second)
		c.send(t, heartbeatEvent(clock.Now().Unix()))
		eventually(t, "heartbeat", func() bool { return f.lastEventAt().Equal(clock.Now()) })
		if isStale(f) {
			t.Fatal("stale despite heartbeats")
		}
	}
	clock.Advance(15 * time.Second)
	if isStale(f) {
		t.Fatal("stale at exactly MaxStaleness")
	}
	clock.Advance(time.Millisecond)
	if !isStale(f) {
		t.Fatal("not stale after MaxStaleness of silence")
	}
}

// TestAttackSilentFeedFailsClosed: when the feed goes quiet (server down,
// network cut, or the server's revocation source unhealthy so it stops
// heartbeating), tokens are refused after MaxStaleness.
func TestAttackSilentFeedFailsClosed(t *testing.T) {
	clock := newFakeClock()
	srv := newFeedServer(t)
	f := startFeed(t, srv, clock, RevocationFeedOptions{MaxStaleness: 8 * time.Second})
	c := srv.accept(t)
	c.send(t, snapshot(2))
	<-f.Ready()
	clock.Advance(8 * time.Second)
	if isStale(f) {
		t.Fatal("stale too early")
	}
	// Comments are no sign of life: a server that keeps the connection
	// open with comments but stopped heartbeating is stale.
	c.send(t, ": keep-alive\n\n", "event: unknown\ndata: {}\n\n")
	clock.Advance(time.Second)
	if !isStale(f) {
		t.Fatal("not stale after silence")
	}
	_, err := f.Revoked(context.Background(), "ses_x")
	if !errors.Is(err, ErrRevocationStale) {
		t.Fatalf("err = %v", err)
	}
}

func TestFeedReconnectsAfterServerCloses(t *testing.T) {
	clock := newFakeClock()
	srv := newFeedServer(t)
	f := startFeed(t, srv, clock, RevocationFeedOptions{})
	until := clock.Now().Add(time.Hour).Unix()
	c := srv.accept(t)
	c.send(t, snapshot(5, entry("ses_a", until)))
	<-f.Ready()
	close(c.events) // server ends the stream

	c2 := srv.accept(t)
	// The set survives the disconnect until the new snapshot replaces it.
	if !revoked(t, f, "ses_a") {
		t.Fatal("set lost on disconnect")
	}
	c2.send(t, snapshot(5, entry("ses_b", until)))
	eventually(t, "snapshot after reconnect", func() bool { return revoked(t, f, "ses_b") })
	if revoked(t, f, "ses_a") {
		t.Fatal("old set not replaced after reconnect")
	}
}

// TestAttackUnauthorizedFeedStaysStale: wrong credentials (401) keep the feed
// stale, with retries.
func TestAttackUnauthorizedFeedStaysStale(t *testing.T) {
	clock := newFakeClock()
	srv := newFeedServer(t)
	f := NewRevocationFeed(srv.URL+"/v1/revocations", feedClientID, "wrong", RevocationFeedOptions{
		HTTPClient: srv.Client(), Now: clock.Now, Logger: discardLogger(),
	})
	f.minBackoff, f.maxBackoff = time.Millisecond, 5*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	eventually(t, "retries", func() bool { return srv.hits.Load() >= 3 })
	if !isStale(f) {
		t.Fatal("fresh without a snapshot")
	}
	select {
	case <-f.Ready():
		t.Fatal("Ready closed")
	default:
	}
}

func TestFeedServerErrorRetriesAndRecovers(t *testing.T) {
	clock := newFakeClock()
	srv := newFeedServer(t)
	srv.status.Store(http.StatusServiceUnavailable)
	f := startFeed(t, srv, clock, RevocationFeedOptions{})
	eventually(t, "retries", func() bool { return srv.hits.Load() >= 3 })
	if !isStale(f) {
		t.Fatal("fresh without a snapshot")
	}
	srv.status.Store(0)
	c := srv.accept(t)
	c.send(t, snapshot(5))
	<-f.Ready()
	if isStale(f) {
		t.Fatal("stale after recovery")
	}
}

// TestAttackFeedNonSnapshotFirst: a stream that does not start with a
// snapshot is dropped and nothing on it is applied.
func TestAttackFeedNonSnapshotFirst(t *testing.T) {
	for name, first := range map[string]string{
		"revoke":    revokeEvent("ses_x", 1<<40),
		"heartbeat": heartbeatEvent(1),
		"message":   "data: hello\n\n",
		"unknown":   "event: other\ndata: {}\n\n",
	} {
		t.Run(name, func(t *testing.T) {
			clock := newFakeClock()
			srv := newFeedServer(t)
			f := startFeed(t, srv, clock, RevocationFeedOptions{})
			c := srv.accept(t)
			c.send(t, first)
			// The client hangs up and reconnects.
			c2 := srv.accept(t)
			if !isStale(f) {
				t.Fatal("fresh without a snapshot")
			}
			c2.send(t, snapshot(5))
			<-f.Ready()
			if revoked(t, f, "ses_x") {
				t.Fatal("event before the snapshot was applied")
			}
		})
	}
}

// TestAttackFeedProtocolErrorFailsClosed: after a malformed event the client
// cannot know what it missed, so it fails closed at once (not only after
// MaxStaleness) and reconnects for a new snapshot.
func TestAttackFeedProtocolErrorFailsClosed(t *testing.T) {
	until := newFakeClock().Now().Add(time.Hour).Unix()
	for name, bad := range map[string]string{
		"revoke not JSON":        "event: revoke\ndata: ses_x\n\n",
		"revoke without sid":     "event: revoke\ndata: {\"until\":1}\n\n",
		"revoke without until":   "event: revoke\ndata: {\"sid\":\"ses_x\"}\n\n",
		"revoke until string":    "event: revoke\ndata: {\"sid\":\"ses_x\",\"until\":\"1\"}\n\n",
		"revoke sid too long":    revokeEvent(strings.Repeat("s", maxSessionIDLength+1), until),
		"heartbeat not JSON":     "event: heartbeat\ndata: x\n\n",
		"snapshot without list":  "event: snapshot\ndata: {\"heartbeat\":5}\n\n",
		"snapshot list null":     "event: snapshot\ndata: {\"revoked\":null}\n\n",
		"snapshot bad entry":     "event: snapshot\ndata: {\"revoked\":[{\"sid\":\"\",\"until\":5}]}\n\n",
		"oversized event":        "event: revoke\ndata: " + strings.Repeat("x", maxEventSize+1) + "\n\n",
		"part without snapshot":  "event: snapshot-part\ndata: {\"revoked\":[]}\n\n",
		"revoke inside snapshot": "event: snapshot\ndata: {\"revoked\":[],\"more\":true}\n\n" + revokeEvent("ses_x", until),
		"until overflows":        revokeEvent("ses_x", 1<<62),
		"negative lifetime":      "event: snapshot\ndata: {\"revoked\":[],\"max_token_lifetime\":-1}\n\n",
	} {
		t.Run(name, func(t *testing.T) {
			clock := newFakeClock()
			srv := newFeedServer(t)
			f := startFeed(t, srv, clock, RevocationFeedOptions{})
			c := srv.accept(t)
			c.send(t, snapshot(5, entry("ses_a", until)))
			<-f.Ready()
			c.send(t, bad)
			eventually(t, "fail closed", func() bool { return isStale(f) })
			c2 := srv.accept(t)
			c2.send(t, snapshot(5, entry("ses_b", until)))
			eventually(t, "recovery", func() bool { return !isStale(f) })
			if revoked(t, f, "ses_a") || !revoked(t, f, "ses_b") {
				t.Fatal("state after recovery")
			}
		})
	}
}

func TestFeedRejectsWrongContentType(t *testing.T) {
	clock := newFakeClock()
	srv := newFeedServer(t)
	srv.contentType.Store("text/plain")
	f := startFeed(t, srv, clock, RevocationFeedOptions{})
	eventually(t, "retries", func() bool { return srv.hits.Load() >= 3 })
	if !isStale(f) {
		t.Fatal("fresh")
	}
}

// TestFeedIdleConnectionIsReplaced uses the real clock: a connection on
// which nothing arrives for MaxStaleness is dropped and re-established.
func TestFeedIdleConnectionIsReplaced(t *testing.T) {
	srv := newFeedServer(t)
	f := NewRevocationFeed(srv.URL+"/v1/revocations", feedClientID, feedClientSecret, RevocationFeedOptions{
		HTTPClient:   &http.Client{Timeout: time.Millisecond}, // ignored for the stream
		MaxStaleness: 300 * time.Millisecond, Logger: discardLogger(),
	})
	f.minBackoff, f.maxBackoff = time.Millisecond, 5*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	c := srv.accept(t)
	c.send(t, snapshot(1))
	<-f.Ready()
	time.Sleep(100 * time.Millisecond) // the client Timeout would have fired by now
	if isStale(f) {
		t.Fatal("stale too early")
	}
	c2 := srv.accept(t) // after ~300ms of silence the client reconnects
	if !isStale(f) {
		t.Fatal("not stale after MaxStaleness of silence")
	}
	c2.send(t, snapshot(1))
	eventually(t, "fresh again", func() bool { return !isStale(f) })
}

func TestFeedRunTwice(t *testing.T) {
	srv := newFeedServer(t)
	f := startFeed(t, srv, newFakeClock(), RevocationFeedOptions{})
	srv.accept(t)
	if err := f.Run(context.Background()); err == nil {
		t.Fatal("second Run accepted")
	}
}

func TestFeedBackoff(t *testing.T) {
	f := NewRevocationFeed("http://x", "a", "b", RevocationFeedOptions{})
	for attempt := range 100 {
		d := f.backoff(attempt)
		limit := min(defaultMinBackoff<<min(attempt, 30), defaultMaxBackoff)
		if d < limit/2 || d > limit {
			t.Fatalf("attempt %d: %v outside [%v, %v]", attempt, d, limit/2, limit)
		}
	}
}

// TestFeedSnapshotInParts: a large snapshot arrives in parts and replaces
// the set only when complete; until then a fresh feed stays failed-closed.
func TestFeedSnapshotInParts(t *testing.T) {
	clock := newFakeClock()
	until := clock.Now().Add(time.Hour).Unix()
	srv := newFeedServer(t)
	f := startFeed(t, srv, clock, RevocationFeedOptions{})
	c := srv.accept(t)
	c.send(t, "event: snapshot\ndata: {\"revoked\":["+entry("ses_a", until)+"],\"heartbeat\":5,\"max_token_lifetime\":600,\"more\":true}\n\n")
	c.send(t, "event: snapshot-part\ndata: {\"revoked\":["+entry("ses_b", until)+"],\"more\":true}\n\n")
	if isStale(f) == false {
		t.Fatal("a partial snapshot made the feed fresh")
	}
	c.send(t, "event: snapshot-part\ndata: {\"revoked\":["+entry("ses_c", until)+"],\"more\":false}\n\n")
	<-f.Ready()
	for _, sid := range []string{"ses_a", "ses_b", "ses_c"} {
		if !revoked(t, f, sid) {
			t.Errorf("%s from the snapshot parts not revoked", sid)
		}
	}
	if got := f.MaxTokenLifetime(); got != 10*time.Minute {
		t.Errorf("MaxTokenLifetime %s, want 10m", got)
	}
}

// TestAttackRevocationsAloneDoNotKeepFeedFresh: a server whose revocation
// source is unhealthy withholds heartbeats but may still relay some
// revocations; those must not stand in for heartbeats.
func TestAttackRevocationsAloneDoNotKeepFeedFresh(t *testing.T) {
	clock := newFakeClock()
	until := clock.Now().Add(time.Hour).Unix()
	srv := newFeedServer(t)
	f := startFeed(t, srv, clock, RevocationFeedOptions{})
	c := srv.accept(t)
	c.send(t, snapshot(5))
	<-f.Ready()
	for i := range 3 {
		clock.Advance(6 * time.Second)
		c.send(t, revokeEvent(fmt.Sprintf("ses_%d", i), until))
	}
	eventually(t, "fail closed", func() bool { return isStale(f) })
}

// TestAttackUnfinishedSnapshotDoesNotKeepFeedFresh: snapshot parts that
// never complete must not keep an old set looking current.
func TestAttackUnfinishedSnapshotDoesNotKeepFeedFresh(t *testing.T) {
	clock := newFakeClock()
	until := clock.Now().Add(time.Hour).Unix()
	srv := newFeedServer(t)
	f := startFeed(t, srv, clock, RevocationFeedOptions{})
	c := srv.accept(t)
	c.send(t, snapshot(5))
	<-f.Ready()
	c.send(t, "event: snapshot\ndata: {\"revoked\":["+entry("ses_gap", until)+"],\"more\":true}\n\n")
	for range 3 {
		clock.Advance(6 * time.Second)
		c.send(t, "event: snapshot-part\ndata: {\"revoked\":[],\"more\":true}\n\n")
	}
	eventually(t, "fail closed", func() bool { return isStale(f) })
}
