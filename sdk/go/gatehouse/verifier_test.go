package gatehouse

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func TestVerifyValidTokens(t *testing.T) {
	f := newFixture(t)
	now := f.clock.Now()
	for _, k := range []testKey{f.ed, f.ec} {
		t.Run(string(k.alg), func(t *testing.T) {
			got, err := f.v.Verify(context.Background(), f.token(t, k, f.claims()))
			if err != nil {
				t.Fatal(err)
			}
			want := &Claims{
				Issuer:    testIssuer,
				Subject:   "usr_123",
				Audience:  []string{testAudience, "api://other"},
				ExpiresAt: time.Unix(now.Add(5*time.Minute).Unix(), 0),
				IssuedAt:  time.Unix(now.Add(-time.Minute).Unix(), 0),
				NotBefore: time.Unix(now.Add(-time.Minute).Unix(), 0),
				AuthTime:  time.Unix(now.Add(-2*time.Minute).Unix(), 0),
				ID:        "jti_abc",
				SessionID: "ses_1",
				AMR:       []string{"pwd", "otp"},
				ACR:       "aal2",
				ClientID:  "cli_web",
			}
			if !claimsEqual(got, want) {
				t.Fatalf("claims:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func claimsEqual(a, b *Claims) bool {
	return a.Issuer == b.Issuer && a.Subject == b.Subject && slices.Equal(a.Audience, b.Audience) &&
		a.ExpiresAt.Equal(b.ExpiresAt) && a.IssuedAt.Equal(b.IssuedAt) &&
		a.NotBefore.Equal(b.NotBefore) && a.AuthTime.Equal(b.AuthTime) &&
		a.ID == b.ID && a.SessionID == b.SessionID && slices.Equal(a.AMR, b.AMR) &&
		a.ACR == b.ACR && a.ClientID == b.ClientID
}

func TestVerifyAcceptedVariants(t *testing.T) {
	f := newFixture(t, func(c *VerifierConfig) { c.CacheSize = -1 })
	now := f.clock.Now()
	cases := map[string]string{
		"aud as a string":        f.token(t, f.ed, f.claims().with("aud", testAudience)),
		"typ AT+JWT":             signRaw(t, jose.EdDSA, f.ed.priv, header{"kid": "ed-1", "typ": "AT+JWT"}, mustJSON(t, f.claims())),
		"typ application/at+jwt": signRaw(t, jose.EdDSA, f.ed.priv, header{"kid": "ed-1", "typ": "application/at+jwt"}, mustJSON(t, f.claims())),
		"no nbf, amr, acr, auth_time": f.token(t, f.ed,
			f.claims().without("nbf").without("amr").without("acr").without("auth_time")),
		"unknown claims are ignored":   f.token(t, f.ed, f.claims().with("scope", "a b").with("cnf", map[string]any{"x": 1})),
		"exp within leeway":            f.token(t, f.ed, f.claims().with("exp", now.Add(-9*time.Second).Unix())),
		"nbf within leeway":            f.token(t, f.ed, f.claims().with("nbf", now.Add(9*time.Second).Unix())),
		"iat within leeway":            f.token(t, f.ed, f.claims().with("iat", now.Add(9*time.Second).Unix())),
		"fractional NumericDate":       f.token(t, f.ed, f.claims().with("exp", float64(now.Add(time.Minute).Unix())+0.5)),
		"exponent-form NumericDate":    f.token(t, f.ed, f.claims().with("iat", json1e9{})),
		"unknown header is ignored":    signRaw(t, jose.EdDSA, f.ed.priv, header{"kid": "ed-1", "typ": "at+jwt", "x-foo": 1}, mustJSON(t, f.claims())),
		"kid with printable specials":  tokenWithKid(t, f, "k-1_2.3~x"),
		"ES256 with its own key":       f.token(t, f.ec, f.claims()),
		"aud list containing audience": f.token(t, f.ed, f.claims().with("aud", []string{"x", testAudience})),
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := f.v.Verify(context.Background(), tok); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// json1e9 marshals as the JSON number 1e9 (2001-09-09).
type json1e9 struct{}

func (json1e9) MarshalJSON() ([]byte, error) { return []byte("1e9"), nil }

// tokenWithKid signs with f.ed under a different kid, which the fixture's
// key source is then taught.
func tokenWithKid(t *testing.T, f *fixture, kid string) string {
	t.Helper()
	pub := f.ed.pub
	pub.KeyID = kid
	static := f.keys.inner.(*StaticKeySet)
	static.keys[kid] = &pub
	return signRaw(t, jose.EdDSA, f.ed.priv, atHeader(kid), mustJSON(t, f.claims()))
}

func TestNewVerifierConfig(t *testing.T) {
	keys, _ := NewStaticKeySet()
	revs := &fakeRevocations{}
	valid := VerifierConfig{Issuer: testIssuer, Audience: testAudience, Keys: keys, Revocations: revs}
	bad := map[string]func(*VerifierConfig){
		"no issuer":        func(c *VerifierConfig) { c.Issuer = "" },
		"no audience":      func(c *VerifierConfig) { c.Audience = "" },
		"no key source":    func(c *VerifierConfig) { c.Keys = nil },
		"no revocations":   func(c *VerifierConfig) { c.Revocations = nil },
		"negative leeway":  func(c *VerifierConfig) { c.Leeway = -time.Second },
		"huge leeway":      func(c *VerifierConfig) { c.Leeway = time.Hour },
		"alg none":         func(c *VerifierConfig) { c.Algorithms = []string{"none"} },
		"alg HS256":        func(c *VerifierConfig) { c.Algorithms = []string{"EdDSA", "HS256"} },
		"alg RS256":        func(c *VerifierConfig) { c.Algorithms = []string{"RS256"} },
		"alg ES512":        func(c *VerifierConfig) { c.Algorithms = []string{"ES512"} },
		"alg PS256":        func(c *VerifierConfig) { c.Algorithms = []string{"PS256"} },
		"alg lowercase":    func(c *VerifierConfig) { c.Algorithms = []string{"eddsa"} },
		"alg empty string": func(c *VerifierConfig) { c.Algorithms = []string{""} },
	}
	for name, mod := range bad {
		t.Run(name, func(t *testing.T) {
			cfg := valid
			mod(&cfg)
			if _, err := NewVerifier(cfg); err == nil {
				t.Fatal("NewVerifier accepted the config")
			}
		})
	}
	v, err := NewVerifier(valid)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(v.algs, []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256}) || v.leeway != 10*time.Second || v.cache == nil || v.cache.max != 10_000 {
		t.Errorf("defaults: algs %v leeway %v cache %+v", v.algs, v.leeway, v.cache)
	}
}

func TestVerifierAlgorithmsNarrowing(t *testing.T) {
	f := newFixture(t, func(c *VerifierConfig) { c.Algorithms = []string{"EdDSA"} })
	if _, err := f.v.Verify(context.Background(), f.token(t, f.ed, f.claims())); err != nil {
		t.Fatal(err)
	}
	mustReject(t, f.v, f.token(t, f.ec, f.claims()), ErrInvalidToken)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func TestAttackAlgNone(t *testing.T) {
	f := newFixture(t)
	payload := b64(mustJSON(t, f.claims()))
	for _, alg := range []string{"none", "None", "NONE", "nOnE", ""} {
		hdr := b64(mustJSON(t, map[string]string{"alg": alg, "kid": "ed-1", "typ": "at+jwt"}))
		for _, sig := range []string{"", b64([]byte("garbage"))} {
			t.Run(alg+"/sig="+sig, func(t *testing.T) {
				mustReject(t, f.v, hdr+"."+payload+"."+sig, ErrInvalidToken)
			})
		}
	}
	if n := f.keys.calls(); n != 0 {
		t.Errorf("key source consulted %d times for unsigned tokens", n)
	}
}

// TestAttackHS256KeyConfusion signs HS256 tokens using the verifier's own
// public keys, in various encodings, as the HMAC secret.
func TestAttackHS256KeyConfusion(t *testing.T) {
	f := newFixture(t)
	edRaw := []byte(f.ed.pub.Key.(ed25519.PublicKey))
	ecPub := f.ec.pub.Key.(*ecdsa.PublicKey)
	ecRaw, err := ecPub.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	pemOf := func(pub any) []byte {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}
	secrets := map[string][]byte{
		"ed25519 raw": edRaw,
		"ed25519 PEM": pemOf(ed25519.PublicKey(edRaw)),
		"p256 SEC1":   ecRaw,
		"p256 PEM":    pemOf(ecPub),
	}
	minLen := map[jose.SignatureAlgorithm]int{jose.HS256: 32, jose.HS384: 48, jose.HS512: 64}
	direct := 0
	for name, secret := range secrets {
		for _, kid := range []string{"ed-1", "ec-1"} {
			for _, alg := range []jose.SignatureAlgorithm{jose.HS256, jose.HS384, jose.HS512} {
				if len(secret) < minLen[alg] {
					continue // go-jose refuses HMAC keys shorter than the hash
				}
				direct++
				t.Run(name+"/"+kid+"/"+string(alg), func(t *testing.T) {
					tok := signRaw(t, alg, secret, atHeader(kid), mustJSON(t, f.claims()))
					mustReject(t, f.v, tok, ErrInvalidToken)

					// Defence in depth: even if a parser let HS256 through,
					// the signature layer refuses the key for that alg.
					jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{alg})
					if err != nil {
						t.Fatal(err)
					}
					key, err := f.keys.Key(context.Background(), kid)
					if err != nil {
						t.Fatal(err)
					}
					if _, _, err := verifySignature(jws, key); err == nil {
						t.Fatal("verifySignature accepted an HMAC signature")
					}
				})
			}
		}
	}
	if n := f.keys.calls(); n != direct { // only the direct lookups above
		t.Errorf("Verify consulted the key source for HMAC tokens (%d calls)", n)
	}
}

func TestAttackUnknownKid(t *testing.T) {
	f := newFixture(t)
	other := newEd25519Key(t, "ed-2")
	err := mustReject(t, f.v, f.token(t, other, f.claims()), ErrInvalidToken)
	if !errors.Is(err, ErrUnknownKey) {
		t.Errorf("error %v does not wrap ErrUnknownKey", err)
	}
	// The attacker's key signing under a known kid fails the signature.
	forged := signRaw(t, jose.EdDSA, other.priv, atHeader("ed-1"), mustJSON(t, f.claims()))
	mustReject(t, f.v, forged, ErrInvalidToken)
}

// TestAttackPathLikeKid checks that malformed kids are refused before the key
// source is consulted, even with a key source that would answer anything.
func TestAttackPathLikeKid(t *testing.T) {
	f := newFixture(t)
	anything := &spyKeySource{inner: keySourceFunc(func(context.Context, string) (*jose.JSONWebKey, error) {
		k := f.ed.pub
		return &k, nil
	})}
	v, err := NewVerifier(VerifierConfig{Issuer: testIssuer, Audience: testAudience, Keys: anything, Revocations: f.revs, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	kids := []any{
		"../../etc/passwd", "/etc/passwd", `..\..\windows\win.ini`, "a/b", `a\b`, "..", "k..1",
		"", " ", "k 1", "k\x00", "k\n", "ké", strings.Repeat("a", 129), 42, nil, []string{"ed-1"},
	}
	for _, kid := range kids {
		h := header{"typ": "at+jwt"}
		if kid != nil {
			h["kid"] = kid
		}
		tok := signRaw(t, jose.EdDSA, f.ed.priv, h, mustJSON(t, f.claims()))
		mustReject(t, v, tok, ErrInvalidToken)
	}
	if n := anything.calls(); n != 0 {
		t.Fatalf("key source was asked for %d malformed kids: %q", n, anything.kids)
	}
	// The same permissive key source does answer a sane kid.
	if _, err := v.Verify(context.Background(), tokenWithKid(t, f, strings.Repeat("a", 128))); err != nil {
		t.Fatal(err)
	}
}

// TestAttackKeyURLAndEmbeddedKeyHeaders: tokens validly signed with the
// trusted key are still refused if they carry a header naming a key
// location or carrying a key.
func TestAttackKeyURLAndEmbeddedKeyHeaders(t *testing.T) {
	f := newFixture(t)
	attacker := newEd25519Key(t, "ed-1")
	cert := selfSignedCert(t, f.ed.priv)
	cases := map[string]any{
		"jku":      "https://attacker.example/jwks.json",
		"x5u":      "https://attacker.example/cert.pem",
		"jwk":      attacker.pub,
		"x5c":      []string{base64.StdEncoding.EncodeToString(cert)},
		"crit":     []string{"exp"},
		"b64":      true,
		"jwk-self": f.ed.pub, // even the trusted key itself is not accepted from the header
	}
	for name, val := range cases {
		t.Run(name, func(t *testing.T) {
			h := atHeader("ed-1")
			h[jose.HeaderKey(strings.TrimSuffix(name, "-self"))] = val
			tok := signRaw(t, jose.EdDSA, f.ed.priv, h, mustJSON(t, f.claims()))
			mustReject(t, f.v, tok, ErrInvalidToken)
		})
	}
}

func selfSignedCert(t *testing.T, key any) []byte {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "x"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Unix(4102444800, 0)}
	priv := key.(ed25519.PrivateKey)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestAttackEmbeddedAttackerJWK: the attacker signs with their own key and
// embeds it, hoping the verifier uses the header key.
func TestAttackEmbeddedAttackerJWK(t *testing.T) {
	f := newFixture(t)
	attacker := newEd25519Key(t, "evil")
	for name, h := range map[string]header{
		"with trusted kid": {"typ": "at+jwt", "kid": "ed-1", "jwk": attacker.pub},
		"without kid":      {"typ": "at+jwt", "jwk": attacker.pub},
		"with own kid":     {"typ": "at+jwt", "kid": "evil", "jwk": attacker.pub},
	} {
		t.Run(name, func(t *testing.T) {
			tok := signRaw(t, jose.EdDSA, attacker.priv, h, mustJSON(t, f.claims()))
			mustReject(t, f.v, tok, ErrInvalidToken)
		})
	}
	// go-jose's own EmbedJWK option, too.
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: attacker.priv},
		(&jose.SignerOptions{EmbedJWK: true}).WithType("at+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.Sign(mustJSON(t, f.claims()))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	mustReject(t, f.v, tok, ErrInvalidToken)
}

func TestAttackCritHeader(t *testing.T) {
	f := newFixture(t)
	for name, opts := range map[string]*jose.SignerOptions{
		"crit exp":          (&jose.SignerOptions{}).WithCritical("exp").WithHeader("exp", 1),
		"b64 false":         (&jose.SignerOptions{}).WithBase64(false),
		"crit empty":        (&jose.SignerOptions{}).WithHeader("crit", []string{}),
		"crit unknown name": (&jose.SignerOptions{}).WithCritical("urn:x"),
	} {
		t.Run(name, func(t *testing.T) {
			opts.WithType("at+jwt").WithHeader("kid", "ed-1")
			s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: f.ed.priv}, opts)
			if err != nil {
				t.Fatal(err)
			}
			obj, err := s.Sign(mustJSON(t, f.claims()))
			if err != nil {
				t.Fatal(err)
			}
			tok, err := obj.CompactSerialize()
			if err != nil {
				t.Fatal(err)
			}
			mustReject(t, f.v, tok, ErrInvalidToken)
		})
	}
}

func TestAttackTampered(t *testing.T) {
	f := newFixture(t)
	tok := f.token(t, f.ed, f.claims())
	parts := strings.Split(tok, ".")
	evil := b64(mustJSON(t, f.claims().with("sub", "usr_admin")))
	otherHdr := b64(mustJSON(t, header{"alg": "EdDSA", "kid": "ed-1", "typ": "at+jwt", "x": 1}))
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	flipped := slices.Clone(sig)
	flipped[10] ^= 1
	cases := map[string]string{
		"payload replaced":    parts[0] + "." + evil + "." + parts[2],
		"header replaced":     otherHdr + "." + parts[1] + "." + parts[2],
		"signature bit flip":  parts[0] + "." + parts[1] + "." + b64(flipped),
		"signature truncated": parts[0] + "." + parts[1] + "." + b64(sig[:63]),
		"signature extended":  parts[0] + "." + parts[1] + "." + b64(append(slices.Clone(sig), 0)),
		"signature empty":     parts[0] + "." + parts[1] + ".",
		"signature removed":   parts[0] + "." + parts[1],
		"extra segment":       tok + "." + parts[2],
		"JWE-shaped":          parts[0] + ".." + parts[1] + ".." + parts[2],
		"padding added":       tok + "==",
		"whitespace inside":   parts[0] + ". " + parts[1] + "." + parts[2],
		"leading whitespace":  " " + tok,
		"payload of other":    parts[0] + "." + b64(mustJSON(t, f.claims().with("sid", "ses_2"))) + "." + parts[2],
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) { mustReject(t, f.v, bad, ErrInvalidToken) })
	}
	if _, err := f.v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("the untampered token: %v", err)
	}
}

// TestAttackClaims covers time, issuer, audience and claim-type checks.
func TestAttackClaims(t *testing.T) {
	f := newFixture(t)
	now := f.clock.Now()
	c := f.claims()
	cases := map[string]claimSet{
		"expired":                 c.with("exp", now.Add(-11*time.Second).Unix()),
		"expired exactly":         c.with("exp", now.Add(-10*time.Second).Unix()),
		"nbf in future":           c.with("nbf", now.Add(11*time.Second).Unix()),
		"iat in future":           c.with("iat", now.Add(11*time.Second).Unix()),
		"wrong iss":               c.with("iss", "https://evil.example"),
		"iss trailing slash":      c.with("iss", testIssuer+"/"),
		"iss different case":      c.with("iss", strings.ToUpper(testIssuer)),
		"wrong aud":               c.with("aud", "api://other"),
		"aud list without ours":   c.with("aud", []string{"a", "b"}),
		"aud prefix":              c.with("aud", testAudience+"x"),
		"aud empty list":          c.with("aud", []string{}),
		"aud with empty entry":    c.with("aud", []any{testAudience, ""}),
		"aud with number entry":   c.with("aud", []any{testAudience, 1}),
		"aud number":              c.with("aud", 1),
		"aud null":                c.with("aud", nil),
		"missing iss":             c.without("iss"),
		"missing client_id":       c.without("client_id"),
		"missing sub":             c.without("sub"),
		"missing aud":             c.without("aud"),
		"missing exp":             c.without("exp"),
		"missing iat":             c.without("iat"),
		"missing jti":             c.without("jti"),
		"missing sid":             c.without("sid"),
		"empty sub":               c.with("sub", ""),
		"empty sid":               c.with("sid", ""),
		"exp as string":           c.with("exp", "9999999999"),
		"exp null":                c.with("exp", nil),
		"exp negative":            c.with("exp", -1),
		"exp bool":                c.with("exp", true),
		"exp absurdly large":      c.with("exp", 1e300),
		"iat as string":           c.with("iat", "0"),
		"nbf as object":           c.with("nbf", map[string]int{"x": 1}),
		"sub as number":           c.with("sub", 123),
		"sid null":                c.with("sid", nil),
		"sid as array":            c.with("sid", []string{"ses_1"}),
		"amr as string":           c.with("amr", "pwd"),
		"amr with number":         c.with("amr", []any{"pwd", 1}),
		"acr as number":           c.with("acr", 1),
		"client_id as bool":       c.with("client_id", false),
		"auth_time as string":     c.with("auth_time", "yesterday"),
		"uppercase ISS not iss":   c.without("iss").with("ISS", testIssuer),
		"uppercase Sid not sid":   c.without("sid").with("Sid", "ses_1"),
		"iss from wrong key case": c.with("Iss", "https://evil.example").without("iss"),
	}
	for name, claims := range cases {
		t.Run(name, func(t *testing.T) {
			mustReject(t, f.v, f.token(t, f.ed, claims), ErrInvalidToken)
		})
	}
}

// TestAttackMalformedClaimsJSON signs payloads that are not a clean JSON
// object, including duplicate claims a last-wins parser would read
// differently.
func TestAttackMalformedClaimsJSON(t *testing.T) {
	f := newFixture(t)
	valid := string(mustJSON(t, f.claims()))
	body := strings.TrimSuffix(strings.TrimPrefix(valid, "{"), "}")
	payloads := map[string]string{
		"duplicate sub":    `{"sub":"usr_admin",` + body + `}`,
		"duplicate iss":    `{` + body + `,"iss":"https://evil.example"}`,
		"duplicate aud":    `{"aud":"x",` + body + `}`,
		"duplicate sid":    `{"sid":"ses_other",` + body + `}`,
		"array":            `[` + valid + `]`,
		"string":           `"x"`,
		"null":             `null`,
		"empty":            ``,
		"trailing garbage": valid + `x`,
		"two objects":      valid + valid,
		"truncated":        valid[:len(valid)-1],
		"trailing comma":   `{` + body + `,}`,
		"bare key":         `{` + body + `,x:1}`,
		"single quotes":    `{` + body + `,'x':1}`,
	}
	for name, p := range payloads {
		t.Run(name, func(t *testing.T) {
			tok := signRaw(t, jose.EdDSA, f.ed.priv, atHeader("ed-1"), []byte(p))
			mustReject(t, f.v, tok, ErrInvalidToken)
		})
	}
}

func TestAttackTyp(t *testing.T) {
	f := newFixture(t)
	for _, typ := range []any{nil, "", "JWT", "jwt", "at+jwt ", " at+jwt", "application/jwt", "at+jwt;x", "dpop+jwt", "at+JWE", 1, []string{"at+jwt"}} {
		h := header{"kid": "ed-1"}
		if typ != nil {
			h["typ"] = typ
		}
		tok := signRaw(t, jose.EdDSA, f.ed.priv, h, mustJSON(t, f.claims()))
		mustReject(t, f.v, tok, ErrInvalidToken)
	}
}

// TestAttackKeyAlgMismatch: every key is pinned to one algorithm and one
// key type; a token whose alg does not match the key its kid names is
// refused before any signature check.
func TestAttackKeyAlgMismatch(t *testing.T) {
	f := newFixture(t)
	c := mustJSON(t, f.claims())
	edAsES256 := f.ed.pub // Ed25519 key that claims to be for ES256
	edAsES256.KeyID, edAsES256.Algorithm = "liar-ed", "ES256"
	ecAsEdDSA := f.ec.pub // P-256 key that claims to be for EdDSA
	ecAsEdDSA.KeyID, ecAsEdDSA.Algorithm = "liar-ec", "EdDSA"
	noAlg := f.ed.pub
	noAlg.KeyID, noAlg.Algorithm = "no-alg", ""
	encUse := f.ed.pub
	encUse.KeyID, encUse.Use = "enc-use", "enc"
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384AsES256 := jose.JSONWebKey{Key: &p384.PublicKey, KeyID: "p384", Algorithm: "ES256", Use: "sig"}
	edPriv := jose.JSONWebKey{Key: f.ed.priv, KeyID: "priv", Algorithm: "EdDSA", Use: "sig"}
	lax := map[string]*jose.JSONWebKey{ // a KeySource that does not validate
		"ed-1": &f.ed.pub, "ec-1": &f.ec.pub, "liar-ed": &edAsES256, "liar-ec": &ecAsEdDSA,
		"no-alg": &noAlg, "enc-use": &encUse, "p384": &p384AsES256, "priv": &edPriv,
	}
	v, err := NewVerifier(VerifierConfig{Issuer: testIssuer, Audience: testAudience, Now: f.clock.Now, Revocations: f.revs,
		Keys: keySourceFunc(func(_ context.Context, kid string) (*jose.JSONWebKey, error) {
			if k, ok := lax[kid]; ok {
				return k, nil
			}
			return nil, ErrUnknownKey
		})})
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"ES256 token, kid of Ed25519 key":         signRaw(t, jose.ES256, f.ec.priv, atHeader("ed-1"), c),
		"EdDSA token, kid of P-256 key":           signRaw(t, jose.EdDSA, f.ed.priv, atHeader("ec-1"), c),
		"ES256 token, Ed25519 key claiming ES256": signRaw(t, jose.ES256, f.ec.priv, atHeader("liar-ed"), c),
		"EdDSA token, P-256 key claiming EdDSA":   signRaw(t, jose.EdDSA, f.ed.priv, atHeader("liar-ec"), c),
		"key without alg":                         signRaw(t, jose.EdDSA, f.ed.priv, atHeader("no-alg"), c),
		"key with use enc":                        signRaw(t, jose.EdDSA, f.ed.priv, atHeader("enc-use"), c),
		"ES256 token, P-384 key claiming ES256":   signRaw(t, jose.ES256, f.ec.priv, atHeader("p384"), c),
		"private key from the key source":         signRaw(t, jose.EdDSA, f.ed.priv, atHeader("priv"), c),
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) { mustReject(t, v, tok, ErrInvalidToken) })
	}
	// Sanity: the lax source does work for honest keys.
	if _, err := v.Verify(context.Background(), f.token(t, f.ed, f.claims())); err != nil {
		t.Fatal(err)
	}
}

func TestAttackDisallowedAlgorithms(t *testing.T) {
	f := newFixture(t)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	c := mustJSON(t, f.claims())
	cases := map[jose.SignatureAlgorithm]any{
		jose.ES384: p384, jose.ES512: p521,
		jose.RS256: rsaKey, jose.RS512: rsaKey, jose.PS256: rsaKey,
	}
	for alg, key := range cases {
		t.Run(string(alg), func(t *testing.T) {
			// Under a kid the verifier knows, and under one it does not.
			for _, kid := range []string{"ed-1", "ec-1", "new"} {
				err := mustReject(t, f.v, signRaw(t, alg, key, atHeader(kid), c), ErrInvalidToken)
				if !strings.Contains(err.Error(), "algorithm not allowed") {
					t.Errorf("error %q: want it refused by the allowlist", err)
				}
			}
		})
	}
	if n := f.keys.calls(); n != 0 {
		t.Errorf("key source consulted %d times for disallowed algorithms", n)
	}
}

func TestAttackRevokedSession(t *testing.T) {
	f := newFixture(t)
	f.revs.revoke("ses_1")
	mustReject(t, f.v, f.token(t, f.ed, f.claims()), ErrRevoked)
	// Another session of the same user is unaffected.
	if _, err := f.v.Verify(context.Background(), f.token(t, f.ed, f.claims().with("sid", "ses_2"))); err != nil {
		t.Fatal(err)
	}
}

// TestAttackStaleRevocationFeed: a feed that has no snapshot, or has been
// silent too long, makes Verify fail closed with ErrRevocationStale.
func TestAttackStaleRevocationFeed(t *testing.T) {
	clock := newFakeClock()
	feed := NewRevocationFeed("http://127.0.0.1:1/unused", "id", "secret",
		RevocationFeedOptions{Now: clock.Now, Logger: discardLogger()})
	f := newFixture(t, func(c *VerifierConfig) { c.Revocations = feed; c.Now = clock.Now })
	f.clock = clock
	tok := f.token(t, f.ed, f.claims())

	err := mustReject(t, f.v, tok, ErrRevocationStale)
	if errors.Is(err, ErrInvalidToken) || errors.Is(err, ErrRevoked) {
		t.Errorf("stale error %v also matches a token error", err)
	}

	applyEvent(t, feed, "snapshot", `{"revoked":[],"heartbeat":5}`, true)
	if _, err := f.v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	clock.Advance(15*time.Second + time.Millisecond)
	mustReject(t, f.v, tok, ErrRevocationStale) // also on a cache hit
	applyEvent(t, feed, "heartbeat", `{"at":1}`, false)
	if _, err := f.v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
}

func applyEvent(t *testing.T, f *RevocationFeed, name, data string, first bool) {
	t.Helper()
	if _, err := f.apply(sseEvent{name: name, data: []byte(data)}, first); err != nil {
		t.Fatal(err)
	}
}

func TestRevocationCheckerErrorIsWrapped(t *testing.T) {
	f := newFixture(t)
	boom := errors.New("boom")
	f.revs.err = boom
	_, err := f.v.Verify(context.Background(), f.token(t, f.ed, f.claims()))
	if !errors.Is(err, boom) || errors.Is(err, ErrInvalidToken) {
		t.Fatalf("err = %v", err)
	}
}

func TestKeySourceFailureIsNotAnInvalidToken(t *testing.T) {
	f := newFixture(t, func(c *VerifierConfig) {
		c.Keys = keySourceFunc(func(context.Context, string) (*jose.JSONWebKey, error) {
			return nil, errors.New("JWKS unreachable")
		})
	})
	_, err := f.v.Verify(context.Background(), f.token(t, f.ed, f.claims()))
	if err == nil || errors.Is(err, ErrInvalidToken) {
		t.Fatalf("err = %v; want a non-token error", err)
	}
}

// TestAttackCacheHitSeesLaterRevocation: a token verified (and cached) before
// its session was revoked is refused afterwards.
func TestAttackCacheHitSeesLaterRevocation(t *testing.T) {
	f := newFixture(t)
	tok := f.token(t, f.ed, f.claims())
	for range 2 {
		if _, err := f.v.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	if f.v.cache.len() != 1 || f.keys.calls() != 2 {
		t.Fatalf("cache len %d, key lookups %d", f.v.cache.len(), f.keys.calls())
	}
	f.revs.revoke("ses_1")
	mustReject(t, f.v, tok, ErrRevoked)
	if f.revs.calls != 3 {
		t.Errorf("revocation consulted %d times, want on every Verify (3)", f.revs.calls)
	}
}

func TestAttackCachedTokenExpires(t *testing.T) {
	f := newFixture(t)
	tok := f.token(t, f.ed, f.claims())
	if _, err := f.v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(5*time.Minute + 10*time.Second)
	mustReject(t, f.v, tok, ErrInvalidToken)
	if f.v.cache.len() != 0 {
		t.Error("expired token still cached")
	}
}

// TestAttackCacheHitAfterKeyRemoved: once the signing key leaves the key
// set (or the kid is rebound to another key), cached tokens stop verifying.
func TestAttackCacheHitAfterKeyRemoved(t *testing.T) {
	f := newFixture(t)
	static := f.keys.inner.(*StaticKeySet)
	tok := f.token(t, f.ed, f.claims())
	if _, err := f.v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	other := newEd25519Key(t, "ed-1")
	static.keys["ed-1"] = &other.pub
	mustReject(t, f.v, tok, ErrInvalidToken)

	tok2 := f.token(t, f.ec, f.claims())
	if _, err := f.v.Verify(context.Background(), tok2); err != nil {
		t.Fatal(err)
	}
	delete(static.keys, "ec-1")
	mustReject(t, f.v, tok2, ErrUnknownKey)
}

func TestCacheReturnsCopies(t *testing.T) {
	f := newFixture(t)
	tok := f.token(t, f.ed, f.claims())
	c1, err := f.v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	c1.AMR[0], c1.Audience[0], c1.Subject = "x", "x", "x"
	c2, err := f.v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if c2.AMR[0] != "pwd" || c2.Audience[0] != testAudience || c2.Subject != "usr_123" {
		t.Fatalf("cache shared mutable state: %+v", c2)
	}
	c2.AMR[1] = "y"
	c3, _ := f.v.Verify(context.Background(), tok)
	if c3.AMR[1] != "otp" {
		t.Fatal("cache shared mutable state on a cache hit")
	}
}

func TestCacheBounded(t *testing.T) {
	f := newFixture(t, func(c *VerifierConfig) { c.CacheSize = 3 })
	for i := range 10 {
		tok := f.token(t, f.ed, f.claims().with("jti", "j"+string(rune('a'+i))))
		if _, err := f.v.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
		if n := f.v.cache.len(); n > 3 {
			t.Fatalf("cache holds %d entries, limit 3", n)
		}
	}
}

func TestCacheDisabled(t *testing.T) {
	f := newFixture(t, func(c *VerifierConfig) { c.CacheSize = -1 })
	if f.v.cache != nil {
		t.Fatal("cache not disabled")
	}
	tok := f.token(t, f.ed, f.claims())
	for range 2 {
		if _, err := f.v.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	if f.keys.calls() != 2 {
		t.Errorf("key lookups %d, want 2", f.keys.calls())
	}
}

// TestAttackTwoSignatures: a JWS JSON serialization with two signatures
// (one of them valid) is refused, as is any JSON serialization.
func TestAttackTwoSignatures(t *testing.T) {
	f := newFixture(t)
	attacker := newEd25519Key(t, "evil")
	s, err := jose.NewMultiSigner([]jose.SigningKey{
		{Algorithm: jose.EdDSA, Key: jose.JSONWebKey{Key: f.ed.priv, KeyID: "ed-1"}},
		{Algorithm: jose.EdDSA, Key: jose.JSONWebKey{Key: attacker.priv, KeyID: "evil"}},
	}, (&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.Sign(mustJSON(t, f.claims()))
	if err != nil {
		t.Fatal(err)
	}
	mustReject(t, f.v, obj.FullSerialize(), ErrInvalidToken)

	// The signature layer refuses it too, should a multi-signature object
	// ever reach it.
	parsed, err := jose.ParseSignedJSON(obj.FullSerialize(), []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := verifySignature(parsed, &f.ed.pub); err == nil {
		t.Fatal("verifySignature accepted two signatures")
	}
	if _, _, err := checkHeader(parsed); err == nil {
		t.Fatal("checkHeader accepted two signatures")
	}

	// A flattened JSON serialization of a valid single signature.
	one := f.token(t, f.ed, f.claims())
	p := strings.Split(one, ".")
	flat := `{"protected":"` + p[0] + `","payload":"` + p[1] + `","signature":"` + p[2] + `"}`
	mustReject(t, f.v, flat, ErrInvalidToken)
}

func TestAttackOversizedToken(t *testing.T) {
	f := newFixture(t)
	huge := f.token(t, f.ed, f.claims().with("pad", strings.Repeat("x", MaxTokenSize)))
	err := mustReject(t, f.v, huge, ErrInvalidToken)
	if !strings.Contains(err.Error(), "too large") {
		t.Errorf("err = %v", err)
	}
	mustReject(t, f.v, strings.Repeat("a", MaxTokenSize+1), ErrInvalidToken)
	mustReject(t, f.v, "", ErrInvalidToken)
	if n := f.keys.calls(); n != 0 {
		t.Errorf("key source consulted %d times", n)
	}
	// Just under the limit is fine.
	base := len(f.token(t, f.ed, f.claims().with("pad", "")))
	padLen := (MaxTokenSize-base)*3/4 - 2
	ok := f.token(t, f.ed, f.claims().with("pad", strings.Repeat("x", padLen)))
	if len(ok) > MaxTokenSize {
		t.Fatalf("test token is %d bytes", len(ok))
	}
	if _, err := f.v.Verify(context.Background(), ok); err != nil {
		t.Fatal(err)
	}
}

// TestErrorsDoNotEchoToken: errors may end up in logs; they must never
// contain the token or its parts.
func TestErrorsDoNotEchoToken(t *testing.T) {
	f := newFixture(t)
	tok := f.token(t, f.ed, f.claims().with("iss", "https://evil.example"))
	p := strings.Split(tok, ".")
	for _, bad := range []string{tok, p[0] + "." + p[1] + ".AAAA", "x" + tok, p[1] + "." + p[1] + "." + p[2]} {
		_, err := f.v.Verify(context.Background(), bad)
		if err == nil {
			t.Fatal("accepted")
		}
		for _, part := range append(p, "evil.example", "usr_123", "ses_1") {
			if strings.Contains(err.Error(), part) {
				t.Errorf("error %q contains %q", err, part)
			}
		}
	}
}

func TestStaticKeySet(t *testing.T) {
	ed := newEd25519Key(t, "ed")
	ec := newP256Key(t, "ec")
	priv := jose.JSONWebKey{Key: ed.priv, KeyID: "ed", Algorithm: "EdDSA"}
	s, err := NewStaticKeySet(priv, ec.pub)
	if err != nil {
		t.Fatal(err)
	}
	k, err := s.Key(context.Background(), "ed")
	if err != nil || !k.IsPublic() {
		t.Fatalf("private key not reduced to public: %v %v", k, err)
	}
	if _, err := s.Key(context.Background(), "nope"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("err = %v", err)
	}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	for name, keys := range map[string][]jose.JSONWebKey{
		"duplicate kid": {ed.pub, ed.pub},
		"no kid":        {{Key: ed.pub.Key, Algorithm: "EdDSA"}},
		"no alg":        {{Key: ed.pub.Key, KeyID: "x"}},
		"wrong alg":     {{Key: ed.pub.Key, KeyID: "x", Algorithm: "ES256"}},
		"RSA":           {{Key: &rsaKey.PublicKey, KeyID: "x", Algorithm: "RS256"}},
		"HMAC":          {{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "x", Algorithm: "HS256"}},
		"use enc":       {{Key: ed.pub.Key, KeyID: "x", Algorithm: "EdDSA", Use: "enc"}},
		"path kid":      {{Key: ed.pub.Key, KeyID: "../x", Algorithm: "EdDSA"}},
	} {
		if _, err := NewStaticKeySet(keys...); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestAttackTokenOutlivesIssuerLifetime: a token whose lifetime exceeds the
// issuer's current bound (issued before the TTL was lowered) is refused,
// since the revocation set forgets its session sooner than it expires.
func TestAttackTokenOutlivesIssuerLifetime(t *testing.T) {
	f := newFixture(t, func(c *VerifierConfig) { c.MaxTokenLifetime = 10 * time.Minute })
	now := f.clock.Now()
	long := f.claims().with("iat", now.Unix()).with("exp", now.Add(time.Hour).Unix())
	mustReject(t, f.v, f.token(t, f.ed, long), ErrInvalidToken)
	ok := f.claims().with("iat", now.Unix()).with("exp", now.Add(10*time.Minute).Unix())
	if _, err := f.v.Verify(context.Background(), f.token(t, f.ed, ok)); err != nil {
		t.Fatalf("a token within the bound: %v", err)
	}
}

// TestAttackNonCanonicalEncoding: one token must have one spelling. Flipped
// trailing bits or a line break would otherwise make a new cache entry
// (and a new string for any list keyed on tokens) per variant.
func TestAttackNonCanonicalEncoding(t *testing.T) {
	f := newFixture(t)
	tok := f.token(t, f.ed, f.claims())
	if _, err := f.v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	flip := func(seg string) string {
		// Change the last character to one with the same high bits but
		// non-zero trailing bits (unused by the decoded bytes).
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		last := strings.IndexByte(alphabet, seg[len(seg)-1])
		return seg[:len(seg)-1] + string(alphabet[last^1])
	}
	for name, variant := range map[string]string{
		"header trailing bits":    flip(parts[0]) + "." + parts[1] + "." + parts[2],
		"payload trailing bits":   parts[0] + "." + flip(parts[1]) + "." + parts[2],
		"signature trailing bits": parts[0] + "." + parts[1] + "." + flip(parts[2]),
		"line break":              parts[0] + "." + parts[1][:10] + "\n" + parts[1][10:] + "." + parts[2],
		"padding":                 parts[0] + "." + parts[1] + "." + parts[2] + "==",
		"four segments":           tok + ".x",
	} {
		if _, err := f.v.Verify(context.Background(), variant); err == nil {
			t.Errorf("%s: variant accepted", name)
		}
	}
}
