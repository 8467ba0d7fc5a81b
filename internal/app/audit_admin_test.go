package app_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/audit"
	"github.com/gatehouse-auth/gatehouse/internal/config"
)

// aaEvent is an event of the admin audit API.
type aaEvent struct {
	ID       int64             `json:"id"`
	Seq      int64             `json:"seq"`
	Type     string            `json:"type"`
	At       time.Time         `json:"at"`
	UserID   string            `json:"user_id"`
	IP       string            `json:"ip"`
	Details  map[string]string `json:"details"`
	PrevHash string            `json:"prev_hash"`
	Hash     string            `json:"hash"`
}

type aaPage struct {
	Events    []aaEvent `json:"events"`
	NextAfter *int64    `json:"next_after"`
}

// aaAdmin signs up email and marks the account an administrator; its
// session is fresh.
func aaAdmin(t *testing.T, h *harness, email string) (*client, string) {
	t.Helper()
	c := h.newUser(email)
	id := siUser(t, c.do("GET", "/v1/me", nil))["id"].(string)
	ctx := context.Background()
	if err := h.srv.DB.Users().SetAdmin(ctx, id, true, h.clock.Now()); err != nil {
		t.Fatal(err)
	}
	h.srv.Sessions.UserChanged(ctx, id)
	return c, id
}

func aaList(t *testing.T, c *client, query string) aaPage {
	t.Helper()
	r := c.do("GET", "/v1/admin/audit"+query, nil)
	mustStatus(t, r, http.StatusOK)
	if ct := r.header.Get("Content-Type"); ct != "application/json" || r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("Content-Type %q, Cache-Control %q", ct, r.header.Get("Cache-Control"))
	}
	var p aaPage
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("page: %v: %s", err, r.body)
	}
	return p
}

// aaLines decodes a JSON-lines answer.
func aaLines(t *testing.T, r *response) []aaEvent {
	t.Helper()
	mustStatus(t, r, http.StatusOK)
	if ct := r.header.Get("Content-Type"); ct != audit.NDJSON {
		t.Fatalf("Content-Type %q, want %s: %s", ct, audit.NDJSON, r.body)
	}
	var out []aaEvent
	for line := range strings.Lines(string(r.body)) {
		var e aaEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		out = append(out, e)
	}
	return out
}

func aaIDs(events []aaEvent) string {
	var ids []string
	for _, e := range events {
		ids = append(ids, strconv.FormatInt(e.ID, 10))
	}
	return strings.Join(ids, ",")
}

// TestAuditAdminAccess: the admin audit API is for administrators with a
// recent sign-in, cookie or bearer; everyone else is refused.
func TestAuditAdminAccess(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		admin, adminID := aaAdmin(t, h, "admin@example.com")
		user := h.newUser("user@example.com")

		siProblem(t, h.client().do("GET", "/v1/admin/audit", nil), http.StatusUnauthorized, "unauthenticated")
		siProblem(t, user.do("GET", "/v1/admin/audit", nil), http.StatusForbidden, "admin_required")
		siProblem(t, user.do("GET", "/v1/admin/audit/export", nil), http.StatusForbidden, "admin_required")
		siProblem(t, user.do("GET", "/v1/admin/audit", nil), http.StatusForbidden, "admin_required")
		if p := aaList(t, admin, ""); len(p.Events) == 0 {
			t.Fatal("the admin sees no events")
		}

		// A bearer token of the administrator works too.
		tr := h.client().do("POST", "/v1/login", map[string]string{"email": "admin@example.com", "password": goodPassword, "mode": "token", "client": "native"})
		mustStatus(t, tr, http.StatusOK)
		bearer := h.client()
		bearer.headers = map[string]string{"Authorization": "Bearer " + tr.json(t)["access_token"].(string)}
		mustStatus(t, bearer.do("GET", "/v1/admin/audit", nil), http.StatusOK)

		// A stale sign-in must be confirmed again.
		h.clock.Advance(h.cfg.ReauthMaxAge + time.Minute)
		siProblem(t, admin.do("GET", "/v1/admin/audit", nil), http.StatusForbidden, "reauthentication_required")
		siProblem(t, admin.do("GET", "/v1/admin/audit/export", nil), http.StatusForbidden, "reauthentication_required")
		mustStatus(t, admin.do("POST", "/v1/reauthenticate", map[string]string{"password": goodPassword}), http.StatusOK)
		aaList(t, admin, "")

		// No longer an administrator (the CLI, another process, which
		// cannot reach this server's session cache): refused at once.
		if err := h.srv.DB.Users().SetAdmin(context.Background(), adminID, false, h.clock.Now()); err != nil {
			t.Fatal(err)
		}
		siProblem(t, admin.do("GET", "/v1/admin/audit", nil), http.StatusForbidden, "admin_required")
	})
}

// TestAuditAdminFilters: filters, paging and the chain fields of the list,
// and the JSON-lines export of the same selection.
func TestAuditAdminFilters(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		admin, adminID := aaAdmin(t, h, "admin@example.com")
		h.newUser("bob@example.com")
		h.clock.Advance(time.Minute)
		cut := h.clock.Now().Truncate(time.Microsecond) // the store's precision
		for range 3 {
			h.client().login("bob@example.com", "not bob's password at all")
		}
		h.client().login("nobody@example.com", "not anyone's password")

		all := aaList(t, admin, "?limit=1000").Events
		if len(all) < 6 {
			t.Fatalf("%d events", len(all))
		}
		for i := 1; i < len(all); i++ {
			if all[i].ID <= all[i-1].ID {
				t.Fatalf("not oldest first: %s", aaIDs(all))
			}
		}
		byType := func(typ string) []aaEvent {
			var out []aaEvent
			for _, e := range all {
				if e.Type == typ {
					out = append(out, e)
				}
			}
			return out
		}
		failed := byType(audit.LoginFailed)
		if len(failed) != 4 {
			t.Fatalf("%d login.failed events, want 4", len(failed))
		}
		for _, tc := range []struct {
			name, query string
			want        []aaEvent
		}{
			{"type", "?type=login.failed", failed},
			{"user", "?user=" + adminID, func() []aaEvent {
				var out []aaEvent
				for _, e := range all {
					if e.UserID == adminID {
						out = append(out, e)
					}
				}
				return out
			}()},
			{"ip", "?ip=127.0.0.1", all},
			{"other ip", "?ip=198.51.100.1", nil},
			{"since", "?since=" + url.QueryEscape(cut.Format(time.RFC3339Nano)), failed},
			{"until", "?until=" + url.QueryEscape(cut.Format(time.RFC3339Nano)), func() []aaEvent {
				var out []aaEvent
				for _, e := range all {
					if e.At.Before(cut) {
						out = append(out, e)
					}
				}
				if len(out) != len(all)-len(failed) {
					t.Errorf("%d events before the cut, want all but the 4 failures", len(out))
				}
				return out
			}()},
			{"type and since", "?type=user.signed_up&since=" + url.QueryEscape(cut.Format(time.RFC3339Nano)), nil},
			{"after", "?type=login.failed&after=" + strconv.FormatInt(failed[1].ID, 10), failed[2:]},
		} {
			t.Run(tc.name, func(t *testing.T) {
				p := aaList(t, admin, tc.query)
				if aaIDs(p.Events) != aaIDs(tc.want) || p.NextAfter != nil {
					t.Errorf("%s: got %s (next %v), want %s", tc.query, aaIDs(p.Events), p.NextAfter, aaIDs(tc.want))
				}
				lines := aaLines(t, admin.do("GET", "/v1/admin/audit/export"+tc.query, nil))
				if aaIDs(lines) != aaIDs(tc.want) {
					t.Errorf("export %s: got %s, want %s", tc.query, aaIDs(lines), aaIDs(tc.want))
				}
			})
		}

		// Paging by ?after= with next_after walks everything once.
		var walked []aaEvent
		query := "?limit=2"
		for range len(all) + 1 {
			p := aaList(t, admin, query)
			if len(p.Events) > 2 {
				t.Fatalf("page of %d", len(p.Events))
			}
			walked = append(walked, p.Events...)
			if p.NextAfter == nil {
				break
			}
			query = "?limit=2&after=" + strconv.FormatInt(*p.NextAfter, 10)
		}
		if aaIDs(walked) != aaIDs(all) {
			t.Errorf("walked %s, want %s", aaIDs(walked), aaIDs(all))
		}

		// Accept: application/x-ndjson on the list streams every match.
		admin.headers = map[string]string{"Accept": "application/json;q=0.5, " + audit.NDJSON}
		if lines := aaLines(t, admin.do("GET", "/v1/admin/audit?type=login.failed&limit=1", nil)); aaIDs(lines) != aaIDs(failed) {
			t.Errorf("negotiated export %s, want %s (limit does not apply)", aaIDs(lines), aaIDs(failed))
		}
		admin.headers = nil

		// Within a few seconds the sealer links everything: seq and hashes
		// appear, and the chain verifies.
		deadline := time.Now().Add(10 * time.Second)
		for {
			p := aaList(t, admin, "?limit=1000")
			sealed := 0
			for _, e := range p.Events {
				if e.Seq > 0 && len(e.Hash) == 64 && len(e.PrevHash) == 64 {
					sealed++
				}
			}
			if sealed == len(p.Events) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d events sealed after 10s", sealed, len(p.Events))
			}
			time.Sleep(100 * time.Millisecond)
		}
		r, err := audit.Verify(context.Background(), h.srv.DB.Audit(), nil, time.Now())
		if err != nil || !r.Intact() {
			t.Fatalf("Verify = %+v, %v", r, err)
		}
		if p := aaList(t, admin, "?limit=1"); p.Events[0].Seq != 1 || p.Events[0].PrevHash != strings.Repeat("0", 64) {
			t.Errorf("oldest event %+v, want seq 1 after the zero hash", p.Events[0])
		}
	})
}

// TestAuditAdminBadParameters: malformed filters are 400 bad_request
// naming the parameter, never an unfiltered answer.
func TestAuditAdminBadParameters(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	admin, _ := aaAdmin(t, h, "admin@example.com")
	for _, tc := range []struct{ query, field string }{
		{"?limit=0", "limit"},
		{"?limit=1001", "limit"},
		{"?limit=ten", "limit"},
		{"?after=-1", "after"},
		{"?after=1.5", "after"},
		{"?ip=localhost", "ip"},
		{"?ip=10.0.0.0/8", "ip"},
		{"?since=yesterday", "since"},
		{"?until=2025-03-14", "until"},
		{"?since=2025-03-14T16:00:00Z&until=2025-03-14T15:00:00Z", "until"},
		{"?user=" + url.QueryEscape("usr\n1"), "user"},
		{"?users=usr_1", "users"},
		{"?type=a&type=b", "type"},
	} {
		for _, path := range []string{"/v1/admin/audit", "/v1/admin/audit/export"} {
			r := admin.do("GET", path+tc.query, nil)
			siProblem(t, r, http.StatusBadRequest, "bad_request")
			if f := r.json(t)["field"]; f != tc.field {
				t.Errorf("%s%s: field %v, want %s", path, tc.query, f, tc.field)
			}
		}
	}
	aaList(t, admin, "?limit=1000&after=0")
}

// TestAuditWebhookWiring: with --audit-webhook-url the server streams its
// sealed chain, signed, to the receiver; the metrics report the chain.
func TestAuditWebhookWiring(t *testing.T) {
	const secret = "a-webhook-secret-that-is-32-bytes-long"
	var (
		mu     sync.Mutex
		events []aaEvent
	)
	rx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		sig := r.Header.Get("Gatehouse-Signature")
		ts, _, _ := strings.Cut(strings.TrimPrefix(sig, "t="), ",")
		n, _ := strconv.ParseInt(ts, 10, 64)
		if sig != audit.SignWebhook([]byte(secret), n, body) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var batch struct {
			Events []aaEvent `json:"events"`
		}
		if err := json.Unmarshal(body, &batch); err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		mu.Lock()
		events = append(events, batch.Events...)
		mu.Unlock()
	}))
	defer rx.Close()
	h := newHarness(t, "sqlite", func(c *config.Config) {
		c.AuditWebhookURL = rx.URL + "/audit"
		c.AuditWebhookSecret = secret
	})
	h.newUser("streamed@example.com")
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(events)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no event reached the webhook within 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	if e := events[0]; e.Seq != 1 || e.Type != audit.SignedUp || len(e.Hash) != 64 {
		t.Errorf("first streamed event %+v", e)
	}
	mu.Unlock()

	rec := httptest.NewRecorder()
	h.srv.Metrics.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{"gatehouse_audit_unsealed_events ", "gatehouse_audit_webhook_failures_total 0"} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
