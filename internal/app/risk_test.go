package app_test

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/config"
	"github.com/gatehouse-auth/gatehouse/internal/geo/geotest"
	"github.com/gatehouse-auth/gatehouse/internal/mail/mailtest"
	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/token"
)

// Addresses of the test GeoIP database (RFC 5737 and 3849 ranges, placed
// in real cities).
const (
	rkParis      = "198.51.100.10" // Paris, FR
	rkParis2     = "198.51.100.20" // Paris, FR (same /24)
	rkVersailles = "198.51.101.10" // 17 km from Paris
	rkReims      = "198.51.102.10" // 130 km from Paris
	rkChartres   = "198.51.103.10" // 80 km from Paris
	rkTokyo      = "203.0.113.10"  // Tokyo, JP
	rkSafari     = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15"
	rkFirefox    = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
	rkFirefoxNew = "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0"
)

// rkHarness is a harness behind a trusted proxy with a test city
// database.
func rkHarness(t *testing.T, backend string) *harness {
	t.Helper()
	return rkHarnessOn(t, backend, nil)
}

// rkHarnessWith is rkHarness on SQLite with more configuration.
func rkHarnessWith(t *testing.T, mutate func(c *config.Config)) *harness {
	t.Helper()
	return rkHarnessOn(t, "sqlite", mutate)
}

func rkHarnessOn(t *testing.T, backend string, mutate func(c *config.Config)) *harness {
	t.Helper()
	path := geotest.WriteCity(t, t.TempDir(), []geotest.Entry{
		{Prefix: netip.MustParsePrefix("198.51.100.0/24"), Lat: 48.8566, Lon: 2.3522, AccuracyKm: 1, City: "Paris", Country: "FR"},
		{Prefix: netip.MustParsePrefix("198.51.101.0/24"), Lat: 48.8049, Lon: 2.1204, AccuracyKm: 1, City: "Versailles", Country: "FR"},
		{Prefix: netip.MustParsePrefix("198.51.102.0/24"), Lat: 49.2583, Lon: 4.0317, AccuracyKm: 1, City: "Reims", Country: "FR"},
		{Prefix: netip.MustParsePrefix("198.51.103.0/24"), Lat: 48.4439, Lon: 1.4890, AccuracyKm: 1, City: "Chartres", Country: "FR"},
		{Prefix: netip.MustParsePrefix("203.0.113.0/24"), Lat: 35.6762, Lon: 139.6503, AccuracyKm: 1, City: "Tokyo", Country: "JP"},
	})
	return newHarness(t, backend, func(c *config.Config) {
		c.TrustedProxies = []string{"127.0.0.1/32", "::1"}
		c.GeoIPDB = path
		if mutate != nil {
			mutate(c)
		}
	})
}

// rkNative signs email in (token mode, native) from ip with ua and returns
// the refresh token.
func rkNative(t *testing.T, h *harness, email, ip, ua string) string {
	t.Helper()
	r := h.raw("POST", "/v1/login", "application/json",
		jsonBody(map[string]string{"email": email, "password": goodPassword, "mode": "token", "client": "native"}),
		map[string]string{"X-Forwarded-For": ip, "User-Agent": ua})
	mustStatus(t, r, http.StatusOK)
	return tokensOf(t, r, refreshCookie).refresh
}

// rkRefresh refreshes from ip with ua.
func rkRefresh(h *harness, refresh, ip, ua string) *response {
	return h.raw("POST", "/v1/token/refresh", "application/json",
		jsonBody(map[string]string{"refresh_token": refresh}), map[string]string{"X-Forwarded-For": ip, "User-Agent": ua})
}

// rkRisk returns the decisions of the user's risk.assessed events, oldest
// first.
func rkRisk(t *testing.T, h *harness, email string) []string {
	t.Helper()
	u, err := h.srv.DB.Users().UserByEmailKey(t.Context(), email)
	if err != nil {
		t.Fatal(err)
	}
	es, err := h.srv.DB.Audit().ListUserEvents(t.Context(), u.ID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := len(es) - 1; i >= 0; i-- {
		if es[i].Type == "risk.assessed" {
			out = append(out, es[i].Details["on"]+":"+es[i].Details["decision"])
		}
	}
	return out
}

// TestAttackImpossibleTravelRefreshNeedsStepUp: a refresh token used from
// Tokyo a minute after Paris answers 401 step_up_required and is not
// spent: the owner back in Paris refreshes with it.
func TestAttackImpossibleTravelRefreshNeedsStepUp(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := rkHarness(t, backend)
		h.newUser("traveller@example.com")
		refresh := rkNative(t, h, "traveller@example.com", rkParis, rkFirefox)
		h.clock.Advance(time.Minute)
		prWant(t, rkRefresh(h, refresh, rkTokyo, rkFirefox), http.StatusUnauthorized, "step_up_required")
		r := rkRefresh(h, refresh, rkParis2, rkFirefoxNew) // a browser update is no change
		mustStatus(t, r, http.StatusOK)
		if got := rkRisk(t, h, "traveller@example.com"); len(got) != 1 || got[0] != "refresh:step-up" {
			t.Errorf("risk events %v, want one refresh step-up", got)
		}
	})
}

// TestAttackStolenRefreshTokenDenied: the refresh token replayed from the
// other side of the world by another browser and OS a minute later is the
// deny band: the session is revoked, for its owner too.
func TestAttackStolenRefreshTokenDenied(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := rkHarness(t, backend)
		h.newUser("stolen@example.com")
		refresh := rkNative(t, h, "stolen@example.com", rkParis, rkFirefox)
		h.clock.Advance(time.Minute)
		prWant(t, rkRefresh(h, refresh, rkTokyo, rkSafari), http.StatusUnauthorized, "risk_denied")
		if r := rkRefresh(h, refresh, rkParis, rkFirefox); r.status != http.StatusUnauthorized {
			t.Fatalf("the denied session still refreshes: %d %s", r.status, r.body)
		}
		u, _ := h.srv.DB.Users().UserByEmailKey(t.Context(), "stolen@example.com")
		ss, _ := h.srv.DB.Sessions().ListActiveSessions(t.Context(), u.ID, h.clock.Now())
		for _, s := range ss {
			if s.Kind == store.SessionToken {
				t.Errorf("token session %s still active", s.ID)
			}
		}
	})
}

// TestRiskBandsOnRefresh: the distance bands at work on refreshes a day
// apart (so no travel is impossible): < 50 km allow, 50–100 km allow and
// audit, ≥ 100 km step-up.
func TestRiskBandsOnRefresh(t *testing.T) {
	h := rkHarness(t, "sqlite")
	h.newUser("bands@example.com")
	refresh := rkNative(t, h, "bands@example.com", rkParis, rkFirefox)
	for _, step := range []struct {
		ip     string
		status int
	}{
		{rkVersailles, http.StatusOK}, // 17 km: allow
		{rkParis, http.StatusOK},      // back
		{rkChartres, http.StatusOK},   // 80 km: audit
		{rkParis, http.StatusOK},      // 80 km back: audit
		{rkReims, http.StatusUnauthorized},
	} {
		h.clock.Advance(24 * time.Hour)
		r := rkRefresh(h, refresh, step.ip, rkFirefox)
		if r.status != step.status {
			t.Fatalf("refresh from %s: %d %s", step.ip, r.status, r.body)
		}
		if r.status == http.StatusOK {
			refresh = tokensOf(t, r, refreshCookie).refresh
		}
	}
	want := []string{"refresh:audit", "refresh:audit", "refresh:step-up"}
	if got := rkRisk(t, h, "bands@example.com"); len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("risk events %v, want %v", got, want)
	}
}

// TestAttackFarAwaySignInNeedsExtraProof: the right password from a new
// device 9,700 km from every earlier sign-in is not enough for an account
// without a second factor; the session label shows the place.
func TestAttackFarAwaySignInNeedsExtraProof(t *testing.T) {
	h := rkHarness(t, "sqlite")
	h.newUser("home@example.com")
	paris := prFrom(h, rkParis)
	r := paris.login("home@example.com", goodPassword)
	mustStatus(t, r, http.StatusOK)
	if loc := siSession(t, r)["location"]; loc != "Paris, FR" {
		t.Errorf("session location %v, want Paris, FR", loc)
	}
	h.clock.Advance(24 * time.Hour)
	prWant(t, prFrom(h, rkTokyo).login("home@example.com", goodPassword), http.StatusForbidden, "extra_proof_required")
	// Close by on a new device: allowed, and audited as a new device.
	mustStatus(t, prFrom(h, rkParis2).login("home@example.com", goodPassword), http.StatusOK)
	got := rkRisk(t, h, "home@example.com")
	if len(got) != 2 || got[0] != "sign_in:step-up" || got[1] != "sign_in:audit" {
		t.Errorf("risk events %v", got)
	}
}

// TestAttackRiskRefusalIsNoFreeOracle: the right password refused for risk
// stays counted (so confirming a leaked password from elsewhere runs into
// the account's protection) and its owner is told; the counts are cleared
// only by a sign-in the risk check allowed.
func TestAttackRiskRefusalIsNoFreeOracle(t *testing.T) {
	h := rkHarnessWith(t, func(c *config.Config) { c.LoginFailuresPerAccount = 3 })
	const email = "oracle@example.com"
	h.newUser(email)
	box := siMails(h)
	mustStatus(t, prFrom(h, rkParis).login(email, goodPassword), http.StatusOK)
	h.clock.Advance(24 * time.Hour)
	for range 3 {
		prWant(t, prFrom(h, rkTokyo).login(email, goodPassword), http.StatusForbidden, "extra_proof_required")
	}
	var m mailtest.Received
	for range 3 { // one notice per refusal; each link replaces the last
		m = box.next(t, email, "password was used from an unusual place")
	}
	if !strings.Contains(m.Text, "Tokyo, JP") || !strings.Contains(m.Text, "/ui/not-me#token=ghl_") {
		t.Errorf("the notice lacks the place or the link:\n%s", m.Text)
	}
	// The fourth confirmation is refused by the account's protection, not
	// scored: the password is no longer even checked.
	prWant(t, prFrom(h, rkTokyo).login(email, goodPassword), http.StatusForbidden, "extra_proof_required")
	if got := rkRisk(t, h, email); len(got) != 3 {
		t.Errorf("risk events %v: the fourth attempt was scored, so its password was checked", got)
	}
	// The notice's link starts a reset (there is no session to end).
	tok, revoked := nmReset(t, nmNotMe(h, linkToken(t, m)))
	if revoked || tok == "" {
		t.Errorf("revoked %v", revoked)
	}
}

// TestAttackRiskHistoryCannotBeFlushed: events anyone can cause for an
// account (failed codes) do not push its sign-ins out of the history, so
// a far-away sign-in is still scored.
func TestAttackRiskHistoryCannotBeFlushed(t *testing.T) {
	h := rkHarness(t, "sqlite")
	const email = "flush@example.com"
	h.newUser(email)
	mustStatus(t, prFrom(h, rkParis).login(email, goodPassword), http.StatusOK)
	u, err := h.srv.DB.Users().UserByEmailKey(t.Context(), email)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 500 {
		e := &store.Event{Type: "verification.failed", UserID: u.ID, IP: rkTokyo, At: h.clock.Now().Add(time.Duration(i) * time.Millisecond), Details: map[string]string{"purpose": "email_otp"}}
		if err := h.srv.DB.Audit().AppendEvent(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	h.clock.Advance(24 * time.Hour)
	prWant(t, prFrom(h, rkTokyo).login(email, goodPassword), http.StatusForbidden, "extra_proof_required")
}

// TestAttackOAuthRefreshRiskIsInvalidGrant: the OAuth token endpoint
// answers a risky refresh as RFC 6749 says (invalid_grant), not 500.
func TestAttackOAuthRefreshRiskIsInvalidGrant(t *testing.T) {
	h := rkHarness(t, "sqlite")
	h.newUser("oauth@example.com")
	refresh := rkNative(t, h, "oauth@example.com", rkParis, rkFirefox)
	h.clock.Advance(time.Minute)
	for _, ua := range []string{rkFirefox, rkSafari} { // step-up, then deny
		r := h.raw("POST", "/oauth2/token", "application/x-www-form-urlencoded", "grant_type=refresh_token&refresh_token="+refresh,
			map[string]string{"X-Forwarded-For": rkTokyo, "User-Agent": ua})
		if r.status != http.StatusBadRequest || r.json(t)["error"] != "invalid_grant" {
			t.Fatalf("%s: %d %s", ua, r.status, r.body)
		}
	}
}

// TestAttackDevicesForgottenByPasswordReset: a thief's browser stops being
// a known device of the account once its owner resets the password, so its
// next sign-in is announced again.
func TestAttackDevicesForgottenByPasswordReset(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	const email = "forget@example.com"
	_, box := nmOwner(t, h, email)
	thief, _ := nmThief(t, h, email, goodPassword)
	nmNotice(t, box, email)
	mustStatus(t, thief.do("POST", "/v1/logout", nil), http.StatusNoContent)
	mustStatus(t, thief.login(email, goodPassword), http.StatusOK) // known now: no notice
	nmNoNotice(t, box, email, 1, "second sign-in of the thief's browser")
	mustStatus(t, vfCompleteReset(h, vfRequestReset(t, h, email), vfNewPassword), http.StatusOK)
	mustStatus(t, thief.login(email, vfNewPassword), http.StatusOK)
	nmNotice(t, box, email)
}

// TestAttackNotMeLinkDiesWithPasswordChange: an old "not me" link cannot
// mint a reset once the owner has changed the password.
func TestAttackNotMeLinkDiesWithPasswordChange(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	const email = "stale@example.com"
	owner, box := nmOwner(t, h, email)
	nmThief(t, h, email, goodPassword)
	_, tok := nmNotice(t, box, email)
	mustStatus(t, owner.do("POST", "/v1/password", map[string]string{"current_password": goodPassword, "new_password": vfNewPassword}), http.StatusOK)
	prWant(t, nmNotMe(h, tok), http.StatusBadRequest, "invalid_token")
}

// TestActivityShowsDeviceAndPlace: the user's own activity names the
// device and, with --geoip-db, the place of each event.
func TestActivityShowsDeviceAndPlace(t *testing.T) {
	h := rkHarness(t, "sqlite")
	h.newUser("where@example.com")
	c := prFrom(h, rkParis)
	mustStatus(t, c.login("where@example.com", goodPassword), http.StatusOK)
	r := c.do("GET", "/v1/activity", nil)
	mustStatus(t, r, http.StatusOK)
	var e map[string]any // the sign-in (the new-device notice may come first)
	for _, x := range r.json(t)["events"].([]any) {
		if m := x.(map[string]any); m["type"] == "login.succeeded" {
			e = m
			break
		}
	}
	if e["location"] != "Paris, FR" || e["device"] != "Firefox on Linux" {
		t.Errorf("activity event %v, want a sign-in from Firefox on Linux in Paris, FR", e)
	}
}

// TestAttackStepUpRetriesRevokeTheSession: a thief who keeps presenting a
// refresh token from unusual places (hoping for one that scores low) gets
// MaxStepUps step-up answers; the next risky refresh revokes the session.
func TestAttackStepUpRetriesRevokeTheSession(t *testing.T) {
	h := rkHarness(t, "sqlite")
	h.newUser("retry@example.com")
	refresh := rkNative(t, h, "retry@example.com", rkParis, rkFirefox)
	h.clock.Advance(time.Minute)
	for range token.MaxStepUps {
		prWant(t, rkRefresh(h, refresh, rkTokyo, rkFirefox), http.StatusUnauthorized, "step_up_required")
	}
	prWant(t, rkRefresh(h, refresh, rkTokyo, rkFirefox), http.StatusUnauthorized, "risk_denied")
	if r := rkRefresh(h, refresh, rkParis, rkFirefox); r.status != http.StatusUnauthorized {
		t.Fatalf("the session survived: %d %s", r.status, r.body)
	}
}

// TestKnownDeviceInNewPlaceIsAnnounced: the owner's own browser signing in
// 80 km from the account's last sign-in is allowed, and announced like a
// new device.
func TestKnownDeviceInNewPlaceIsAnnounced(t *testing.T) {
	h := rkHarness(t, "sqlite")
	const email = "moving@example.com"
	laptop := prFrom(h, rkParis)
	mustStatus(t, laptop.signup(email, goodPassword), http.StatusCreated)
	box := siMails(h)
	mustStatus(t, laptop.login(email, goodPassword), http.StatusOK)
	nmNoNotice(t, box, email, 0, "a sign-in of the device that signed up")
	h.clock.Advance(24 * time.Hour)
	laptop.headers["X-Forwarded-For"] = rkChartres
	mustStatus(t, laptop.login(email, goodPassword), http.StatusOK)
	m, _ := nmNotice(t, box, email)
	if !strings.Contains(m.Text, "Chartres, FR") {
		t.Errorf("the notice does not name the place:\n%s", m.Text)
	}
}
