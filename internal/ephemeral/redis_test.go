package ephemeral_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse-auth/gatehouse/internal/ephemeral"
	"github.com/gatehouse-auth/gatehouse/internal/ephemeral/ephemeraltest"
)

func TestRedisConformance(t *testing.T) {
	ephemeraltest.RedisURL(t) // skip early, with the reason, when unset
	ephemeraltest.Run(t, func(t *testing.T) ephemeral.Store { return ephemeraltest.NewRedis(t) })
}

// TestNewRedisBadURL needs no Redis: every bad URL must fail with a clear
// error that never echoes the password.
func TestNewRedisBadURL(t *testing.T) {
	const secret = "s3cretPassw0rd"
	tests := []struct {
		name, url, want string
	}{
		{"empty", "", "Redis URL is empty"},
		{"wrong scheme", "http://:" + secret + "@127.0.0.1:6379", "scheme must be redis:// or rediss://"},
		{"unix scheme", "unix:///tmp/redis.sock", "scheme must be redis:// or rediss://"},
		{"bad port", "redis://:" + secret + "@127.0.0.1:notaport/0", "invalid Redis URL"},
		{"bad escape", "redis://:" + secret + "%zz@127.0.0.1:6379/0", "invalid percent-encoding"},
		{"bad db", "redis://:" + secret + "@127.0.0.1:6379/notadb", "invalid database number"},
		{"unknown option", "redis://:" + secret + "@127.0.0.1:6379/0?bogus=1", "unexpected option: bogus"},
		{"skip_verify", "rediss://:" + secret + "@127.0.0.1:6379/0?skip_verify=true", "disables TLS certificate verification"},
		{"unreachable", "redis://:" + secret + "@127.0.0.1:1/0", "ping"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			s, err := ephemeral.NewRedis(ctx, tc.url, "p:")
			if err == nil {
				_ = s.Close()
				t.Fatal("NewRedis succeeded")
			}
			msg := err.Error()
			t.Log(msg)
			if !strings.HasPrefix(msg, "ephemeral: ") || !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not mention %q", msg, tc.want)
			}
			if strings.Contains(msg, secret) {
				t.Errorf("error leaks the password: %q", msg)
			}
		})
	}
}

func rawClient(t *testing.T, rawURL string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestRedisPrefixIsolation(t *testing.T) {
	u := ephemeraltest.RedisURL(t)
	pa, pb := ephemeraltest.RandomPrefix(t), ephemeraltest.RandomPrefix(t)
	a, b := ephemeraltest.OpenRedis(t, u, pa), ephemeraltest.OpenRedis(t, u, pb)
	ctx := t.Context()

	if err := a.Set(ctx, "k", []byte("a"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "k"); !errors.Is(err, ephemeral.ErrNotFound) {
		t.Errorf("b sees a's key: err = %v", err)
	}
	if _, err := b.Take(ctx, "k"); !errors.Is(err, ephemeral.ErrNotFound) {
		t.Errorf("b can take a's key: err = %v", err)
	}
	if err := b.Set(ctx, "k", []byte("b"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if v, err := a.Get(ctx, "k"); err != nil || string(v) != "a" {
		t.Errorf("a.Get = %q, %v; want a", v, err)
	}
	if n, _, _ := a.Incr(ctx, "n", time.Minute); n != 1 {
		t.Errorf("a.Incr = %d", n)
	}
	if n, _, _ := b.Incr(ctx, "n", time.Minute); n != 1 {
		t.Errorf("b.Incr = %d; counters shared across prefixes", n)
	}

	// The keys really live under the prefixes.
	raw := rawClient(t, u)
	if v, err := raw.Get(ctx, pa+"k").Result(); err != nil || v != "a" {
		t.Errorf("raw GET %sk = %q, %v", pa, v, err)
	}

	// Channels are prefixed too (pub/sub ignores the database number).
	var gotA, gotB atomic.Int32
	if err := a.Subscribe(ctx, "ch", func([]byte) { gotA.Add(1) }, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Subscribe(ctx, "ch", func([]byte) { gotB.Add(1) }, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, "ch", []byte("for b")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "b receives its message", func() bool { return gotB.Load() == 1 })
	time.Sleep(100 * time.Millisecond)
	if gotA.Load() != 0 {
		t.Error("a received a message published under b's prefix")
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// withClientName returns rawURL with client_name set, so a test can find
// (and kill) its own connections without touching other test runs'.
func withClientName(t *testing.T, rawURL, name string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("client_name", name)
	u.RawQuery = q.Encode()
	return u.String()
}

// killPubSubClients kills the pub/sub connections named name. It is the
// targeted equivalent of CLIENT KILL TYPE pubsub, which would also hit
// concurrent test runs on the same server.
func killPubSubClients(t *testing.T, raw *redis.Client, name string) int {
	t.Helper()
	ctx := t.Context()
	list, err := raw.Do(ctx, "CLIENT", "LIST", "TYPE", "pubsub").Text()
	if err != nil {
		t.Fatal(err)
	}
	killed := 0
	for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
		fields := map[string]string{}
		for _, f := range strings.Fields(line) {
			if k, v, ok := strings.Cut(f, "="); ok {
				fields[k] = v
			}
		}
		if fields["name"] != name {
			continue
		}
		if err := raw.Do(ctx, "CLIENT", "KILL", "ID", fields["id"]).Err(); err != nil {
			t.Fatal(err)
		}
		killed++
	}
	return killed
}

// publishUntilDelivered publishes msg repeatedly until got reports it, as a
// resubscription has no observable completion from the publisher's side.
func publishUntilDelivered(t *testing.T, pub ephemeral.Store, channel, msg string, got func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !got() {
		if time.Now().After(deadline) {
			t.Fatalf("message %q never delivered after reconnect", msg)
		}
		if err := pub.Publish(t.Context(), channel, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type recorder struct {
	mu     sync.Mutex
	msgs   map[string]bool
	resets atomic.Int32
}

func (r *recorder) handle(m []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.msgs == nil {
		r.msgs = map[string]bool{}
	}
	r.msgs[string(m)] = true
}

func (r *recorder) has(m string) func() bool {
	return func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.msgs[m]
	}
}

func TestRedisResubscribesAfterConnectionKilled(t *testing.T) {
	u := ephemeraltest.RedisURL(t)
	name := "gatehouse-test-" + strings.Trim(ephemeraltest.RandomPrefix(t)[len("gatehouse-test:"):], ":")
	s := ephemeraltest.OpenRedis(t, withClientName(t, u, name), ephemeraltest.RandomPrefix(t))
	raw := rawClient(t, u)
	ctx := t.Context()

	var rec recorder
	if err := s.Subscribe(ctx, "revocations", rec.handle, func() { rec.resets.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(ctx, "revocations", []byte("before")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "first message delivered", rec.has("before"))
	if n := rec.resets.Load(); n != 0 {
		t.Fatalf("onReset called %d times before any failure", n)
	}

	if n := killPubSubClients(t, raw, name); n != 1 {
		t.Fatalf("killed %d pub/sub connections named %s, want 1", n, name)
	}
	waitUntil(t, "onReset after the connection was killed", func() bool { return rec.resets.Load() > 0 })
	publishUntilDelivered(t, s, "revocations", "after", rec.has("after"))

	// Both the loss and the re-subscription are reported.
	waitUntil(t, "onReset after resubscription", func() bool { return rec.resets.Load() >= 2 })
	// Normal commands were unaffected.
	if _, _, err := s.Incr(ctx, "n", time.Minute); err != nil {
		t.Errorf("Incr after pub/sub reconnect: %v", err)
	}
}

func TestRedisCloseEndsSubscriptions(t *testing.T) {
	u := ephemeraltest.RedisURL(t)
	name := "gatehouse-test-" + strings.Trim(ephemeraltest.RandomPrefix(t)[len("gatehouse-test:"):], ":")
	s := ephemeraltest.OpenRedis(t, withClientName(t, u, name), ephemeraltest.RandomPrefix(t))
	for range 3 {
		if err := s.Subscribe(context.Background(), "ch", func([]byte) {}, nil); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close hung with active subscriptions")
	}
	raw := rawClient(t, u)
	waitUntil(t, "pub/sub connections closed", func() bool {
		list, err := raw.Do(t.Context(), "CLIENT", "LIST", "TYPE", "pubsub").Text()
		return err == nil && !strings.Contains(list, "name="+name+" ")
	})
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestRedisIncrRepairsCounterWithoutTTL(t *testing.T) {
	u := ephemeraltest.RedisURL(t)
	prefix := ephemeraltest.RandomPrefix(t)
	s := ephemeraltest.OpenRedis(t, u, prefix)
	raw := rawClient(t, u)
	ctx := t.Context()
	// A counter that lost its expiry must not lock a key out forever.
	if err := raw.Set(ctx, prefix+"n", "5", 0).Err(); err != nil {
		t.Fatal(err)
	}
	n, ttl, err := s.Incr(ctx, "n", time.Minute)
	if err != nil || n != 6 {
		t.Fatalf("Incr = %d, %v; want 6", n, err)
	}
	if ttl <= 0 || ttl > time.Minute {
		t.Errorf("ttl = %v, want (0, 1m]", ttl)
	}
	if pttl := raw.PTTL(ctx, prefix+"n").Val(); pttl <= 0 {
		t.Errorf("raw PTTL = %v: counter still has no expiry", pttl)
	}
}

func TestRedisRejectsBadArgumentsWithoutRoundTrip(t *testing.T) {
	s := ephemeraltest.NewRedis(t)
	ctx := t.Context()
	if err := s.Set(ctx, "k", []byte("v"), 0); err == nil {
		t.Error("Set with ttl 0 succeeded (would create a key that never expires)")
	}
	if _, _, err := s.Incr(ctx, "k", -time.Second); err == nil {
		t.Error("Incr with negative window succeeded")
	}
}

// blackhole is a TCP proxy whose existing connections can be silenced
// without being closed: the failure mode of a network partition, which
// produces no error on the client until something times out.
type blackhole struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []*holeConn
}

type holeConn struct {
	client, server net.Conn
	silenced       atomic.Bool
}

func newBlackhole(t *testing.T, target string) *blackhole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{ln: ln, target: target}
	go b.serve()
	t.Cleanup(b.close)
	return b
}

func (b *blackhole) serve() {
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", b.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		hc := &holeConn{client: c, server: s}
		b.mu.Lock()
		b.conns = append(b.conns, hc)
		b.mu.Unlock()
		go hc.pipe(c, s)
		go hc.pipe(s, c)
	}
}

func (hc *holeConn) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !hc.silenced.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				_ = dst.Close()
			}
			_ = dst.Close()
			return
		}
	}
}

// silence drops all traffic on existing connections; new ones work.
func (b *blackhole) silence() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.conns {
		c.silenced.Store(true)
	}
}

func (b *blackhole) close() {
	_ = b.ln.Close()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.conns {
		_ = c.client.Close()
		_ = c.server.Close()
	}
}

// TestRedisDetectsSilentConnection: a subscription whose connection goes
// silent (partition, no RST) must notice through its health pings, report
// onReset and resubscribe, instead of missing revocations forever.
func TestRedisDetectsSilentConnection(t *testing.T) {
	u := ephemeraltest.RedisURL(t)
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	hole := newBlackhole(t, parsed.Host)
	viaHole := *parsed
	viaHole.Host = hole.ln.Addr().String()

	prefix := ephemeraltest.RandomPrefix(t)
	sub := ephemeraltest.OpenRedis(t, viaHole.String(), prefix)
	pub := ephemeraltest.OpenRedis(t, u, prefix) // direct, unaffected by the partition
	ephemeral.SetHealthInterval(sub, 300*time.Millisecond)
	ctx := t.Context()

	var rec recorder
	if err := sub.Subscribe(ctx, "revocations", rec.handle, func() { rec.resets.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, "revocations", []byte("before")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "first message delivered", rec.has("before"))
	time.Sleep(1500 * time.Millisecond) // several health intervals: pings keep a live connection
	if n := rec.resets.Load(); n != 0 {
		t.Fatalf("healthy idle connection was reset %d times", n)
	}

	hole.silence()
	start := time.Now()
	waitUntil(t, "onReset after the connection went silent", func() bool { return rec.resets.Load() > 0 })
	t.Logf("silent connection detected after %v", time.Since(start))
	publishUntilDelivered(t, pub, "revocations", "after", rec.has("after"))
}
