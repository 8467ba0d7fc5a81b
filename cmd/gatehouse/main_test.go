package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// `gatehouse serve` starts with zero configuration beyond where to keep its
// data, creates the SQLite file and the pepper with private modes, reads
// flags from GATEHOUSE_* variables, and shuts down cleanly.
func TestServeZeroConfig(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	t.Setenv("GATEHOUSE_ADDR", "127.0.0.1:0")
	t.Setenv("GATEHOUSE_METRICS_ADDR", "127.0.0.1:0")

	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve"}, nil, io.Discard, pw)
		pw.Close()
	}()

	addr, metricsAddr := "", ""
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("log line is not JSON: %s", sc.Text())
		}
		if line["msg"] == "metrics listening" {
			metricsAddr = line["addr"].(string)
		}
		if line["msg"] == "gatehouse listening" {
			addr = line["addr"].(string)
			break
		}
	}
	if addr == "" {
		t.Fatalf("server did not start: %v", <-done)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()

	res, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("readyz = %d", res.StatusCode)
	}
	// The metrics listener is apart from the public one.
	res, err = http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(metrics), `gatehouse_http_requests_total{code="",route="GET /readyz",status="200"} 1`) {
		t.Errorf("metrics: %d\n%s", res.StatusCode, metrics)
	}
	for path, want := range map[string]os.FileMode{
		"gatehouse-data":                    0o700,
		"gatehouse-data/gatehouse.db":       0o600,
		"gatehouse-data/keys":               0o700,
		"gatehouse-data/keys/pepper-v1.key": 0o600,
	} {
		info, err := os.Stat(filepath.Join(dir, path))
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode().Perm(); got != want {
			t.Errorf("%s mode %v, want %v", path, got, want)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not shut down")
	}
}

func TestMigrateAndImport(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	if err := run(ctx, []string{"migrate", "--data-dir", dir}, nil, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	// Idempotent.
	if err := run(ctx, []string{"migrate", "--data-dir", dir}, nil, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	in := strings.NewReader(`{"email":"imp@example.com","name":"Imp","password_hash":"$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"}` + "\n")
	var out bytes.Buffer
	if err := run(ctx, []string{"users", "import", "--data-dir", dir}, in, &out, io.Discard); err != nil {
		t.Fatalf("import: %v (%s)", err, out.String())
	}
	if !strings.Contains(out.String(), "imported 1") {
		t.Errorf("output %q", out.String())
	}
	bad := strings.NewReader(`{"email":"x@example.com","password_hash":"plaintext"}` + "\n")
	if err := run(ctx, []string{"users", "import", "--data-dir", dir}, bad, io.Discard, io.Discard); err == nil {
		t.Error("importing a non-hash succeeded")
	}

	// users admin: the imported account becomes an administrator, then
	// no longer; an unknown address or a non-address is refused.
	out.Reset()
	if err := run(ctx, []string{"users", "admin", "--data-dir", dir, "IMP@example.com"}, nil, &out, io.Discard); err != nil || !strings.Contains(out.String(), "imp@example.com") || !strings.Contains(out.String(), "is now an administrator") {
		t.Errorf("users admin: %v %q", err, out.String())
	}
	out.Reset()
	if err := run(ctx, []string{"users", "admin", "--revoke", "--data-dir", dir, "imp@example.com"}, nil, &out, io.Discard); err != nil || !strings.Contains(out.String(), "is now not an administrator") {
		t.Errorf("users admin --revoke: %v %q", err, out.String())
	}
	for _, args := range [][]string{{"nobody@example.com"}, {"not an address"}, {}} {
		if err := run(ctx, append([]string{"users", "admin", "--data-dir", dir}, args...), nil, io.Discard, io.Discard); err == nil {
			t.Errorf("users admin %q succeeded", args)
		}
	}
}

func TestUnknownCommandAndBadFlags(t *testing.T) {
	ctx := context.Background()
	if err := run(ctx, []string{"frobnicate"}, nil, io.Discard, io.Discard); err == nil {
		t.Error("unknown command accepted")
	}
	t.Setenv("GATEHOUSE_SESSION_IDLE_TIMEOUT", "not-a-duration")
	if err := run(ctx, []string{"serve", "--data-dir", t.TempDir()}, nil, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "GATEHOUSE_SESSION_IDLE_TIMEOUT") {
		t.Errorf("bad env value: %v", err)
	}
}
