package app_test

// End-to-end tests of the new-device notice and its "this wasn't me" link
// (POST /v1/not-me, /ui/not-me): a password sign-in from a client that
// had not signed in to the account before e-mails the owner; the link
// revokes that session and hands back a reset token. Every helper here
// starts with "nm".

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gatehouse-auth/gatehouse/internal/audit"
	"github.com/gatehouse-auth/gatehouse/internal/config"
	"github.com/gatehouse-auth/gatehouse/internal/mail/mailtest"
	"github.com/gatehouse-auth/gatehouse/internal/verification"
)

// nmSubj is the subject of the new-device notice (mail/templates/new_device.txt).
const nmSubj = "New sign-in to your Gatehouse account"

// nmNewPassword passes the policy.
const nmNewPassword = "a brand new not-me passphrase"

// nmOwner signs up email (whose client is then a known device) and returns
// its client and mailbox. The sign-up itself sends no notice.
func nmOwner(t *testing.T, h *harness, email string) (*client, *siMailbox) {
	t.Helper()
	box := siMails(h)
	return h.newUser(email), box
}

// nmThief signs in to email with the password from a client that never
// signed in to it before, and returns the client and its session id.
func nmThief(t *testing.T, h *harness, email, pw string) (*client, string) {
	t.Helper()
	c := h.client()
	r := c.login(email, pw)
	mustStatus(t, r, http.StatusOK)
	sid, _ := siSession(t, r)["id"].(string)
	if sid == "" {
		t.Fatalf("no session id in the sign-in answer: %s", r.body)
	}
	return c, sid
}

// nmNotice waits for the next new-device notice to email and returns it
// with the secret of its link.
func nmNotice(t *testing.T, box *siMailbox, email string) (mailtest.Received, string) {
	t.Helper()
	m := box.next(t, email, nmSubj)
	if want := box.h.cfg.BaseURL() + "/ui/not-me#token=ghl_"; !strings.Contains(m.Text, want) {
		t.Fatalf("new-device notice lacks a link %q:\n%s", want, m.Text)
	}
	if strings.Contains(m.Text, "?token=") {
		t.Errorf("the link secret travels in a query string:\n%s", m.Text)
	}
	return m, linkToken(t, m)
}

// nmNotMe posts a not-me token from a fresh, anonymous browser.
func nmNotMe(h *harness, token string) *response {
	h.t.Helper()
	return h.client().do("POST", "/v1/not-me", map[string]string{"token": token})
}

// nmReset checks a 200 answer of POST /v1/not-me and returns its reset
// token and revoked_session.
func nmReset(t *testing.T, r *response) (string, bool) {
	t.Helper()
	mustStatus(t, r, http.StatusOK)
	m := r.json(t)
	tok, _ := m["reset_token"].(string)
	revoked, ok := m["revoked_session"].(bool)
	if !strings.HasPrefix(tok, "ghl_") || !ok {
		t.Fatalf("not-me answer without a reset token or revoked_session: %s", r.body)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("not-me answer Cache-Control %q, want no-store", cc)
	}
	return tok, revoked
}

// nmNoNotice fails if email has had more than n new-device notices.
func nmNoNotice(t *testing.T, box *siMailbox, email string, n int, when string) {
	t.Helper()
	vfSettle()
	if got := len(box.matching(email, nmSubj)); got != n {
		t.Fatalf("%s: %d new-device notices, want %d", when, got, n)
	}
}

func TestNotMeRevokesSessionAndStartsReset(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		const email = "nm-owner@example.com"
		owner, box := nmOwner(t, h, email)
		nmNoNotice(t, box, email, 0, "after sign-up")
		// A sign-in from the device that signed up is no news.
		mustStatus(t, owner.login(email, goodPassword), http.StatusOK)
		nmNoNotice(t, box, email, 0, "after a sign-in from a known device")

		thief, sid := nmThief(t, h, email, goodPassword)
		m, tok := nmNotice(t, box, email)
		for _, want := range []string{"Firefox on Linux", "127.0.0.1", " UTC", "wasn't me", "works once", "expires in 7 days"} {
			if !strings.Contains(m.Text, want) {
				t.Errorf("notice lacks %q:\n%s", want, m.Text)
			}
		}
		mustStatus(t, thief.do("GET", "/v1/me", nil), http.StatusOK)

		reset, revoked := nmReset(t, nmNotMe(h, tok))
		if !revoked {
			t.Errorf("revoked_session = false for a live session")
		}
		if r := thief.do("GET", "/v1/me", nil); r.status != http.StatusUnauthorized {
			t.Errorf("the reported session after not-me: %d %s, want 401", r.status, r.body)
		}
		// Not-me itself ends only the reported session.
		mustStatus(t, owner.do("GET", "/v1/me", nil), http.StatusOK)
		for _, id := range siSessionIDs(t, owner) {
			if id == sid {
				t.Errorf("the reported session %s is still listed", sid)
			}
		}

		// The link works once.
		siProblem(t, nmNotMe(h, tok), http.StatusBadRequest, "invalid_token")

		// The reset token completes a reset, which ends every session.
		r := vfCompleteReset(h, reset, nmNewPassword)
		mustStatus(t, r, http.StatusOK)
		if n, _ := r.json(t)["revoked_sessions"].(float64); n < 1 {
			t.Errorf("the reset revoked %v sessions, want the owner's", n)
		}
		if r := owner.do("GET", "/v1/me", nil); r.status != http.StatusUnauthorized {
			t.Errorf("the owner's session after the reset: %d, want 401", r.status)
		}
		siProblem(t, vfCompleteReset(h, reset, "yet another not-me passphrase"), http.StatusBadRequest, "invalid_token")
		siProblem(t, h.client().login(email, goodPassword), http.StatusUnauthorized, "invalid_credentials")
		again := h.client()
		mustStatus(t, again.login(email, nmNewPassword), http.StatusOK)

		// The audit trail: the notice, tied to the session, and the report.
		events := siActivity(t, again)
		reported := siEvents(events, audit.SessionReportedNotMe)
		if len(reported) != 1 || reported[0].Details["session_revoked"] != "true" {
			t.Errorf("%s events = %+v, want one with session_revoked true", audit.SessionReportedNotMe, reported)
		}
		notices := 0
		for _, e := range siEvents(events, audit.NoticeSent) {
			if e.Details["kind"] == "new_device" && e.Details["purpose"] == "not_me" {
				notices++
			}
		}
		if notices < 1 {
			t.Errorf("no %s event of kind new_device in %+v", audit.NoticeSent, events)
		}
	})
}

// The link of a notice whose session is already over (signed out, here)
// still starts the reset.
func TestNotMeSessionAlreadyEnded(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		const email = "nm-ended@example.com"
		_, box := nmOwner(t, h, email)
		thief, _ := nmThief(t, h, email, goodPassword)
		_, tok := nmNotice(t, box, email)
		mustStatus(t, thief.do("POST", "/v1/logout", nil), http.StatusNoContent)

		reset, revoked := nmReset(t, nmNotMe(h, tok))
		if revoked {
			t.Errorf("revoked_session = true for a session that had ended")
		}
		mustStatus(t, vfCompleteReset(h, reset, nmNewPassword), http.StatusOK)
		mustStatus(t, h.client().login(email, nmNewPassword), http.StatusOK)
	})
}

func TestAttackNotMeTokenExpired(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		const email = "nm-late@example.com"
		_, box := nmOwner(t, h, email)
		nmThief(t, h, email, goodPassword)
		_, tok := nmNotice(t, box, email)
		h.clock.Advance(verification.NotMeTTL + time.Second)
		siProblem(t, nmNotMe(h, tok), http.StatusBadRequest, "invalid_token")
		// Nothing happened: the password still works.
		mustStatus(t, h.client().login(email, goodPassword), http.StatusOK)
	})
}

// Garbage, another kind of link, and a missing token are refused alike.
func TestAttackNotMeTokenInvalid(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		const email = "nm-bad@example.com"
		h.newUser(email)
		siProblem(t, nmNotMe(h, "ghl_not-a-real-token"), http.StatusBadRequest, "invalid_token")
		siProblem(t, nmNotMe(h, "garbage"), http.StatusBadRequest, "invalid_token")
		// A reset link is no not-me link (nor the other way round).
		siProblem(t, nmNotMe(h, vfRequestReset(t, h, email)), http.StatusBadRequest, "invalid_token")
		if r := h.client().do("POST", "/v1/not-me", map[string]string{}); r.status != http.StatusBadRequest {
			t.Errorf("not-me without a token: %d %s, want 400", r.status, r.body)
		}
	})
}

// A token acts on its own account and session only: B's link revokes B's
// reported session and resets B's password; A's sessions and password
// are untouched.
func TestAttackNotMeTokenOfOtherAccount(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		const alice, bob = "nm-alice@example.com", "nm-bob@example.com"
		_, abox := nmOwner(t, h, alice)
		_, bbox := nmOwner(t, h, bob)
		aliceThief, _ := nmThief(t, h, alice, goodPassword)
		nmNotice(t, abox, alice)
		bobThief, _ := nmThief(t, h, bob, goodPassword)
		_, btok := nmNotice(t, bbox, bob)

		reset, _ := nmReset(t, nmNotMe(h, btok))
		if r := bobThief.do("GET", "/v1/me", nil); r.status != http.StatusUnauthorized {
			t.Errorf("bob's reported session: %d, want 401", r.status)
		}
		mustStatus(t, aliceThief.do("GET", "/v1/me", nil), http.StatusOK)
		mustStatus(t, vfCompleteReset(h, reset, nmNewPassword), http.StatusOK)
		mustStatus(t, aliceThief.do("GET", "/v1/me", nil), http.StatusOK)
		mustStatus(t, h.client().login(alice, goodPassword), http.StatusOK)
		mustStatus(t, h.client().login(bob, nmNewPassword), http.StatusOK)
	})
}

// Each notice's link is its own: a later sign-in's notice does not void
// an earlier one's link (a thief signing in again must not kill it).
func TestAttackNotMeEarlierLinkSurvivesLaterNotice(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend, nil)
		const email = "nm-twice@example.com"
		_, box := nmOwner(t, h, email)
		first, _ := nmThief(t, h, email, goodPassword)
		_, tok1 := nmNotice(t, box, email)
		second, _ := nmThief(t, h, email, goodPassword)
		_, tok2 := nmNotice(t, box, email)
		if tok1 == tok2 {
			t.Fatal("two notices share a link")
		}

		nmReset(t, nmNotMe(h, tok1))
		if r := first.do("GET", "/v1/me", nil); r.status != http.StatusUnauthorized {
			t.Errorf("the first reported session: %d, want 401", r.status)
		}
		mustStatus(t, second.do("GET", "/v1/me", nil), http.StatusOK)
		nmReset(t, nmNotMe(h, tok2))
		if r := second.do("GET", "/v1/me", nil); r.status != http.StatusUnauthorized {
			t.Errorf("the second reported session: %d, want 401", r.status)
		}
	})
}

// The revocation is published: an access token of the reported session is
// refused at once on another replica (PostgreSQL and Redis only).
func TestNotMeRevocationReachesOtherReplica(t *testing.T) {
	a := newHarness(t, "postgres+redis", func(c *config.Config) { c.SessionCacheTTL = time.Hour })
	b := startHarness(t, a.cfg) // same database, Redis prefix, keys and SMTP server
	const email = "nm-replica@example.com"
	_, box := nmOwner(t, a, email)
	r := b.raw("POST", "/v1/login", "application/json",
		jsonBody(map[string]string{"email": email, "password": goodPassword, "mode": "token", "client": "native"}), nil)
	mustStatus(t, r, http.StatusOK)
	access := tokensOf(t, r, refreshCookie).access
	mustStatus(t, b.raw("GET", "/v1/me", "", "", bearer(access)), http.StatusOK)
	_, tok := nmNotice(t, box, email)

	_, revoked := nmReset(t, nmNotMe(a, tok))
	if !revoked {
		t.Fatal("revoked_session = false for a live session")
	}
	deadline := time.Now().Add(2 * time.Second)
	for b.raw("GET", "/v1/me", "", "", bearer(access)).status != http.StatusUnauthorized {
		if time.Now().After(deadline) {
			t.Fatal("replica B still accepts the reported session's access token")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The hosted page in a real browser: opening the link acts on nothing;
// the button signs the device out and lands on the reset page with a
// working reset token.
func TestUINotMeChromium(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	b := uiNewBrowser(t)
	const email = "nm-ui@example.com"
	owner, box := nmOwner(t, h, email)
	thief, _ := nmThief(t, h, email, goodPassword)
	nmNotice(t, box, email)
	link := uiMailLink(t, h, email, "not-me")

	b.openLink(link)
	b.assertTokenGone()
	// A link scanner's visit: the page loaded, nothing was posted.
	time.Sleep(200 * time.Millisecond)
	if n := uiAccessLogged(h, "POST", "/v1/not-me"); n != 0 {
		t.Fatalf("loading /ui/not-me posted /v1/not-me %d times", n)
	}
	mustStatus(t, thief.do("GET", "/v1/me", nil), http.StatusOK)
	if txt := uiEval[string](b, `document.getElementById("form").textContent`); !strings.Contains(txt, "sign that device out") {
		t.Errorf("the page does not say what the button does: %q", txt)
	}

	b.do("click #submit", chromedp.Click(chromedp.ID("submit")))
	b.waitFor("the reset page", `location.pathname === "/ui/reset-password" && document.readyState === "complete" && !document.getElementById("form").hidden ? "yes" : ""`)
	b.assertTokenGone()
	if n := b.sent("POST", "/v1/not-me"); n != 1 {
		t.Errorf("the page posted /v1/not-me %d times, want 1", n)
	}
	if r := thief.do("GET", "/v1/me", nil); r.status != http.StatusUnauthorized {
		t.Errorf("the reported session after the click: %d, want 401", r.status)
	}

	b.fill("password", uiNewPassword)
	b.fill("confirm", uiNewPassword)
	if st := b.submit(); st.Class != "ok" {
		b.fatalf("status after the reset = %+v, want class ok", st)
	}
	if r := owner.do("GET", "/v1/me", nil); r.status != http.StatusUnauthorized {
		t.Errorf("the owner's session after the reset: %d, want 401", r.status)
	}
	mustStatus(t, h.client().login(email, uiNewPassword), http.StatusOK)
	b.assertNoTokenSent()
	uiAssertNoSecretInLogs(t, h)
}
