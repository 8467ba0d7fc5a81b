// Package secrets owns the server secrets that live outside the database:
// the versioned password peppers and the key-encryption keys (KEKs) that
// seal the private halves of the access-token signing keys. They are
// generated on first start in the data directory's keys/ folder (directory
// 0700, files 0600) and read back on every later start. Replicas of one
// deployment must share the folder (e.g. mounted from a secret store).
package secrets

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Pepper is one version of the password pepper.
type Pepper struct {
	Version int
	Key     []byte
}

// keySize is the size of a generated key, and the minimum (pepper) or exact
// (KEK) size of a key read back.
const keySize = 32

// family is one kind of versioned key file: keys/<prefix>-vN.key, holding
// the base64 of the key.
type family struct {
	prefix  string
	pattern *regexp.Regexp // matches the file names, capturing N
	// strict families refuse files readable by group or others and keys of
	// any size but keySize; the others only warn about the mode and accept
	// longer keys.
	strict bool
}

var peppers = family{prefix: "pepper", pattern: regexp.MustCompile(`^pepper-v([1-9][0-9]{0,5})\.key$`)}

// versioned is a key read from or written to a key file.
type versioned struct {
	version int
	key     []byte
}

// LoadPeppers reads every keys/pepper-vN.key under dir, generating
// pepper-v1.key if there is none. Versions are returned in ascending order;
// the last one is current.
func LoadPeppers(dir string, log *slog.Logger) ([]Pepper, error) {
	keys, err := peppers.load(dir, "generated password pepper", log)
	if err != nil {
		return nil, err
	}
	out := make([]Pepper, len(keys))
	for i, k := range keys {
		out[i] = Pepper{Version: k.version, Key: k.key}
	}
	return out, nil
}

// AddPepper writes a new pepper with the next version number and returns
// it. It never overwrites an existing file.
func AddPepper(dir string) (Pepper, error) {
	k, err := peppers.add(dir)
	if err != nil {
		return Pepper{}, err
	}
	return Pepper{Version: k.version, Key: k.key}, nil
}

// keyDir creates (if needed) and returns the keys/ folder under dir.
func keyDir(dir string) (string, error) {
	kdir := filepath.Join(dir, "keys")
	if err := os.MkdirAll(kdir, 0o700); err != nil {
		return "", fmt.Errorf("secrets: create %s: %w", kdir, err)
	}
	return kdir, nil
}

// load reads every key of the family under dir, generating version 1 (and
// logging generated) if there is none. Versions are in ascending order.
func (f family) load(dir, generated string, log *slog.Logger) ([]versioned, error) {
	kdir, err := keyDir(dir)
	if err != nil {
		return nil, err
	}
	keys, err := f.read(kdir, log)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		k, err := f.add(dir)
		if err != nil {
			return nil, err
		}
		log.Info(generated, slog.Int("version", k.version), slog.String("dir", kdir))
		keys = []versioned{k}
	}
	return keys, nil
}

// read returns the family's keys in kdir in ascending version order.
func (f family) read(kdir string, log *slog.Logger) ([]versioned, error) {
	entries, err := os.ReadDir(kdir)
	if err != nil {
		return nil, fmt.Errorf("secrets: read %s: %w", kdir, err)
	}
	var out []versioned
	for _, e := range entries {
		m := f.pattern.FindStringSubmatch(e.Name())
		if m == nil || e.IsDir() {
			continue
		}
		v, _ := strconv.Atoi(m[1])
		path := filepath.Join(kdir, e.Name())
		// Stat follows symbolic links (secret stores often mount key files
		// as links), so the mode checked is the file's, not the link's.
		info, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("secrets: stat %s: %w", path, err)
		}
		if perm := info.Mode().Perm(); perm&0o077 != 0 {
			if f.strict {
				return nil, fmt.Errorf("secrets: %s is readable by group or others (mode %s); it must be mode 0600 (chmod 600 %s)", path, perm, path)
			}
			log.Warn("key file is readable by group or others; it should be mode 0600", slog.String("file", path), slog.String("mode", perm.String()))
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("secrets: read %s: %w", path, err)
		}
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(raw)))
		switch {
		case f.strict && (err != nil || len(key) != keySize):
			return nil, fmt.Errorf("secrets: %s must hold exactly %d bytes, base64-encoded", path, keySize)
		case err != nil || len(key) < keySize:
			return nil, fmt.Errorf("secrets: %s must hold at least %d bytes, base64-encoded", path, keySize)
		}
		out = append(out, versioned{version: v, key: key})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

// add writes a new random key with the next version number and returns
// it. It never overwrites an existing file.
func (f family) add(dir string) (versioned, error) {
	kdir, err := keyDir(dir)
	if err != nil {
		return versioned{}, err
	}
	existing, err := f.read(kdir, slog.New(slog.DiscardHandler))
	if err != nil {
		return versioned{}, err
	}
	next := 1
	if n := len(existing); n > 0 {
		next = existing[n-1].version + 1
	}
	key := make([]byte, keySize)
	_, _ = rand.Read(key) // crypto/rand.Read never fails (Go 1.24+)
	path := filepath.Join(kdir, fmt.Sprintf("%s-v%d.key", f.prefix, next))
	file, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return versioned{}, fmt.Errorf("secrets: %s appeared concurrently; retry", path)
		}
		return versioned{}, fmt.Errorf("secrets: create %s: %w", path, err)
	}
	if _, err := file.WriteString(base64.StdEncoding.EncodeToString(key) + "\n"); err != nil {
		file.Close()
		return versioned{}, fmt.Errorf("secrets: write %s: %w", path, err)
	}
	if err := file.Sync(); err != nil {
		file.Close()
		return versioned{}, fmt.Errorf("secrets: sync %s: %w", path, err)
	}
	if err := file.Close(); err != nil {
		return versioned{}, fmt.Errorf("secrets: close %s: %w", path, err)
	}
	return versioned{version: next, key: key}, nil
}
