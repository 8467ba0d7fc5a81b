package gatehouse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

const (
	defaultMaxStaleness = 15 * time.Second

	// maxEventSize caps one feed event (in practice: the snapshot).
	maxEventSize = 4 << 20
	// maxRevokedSessions caps the revocation set. A feed that would exceed
	// it is treated as broken (fail closed).
	// A snapshot being assembled counts too, so the two together stay
	// within a few tens of MiB whatever the server sends.
	maxRevokedSessions = 1 << 18
	// maxSessionIDLength caps a session id in the feed (Gatehouse's are 30
	// bytes).
	maxSessionIDLength = 64
	// maxUntil caps an entry's "until" (unix seconds, year ~2500), far
	// from integer overflow in the expiry arithmetic.
	maxUntil = 1 << 34

	// revocationGrace is how long an entry is kept beyond its "until". The
	// server sets "until" to when the session's last token expires, but a
	// Verifier accepts a token up to Leeway past "exp" (and clocks drift),
	// so the entry must outlive "until" by at least that much. Leeway is
	// capped at maxLeeway, which this must not be shorter than.
	revocationGrace = maxLeeway

	pruneInterval     = time.Minute
	defaultMinBackoff = 250 * time.Millisecond
	defaultMaxBackoff = 30 * time.Second
)

// errFeedIdle ends a connection on which nothing arrived for MaxStaleness.
var errFeedIdle = errors.New("no event within MaxStaleness")

// errProtocol marks a feed the client cannot trust any more: the revocation
// set is discarded until the next snapshot.
var errProtocol = errors.New("revocation feed protocol error")

// RevocationFeedOptions configures a RevocationFeed.
type RevocationFeedOptions struct {
	// HTTPClient opens the event stream; nil means a default client. Its
	// Timeout, which would cut the long-lived stream, is ignored: a
	// connection on which nothing arrives for MaxStaleness is dropped and
	// re-established instead.
	HTTPClient *http.Client
	// MaxStaleness is how long the feed may be silent before Revoked fails
	// closed with ErrRevocationStale. Default 15s. It must be longer than
	// the server's heartbeat interval.
	MaxStaleness time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Logger receives connection problems; nil means slog.Default().
	Logger *slog.Logger
}

// RevocationFeed follows the Gatehouse revocation feed, a Server-Sent
// Events stream, and implements RevocationChecker. It fails closed: until
// the first snapshot has arrived, after a protocol error, and whenever no
// event has arrived for MaxStaleness, Revoked returns ErrRevocationStale.
//
// Run must be running for the feed to be useful.
type RevocationFeed struct {
	url          string
	clientID     string
	clientSecret string
	client       *http.Client
	maxStaleness time.Duration
	now          func() time.Time
	log          *slog.Logger
	minBackoff   time.Duration
	maxBackoff   time.Duration

	running   atomic.Bool
	ready     chan struct{}
	readyOnce sync.Once

	mu        sync.RWMutex
	revoked   map[string]int64 // session id → "until", unix seconds
	pending   map[string]int64 // a snapshot still arriving in parts, or nil
	maxLife   time.Duration    // the issuer's max_token_lifetime, 0 if not announced
	synced    bool             // a snapshot was applied, with no protocol error since
	lastEvent time.Time        // when the last event was applied
	lastPrune time.Time
}

// NewRevocationFeed returns a feed reading url with HTTP Basic
// authentication as clientID:clientSecret. Call Run to start it.
func NewRevocationFeed(url, clientID, clientSecret string, opts RevocationFeedOptions) *RevocationFeed {
	f := &RevocationFeed{
		url:          url,
		clientID:     clientID,
		clientSecret: clientSecret,
		client:       &http.Client{},
		maxStaleness: opts.MaxStaleness,
		now:          opts.Now,
		log:          opts.Logger,
		minBackoff:   defaultMinBackoff,
		maxBackoff:   defaultMaxBackoff,
		ready:        make(chan struct{}),
	}
	if opts.HTTPClient != nil {
		c := *opts.HTTPClient
		c.Timeout = 0
		f.client = &c
	}
	if f.maxStaleness <= 0 {
		f.maxStaleness = defaultMaxStaleness
	}
	if f.now == nil {
		f.now = time.Now
	}
	if f.log == nil {
		f.log = slog.Default()
	}
	return f
}

// Ready returns a channel that is closed once the first snapshot has been
// received.
func (f *RevocationFeed) Ready() <-chan struct{} { return f.ready }

// Revoked implements RevocationChecker. It returns an error wrapping
// ErrRevocationStale when the revocation state is not known to be current.
func (f *RevocationFeed) Revoked(_ context.Context, sid string) (bool, error) {
	now := f.now()
	f.mu.RLock()
	defer f.mu.RUnlock()
	if !f.synced {
		return false, fmt.Errorf("%w: no valid snapshot", ErrRevocationStale)
	}
	if now.Sub(f.lastEvent) > f.maxStaleness {
		return false, fmt.Errorf("%w: no event for more than %s", ErrRevocationStale, f.maxStaleness)
	}
	until, ok := f.revoked[sid]
	return ok && !expired(until, now), nil
}

// expired reports whether an entry with the given "until" may be forgotten.
func expired(until int64, now time.Time) bool {
	return now.Unix() > until+int64(revocationGrace/time.Second)
}

// Run follows the feed until ctx is done, reconnecting with capped,
// jittered exponential backoff. It returns ctx's error. Run must not be
// called more than once at a time.
func (f *RevocationFeed) Run(ctx context.Context) error {
	if !f.running.CompareAndSwap(false, true) {
		return errors.New("gatehouse: RevocationFeed.Run is already running")
	}
	defer f.running.Store(false)

	attempt := 0
	for {
		start := time.Now()
		synced, err := f.follow(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if synced && time.Since(start) >= f.maxStaleness {
			// The connection worked for a while: start the backoff afresh.
			// (A server that sends a snapshot and drops the connection at
			// once keeps backing off.)
			attempt = 0
		}
		delay := f.backoff(attempt)
		attempt++
		f.log.Warn("gatehouse: revocation feed disconnected",
			"url", f.url, "error", err, "retry_in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// backoff returns a delay in [d/2, d) where d doubles with each attempt from
// minBackoff up to maxBackoff.
func (f *RevocationFeed) backoff(attempt int) time.Duration {
	d := f.maxBackoff
	if attempt >= 0 && attempt < 30 {
		d = min(f.minBackoff<<attempt, f.maxBackoff)
	}
	return d/2 + rand.N(d/2+1)
}

// follow makes one connection and applies its events until it ends. It
// reports whether a snapshot was received on it.
func (f *RevocationFeed) follow(ctx context.Context) (gotSnapshot bool, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// Drop the connection if nothing arrives for maxStaleness, so that a
	// silent or half-open connection is replaced by a fresh one.
	idle := time.AfterFunc(f.maxStaleness, func() { cancel(errFeedIdle) })
	defer idle.Stop()
	defer func() {
		if errors.Is(context.Cause(ctx), errFeedIdle) {
			err = errFeedIdle
		}
	}()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.url, nil)
	if err != nil {
		return false, err
	}
	req.SetBasicAuth(f.clientID, f.clientSecret)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	resp, err := f.client.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("HTTP status %d", resp.StatusCode)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "text/event-stream" {
		return false, errors.New("response is not text/event-stream")
	}

	r := newSSEReader(resp.Body, maxEventSize)
	for first := true; ; {
		ev, err := r.next()
		if errors.Is(err, errEventTooLarge) {
			err = fmt.Errorf("%w: %w", errProtocol, err)
		}
		if err == nil {
			var applied bool
			applied, err = f.apply(ev, first)
			if applied {
				first = false
				gotSnapshot = gotSnapshot || ev.name == "snapshot"
				idle.Reset(f.maxStaleness)
			}
		}
		if err != nil {
			if errors.Is(err, errProtocol) {
				f.invalidate()
				f.log.Error("gatehouse: revocation feed protocol error; refusing tokens until the next snapshot",
					"url", f.url, "error", err)
			}
			if err == io.EOF {
				err = errors.New("server closed the stream")
			}
			return gotSnapshot, err
		}
	}
}

// invalidate discards the revocation state: Revoked fails closed until a
// snapshot arrives.
func (f *RevocationFeed) invalidate() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.synced = false
	f.revoked, f.pending = nil, nil
}

type revocationEntry struct {
	SID   string `json:"sid"`
	Until int64  `json:"until"`
}

func (e revocationEntry) check() error {
	if e.SID == "" || len(e.SID) > maxSessionIDLength || e.Until <= 0 || e.Until > maxUntil {
		return fmt.Errorf("%w: malformed revocation entry", errProtocol)
	}
	return nil
}

// apply applies one event and reports whether it counted as a sign of life.
// An error wrapping errProtocol means the feed cannot be trusted.
func (f *RevocationFeed) apply(ev sseEvent, first bool) (bool, error) {
	if first && ev.name != "snapshot" {
		return false, fmt.Errorf("%w: first event is %q, not a snapshot", errProtocol, ev.name)
	}
	now := f.now()
	if ev.name == "revoke" || ev.name == "heartbeat" {
		f.mu.RLock()
		partial := f.pending != nil
		f.mu.RUnlock()
		if partial {
			return false, fmt.Errorf("%w: %q event inside a snapshot", errProtocol, ev.name)
		}
	}
	switch ev.name {
	case "snapshot", "snapshot-part":
		return f.applySnapshot(ev, now)

	case "revoke":
		var e revocationEntry
		if err := json.Unmarshal(ev.data, &e); err != nil {
			return false, fmt.Errorf("%w: malformed revoke event", errProtocol)
		}
		if err := e.check(); err != nil {
			return false, err
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.revoked == nil { // unreachable: a snapshot precedes every revoke
			return false, fmt.Errorf("%w: revoke before snapshot", errProtocol)
		}
		if _, ok := f.revoked[e.SID]; !ok && len(f.revoked) >= maxRevokedSessions {
			f.prune(now)
			if len(f.revoked) >= maxRevokedSessions {
				return false, fmt.Errorf("%w: more than %d revoked sessions", errProtocol, maxRevokedSessions)
			}
		}
		f.revoked[e.SID] = max(f.revoked[e.SID], e.Until)
		// Not a sign of freshness: a server whose revocation source is
		// unhealthy withholds heartbeats but may still relay revocations,
		// and that silence must still fail closed.
		return true, nil

	case "heartbeat":
		var h struct {
			At int64 `json:"at"`
		}
		if err := json.Unmarshal(ev.data, &h); err != nil || h.At <= 0 {
			return false, fmt.Errorf("%w: malformed heartbeat", errProtocol)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if now.Sub(f.lastPrune) >= pruneInterval {
			f.prune(now)
		}
		f.lastEvent = now
		return true, nil
	}
	// Unknown event types are ignored (and are no sign of life).
	return false, nil
}

// applySnapshot applies a snapshot event or one of its parts; the set is
// replaced when the last part ("more": false) has arrived.
func (f *RevocationFeed) applySnapshot(ev sseEvent, now time.Time) (bool, error) {
	var s struct {
		Revoked          []revocationEntry `json:"revoked"`
		Heartbeat        int64             `json:"heartbeat"`
		MaxTokenLifetime int64             `json:"max_token_lifetime"`
		More             bool              `json:"more"`
	}
	if err := json.Unmarshal(ev.data, &s); err != nil || s.Revoked == nil || s.MaxTokenLifetime < 0 {
		return false, fmt.Errorf("%w: malformed %s", errProtocol, ev.name)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	set := f.pending
	switch {
	case ev.name == "snapshot":
		set = make(map[string]int64, len(s.Revoked))
		if hb := time.Duration(s.Heartbeat) * time.Second; hb >= f.maxStaleness {
			f.log.Warn("gatehouse: the feed's heartbeat interval is not shorter than MaxStaleness; tokens will be refused intermittently",
				"heartbeat", hb, "max_staleness", f.maxStaleness)
		}
		f.maxLife = time.Duration(s.MaxTokenLifetime) * time.Second
	case set == nil:
		return false, fmt.Errorf("%w: snapshot-part without a snapshot", errProtocol)
	}
	if len(set)+len(s.Revoked)+len(f.revoked) > 2*maxRevokedSessions || len(set)+len(s.Revoked) > maxRevokedSessions {
		f.pending = nil
		return false, fmt.Errorf("%w: snapshot has more than %d sessions", errProtocol, maxRevokedSessions)
	}
	for _, e := range s.Revoked {
		if err := e.check(); err != nil {
			f.pending = nil
			return false, err
		}
		if !expired(e.Until, now) {
			set[e.SID] = max(set[e.SID], e.Until)
		}
	}
	if s.More {
		// Freshness is counted from complete snapshots and heartbeats
		// only: parts that never finish must not keep the old set alive.
		f.pending = set
		return true, nil
	}
	f.pending = nil
	f.revoked, f.synced, f.lastPrune, f.lastEvent = set, true, now, now
	f.readyOnce.Do(func() { close(f.ready) })
	return true, nil
}

// MaxTokenLifetime is the issuer's announced bound on access-token
// lifetimes (LifetimeBound), 0 before the first snapshot.
func (f *RevocationFeed) MaxTokenLifetime() time.Duration {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.maxLife
}

// prune drops forgettable entries. f.mu must be held.
func (f *RevocationFeed) prune(now time.Time) {
	for sid, until := range f.revoked {
		if expired(until, now) {
			delete(f.revoked, sid)
		}
	}
	f.lastPrune = now
}

var _ RevocationChecker = (*RevocationFeed)(nil)
