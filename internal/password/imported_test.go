package password

import (
	"bufio"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

type fixture struct{ password, encoded string }

// loadFixtures reads testdata/imported.txt; see the file for how each
// fixture was generated.
func loadFixtures(t testing.TB) []fixture {
	t.Helper()
	f, err := os.Open("testdata/imported.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var fixtures []fixture
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := sc.Text(); line != "" && !strings.HasPrefix(line, "#") {
			password, encoded, ok := strings.Cut(line, "\t")
			if !ok {
				t.Fatalf("fixture line %q has no tab", line)
			}
			fixtures = append(fixtures, fixture{password, encoded})
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return fixtures
}

// bcryptFixture returns a $2a$ bcrypt hash of password made with
// golang.org/x/crypto/bcrypt.
func bcryptFixture(t *testing.T, password string) string {
	t.Helper()
	b, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// importedFixtures returns the testdata fixtures and bcrypt hashes in each
// accepted version.
func importedFixtures(t *testing.T) []fixture {
	t.Helper()
	const password = "correct horse battery staple"
	b := bcryptFixture(t, password)
	fixtures := loadFixtures(t)
	for _, version := range []string{"$2a$", "$2b$", "$2y$"} {
		fixtures = append(fixtures, fixture{password, version + strings.TrimPrefix(b, "$2a$")})
	}
	fixtures = append(fixtures,
		fixture{password, "{CRYPT}" + b},
		fixture{password, "{ARGON2}" + fixtures[0].encoded},
	)
	for _, scheme := range []string{"$argon2id$", "$argon2i$", "$scrypt$", "$pbkdf2$", "$pbkdf2-sha256$", "$pbkdf2-sha512$", "$2y$"} {
		found := false
		for _, f := range fixtures {
			found = found || strings.HasPrefix(f.encoded, scheme)
		}
		if !found {
			t.Fatalf("no fixture for %s", scheme)
		}
	}
	return fixtures
}

func TestImportedHashesVerify(t *testing.T) {
	h := newTestHasher(t)
	for _, f := range importedFixtures(t) {
		t.Run(f.encoded, func(t *testing.T) {
			if err := ValidateImported(f.encoded); err != nil {
				t.Errorf("ValidateImported() = %v", err)
			}
			if got := mustVerify(t, h, f.password, f.encoded); got != (Result{OK: true, NeedsRehash: true}) {
				t.Errorf("Verify(right password) = %+v, want OK and NeedsRehash", got)
			}
			for _, wrong := range []string{f.password + "x", strings.ToUpper(f.password), f.password[:len(f.password)-1], ""} {
				if got := mustVerify(t, h, wrong, f.encoded); got != (Result{}) {
					t.Errorf("Verify(%q) = %+v, want zero Result", wrong, got)
				}
			}
		})
	}
}

func TestImportedHashesTryNFKC(t *testing.T) {
	const (
		nfc       = "caf\u00e9 au lait, s'il vous pla\u00eet"
		nfd       = "cafe\u0301 au lait, s'il vous plai\u0302t"
		ligature  = "\ufb01sh and chips every friday"
		ligatureK = "fish and chips every friday"
	)
	var scryptNFC string
	for _, f := range loadFixtures(t) {
		if f.password == nfc {
			scryptNFC = f.encoded
		}
	}
	if scryptNFC == "" {
		t.Fatal("no NFC fixture")
	}
	tests := []struct {
		name, encoded, login string
		ok                   bool
	}{
		{"NFC scrypt fixture, NFC login", scryptNFC, nfc, true},
		{"NFC scrypt fixture, NFD login", scryptNFC, nfd, true},
		{"NFD bcrypt, NFD login", bcryptFixture(t, nfd), nfd, true},
		{"NFC bcrypt, NFD login", bcryptFixture(t, nfc), nfd, true},
		{"ligature bcrypt, ligature login", bcryptFixture(t, ligature), ligature, true},
		{"NFKC bcrypt, ligature login", bcryptFixture(t, ligatureK), ligature, true},
		{"ligature bcrypt, NFKC login", bcryptFixture(t, ligature), ligatureK, false},
	}
	h := newTestHasher(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mustVerify(t, h, tt.login, tt.encoded); got.OK != tt.ok || got.NeedsRehash != tt.ok {
				t.Errorf("Verify() = %+v, want OK=NeedsRehash=%v", got, tt.ok)
			}
		})
	}
}

// Legacy bcrypt hashes only ever covered the first 72 bytes, and verifying
// them cannot change that; the rehash on login replaces them with peppered
// argon2id over the whole password (see TestAttackWrongPasswordFails).
func TestImportedBcryptKeepsLegacy72ByteLimit(t *testing.T) {
	long := strings.Repeat("0123456789", 8)
	encoded := bcryptFixture(t, long[:72])
	h := newTestHasher(t)
	if got := mustVerify(t, h, long, encoded); !got.OK || !got.NeedsRehash {
		t.Errorf("Verify(legacy bcrypt, password longer than 72 bytes) = %+v, want OK and NeedsRehash", got)
	}
}

func TestAttackValidateImportedRefuses(t *testing.T) {
	var argon2id, argon2i, scrypt, pbkdf2 string
	for _, f := range loadFixtures(t) {
		switch {
		case strings.HasPrefix(f.encoded, "$argon2id$"):
			argon2id = f.encoded
		case strings.HasPrefix(f.encoded, "$argon2i$"):
			argon2i = f.encoded
		case strings.HasPrefix(f.encoded, "$scrypt$") && scrypt == "":
			scrypt = f.encoded
		case strings.HasPrefix(f.encoded, "$pbkdf2-sha256$"):
			pbkdf2 = f.encoded
		}
	}
	b := bcryptFixture(t, "correct horse battery staple")
	argon2Key := argon2id[strings.LastIndexByte(argon2id, '$'):]
	tests := []struct {
		name, encoded, because string
	}{
		{"empty", "", ""},
		{"junk", "not a hash", ""},
		{"binary", "\x00\xff$\x01", ""},
		{"too long", argon2id + strings.Repeat("A", 600), "longer than 512"},
		{"md5crypt", "$1$saltsalt$2vnaRpHa6Jxjz5n83ok8Z0", "identifier"},
		{"sha256crypt", "$5$saltsalt$Gcm6FsVtF/Qa77ZKD.iwsJlCVPY0XSMgLJL0Hnww/c1", "identifier"},
		{"sha512crypt", "$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/", "identifier"},
		{"yescrypt", "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7", "identifier"},
		{"bcrypt 2x", "$2x$" + b[4:], "identifier"},
		{"bcrypt-sha256", "$bcrypt-sha256$v=2,t=2b,r=12$n79VH.0Q2TMWmt3Oqt9uku$Kq4Noyk3094Y2QlB8NdRT8SvGiI4ft2", "identifier"},
		{"argon2d", strings.Replace(argon2id, "$argon2id$", "$argon2d$", 1), "identifier"},
		{"plaintext", "$plaintext$correct horse battery staple", "identifier"},
		{"LDAP SSHA", "{SSHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", ""},
		{"argon2 memory 2 GiB", strings.Replace(argon2id, "m=4096", "m=2097152", 1), "memory"},
		{"argon2 memory 4 GiB", strings.Replace(argon2id, "m=4096", "m=4294967295", 1), "memory"},
		{"argon2 time 100", strings.Replace(argon2id, "t=2", "t=100", 1), "time"},
		{"argon2 parallelism 255", strings.Replace(argon2id, "p=1", "p=255", 1), "parallelism"},
		{"argon2 parallelism 2^24", strings.Replace(argon2i, "p=2", "p=16777215", 1), "parallelism"},
		{"argon2 key of 3 bytes", strings.Replace(argon2id, argon2Key, "$AAAA", 1), "key"},
		{"argon2 duplicate memory", strings.Replace(argon2id, "m=4096", "m=4096,m=4194304", 1), ""},
		{"argon2 version 16", strings.Replace(argon2id, "v=19", "v=16", 1), "version"},
		{"bcrypt cost 31", "$2b$31$" + b[7:], "cost"},
		{"bcrypt cost 17", "$2b$17$" + b[7:], "cost"},
		{"bcrypt cost 3", "$2b$03$" + b[7:], "cost"},
		{"bcrypt truncated", b[:len(b)-1], ""},
		{"scrypt N=2^24", strings.Replace(scrypt, "ln=12", "ln=24", 1), "ln"},
		{"scrypt 2 GiB", strings.Replace(scrypt, "ln=12,r=8", "ln=21,r=8", 1), "memory"},
		{"scrypt negative ln", strings.Replace(scrypt, "ln=12", "ln=-5", 1), "ln"},
		{"scrypt r=0", strings.Replace(scrypt, "r=8", "r=0", 1), "r=0"},
		{"scrypt huge r", strings.Replace(scrypt, "r=8", "r=9223372036854775807", 1), "memory"},
		{"scrypt p=1000", strings.Replace(scrypt, "p=1", "p=1000", 1), "parallelism"},
		{"pbkdf2 10^8 iterations", strings.Replace(pbkdf2, "$29000$", "$100000000$", 1), "iterations"},
		{"pbkdf2 0 iterations", strings.Replace(pbkdf2, "$29000$", "$0$", 1), "iterations"},
		{"pbkdf2 negative iterations", strings.Replace(pbkdf2, "$29000$", "$-1$", 1), "iterations"},
	}
	h := newTestHasher(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateImported(tt.encoded)
			if !errors.Is(err, ErrMalformedHash) {
				t.Fatalf("ValidateImported(%.80q) = %v, want ErrMalformedHash", tt.encoded, err)
			}
			if !strings.Contains(err.Error(), tt.because) {
				t.Errorf("ValidateImported(%.80q) = %q, want it to mention %q", tt.encoded, err, tt.because)
			}
			// Verify refuses the same hashes before doing any work.
			start := time.Now()
			res, err := h.Verify(context.Background(), "correct horse battery staple", tt.encoded)
			if !errors.Is(err, ErrMalformedHash) || res.OK {
				t.Errorf("Verify(%.80q) = %+v, %v; want ErrMalformedHash", tt.encoded, res, err)
			}
			if took := time.Since(start); took > 100*time.Millisecond {
				t.Errorf("Verify(%.80q) took %v to refuse", tt.encoded, took)
			}
		})
	}
}
