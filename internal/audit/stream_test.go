package audit_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/audit"
	"github.com/gatehouse-auth/gatehouse/internal/store"
)

const webhookSecret = "an-audit-webhook-secret-of-32+bytes!"

// checkSignature is the receiver's check, written from the documented
// format only: Gatehouse-Signature "t=<unix>,v1=<hex HMAC-SHA256(secret,
// t.body)>", t within five minutes of now.
func checkSignature(secret, header string, body []byte, now time.Time) error {
	var ts, sig string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sig == "" {
		return fmt.Errorf("malformed signature header %q", header)
	}
	if d := now.Sub(time.Unix(t, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("signature timestamp %d is stale", t)
	}
	got, err := hex.DecodeString(sig)
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return errors.New("signature mismatch")
	}
	return nil
}

// TestWebhookSignatureCheckCatchesForgeries shows the receiver's check
// used below is not vacuous: a wrong secret, a changed body, a stale or
// malformed header are all refused.
func TestWebhookSignatureCheckCatchesForgeries(t *testing.T) {
	body := []byte(`{"events":[{"id":1,"seq":1}]}`)
	now := time.Now()
	good := audit.SignWebhook([]byte(webhookSecret), now.Unix(), body)
	if err := checkSignature(webhookSecret, good, body, now); err != nil {
		t.Fatalf("genuine signature refused: %v", err)
	}
	for name, tc := range map[string]struct {
		header string
		body   []byte
	}{
		"wrong secret":  {audit.SignWebhook([]byte(webhookSecret+"x"), now.Unix(), body), body},
		"changed body":  {good, []byte(`{"events":[{"id":1,"seq":2}]}`)},
		"stale":         {audit.SignWebhook([]byte(webhookSecret), now.Add(-time.Hour).Unix(), body), body},
		"timestamp off": {strings.Replace(good, "t="+strconv.FormatInt(now.Unix(), 10), "t="+strconv.FormatInt(now.Unix()+1, 10), 1), body},
		"no signature":  {"t=" + strconv.FormatInt(now.Unix(), 10), body},
		"forged hex":    {"t=" + strconv.FormatInt(now.Unix(), 10) + ",v1=" + strings.Repeat("00", 32), body},
	} {
		if err := checkSignature(webhookSecret, tc.header, tc.body, now); err == nil {
			t.Errorf("%s: forged delivery accepted", name)
		}
	}
}

// receiver is an audit webhook endpoint that checks every delivery like a
// real one, refuses the first failFirst, and records what it accepts.
type receiver struct {
	t         *testing.T
	secret    string
	mu        sync.Mutex
	failFirst int
	gate      chan struct{} // closed: accept (after failFirst refusals)
	attempts  []string      // Gatehouse-Delivery of every request
	accepted  []audit.EventJSON
	forged    int
}

func newReceiver(t *testing.T, secret string, failFirst int) (*receiver, *httptest.Server) {
	r := &receiver{t: t, secret: secret, failFirst: failFirst, gate: make(chan struct{})}
	close(r.gate)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, srv
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	delivery := r.Header.Get("Gatehouse-Delivery")
	rc.attempts = append(rc.attempts, delivery)
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		rc.t.Errorf("delivery %s %s", r.Method, r.Header.Get("Content-Type"))
	}
	if err := checkSignature(rc.secret, r.Header.Get("Gatehouse-Signature"), body, time.Now()); err != nil {
		rc.forged++
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var batch struct {
		Events []audit.EventJSON `json:"events"`
	}
	if err := json.Unmarshal(body, &batch); err != nil || len(batch.Events) == 0 {
		rc.t.Errorf("batch %s: %v", body, err)
		http.Error(w, "bad batch", http.StatusBadRequest)
		return
	}
	if want := fmt.Sprintf("%d-%d", batch.Events[0].Seq, batch.Events[len(batch.Events)-1].Seq); delivery != want {
		rc.t.Errorf("Gatehouse-Delivery %q, want %q", delivery, want)
	}
	if rc.failFirst > 0 {
		rc.failFirst--
		http.Error(w, "try later", http.StatusServiceUnavailable)
		return
	}
	select {
	case <-rc.gate:
	default:
		http.Error(w, "try later", http.StatusServiceUnavailable)
		return
	}
	rc.accepted = append(rc.accepted, batch.Events...)
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) snapshot() (attempts []string, accepted []audit.EventJSON, forged int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.attempts...), append([]audit.EventJSON(nil), rc.accepted...), rc.forged
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func fastStream(holder string) audit.StreamConfig {
	return audit.StreamConfig{Holder: holder, Batch: 4, Poll: 5 * time.Millisecond, LeaseTTL: time.Second,
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}
}

// run starts st until the test ends or stop is called.
func run(t *testing.T, st *audit.Streamer) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { st.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

// mustSeqs fails unless events are exactly seqs from..to, in order, with
// the chain's hashes.
func mustSeqs(t *testing.T, c *chainDB, events []audit.EventJSON, from, to int64) {
	t.Helper()
	if int64(len(events)) != to-from+1 {
		t.Fatalf("received %d events, want seqs %d..%d exactly once", len(events), from, to)
	}
	chain, err := c.db.Audit().ChainEvents(t.Context(), from-1, int(to-from+1))
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range events {
		if e.Seq != from+int64(i) || e.ID != chain[i].ID || e.Hash != hex.EncodeToString(chain[i].Hash) || e.PrevHash != hex.EncodeToString(chain[i].PrevHash) {
			t.Fatalf("event #%d: seq %d id %d hash %s; want seq %d id %d hash %x", i, e.Seq, e.ID, e.Hash, from+int64(i), chain[i].ID, chain[i].Hash)
		}
	}
}

// TestAuditWebhookRetriesThenDeliversInOrder: refused deliveries are
// retried with backoff and the cursor stays put until the receiver
// accepts; then every sealed event arrives once, in chain order, in
// signed batches of at most Batch; a restart resumes from the durable
// cursor.
func TestAuditWebhookRetriesThenDeliversInOrder(t *testing.T) {
	forEachBackend(t, func(t *testing.T, c *chainDB) {
		rc, srv := newReceiver(t, webhookSecret, 3)
		c.append(10)
		c.seal()
		st := audit.NewStreamer(c.db, audit.NewWebhook(srv.URL, webhookSecret, nil), fastStream("replica-a"), nil)
		stop := run(t, st)

		waitFor(t, "10 events", func() bool { _, got, _ := rc.snapshot(); return len(got) == 10 })
		attempts, got, _ := rc.snapshot()
		if want := []string{"1-4", "1-4", "1-4", "1-4", "5-8", "9-10"}; strings.Join(attempts, " ") != strings.Join(want, " ") {
			t.Errorf("deliveries %v, want %v (3 refused, retried, then batches of 4)", attempts, want)
		}
		if st.Failures() != 3 {
			t.Errorf("Failures() = %d, want 3", st.Failures())
		}
		mustSeqs(t, c, got, 1, 10)
		waitCursor(t, c, "webhook", "replica-a", 10)

		// Restart: nothing is delivered twice, new events follow.
		stop()
		c.append(3)
		c.seal()
		run(t, audit.NewStreamer(c.db, audit.NewWebhook(srv.URL, webhookSecret, nil), fastStream("replica-b"), nil))
		waitFor(t, "13 events", func() bool { _, got, _ := rc.snapshot(); return len(got) >= 13 })
		time.Sleep(50 * time.Millisecond) // a duplicate would arrive now
		_, got, _ = rc.snapshot()
		mustSeqs(t, c, got, 1, 13)
	})
}

// TestAuditWebhookCursorHeldWhileRefused: while the receiver refuses,
// the durable cursor does not move, whatever the number of attempts.
func TestAuditWebhookCursorHeldWhileRefused(t *testing.T) {
	forEachBackend(t, func(t *testing.T, c *chainDB) {
		rc, srv := newReceiver(t, webhookSecret, 0)
		rc.gate = make(chan struct{}) // refuse until opened
		c.append(3)
		c.seal()
		st := audit.NewStreamer(c.db, audit.NewWebhook(srv.URL, webhookSecret, nil), fastStream("replica-a"), nil)
		run(t, st)
		waitFor(t, "5 refused deliveries", func() bool { return st.Failures() >= 5 })
		now := time.Now()
		cursor, err := c.db.Audit().ClaimAuditSink(t.Context(), "webhook", "replica-a", now, now.Add(time.Second))
		if err != nil || cursor != 0 {
			t.Fatalf("cursor after refusals = %d, %v; want 0", cursor, err)
		}
		if _, err := c.db.Audit().ClaimAuditSink(t.Context(), "webhook", "replica-b", now, now.Add(time.Second)); !errors.Is(err, store.ErrConflict) {
			t.Errorf("another replica took the lease from a live holder: %v", err)
		}
		close(rc.gate)
		waitFor(t, "3 events", func() bool { _, got, _ := rc.snapshot(); return len(got) == 3 })
		_, got, _ := rc.snapshot()
		mustSeqs(t, c, got, 1, 3)
		waitCursor(t, c, "webhook", "replica-a", 3)
	})
}

// TestAuditWebhookWrongSecretRefused: a sender without the receiver's
// secret gets nothing accepted, and keeps the events for later.
func TestAuditWebhookWrongSecretRefused(t *testing.T) {
	forEachBackend(t, func(t *testing.T, c *chainDB) {
		rc, srv := newReceiver(t, webhookSecret, 0)
		c.append(2)
		c.seal()
		st := audit.NewStreamer(c.db, audit.NewWebhook(srv.URL, "another-secret-of-at-least-32-bytes!!", nil), fastStream("replica-a"), nil)
		stop := run(t, st)
		waitFor(t, "3 refused deliveries", func() bool { return st.Failures() >= 3 })
		stop()
		_, got, forged := rc.snapshot()
		if len(got) != 0 || forged < 3 {
			t.Fatalf("accepted %d events, refused %d forged deliveries", len(got), forged)
		}
	})
}

// TestAuditStreamOneReplicaDelivers: two replicas stream one sink: the
// lease makes one deliver, each event arrives once; when it stops, the
// other takes over from the cursor.
func TestAuditStreamOneReplicaDelivers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, c *chainDB) {
		var mu sync.Mutex
		var lines bytes.Buffer
		sink := audit.NewWriter(writerFunc(func(p []byte) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			return lines.Write(p)
		}))
		decoded := func() []audit.EventJSON {
			mu.Lock()
			defer mu.Unlock()
			var out []audit.EventJSON
			for line := range strings.Lines(lines.String()) {
				var e audit.EventJSON
				if err := json.Unmarshal([]byte(line), &e); err != nil {
					t.Fatalf("line %q: %v", line, err)
				}
				out = append(out, e)
			}
			return out
		}
		other := c.open()
		c.append(9)
		c.seal()
		stopA := run(t, audit.NewStreamer(c.db, sink, fastStream("replica-a"), nil))
		waitFor(t, "9 events", func() bool { return len(decoded()) == 9 })
		run(t, audit.NewStreamer(other, sink, fastStream("replica-b"), nil))
		c.append(5)
		c.seal()
		waitFor(t, "14 events", func() bool { return len(decoded()) >= 14 })
		waitCursor(t, c, "stdout", "replica-a", 14)
		stopA() // releases the lease: B takes over at once
		c.append(3)
		c.seal()
		waitFor(t, "17 events", func() bool { return len(decoded()) >= 17 })
		time.Sleep(50 * time.Millisecond)
		mustSeqs(t, c, decoded(), 1, 17)
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// waitCursor waits until holder (the running streamer, whose lease this
// renews) has recorded the delivery of sink up to seq.
func waitCursor(t *testing.T, c *chainDB, sink, holder string, seq int64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("the %s cursor at %d", sink, seq), func() bool {
		now := time.Now()
		cursor, err := c.db.Audit().ClaimAuditSink(t.Context(), sink, holder, now, now.Add(time.Second))
		return err == nil && cursor == seq
	})
}
