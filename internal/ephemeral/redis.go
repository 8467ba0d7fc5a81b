package ephemeral

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults for the Redis subscription machinery.
const (
	// defaultHealthInterval is how long a subscription connection may be
	// silent before it is pinged; if nothing at all arrives by the next
	// check, it is declared dead, closed and re-established (with onReset).
	// A blackholed connection is therefore detected within 2-3 intervals.
	defaultHealthInterval = 3 * time.Second
	// defaultSubscribeTimeout bounds one attempt to (re)establish a
	// subscription and receive Redis's confirmation.
	defaultSubscribeTimeout = 10 * time.Second
	// Reconnect backoff bounds for a lost subscription.
	minReconnectBackoff = 50 * time.Millisecond
	maxReconnectBackoff = 5 * time.Second
)

// incrScript is a fixed-window counter in one round trip: the first INCR of
// a window sets its expiry, later ones leave it alone. A counter that somehow
// has no expiry (PTTL -1, e.g. written by something else) is given one, so a
// counter can never lock a key out forever.
var incrScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
local t = redis.call('PTTL', KEYS[1])
if n == 1 or t < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  t = tonumber(ARGV[1])
end
return {n, t}
`)

// countScript reads a counter and its remaining TTL atomically. The value is
// returned as a string (Lua numbers are doubles) and parsed in Go.
var countScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then return {} end
local t = redis.call('PTTL', KEYS[1])
if t < 0 then t = 0 end
return {v, t}
`)

// Redis is the [Store] for scale-out deployments: every replica points at
// the same Redis (standalone, Redis >= 6.2 for GETDEL; scripting must be
// allowed). Every key and channel name is prefixed with the store's prefix.
//
// Note that Redis pub/sub channels are global to the server, not per
// database: two deployments sharing a server must use different prefixes
// even if they use different database numbers.
//
// On Redis failure every method returns an error (wrapped, never containing
// the URL's password); nothing is buffered or retried beyond go-redis's own
// command retries, which are safe here: a retried Take or SetNX whose first
// attempt succeeded reports ErrNotFound/false (fail closed), a retried Incr
// can only over-count. Subscriptions survive outages: they reconnect with
// backoff, resubscribe, and call onReset both when the connection is lost and
// once the subscription is active again.
type Redis struct {
	client *redis.Client
	prefix string

	healthInterval   time.Duration
	subscribeTimeout time.Duration

	mu     sync.Mutex
	closed bool
	subs   map[*redisSub]struct{}
	wg     sync.WaitGroup // subscription reader and health goroutines
}

// NewRedis connects to the Redis at rawURL (redis:// or rediss://, parsed by
// go-redis's ParseURL, so its query options such as dial_timeout or
// client_name apply), checks that it answers and supports the commands this
// package needs, and returns a store whose keys and channels all start with
// prefix (use something like "gatehouse:").
//
// rediss:// verifies the server certificate against the system roots (set
// SSL_CERT_FILE for a private CA); skip_verify=true is refused. Errors never
// echo the password.
func NewRedis(ctx context.Context, rawURL, prefix string) (*Redis, error) {
	opt, redacted, err := parseRedisURL(rawURL)
	if err != nil {
		return nil, err
	}
	if opt.ClientName == "" {
		opt.ClientName = "gatehouse"
	}
	r := &Redis{
		client:           redis.NewClient(opt),
		prefix:           prefix,
		healthInterval:   defaultHealthInterval,
		subscribeTimeout: defaultSubscribeTimeout,
		subs:             make(map[*redisSub]struct{}),
	}
	if err := r.client.Ping(ctx).Err(); err != nil {
		_ = r.client.Close()
		return nil, fmt.Errorf("ephemeral: redis %s: ping: %w", redacted, err)
	}
	// Probe the commands the store relies on, so that an old server or a
	// restrictive ACL fails at startup rather than at the first login.
	probe := "ephemeral:startup-probe"
	if _, err := r.Take(ctx, probe); err != nil && !errors.Is(err, ErrNotFound) {
		_ = r.client.Close()
		return nil, fmt.Errorf("ephemeral: redis %s: GETDEL unavailable (Redis >= 6.2 required): %w", redacted, err)
	}
	if _, _, err := r.Count(ctx, probe); err != nil {
		_ = r.client.Close()
		return nil, fmt.Errorf("ephemeral: redis %s: Lua scripting unavailable: %w", redacted, err)
	}
	return r, nil
}

// parseRedisURL parses and vets a Redis URL. It returns the options and a
// printable form of the URL with the password masked.
func parseRedisURL(rawURL string) (*redis.Options, string, error) {
	if strings.TrimSpace(rawURL) == "" {
		return nil, "", errors.New("ephemeral: Redis URL is empty (want redis://host:port/db or rediss://...)")
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		// Do not echo the URL (it may contain a password).
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		var ee url.EscapeError
		if errors.As(err, &ee) {
			err = errors.New("invalid percent-encoding")
		}
		return nil, "", fmt.Errorf("ephemeral: invalid Redis URL (not shown, it may contain a password): %v", err)
	}
	redacted := u.Redacted()
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, "", fmt.Errorf("ephemeral: invalid Redis URL %q: scheme must be redis:// or rediss://", redacted)
	}
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		msg := err.Error()
		if p, ok := u.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, "xxxxx")
		}
		return nil, "", fmt.Errorf("ephemeral: invalid Redis URL %q: %s", redacted, msg)
	}
	if opt.TLSConfig != nil && opt.TLSConfig.InsecureSkipVerify {
		return nil, "", fmt.Errorf("ephemeral: invalid Redis URL %q: skip_verify=true disables TLS certificate verification; use SSL_CERT_FILE to trust a private CA instead", redacted)
	}
	return opt, redacted, nil
}

func (r *Redis) key(k string) string { return r.prefix + k }

func redisErr(op string, err error) error {
	return fmt.Errorf("ephemeral: redis %s: %w", op, err)
}

// Incr implements [Store] with one atomic script call (EVALSHA).
func (r *Redis) Incr(ctx context.Context, key string, window time.Duration) (int64, time.Duration, error) {
	ms, err := toMillis(window, "window")
	if err != nil {
		return 0, 0, err
	}
	res, err := incrScript.Run(ctx, r.client, []string{r.key(key)}, ms).Int64Slice()
	if err != nil {
		return 0, 0, redisErr("incr", err)
	}
	if len(res) != 2 {
		return 0, 0, redisErr("incr", fmt.Errorf("unexpected reply length %d", len(res)))
	}
	return res[0], time.Duration(res[1]) * time.Millisecond, nil
}

// Count implements [Store] with one atomic script call.
func (r *Redis) Count(ctx context.Context, key string) (int64, time.Duration, error) {
	res, err := countScript.Run(ctx, r.client, []string{r.key(key)}).Slice()
	if err != nil {
		return 0, 0, redisErr("count", err)
	}
	if len(res) == 0 {
		return 0, 0, nil
	}
	if len(res) != 2 {
		return 0, 0, redisErr("count", fmt.Errorf("unexpected reply length %d", len(res)))
	}
	s, _ := res[0].(string)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, 0, errNotInteger
	}
	t, ok := res[1].(int64)
	if !ok {
		return 0, 0, redisErr("count", fmt.Errorf("unexpected ttl type %T", res[1]))
	}
	return n, time.Duration(t) * time.Millisecond, nil
}

// Get implements [Store].
func (r *Redis) Get(ctx context.Context, key string) ([]byte, error) {
	b, err := r.client.Get(ctx, r.key(key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, redisErr("get", err)
	}
	return b, nil
}

// Set implements [Store] (SET PX).
func (r *Redis) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	ms, err := toMillis(ttl, "ttl")
	if err != nil {
		return err
	}
	if err := r.client.Set(ctx, r.key(key), value, time.Duration(ms)*time.Millisecond).Err(); err != nil {
		return redisErr("set", err)
	}
	return nil
}

// SetNX implements [Store] (SET NX PX).
func (r *Redis) SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	ms, err := toMillis(ttl, "ttl")
	if err != nil {
		return false, err
	}
	ok, err := r.client.SetNX(ctx, r.key(key), value, time.Duration(ms)*time.Millisecond).Result()
	if err != nil {
		return false, redisErr("setnx", err)
	}
	return ok, nil
}

// Take implements [Store] (GETDEL).
func (r *Redis) Take(ctx context.Context, key string) ([]byte, error) {
	b, err := r.client.GetDel(ctx, r.key(key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, redisErr("take", err)
	}
	return b, nil
}

// Delete implements [Store].
func (r *Redis) Delete(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	full := make([]string, len(keys))
	for i, k := range keys {
		full[i] = r.key(k)
	}
	if err := r.client.Del(ctx, full...).Err(); err != nil {
		return redisErr("delete", err)
	}
	return nil
}

// Publish implements [Store]. Redis buffers per subscriber, so a slow
// subscriber never blocks a publisher.
func (r *Redis) Publish(ctx context.Context, channel string, msg []byte) error {
	if err := r.client.Publish(ctx, r.key(channel), msg).Err(); err != nil {
		return redisErr("publish", err)
	}
	return nil
}

// Client returns the Redis client and the key prefix, for components that
// run their own scripts on the same connection pool (the rate limiter).
func (r *Redis) Client() (*redis.Client, string) { return r.client, r.prefix }

// Ping implements [Store].
func (r *Redis) Ping(ctx context.Context) error {
	if err := r.client.Ping(ctx).Err(); err != nil {
		return redisErr("ping", err)
	}
	return nil
}

// Close implements [Store]: it ends every subscription, waits for their
// connection goroutines (not for running handlers) and closes the client.
// Calling it again returns nil.
func (r *Redis) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	subs := r.subs
	r.subs = nil
	r.mu.Unlock()

	for rs := range subs {
		rs.cancel()
	}
	r.wg.Wait()
	return r.client.Close()
}

// Subscribe implements [Store] on a dedicated pub/sub connection per call.
//
// The connection is watched: any receive error, or no answer to a health
// PING sent after an idle interval (3s), closes it; the subscription is then
// re-established with backoff until ctx is done. onReset is signalled when
// the connection is lost and again once the new subscription is confirmed,
// because anything published in between was missed. Messages are queued
// (up to 1024) for the handler goroutine; overflow drops and signals onReset.
func (r *Redis) Subscribe(ctx context.Context, channel string, handler func(msg []byte), onReset func()) error {
	if err := validateSubscribe(ctx, handler); err != nil {
		return err
	}
	subCtx, cancel := context.WithCancel(ctx)
	rs := &redisSub{r: r, channel: r.key(channel), ctx: subCtx, cancel: cancel}

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		cancel()
		return errClosed
	}
	r.subs[rs] = struct{}{}
	r.wg.Add(2) // reader + health; reserved now so Close waits for setup
	r.mu.Unlock()

	ps, err := rs.open()
	if err == nil && !rs.install(ps) {
		err = subCtx.Err()
	}
	if err != nil {
		cancel()
		r.removeSub(rs)
		r.wg.Add(-2)
		return redisErr("subscribe", err)
	}
	context.AfterFunc(subCtx, rs.closeConn)
	rs.sub = newSubscriber(subCtx.Done(), handler, onReset)
	go rs.sub.run()
	go rs.health()
	go rs.read()
	return nil
}

func (r *Redis) removeSub(rs *redisSub) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.subs, rs) // no-op on the nil map after Close
}

// redisSub is one subscription: a reader goroutine that owns reconnection,
// a health goroutine that pings, and a handler goroutine (subscriber).
type redisSub struct {
	r       *Redis
	channel string // prefixed
	ctx     context.Context
	cancel  context.CancelFunc
	sub     *subscriber

	mu       sync.Mutex
	ps       *redis.PubSub // nil while reconnecting
	lastSeen time.Time     // last traffic on ps
	pingAt   time.Time     // last health PING sent on ps
}

// open establishes a new pub/sub connection subscribed to rs.channel and
// waits for Redis's confirmation, so that the subscription is active when it
// returns.
func (rs *redisSub) open() (*redis.PubSub, error) {
	ctx, cancel := context.WithTimeout(rs.ctx, rs.r.subscribeTimeout)
	defer cancel()
	ps := rs.r.client.Subscribe(ctx) // no channels yet: no I/O
	// Receive does not watch ctx cancellation, only its deadline: close the
	// connection to interrupt it.
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	fail := func(err error) (*redis.PubSub, error) {
		stop()
		_ = ps.Close()
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = fmt.Errorf("waiting for subscription: %w", ctxErr)
		}
		return nil, err
	}
	if err := ps.Subscribe(ctx, rs.channel); err != nil {
		return fail(err)
	}
	for {
		msg, err := ps.Receive(ctx)
		if err != nil {
			return fail(err)
		}
		if m, ok := msg.(*redis.Subscription); ok && m.Kind == "subscribe" && m.Channel == rs.channel {
			if !stop() {
				return fail(ctx.Err()) // the AfterFunc closed ps
			}
			return ps, nil
		}
	}
}

// install makes ps the current connection unless the subscription ended.
func (rs *redisSub) install(ps *redis.PubSub) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.ctx.Err() != nil {
		_ = ps.Close()
		return false
	}
	rs.ps = ps
	rs.lastSeen = time.Now()
	rs.pingAt = time.Time{}
	return true
}

// closeConn closes the current connection (interrupting Receive).
func (rs *redisSub) closeConn() {
	rs.mu.Lock()
	ps := rs.ps
	rs.mu.Unlock()
	if ps != nil {
		_ = ps.Close()
	}
}

func (rs *redisSub) read() {
	defer rs.r.wg.Done()
	defer rs.r.removeSub(rs)
	defer rs.cancel()
	for {
		rs.mu.Lock()
		ps := rs.ps
		rs.mu.Unlock()
		msg, err := ps.Receive(rs.ctx)
		if rs.ctx.Err() != nil {
			return
		}
		if err != nil {
			// Messages published from now until the new subscription is
			// confirmed are lost: let caches flush now, and again after.
			rs.sub.signalReset()
			if !rs.reconnect(ps) {
				return
			}
			rs.sub.signalReset()
			continue
		}
		rs.mu.Lock()
		rs.lastSeen = time.Now()
		rs.mu.Unlock()
		if m, ok := msg.(*redis.Message); ok && m.Channel == rs.channel {
			rs.sub.deliver([]byte(m.Payload))
		}
	}
}

// reconnect replaces the broken connection old, retrying with backoff until
// a new subscription is confirmed (true) or the subscription ends (false).
func (rs *redisSub) reconnect(old *redis.PubSub) bool {
	rs.mu.Lock()
	rs.ps = nil
	rs.mu.Unlock()
	// go-redis may already have redialled and resubscribed internally; we
	// start from a clean connection so that the confirmation is observed.
	_ = old.Close()

	backoff := minReconnectBackoff
	for {
		ps, err := rs.open()
		if err == nil {
			return rs.install(ps)
		}
		t := time.NewTimer(backoff)
		select {
		case <-rs.ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		backoff = min(2*backoff, maxReconnectBackoff)
	}
}

// health pings an idle connection and closes one that does not answer,
// which makes the reader reconnect. This catches half-open TCP connections
// (partitions without RST) that would otherwise block Receive forever.
func (rs *redisSub) health() {
	defer rs.r.wg.Done()
	interval := rs.r.healthInterval
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-rs.ctx.Done():
			return
		case <-t.C:
		}
		rs.mu.Lock()
		ps, lastSeen, pingAt := rs.ps, rs.lastSeen, rs.pingAt
		pending := !pingAt.IsZero() && lastSeen.Before(pingAt)
		rs.mu.Unlock()
		switch {
		case ps == nil: // reconnecting
		case pending:
			// No traffic at all since the PING, for at least one tick.
			if time.Since(pingAt) >= interval/2 {
				_ = ps.Close()
			}
		case time.Since(lastSeen) >= interval:
			rs.mu.Lock()
			rs.pingAt = time.Now()
			rs.mu.Unlock()
			pctx, cancel := context.WithTimeout(rs.ctx, interval)
			err := ps.Ping(pctx)
			cancel()
			if err != nil {
				_ = ps.Close()
			}
		}
	}
}
