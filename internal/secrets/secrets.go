// Package secrets owns the server secrets that live outside the database:
// today the versioned password peppers. They are generated on first start
// in the data directory's keys/ folder (directory 0700, files 0600) and read
// back on every later start. Replicas of one deployment must share the
// folder (e.g. mounted from a secret store).
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

var pepperFile = regexp.MustCompile(`^pepper-v([1-9][0-9]{0,5})\.key$`)

// LoadPeppers reads every keys/pepper-vN.key under dir, generating
// pepper-v1.key if there is none. Versions are returned in ascending order;
// the last one is current.
func LoadPeppers(dir string, log *slog.Logger) ([]Pepper, error) {
	kdir := filepath.Join(dir, "keys")
	if err := os.MkdirAll(kdir, 0o700); err != nil {
		return nil, fmt.Errorf("secrets: create %s: %w", kdir, err)
	}
	peppers, err := readPeppers(kdir, log)
	if err != nil {
		return nil, err
	}
	if len(peppers) == 0 {
		p, err := AddPepper(dir)
		if err != nil {
			return nil, err
		}
		log.Info("generated password pepper", slog.Int("version", p.Version), slog.String("dir", kdir))
		peppers = []Pepper{p}
	}
	return peppers, nil
}

func readPeppers(kdir string, log *slog.Logger) ([]Pepper, error) {
	entries, err := os.ReadDir(kdir)
	if err != nil {
		return nil, fmt.Errorf("secrets: read %s: %w", kdir, err)
	}
	var out []Pepper
	for _, e := range entries {
		m := pepperFile.FindStringSubmatch(e.Name())
		if m == nil || e.IsDir() {
			continue
		}
		v, _ := strconv.Atoi(m[1])
		path := filepath.Join(kdir, e.Name())
		info, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("secrets: stat %s: %w", path, err)
		}
		if info.Mode().Perm()&0o077 != 0 {
			log.Warn("key file is readable by group or others; it should be mode 0600", slog.String("file", path), slog.String("mode", info.Mode().Perm().String()))
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("secrets: read %s: %w", path, err)
		}
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(raw)))
		if err != nil || len(key) < 32 {
			return nil, fmt.Errorf("secrets: %s must hold at least 32 bytes, base64-encoded", path)
		}
		out = append(out, Pepper{Version: v, Key: key})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// AddPepper writes a new pepper with the next version number and returns
// it. It never overwrites an existing file.
func AddPepper(dir string) (Pepper, error) {
	kdir := filepath.Join(dir, "keys")
	if err := os.MkdirAll(kdir, 0o700); err != nil {
		return Pepper{}, fmt.Errorf("secrets: create %s: %w", kdir, err)
	}
	existing, err := readPeppers(kdir, slog.New(slog.DiscardHandler))
	if err != nil {
		return Pepper{}, err
	}
	next := 1
	if n := len(existing); n > 0 {
		next = existing[n-1].Version + 1
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	path := filepath.Join(kdir, fmt.Sprintf("pepper-v%d.key", next))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return Pepper{}, fmt.Errorf("secrets: %s appeared concurrently; retry", path)
		}
		return Pepper{}, fmt.Errorf("secrets: create %s: %w", path, err)
	}
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n"); err != nil {
		f.Close()
		return Pepper{}, fmt.Errorf("secrets: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return Pepper{}, fmt.Errorf("secrets: sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return Pepper{}, fmt.Errorf("secrets: close %s: %w", path, err)
	}
	return Pepper{Version: next, Key: key}, nil
}
