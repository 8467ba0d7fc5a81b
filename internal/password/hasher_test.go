package password

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/argon2"
)

// cheapParams keep tests fast. They are far below the OWASP floor, which
// only newHasher (not NewHasher) accepts.
var cheapParams = Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func testPepper(version int, fill byte) Pepper {
	return Pepper{Version: version, Key: bytes.Repeat([]byte{fill}, 32)}
}

// newTestHasher returns a Hasher with cheapParams and pepper version 1,
// after applying the given changes to its Config.
func newTestHasher(t testing.TB, changes ...func(*Config)) *Hasher {
	t.Helper()
	cfg := Config{Params: cheapParams, Peppers: []Pepper{testPepper(1, 'a')}}
	for _, change := range changes {
		change(&cfg)
	}
	h, err := newHasher(cfg)
	if err != nil {
		t.Fatalf("newHasher: %v", err)
	}
	return h
}

func mustHash(t testing.TB, h *Hasher, password string) string {
	t.Helper()
	encoded, err := h.Hash(context.Background(), password)
	if err != nil {
		t.Fatalf("Hash: %v", err)
	}
	return encoded
}

func mustVerify(t testing.TB, h *Hasher, password, encoded string) Result {
	t.Helper()
	res, err := h.Verify(context.Background(), password, encoded)
	if err != nil {
		t.Fatalf("Verify(%q): %v", encoded, err)
	}
	return res
}

func TestDefaultParams(t *testing.T) {
	want := Params{Memory: 19456, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
	if diff := cmp.Diff(want, DefaultParams()); diff != "" {
		t.Errorf("DefaultParams() mismatch (-want +got):\n%s", diff)
	}
	if err := DefaultParams().Validate(); err != nil {
		t.Errorf("DefaultParams().Validate() = %v", err)
	}
}

func TestParamsValidate(t *testing.T) {
	with := func(change func(*Params)) Params {
		p := DefaultParams()
		change(&p)
		return p
	}
	tests := []struct {
		name   string
		params Params
		ok     bool
	}{
		{"default", DefaultParams(), true},
		{"47104/1", with(func(p *Params) { p.Memory, p.Time = 47104, 1 }), true},
		{"12288/3", with(func(p *Params) { p.Memory, p.Time = 12288, 3 }), true},
		{"9216/4", with(func(p *Params) { p.Memory, p.Time = 9216, 4 }), true},
		{"7168/5", with(func(p *Params) { p.Memory, p.Time = 7168, 5 }), true},
		{"more memory and time", with(func(p *Params) { p.Memory, p.Time, p.Threads = 65536, 3, 4 }), true},
		{"1 GiB", with(func(p *Params) { p.Memory = 1 << 20 }), true},
		{"zero", Params{}, false},
		{"memory below floor", with(func(p *Params) { p.Memory = 19455 }), false},
		{"time 1 needs 47104", with(func(p *Params) { p.Memory, p.Time = 47103, 1 }), false},
		{"12287/3", with(func(p *Params) { p.Memory, p.Time = 12287, 3 }), false},
		{"7167/5", with(func(p *Params) { p.Memory, p.Time = 7167, 5 }), false},
		{"7168 with many passes", with(func(p *Params) { p.Memory, p.Time = 7167, 16 }), false},
		{"zero threads", with(func(p *Params) { p.Threads = 0 }), false},
		{"short salt", with(func(p *Params) { p.SaltLen = 15 }), false},
		{"short key", with(func(p *Params) { p.KeyLen = 15 }), false},
		{"memory above 1 GiB", with(func(p *Params) { p.Memory = 1<<20 + 1 }), false},
		{"too many passes", with(func(p *Params) { p.Time = 17 }), false},
		{"too many threads", with(func(p *Params) { p.Threads = 17 }), false},
		{"huge salt", with(func(p *Params) { p.SaltLen = 65 }), false},
		{"huge key", with(func(p *Params) { p.KeyLen = 65 }), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.params.Validate()
			if (err == nil) != tt.ok {
				t.Errorf("Validate(%+v) = %v, want ok=%v", tt.params, err, tt.ok)
			}
		})
	}
}

func TestNewHasherRefusesBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"params below OWASP floor", Config{Params: cheapParams, Peppers: []Pepper{testPepper(1, 'a')}}},
		{"no pepper", Config{Params: DefaultParams()}},
		{"pepper version 0", Config{Params: DefaultParams(), Peppers: []Pepper{testPepper(0, 'a')}}},
		{"short pepper key", Config{Params: DefaultParams(), Peppers: []Pepper{{Version: 1, Key: make([]byte, 31)}}}},
		{"duplicate pepper version", Config{Params: DefaultParams(), Peppers: []Pepper{testPepper(1, 'a'), testPepper(1, 'b')}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if h, err := NewHasher(tt.cfg); err == nil {
				t.Errorf("NewHasher() = %v, nil; want an error", h)
			}
		})
	}
	if _, err := NewHasher(Config{Params: DefaultParams(), Peppers: []Pepper{testPepper(1, 'a')}}); err != nil {
		t.Errorf("NewHasher(valid config) = %v", err)
	}
}

func TestNewHasherCopiesPepperKeys(t *testing.T) {
	pepper := testPepper(1, 'a')
	h := newTestHasher(t, func(c *Config) { c.Peppers = []Pepper{pepper} })
	encoded := mustHash(t, h, "a password that is long enough")
	pepper.Key[0] ^= 1
	if res := mustVerify(t, h, "a password that is long enough", encoded); !res.OK {
		t.Error("changing the caller's pepper slice after NewHasher changed the Hasher")
	}
}

var phcPattern = regexp.MustCompile(`^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+),pv=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$`)

func TestHashDefaultParams(t *testing.T) {
	h, err := NewHasher(Config{Params: DefaultParams(), Peppers: []Pepper{testPepper(3, 'a')}})
	if err != nil {
		t.Fatal(err)
	}
	const password = "correct horse battery staple"
	encoded := mustHash(t, h, password)

	m := phcPattern.FindStringSubmatch(encoded)
	if m == nil {
		t.Fatalf("Hash() = %q, not a PHC string of the documented form", encoded)
	}
	num := func(i int) int {
		n, err := strconv.Atoi(m[i])
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if mem, tm, p, pv := num(1), num(2), num(3), num(4); mem < 19456 || tm < 2 || p != 1 || pv != 3 {
		t.Errorf("Hash() = %q: m=%d t=%d p=%d pv=%d, want m>=19456 t>=2 p=1 pv=3", encoded, mem, tm, p, pv)
	}
	salt, err := base64.RawStdEncoding.DecodeString(m[5])
	if err != nil || len(salt) < 16 {
		t.Errorf("salt %q: %d bytes, %v; want >= 16 bytes of unpadded standard base64", m[5], len(salt), err)
	}
	key, err := base64.RawStdEncoding.DecodeString(m[6])
	if err != nil || len(key) != 32 {
		t.Errorf("key %q: %d bytes, %v; want 32 bytes of unpadded standard base64", m[6], len(key), err)
	}

	// The key is argon2id over HMAC-SHA256(pepper, password), computed here
	// without the package's code.
	want := argon2.IDKey(hmacSHA256(bytes.Repeat([]byte{'a'}, 32), []byte(password)), salt, 2, 19456, 1, 32)
	if !bytes.Equal(key, want) {
		t.Error("hash is not argon2id(HMAC-SHA256(pepper, password)) with the encoded parameters")
	}

	if res := mustVerify(t, h, password, encoded); res != (Result{OK: true}) {
		t.Errorf("Verify(right password) = %+v, want OK without rehash", res)
	}
	if res := mustVerify(t, h, password+"!", encoded); res.OK {
		t.Error("Verify(wrong password) = OK")
	}
}

func TestHashVerifyRoundTrip(t *testing.T) {
	h := newTestHasher(t)
	for _, password := range []string{
		"correct horse battery staple",
		"",
		" ",
		"パスワードは長いほうがいいです",
		"🔑🔑🔑🔑🔑🔑🔑🔑🔑🔑🔑🔑🔑🔑🔑",
		strings.Repeat("x", 4096),
		"with\x00nul",
	} {
		encoded := mustHash(t, h, password)
		if res := mustVerify(t, h, password, encoded); res != (Result{OK: true}) {
			t.Errorf("Verify(Hash(%.20q)) = %+v, want OK without rehash", password, res)
		}
	}
}

func TestAttackHashUsesUniqueSalt(t *testing.T) {
	h := newTestHasher(t)
	seen := map[string]bool{}
	for range 20 {
		encoded := mustHash(t, h, "same password every time")
		salt := strings.Split(encoded, "$")[4]
		if seen[salt] {
			t.Fatalf("salt %s repeated", salt)
		}
		seen[salt] = true
	}
}

func TestAttackWrongPasswordFails(t *testing.T) {
	long := strings.Repeat("0123456789", 8) // 80 bytes, past bcrypt's 72
	tests := []struct {
		name, password, attempt string
	}{
		{"different", "correct horse battery staple", "Tr0ub4dor&3 is not it"},
		{"last char differs", "correct horse battery staple", "correct horse battery staplf"},
		{"case differs", "correct horse battery staple", "Correct horse battery staple"},
		{"all upper case", "correct horse battery staple", "CORRECT HORSE BATTERY STAPLE"},
		{"prefix", "correct horse battery staple", "correct horse battery stapl"},
		{"extension", "correct horse battery staple", "correct horse battery staples"},
		{"empty attempt", "correct horse battery staple", ""},
		{"trailing space", "correct horse battery staple", "correct horse battery staple "},
		{"differs after byte 72", long + "abc", long + "abd"},
		{"truncated at byte 72", long + "abc", long[:72]},
		{"nul byte", "correct horse\x00", "correct horse"},
	}
	h := newTestHasher(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			encoded := mustHash(t, h, tt.password)
			if res := mustVerify(t, h, tt.attempt, encoded); res.OK {
				t.Errorf("Verify(%q) against hash of %q = OK", tt.attempt, tt.password)
			}
			if res := mustVerify(t, h, tt.password, encoded); !res.OK {
				t.Errorf("Verify(%q) against its own hash failed", tt.password)
			}
		})
	}
}

func TestNFKCEquivalentPasswordsVerify(t *testing.T) {
	tests := []struct {
		name, set, login string
	}{
		{"precomposed then decomposed", "caf\u00e9 au lait, s'il vous plaît", "cafe\u0301 au lait, s'il vous plaît"},
		{"decomposed then precomposed", "cafe\u0301 au lait, s'il vous plaît", "caf\u00e9 au lait, s'il vous plaît"},
		{"compatibility ligature", "\ufb01sh and chips every friday", "fish and chips every friday"},
		{"fullwidth", "ｐａｓｓｐｈｒａｓｅ ｏｆ ｍｉｎｅ", "passphrase of mine"},
	}
	h := newTestHasher(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if res := mustVerify(t, h, tt.login, mustHash(t, h, tt.set)); !res.OK {
				t.Errorf("Verify(%q) against hash of %q failed", tt.login, tt.set)
			}
		})
	}
}

func TestNeedsRehash(t *testing.T) {
	const password = "correct horse battery staple"
	oldPepper := newTestHasher(t, func(c *Config) { c.Peppers = []Pepper{testPepper(1, 'a')} })
	rotated := newTestHasher(t, func(c *Config) { c.Peppers = []Pepper{testPepper(1, 'a'), testPepper(2, 'b')} })
	tests := []struct {
		name   string
		hashBy *Hasher
		want   Result
	}{
		{"current", rotated, Result{OK: true}},
		{"older pepper version", oldPepper, Result{OK: true, NeedsRehash: true}},
		{"other memory", newTestHasher(t, func(c *Config) { c.Params.Memory = 128; c.Peppers = rotated.testPeppers() }), Result{OK: true, NeedsRehash: true}},
		{"other time", newTestHasher(t, func(c *Config) { c.Params.Time = 2; c.Peppers = rotated.testPeppers() }), Result{OK: true, NeedsRehash: true}},
		{"other threads", newTestHasher(t, func(c *Config) { c.Params.Threads = 2; c.Peppers = rotated.testPeppers() }), Result{OK: true, NeedsRehash: true}},
		{"other salt length", newTestHasher(t, func(c *Config) { c.Params.SaltLen = 24; c.Peppers = rotated.testPeppers() }), Result{OK: true, NeedsRehash: true}},
		{"other key length", newTestHasher(t, func(c *Config) { c.Params.KeyLen = 16; c.Peppers = rotated.testPeppers() }), Result{OK: true, NeedsRehash: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			encoded := mustHash(t, tt.hashBy, password)
			if got := mustVerify(t, rotated, password, encoded); got != tt.want {
				t.Errorf("Verify(%s) = %+v, want %+v", encoded, got, tt.want)
			}
			if got := mustVerify(t, rotated, "wrong password", encoded); got != (Result{}) {
				t.Errorf("Verify(wrong password) = %+v, want zero Result", got)
			}
		})
	}
}

// testPeppers returns h's peppers as a Config would list them.
func (h *Hasher) testPeppers() []Pepper {
	var peppers []Pepper
	for v, key := range h.peppers {
		peppers = append(peppers, Pepper{Version: v, Key: key})
	}
	return peppers
}

func TestAttackUnknownPepperVersion(t *testing.T) {
	newer := newTestHasher(t, func(c *Config) { c.Peppers = []Pepper{testPepper(1, 'a'), testPepper(2, 'b')} })
	older := newTestHasher(t, func(c *Config) { c.Peppers = []Pepper{testPepper(1, 'a')} })
	encoded := mustHash(t, newer, "correct horse battery staple")
	res, err := older.Verify(context.Background(), "correct horse battery staple", encoded)
	if !errors.Is(err, ErrUnknownPepper) || res.OK {
		t.Errorf("Verify(hash with pv=2) on a Hasher with pepper 1 only = %+v, %v; want ErrUnknownPepper", res, err)
	}
}

func TestAttackDatabaseDumpAloneCannotVerify(t *testing.T) {
	// The attacker has the hash and guesses the right password, but not the
	// pepper key: a Hasher with the same version and another key stands in.
	victim := newTestHasher(t, func(c *Config) { c.Peppers = []Pepper{testPepper(1, 'a')} })
	attacker := newTestHasher(t, func(c *Config) { c.Peppers = []Pepper{testPepper(1, 'z')} })
	const password = "correct horse battery staple"
	encoded := mustHash(t, victim, password)
	if res := mustVerify(t, attacker, password, encoded); res.OK {
		t.Error("a Hasher with another pepper key verified the right password")
	}
	// Nor is the hash plain argon2id of the password.
	if res := mustVerify(t, attacker, password, strings.Replace(encoded, ",pv=1", "", 1)); res.OK {
		t.Error("the hash without pv verified as unpeppered argon2id")
	}
}

func TestAttackTamperedHashFails(t *testing.T) {
	h := newTestHasher(t)
	const password = "correct horse battery staple"
	encoded := mustHash(t, h, password)
	fields := strings.Split(encoded, "$")
	decode := func(b64 string) []byte {
		raw, err := base64.RawStdEncoding.DecodeString(b64)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	flip := func(b64 string) string {
		raw := decode(b64)
		raw[0] ^= 1
		return base64.RawStdEncoding.EncodeToString(raw)
	}
	truncated := base64.RawStdEncoding.EncodeToString(decode(fields[5])[:16])
	tests := []struct {
		name    string
		encoded string
	}{
		{"key bit flipped", strings.Join([]string{"", fields[1], fields[2], fields[3], fields[4], flip(fields[5])}, "$")},
		{"salt bit flipped", strings.Join([]string{"", fields[1], fields[2], fields[3], flip(fields[4]), fields[5]}, "$")},
		{"time changed", strings.Replace(encoded, ",t=1,", ",t=2,", 1)},
		{"memory changed", strings.Replace(encoded, "m=64,", "m=72,", 1)},
		{"key truncated to 16 bytes", strings.Join([]string{"", fields[1], fields[2], fields[3], fields[4], truncated}, "$")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.encoded == encoded {
				t.Fatal("tampering did not change the hash")
			}
			if res := mustVerify(t, h, password, tt.encoded); res.OK {
				t.Errorf("Verify(%s) = OK", tt.encoded)
			}
		})
	}
}

func TestAttackMalformedHash(t *testing.T) {
	h := newTestHasher(t)
	valid := mustHash(t, h, "correct horse battery staple")
	fields := strings.Split(valid, "$")
	salt, key := fields[4], fields[5]
	peppered := func(params string) string { return "$argon2id$v=19$" + params + "$" + salt + "$" + key }
	tests := []struct {
		name    string
		encoded string
	}{
		{"empty", ""},
		{"junk", "junk"},
		{"dollar only", "$"},
		{"identifier only", "$argon2id$"},
		{"plaintext", "correct horse battery staple"},
		{"too long", valid + strings.Repeat("A", 512)},
		{"padded base64", valid + "="},
		{"non-canonical base64", valid[:len(valid)-1] + string(b64Alphabet[strings.IndexByte(b64Alphabet, valid[len(valid)-1])|1])},
		{"extra field", valid + "$extra"},
		{"wrong version", strings.Replace(valid, "v=19", "v=16", 1)},
		{"missing version", strings.Replace(valid, "v=19$", "", 1)},
		{"pv first", peppered("pv=1,m=64,t=1,p=1")},
		{"pv zero", peppered("m=64,t=1,p=1,pv=0")},
		{"pv negative", peppered("m=64,t=1,p=1,pv=-1")},
		{"pv empty", peppered("m=64,t=1,p=1,pv=")},
		{"pv overflow", peppered("m=64,t=1,p=1,pv=99999999999")},
		{"leading zero", peppered("m=064,t=1,p=1,pv=1")},
		{"plus sign", peppered("m=+64,t=1,p=1,pv=1")},
		{"duplicate parameter", peppered("m=64,m=64,t=1,p=1,pv=1")},
		{"time zero", peppered("m=64,t=0,p=1,pv=1")},
		{"threads zero", peppered("m=64,t=1,p=0,pv=1")},
		{"threads 256 would wrap to 0 as uint8", peppered("m=4096,t=1,p=256,pv=1")},
		{"threads 257 would wrap to 1 as uint8", peppered("m=4096,t=1,p=257,pv=1")},
		{"memory 4 GiB", peppered("m=4194304,t=1,p=1,pv=1")},
		{"memory overflow", peppered("m=4294967296,t=1,p=1,pv=1")},
		{"time 1000", peppered("m=64,t=1000,p=1,pv=1")},
		{"empty key", "$argon2id$v=19$m=64,t=1,p=1,pv=1$" + salt + "$"},
		{"short key", "$argon2id$v=19$m=64,t=1,p=1,pv=1$" + salt + "$AAAA"},
		{"short salt", "$argon2id$v=19$m=64,t=1,p=1,pv=1$AAAA$" + key},
		{"argon2d", "$argon2d$v=19$m=4096,t=2,p=1$" + salt + "$" + key},
		{"md5crypt", "$1$saltsalt$2vnaRpHa6Jxjz5n83ok8Z0"},
		{"sha512crypt", "$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/"},
		{"LDAP SSHA", "{SSHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="},
		{"plaintext scheme", "$plaintext$correct horse battery staple"},
		{"bcrypt 2x", "$2x$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := h.Verify(context.Background(), "correct horse battery staple", tt.encoded)
			if !errors.Is(err, ErrMalformedHash) || res.OK {
				t.Errorf("Verify(%.60q) = %+v, %v; want ErrMalformedHash", tt.encoded, res, err)
			}
			if err := ValidateImported(tt.encoded); !errors.Is(err, ErrMalformedHash) {
				t.Errorf("ValidateImported(%.60q) = %v; want ErrMalformedHash", tt.encoded, err)
			}
		})
	}
	if err := ValidateImported(valid); err != nil {
		t.Errorf("ValidateImported(own hash) = %v", err)
	}
}

const b64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

func hmacSHA256(key, message []byte) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write(message)
	return mac.Sum(nil)
}

// within runs f and fails the test if it does not return within d, so that
// a broken concurrency bound fails instead of hanging.
func within(t *testing.T, d time.Duration, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("call did not return within %v", d)
		return nil
	}
}

// blockingIDKey replaces h.idKey with one that reports each call on entered
// and then waits for a value on proceed.
func blockingIDKey(h *Hasher) (entered chan struct{}, proceed chan struct{}) {
	entered, proceed = make(chan struct{}), make(chan struct{})
	idKey := h.idKey
	h.idKey = func(password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte {
		entered <- struct{}{}
		<-proceed
		return idKey(password, salt, time, memory, threads, keyLen)
	}
	return entered, proceed
}

func TestAttackOverloadRefusesWhenAllSlotsBusy(t *testing.T) {
	h := newTestHasher(t, func(c *Config) { c.MaxConcurrent = 1; c.QueueTimeout = 20 * time.Millisecond })
	encoded := mustHash(t, h, "correct horse battery staple")
	bcryptHash := bcryptFixture(t, "correct horse battery staple")
	entered, proceed := blockingIDKey(h)

	done := make(chan error)
	go func() {
		_, err := h.Hash(context.Background(), "holds the only slot")
		done <- err
	}()
	<-entered

	ctx := context.Background()
	calls := map[string]func() error{
		"Hash":            func() error { _, err := h.Hash(ctx, "another password"); return err },
		"Verify":          func() error { _, err := h.Verify(ctx, "correct horse battery staple", encoded); return err },
		"Verify imported": func() error { _, err := h.Verify(ctx, "correct horse battery staple", bcryptHash); return err },
		"VerifyDummy":     func() error { return h.VerifyDummy(ctx, "correct horse battery staple") },
	}
	for name, call := range calls {
		start := time.Now()
		err := within(t, 5*time.Second, call)
		if !errors.Is(err, ErrOverloaded) {
			t.Errorf("%s while the only slot is busy = %v, want ErrOverloaded", name, err)
		}
		if waited := time.Since(start); waited < 20*time.Millisecond || waited > 2*time.Second {
			t.Errorf("%s waited %v for a slot, want about QueueTimeout (20ms)", name, waited)
		}
	}

	proceed <- struct{}{}
	if err := <-done; err != nil {
		t.Errorf("Hash holding the slot: %v", err)
	}
	// The slot is free again.
	h.idKey = argon2.IDKey
	if _, err := h.Hash(ctx, "after release"); err != nil {
		t.Errorf("Hash after the slot was released: %v", err)
	}
}

func TestAttackOverloadWaitsForSlot(t *testing.T) {
	h := newTestHasher(t, func(c *Config) { c.MaxConcurrent = 1; c.QueueTimeout = 10 * time.Second })
	entered, proceed := blockingIDKey(h)
	results := make(chan error)
	for range 2 {
		go func() {
			_, err := h.Hash(context.Background(), "queued password")
			results <- err
		}()
	}
	<-entered
	select {
	case <-entered:
		t.Fatal("two computations ran at once with MaxConcurrent=1")
	case <-time.After(50 * time.Millisecond):
	}
	proceed <- struct{}{}
	<-entered // the queued caller got the slot
	proceed <- struct{}{}
	for range 2 {
		if err := <-results; err != nil {
			t.Errorf("queued Hash: %v", err)
		}
	}
}

func TestAttackOverloadCanceledContext(t *testing.T) {
	h := newTestHasher(t)
	encoded := mustHash(t, h, "correct horse battery staple")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, hashErr := h.Hash(ctx, "correct horse battery staple")
	_, verifyErr := h.Verify(ctx, "correct horse battery staple", encoded)
	dummyErr := h.VerifyDummy(ctx, "correct horse battery staple")
	for name, err := range map[string]error{"Hash": hashErr, "Verify": verifyErr, "VerifyDummy": dummyErr} {
		if !errors.Is(err, ErrOverloaded) || !errors.Is(err, context.Canceled) {
			t.Errorf("%s(canceled ctx) = %v, want ErrOverloaded wrapping context.Canceled", name, err)
		}
	}

	// A context canceled while waiting for a slot.
	h = newTestHasher(t, func(c *Config) { c.MaxConcurrent = 1; c.QueueTimeout = time.Minute })
	entered, proceed := blockingIDKey(h)
	go h.Hash(context.Background(), "holds the only slot")
	<-entered
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := within(t, 5*time.Second, func() error { _, err := h.Hash(ctx, "waits"); return err })
	if !errors.Is(err, ErrOverloaded) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Hash(ctx ending while waiting) = %v, want ErrOverloaded wrapping context.DeadlineExceeded", err)
	}
	proceed <- struct{}{}
}

func TestAttackConcurrencyBoundNeverExceeded(t *testing.T) {
	const limit, callers = 3, 50
	h := newTestHasher(t, func(c *Config) { c.MaxConcurrent = limit; c.QueueTimeout = time.Minute })
	encoded := mustHash(t, h, "correct horse battery staple")
	var inFlight, peak atomic.Int32
	idKey := h.idKey
	h.idKey = func(password, salt []byte, passes, memory uint32, threads uint8, keyLen uint32) []byte {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(time.Millisecond)
		return idKey(password, salt, passes, memory, threads, keyLen)
	}

	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for i := range callers {
		wg.Go(func() {
			var err error
			switch i % 3 {
			case 0:
				_, err = h.Hash(context.Background(), fmt.Sprint("password number ", i))
			case 1:
				_, err = h.Verify(context.Background(), "correct horse battery staple", encoded)
			default:
				err = h.VerifyDummy(context.Background(), "no such user")
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("call failed: %v", err)
		}
	}
	if got := peak.Load(); got > limit || got < 2 {
		t.Errorf("peak concurrent argon2 computations = %d, want 2..%d", got, limit)
	}
}

func TestVerifyDummyDoesTheWorkOfVerify(t *testing.T) {
	h := newTestHasher(t, func(c *Config) { c.Peppers = []Pepper{testPepper(1, 'a'), testPepper(7, 'b')} })
	type call struct {
		Input           string // HMAC-SHA256(pepper, NFKC(password))
		SaltLen, KeyLen int
		Time, Memory    uint32
		Threads         uint8
	}
	var calls []call
	idKey := h.idKey
	h.idKey = func(password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte {
		calls = append(calls, call{string(password), len(salt), int(keyLen), time, memory, threads})
		return idKey(password, salt, time, memory, threads, keyLen)
	}
	const password = "correct horse battery staple"
	encoded := mustHash(t, h, password)
	calls = nil
	mustVerify(t, h, password, encoded)
	if err := h.VerifyDummy(context.Background(), password); err != nil {
		t.Fatalf("VerifyDummy: %v", err)
	}
	if len(calls) != 2 {
		t.Fatalf("Verify and VerifyDummy ran argon2id %d times, want once each", len(calls))
	}
	// Both run argon2id with the current parameters over the HMAC with the
	// current pepper.
	if diff := cmp.Diff(calls[0], calls[1]); diff != "" {
		t.Errorf("VerifyDummy's argon2id call differs from Verify's (-verify +dummy):\n%s", diff)
	}
}

func TestVerifyDummyTakesAsLongAsVerify(t *testing.T) {
	if testing.Short() {
		t.Skip("times DefaultParams hashes")
	}
	h, err := NewHasher(Config{Params: DefaultParams(), Peppers: []Pepper{testPepper(1, 'a')}})
	if err != nil {
		t.Fatal(err)
	}
	const password = "correct horse battery staple"
	encoded := mustHash(t, h, password)
	var verify, dummy time.Duration
	for range 5 {
		start := time.Now()
		mustVerify(t, h, "wrong password guess", encoded)
		verify += time.Since(start)
		start = time.Now()
		if err := h.VerifyDummy(context.Background(), "wrong password guess"); err != nil {
			t.Fatal(err)
		}
		dummy += time.Since(start)
	}
	// Coarse on purpose: it catches a VerifyDummy that skips argon2id, not
	// small differences.
	if dummy < verify/2 {
		t.Errorf("VerifyDummy took %v over 5 runs, Verify %v; want at least half", dummy, verify)
	}
}
