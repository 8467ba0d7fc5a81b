package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var kidLine = regexp.MustCompile(`(?m)^kid:\s+(k_[a-z2-7]{26})$`)

func rotate(t *testing.T, args ...string) (kid, out string) {
	t.Helper()
	var stdout bytes.Buffer
	if err := run(context.Background(), append([]string{"keys", "rotate"}, args...), nil, &stdout, io.Discard); err != nil {
		t.Fatalf("keys rotate: %v", err)
	}
	m := kidLine.FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("keys rotate printed no kid: %q", stdout.String())
	}
	return m[1], stdout.String()
}

// listRows runs `keys list` and returns its rows by kid, split into columns.
func listRows(t *testing.T, dir string) map[string][]string {
	t.Helper()
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"keys", "list", "--data-dir", dir}, nil, &stdout, io.Discard); err != nil {
		t.Fatalf("keys list: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if got := strings.Fields(lines[0]); strings.Join(got, " ") != "KID ALGORITHM STATE CREATED ACTIVATES RETIRED UNPUBLISHED" {
		t.Fatalf("header %q", lines[0])
	}
	rows := map[string][]string{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		rows[f[0]] = f
	}
	return rows
}

func TestKeysRotateThenList(t *testing.T) {
	dir := t.TempDir()
	kid, out := rotate(t, "--data-dir", dir)
	for _, want := range []string{"algorithm:  EdDSA", "activates:", "(in 15m0s)"} {
		if !strings.Contains(out, want) {
			t.Errorf("rotate output %q lacks %q", out, want)
		}
	}
	rows := listRows(t, dir)
	if len(rows) != 1 {
		t.Fatalf("%d keys listed", len(rows))
	}
	row := rows[kid]
	if row == nil || row[1] != "EdDSA" || row[2] != "pending" || row[5] != "-" || row[6] != "-" {
		t.Errorf("row %q", row)
	}
	// The KEK was generated next to the database, owner-only.
	info, err := os.Stat(filepath.Join(dir, "keys", "kek-v1.key"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("kek-v1.key mode %v", info.Mode().Perm())
	}
}

func TestKeysRotateTwice(t *testing.T) {
	dir := t.TempDir()
	first, _ := rotate(t, "--data-dir", dir)
	t.Setenv("GATEHOUSE_SIGNING_ALGORITHM", "ES256") // environment variables work too
	second, out := rotate(t, "--data-dir", dir, "--key-publish-delay", "1h")
	if first == second {
		t.Fatal("two rotations made the same kid")
	}
	if !strings.Contains(out, "algorithm:  ES256") || !strings.Contains(out, "(in 1h0m0s)") {
		t.Errorf("rotate output %q", out)
	}
	rows := listRows(t, dir)
	if len(rows) != 2 || rows[first][1] != "EdDSA" || rows[second][1] != "ES256" || rows[first][2] != "pending" || rows[second][2] != "pending" {
		t.Errorf("rows %q", rows)
	}
}

func TestKeysUsageErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no subcommand", []string{"keys"}, "missing command"},
		{"unknown subcommand", []string{"keys", "delete"}, `unknown keys command "delete"`},
		{"unsupported algorithm", []string{"keys", "rotate", "--data-dir", dir, "--signing-algorithm", "RS256"}, "--signing-algorithm"},
		{"publish delay shorter than the JWKS cache", []string{"keys", "rotate", "--data-dir", dir, "--key-publish-delay", "1m"}, "--key-publish-delay"},
		{"stray argument", []string{"keys", "list", "--data-dir", dir, "extra"}, "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			err := run(ctx, tt.args, nil, io.Discard, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run(%q) = %v, want an error with %q", tt.args, err, tt.want)
			}
		})
	}
	// Nothing was stored by the refused commands.
	if rows := listRows(t, dir); len(rows) != 0 {
		t.Errorf("refused commands stored keys: %v", rows)
	}
	var stdout bytes.Buffer
	if err := run(ctx, []string{"keys", "help"}, nil, &stdout, io.Discard); err != nil || !strings.Contains(stdout.String(), "same keys/ directory") {
		t.Errorf("keys help: %v %q", err, stdout.String())
	}
}
