package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/testutil"
)

// TestMain lets a test start real `gatehouse` processes: the test binary
// re-executed with GATEHOUSE_TEST_MAIN=1 runs main() with its arguments.
func TestMain(m *testing.M) {
	if os.Getenv("GATEHOUSE_TEST_MAIN") == "1" {
		os.Args = append([]string{"gatehouse"}, os.Args[1:]...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// replica is one `gatehouse serve` process.
type replica struct {
	base string
	cmd  *exec.Cmd
}

// startReplica runs `gatehouse serve` as a separate process with the given
// flags and returns once it listens.
func startReplica(tb testing.TB, args ...string) *replica {
	tb.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), "GATEHOUSE_TEST_MAIN=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	sc := bufio.NewScanner(stderr)
	addrc := make(chan string, 1)
	go func() { // reads the log to its end, so the process never blocks on it
		sent := false
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == "gatehouse listening" && !sent {
				addrc <- line["addr"].(string)
				sent = true
			}
		}
		if !sent {
			close(addrc)
		}
	}()
	select {
	case addr, ok := <-addrc:
		if !ok {
			tb.Fatal("replica exited before listening")
		}
		return &replica{base: "http://" + addr, cmd: cmd}
	case <-time.After(30 * time.Second):
		tb.Fatal("replica did not start")
	}
	return nil
}

func (r *replica) do(tb testing.TB, method, path, token string, body any) (int, map[string]any) {
	tb.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	req, _ := http.NewRequestWithContext(context.Background(), method, r.base+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(res.Body).Decode(&m)
	return res.StatusCode, m
}

// twoReplicas starts two processes on one PostgreSQL and one Redis, with a
// shared keys directory (pepper and key-encryption key).
func twoReplicas(tb testing.TB, extra ...string) (*replica, *replica) {
	tb.Helper()
	pg := testutil.PostgresURL(tb)
	redis := testutil.RedisURL(tb)
	args := []string{"--database", pg, "--redis", redis, "--redis-prefix", "gh_test_" + testutil.RandomHex(6) + ":",
		"--data-dir", tb.TempDir()}
	args = append(args, extra...)
	a := startReplica(tb, args...)
	b := startReplica(tb, args...) // after a: a created the first signing key
	return a, b
}

func (r *replica) tokenSignIn(tb testing.TB, email string) string {
	tb.Helper()
	code, m := r.do(tb, "POST", "/v1/signup", "", map[string]string{"email": email, "password": "correct horse battery staple", "mode": "token", "client": "native"})
	if code != http.StatusCreated {
		tb.Fatalf("signup: %d %v", code, m)
	}
	return m["access_token"].(string)
}

// TestAttackRevokedTokenRejectedBySecondReplica: a session logged out on
// replica A has its still-unexpired access token refused by replica B (a
// separate process) without a store read, through Redis pub/sub.
func TestAttackRevokedTokenRejectedBySecondReplica(t *testing.T) {
	a, b := twoReplicas(t)
	at := a.tokenSignIn(t, "replicas@example.com")
	if code, _ := b.do(t, "GET", "/v1/forward-auth", at, nil); code != http.StatusOK {
		t.Fatalf("replica B refuses a valid token from A: %d", code)
	}
	if code, _ := a.do(t, "POST", "/v1/logout", at, nil); code != http.StatusNoContent {
		t.Fatalf("logout on A: %d", code)
	}
	start := time.Now()
	for {
		code, _ := b.do(t, "GET", "/v1/forward-auth", at, nil)
		if code == http.StatusUnauthorized {
			break
		}
		if time.Since(start) > 2*time.Second {
			t.Fatalf("replica B still accepts the revoked token after %s", time.Since(start))
		}
	}
	if code, _ := b.do(t, "GET", "/v1/me", at, nil); code != http.StatusUnauthorized {
		t.Fatalf("replica B /v1/me accepts the revoked token: %d", code)
	}
}

// BenchmarkRevocationPropagation measures the time from a logout answered
// by replica A to replica B refusing the token, over b.N trials (run with
// -benchtime=200x); it reports p50 and p99 in milliseconds.
func BenchmarkRevocationPropagation(b *testing.B) {
	ra, rb := twoReplicas(b, "--signups-per-ip", "1000000")
	lat := make([]time.Duration, 0, b.N)
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		at := ra.tokenSignIn(b, fmt.Sprintf("prop%d@example.com", i))
		b.StartTimer()
		if code, _ := ra.do(b, "POST", "/v1/logout", at, nil); code != http.StatusNoContent {
			b.Fatalf("logout: %d", code)
		}
		start := time.Now()
		for {
			if code, _ := rb.do(b, "GET", "/v1/forward-auth", at, nil); code == http.StatusUnauthorized {
				break
			}
			if time.Since(start) > 5*time.Second {
				b.Fatal("not propagated within 5 s")
			}
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[int(p*float64(len(lat)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
