package app_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/gatehouse-auth/gatehouse/internal/config"
)

// ciWrongLogins makes n failed sign-ins for distinct unknown addresses
// (so no per-account limit applies), each with X-Forwarded-For set to
// xff(i), and returns the statuses.
func ciWrongLogins(h *harness, n int, xff func(i int) string) []int {
	var out []int
	for i := range n {
		c := h.client()
		c.headers = map[string]string{"X-Forwarded-For": xff(i)}
		out = append(out, c.login(fmt.Sprintf("nobody%d@example.com", i), "not the password at all").status)
	}
	return out
}

// TestAttackForwardedForSpoofingIgnored: without --trusted-proxies, a client
// that rotates X-Forwarded-For is still one IP to the per-IP limit.
func TestAttackForwardedForSpoofingIgnored(t *testing.T) {
	h := newHarness(t, "sqlite", func(c *config.Config) { c.LoginAttemptsPerIP = 3 })
	got := ciWrongLogins(h, 4, func(i int) string { return fmt.Sprintf("198.51.100.%d", i+1) })
	if got[2] != http.StatusUnauthorized || got[3] != http.StatusTooManyRequests {
		t.Fatalf("statuses %v: the spoofed header escaped the per-IP limit", got)
	}
}

// TestTrustedProxyNamesTheClient: behind a trusted proxy, the client named
// by X-Forwarded-For is the one the per-IP limit counts and the session
// records; a spoofed left part of the header changes nothing.
func TestTrustedProxyNamesTheClient(t *testing.T) {
	h := newHarness(t, "sqlite", func(c *config.Config) {
		c.LoginAttemptsPerIP = 3
		c.TrustedProxies = []string{"127.0.0.1/32", "::1"}
	})
	// Four clients behind the proxy, one attempt each: none is limited.
	for i, status := range ciWrongLogins(h, 4, func(i int) string { return fmt.Sprintf("198.51.100.%d", i+1) }) {
		if status != http.StatusUnauthorized {
			t.Fatalf("client %d: status %d", i, status)
		}
	}
	// One client that prepends random addresses is still one client.
	got := ciWrongLogins(h, 4, func(i int) string { return fmt.Sprintf("203.0.113.%d, 198.51.100.77", i+1) })
	if got[2] != http.StatusUnauthorized || got[3] != http.StatusTooManyRequests {
		t.Fatalf("statuses %v: a spoofed left part escaped the per-IP limit", got)
	}
	c := h.client()
	c.headers = map[string]string{"X-Forwarded-For": "192.0.2.44"}
	r := c.signup("proxied@example.com", goodPassword)
	mustStatus(t, r, http.StatusCreated)
	if ip := siSession(t, r)["ip"]; ip != "192.0.2.44" {
		t.Errorf("session ip %v, want the forwarded client", ip)
	}
}
