package app_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startNginx runs a real nginx with testdata/nginx-forward-auth.conf in
// front of upstream, asking gatehouse; it returns nginx's base URL.
func startNginx(t *testing.T, gatehouse, upstream string) string {
	t.Helper()
	bin := os.Getenv("GATEHOUSE_TEST_NGINX")
	if bin == "" {
		t.Skip("GATEHOUSE_TEST_NGINX is unset: set it to an nginx binary with auth_request (.ci/run installs and sets it) to test forward-auth behind a real nginx")
	}
	tmpl, err := os.ReadFile(filepath.Join("testdata", "nginx-forward-auth.conf"))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := t.TempDir()
	conf := strings.NewReplacer("{{DIR}}", dir, "{{PORT}}", fmt.Sprint(port), "{{GATEHOUSE}}", gatehouse, "{{UPSTREAM}}", upstream).Replace(string(tmpl))
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "-p", dir, "-c", path, "-e", filepath.Join(dir, "error.log"))
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	t.Cleanup(func() {
		// SIGQUIT: the master stops its workers and exits (SIGKILL
		// would orphan them).
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return base
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx did not start: %s %s", stderr.String(), log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestForwardAuthBehindNginx(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "user=%s session=%s aal=%s amr=%s", r.Header.Get("X-Gatehouse-User"), r.Header.Get("X-Gatehouse-Session"), r.Header.Get("X-Gatehouse-AAL"), r.Header.Get("X-Gatehouse-AMR"))
	}))
	defer upstream.Close()
	proxy := startNginx(t, h.ts.URL, upstream.URL)

	send := func(method string, hdr map[string]string, cookies ...*http.Cookie) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, proxy+"/api/orders", nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		for _, c := range cookies {
			req.AddCookie(c)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	get := func(hdr map[string]string, cookies ...*http.Cookie) (int, string) {
		t.Helper()
		return send("GET", hdr, cookies...)
	}

	if code, body := get(nil); code != http.StatusUnauthorized || strings.Contains(body, "user=") {
		t.Fatalf("anonymous request reached the upstream: %d %s", code, body)
	}
	ts := h.tokenUser("edge@example.com", "native")
	_, claims := jwtParts(t, ts.access)
	code, body := get(bearer(ts.access))
	want := fmt.Sprintf("user=%s session=%s aal=1 amr=pwd", claims["sub"], claims["sid"])
	if code != http.StatusOK || body != want {
		t.Fatalf("bearer through nginx: %d %q, want %q", code, body, want)
	}

	// TestAttack: identity headers sent by the client are overwritten.
	spoof := bearer(ts.access)
	spoof["X-Gatehouse-User"] = "usr_admin"
	spoof["X-Gatehouse-AMR"] = "hwk mfa"
	if _, body := get(spoof); body != want {
		t.Fatalf("client-supplied X-Gatehouse-User reached the upstream: %q", body)
	}
	if code, body := get(map[string]string{"X-Gatehouse-User": "usr_admin"}); code != http.StatusUnauthorized {
		t.Fatalf("spoofed header without credentials: %d %q", code, body)
	}

	c := h.newUser("edge-cookie@example.com")
	if code, body := get(nil, c.cookie); code != http.StatusOK || !strings.HasPrefix(body, "user=usr_") {
		t.Fatalf("cookie through nginx: %d %q", code, body)
	}

	// TestAttack: a cross-site POST riding on the cookie is refused at the
	// edge, as the API itself would refuse it; same-origin passes, and so
	// does a bearer token (a browser never attaches one on its own).
	crossSite := map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}
	if code, body := send("POST", crossSite, c.cookie); code != http.StatusForbidden || strings.Contains(body, "user=") {
		t.Fatalf("cross-site POST with the cookie: %d %q", code, body)
	}
	if code, _ := send("POST", map[string]string{"Sec-Fetch-Site": "same-origin"}, c.cookie); code != http.StatusOK {
		t.Fatalf("same-origin POST with the cookie: %d", code)
	}
	if code, _ := get(crossSite, c.cookie); code != http.StatusOK {
		t.Fatalf("cross-site GET (a link) with the cookie: %d", code)
	}
	bearerCross := bearer(ts.access)
	for k, v := range crossSite {
		bearerCross[k] = v
	}
	if code, _ := send("POST", bearerCross); code != http.StatusOK {
		t.Fatalf("cross-site POST with a bearer token: %d", code)
	}

	// Logout is instant at the edge.
	mustStatus(t, h.raw("POST", "/v1/logout", "", "", bearer(ts.access)), http.StatusNoContent)
	if code, _ := get(bearer(ts.access)); code != http.StatusUnauthorized {
		t.Fatalf("logged-out token passed nginx: %d", code)
	}
}
