package password

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/go-crypt/crypt/algorithm"
	"golang.org/x/crypto/argon2"
	"golang.org/x/text/unicode/norm"
)

var (
	// ErrOverloaded is returned when no hashing slot became free within
	// Config.QueueTimeout, or the context ended while waiting for one.
	ErrOverloaded = errors.New("password: too many concurrent password hashes")
	// ErrUnknownPepper is returned by Verify for a hash whose pepper version
	// is not configured.
	ErrUnknownPepper = errors.New("password: hash uses an unknown pepper version")
	// ErrMalformedHash is returned for an encoded hash that cannot be parsed,
	// is in an unsupported format or has out-of-range parameters.
	ErrMalformedHash = errors.New("password: malformed hash")
)

// Params are argon2id cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32
	Threads uint8
	SaltLen uint32 // bytes
	KeyLen  uint32 // bytes
}

// DefaultParams returns the argon2id parameters recommended by the OWASP
// Password Storage Cheat Sheet: m=19456 KiB, t=2, p=1, with a 16-byte salt
// and a 32-byte key.
func DefaultParams() Params {
	return Params{Memory: 19456, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
}

// owaspFloor lists the OWASP minimum argon2id configurations, which are of
// equal strength: more passes allow less memory.
var owaspFloor = []struct{ memory, time uint32 }{
	{47104, 1}, {19456, 2}, {12288, 3}, {9216, 4}, {7168, 5},
}

// Validate refuses parameters below the OWASP floor (m >= 19456 KiB and t >= 2,
// or one of the equal-strength pairs m=47104/t=1, 12288/3, 9216/4, 7168/5;
// salt and key at least 16 bytes) and parameters above the limits that Verify
// enforces on every hash (see ValidateImported).
func (p Params) Validate() error {
	if err := checkArgon2(p.Memory, p.Time, uint32(p.Threads), int(p.SaltLen), int(p.KeyLen)); err != nil {
		return fmt.Errorf("password: argon2id parameters: %w", err)
	}
	aboveFloor := slices.ContainsFunc(owaspFloor, func(f struct{ memory, time uint32 }) bool {
		return p.Memory >= f.memory && p.Time >= f.time
	})
	switch {
	case !aboveFloor:
		return fmt.Errorf("password: argon2id m=%d KiB, t=%d is below the OWASP minimum (m=19456 KiB with t=2, or m=47104/t=1, 12288/3, 9216/4, 7168/5)", p.Memory, p.Time)
	case p.SaltLen < 16:
		return fmt.Errorf("password: argon2id salt of %d bytes is below the minimum of 16", p.SaltLen)
	case p.KeyLen < 16:
		return fmt.Errorf("password: argon2id key of %d bytes is below the minimum of 16", p.KeyLen)
	}
	return nil
}

// Pepper is a versioned server-side secret mixed into every hash.
type Pepper struct {
	Version int    // >= 1
	Key     []byte // >= 32 bytes
}

// Config configures a Hasher.
type Config struct {
	Params Params
	// Peppers holds at least one pepper. The highest Version is used for
	// new hashes; older ones still verify and report NeedsRehash.
	Peppers []Pepper
	// MaxConcurrent bounds simultaneous argon2 computations, since their
	// memory is the denial-of-service surface. <= 0 means runtime.NumCPU().
	MaxConcurrent int
	// QueueTimeout is how long a caller may wait for a slot. <= 0 means 5s.
	QueueTimeout time.Duration
}

// Hasher hashes and verifies passwords. It is safe for concurrent use.
type Hasher struct {
	params       Params
	peppers      map[int][]byte
	current      int // version of the pepper used for new hashes
	slots        chan struct{}
	queueTimeout time.Duration
	dummy        phc // a hash with current parameters that VerifyDummy checks against
	// idKey is argon2.IDKey; tests replace it to observe the computations.
	idKey func(password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte
}

// NewHasher returns a Hasher for cfg. It refuses parameters below the OWASP
// floor, a missing pepper, duplicate pepper versions and short pepper keys.
func NewHasher(cfg Config) (*Hasher, error) {
	if err := cfg.Params.Validate(); err != nil {
		return nil, err
	}
	return newHasher(cfg)
}

// newHasher is NewHasher without Params.Validate, so that tests can hash
// with cheap parameters.
func newHasher(cfg Config) (*Hasher, error) {
	if len(cfg.Peppers) == 0 {
		return nil, errors.New("password: no pepper configured")
	}
	peppers := make(map[int][]byte, len(cfg.Peppers))
	current := 0
	for _, p := range cfg.Peppers {
		if p.Version < 1 {
			return nil, fmt.Errorf("password: pepper version %d is below 1", p.Version)
		}
		if len(p.Key) < 32 {
			return nil, fmt.Errorf("password: pepper version %d has a %d-byte key, want at least 32 bytes", p.Version, len(p.Key))
		}
		if _, dup := peppers[p.Version]; dup {
			return nil, fmt.Errorf("password: pepper version %d is configured twice", p.Version)
		}
		peppers[p.Version] = bytes.Clone(p.Key)
		current = max(current, p.Version)
	}
	maxConcurrent := cfg.MaxConcurrent
	if maxConcurrent <= 0 {
		maxConcurrent = runtime.NumCPU()
	}
	queueTimeout := cfg.QueueTimeout
	if queueTimeout <= 0 {
		queueTimeout = 5 * time.Second
	}
	h := &Hasher{
		params:       cfg.Params,
		peppers:      peppers,
		current:      current,
		slots:        make(chan struct{}, maxConcurrent),
		queueTimeout: queueTimeout,
		idKey:        argon2.IDKey,
	}
	// The dummy's key is random, so no password matches it.
	h.dummy = h.newPHC()
	h.dummy.key = make([]byte, h.params.KeyLen)
	rand.Read(h.dummy.key) // crypto/rand.Read never returns an error; it crashes the program instead.
	return h, nil
}

// newPHC returns a hash skeleton with the current parameters, the current
// pepper version and a fresh random salt.
func (h *Hasher) newPHC() phc {
	salt := make([]byte, h.params.SaltLen)
	rand.Read(salt) // crypto/rand.Read never returns an error; it crashes the program instead.
	return phc{
		memory:  h.params.Memory,
		time:    h.params.Time,
		threads: h.params.Threads,
		pepper:  h.current,
		salt:    salt,
	}
}

// Hash returns the PHC string of password under the current parameters and
// pepper:
//
//	$argon2id$v=19$m=19456,t=2,p=1,pv=<pepper version>$<salt>$<hash>
//
// with salt and hash in unpadded standard base64. The password is
// NFKC-normalized, and argon2id hashes HMAC-SHA256(pepper key, normalized).
// Hash does not apply a Policy. Its only error is ErrOverloaded.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	ph := h.newPHC()
	key, err := h.derive(ctx, h.peppers[h.current], password, ph, h.params.KeyLen)
	if err != nil {
		return "", err
	}
	ph.key = key
	return ph.encode(), nil
}

// Result is the outcome of Verify.
type Result struct {
	OK bool
	// NeedsRehash is true when OK and the hash is not current: other
	// parameters, an older pepper version, or an imported format. The caller
	// should then store a fresh Hash of the password.
	NeedsRehash bool
}

// Verify checks password against encoded, which is either one of our
// peppered argon2id hashes or an imported hash (see ValidateImported).
// Peppered hashes are compared in constant time. Imported hashes are checked
// through github.com/go-crypt/crypt with the password as given and, if that
// differs, with its NFKC form; they always report NeedsRehash when OK.
//
// A wrong password is Result{OK: false} with a nil error. The errors are
// ErrOverloaded, ErrUnknownPepper and ErrMalformedHash.
func (h *Hasher) Verify(ctx context.Context, password, encoded string) (Result, error) {
	ph, imported, err := decode(encoded)
	if err != nil {
		return Result{}, err
	}
	if imported != nil {
		return h.verifyImported(ctx, password, imported)
	}
	return h.verifyPeppered(ctx, password, ph)
}

// VerifyDummy does the work of verifying password against a current hash,
// including waiting for a slot, and discards the outcome. Call it for unknown
// users so that timing does not reveal whether an account exists. Its only
// error is ErrOverloaded.
func (h *Hasher) VerifyDummy(ctx context.Context, password string) error {
	_, err := h.verifyPeppered(ctx, password, h.dummy)
	return err
}

func (h *Hasher) verifyPeppered(ctx context.Context, password string, ph phc) (Result, error) {
	pepper, ok := h.peppers[ph.pepper]
	if !ok {
		return Result{}, fmt.Errorf("%w: pv=%d", ErrUnknownPepper, ph.pepper)
	}
	key, err := h.derive(ctx, pepper, password, ph, uint32(len(ph.key)))
	if err != nil {
		return Result{}, err
	}
	if subtle.ConstantTimeCompare(key, ph.key) != 1 {
		return Result{}, nil
	}
	return Result{OK: true, NeedsRehash: !h.isCurrent(ph)}, nil
}

func (h *Hasher) verifyImported(ctx context.Context, password string, digest algorithm.Digest) (Result, error) {
	if err := h.acquire(ctx); err != nil {
		return Result{}, err
	}
	defer h.release()
	ok, err := digest.MatchAdvanced(password)
	if err == nil && !ok {
		if normalized := norm.NFKC.String(password); normalized != password {
			ok, err = digest.MatchAdvanced(normalized)
		}
	}
	if err != nil {
		return Result{}, fmt.Errorf("%w: %w", ErrMalformedHash, err)
	}
	return Result{OK: ok, NeedsRehash: ok}, nil
}

// derive returns argon2id(HMAC-SHA256(pepper, NFKC(password))) with the
// parameters and salt of ph, holding a slot while argon2id runs.
func (h *Hasher) derive(ctx context.Context, pepper []byte, password string, ph phc, keyLen uint32) ([]byte, error) {
	mac := hmac.New(sha256.New, pepper)
	mac.Write([]byte(norm.NFKC.String(password)))
	peppered := mac.Sum(nil)
	if err := h.acquire(ctx); err != nil {
		return nil, err
	}
	defer h.release()
	return h.idKey(peppered, ph.salt, ph.time, ph.memory, ph.threads, keyLen), nil
}

func (h *Hasher) isCurrent(ph phc) bool {
	return ph.pepper == h.current &&
		ph.memory == h.params.Memory &&
		ph.time == h.params.Time &&
		ph.threads == h.params.Threads &&
		len(ph.salt) == int(h.params.SaltLen) &&
		len(ph.key) == int(h.params.KeyLen)
}

// acquire takes a computation slot, waiting at most h.queueTimeout.
func (h *Hasher) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrOverloaded, err)
	}
	wait, cancel := context.WithTimeout(ctx, h.queueTimeout)
	defer cancel()
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-wait.Done():
		return fmt.Errorf("%w: %w", ErrOverloaded, wait.Err())
	}
}

func (h *Hasher) release() { <-h.slots }
