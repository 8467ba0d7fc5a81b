package password

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/go-crypt/crypt/algorithm"
	"golang.org/x/crypto/argon2"
)

// Limits that every hash Verify accepts must meet, so that no stored or
// imported hash can make one verification take unbounded memory or time.
const (
	maxEncodedLen = 512
	maxMemoryKiB  = 1 << 20 // 1 GiB
	maxTime       = 16
	maxThreads    = 16
	minSaltLen    = 8
	maxSaltLen    = 64
	minKeyLen     = 16
	maxKeyLen     = 64
)

// phc is one of our peppered argon2id hashes.
type phc struct {
	memory, time uint32
	threads      uint8
	pepper       int
	salt, key    []byte
}

var phcBase64 = base64.RawStdEncoding.Strict()

func (ph phc) encode() string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d,pv=%d$%s$%s",
		argon2.Version, ph.memory, ph.time, ph.threads, ph.pepper,
		phcBase64.EncodeToString(ph.salt), phcBase64.EncodeToString(ph.key))
}

// decode parses encoded either as one of our peppered hashes, returned as a
// phc, or as an imported hash, returned as a non-nil digest. Errors wrap
// ErrMalformedHash.
func decode(encoded string) (phc, algorithm.Digest, error) {
	if len(encoded) > maxEncodedLen {
		return phc{}, nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformedHash, maxEncodedLen)
	}
	fields := strings.Split(encoded, "$")
	peppered := len(fields) == 6 && fields[0] == "" && fields[1] == "argon2id" &&
		slices.ContainsFunc(strings.Split(fields[3], ","), func(param string) bool {
			return strings.HasPrefix(param, "pv=")
		})
	if !peppered {
		digest, err := decodeImported(encoded)
		return phc{}, digest, err
	}
	ph, err := parsePHC(fields[3], fields[4], fields[5])
	if err != nil {
		return phc{}, nil, fmt.Errorf("%w: %w", ErrMalformedHash, err)
	}
	if ph.encode() != encoded {
		return phc{}, nil, fmt.Errorf("%w: peppered argon2id hash is not in canonical form", ErrMalformedHash)
	}
	return ph, nil, nil
}

// parsePHC parses the parameter, salt and key fields of a peppered hash.
func parsePHC(params, salt, key string) (phc, error) {
	var ph phc
	names := []string{"m", "t", "p", "pv"}
	values := strings.Split(params, ",")
	if len(values) != len(names) {
		return ph, fmt.Errorf("want parameters %s", strings.Join(names, ","))
	}
	n := make([]uint32, len(names))
	for i, kv := range values {
		name, value, _ := strings.Cut(kv, "=")
		if name != names[i] {
			return ph, fmt.Errorf("parameter %d is %q, want %q", i+1, name, names[i])
		}
		v, err := strconv.ParseUint(value, 10, 32)
		if err != nil {
			return ph, fmt.Errorf("parameter %s: %w", name, err)
		}
		n[i] = uint32(v)
	}
	var err error
	if ph.salt, err = phcBase64.DecodeString(salt); err != nil {
		return ph, fmt.Errorf("salt: %w", err)
	}
	if ph.key, err = phcBase64.DecodeString(key); err != nil {
		return ph, fmt.Errorf("key: %w", err)
	}
	if err := checkArgon2(n[0], n[1], n[2], len(ph.salt), len(ph.key)); err != nil {
		return ph, err
	}
	if n[3] < 1 {
		return ph, fmt.Errorf("pepper version %d is below 1", n[3])
	}
	ph.memory, ph.time, ph.threads, ph.pepper = n[0], n[1], uint8(n[2]), int(n[3])
	return ph, nil
}

// checkArgon2 refuses argon2 parameters that are invalid or so costly that
// verifying one hash would be a denial of service.
func checkArgon2(memory, time, threads uint32, saltLen, keyLen int) error {
	switch {
	case memory > maxMemoryKiB:
		return fmt.Errorf("memory %d KiB is above the limit of %d KiB", memory, maxMemoryKiB)
	case time < 1 || time > maxTime:
		return fmt.Errorf("time %d is outside 1..%d", time, maxTime)
	case threads < 1 || threads > maxThreads:
		return fmt.Errorf("parallelism %d is outside 1..%d", threads, maxThreads)
	case memory < 8*threads:
		return fmt.Errorf("memory %d KiB is below 8 KiB per lane", memory)
	}
	return checkSaltKey(saltLen, keyLen)
}

func checkSaltKey(saltLen, keyLen int) error {
	switch {
	case saltLen < minSaltLen || saltLen > maxSaltLen:
		return fmt.Errorf("salt of %d bytes is outside %d..%d", saltLen, minSaltLen, maxSaltLen)
	case keyLen < minKeyLen || keyLen > maxKeyLen:
		return fmt.Errorf("key of %d bytes is outside %d..%d", keyLen, minKeyLen, maxKeyLen)
	}
	return nil
}
