package app_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/protocol"

	"github.com/gatehouse-auth/gatehouse/internal/config"
	"github.com/gatehouse-auth/gatehouse/internal/testutil/webauthntest"
)

// pkHarness is a server whose public URL is http://localhost:<port>: the
// relying party id "localhost", the one allowed origin that URL.
func pkHarness(t *testing.T, backend string) *harness {
	t.Helper()
	return newHarness(t, backend, func(c *config.Config) { c.PublicURL = localhostURL })
}

// pkAuthenticator is a software authenticator on the server's origin.
func pkAuthenticator(h *harness) *webauthntest.Authenticator {
	return webauthntest.New(h.cfg.PublicURL)
}

// pkBegin posts to a begin endpoint and returns the whole answer (the
// authenticator reads its publicKey) and the ceremony handle.
func pkBegin(t *testing.T, c *client, path string, body any) ([]byte, string) {
	t.Helper()
	r := c.do("POST", path, body)
	mustStatus(t, r, http.StatusOK)
	ceremony, _ := r.json(t)["ceremony"].(string)
	if !strings.HasPrefix(ceremony, "ghw_") || r.json(t)["expires_in"] != float64(300) {
		t.Fatalf("begin answer: %s", r.body)
	}
	return r.body, ceremony
}

// pkRegister registers a credential of type typ from a and returns the
// finish answer.
func pkRegister(t *testing.T, c *client, a *webauthntest.Authenticator, typ string, opts ...webauthntest.Option) *response {
	t.Helper()
	options, ceremony := pkBegin(t, c, "/v1/webauthn/register/begin", map[string]string{"type": typ})
	cred, err := a.Create(options, opts...)
	if err != nil {
		t.Fatalf("authenticator create: %v", err)
	}
	return c.do("POST", "/v1/webauthn/register/finish", map[string]any{"ceremony": ceremony, "credential": json.RawMessage(cred)})
}

// pkMustRegister registers a passkey and returns the credential's view.
func pkMustRegister(t *testing.T, c *client, a *webauthntest.Authenticator, typ string) map[string]any {
	t.Helper()
	r := pkRegister(t, c, a, typ)
	mustStatus(t, r, http.StatusCreated)
	v, ok := r.json(t)["credential"].(map[string]any)
	if !ok {
		t.Fatalf("no credential in %s", r.body)
	}
	return v
}

// pkAssert begins an assertion at /v1/webauthn/login/begin with body and
// answers it from a.
func pkAssert(t *testing.T, c *client, a *webauthntest.Authenticator, body any, opts ...webauthntest.Option) (string, json.RawMessage) {
	t.Helper()
	options, ceremony := pkBegin(t, c, "/v1/webauthn/login/begin", body)
	cred, err := a.Get(options, opts...)
	if err != nil {
		t.Fatalf("authenticator get: %v", err)
	}
	return ceremony, cred
}

// pkPasswordless signs in with a passkey alone, from a new client.
func pkPasswordless(t *testing.T, h *harness, a *webauthntest.Authenticator, opts ...webauthntest.Option) (*client, *response) {
	t.Helper()
	c := h.client()
	ceremony, cred := pkAssert(t, c, a, map[string]any{}, opts...)
	return c, c.do("POST", "/v1/webauthn/login/finish", map[string]any{"ceremony": ceremony, "credential": cred})
}

// pkCredentials lists c's credentials.
func pkCredentials(t *testing.T, c *client) []map[string]any {
	t.Helper()
	r := c.do("GET", "/v1/webauthn/credentials", nil)
	mustStatus(t, r, http.StatusOK)
	var out []map[string]any
	for _, v := range r.json(t)["credentials"].([]any) {
		out = append(out, v.(map[string]any))
	}
	return out
}

// pkFailures returns the webauthn.failed events of c's account.
func pkFailures(t *testing.T, c *client) []siEvent {
	t.Helper()
	return siEvents(siActivity(t, c), "webauthn.failed")
}

func TestPasskeyRegisterListRenameDelete(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := pkHarness(t, backend)
		c := h.newUser("keys@example.com")
		phone := pkAuthenticator(h)

		r := pkRegister(t, c, phone, "passkey")
		mustStatus(t, r, http.StatusCreated)
		body := r.json(t)
		v := body["credential"].(map[string]any)
		if v["type"] != "passkey" || v["attachment"] != "platform" || v["name"] != "Passkey" || v["last_used_at"] != nil {
			t.Errorf("passkey view: %s", r.body)
		}
		if codes := siStrings(body["recovery_codes"]); len(codes) != 10 {
			t.Errorf("the first second factor comes with 10 recovery codes: %s", r.body)
		}
		// The same authenticator cannot register twice: its credential is
		// excluded, as a real authenticator would refuse.
		options, _ := pkBegin(t, c, "/v1/webauthn/register/begin", map[string]string{"type": "passkey"})
		if _, err := phone.Create(options); err == nil {
			t.Error("the registered authenticator was not excluded")
		}

		h.clock.Advance(time.Second) // the list is oldest first
		key := pkAuthenticator(h)
		key.Attachment, key.Transports, key.UV = "cross-platform", nil, false
		r = pkRegister(t, c, key, "security_key")
		mustStatus(t, r, http.StatusCreated)
		if _, again := r.json(t)["recovery_codes"]; again {
			t.Errorf("a second factor added to others issued new recovery codes: %s", r.body)
		}
		creds := pkCredentials(t, c)
		if len(creds) != 2 || creds[0]["id"] != v["id"] || creds[1]["type"] != "security_key" || creds[1]["name"] != "Security key 2" {
			t.Fatalf("list: %v", creds)
		}
		second := creds[1]["id"].(string)

		// Rename: trimmed, bounded, no control characters.
		path := "/v1/webauthn/credentials/" + second
		for _, bad := range []string{"", "   ", strings.Repeat("k", 65), "tab\tname", "nul\x00"} {
			siProblem(t, c.do("PATCH", path, map[string]string{"name": bad}), http.StatusBadRequest, "invalid_field")
		}
		r = c.do("PATCH", path, map[string]string{"name": "  YubiKey 5C  "})
		mustStatus(t, r, http.StatusOK)
		if r.json(t)["credential"].(map[string]any)["name"] != "YubiKey 5C" {
			t.Errorf("rename: %s", r.body)
		}

		// Another account sees none of them and can touch none.
		other := h.newUser("other@example.com")
		if got := pkCredentials(t, other); len(got) != 0 {
			t.Fatalf("another account lists %v", got)
		}
		siProblem(t, other.do("PATCH", path, map[string]string{"name": "mine"}), http.StatusNotFound, "not_found")
		siProblem(t, other.do("DELETE", path, nil), http.StatusNotFound, "not_found")

		// Removing needs a recent sign-in at AAL2 (the account has second
		// factors): the password alone is not enough. The last factor
		// takes the recovery codes with it.
		h.clock.Advance(11 * time.Minute)
		siProblem(t, c.do("DELETE", path, nil), http.StatusForbidden, "reauthentication_required")
		mustStatus(t, c.do("POST", "/v1/reauthenticate", map[string]string{"password": goodPassword}), http.StatusOK)
		r = c.do("DELETE", path, nil)
		siProblem(t, r, http.StatusForbidden, "reauthentication_required")
		if m := r.json(t); m["aal"] != float64(2) || m["max_age"] != float64(600) {
			t.Errorf("the refusal names the level and age it needs: %s", r.body)
		}
		ceremony, cred := pkAssert(t, c, phone, map[string]string{"purpose": "reauthenticate"})
		mustStatus(t, c.do("POST", "/v1/reauthenticate", map[string]any{"ceremony": ceremony, "credential": cred}), http.StatusOK)
		mustStatus(t, c.do("DELETE", path, nil), http.StatusNoContent)
		if _, left := mfStatus(t, c); left != 10 {
			t.Errorf("recovery codes after removing one of two keys: %d", left)
		}
		mustStatus(t, c.do("DELETE", "/v1/webauthn/credentials/"+v["id"].(string), nil), http.StatusNoContent)
		if _, left := mfStatus(t, c); left != 0 {
			t.Errorf("recovery codes after removing the last key: %d", left)
		}
		events := siActivity(t, c)
		if len(siEvents(events, "webauthn.registered")) != 2 || len(siEvents(events, "webauthn.removed")) != 2 || len(siEvents(events, "webauthn.renamed")) != 1 {
			t.Errorf("audit: %v", events)
		}
	})
}

func TestPasskeyRegistrationNeedsFreshSession(t *testing.T) {
	h := pkHarness(t, "sqlite")
	c := h.newUser("stale@example.com")
	h.clock.Advance(11 * time.Minute)
	r := c.do("POST", "/v1/webauthn/register/begin", map[string]string{"type": "passkey"})
	siProblem(t, r, http.StatusForbidden, "reauthentication_required")
	siProblem(t, h.client().do("POST", "/v1/webauthn/register/begin", map[string]string{}), http.StatusUnauthorized, "unauthenticated")
	mustStatus(t, c.do("POST", "/v1/reauthenticate", map[string]string{"password": goodPassword}), http.StatusOK)
	siProblem(t, c.do("POST", "/v1/webauthn/register/begin", map[string]string{"type": "platform"}), http.StatusBadRequest, "invalid_field")
	pkMustRegister(t, c, pkAuthenticator(h), "passkey")
}

func TestPasskeyPasswordlessSignIn(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := pkHarness(t, backend)
		owner := h.newUser("passwordless@example.com")
		phone := pkAuthenticator(h)
		phone.BackupEligible, phone.BackupState = true, true // a synced passkey
		pkMustRegister(t, owner, phone, "passkey")

		c, r := pkPasswordless(t, h, phone)
		if r.status != 200 {
			t.Fatalf("%v", pkFailures(t, owner))
		}
		mfMustSession(t, c, r, 2, []string{"swk", "user", "mfa"})
		if siUser(t, r)["email"] != "passwordless@example.com" {
			t.Errorf("signed in as %s", r.body)
		}
		creds := pkCredentials(t, c)
		if creds[0]["last_used_at"] == nil || creds[0]["backed_up"] != true {
			t.Errorf("use not recorded: %v", creds)
		}
		var logins []siEvent
		for _, e := range siEvents(siActivity(t, c), "login.succeeded") {
			if e.Details["method"] == "webauthn" {
				logins = append(logins, e)
			}
		}
		if len(logins) != 1 || logins[0].Details["credential"] != creds[0]["id"] {
			t.Errorf("login.succeeded: %v", logins)
		}

		// Token mode.
		tc := h.client()
		ceremony, cred := pkAssert(t, tc, phone, map[string]any{})
		r = tc.do("POST", "/v1/webauthn/login/finish", map[string]any{"ceremony": ceremony, "credential": cred, "mode": "token", "client": "native"})
		mustStatus(t, r, http.StatusOK)
		if at, _ := r.json(t)["access_token"].(string); at == "" {
			t.Fatalf("token mode: %s", r.body)
		}
	})
}

// TestPasskeyWithoutUserVerificationIsOneFactor: a key that did not verify
// its user proves possession only, so the account's other factor is asked
// for — and the key cannot serve as its own second factor.
func TestPasskeyWithoutUserVerificationIsOneFactor(t *testing.T) {
	h := pkHarness(t, "sqlite")
	const email = "nouv@example.com"
	owner := h.newUser(email)
	secret, _ := mfEnrol(t, h, owner)
	key := pkAuthenticator(h)
	pkMustRegister(t, owner, key, "passkey")

	c, r := pkPasswordless(t, h, key, webauthntest.WithUV(false))
	mustStatus(t, r, http.StatusOK)
	m := r.json(t)
	challenge, _ := m["challenge"].(string)
	if m["mfa_required"] != true || !slices.Equal(siStrings(m["methods"]), []string{"totp", "recovery_code"}) || c.cookie != nil {
		t.Fatalf("a key without user verification signed in alone: %s", r.body)
	}
	// The same key again as the "second" factor is refused.
	options, ceremony := pkBegin(t, c, "/v1/webauthn/login/begin", map[string]string{"challenge": challenge})
	cred, err := key.Get(options)
	if err != nil {
		t.Fatal(err)
	}
	r = c.do("POST", "/v1/login/mfa", map[string]any{"challenge": challenge, "ceremony": ceremony, "credential": json.RawMessage(cred)})
	siProblem(t, r, http.StatusBadRequest, "invalid_field")
	if c.cookie != nil {
		t.Fatal("a key counted as two factors")
	}
	// A key and an app are two things had: one factor kind, AAL1.
	mfMustSession(t, c, mfComplete(c, challenge, mfNextCode(t, h, secret)), 1, []string{"hwk", "otp", "mfa"})
}

// TestPasskeyAsSecondFactor: a security key completes a password sign-in,
// through /v1/webauthn/login/finish and through /v1/login/mfa.
func TestPasskeyAsSecondFactor(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := pkHarness(t, backend)
		const email = "2fa-key@example.com"
		owner := h.newUser(email)
		key := pkAuthenticator(h)
		key.UV, key.Attachment, key.Transports = false, "cross-platform", []protocol.AuthenticatorTransport{"usb"}
		v := pkMustRegister(t, owner, key, "security_key")
		if v["type"] != "security_key" || v["attachment"] != "cross-platform" {
			t.Errorf("security key view: %v", v)
		}

		for _, path := range []string{"/v1/webauthn/login/finish", "/v1/login/mfa"} {
			c := h.client()
			r := c.login(email, goodPassword)
			mustStatus(t, r, http.StatusOK)
			m := r.json(t)
			challenge, _ := m["challenge"].(string)
			if m["mfa_required"] != true || !slices.Equal(siStrings(m["methods"]), []string{"webauthn", "recovery_code"}) {
				t.Fatalf("password sign-in of an account with a key: %s", r.body)
			}
			// Only a ceremony begun for this challenge counts: a
			// passwordless one is refused.
			wrong, wrongCred := pkAssert(t, c, key, map[string]any{})
			siProblem(t, c.do("POST", path, map[string]any{"challenge": challenge, "ceremony": wrong, "credential": wrongCred}), http.StatusUnauthorized, "invalid_ceremony")

			ceremony, cred := pkAssert(t, c, key, map[string]string{"challenge": challenge})
			mfMustSession(t, c, c.do("POST", path, map[string]any{"challenge": challenge, "ceremony": ceremony, "credential": cred}), 2, []string{"pwd", "hwk", "mfa"})
			// The challenge is spent.
			ceremonyAgain := h.client()
			siProblem(t, ceremonyAgain.do("POST", "/v1/webauthn/login/begin", map[string]string{"challenge": challenge}), http.StatusUnauthorized, "invalid_challenge")
		}
	})
}

// TestPasskeyStepUpRaisesAAL: a password session (AAL1) steps up with a
// key and reaches AAL2; the ceremony serves only the session that began it.
func TestPasskeyStepUpRaisesAAL(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := pkHarness(t, backend)
		const email = "stepup-key@example.com"
		owner := h.newUser(email)
		key := pkAuthenticator(h)
		pkMustRegister(t, owner, key, "passkey")

		// A session from before the key (signed up with the password).
		h.clock.Advance(11 * time.Minute)
		siProblem(t, owner.do("POST", "/v1/mfa/recovery-codes", nil), http.StatusForbidden, "reauthentication_required")

		// Another session's ceremony does not step this one up.
		other, r := pkPasswordless(t, h, key)
		mustStatus(t, r, http.StatusOK)
		foreign, foreignCred := pkAssert(t, other, key, map[string]string{"purpose": "reauthenticate"})
		siProblem(t, owner.do("POST", "/v1/reauthenticate", map[string]any{"ceremony": foreign, "credential": foreignCred}), http.StatusUnauthorized, "invalid_ceremony")
		siProblem(t, h.client().do("POST", "/v1/webauthn/login/begin", map[string]string{"purpose": "reauthenticate"}), http.StatusUnauthorized, "unauthenticated")

		ceremony, cred := pkAssert(t, owner, key, map[string]string{"purpose": "reauthenticate"})
		siProblem(t, owner.do("POST", "/v1/reauthenticate", map[string]any{"ceremony": ceremony}), http.StatusBadRequest, "missing_field")
		// A request without the credential is refused before the ceremony is spent.
		r = owner.do("POST", "/v1/reauthenticate", map[string]any{"ceremony": ceremony, "credential": cred})
		mustStatus(t, r, http.StatusOK)
		s := siSession(t, r)
		if s["aal"] != float64(2) || !slices.Equal(siStrings(s["amr"]), []string{"pwd", "hwk", "user", "mfa"}) {
			t.Errorf("after a key step-up: %s", r.body)
		}
		mustStatus(t, owner.do("POST", "/v1/mfa/recovery-codes", nil), http.StatusOK)
		var events []siEvent
		for _, e := range siEvents(siActivity(t, owner), "session.reauthenticated") {
			if e.Details["aal"] == "2" {
				events = append(events, e)
			}
		}
		if len(events) != 1 {
			t.Errorf("session.reauthenticated with aal 2: %v", events)
		}
	})
}

func TestAttackPasskeyCeremonyReplayed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := pkHarness(t, backend)
		owner := h.newUser("replay@example.com")
		key := pkAuthenticator(h)
		pkMustRegister(t, owner, key, "passkey")

		c := h.client()
		ceremony, cred := pkAssert(t, c, key, map[string]any{})
		body := map[string]any{"ceremony": ceremony, "credential": cred}
		mustStatus(t, c.do("POST", "/v1/webauthn/login/finish", body), http.StatusOK)
		// The same ceremony again: spent.
		siProblem(t, h.client().do("POST", "/v1/webauthn/login/finish", body), http.StatusUnauthorized, "invalid_ceremony")
		// The same assertion for a new ceremony: its challenge is not this one.
		_, fresh := pkBegin(t, c, "/v1/webauthn/login/begin", map[string]any{})
		siProblem(t, h.client().do("POST", "/v1/webauthn/login/finish", map[string]any{"ceremony": fresh, "credential": cred}), http.StatusUnauthorized, "passkey_refused")
		// Forged and malformed handles.
		for _, handle := range []string{"ghw_" + strings.Repeat("A", 43), "ghm_" + strings.Repeat("A", 43), "nonsense"} {
			siProblem(t, h.client().do("POST", "/v1/webauthn/login/finish", map[string]any{"ceremony": handle, "credential": cred}), http.StatusUnauthorized, "invalid_ceremony")
		}
		if f := pkFailures(t, owner); len(f) != 1 || !strings.Contains(f[0].Details["reason"], "challenge") {
			t.Errorf("webauthn.failed: %v", f)
		}
	})
}

func TestAttackPasskeyCeremonyExpired(t *testing.T) {
	h := pkHarness(t, "sqlite")
	owner := h.newUser("late@example.com")
	key := pkAuthenticator(h)
	pkMustRegister(t, owner, key, "passkey")
	c := h.client()
	ceremony, cred := pkAssert(t, c, key, map[string]any{})
	h.clock.Advance(5*time.Minute + time.Second)
	siProblem(t, c.do("POST", "/v1/webauthn/login/finish", map[string]any{"ceremony": ceremony, "credential": cred}), http.StatusUnauthorized, "invalid_ceremony")
}

// TestAttackPasskeyRefusals: assertions no honest browser and
// authenticator produce are refused, audited with their reason, and leave
// no session.
func TestAttackPasskeyRefusals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   []webauthntest.Option
		reason string
	}{
		{"wrong origin", []webauthntest.Option{webauthntest.WithOrigin("http://localhost.evil.example")}, "origin"},
		{"wrong RP ID", []webauthntest.Option{webauthntest.WithRPID("evil.example")}, "verification_error"},
		{"forged signature", []webauthntest.Option{webauthntest.WithForgedSignature()}, "signature"},
		{"registration clientData type", []webauthntest.Option{webauthntest.WithType("webauthn.create")}, ""},
		{"no user presence", []webauthntest.Option{webauthntest.WithUP(false)}, ""},
		{"counter went backwards", []webauthntest.Option{webauthntest.WithCounter(1)}, "sign_count"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := pkHarness(t, "sqlite")
			owner := h.newUser("victim@example.com")
			key := pkAuthenticator(h)
			pkMustRegister(t, owner, key, "passkey")
			// One honest use: the stored counter is now 1.
			_, r := pkPasswordless(t, h, key)
			mustStatus(t, r, http.StatusOK)

			c, r := pkPasswordless(t, h, key, tc.opts...)
			siProblem(t, r, http.StatusUnauthorized, "passkey_refused")
			if c.cookie != nil {
				t.Fatal("a refused assertion set a session cookie")
			}
			f := pkFailures(t, owner)
			if len(f) != 1 || f[0].Details["ceremony"] != "login" || !strings.Contains(strings.ToLower(f[0].Details["reason"]), tc.reason) {
				t.Errorf("webauthn.failed: %v", f)
			}
		})
	}
}

// TestAttackPasskeyWrongOriginAtRegistration: an attestation made on
// another origin is refused and stores nothing.
func TestAttackPasskeyWrongOriginAtRegistration(t *testing.T) {
	h := pkHarness(t, "sqlite")
	c := h.newUser("phished@example.com")
	key := webauthntest.New("https://login.evil.example")
	siProblem(t, pkRegister(t, c, key, "passkey"), http.StatusUnauthorized, "passkey_refused")
	if got := pkCredentials(t, c); len(got) != 0 {
		t.Fatalf("stored: %v", got)
	}
	if f := pkFailures(t, c); len(f) != 1 || f[0].Details["ceremony"] != "register" {
		t.Errorf("webauthn.failed: %v", f)
	}
}

// TestAttackPasskeyUserHandleOfAnotherAccount: a passwordless assertion
// whose user handle names another account than the credential's owner is
// refused.
func TestAttackPasskeyUserHandleOfAnotherAccount(t *testing.T) {
	h := pkHarness(t, "sqlite")
	owner := h.newUser("owner@example.com")
	key := pkAuthenticator(h)
	pkMustRegister(t, owner, key, "passkey")
	victim := h.newUser("victim@example.com")
	r := victim.do("GET", "/v1/me", nil)
	victimID := siUser(t, r)["id"].(string)
	c, r := pkPasswordless(t, h, key, webauthntest.WithTamper(func(resp *webauthntest.Response) { resp.UserHandle = []byte(victimID) }))
	siProblem(t, r, http.StatusUnauthorized, "passkey_refused")
	if c.cookie != nil {
		t.Fatal("signed in")
	}
}

// TestAttackPasskeyConcurrentFinish: one assertion raced to the finish
// endpoint signs in at most once.
func TestAttackPasskeyConcurrentFinish(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		h := pkHarness(t, backend)
		owner := h.newUser("race-key@example.com")
		key := pkAuthenticator(h)
		pkMustRegister(t, owner, key, "passkey")
		c := h.client()
		ceremony, cred := pkAssert(t, c, key, map[string]any{})
		raw, err := json.Marshal(map[string]any{"ceremony": ceremony, "credential": cred})
		if err != nil {
			t.Fatal(err)
		}
		codes := siRace(t, h, 8, "/v1/webauthn/login/finish", string(raw))
		ok := 0
		for _, code := range codes {
			switch code {
			case http.StatusOK:
				ok++
			case http.StatusUnauthorized:
			default:
				t.Errorf("status %d", code)
			}
		}
		if ok != 1 {
			t.Fatalf("%d sign-ins from one assertion (%v)", ok, codes)
		}
	})
}

// TestPasskeyBadInput: malformed requests get 4xx problems.
func TestPasskeyBadInput(t *testing.T) {
	h := pkHarness(t, "sqlite")
	c := h.newUser("input@example.com")
	_, ceremony := pkBegin(t, c, "/v1/webauthn/register/begin", map[string]string{"type": "passkey"})
	for _, tc := range []struct {
		path   string
		body   any
		status int
		code   string
	}{
		{"/v1/webauthn/register/finish", map[string]any{"ceremony": ceremony}, 400, "missing_field"},
		{"/v1/webauthn/register/finish", map[string]any{"ceremony": ceremony, "credential": map[string]string{"id": "x"}}, 401, "passkey_refused"},
		{"/v1/webauthn/register/finish", map[string]any{"ceremony": ceremony, "credential": "not an object"}, 401, "invalid_ceremony"},
		{"/v1/webauthn/login/finish", map[string]any{"credential": map[string]string{}}, 400, "missing_field"},
		{"/v1/webauthn/login/finish", `{"ceremony": 5, "credential": {}}`, 400, "invalid_field"},
		{"/v1/webauthn/login/begin", map[string]string{"purpose": "admin"}, 400, "invalid_field"},
		{"/v1/webauthn/login/begin", map[string]string{"challenge": "ghm_x", "purpose": "reauthenticate"}, 400, "invalid_field"},
		{"/v1/webauthn/login/begin", map[string]string{"challenge": "ghm_" + strings.Repeat("A", 43)}, 401, "invalid_challenge"},
		{"/v1/webauthn/login/begin", map[string]any{"extra": 1}, 400, "unknown_field"},
		{"/v1/login/mfa", map[string]any{"challenge": "ghm_x", "code": "123456", "ceremony": "ghw_x", "credential": map[string]string{}}, 400, "missing_field"},
	} {
		r := c.do("POST", tc.path, tc.body)
		siProblem(t, r, tc.status, tc.code)
	}
}

// TestAttackPasskeyBeginFloodThrottled: ceremonies begun without a session
// hold ephemeral state, so they are counted per client IP.
func TestAttackPasskeyBeginFloodThrottled(t *testing.T) {
	h := newHarness(t, "sqlite", func(c *config.Config) {
		c.PublicURL = localhostURL
		c.LoginAttemptsPerIP = 3
	})
	c := h.client()
	for range 3 * 3 { // three times the sign-in budget
		pkBegin(t, c, "/v1/webauthn/login/begin", map[string]any{})
	}
	r := c.do("POST", "/v1/webauthn/login/begin", map[string]any{})
	siProblem(t, r, http.StatusTooManyRequests, "rate_limited")
	if r.header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
}

// TestAttackPreHijackerPasskeyRemovedByReset: a squatter who signed up with
// the victim's address (not verified) and registered a passkey loses it
// when the owner resets the password from the mailbox: the reset claims the
// unverified account.
func TestAttackPreHijackerPasskeyRemovedByReset(t *testing.T) {
	h := pkHarness(t, "sqlite")
	const email = "prehijacked@example.com"
	squatter := h.newUser(email)
	key := pkAuthenticator(h)
	pkMustRegister(t, squatter, key, "passkey")

	token := vfRequestReset(t, h, email)
	mustStatus(t, vfCompleteReset(h, token, "the owner's own new passphrase"), http.StatusOK)

	c, r := pkPasswordless(t, h, key)
	siProblem(t, r, http.StatusUnauthorized, "passkey_refused")
	if c.cookie != nil {
		t.Fatal("the squatter's passkey signed in after the owner's reset")
	}
	// The owner signs in with the new password alone: the squatter's
	// factors are gone.
	owner := h.client()
	mfMustSession(t, owner, owner.login(email, "the owner's own new passphrase"), 1, []string{"pwd"})
}

// TestAttackSessionsBeforeFirstFactorRevoked: turning on the first second
// factor ends every other session, which signed in without it (an
// intruder's among them); the enrolling session stays.
func TestAttackSessionsBeforeFirstFactorRevoked(t *testing.T) {
	for _, factor := range []string{"app", "passkey"} {
		t.Run(factor, func(t *testing.T) {
			h := pkHarness(t, "sqlite")
			const email = "first-factor@example.com"
			owner := h.newUser(email)
			intruder := h.client()
			mustStatus(t, intruder.login(email, goodPassword), http.StatusOK)
			key := pkAuthenticator(h)
			switch factor {
			case "app":
				mfEnrol(t, h, owner)
			default:
				pkMustRegister(t, owner, key, "passkey")
			}
			siProblem(t, intruder.do("GET", "/v1/me", nil), http.StatusUnauthorized, "unauthenticated")
			mustStatus(t, owner.do("GET", "/v1/me", nil), http.StatusOK)
			if got := siSessionIDs(t, owner); len(got) != 1 {
				t.Errorf("sessions left: %v", got)
			}
			events := siEvents(siActivity(t, owner), map[string]string{"app": "mfa.totp_enabled", "passkey": "webauthn.registered"}[factor])
			if len(events) != 1 || events[0].Details["revoked_sessions"] != "1" {
				t.Errorf("enrolment event: %v", events)
			}
		})
	}
}

// TestAttackSecurityKeyCannotSignInAlone: a credential registered as a
// security key is a second factor only, even if the authenticator keeps
// it resident and answers a passwordless request.
func TestAttackSecurityKeyCannotSignInAlone(t *testing.T) {
	h := pkHarness(t, "sqlite")
	owner := h.newUser("key-only@example.com")
	key := pkAuthenticator(h)
	pkMustRegister(t, owner, key, "security_key")
	c, r := pkPasswordless(t, h, key)
	siProblem(t, r, http.StatusUnauthorized, "passkey_refused")
	if c.cookie != nil {
		t.Fatal("a security key signed in alone")
	}
}

// TestPasskeyCredentialLimit: an account holds at most
// passkey.MaxCredentials credentials.
func TestPasskeyCredentialLimit(t *testing.T) {
	h := pkHarness(t, "sqlite")
	c := h.newUser("many@example.com")
	for range 20 {
		pkMustRegister(t, c, pkAuthenticator(h), "security_key")
	}
	siProblem(t, c.do("POST", "/v1/webauthn/register/begin", map[string]string{"type": "passkey"}), http.StatusConflict, "conflict")
}

// TestAttackEmailedCodeIsNoFactor: an e-mailed code proves the mailbox,
// which is no authenticator: a password step-up on its session is one
// factor, AAL1, not a password plus an OTP.
func TestAttackEmailedCodeIsNoFactor(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	const email = "mailbox@example.com"
	h.newUser(email)
	box := siMails(h)
	siVerifyEmail(t, box, email)
	c := h.client()
	code := siMailCode(t, box, c, email)
	r := c.do("POST", "/v1/otp/verify", map[string]string{"email": email, "code": code})
	mfMustSession(t, c, r, 1, []string{"email"})
	r = c.do("POST", "/v1/reauthenticate", map[string]string{"password": goodPassword})
	mustStatus(t, r, http.StatusOK)
	if s := siSession(t, r); s["aal"] != float64(1) || !slices.Equal(siStrings(s["amr"]), []string{"email", "pwd"}) {
		t.Errorf("an e-mailed code and a password: %s", r.body)
	}
}
