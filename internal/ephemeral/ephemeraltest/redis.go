package ephemeraltest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse-auth/gatehouse/internal/ephemeral"
)

// RedisURLEnv names the environment variable that points tests at a real
// Redis, e.g. redis://127.0.0.1:6379/0.
const RedisURLEnv = "GATEHOUSE_TEST_REDIS_URL"

// RedisURL returns the test Redis URL, or skips t when it is not configured.
func RedisURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(RedisURLEnv)
	if u == "" {
		t.Skipf("skipping Redis test: set %s (e.g. redis://127.0.0.1:6379/0) to run it", RedisURLEnv)
	}
	return u
}

// RandomPrefix returns a fresh key/channel prefix, unique per call, so that
// concurrent test runs sharing one Redis never see each other's data.
func RandomPrefix(t testing.TB) string {
	t.Helper()
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "gatehouse-test:" + hex.EncodeToString(b[:]) + ":"
}

// NewRedis returns a Redis store on the test Redis with a random prefix. It
// skips t when no test Redis is configured. The store is closed and every
// key under its prefix deleted when t ends.
func NewRedis(t testing.TB) *ephemeral.Redis {
	t.Helper()
	return OpenRedis(t, RedisURL(t), RandomPrefix(t))
}

// OpenRedis opens a Redis store at url with prefix, failing t on error, and
// registers cleanup: Close, then deletion (SCAN + DEL) of every key under
// prefix. Several stores may share a prefix.
func OpenRedis(t testing.TB, url, prefix string) *ephemeral.Redis {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := ephemeral.NewRedis(ctx, url, prefix)
	if err != nil {
		t.Fatalf("NewRedis: %v", err)
	}
	CleanupPrefix(t, url, prefix)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// CleanupPrefix registers a cleanup that deletes every key under prefix on
// the Redis at url, using SCAN (never KEYS) so it is safe on a shared server.
func CleanupPrefix(t testing.TB, url, prefix string) {
	t.Helper()
	if prefix == "" {
		t.Fatal("CleanupPrefix: refusing to delete with an empty prefix")
	}
	t.Cleanup(func() {
		opt, err := redis.ParseURL(url)
		if err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
		c := redis.NewClient(opt)
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		iter := c.Scan(ctx, 0, escapeGlob(prefix)+"*", 500).Iterator()
		var batch []string
		flush := func() {
			if len(batch) > 0 {
				if err := c.Del(ctx, batch...).Err(); err != nil {
					t.Errorf("cleanup: DEL: %v", err)
				}
				batch = batch[:0]
			}
		}
		for iter.Next(ctx) {
			batch = append(batch, iter.Val())
			if len(batch) >= 500 {
				flush()
			}
		}
		flush()
		if err := iter.Err(); err != nil {
			t.Errorf("cleanup: SCAN: %v", err)
		}
	})
}

// escapeGlob escapes Redis glob metacharacters so that a prefix matches
// only itself.
func escapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\', '^', '-':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// StartRedis runs a private redis-server on a free loopback port for a test
// that must stop Redis under a running server, and returns its URL and a
// stop function (also registered as cleanup). It skips t unless a test
// Redis is configured (RedisURLEnv), since that is what says Redis is
// installed.
func StartRedis(t testing.TB) (url string, stop func()) {
	t.Helper()
	RedisURL(t)
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skipf("skipping: %s is set but redis-server is not on PATH", RedisURLEnv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
	}
	t.Cleanup(stop)
	url = "redis://127.0.0.1:" + strconv.Itoa(port) + "/0"
	opt, _ := redis.ParseURL(url)
	c := redis.NewClient(opt)
	defer c.Close()
	for i := 0; ; i++ {
		if c.Ping(context.Background()).Err() == nil {
			return url, stop
		}
		if i == 100 {
			t.Fatalf("redis-server on port %d did not answer", port)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// RedisURLIsSet reports whether a test Redis is configured.
func RedisURLIsSet() bool { return os.Getenv(RedisURLEnv) != "" }
