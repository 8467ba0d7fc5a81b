package webauthntest_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/gatehouse-auth/gatehouse/internal/testutil/webauthntest"
)

const origin = "http://localhost:8080"

// user is the smallest webauthn.User: credentials live in memory.
type user struct {
	id    []byte
	name  string
	creds []webauthn.Credential
}

func (u *user) WebAuthnID() []byte                         { return u.id }
func (u *user) WebAuthnName() string                       { return u.name }
func (u *user) WebAuthnDisplayName() string                { return u.name }
func (u *user) WebAuthnCredentials() []webauthn.Credential { return u.creds }

// store replaces the stored copy of cred (the RP persisting the updated
// counter and flags after a login).
func (u *user) store(cred *webauthn.Credential) {
	for i := range u.creds {
		if bytes.Equal(u.creds[i].ID, cred.ID) {
			u.creds[i] = *cred
			return
		}
	}
	u.creds = append(u.creds, *cred)
}

func newUser(t *testing.T, name string) *user {
	t.Helper()
	id := make([]byte, 32)
	if _, err := rand.Read(id); err != nil {
		t.Fatal(err)
	}
	return &user{id: id, name: name}
}

func newRP(t *testing.T) *webauthn.WebAuthn {
	t.Helper()
	rp, err := webauthn.New(&webauthn.Config{
		RPID:          "localhost",
		RPDisplayName: "Test",
		RPOrigins:     []string{origin},
	})
	if err != nil {
		t.Fatal(err)
	}
	return rp
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// register runs BeginRegistration → Create → parse → CreateCredential. A
// non-nil error comes from the library's verification (the authenticator
// side must not fail).
func register(t *testing.T, rp *webauthn.WebAuthn, a *webauthntest.Authenticator, u *user, ropts []webauthn.RegistrationOption, opts ...webauthntest.Option) (*webauthn.Credential, error) {
	t.Helper()
	creation, session, err := rp.BeginRegistration(u, ropts...)
	if err != nil {
		t.Fatalf("BeginRegistration: %v", err)
	}
	resp, err := a.Create(mustJSON(t, creation), opts...)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(resp)
	if err != nil {
		t.Fatalf("ParseCredentialCreationResponseBytes: %v\n%s", err, resp)
	}
	return rp.CreateCredential(u, *session, parsed)
}

func mustRegister(t *testing.T, rp *webauthn.WebAuthn, a *webauthntest.Authenticator, u *user, ropts ...webauthn.RegistrationOption) *webauthn.Credential {
	t.Helper()
	cred, err := register(t, rp, a, u, ropts)
	if err != nil {
		t.Fatalf("CreateCredential: %v", describe(err))
	}
	u.store(cred)
	return cred
}

// login runs BeginLogin → Get → parse → ValidateLogin and, on success,
// stores the updated credential.
func login(t *testing.T, rp *webauthn.WebAuthn, a *webauthntest.Authenticator, u *user, lopts []webauthn.LoginOption, opts ...webauthntest.Option) (*webauthn.Credential, error) {
	t.Helper()
	assertion, session, err := rp.BeginLogin(u, lopts...)
	if err != nil {
		t.Fatalf("BeginLogin: %v", err)
	}
	resp, err := a.Get(mustJSON(t, assertion), opts...)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	return finishLogin(t, rp, u, session, resp)
}

func finishLogin(t *testing.T, rp *webauthn.WebAuthn, u *user, session *webauthn.SessionData, resp []byte) (*webauthn.Credential, error) {
	t.Helper()
	parsed, err := protocol.ParseCredentialRequestResponseBytes(resp)
	if err != nil {
		return nil, err
	}
	cred, err := rp.ValidateLogin(u, *session, parsed)
	if err == nil {
		u.store(cred)
	}
	return cred, err
}

// describe renders a go-webauthn error with its DevInfo, which is where
// the precise reason usually is.
func describe(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return fmt.Sprintf("%s [%s] %s", pe.Details, pe.Type, pe.DevInfo)
	}
	return err.Error()
}

func wantRefused(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted; want refusal containing %q", want)
	}
	t.Logf("refused: %T %s", err, describe(err))
	if got := describe(err); !strings.Contains(got, want) {
		t.Fatalf("refused with %q; want it to contain %q", got, want)
	}
}

func TestRegisterAndLogin(t *testing.T) {
	rp, a, u := newRP(t), webauthntest.New(origin), newUser(t, "alice")
	a.BackupEligible, a.BackupState = true, true

	cred := mustRegister(t, rp, a, u)
	if ids := a.Credentials(); len(ids) != 1 || !bytes.Equal(ids[0], cred.ID) || len(cred.ID) != 32 {
		t.Fatalf("Credentials() = %x, registered %x", ids, cred.ID)
	}
	if cred.AttestationFormat != "none" || !cred.Flags.UserPresent || !cred.Flags.UserVerified ||
		!cred.Flags.BackupEligible || !cred.Flags.BackupState || cred.Authenticator.SignCount != 0 ||
		cred.Authenticator.Attachment != protocol.Platform {
		t.Fatalf("registered credential = %+v", cred)
	}
	if len(cred.Transport) != 1 || cred.Transport[0] != protocol.Internal {
		t.Fatalf("transports = %v", cred.Transport)
	}

	for want := uint32(1); want <= 3; want++ {
		got, err := login(t, rp, a, u, nil)
		if err != nil {
			t.Fatalf("login %d: %v", want, describe(err))
		}
		if got.Authenticator.SignCount != want || got.Authenticator.CloneWarning {
			t.Fatalf("login %d: authenticator = %+v", want, got.Authenticator)
		}
		if a.Counter(0) != want {
			t.Fatalf("Counter(0) = %d, want %d", a.Counter(0), want)
		}
	}
}

func TestOptionShapes(t *testing.T) {
	rp, a, u := newRP(t), webauthntest.New(origin), newUser(t, "bob")

	// Bare PublicKeyCredentialCreationOptions.
	creation, session, err := rp.BeginRegistration(u)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := a.Create(mustJSON(t, creation.Response))
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(resp)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := rp.CreateCredential(u, *session, parsed)
	if err != nil {
		t.Fatal(describe(err))
	}
	u.store(cred)

	// The response has the toJSON() shape.
	var shape map[string]any
	if err := json.Unmarshal(resp, &shape); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "rawId", "type", "response", "authenticatorAttachment", "clientExtensionResults"} {
		if _, ok := shape[k]; !ok {
			t.Errorf("registration JSON lacks %q: %s", k, resp)
		}
	}
	for _, k := range []string{"clientDataJSON", "attestationObject", "transports", "authenticatorData", "publicKey", "publicKeyAlgorithm"} {
		if _, ok := shape["response"].(map[string]any)[k]; !ok {
			t.Errorf("registration response lacks %q: %s", k, resp)
		}
	}

	// A wrapper with other members (as the server's begin endpoint sends) and the bare request options.
	for name, wrap := range map[string]func(*protocol.CredentialAssertion) any{
		"wrapped": func(ca *protocol.CredentialAssertion) any {
			return map[string]any{"ceremony": "ghw_x", "publicKey": ca.Response, "expires_in": 300}
		},
		"bare": func(ca *protocol.CredentialAssertion) any { return ca.Response },
	} {
		assertion, session, err := rp.BeginLogin(u)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := a.Get(mustJSON(t, wrap(assertion)))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := finishLogin(t, rp, u, session, resp); err != nil {
			t.Fatalf("%s: %v", name, describe(err))
		}
	}
}

func TestDiscoverableLogin(t *testing.T) {
	rp := newRP(t)
	alice, bob := newUser(t, "alice"), newUser(t, "bob")
	aliceKey, bobKey := webauthntest.New(origin), webauthntest.New(origin)
	mustRegister(t, rp, aliceKey, alice, webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementRequired))
	mustRegister(t, rp, bobKey, bob, webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementRequired))
	users := map[string]*user{string(alice.id): alice, string(bob.id): bob}
	handler := func(rawID, userHandle []byte) (webauthn.User, error) {
		if u, ok := users[string(userHandle)]; ok {
			return u, nil
		}
		return nil, errors.New("no such user")
	}

	begin := func(t *testing.T) ([]byte, *webauthn.SessionData) {
		assertion, session, err := rp.BeginDiscoverableLogin()
		if err != nil {
			t.Fatal(err)
		}
		if len(assertion.Response.AllowedCredentials) != 0 || len(session.UserID) != 0 {
			t.Fatalf("discoverable options carry a user: %+v / %+v", assertion.Response, session)
		}
		return mustJSON(t, assertion), session
	}

	t.Run("ValidatePasskeyLogin", func(t *testing.T) {
		opts, session := begin(t)
		resp, err := aliceKey.Get(opts)
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := protocol.ParseCredentialRequestResponseBytes(resp)
		if err != nil {
			t.Fatal(err)
		}
		who, cred, err := rp.ValidatePasskeyLogin(handler, *session, parsed)
		if err != nil {
			t.Fatal(describe(err))
		}
		if who.(*user) != alice || cred.Authenticator.SignCount != 1 {
			t.Fatalf("logged in %s with counter %d", who.WebAuthnName(), cred.Authenticator.SignCount)
		}
	})

	t.Run("ValidateDiscoverableLogin", func(t *testing.T) {
		opts, session := begin(t)
		resp, err := bobKey.Get(opts)
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := protocol.ParseCredentialRequestResponseBytes(resp)
		if err != nil {
			t.Fatal(err)
		}
		cred, err := rp.ValidateDiscoverableLogin(handler, *session, parsed)
		if err != nil {
			t.Fatal(describe(err))
		}
		if !bytes.Equal(cred.ID, bob.creds[0].ID) {
			t.Fatalf("validated credential %x, want bob's", cred.ID)
		}
	})

	for _, tc := range []struct {
		name string
		opts []webauthntest.Option
		want string
	}{
		// Mallory's own key, claiming to be alice: the handler finds alice, who does not own the credential.
		{"user handle of another user", []webauthntest.Option{webauthntest.WithTamper(func(r *webauthntest.Response) { r.UserHandle = alice.id })},
			"Unable to find the credential for the returned credential ID"},
		{"no user handle", []webauthntest.Option{webauthntest.WithTamper(func(r *webauthntest.Response) { r.UserHandle = nil })},
			"Client-side Discoverable Assertion was attempted with a blank User Handle"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts, session := begin(t)
			resp, err := bobKey.Get(opts, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := protocol.ParseCredentialRequestResponseBytes(resp)
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = rp.ValidatePasskeyLogin(handler, *session, parsed)
			wantRefused(t, err, tc.want)
		})
	}
}

func TestRegistrationRefused(t *testing.T) {
	uvRequired := webauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{UserVerification: protocol.VerificationRequired})
	for _, tc := range []struct {
		name   string
		setup  func(*webauthntest.Authenticator)
		ropts  []webauthn.RegistrationOption
		opts   []webauthntest.Option
		want   string
		accept bool
	}{
		{name: "wrong origin", opts: []webauthntest.Option{webauthntest.WithOrigin("https://evil.example")}, want: "Error validating origin"},
		{name: "wrong origin (Authenticator.Origin)", setup: func(a *webauthntest.Authenticator) { a.Origin = "http://localhost:8081" }, want: "Error validating origin"},
		{name: "wrong RP ID", opts: []webauthntest.Option{webauthntest.WithRPID("evil.example")}, want: "RP Hash mismatch"},
		{name: "wrong RP ID (Authenticator.RPID)", setup: func(a *webauthntest.Authenticator) { a.RPID = "example.com" }, want: "RP Hash mismatch"},
		{name: "clientData type webauthn.get", opts: []webauthntest.Option{webauthntest.WithType("webauthn.get")}, want: "Error validating ceremony type"},
		{name: "other challenge", opts: []webauthntest.Option{webauthntest.WithChallenge(make([]byte, 32))}, want: "Error validating challenge"},
		{name: "UV missing, UV required", ropts: []webauthn.RegistrationOption{uvRequired}, opts: []webauthntest.Option{webauthntest.WithUV(false)},
			want: "User verification required but flag not set by authenticator"},
		{name: "UV missing, UV not required", opts: []webauthntest.Option{webauthntest.WithUV(false)}, accept: true},
		{name: "UP missing", opts: []webauthntest.Option{webauthntest.WithUP(false)}, want: "User presence required but flag not set by authenticator"},
		{name: "BS without BE", setup: func(a *webauthntest.Authenticator) { a.BackupState = true },
			want: "Backup State Flag is true but Backup Eligible flag is false which is invalid"},
		{name: "authData edited (AT flag cleared)", opts: []webauthntest.Option{webauthntest.WithTamper(func(r *webauthntest.Response) { r.AuthenticatorData[32] &^= byte(protocol.FlagAttestedCredentialData) })},
			want: "Error parsing attestation response"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rp, a, u := newRP(t), webauthntest.New(origin), newUser(t, "alice")
			if tc.setup != nil {
				tc.setup(a)
			}
			creation, session, err := rp.BeginRegistration(u, tc.ropts...)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := a.Create(mustJSON(t, creation), tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := protocol.ParseCredentialCreationResponseBytes(resp)
			if err == nil {
				_, err = rp.CreateCredential(u, *session, parsed)
			}
			if tc.accept {
				if err != nil {
					t.Fatalf("refused: %s", describe(err))
				}
				return
			}
			wantRefused(t, err, tc.want)
		})
	}
}

func TestLoginRefused(t *testing.T) {
	uvRequired := webauthn.WithUserVerification(protocol.VerificationRequired)
	flipLastByte := func(b []byte) { b[len(b)-1] ^= 0x01 }
	for _, tc := range []struct {
		name   string
		setup  func(*webauthntest.Authenticator)
		lopts  []webauthn.LoginOption
		opts   []webauthntest.Option
		want   string
		accept bool
	}{
		{name: "control", accept: true},
		{name: "wrong origin", opts: []webauthntest.Option{webauthntest.WithOrigin("https://evil.example")}, want: "Error validating origin"},
		{name: "wrong RP ID", opts: []webauthntest.Option{webauthntest.WithRPID("evil.example")}, want: "RP Hash mismatch"},
		{name: "forged signature", opts: []webauthntest.Option{webauthntest.WithForgedSignature()}, want: "Error validating the assertion signature"},
		{name: "signature bit flipped", opts: []webauthntest.Option{webauthntest.WithTamper(func(r *webauthntest.Response) { flipLastByte(r.Signature) })},
			want: "Error validating the assertion signature"},
		{name: "clientDataJSON edited after signing", opts: []webauthntest.Option{webauthntest.WithTamper(func(r *webauthntest.Response) {
			r.ClientDataJSON = bytes.Replace(r.ClientDataJSON, []byte(`"crossOrigin":false`), []byte(`"crossOrigin":false `), 1)
		})}, want: "Error validating the assertion signature"},
		{name: "UV flag set after signing", lopts: []webauthn.LoginOption{uvRequired}, opts: []webauthntest.Option{
			webauthntest.WithUV(false),
			webauthntest.WithTamper(func(r *webauthntest.Response) { r.AuthenticatorData[32] |= byte(protocol.FlagUserVerified) }),
		}, want: "Error validating the assertion signature"},
		{name: "clientData type webauthn.create", opts: []webauthntest.Option{webauthntest.WithType("webauthn.create")}, want: "Error validating ceremony type"},
		{name: "other challenge", opts: []webauthntest.Option{webauthntest.WithChallenge(make([]byte, 32))}, want: "Error validating challenge"},
		{name: "UV missing, UV required", lopts: []webauthn.LoginOption{uvRequired}, opts: []webauthntest.Option{webauthntest.WithUV(false)},
			want: "User verification required but flag not set by authenticator"},
		{name: "UV missing, UV preferred", lopts: []webauthn.LoginOption{webauthn.WithUserVerification(protocol.VerificationPreferred)},
			opts: []webauthntest.Option{webauthntest.WithUV(false)}, accept: true},
		{name: "UP missing", opts: []webauthntest.Option{webauthntest.WithUP(false)}, want: "User presence required but flag not set by authenticator"},
		{name: "BE changed since registration", setup: func(a *webauthntest.Authenticator) { a.BackupEligible = true },
			want: "Backup Eligible flag inconsistency detected during login validation"},
		{name: "user handle of another user", opts: []webauthntest.Option{webauthntest.WithTamper(func(r *webauthntest.Response) { r.UserHandle = []byte("someone-else") })},
			want: "User handle and User ID do not match"},
		{name: "no user handle", opts: []webauthntest.Option{webauthntest.WithTamper(func(r *webauthntest.Response) { r.UserHandle = nil })}, accept: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rp, a, u := newRP(t), webauthntest.New(origin), newUser(t, "alice")
			mustRegister(t, rp, a, u)
			if tc.setup != nil {
				tc.setup(a)
			}
			cred, err := login(t, rp, a, u, tc.lopts, tc.opts...)
			if tc.accept {
				if err != nil {
					t.Fatalf("refused: %s", describe(err))
				}
				if cred.Authenticator.SignCount != 1 {
					t.Fatalf("SignCount = %d, want 1", cred.Authenticator.SignCount)
				}
				return
			}
			wantRefused(t, err, tc.want)
		})
	}
}

func TestOtherUsersCredential(t *testing.T) {
	rp := newRP(t)
	alice, mallory := newUser(t, "alice"), newUser(t, "mallory")
	aliceKey, malloryKey := webauthntest.New(origin), webauthntest.New(origin)
	mustRegister(t, rp, aliceKey, alice)
	malloryCred := mustRegister(t, rp, malloryKey, mallory)

	assertion, session, err := rp.BeginLogin(alice)
	if err != nil {
		t.Fatal(err)
	}
	opts := mustJSON(t, assertion)
	// A browser would find nothing: alice's allowCredentials lists none of mallory's.
	if _, err := malloryKey.Get(opts); !errors.Is(err, webauthntest.ErrNoCredential) {
		t.Fatalf("Get with foreign allowCredentials: %v, want ErrNoCredential", err)
	}
	resp, err := malloryKey.Get(opts, webauthntest.WithCredentialID(malloryCred.ID))
	if err != nil {
		t.Fatal(err)
	}
	_, err = finishLogin(t, rp, alice, session, resp)
	wantRefused(t, err, "The credential ID provided is not owned by the user")
	var unknown *protocol.ErrorUnknownCredential
	if !errors.As(err, &unknown) {
		t.Fatalf("error %T is not *protocol.ErrorUnknownCredential", err)
	}
}

func TestCounter(t *testing.T) {
	t.Run("goes backwards", func(t *testing.T) {
		rp, a, u := newRP(t), webauthntest.New(origin), newUser(t, "alice")
		mustRegister(t, rp, a, u)
		for range 2 {
			if _, err := login(t, rp, a, u, nil); err != nil {
				t.Fatal(describe(err))
			}
		}
		a.SetCounter(0, 0) // next assertion reports 1 < stored 2
		cred, err := login(t, rp, a, u, nil)
		if err != nil {
			t.Fatalf("v0.18.2 reports a counter regression without an error; got %s", describe(err))
		}
		if !cred.Authenticator.CloneWarning || cred.Authenticator.SignCount != 2 {
			t.Fatalf("authenticator = %+v, want CloneWarning with SignCount kept at 2", cred.Authenticator)
		}
	})
	t.Run("stays equal", func(t *testing.T) {
		rp, a, u := newRP(t), webauthntest.New(origin), newUser(t, "alice")
		mustRegister(t, rp, a, u)
		if _, err := login(t, rp, a, u, nil); err != nil {
			t.Fatal(describe(err))
		}
		cred, err := login(t, rp, a, u, nil, webauthntest.WithCounter(1))
		if err != nil || !cred.Authenticator.CloneWarning {
			t.Fatalf("equal counter: err %v, authenticator %+v; want CloneWarning", err, cred)
		}
	})
	t.Run("always zero", func(t *testing.T) {
		rp, a, u := newRP(t), webauthntest.New(origin), newUser(t, "alice")
		mustRegister(t, rp, a, u)
		for range 2 {
			cred, err := login(t, rp, a, u, nil, webauthntest.WithCounter(0))
			if err != nil || cred.Authenticator.CloneWarning {
				t.Fatalf("zero counter: err %v, authenticator %+v; want no warning", err, cred)
			}
		}
	})
}

func TestReplay(t *testing.T) {
	rp, a, u := newRP(t), webauthntest.New(origin), newUser(t, "alice")
	mustRegister(t, rp, a, u)
	assertion, session, err := rp.BeginLogin(u)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := a.Get(mustJSON(t, assertion))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := finishLogin(t, rp, u, session, resp); err != nil {
		t.Fatal(describe(err))
	}

	// Against a new ceremony the old challenge is refused.
	_, fresh, err := rp.BeginLogin(u)
	if err != nil {
		t.Fatal(err)
	}
	_, err = finishLogin(t, rp, u, fresh, resp)
	wantRefused(t, err, "Error validating challenge")

	// Against the same session data, ValidateLogin (stateless) does not
	// refuse: only the clone warning (counter not increased) shows it. The
	// RP must make its ceremony state single use.
	cred, err := finishLogin(t, rp, u, session, resp)
	if err != nil || !cred.Authenticator.CloneWarning {
		t.Fatalf("replay on the same session: err %v, cred %+v; want accepted with CloneWarning", err, cred)
	}
}

func TestGetWithChallenge(t *testing.T) {
	rp, a, u := newRP(t), webauthntest.New(origin), newUser(t, "alice")
	mustRegister(t, rp, a, u)
	challenge := []byte("0123456789abcdef0123456789abcdef")
	_, session, err := rp.BeginLogin(u, webauthn.WithChallenge(challenge))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := a.GetWithChallenge(challenge)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := finishLogin(t, rp, u, session, resp); err != nil {
		t.Fatal(describe(err))
	}
}

func TestExcludeCredentials(t *testing.T) {
	rp, a, u := newRP(t), webauthntest.New(origin), newUser(t, "alice")
	cred := mustRegister(t, rp, a, u)
	creation, _, err := rp.BeginRegistration(u, webauthn.WithExclusions([]protocol.CredentialDescriptor{cred.Descriptor()}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Create(mustJSON(t, creation)); !errors.Is(err, webauthntest.ErrExcluded) {
		t.Fatalf("Create with own credential excluded: %v, want ErrExcluded", err)
	}
	// Another authenticator registers fine; WithCredentialID reuses an id.
	b := webauthntest.New(origin)
	resp, err := b.Create(mustJSON(t, creation), webauthntest.WithCredentialID(cred.ID))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(resp, []byte(`"rawId":"`+protocol.URLEncodedBase64(cred.ID).String()+`"`)) {
		t.Fatalf("WithCredentialID not used: %s", resp)
	}
}

func TestConcurrentUse(t *testing.T) {
	rp, a, u := newRP(t), webauthntest.New(origin), newUser(t, "alice")
	mustRegister(t, rp, a, u)
	challenge := make([]byte, 32)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := a.GetWithChallenge(challenge); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := a.Counter(0); got != 8 {
		t.Fatalf("Counter(0) = %d after 8 concurrent assertions", got)
	}
}
