package secrets

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadPeppersGeneratesOnceAndReuses(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	first, err := LoadPeppers(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 1 || first[0].Version != 1 || len(first[0].Key) != 32 {
		t.Fatalf("generated %+v", first)
	}
	again, err := LoadPeppers(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != 1 || !bytes.Equal(again[0].Key, first[0].Key) {
		t.Fatal("second start did not reuse the pepper")
	}
	for path, want := range map[string]os.FileMode{"keys": 0o700, "keys/pepper-v1.key": 0o600} {
		info, err := os.Stat(filepath.Join(dir, path))
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", path, info.Mode().Perm(), want)
		}
	}
}

func TestAddPepperRotates(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	if _, err := LoadPeppers(dir, log); err != nil {
		t.Fatal(err)
	}
	p2, err := AddPepper(dir)
	if err != nil {
		t.Fatal(err)
	}
	all, err := LoadPeppers(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	if p2.Version != 2 || len(all) != 2 || all[1].Version != 2 || bytes.Equal(all[0].Key, all[1].Key) {
		t.Fatalf("after rotation: %+v", all)
	}
}

func TestAttackWeakOrExposedKeyFile(t *testing.T) {
	dir := t.TempDir()
	kdir := filepath.Join(dir, "keys")
	if err := os.MkdirAll(kdir, 0o700); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(kdir, "pepper-v1.key")
	if err := os.WriteFile(short, []byte("c2hvcnQ=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPeppers(dir, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("a pepper shorter than 32 bytes was accepted")
	}
	if err := os.WriteFile(short, []byte(strings.Repeat("A", 44)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(short, 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	if _, err := LoadPeppers(dir, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "readable by group or others") {
		t.Errorf("no warning for a 0644 key file: %s", logs.String())
	}
	if strings.Contains(logs.String(), strings.Repeat("A", 44)) {
		t.Error("the key was logged")
	}
}
