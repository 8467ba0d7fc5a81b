package app_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/gatehouse-auth/gatehouse/internal/config"
)

func TestSignupLoginSessionsLogoutFlow(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		a := h.client()
		r := a.signup("  Alice@Example.COM ", goodPassword)
		mustStatus(t, r, http.StatusCreated)
		body := r.json(t)
		user := body["user"].(map[string]any)
		if user["email"] != "Alice@example.com" {
			t.Errorf("email = %v, want the trimmed address with a normalized domain", user["email"])
		}
		if a.cookie == nil {
			t.Fatal("sign-up did not set a session cookie")
		}
		mustStatus(t, a.do("GET", "/v1/me", nil), http.StatusOK)
		// The verification e-mail is sent off the request path; once it
		// has arrived its audit event is written.
		h.nextMail("alice@example.com")

		// A second device signs in with a differently cased address.
		b := h.client()
		b.ua = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15"
		r = b.login("alice@EXAMPLE.com", goodPassword)
		mustStatus(t, r, http.StatusOK)
		bSession := r.json(t)["session"].(map[string]any)["id"].(string)

		r = a.do("GET", "/v1/sessions", nil)
		mustStatus(t, r, http.StatusOK)
		list := r.json(t)["sessions"].([]any)
		if len(list) != 2 {
			t.Fatalf("got %d sessions, want 2", len(list))
		}
		currents := 0
		devices := map[string]bool{}
		for _, s := range list {
			m := s.(map[string]any)
			if m["current"] == true {
				currents++
			}
			devices[m["device"].(string)] = true
			if m["ip"] != "127.0.0.1" {
				t.Errorf("session ip = %v", m["ip"])
			}
		}
		if currents != 1 || !devices["Firefox on Linux"] || !devices["Safari on macOS"] {
			t.Errorf("current count %d, devices %v", currents, devices)
		}

		// A revokes B; B is out on its very next request.
		mustStatus(t, a.do("DELETE", "/v1/sessions/"+bSession, nil), http.StatusNoContent)
		r = b.do("GET", "/v1/me", nil)
		if r.status != http.StatusUnauthorized || r.code(t) != "unauthenticated" {
			t.Fatalf("revoked session: %d %s", r.status, r.body)
		}

		loggedOut := *a.cookie
		mustStatus(t, a.do("POST", "/v1/logout", nil), http.StatusNoContent)
		if a.cookie != nil {
			t.Error("logout did not clear the cookie")
		}
		mustStatus(t, a.do("GET", "/v1/me", nil), http.StatusUnauthorized)
		// A copy of the cookie kept by an attacker is dead too (server-side logout).
		replay := h.client()
		replay.cookie = &loggedOut
		mustStatus(t, replay.do("GET", "/v1/me", nil), http.StatusUnauthorized)

		// Activity shows what happened, newest first.
		c := h.client()
		mustStatus(t, c.login("alice@example.com", goodPassword), http.StatusOK)
		r = c.do("GET", "/v1/activity", nil)
		mustStatus(t, r, http.StatusOK)
		var types []string
		for _, e := range r.json(t)["events"].([]any) {
			// Notices (the new-device e-mails) are recorded when sent, in
			// the background: their place in the list varies.
			if typ := e.(map[string]any)["type"].(string); typ != "notice.sent" {
				types = append(types, typ)
			}
		}
		// c is a device the account never used: its sign-in is scored in
		// the audit band (new_device).
		want := []string{"login.succeeded", "risk.assessed", "session.logged_out", "session.revoked", "login.succeeded", "verification.sent", "user.signed_up"}
		if strings.Join(types, ",") != strings.Join(want, ",") {
			t.Errorf("activity = %v, want %v", types, want)
		}
	})
}

func TestSignupEmailTakenIs409(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		h.newUser("bob@example.com")
		r := h.client().signup("BOB@example.com", "another long passphrase here")
		if r.status != http.StatusConflict || r.code(t) != "email_taken" {
			t.Fatalf("duplicate sign-up: %d %s", r.status, r.body)
		}
	})
}

func TestActivityPaginationAndIsolation(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	a := h.newUser("carol@example.com")
	h.nextMail("carol@example.com") // its verification.sent event is written by then
	for range 4 {
		// New sessions from the device that signed up: no new-device
		// notice, no risk event.
		c := h.client()
		c.device = a.device
		mustStatus(t, c.login("carol@example.com", goodPassword), http.StatusOK)
	}
	other := h.newUser("dave@example.com")

	var ids []float64
	next := ""
	for page := 0; page < 5; page++ {
		path := "/v1/activity?limit=2"
		if next != "" {
			path += "&before=" + next
		}
		r := a.do("GET", path, nil)
		mustStatus(t, r, http.StatusOK)
		body := r.json(t)
		for _, e := range body["events"].([]any) {
			ids = append(ids, e.(map[string]any)["id"].(float64))
		}
		nb, ok := body["next_before"].(float64)
		if !ok {
			break
		}
		next = strconv.FormatInt(int64(nb), 10)
	}
	if len(ids) != 6 {
		t.Fatalf("paged through %d events, want 6 (sign-up, verification sent, 4 sign-ins)", len(ids))
	}
	for i := 1; i < len(ids); i++ {
		if ids[i] >= ids[i-1] {
			t.Fatalf("events not newest first: %v", ids)
		}
	}
	h.nextMail("dave@example.com")
	r := other.do("GET", "/v1/activity", nil)
	if n := len(r.json(t)["events"].([]any)); n != 2 {
		t.Errorf("another user sees %d events, want only their own 2 (sign-up, verification sent)", n)
	}
	for _, bad := range []string{"?limit=0", "?limit=101", "?limit=x", "?before=-1"} {
		if r := a.do("GET", "/v1/activity"+bad, nil); r.status != http.StatusBadRequest {
			t.Errorf("%s: status %d", bad, r.status)
		}
	}
}

func TestPasswordChangeRevokesOtherSessions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		a := h.newUser("erin@example.com")
		b := h.client()
		mustStatus(t, b.login("erin@example.com", goodPassword), http.StatusOK)

		newPw := "a completely different passphrase"
		r := a.do("POST", "/v1/password", map[string]string{"current_password": "wrong password entirely", "new_password": newPw})
		if r.status != http.StatusForbidden || r.code(t) != "incorrect_password" {
			t.Fatalf("wrong current password: %d %s", r.status, r.body)
		}
		r = a.do("POST", "/v1/password", map[string]string{"current_password": goodPassword, "new_password": "1234567890qwerty"})
		if r.status != http.StatusBadRequest || r.code(t) != "weak_password" {
			t.Fatalf("common new password: %d %s", r.status, r.body)
		}
		r = a.do("POST", "/v1/password", map[string]string{"current_password": goodPassword, "new_password": newPw})
		mustStatus(t, r, http.StatusOK)
		if n := r.json(t)["revoked_sessions"]; n != float64(1) {
			t.Errorf("revoked_sessions = %v, want 1", n)
		}
		mustStatus(t, b.do("GET", "/v1/me", nil), http.StatusUnauthorized)
		mustStatus(t, a.do("GET", "/v1/me", nil), http.StatusOK)
		mustStatus(t, h.client().login("erin@example.com", goodPassword), http.StatusUnauthorized)
		mustStatus(t, h.client().login("erin@example.com", newPw), http.StatusOK)

		r = a.do("GET", "/v1/activity", nil)
		found := false
		for _, e := range r.json(t)["events"].([]any) {
			if e.(map[string]any)["type"] == "password.changed" {
				found = true
			}
		}
		if !found {
			t.Error("no password.changed audit event")
		}
	})
}

func TestRevokeOthers(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	a := h.newUser("frank@example.com")
	others := []*client{h.client(), h.client(), h.client()}
	for _, c := range others {
		mustStatus(t, c.login("frank@example.com", goodPassword), http.StatusOK)
	}
	r := a.do("POST", "/v1/sessions/revoke-others", nil)
	mustStatus(t, r, http.StatusOK)
	if r.json(t)["revoked"] != float64(3) {
		t.Errorf("revoked = %s", r.body)
	}
	for _, c := range others {
		mustStatus(t, c.do("GET", "/v1/me", nil), http.StatusUnauthorized)
	}
	mustStatus(t, a.do("GET", "/v1/me", nil), http.StatusOK)
}

func TestHealthAndReadiness(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		c := h.client()
		mustStatus(t, c.do("GET", "/healthz", nil), http.StatusOK)
		r := c.do("GET", "/readyz", nil)
		mustStatus(t, r, http.StatusOK)
		checks := r.json(t)["checks"].(map[string]any)
		if checks["store"] != "ok" {
			t.Errorf("checks = %v", checks)
		}
		if backend == "postgres+redis" && checks["redis"] != "ok" {
			t.Errorf("checks = %v, want redis ok", checks)
		}
	})
}

func TestReadinessReportsStoreDown(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	if err := h.srv.DB.Close(); err != nil {
		t.Fatal(err)
	}
	r := h.client().do("GET", "/readyz", nil)
	if r.status != http.StatusServiceUnavailable || r.json(t)["checks"].(map[string]any)["store"] != "unavailable" {
		t.Fatalf("readyz with the store closed: %d %s", r.status, r.body)
	}
}

func TestSecretsPersistAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir = dir
	h1 := startHarness(t, cfg)
	h1.newUser("gina@example.com")
	h1.ts.Close()
	if err := h1.srv.Close(); err != nil {
		t.Fatal(err)
	}
	h2 := startHarness(t, cfg)
	mustStatus(t, h2.client().login("gina@example.com", goodPassword), http.StatusOK)
}
