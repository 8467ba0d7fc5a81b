package audit

import (
	"bytes"
	"context"
	"crypto/hmac"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// Streaming. A Streamer follows the chain by seq from a durable cursor
// kept in the store (one per sink), hands batches to its Sink and advances
// the cursor only once the sink has them: delivery is at-least-once, in
// chain order, survives restarts, and never touches a request.
//
// Every replica runs a Streamer per sink, but one delivers at a time: the
// cursor row carries a lease (store.Audit.ClaimAuditSink), renewed while
// the holder works and released when it stops; another replica takes over
// when the lease expires. A lease row rather than an advisory lock keeps
// the rule the same on SQLite and PostgreSQL and needs no session held
// open across deliveries. A holder that stalls past its lease may deliver
// a batch that its successor delivers again: receivers deduplicate by seq.

// Sink receives sealed events.
type Sink interface {
	// Name keys the sink's cursor in the store ("webhook", "stdout").
	Name() string
	// Deliver hands over events (consecutive in the chain, lowest seq
	// first); nil means the sink has them.
	Deliver(ctx context.Context, events []*store.Event) error
}

// StreamConfig tunes a Streamer; zero fields take the defaults.
type StreamConfig struct {
	Holder     string        // this replica's lease identity (default: random)
	Batch      int           // events per delivery (default and maximum 100)
	Poll       time.Duration // wait when caught up or not the holder (default 1s)
	LeaseTTL   time.Duration // lease length, renewed every LeaseTTL/3 (default 30s)
	MinBackoff time.Duration // first retry delay after a failed delivery (default 1s)
	MaxBackoff time.Duration // retry delay cap (default 5m)
	Now        func() time.Time
}

// Streamer delivers the chain to one sink.
type Streamer struct {
	db       store.Store
	sink     Sink
	cfg      StreamConfig
	log      *slog.Logger
	failures atomic.Uint64
}

// NewStreamer returns a streamer of db's chain to sink.
func NewStreamer(db store.Store, sink Sink, cfg StreamConfig, log *slog.Logger) *Streamer {
	if cfg.Holder == "" {
		cfg.Holder = "replica-" + crand.Text()
	}
	if cfg.Batch <= 0 || cfg.Batch > 100 {
		cfg.Batch = 100
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 30 * time.Second
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(5*time.Minute, cfg.MinBackoff)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Streamer{db: db, sink: sink, cfg: cfg, log: log.With(slog.String("sink", sink.Name()))}
}

// Failures counts failed deliveries (gatehouse_audit_webhook_failures_total
// for the webhook sink).
func (s *Streamer) Failures() uint64 { return s.failures.Load() }

// Run delivers until ctx is done, then releases the lease.
func (s *Streamer) Run(ctx context.Context) {
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = s.db.Audit().ReleaseAuditSink(rctx, s.sink.Name(), s.cfg.Holder)
	}()
	failed := 0 // consecutive failed deliveries
	for ctx.Err() == nil {
		cursor, err := s.claim(ctx)
		if err != nil {
			if !errors.Is(err, store.ErrConflict) && ctx.Err() == nil {
				s.log.Warn("audit stream: cannot claim the cursor", slog.Any("error", err))
			}
			sleep(ctx, s.cfg.Poll)
			continue
		}
		events, err := s.db.Audit().ChainEvents(ctx, cursor, s.cfg.Batch)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("audit stream: cannot read the chain", slog.Any("error", err))
			}
			sleep(ctx, s.cfg.Poll)
			continue
		}
		if len(events) == 0 {
			sleep(ctx, s.cfg.Poll)
			continue
		}
		first, last := events[0].Seq, events[len(events)-1].Seq
		if err := s.sink.Deliver(ctx, events); err != nil {
			if ctx.Err() != nil {
				return
			}
			s.failures.Add(1)
			failed++
			delay := backoffDelay(failed, s.cfg.MinBackoff, s.cfg.MaxBackoff)
			s.log.Warn("audit delivery failed; will retry", slog.Int64("first_seq", first), slog.Int64("last_seq", last),
				slog.Int("attempt", failed), slog.Duration("retry_in", delay), slog.Any("error", err))
			s.wait(ctx, delay)
			continue
		}
		failed = 0
		// The sink has the batch: record it even if ctx ended meanwhile,
		// so a shutdown does not cause a redelivery.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		err = s.db.Audit().AdvanceAuditSink(actx, s.sink.Name(), s.cfg.Holder, cursor, last)
		cancel()
		if err != nil {
			// The lease was lost mid-delivery: the new holder will
			// deliver this batch again (at-least-once).
			s.log.Warn("audit stream: cannot advance the cursor", slog.Int64("last_seq", last), slog.Any("error", err))
		}
	}
}

func (s *Streamer) claim(ctx context.Context) (int64, error) {
	now := s.cfg.Now()
	return s.db.Audit().ClaimAuditSink(ctx, s.sink.Name(), s.cfg.Holder, now, now.Add(s.cfg.LeaseTTL))
}

// wait sleeps d while renewing the lease, so that a long backoff keeps
// this replica the holder (another would only fail the same way).
func (s *Streamer) wait(ctx context.Context, d time.Duration) {
	for d > 0 && ctx.Err() == nil {
		step := min(d, s.cfg.LeaseTTL/3)
		sleep(ctx, step)
		d -= step
		if d > 0 {
			_, _ = s.claim(ctx)
		}
	}
}

// backoffDelay is the wait after the failed-th consecutive failure: lo
// doubling per failure up to hi, with jitter (uniform in [d/2, d]) so that
// replicas and restarts do not retry in step.
func backoffDelay(failed int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < failed && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// MinWebhookSecret is the shortest webhook secret accepted (bytes).
const MinWebhookSecret = 32

// WebhookTimeout bounds one webhook delivery.
const WebhookTimeout = 10 * time.Second

// Webhook delivers batches as signed HTTP POSTs of {"events": [...]}:
//
//	Gatehouse-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + "." + body)>
//	Gatehouse-Delivery:  <first seq>-<last seq>
//
// A 2xx answer acknowledges the batch; anything else (redirects included,
// which are not followed) is a failure to retry.
type Webhook struct {
	url    string
	secret []byte
	client *http.Client
	now    func() time.Time
}

// NewWebhook returns the webhook sink for url, signing with secret.
func NewWebhook(url, secret string, now func() time.Time) *Webhook {
	if now == nil {
		now = time.Now
	}
	return &Webhook{url: url, secret: []byte(secret), now: now, client: &http.Client{
		Timeout:       WebhookTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Name implements Sink.
func (*Webhook) Name() string { return "webhook" }

// Deliver implements Sink.
func (w *Webhook) Deliver(ctx context.Context, events []*store.Event) error {
	batch := struct {
		Events []EventJSON `json:"events"`
	}{make([]EventJSON, len(events))}
	for i, e := range events {
		batch.Events[i] = ToJSON(e)
	}
	body, err := json.Marshal(batch)
	if err != nil {
		return fmt.Errorf("audit webhook: encode: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("audit webhook: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Gatehouse-Audit/1")
	req.Header.Set("Gatehouse-Signature", SignWebhook(w.secret, w.now().Unix(), body))
	req.Header.Set("Gatehouse-Delivery", fmt.Sprintf("%d-%d", events[0].Seq, events[len(events)-1].Seq))
	res, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("audit webhook: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return fmt.Errorf("audit webhook: answered %d", res.StatusCode)
	}
	return nil
}

// SignWebhook is the Gatehouse-Signature header value of body sent at t
// (unix seconds).
func SignWebhook(secret []byte, t int64, body []byte) string {
	ts := strconv.FormatInt(t, 10)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts))
	mac.Write([]byte("."))
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// Writer delivers events as JSON lines to an io.Writer (--audit-stdout).
type Writer struct {
	mu sync.Mutex
	w  io.Writer
}

// NewWriter returns the JSON-lines sink writing to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Name implements Sink.
func (*Writer) Name() string { return "stdout" }

// Deliver implements Sink: one line per event, written in one call.
func (w *Writer) Deliver(_ context.Context, events []*store.Event) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	for _, e := range events {
		if err := enc.Encode(ToJSON(e)); err != nil {
			return fmt.Errorf("audit stdout: encode: %w", err)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, err := w.w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("audit stdout: %w", err)
	}
	return nil
}
