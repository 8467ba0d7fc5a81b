package secrets

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadKEKsGeneratesOnceAndReuses(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	first, err := LoadKEKs(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 1 || first[0].Version != 1 || len(first[0].Key) != 32 {
		t.Fatalf("generated %v", first)
	}
	again, err := LoadKEKs(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != 1 || !bytes.Equal(again[0].Key, first[0].Key) {
		t.Fatal("second start did not reuse the KEK")
	}
	for path, want := range map[string]os.FileMode{"keys": 0o700, "keys/kek-v1.key": 0o600} {
		info, err := os.Stat(filepath.Join(dir, path))
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", path, info.Mode().Perm(), want)
		}
	}
	// The peppers are a separate family in the same folder.
	peppers, err := LoadPeppers(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(peppers[0].Key, first[0].Key) {
		t.Error("the pepper and the KEK are the same key")
	}
}

func TestLoadKEKsNewestLast(t *testing.T) {
	dir := t.TempDir()
	kdir := filepath.Join(dir, "keys")
	if err := os.MkdirAll(kdir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, v := range []int{3, 1, 10, 2} {
		key := bytes.Repeat([]byte{byte(v)}, 32)
		name := filepath.Join(kdir, fmt.Sprintf("kek-v%d.key", v))
		if err := os.WriteFile(name, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := LoadKEKs(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var versions []int
	for _, k := range got {
		versions = append(versions, k.Version)
		if k.Key[0] != byte(k.Version) {
			t.Errorf("v%d holds the key of another file", k.Version)
		}
	}
	if fmt.Sprint(versions) != "[1 2 3 10]" {
		t.Errorf("versions %v, want ascending", versions)
	}
}

func TestAttackKEKFileExposedOrMalformed(t *testing.T) {
	good := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)) + "\n"
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		want    string // in the error
	}{
		{"world readable", good, 0o644, "readable by group or others"},
		{"group readable", good, 0o640, "readable by group or others"},
		{"too short", base64.StdEncoding.EncodeToString(make([]byte, 16)), 0o600, "exactly 32 bytes"},
		{"too long", base64.StdEncoding.EncodeToString(make([]byte, 64)), 0o600, "exactly 32 bytes"},
		{"not base64", strings.Repeat("!", 44), 0o600, "exactly 32 bytes"},
		{"empty", "", 0o600, "exactly 32 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			kdir := filepath.Join(dir, "keys")
			if err := os.MkdirAll(kdir, 0o700); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(kdir, "kek-v1.key")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			_, err := LoadKEKs(dir, slog.New(slog.NewTextHandler(&logs, nil)))
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("LoadKEKs = %v, want an error naming %s and %q", err, path, tt.want)
			}
			if tt.content != "" && (strings.Contains(err.Error(), strings.TrimSpace(tt.content)) || strings.Contains(logs.String(), strings.TrimSpace(tt.content))) {
				t.Error("the key file's content leaked into the error or the logs")
			}
			// Nothing was generated next to the refused file.
			if _, err := os.Stat(filepath.Join(kdir, "kek-v2.key")); err == nil {
				t.Error("a new KEK was generated although a refused one exists")
			}
		})
	}
}

func TestKEKIsRedacted(t *testing.T) {
	k := KEK{Version: 2, Key: bytes.Repeat([]byte("s"), 32)}
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("kek", slog.Any("kek", k))
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%v", k), logs.String()} {
		if strings.Contains(s, "ssss") || strings.Contains(s, "115") {
			t.Errorf("key material printed: %s", s)
		}
	}
}

// Secret stores (e.g. Kubernetes volumes) mount key files as symbolic
// links: the mode checked is the target's, not the link's (always 0777).
func TestLoadKEKsFollowsSymlinks(t *testing.T) {
	dir := t.TempDir()
	kdir := filepath.Join(dir, "keys")
	data := filepath.Join(kdir, "..data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	key := bytes.Repeat([]byte{3}, 32)
	target := filepath.Join(data, "kek-v1.key")
	if err := os.WriteFile(target, []byte(base64.StdEncoding.EncodeToString(key)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..data", "kek-v1.key"), filepath.Join(kdir, "kek-v1.key")); err != nil {
		t.Fatal(err)
	}
	got, err := LoadKEKs(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !bytes.Equal(got[0].Key, key) {
		t.Fatalf("loaded %v", got)
	}
	if err := os.Chmod(target, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKEKs(dir, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("a 0644 file behind a symbolic link was accepted")
	}
}
