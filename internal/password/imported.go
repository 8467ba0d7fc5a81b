package password

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/go-crypt/crypt"
	"github.com/go-crypt/crypt/algorithm"
	"github.com/go-crypt/crypt/algorithm/argon2"
	"github.com/go-crypt/crypt/algorithm/bcrypt"
	"github.com/go-crypt/crypt/algorithm/pbkdf2"
	"github.com/go-crypt/crypt/algorithm/scrypt"
)

// Limits on imported hashes beyond those in phc.go.
const (
	bcryptMinCost = 4 // go-crypt silently raises lower costs, so such hashes could never match
	bcryptMaxCost = 16
	bcryptSaltLen = 16
	// scryptMaxMemory bounds 128*r*N bytes, the memory scrypt allocates.
	scryptMaxMemory      = 1 << 30
	scryptMaxLogN        = 23 // 128*r*N reaches scryptMaxMemory at N=2^23, r=1
	scryptMaxParallelism = 16
	pbkdf2MaxIterations  = 10_000_000
)

// importDecoder decodes exactly the imported formats Verify accepts:
// argon2id, argon2i, bcrypt $2a$/$2b$/$2y$, scrypt and PBKDF2 (SHA-1 and
// SHA-2), each also with the LDAP-style prefixes go-crypt strips.
var importDecoder = newImportDecoder()

func newImportDecoder() *crypt.Decoder {
	d := crypt.NewDecoder()
	bcryptStandard := bcrypt.DecodeVariant(bcrypt.VariantStandard)
	if err := errors.Join(
		argon2.RegisterDecoderArgon2id(d),
		argon2.RegisterDecoderArgon2i(d),
		d.RegisterDecodeFunc(bcrypt.AlgIdentifierVerA, bcryptStandard),
		d.RegisterDecodeFunc(bcrypt.AlgIdentifier, bcryptStandard),
		d.RegisterDecodeFunc(bcrypt.AlgIdentifierVerY, bcryptStandard),
		scrypt.RegisterDecoderScrypt(d),
		pbkdf2.RegisterDecoder(d),
	); err != nil {
		panic(err)
	}
	return d
}

// ValidateImported checks that encoded, a hash imported from another system,
// is in a format Verify accepts:
//
//   - bcrypt $2a$, $2b$ and $2y$ with cost 4..16;
//   - argon2id and argon2i PHC strings without pv, with m <= 1 GiB,
//     t 1..16, p 1..16;
//   - $scrypt$ln=..,r=..,p=.. with 128*r*N <= 1 GiB and p 1..16;
//   - $pbkdf2$ (SHA-1) and $pbkdf2-sha224/256/384/512$ with at most
//     10,000,000 iterations;
//   - our own peppered argon2id strings, within the same limits (whether
//     their pepper version is configured is up to Verify).
//
// Salts must be 8..64 bytes and keys 16..64 bytes (bcrypt: as the format
// fixes them), and the string at most 512 bytes. Anything else is refused
// with an error wrapping ErrMalformedHash that says why, so that an import
// can neither plant a hash that never verifies nor one whose verification is
// a denial of service.
func ValidateImported(encoded string) error {
	_, _, err := decode(encoded)
	return err
}

// decodeImported decodes an imported hash and checks its parameters.
func decodeImported(encoded string) (algorithm.Digest, error) {
	digest, err := importDecoder.Decode(encoded)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedHash, err)
	}
	if err := checkImported(digest); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedHash, err)
	}
	return digest, nil
}

// checkImported refuses digests whose parameters are out of bounds. The
// go-crypt digests keep their parameters unexported, so they are read back
// from the canonical encoding that go-crypt produces from exactly the values
// its Match uses.
func checkImported(digest algorithm.Digest) error {
	fields := strings.Split(digest.Encode(), "$")
	switch digest.(type) {
	case *argon2.Digest: // $argon2id$v=19$m=%d,t=%d,p=%d$salt$key
		var m, t, p uint32
		if _, err := fmt.Sscanf(fields[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
			return fmt.Errorf("argon2 parameters: %w", err)
		}
		if err := checkArgon2(m, t, p, len(digest.Salt()), len(digest.Key())); err != nil {
			return fmt.Errorf("argon2: %w", err)
		}
	case *bcrypt.Digest: // $2b$%d$<salt><key>
		cost, err := strconv.Atoi(fields[2])
		if err != nil {
			return fmt.Errorf("bcrypt cost: %w", err)
		}
		if cost < bcryptMinCost || cost > bcryptMaxCost {
			return fmt.Errorf("bcrypt cost %d is outside %d..%d", cost, bcryptMinCost, bcryptMaxCost)
		}
		if n := len(digest.Salt()); n != bcryptSaltLen {
			return fmt.Errorf("bcrypt salt of %d bytes, want %d", n, bcryptSaltLen)
		}
	case *scrypt.Digest: // $scrypt$ln=%d,r=%d,p=%d$salt$key
		var ln, r, p int
		if _, err := fmt.Sscanf(fields[2], "ln=%d,r=%d,p=%d", &ln, &r, &p); err != nil {
			return fmt.Errorf("scrypt parameters: %w", err)
		}
		switch {
		case ln < 1 || ln > scryptMaxLogN:
			return fmt.Errorf("scrypt ln=%d is outside 1..%d", ln, scryptMaxLogN)
		case r < 1 || r > scryptMaxMemory/(128<<ln):
			return fmt.Errorf("scrypt r=%d is below 1 or needs more than %d bytes of memory with ln=%d", r, scryptMaxMemory, ln)
		case p < 1 || p > scryptMaxParallelism:
			return fmt.Errorf("scrypt parallelism %d is outside 1..%d", p, scryptMaxParallelism)
		}
		if err := checkSaltKey(len(digest.Salt()), len(digest.Key())); err != nil {
			return fmt.Errorf("scrypt: %w", err)
		}
	case *pbkdf2.Digest: // $pbkdf2-sha256$%d$salt$key
		iterations, err := strconv.Atoi(fields[2])
		if err != nil {
			return fmt.Errorf("pbkdf2 iterations: %w", err)
		}
		if iterations < 1 || iterations > pbkdf2MaxIterations {
			return fmt.Errorf("pbkdf2 iterations %d are outside 1..%d", iterations, pbkdf2MaxIterations)
		}
		if err := checkSaltKey(len(digest.Salt()), len(digest.Key())); err != nil {
			return fmt.Errorf("pbkdf2: %w", err)
		}
	default:
		return fmt.Errorf("unsupported digest type %T", digest)
	}
	return nil
}
