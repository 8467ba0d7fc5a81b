package account

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/audit"
	"github.com/gatehouse-auth/gatehouse/internal/httpx"
	"github.com/gatehouse-auth/gatehouse/internal/id"
	"github.com/gatehouse-auth/gatehouse/internal/password"
	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// ImportRecord is one line of the JSON-lines input of `gatehouse users
// import`: a user with a password hash from another system (bcrypt, scrypt,
// PBKDF2 or argon2 in PHC/MCF form). The hash is verified as is at the next
// sign-in and then transparently replaced by a peppered argon2id hash.
type ImportRecord struct {
	Email         string `json:"email"`
	Name          string `json:"name"`
	PasswordHash  string `json:"password_hash"`
	EmailVerified bool   `json:"email_verified"`
}

// ImportResult counts what Import did; Errors name the failing lines (never
// their hashes).
type ImportResult struct {
	Imported int
	Skipped  int // e-mail already registered
	Errors   []string
}

// maxImportLine bounds one input line.
const maxImportLine = 64 << 10

// Import reads JSON lines from in and creates one user per line, each in its
// own transaction with a user.imported audit event. A malformed line is
// reported and does not stop the import.
func Import(ctx context.Context, db store.Store, in io.Reader, now func() time.Time) (ImportResult, error) {
	if now == nil {
		now = time.Now
	}
	var res ImportResult
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 4096), maxImportLine)
	line := 0
	for sc.Scan() {
		line++
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		err := importOne(ctx, db, raw, now().UTC().Truncate(time.Microsecond))
		switch {
		case errors.Is(err, store.ErrConflict):
			res.Skipped++
		case err != nil:
			res.Errors = append(res.Errors, fmt.Sprintf("line %d: %v", line, err))
		default:
			res.Imported++
		}
	}
	if err := sc.Err(); err != nil {
		return res, fmt.Errorf("account: import: line %d: %w", line+1, err)
	}
	return res, nil
}

func importOne(ctx context.Context, db store.Store, raw []byte, now time.Time) error {
	var rec ImportRecord
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		return errors.New("not a JSON object with email, name, password_hash, email_verified")
	}
	email, err := ParseEmail(rec.Email)
	if err != nil {
		return errors.New("invalid e-mail address")
	}
	if err := password.ValidateImported(rec.PasswordHash); err != nil {
		return fmt.Errorf("password_hash: %w", err)
	}
	name := strings.TrimSpace(rec.Name)
	if err := httpx.CheckString("name", name, maxNameLen); err != nil {
		return fmt.Errorf("name: at most %d characters, no control characters", maxNameLen)
	}
	u := &store.User{
		ID: id.New("usr"), Email: email.Display, EmailKey: email.Key, Name: name,
		PasswordHash: rec.PasswordHash, EmailVerified: rec.EmailVerified, CreatedAt: now, UpdatedAt: now,
	}
	return db.InTx(ctx, func(tx store.Tx) error {
		if err := tx.Users().CreateUser(ctx, u); err != nil {
			return err
		}
		return tx.Audit().AppendEvent(ctx, audit.New(nil, now, audit.UserImported, u.ID, ""))
	})
}
