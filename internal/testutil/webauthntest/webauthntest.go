// Package webauthntest is a software WebAuthn authenticator plus the browser
// around it, for tests that talk to the server at the API level. It answers
// the options JSON a Relying Party sends (PublicKeyCredentialCreationOptions
// or PublicKeyCredentialRequestOptions) with the PublicKeyCredential JSON a
// browser posts back (the WebAuthn Level 3 toJSON() shape), and it can be
// told to produce what no real browser would: a wrong origin or clientData
// type, a wrong RP ID hash, a counter that goes backwards, a missing UV flag,
// a signature by the wrong key, or any post-signing edit (see Option).
//
// It implements only the client and authenticator side — credentials are
// ES256 (ECDSA P-256, SHA-256, ASN.1 DER signatures) with attestation format
// "none" — and never verifies anything: that is the server's job. Encoding
// goes through go-webauthn's own webauthncbor and webauthncose types.
//
// Typical use:
//
//	a := webauthntest.New("http://localhost:8080")
//	reg, err := a.Create(beginRegistrationJSON)   // POST reg to the finish endpoint
//	asr, err := a.Get(beginLoginJSON)             // POST asr to the finish endpoint
//	asr, err = a.Get(beginLoginJSON, webauthntest.WithOrigin("https://evil.example"))
package webauthntest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
	"github.com/go-webauthn/webauthn/protocol/webauthncose"
)

// Errors an authenticator or browser would also report (as a DOMException).
var (
	// ErrNoCredential: Get found no remembered credential for the RP ID that
	// allowCredentials (or WithCredentialID) permits (NotAllowedError).
	ErrNoCredential = errors.New("webauthntest: no matching credential")
	// ErrExcluded: Create was asked to register on an authenticator that
	// already holds a credential listed in excludeCredentials (InvalidStateError).
	ErrExcluded = errors.New("webauthntest: authenticator holds an excluded credential")
	// ErrUnsupportedAlgorithm: pubKeyCredParams does not offer ES256 (NotSupportedError).
	ErrUnsupportedAlgorithm = errors.New("webauthntest: pubKeyCredParams does not offer ES256 (-7)")
)

// Authenticator is a software authenticator plus the browser around it.
// Configure the exported fields before use; the methods are safe for
// concurrent use, but the fields must not be changed concurrently with them.
type Authenticator struct {
	// Origin is clientDataJSON.origin, e.g. "http://localhost:8080".
	Origin string
	// RPID, when set, is hashed into authenticatorData's rpIdHash in place
	// of the options' rp.id / rpId (which a browser would use). Credentials
	// are still scoped to the options' RP ID.
	RPID string
	// UV sets the UV (user verified) flag. UP (user present) is always set
	// unless WithUP(false) is given.
	UV bool
	// BackupEligible and BackupState set the BE and BS flags.
	BackupEligible, BackupState bool
	// Attachment is the authenticatorAttachment reported ("platform" from New).
	Attachment protocol.AuthenticatorAttachment
	// Transports are response.transports at registration (["internal"] from New).
	Transports []protocol.AuthenticatorTransport
	// AAGUID goes into the attested credential data (all zero by default, as
	// is usual with attestation "none").
	AAGUID [16]byte

	mu    sync.Mutex
	creds []*credential
}

type credential struct {
	id         []byte
	key        *ecdsa.PrivateKey
	userHandle []byte
	rpID       string
	counter    uint32
}

// New returns an Authenticator for origin with UV set, attachment "platform"
// and transports ["internal"], holding no credentials.
func New(origin string) *Authenticator {
	return &Authenticator{
		Origin:     origin,
		UV:         true,
		Attachment: protocol.Platform,
		Transports: []protocol.AuthenticatorTransport{protocol.Internal},
	}
}

// Credentials returns the ids of the remembered credentials, oldest first
// (the index is the one SetCounter and Counter take).
func (a *Authenticator) Credentials() [][]byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	ids := make([][]byte, len(a.creds))
	for i, c := range a.creds {
		ids[i] = slices.Clone(c.id)
	}
	return ids
}

// SetCounter sets the stored signature counter of credential i to n: the
// next assertion with it reports n+1 (so SetCounter(i, 0) after a few
// logins makes the counter go backwards). It panics if i is out of range.
func (a *Authenticator) SetCounter(i int, n uint32) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.creds[i].counter = n
}

// Counter returns the stored signature counter of credential i: the value
// its last assertion reported (0 after registration). It panics if i is out
// of range.
func (a *Authenticator) Counter(i int) uint32 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.creds[i].counter
}

// Option changes what one Create, Get or GetWithChallenge call produces.
// None of them is anything a real browser and authenticator would do.
// Options that do not apply to a call (WithCounter, WithForgedSignature in
// Create) are ignored.
type Option func(*call)

type call struct {
	origin       *string
	rpID         *string
	typ          *string
	challenge    []byte
	uv, up       *bool
	counter      *uint32
	credID       []byte
	forgeSig     bool
	tamper       func(*Response)
	hasCredID    bool
	hasChallenge bool
}

// WithOrigin puts origin into clientDataJSON instead of Authenticator.Origin.
func WithOrigin(origin string) Option { return func(c *call) { c.origin = &origin } }

// WithRPID hashes rpID into rpIdHash instead of Authenticator.RPID or the
// options' RP ID (credential selection still uses the options' RP ID).
func WithRPID(rpID string) Option { return func(c *call) { c.rpID = &rpID } }

// WithType puts typ into clientDataJSON.type instead of "webauthn.create"
// (Create) or "webauthn.get" (Get).
func WithType(typ string) Option { return func(c *call) { c.typ = &typ } }

// WithChallenge puts challenge (raw bytes; base64url-encoded in
// clientDataJSON) instead of the options' challenge.
func WithChallenge(challenge []byte) Option {
	return func(c *call) { c.challenge, c.hasChallenge = slices.Clone(challenge), true }
}

// WithUV sets or clears the UV flag for this call, overriding Authenticator.UV.
func WithUV(uv bool) Option { return func(c *call) { c.uv = &uv } }

// WithUP sets or clears the UP flag for this call (it is set otherwise).
func WithUP(up bool) Option { return func(c *call) { c.up = &up } }

// WithCounter makes Get report exactly n as the signature counter (and
// store it), instead of the stored counter plus one.
func WithCounter(n uint32) Option { return func(c *call) { c.counter = &n } }

// WithCredentialID, in Get, signs with the remembered credential id even if
// allowCredentials does not list it or it belongs to another RP ID; in
// Create, gives the new credential this id instead of 32 random bytes (to
// register a credential id someone else already owns).
func WithCredentialID(id []byte) Option {
	return func(c *call) { c.credID, c.hasCredID = slices.Clone(id), true }
}

// WithForgedSignature makes Get sign with a fresh key the server has never
// seen: a well-formed ES256 DER signature over the right data that does not
// verify against the registered public key.
func WithForgedSignature() Option { return func(c *call) { c.forgeSig = true } }

// WithTamper calls f with the finished response before it is encoded, after
// signing, so any edit to signed data invalidates the signature (and edits
// to the unsigned parts — id, userHandle — do not).
func WithTamper(f func(*Response)) Option { return func(c *call) { c.tamper = f } }

// Response is what WithTamper may edit. Byte fields are raw (not base64).
type Response struct {
	// CredentialID is both id and rawId.
	CredentialID []byte
	// ClientDataJSON is the serialized client data.
	ClientDataJSON []byte
	// AuthenticatorData is the assertion's authenticator data (Get) or the
	// attestation object's authData (Create; the attestation object is
	// encoded from it after the hook runs).
	AuthenticatorData []byte
	// Signature is the assertion signature (Get only).
	Signature []byte
	// UserHandle is response.userHandle (Get only); nil omits it.
	UserHandle []byte
	// Attachment is authenticatorAttachment; "" omits it.
	Attachment string
}

// Create answers the PublicKeyCredentialCreationOptions JSON the server sent
// — bare, or wrapped as {"publicKey": {...}} (other members of the wrapper
// are ignored) — with the registration PublicKeyCredential JSON a browser
// posts. It makes a new P-256 credential (random 32-byte id), remembers it
// with options.user.id as user handle and counter 0, and returns attestation
// format "none".
func (a *Authenticator) Create(options []byte, opts ...Option) ([]byte, error) {
	var o protocol.PublicKeyCredentialCreationOptions
	if err := unwrapOptions(options, &o); err != nil {
		return nil, fmt.Errorf("webauthntest: creation options: %w", err)
	}
	c := newCall(opts)

	userHandle, err := decodeUserID(o.User.ID)
	if err != nil {
		return nil, err
	}
	if len(o.Parameters) > 0 && !slices.ContainsFunc(o.Parameters, func(p protocol.CredentialParameter) bool {
		return p.Algorithm == webauthncose.AlgES256
	}) {
		return nil, ErrUnsupportedAlgorithm
	}
	scope, err := a.scopeRPID(o.RelyingParty.ID)
	if err != nil {
		return nil, err
	}

	a.mu.Lock()
	for _, ex := range o.CredentialExcludeList {
		for _, cr := range a.creds {
			if cr.rpID == scope && bytes.Equal(cr.id, ex.CredentialID) {
				a.mu.Unlock()
				return nil, ErrExcluded
			}
		}
	}
	a.mu.Unlock()

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("webauthntest: generate key: %w", err)
	}
	credID := c.credID
	if !c.hasCredID {
		credID = make([]byte, 32)
		if _, err := rand.Read(credID); err != nil {
			return nil, fmt.Errorf("webauthntest: credential id: %w", err)
		}
	}
	coseKey, err := encodeCOSEKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("webauthntest: public key: %w", err)
	}

	clientData, err := a.clientDataJSON(c, protocol.CreateCeremony, o.Challenge)
	if err != nil {
		return nil, err
	}
	// Attested credential data: aaguid(16) || credIdLen(2) || credId || COSE key.
	att := make([]byte, 0, 18+len(credID)+len(coseKey))
	att = append(att, a.AAGUID[:]...)
	att = binary.BigEndian.AppendUint16(att, uint16(len(credID)))
	att = append(att, credID...)
	att = append(att, coseKey...)
	authData := a.authenticatorData(c, scope, protocol.FlagAttestedCredentialData, 0, att)

	r := &Response{
		CredentialID:      credID,
		ClientDataJSON:    clientData,
		AuthenticatorData: authData,
		Attachment:        string(a.Attachment),
	}
	if c.tamper != nil {
		c.tamper(r)
	}
	attObj, err := webauthncbor.Marshal(attestationObject{Fmt: "none", AttStmt: map[string]any{}, AuthData: r.AuthenticatorData})
	if err != nil {
		return nil, fmt.Errorf("webauthntest: attestation object: %w", err)
	}

	transports := make([]string, len(a.Transports))
	for i, t := range a.Transports {
		transports[i] = string(t)
	}
	out, err := json.Marshal(registrationJSON{
		ID:    b64(r.CredentialID),
		RawID: b64(r.CredentialID),
		Type:  string(protocol.PublicKeyCredentialType),
		Response: attestationResponseJSON{
			ClientDataJSON:     b64(r.ClientDataJSON),
			AuthenticatorData:  b64(r.AuthenticatorData),
			Transports:         transports,
			PublicKey:          b64(spki),
			PublicKeyAlgorithm: int64(webauthncose.AlgES256),
			AttestationObject:  b64(attObj),
		},
		AuthenticatorAttachment: r.Attachment,
		ClientExtensionResults:  struct{}{},
	})
	if err != nil {
		return nil, fmt.Errorf("webauthntest: encode registration: %w", err)
	}

	a.mu.Lock()
	a.creds = append(a.creds, &credential{id: slices.Clone(credID), key: key, userHandle: userHandle, rpID: scope})
	a.mu.Unlock()
	return out, nil
}

// Get answers PublicKeyCredentialRequestOptions JSON (bare or wrapped as
// {"publicKey": {...}}) with the assertion PublicKeyCredential JSON a
// browser posts. It picks the first remembered credential for the RP ID
// that allowCredentials lists (any, when the list is empty: discoverable),
// increments its counter, and signs authenticatorData || SHA-256(clientDataJSON)
// with ES256 (ASN.1 DER). userHandle is always included.
func (a *Authenticator) Get(options []byte, opts ...Option) ([]byte, error) {
	var o protocol.PublicKeyCredentialRequestOptions
	if err := unwrapOptions(options, &o); err != nil {
		return nil, fmt.Errorf("webauthntest: request options: %w", err)
	}
	return a.get(&o, newCall(opts))
}

// GetWithChallenge is Get for options {challenge, rpId: Authenticator.RPID
// (or the origin's host)} with no allowCredentials — an assertion for a
// challenge of the caller's choosing, without asking the server first.
func (a *Authenticator) GetWithChallenge(challenge []byte, opts ...Option) ([]byte, error) {
	return a.get(&protocol.PublicKeyCredentialRequestOptions{Challenge: challenge, RelyingPartyID: a.RPID}, newCall(opts))
}

func (a *Authenticator) get(o *protocol.PublicKeyCredentialRequestOptions, c *call) ([]byte, error) {
	scope, err := a.scopeRPID(o.RelyingPartyID)
	if err != nil {
		return nil, err
	}

	a.mu.Lock()
	cr := a.pick(scope, o.AllowedCredentials, c)
	if cr == nil {
		a.mu.Unlock()
		if c.hasCredID {
			return nil, fmt.Errorf("%w: id %s not remembered", ErrNoCredential, b64(c.credID))
		}
		return nil, fmt.Errorf("%w: rpId %q, %d allowed", ErrNoCredential, scope, len(o.AllowedCredentials))
	}
	if c.counter != nil {
		cr.counter = *c.counter
	} else {
		cr.counter++
	}
	counter, key := cr.counter, cr.key
	credID, userHandle := slices.Clone(cr.id), slices.Clone(cr.userHandle)
	a.mu.Unlock()

	clientData, err := a.clientDataJSON(c, protocol.AssertCeremony, o.Challenge)
	if err != nil {
		return nil, err
	}
	authData := a.authenticatorData(c, scope, 0, counter, nil)
	if c.forgeSig {
		if key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return nil, fmt.Errorf("webauthntest: generate key: %w", err)
		}
	}
	cdHash := sha256.Sum256(clientData)
	digest := sha256.Sum256(slices.Concat(authData, cdHash[:]))
	sig, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
	if err != nil {
		return nil, fmt.Errorf("webauthntest: sign: %w", err)
	}

	r := &Response{
		CredentialID:      credID,
		ClientDataJSON:    clientData,
		AuthenticatorData: authData,
		Signature:         sig,
		UserHandle:        userHandle,
		Attachment:        string(a.Attachment),
	}
	if c.tamper != nil {
		c.tamper(r)
	}
	resp := assertionResponseJSON{
		ClientDataJSON:    b64(r.ClientDataJSON),
		AuthenticatorData: b64(r.AuthenticatorData),
		Signature:         b64(r.Signature),
	}
	if r.UserHandle != nil {
		resp.UserHandle = b64(r.UserHandle)
	}
	out, err := json.Marshal(assertionJSON{
		ID:                      b64(r.CredentialID),
		RawID:                   b64(r.CredentialID),
		Type:                    string(protocol.PublicKeyCredentialType),
		Response:                resp,
		AuthenticatorAttachment: r.Attachment,
		ClientExtensionResults:  struct{}{},
	})
	if err != nil {
		return nil, fmt.Errorf("webauthntest: encode assertion: %w", err)
	}
	return out, nil
}

// pick returns the credential Get signs with; a.mu must be held.
func (a *Authenticator) pick(scope string, allow []protocol.CredentialDescriptor, c *call) *credential {
	for _, cr := range a.creds {
		switch {
		case c.hasCredID:
			if bytes.Equal(cr.id, c.credID) {
				return cr
			}
		case cr.rpID != scope:
		case len(allow) == 0:
			return cr
		case slices.ContainsFunc(allow, func(d protocol.CredentialDescriptor) bool { return bytes.Equal(d.CredentialID, cr.id) }):
			return cr
		}
	}
	return nil
}

func newCall(opts []Option) *call {
	c := &call{}
	for _, o := range opts {
		o(c)
	}
	return c
}

// scopeRPID is the RP ID the browser would use: the options' own, or else
// the origin's host (the default when rp.id / rpId is omitted).
func (a *Authenticator) scopeRPID(fromOptions string) (string, error) {
	if fromOptions != "" {
		return fromOptions, nil
	}
	u, err := url.Parse(a.Origin)
	if err != nil || u.Hostname() == "" {
		return "", fmt.Errorf("webauthntest: no RP ID in the options and none derivable from origin %q", a.Origin)
	}
	return u.Hostname(), nil
}

// clientDataJSON serializes the client data the way Chromium does (same
// members, same order).
func (a *Authenticator) clientDataJSON(c *call, typ protocol.CeremonyType, challenge []byte) ([]byte, error) {
	cd := clientData{Type: string(typ), Challenge: b64(challenge), Origin: a.Origin}
	if c.typ != nil {
		cd.Type = *c.typ
	}
	if c.hasChallenge {
		cd.Challenge = b64(c.challenge)
	}
	if c.origin != nil {
		cd.Origin = *c.origin
	}
	out, err := json.Marshal(cd)
	if err != nil {
		return nil, fmt.Errorf("webauthntest: client data: %w", err)
	}
	return out, nil
}

// authenticatorData is rpIdHash(32) || flags(1) || signCount(4, big endian) || rest.
func (a *Authenticator) authenticatorData(c *call, scope string, flags protocol.AuthenticatorFlags, counter uint32, rest []byte) []byte {
	rpID := scope
	if a.RPID != "" {
		rpID = a.RPID
	}
	if c.rpID != nil {
		rpID = *c.rpID
	}
	uv, up := a.UV, true
	if c.uv != nil {
		uv = *c.uv
	}
	if c.up != nil {
		up = *c.up
	}
	if up {
		flags |= protocol.FlagUserPresent
	}
	if uv {
		flags |= protocol.FlagUserVerified
	}
	if a.BackupEligible {
		flags |= protocol.FlagBackupEligible
	}
	if a.BackupState {
		flags |= protocol.FlagBackupState
	}
	h := sha256.Sum256([]byte(rpID))
	out := make([]byte, 0, 37+len(rest))
	out = append(out, h[:]...)
	out = append(out, byte(flags))
	out = binary.BigEndian.AppendUint32(out, counter)
	return append(out, rest...)
}

// encodeCOSEKey encodes pub as a COSE_Key (kty EC2, alg ES256, crv P-256).
func encodeCOSEKey(pub *ecdsa.PublicKey) ([]byte, error) {
	point, err := pub.Bytes() // 0x04 || X(32) || Y(32)
	if err != nil {
		return nil, fmt.Errorf("webauthntest: public key: %w", err)
	}
	k := webauthncose.EC2PublicKeyData{
		PublicKeyData: webauthncose.PublicKeyData{
			KeyType:   int64(webauthncose.EllipticKey),
			Algorithm: int64(webauthncose.AlgES256),
		},
		Curve:  int64(webauthncose.P256),
		XCoord: point[1:33],
		YCoord: point[33:65],
	}
	out, err := webauthncbor.Marshal(k)
	if err != nil {
		return nil, fmt.Errorf("webauthntest: COSE key: %w", err)
	}
	return out, nil
}

// unwrapOptions decodes options, bare or as the "publicKey" member of a
// wrapper object, into v.
func unwrapOptions(options []byte, v any) error {
	var wrapper map[string]json.RawMessage
	if err := json.Unmarshal(options, &wrapper); err != nil {
		return err
	}
	if inner, ok := wrapper["publicKey"]; ok {
		options = inner
	}
	return json.Unmarshal(options, v)
}

// decodeUserID turns options.user.id (a base64url string in the JSON form)
// into the user handle bytes, as PublicKeyCredential.parseCreationOptionsFromJSON does.
func decodeUserID(id any) ([]byte, error) {
	s, ok := id.(string)
	if !ok || s == "" {
		return nil, fmt.Errorf("webauthntest: options.user.id is %T %v, want a base64url string", id, id)
	}
	out, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, fmt.Errorf("webauthntest: options.user.id: %w", err)
	}
	return out, nil
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

type clientData struct {
	Type        string `json:"type"`
	Challenge   string `json:"challenge"`
	Origin      string `json:"origin"`
	CrossOrigin bool   `json:"crossOrigin"`
}

type attestationObject struct {
	Fmt      string         `cbor:"fmt"`
	AttStmt  map[string]any `cbor:"attStmt"`
	AuthData []byte         `cbor:"authData"`
}

type registrationJSON struct {
	ID                      string                  `json:"id"`
	RawID                   string                  `json:"rawId"`
	Type                    string                  `json:"type"`
	Response                attestationResponseJSON `json:"response"`
	AuthenticatorAttachment string                  `json:"authenticatorAttachment,omitempty"`
	ClientExtensionResults  struct{}                `json:"clientExtensionResults"`
}

type attestationResponseJSON struct {
	ClientDataJSON     string   `json:"clientDataJSON"`
	AuthenticatorData  string   `json:"authenticatorData"`
	Transports         []string `json:"transports"`
	PublicKey          string   `json:"publicKey"`
	PublicKeyAlgorithm int64    `json:"publicKeyAlgorithm"`
	AttestationObject  string   `json:"attestationObject"`
}

type assertionJSON struct {
	ID                      string                `json:"id"`
	RawID                   string                `json:"rawId"`
	Type                    string                `json:"type"`
	Response                assertionResponseJSON `json:"response"`
	AuthenticatorAttachment string                `json:"authenticatorAttachment,omitempty"`
	ClientExtensionResults  struct{}              `json:"clientExtensionResults"`
}

type assertionResponseJSON struct {
	ClientDataJSON    string `json:"clientDataJSON"`
	AuthenticatorData string `json:"authenticatorData"`
	Signature         string `json:"signature"`
	UserHandle        string `json:"userHandle,omitempty"`
}
