package app_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatehouse-auth/gatehouse/internal/audit"
	"github.com/gatehouse-auth/gatehouse/internal/config"
	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// igHarness is a server behind a trusted proxy on loopback, so a test
// names each request's client with X-Forwarded-For.
func igHarness(t *testing.T, backend string, mutate func(*config.Config)) *harness {
	return newHarness(t, backend, func(c *config.Config) {
		c.TrustedProxies = []string{"127.0.0.1/32", "::1"}
		if mutate != nil {
			mutate(c)
		}
	})
}

// igFrom is a client whose requests come from ip.
func igFrom(h *harness, ip string) *client {
	c := h.client()
	c.headers = map[string]string{"X-Forwarded-For": ip}
	return c
}

func igProblem(t *testing.T, r *response, status int, code string) map[string]any {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d (%s): %s", r.status, status, code, r.body)
	}
	if got := r.code(t); got != code {
		t.Fatalf("problem code %q, want %q: %s", got, code, r.body)
	}
	return r.json(t)
}

// igAdmin signs up an administrator and returns its client and user id.
func igAdmin(t *testing.T, h *harness, email string) (*client, string) {
	t.Helper()
	c := h.newUser(email)
	id, _ := c.do("GET", "/v1/me", nil).json(t)["user"].(map[string]any)["id"].(string)
	if id == "" {
		t.Fatal("no user id in /v1/me")
	}
	ctx := context.Background()
	if err := h.srv.DB.Users().SetAdmin(ctx, id, true, h.clock.Now()); err != nil {
		t.Fatal(err)
	}
	h.srv.Sessions.UserChanged(ctx, id)
	return c, id
}

func igEvents(t *testing.T, h *harness, typ string) []*store.Event {
	t.Helper()
	evs, err := h.srv.DB.Audit().QueryEvents(context.Background(), store.EventFilter{Type: typ, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// TestAttackStuffingOneIPFiveHundredAccountsBanned: one address tries 500
// accounts through the real sign-in endpoint (a few real, most unknown:
// both must count alike, or the ban would tell which exist). It is banned
// after 20 distinct accounts; then even a right password gets 403
// ip_blocked, while another address of the same /24 signs in.
func TestAttackStuffingOneIPFiveHundredAccountsBanned(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := igHarness(t, backend, nil)
		real := map[int]string{5: "alice@example.com", 10: "bob@example.com", 15: "carol@example.com"}
		for _, email := range real {
			h.newUser(email)
		}
		attacker := igFrom(h, "203.0.113.50")
		for i := range 500 {
			email, ok := real[i]
			if !ok {
				email = fmt.Sprintf("victim%d@example.net", i)
			}
			r := attacker.login(email, "Summer2024!Summer2024!")
			switch {
			case i < 20:
				igProblem(t, r, http.StatusUnauthorized, "invalid_credentials")
			default:
				p := igProblem(t, r, http.StatusForbidden, "ip_blocked")
				if _, ok := p["detail"]; ok {
					t.Fatalf("the block tells its reason: %s", r.body)
				}
			}
		}
		igProblem(t, attacker.login("alice@example.com", goodPassword), http.StatusForbidden, "ip_blocked")
		mustStatus(t, attacker.do("GET", "/healthz", nil), http.StatusOK)
		mustStatus(t, igFrom(h, "203.0.113.51").login("alice@example.com", goodPassword), http.StatusOK)

		rules, err := h.srv.DB.IPRules().ListIPRules(context.Background(), h.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		if len(rules) != 1 || rules[0].Prefix.String() != "203.0.113.50/32" || rules[0].CreatedBy != "stuffing-detector" {
			t.Fatalf("rules %+v", rules)
		}
		evs := igEvents(t, h, audit.IPBanned)
		if len(evs) != 1 || evs[0].Details["prefix"] != "203.0.113.50/32" || evs[0].Details["accounts"] != "20" || evs[0].IP != "203.0.113.50" {
			t.Fatalf("ip.banned events %+v", evs)
		}
		rec := httptest.NewRecorder()
		h.srv.Metrics.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		if want := `gatehouse_security_decisions_total{kind="ip_ban",outcome="banned"} 1`; !strings.Contains(rec.Body.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	})
}

// TestIPRulesAdminAPI: only administrators read and change the rules;
// broad or malformed rules are refused; a deny rule is enforced by this
// replica as soon as it is answered, and lifted as soon as it is deleted;
// an allow rule exempts its block from the per-IP limit; every change is
// audited with the administrator's id.
func TestIPRulesAdminAPI(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := igHarness(t, backend, func(c *config.Config) { c.LoginAttemptsPerIP = 3 })
		user := h.newUser("user@example.com")
		igProblem(t, user.do("GET", "/v1/admin/ip-rules", nil), http.StatusForbidden, "admin_required")
		igProblem(t, user.do("PUT", "/v1/admin/ip-rules", map[string]any{"prefix": "198.51.100.0/24", "action": "deny"}), http.StatusForbidden, "admin_required")
		igProblem(t, user.do("DELETE", "/v1/admin/ip-rules/198.51.100.0/24", nil), http.StatusForbidden, "admin_required")
		igProblem(t, h.client().do("GET", "/v1/admin/ip-rules", nil), http.StatusUnauthorized, "unauthenticated")

		admin, adminID := igAdmin(t, h, "admin@example.com")
		r := admin.do("GET", "/v1/admin/ip-rules", nil)
		mustStatus(t, r, http.StatusOK)
		if got := string(r.body); !strings.Contains(got, `"rules":[]`) {
			t.Fatalf("empty list: %s", got)
		}

		for _, c := range []struct {
			body        any
			code, field string
		}{
			{map[string]any{"prefix": "0.0.0.0/0", "action": "deny"}, "invalid_field", "prefix"},
			{map[string]any{"prefix": "10.0.0.0/7", "action": "deny"}, "invalid_field", "prefix"},
			{map[string]any{"prefix": "2001::/16", "action": "deny"}, "invalid_field", "prefix"},
			{map[string]any{"prefix": "::/0", "action": "allow"}, "invalid_field", "prefix"},
			{map[string]any{"prefix": "not-an-address", "action": "deny"}, "invalid_field", "prefix"},
			{map[string]any{"prefix": "198.51.100.0/24", "action": "block"}, "invalid_field", "action"},
			{map[string]any{"action": "deny"}, "missing_field", "prefix"},
			{map[string]any{"prefix": "198.51.100.0/24"}, "missing_field", "action"},
			{map[string]any{"prefix": "198.51.100.0/24", "action": "deny", "reason": "a\nb"}, "invalid_field", "reason"},
			{map[string]any{"prefix": "198.51.100.0/24", "action": "deny", "reason": strings.Repeat("x", 201)}, "invalid_field", "reason"},
			{map[string]any{"prefix": "198.51.100.0/24", "action": "deny", "expires_in": 0}, "invalid_field", "expires_in"},
			{map[string]any{"prefix": "198.51.100.0/24", "action": "deny", "until": "never"}, "unknown_field", ""},
		} {
			p := igProblem(t, admin.do("PUT", "/v1/admin/ip-rules", c.body), http.StatusBadRequest, c.code)
			if c.field != "" && p["field"] != c.field {
				t.Errorf("%v: field %v, want %s", c.body, p["field"], c.field)
			}
		}
		if n := len(igEvents(t, h, audit.IPRuleChanged)); n != 0 {
			t.Fatalf("%d changes audited for refused requests", n)
		}

		// Deny: enforced at once, the reason kept from clients.
		mustStatus(t, igFrom(h, "198.51.100.9").login("user@example.com", goodPassword), http.StatusOK)
		r = admin.do("PUT", "/v1/admin/ip-rules", map[string]any{"prefix": "198.51.100.77/24", "action": "deny", "reason": "abuse ticket 42", "expires_in": 3600})
		mustStatus(t, r, http.StatusOK)
		rule := r.json(t)
		if rule["prefix"] != "198.51.100.0/24" || rule["action"] != "deny" || rule["created_by"] != "admin:"+adminID || rule["reason"] != "abuse ticket 42" || rule["expires_at"] == nil {
			t.Fatalf("put answered %s", r.body)
		}
		blocked := igProblem(t, igFrom(h, "198.51.100.9").login("user@example.com", goodPassword), http.StatusForbidden, "ip_blocked")
		if strings.Contains(fmt.Sprint(blocked), "ticket") {
			t.Errorf("the reason leaks: %v", blocked)
		}
		mustStatus(t, admin.do("PUT", "/v1/admin/ip-rules", map[string]any{"prefix": "2001:db8:1::/48", "action": "deny"}), http.StatusOK)
		igProblem(t, igFrom(h, "2001:db8:1:2::3").do("GET", "/v1/me", nil), http.StatusForbidden, "ip_blocked")
		r = admin.do("GET", "/v1/admin/ip-rules", nil)
		mustStatus(t, r, http.StatusOK)
		list, _ := r.json(t)["rules"].([]any)
		if len(list) != 2 || !strings.Contains(string(r.body), `"prefix":"198.51.100.0/24"`) || !strings.Contains(string(r.body), `"prefix":"2001:db8:1::/48"`) {
			t.Fatalf("list: %s", r.body)
		}

		// Delete: lifted at once; a second delete finds nothing.
		mustStatus(t, admin.do("DELETE", "/v1/admin/ip-rules/198.51.100.0/24", nil), http.StatusNoContent)
		mustStatus(t, igFrom(h, "198.51.100.9").login("user@example.com", goodPassword), http.StatusOK)
		igProblem(t, admin.do("DELETE", "/v1/admin/ip-rules/198.51.100.0/24", nil), http.StatusNotFound, "not_found")
		igProblem(t, admin.do("DELETE", "/v1/admin/ip-rules/nonsense", nil), http.StatusBadRequest, "invalid_field")
		mustStatus(t, admin.do("DELETE", "/v1/admin/ip-rules/2001:db8:1::/48", nil), http.StatusNoContent)

		// Allow: the per-IP limit (3 here) does not count the block, and
		// its failures never ban it.
		mustStatus(t, admin.do("PUT", "/v1/admin/ip-rules", map[string]any{"prefix": "192.0.2.0/24", "action": "allow", "reason": "office NAT"}), http.StatusOK)
		office := igFrom(h, "192.0.2.7")
		for i := range 30 {
			igProblem(t, office.login(fmt.Sprintf("colleague%d@example.com", i), "wrong password, sorry"), http.StatusUnauthorized, "invalid_credentials")
		}
		outside := igFrom(h, "203.0.113.9")
		for i := range 3 {
			outside.login(fmt.Sprintf("someone%d@example.com", i), "wrong password, sorry")
		}
		igProblem(t, outside.login("someone9@example.com", "wrong password, sorry"), http.StatusTooManyRequests, "rate_limited")

		evs := igEvents(t, h, audit.IPRuleChanged)
		var got []string
		for _, e := range evs {
			if e.UserID != adminID {
				t.Errorf("change audited for user %q, want the admin", e.UserID)
			}
			got = append(got, e.Details["op"]+" "+e.Details["action"]+" "+e.Details["prefix"])
		}
		want := []string{
			"put deny 198.51.100.0/24", "put deny 2001:db8:1::/48", "delete deny 198.51.100.0/24",
			"delete deny 2001:db8:1::/48", "put allow 192.0.2.0/24",
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("audited changes %q, want %q", got, want)
		}
	})
}

// TestAttackCodeGuessingAcrossAccountsBanned: wrong one-time codes sent
// for many addresses from one address count like failed passwords: the
// address is banned.
func TestAttackCodeGuessingAcrossAccountsBanned(t *testing.T) {
	h := igHarness(t, "sqlite", nil)
	for i := range h.cfg.StuffingAccounts {
		r := igFrom(h, "203.0.113.77").do("POST", "/v1/otp/verify", map[string]string{"email": fmt.Sprintf("victim%d@example.com", i), "code": "123456"})
		igProblem(t, r, http.StatusUnauthorized, "invalid_code")
	}
	r := igFrom(h, "203.0.113.77").do("POST", "/v1/otp/verify", map[string]string{"email": "one-more@example.com", "code": "123456"})
	igProblem(t, r, http.StatusForbidden, "ip_blocked")
}
