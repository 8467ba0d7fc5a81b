package revocation

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/problem"
)

// Feed streams the set to SDK verifiers as server-sent events:
//
//	event: snapshot       data: {"revoked":[{"sid":…,"until":unix}],"heartbeat":seconds,"max_token_lifetime":seconds,"more":bool}
//	event: snapshot-part  data: {"revoked":[…],"more":bool}
//	event: revoke         data: {"sid":…,"until":unix}
//	event: heartbeat      data: {"at":unix}
//
// The snapshot always comes first, in chunks of at most snapshotChunk
// entries (a snapshot event, then snapshot-part events until "more" is
// false), and replaces the client's set once complete; chunking keeps each
// event small however many sessions were revoked. max_token_lifetime is
// the longest access-token lifetime the server accepts now: a client
// refuses longer-lived tokens, whose revocations the set would forget
// before they expire. Heartbeats
// are sent only while Healthy reports this replica hears every revocation;
// a client that hears nothing for its staleness bound fails closed.
type Feed struct {
	Set       *Set
	Heartbeat time.Duration
	// Healthy reports whether revocations from other replicas reach this
	// one (the bus is up); nil means always (single process).
	Healthy func(ctx context.Context) error
	// MaxLifetime ends a stream after this long so clients rebalance
	// across replicas; the client reconnects at once.
	MaxLifetime time.Duration
	// MaxTokenLifetime is announced in the snapshot (the access-token TTL).
	MaxTokenLifetime time.Duration
	Log              *slog.Logger
}

type wireEntry struct {
	SessionID string `json:"sid"`
	Until     int64  `json:"until"`
}

func toWire(e Entry) wireEntry {
	// Rounded up: a client must never forget an entry before the server.
	until := e.Until.Unix()
	if e.Until.After(time.Unix(until, 0)) {
		until++
	}
	return wireEntry{SessionID: e.SessionID, Until: until}
}

// ServeHTTP streams until the client leaves, the stream reaches
// MaxLifetime, or the client falls too far behind. Authentication is the
// caller's (a resource-server credential).
func (f *Feed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	ctx := r.Context()
	if err := f.healthy(ctx); err != nil {
		// A snapshot would count as fresh at the client: refuse instead,
		// so an SDK stays failed-closed for as long as the bus is down.
		f.Log.WarnContext(ctx, "revocation feed: refused, revocation bus unhealthy", slog.Any("error", err))
		problem.Write(w, r, f.Log, problem.Unavailable.WithRetryAfter(f.Heartbeat))
		return
	}
	snapshot, ch, cancel := f.Set.Watch()
	defer cancel()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx must not buffer the stream
	w.WriteHeader(http.StatusOK)

	if err := f.sendSnapshot(rc, w, snapshot); err != nil {
		return
	}
	ticker := time.NewTicker(f.Heartbeat)
	defer ticker.Stop()
	var end <-chan time.Time
	if f.MaxLifetime > 0 {
		t := time.NewTimer(f.MaxLifetime)
		defer t.Stop()
		end = t.C
	}
	for {
		var err error
		select {
		case <-ctx.Done():
			return
		case <-end:
			return
		case e, ok := <-ch:
			if !ok {
				return
			}
			err = f.send(rc, w, "revoke", toWire(e))
		case now := <-ticker.C:
			if herr := f.healthy(ctx); herr != nil {
				// Silence, not a lie: the client's staleness bound
				// turns it into fail-closed.
				f.Log.WarnContext(ctx, "revocation feed: heartbeat withheld, revocation bus unhealthy", slog.Any("error", herr))
				continue
			}
			err = f.send(rc, w, "heartbeat", map[string]int64{"at": now.Unix()})
		}
		if err != nil {
			return
		}
	}
}

// snapshotChunk bounds the entries of one snapshot event (~70 bytes each).
const snapshotChunk = 1000

func (f *Feed) sendSnapshot(rc *http.ResponseController, w http.ResponseWriter, snapshot []Entry) error {
	beat := max(int(f.Heartbeat/time.Second), 1)
	event := "snapshot"
	for start := 0; ; start += snapshotChunk {
		end := min(start+snapshotChunk, len(snapshot))
		entries := make([]wireEntry, 0, end-start)
		for _, e := range snapshot[start:end] {
			entries = append(entries, toWire(e))
		}
		msg := map[string]any{"revoked": entries, "more": end < len(snapshot)}
		if event == "snapshot" {
			msg["heartbeat"] = beat
			msg["max_token_lifetime"] = int64(f.MaxTokenLifetime / time.Second)
		}
		if err := f.send(rc, w, event, msg); err != nil {
			return err
		}
		if end == len(snapshot) {
			return nil
		}
		event = "snapshot-part"
	}
}

func (f *Feed) healthy(ctx context.Context) error {
	if f.Healthy == nil {
		return nil
	}
	hctx, done := context.WithTimeout(ctx, f.Heartbeat/2)
	defer done()
	return f.Healthy(hctx)
}

func (f *Feed) send(rc *http.ResponseController, w http.ResponseWriter, event string, data any) error {
	b, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("revocation: encode %s: %w", event, err)
	}
	// The server's WriteTimeout would cut a long stream: each write gets
	// its own deadline instead.
	_ = rc.SetWriteDeadline(time.Now().Add(f.Heartbeat + 10*time.Second))
	if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b); err != nil {
		return err
	}
	return rc.Flush()
}
