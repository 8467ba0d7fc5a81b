// Command genblocklist regenerates the password blocklist that package
// password embeds. It is run by "go generate" in internal/password:
//
//	go generate ./internal/password
//
// It fetches the npm package with "npm pack" (or reads a tarball given with
// -tgz), checks the tarball against a pinned SHA-512, and writes
// blocklist.txt and blocklist.LICENSE.txt into the current directory.
//
// NOTICE: the password list is taken from the npm package
// @zxcvbn-ts/language-common (file package/src/passwords.json), Copyright (c)
// 2012-2016 Dan Wheeler and Dropbox, Inc. and Copyright (c) 2021 @zxcvbn-ts,
// distributed under the MIT licence. Its licence text is copied verbatim into
// blocklist.LICENSE.txt next to the generated list, and must stay there.
//
// Every entry is NFKC-normalized and case-folded exactly as password.Policy
// does before it looks a password up, then the list is sorted and
// de-duplicated so that the package can binary-search it. Entries shorter than
// -min code points are dropped: Policy refuses such passwords as too short
// before it consults the list, so they could never match.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

const (
	npmPackage = "@zxcvbn-ts/language-common"
	npmVersion = "4.1.3"
	// tarballSHA512 pins the exact npm tarball the committed list came from.
	tarballSHA512 = "8366e0e2c9269491bd689a82fe75b3899ce062949efdfdeb29e1a86eb91d1623ab7d9545aaacd4802e815105ae5f9e12b9af63d09c71b7ed5b7f87ff31a9752a"

	passwordsPath = "package/src/passwords.json"
	licensePath   = "package/LICENSE.txt"
)

func main() {
	tgz := flag.String("tgz", "", "path to "+npmPackage+"-"+npmVersion+" tarball (default: fetch it with npm pack)")
	out := flag.String("out", ".", "directory to write blocklist.txt and blocklist.LICENSE.txt to")
	minRunes := flag.Int("min", 8, "drop entries shorter than this many code points (the smallest Policy.MinLength allowed)")
	flag.Parse()

	if err := run(*tgz, *out, *minRunes); err != nil {
		log.Fatal(err)
	}
}

func run(tgz, out string, minRunes int) error {
	archive, err := readTarball(tgz)
	if err != nil {
		return err
	}
	sum := sha512.Sum512(archive)
	if got := hex.EncodeToString(sum[:]); got != tarballSHA512 {
		return fmt.Errorf("tarball SHA-512 is %s, want %s", got, tarballSHA512)
	}
	files, err := extract(archive, passwordsPath, licensePath)
	if err != nil {
		return err
	}

	var raw []string
	if err := json.Unmarshal(files[passwordsPath], &raw); err != nil {
		return fmt.Errorf("%s: %w", passwordsPath, err)
	}
	entries := make([]string, 0, len(raw))
	for _, s := range raw {
		normalized := norm.NFKC.String(s)
		if utf8.RuneCountInString(normalized) < minRunes || strings.ContainsAny(normalized, "\r\n") {
			continue
		}
		entries = append(entries, cases.Fold().String(normalized))
	}
	slices.Sort(entries)
	entries = slices.Compact(entries)

	list := strings.Join(entries, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(out, "blocklist.txt"), []byte(list), 0o644); err != nil {
		return err
	}
	notice := fmt.Sprintf("blocklist.txt is derived from passwords.json in the npm package\n"+
		"%s version %s (tarball SHA-512 %s),\n"+
		"source https://github.com/zxcvbn-ts/zxcvbn, by internal/genblocklist.\n"+
		"It is distributed under the MIT licence of that package, reproduced below.\n\n%s",
		npmPackage, npmVersion, tarballSHA512, files[licensePath])
	if err := os.WriteFile(filepath.Join(out, "blocklist.LICENSE.txt"), []byte(notice), 0o644); err != nil {
		return err
	}
	log.Printf("%d of %d entries kept (%d bytes)", len(entries), len(raw), len(list))
	return nil
}

// readTarball returns the tarball at path, or fetches it with npm pack when
// path is empty.
func readTarball(path string) ([]byte, error) {
	if path != "" {
		return os.ReadFile(path)
	}
	dir, err := os.MkdirTemp("", "genblocklist")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	cmd := exec.Command("npm", "pack", "--silent", npmPackage+"@"+npmVersion)
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	name, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("npm pack: %w", err)
	}
	return os.ReadFile(filepath.Join(dir, strings.TrimSpace(string(name))))
}

// extract returns the contents of the named files in a gzipped tarball.
func extract(archive []byte, names ...string) (map[string][]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(archive))
	if err != nil {
		return nil, err
	}
	files := make(map[string][]byte, len(names))
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if slices.Contains(names, hdr.Name) {
			if files[hdr.Name], err = io.ReadAll(tr); err != nil {
				return nil, err
			}
		}
	}
	for _, name := range names {
		if _, ok := files[name]; !ok {
			return nil, fmt.Errorf("%s not in tarball", name)
		}
	}
	return files, nil
}
