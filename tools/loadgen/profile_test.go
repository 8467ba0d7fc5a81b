package main

// The server has no pprof endpoint, so its hot paths are profiled here: the
// same app.Server that cmd/gatehouse runs, serving on a loopback listener in
// this process, driven by the loadgen client. The profile therefore holds
// both sides; the server's share is everything under net/http.(*conn).serve:
//
//	go test -run '^$' -bench 'Server' -benchtime 5s -cpuprofile /tmp/cpu.out ./tools/loadgen/
//	go tool pprof -top -focus 'http.\(\*conn\).serve' /tmp/cpu.out
//
// The figures of record come from the out-of-process loadgen (main.go);
// these benchmarks are for finding where the time goes.

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/gatehouse-auth/gatehouse/internal/app"
	"github.com/gatehouse-auth/gatehouse/internal/config"
	"github.com/gatehouse-auth/gatehouse/internal/testutil"
)

// startInProcess serves a fresh Gatehouse (SQLite in a temp dir, or the
// PostgreSQL URL database; --dev, throttles raised) on 127.0.0.1 and
// returns its base URL. Logs go to a file at level, as they would go to a
// redirected stderr.
func startInProcess(b *testing.B, level, database string) string {
	b.Helper()
	dir := b.TempDir()
	cfg := config.Default()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Database = database
	cfg.Dev = true
	cfg.LogLevel = level
	cfg.LoginAttemptsPerIP = 1e9
	cfg.LoginFailuresPerAccount = 1e9
	cfg.SignupsPerIP = 1e9
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	cfg.Addr = ln.Addr().String()
	logf, err := os.Create(filepath.Join(dir, "log.json"))
	if err != nil {
		b.Fatal(err)
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(logf, &slog.HandlerOptions{Level: l}))
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := app.New(ctx, cfg, log, app.Options{})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
		srv.Close()
		logf.Close()
	})
	return "http://" + cfg.Addr
}

func benchClient(b *testing.B) *http.Client {
	b.SetParallelism(4) // 4 × GOMAXPROCS workers, as loadgen's defaults
	c := newClient(4 * 64)
	b.Cleanup(c.CloseIdleConnections)
	return c
}

func signupCookie(b *testing.B, c *http.Client, base string, i int) string {
	b.Helper()
	resp, err := call(context.Background(), c, http.MethodPost, base+"/v1/signup", "", credentials(i), http.StatusCreated)
	if err != nil {
		b.Fatal(err)
	}
	ck, err := sessionCookie(resp)
	if err != nil {
		b.Fatal(err)
	}
	return ck
}

// BenchmarkServerMe is GET /v1/me with a cached session.
func BenchmarkServerMe(b *testing.B) {
	for _, level := range []string{"warn", "info"} {
		b.Run(level, func(b *testing.B) {
			base := startInProcess(b, level, "")
			c := benchClient(b)
			cookie := signupCookie(b, c, base, 0)
			if _, err := call(context.Background(), c, http.MethodGet, base+"/v1/me", cookie, nil, http.StatusOK); err != nil {
				b.Fatal(err) // also fills the session cache
			}
			parallelWorkers(b, 1, func(ctx context.Context, _ int) error {
				_, err := call(ctx, c, http.MethodGet, base+"/v1/me", cookie, nil, http.StatusOK)
				return err
			})
		})
	}
}

// BenchmarkServerLogin is POST /v1/login of one account.
func BenchmarkServerLogin(b *testing.B) {
	base := startInProcess(b, "warn", "")
	c := benchClient(b)
	signupCookie(b, c, base, 0)
	body := credentials(0)
	parallelWorkers(b, 1, func(ctx context.Context, _ int) error {
		_, err := call(ctx, c, http.MethodPost, base+"/v1/login", "", body, http.StatusOK)
		return err
	})
}

// BenchmarkServerNoop is the no-op baseline of BenchmarkServerMe.
func BenchmarkServerNoop(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	base := "http://" + ln.Addr().String()
	c := benchClient(b)
	parallelWorkers(b, 1, func(ctx context.Context, _ int) error {
		_, err := call(ctx, c, http.MethodGet, base+"/v1/me", "gh_session=ghs_noop", nil, http.StatusOK)
		return err
	})
}

// tokenServer starts a Gatehouse on backend ("postgres" needs
// GATEHOUSE_TEST_POSTGRES_URL and is skipped without it) with n token-mode
// chains signed up, driven through loadgen's own server type.
func tokenServer(b *testing.B, backend string, n int) *server {
	b.Helper()
	database := ""
	if backend == "postgres" {
		database = testutil.PostgresURL(b)
	}
	s := &server{gatehouse: &gatehouse{base: startInProcess(b, "warn", database)}, client: benchClient(b),
		chains: make([]string, n), access: make([]string, n)}
	for i := range n {
		if err := s.tokenSignup(context.Background(), i); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

// parallelWorkers times op on RunParallel's goroutines, each with its own
// index w below n (there are 4 × GOMAXPROCS with benchClient's
// parallelism, so n = 4 × GOMAXPROCS gives each its own).
func parallelWorkers(b *testing.B, n int, op func(ctx context.Context, w int) error) {
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := int(next.Add(1)-1) % n
		for pb.Next() {
			if err := op(context.Background(), w); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkServerRefresh is POST /v1/token/refresh, every worker rotating
// its own chain.
func BenchmarkServerRefresh(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			n := 4 * runtime.GOMAXPROCS(0)
			s := tokenServer(b, backend, n)
			parallelWorkers(b, n, s.rotate)
		})
	}
}

// BenchmarkServerForwardAuth is GET /v1/forward-auth with a bearer token.
func BenchmarkServerForwardAuth(b *testing.B) {
	s := tokenServer(b, "sqlite", 1)
	bearer := "Bearer " + s.access[0]
	parallelWorkers(b, 1, func(ctx context.Context, _ int) error {
		_, err := send(ctx, s.client, http.MethodGet, s.base+"/v1/forward-auth", "Authorization", bearer, nil, http.StatusOK, nil)
		return err
	})
}
