package audit

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// TestBackoffDelay: 1s doubling to the 5 min cap, each delay jittered
// within [d/2, d].
func TestBackoffDelay(t *testing.T) {
	lo, hi := time.Second, 5*time.Minute
	nominal := []time.Duration{1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300}
	for i, n := range nominal {
		n *= time.Second
		for range 20 {
			if d := backoffDelay(i+1, lo, hi); d < n/2 || d > n {
				t.Fatalf("failure %d: waited %v, want within [%v, %v]", i+1, d, n/2, n)
			}
		}
	}
	if d := backoffDelay(1000, lo, hi); d > hi {
		t.Errorf("failure 1000: %v beyond the cap", d)
	}
	seen := map[time.Duration]bool{}
	for range 50 {
		seen[backoffDelay(1, lo, hi)] = true
	}
	if len(seen) < 10 {
		t.Errorf("only %d distinct first delays: no jitter", len(seen))
	}
}

// TestWebhookDoesNotFollowRedirects: a redirect is a failed delivery, not
// a reason to send the signed batch somewhere else.
func TestWebhookDoesNotFollowRedirects(t *testing.T) {
	hits := 0
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits++ }))
	defer elsewhere.Close()
	redirect := httptest.NewServer(http.RedirectHandler(elsewhere.URL, http.StatusTemporaryRedirect))
	defer redirect.Close()
	w := NewWebhook(redirect.URL, "an-audit-webhook-secret-of-32+bytes!", nil)
	err := w.Deliver(t.Context(), []*store.Event{{ID: 1, Seq: 1, Type: "e", At: time.Now(), PrevHash: GenesisHash, Hash: GenesisHash}})
	if err == nil || hits != 0 {
		t.Fatalf("Deliver = %v with %d requests elsewhere; want a failure and none", err, hits)
	}
}

func TestParseFilter(t *testing.T) {
	f, err := ParseFilter("usr_1", "login.failed", "::ffff:203.0.113.9", "2025-03-14T15:00:00Z", "2025-03-14T16:00:00.5+01:00")
	if err != nil {
		t.Fatal(err)
	}
	if f.UserID != "usr_1" || f.Type != "login.failed" || f.IP != "203.0.113.9" ||
		!f.Since.Equal(time.Date(2025, 3, 14, 15, 0, 0, 0, time.UTC)) || !f.Until.Equal(time.Date(2025, 3, 14, 15, 0, 0, 5e8, time.UTC)) {
		t.Errorf("ParseFilter = %+v", f)
	}
	if f, err := ParseFilter("", "", "2001:DB8::1", "", ""); err != nil || f.IP != "2001:db8::1" {
		t.Errorf("IPv6 = %q, %v; want the canonical form", f.IP, err)
	}
	for _, tc := range []struct {
		field                       string
		user, typ, ip, since, until string
	}{
		{"ip", "", "", "203.0.113", "", ""},
		{"ip", "", "", "203.0.113.0/24", "", ""},
		{"since", "", "", "", "yesterday", ""},
		{"until", "", "", "", "", "2025-03-14"},
		{"until", "", "", "", "2025-03-14T16:00:00Z", "2025-03-14T15:00:00Z"},
		{"until", "", "", "", "2025-03-14T16:00:00Z", "2025-03-14T16:00:00Z"},
		{"user", "usr\n1", "", "", "", ""},
		{"type", "", string(make([]byte, 201)), "", "", ""},
		{"type", "", "\xff", "", "", ""},
	} {
		_, err := ParseFilter(tc.user, tc.typ, tc.ip, tc.since, tc.until)
		ff, ok := err.(*FilterField)
		if !ok || ff.Field != tc.field {
			t.Errorf("ParseFilter(%q, %q, %q, %q, %q) = %v; want a %s error", tc.user, tc.typ, tc.ip, tc.since, tc.until, err, tc.field)
		}
	}
}
