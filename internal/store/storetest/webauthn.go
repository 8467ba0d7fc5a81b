package storetest

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

var webAuthnTests = []storeTest{
	{"CreateAndGet", testCreateAndGetWebAuthnCredential},
	{"CreateConflict", testCreateWebAuthnCredentialConflict},
	{"NotFound", testWebAuthnNotFound},
	{"ListByUser", testWebAuthnCredentialsByUser},
	{"Use", testUseWebAuthnCredential},
	{"Rename", testRenameWebAuthnCredential},
	{"Delete", testDeleteWebAuthnCredential},
	{"DeleteUserCredentials", testDeleteUserWebAuthnCredentials},
	{"InTx", testWebAuthnInTx},
}

// newWebAuthnCredential is a synced passkey of the user, registered at
// base and never used; id tells credentials apart.
func newWebAuthnCredential(id, userID string) *store.WebAuthnCredential {
	return &store.WebAuthnCredential{
		ID:              id,
		UserID:          userID,
		CredentialID:    tokenHash("credential-" + id),
		PublicKey:       append([]byte{0xa5, 0x01, 0x02, 0x03, 0x26}, tokenHash("public-key-"+id)...),
		AttestationType: "none",
		AAGUID:          tokenHash("aaguid")[:16],
		Transports:      []string{"internal", "hybrid"},
		Discoverable:    true,
		BackupEligible:  true,
		BackupState:     true,
		Name:            "Passkey " + id,
		CreatedAt:       base,
	}
}

// wantWebAuthnCredential is c as a store returns it.
func wantWebAuthnCredential(c *store.WebAuthnCredential) *store.WebAuthnCredential {
	w := *c
	w.CreatedAt = norm(c.CreatedAt)
	if c.LastUsedAt != nil {
		u := norm(*c.LastUsedAt)
		w.LastUsedAt = &u
	}
	return &w
}

// wantWebAuthnCredentials is cs as a store lists them.
func wantWebAuthnCredentials(cs ...*store.WebAuthnCredential) []*store.WebAuthnCredential {
	out := make([]*store.WebAuthnCredential, len(cs))
	for i, c := range cs {
		out[i] = wantWebAuthnCredential(c)
	}
	return out
}

func mustCreateWebAuthnCredential(t *testing.T, s store.Tx, c *store.WebAuthnCredential) *store.WebAuthnCredential {
	t.Helper()
	if err := s.WebAuthn().CreateWebAuthnCredential(t.Context(), c); err != nil {
		t.Fatalf("CreateWebAuthnCredential(%s): %v", c.ID, err)
	}
	return c
}

func mustWebAuthnCredential(t *testing.T, s store.Tx, credentialID []byte) *store.WebAuthnCredential {
	t.Helper()
	c, err := s.WebAuthn().WebAuthnCredentialByCredentialID(t.Context(), credentialID)
	if err != nil {
		t.Fatalf("WebAuthnCredentialByCredentialID: %v", err)
	}
	return c
}

func mustWebAuthnCredentials(t *testing.T, s store.Tx, userID string) []*store.WebAuthnCredential {
	t.Helper()
	cs, err := s.WebAuthn().WebAuthnCredentialsByUser(t.Context(), userID)
	if err != nil {
		t.Fatalf("WebAuthnCredentialsByUser(%s): %v", userID, err)
	}
	return cs
}

// wantStoredWebAuthn checks the user's credentials are exactly want, in
// that order, and each is found by its credential id.
func wantStoredWebAuthn(t *testing.T, s store.Tx, userID string, want ...*store.WebAuthnCredential) {
	t.Helper()
	if d := diff(wantWebAuthnCredentials(want...), mustWebAuthnCredentials(t, s, userID)); d != "" {
		t.Errorf("credentials of %s (-want +got):\n%s", userID, d)
	}
	for _, c := range want {
		if d := diff(wantWebAuthnCredential(c), mustWebAuthnCredential(t, s, c.CredentialID)); d != "" {
			t.Errorf("credential %s by credential id (-want +got):\n%s", c.ID, d)
		}
	}
}

// testCreateAndGetWebAuthnCredential stores every shape of credential and
// reads it back by credential id and in the user's list.
func testCreateAndGetWebAuthnCredential(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	binary := make([]byte, 64) // NUL and high bytes must survive
	for i := range binary {
		binary[i] = byte(255 - i*37)
	}
	longest := bytes.Repeat([]byte{0xff, 0x00, 0x7f}, 341) // 1023 bytes
	usedAt := base.Add(time.Minute + 999*time.Nanosecond)
	for i, tc := range []struct {
		name string
		mod  func(c *store.WebAuthnCredential)
	}{
		{"synced passkey", func(*store.WebAuthnCredential) {}},
		{"security key", func(c *store.WebAuthnCredential) {
			c.AttestationType, c.Transports, c.SignCount = "basic", []string{"usb", "nfc"}, 41
			c.Discoverable, c.BackupEligible, c.BackupState = false, false, false
		}},
		{"backup eligible, not backed up", func(c *store.WebAuthnCredential) { c.BackupState = false }},
		{"zero AAGUID", func(c *store.WebAuthnCredential) { c.AAGUID = make([]byte, 16) }},
		{"no transports", func(c *store.WebAuthnCredential) { c.Transports = nil }},
		{"empty transports", func(c *store.WebAuthnCredential) { c.Transports = []string{} }},
		{"every transport", func(c *store.WebAuthnCredential) {
			c.Transports = []string{"internal", "hybrid", "usb", "nfc", "ble", "smart-card"}
		}},
		{"odd transports", func(c *store.WebAuthnCredential) {
			c.Transports = []string{"with space", "with,comma", `"quoted"`, "ünï", "", "usb", "usb"}
		}},
		{"binary credential id", func(c *store.WebAuthnCredential) { c.CredentialID = binary }},
		{"one-byte credential id", func(c *store.WebAuthnCredential) { c.CredentialID = []byte{0} }},
		{"longest credential id", func(c *store.WebAuthnCredential) { c.CredentialID = longest }},
		{"binary public key", func(c *store.WebAuthnCredential) { c.PublicKey = binary }},
		{"used", func(c *store.WebAuthnCredential) { c.LastUsedAt, c.SignCount = &usedAt, 7 }},
		{"largest sign count", func(c *store.WebAuthnCredential) { c.SignCount = 1<<32 - 1 }},
		{"empty name", func(c *store.WebAuthnCredential) { c.Name = "" }},
		{"unicode name", func(c *store.WebAuthnCredential) { c.Name = "Clé de sécurité 🔑" }},
		{"time below a microsecond", func(c *store.WebAuthnCredential) { c.CreatedAt = base.Add(999 * time.Nanosecond) }},
		{"time before the unix epoch", func(c *store.WebAuthnCredential) {
			c.CreatedAt = time.Date(1969, 7, 20, 20, 17, 40, 123_456_789, time.UTC)
		}},
		{"zero time", func(c *store.WebAuthnCredential) { c.CreatedAt = time.Time{} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newWebAuthnCredential(fmt.Sprintf("wac_%02d", i), "u1")
			tc.mod(c)
			mustCreateWebAuthnCredential(t, s, c)
			got := mustWebAuthnCredential(t, s, c.CredentialID)
			if d := diff(wantWebAuthnCredential(c), got); d != "" {
				t.Errorf("WebAuthnCredentialByCredentialID (-want +got):\n%s", d)
			}
			if got.CreatedAt.Location() != time.UTC {
				t.Errorf("CreatedAt in %s, want UTC", got.CreatedAt.Location())
			}
			if got.LastUsedAt != nil && got.LastUsedAt.Location() != time.UTC {
				t.Errorf("LastUsedAt in %s, want UTC", got.LastUsedAt.Location())
			}
			var listed *store.WebAuthnCredential
			for _, l := range mustWebAuthnCredentials(t, s, "u1") {
				if l.ID == c.ID {
					listed = l
				}
			}
			if d := diff(wantWebAuthnCredential(c), listed); d != "" {
				t.Errorf("listed credential (-want +got):\n%s", d)
			}
		})
	}
}

// testCreateWebAuthnCredentialConflict registers credentials whose id or
// credential id is taken: refused, whoever owns the other one, and
// nothing changes.
func testCreateWebAuthnCredentialConflict(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	mustCreateUser(t, s, newUser("u2"))
	orig := mustCreateWebAuthnCredential(t, s, newWebAuthnCredential("wac_1", "u1"))
	other := mustCreateWebAuthnCredential(t, s, newWebAuthnCredential("wac_2", "u2"))
	sameID := newWebAuthnCredential("wac_1", "u1")
	sameID.CredentialID = tokenHash("another credential")
	sameIDOtherUser := newWebAuthnCredential("wac_1", "u2")
	sameIDOtherUser.CredentialID = tokenHash("yet another credential")
	sameCredentialID := newWebAuthnCredential("wac_3", "u1")
	sameCredentialID.CredentialID = orig.CredentialID
	sameCredentialIDOtherUser := newWebAuthnCredential("wac_4", "u2")
	sameCredentialIDOtherUser.CredentialID = orig.CredentialID
	othersCredentialID := newWebAuthnCredential("wac_5", "u1")
	othersCredentialID.CredentialID = other.CredentialID
	for _, tc := range []struct {
		name string
		c    *store.WebAuthnCredential
	}{
		{"same id", sameID},
		{"same id, another user", sameIDOtherUser},
		{"same credential id", sameCredentialID},
		{"same credential id, another user", sameCredentialIDOtherUser},
		{"another user's credential id", othersCredentialID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.WebAuthn().CreateWebAuthnCredential(t.Context(), tc.c)
			wantErr(t, "CreateWebAuthnCredential", err, store.ErrConflict)
			if !bytes.Equal(tc.c.CredentialID, orig.CredentialID) && !bytes.Equal(tc.c.CredentialID, other.CredentialID) {
				_, err := s.WebAuthn().WebAuthnCredentialByCredentialID(t.Context(), tc.c.CredentialID)
				wantErr(t, "lookup of the rejected credential", err, store.ErrNotFound)
			}
			wantStoredWebAuthn(t, s, "u1", orig)
			wantStoredWebAuthn(t, s, "u2", other)
		})
	}
}

// testWebAuthnNotFound looks up, uses, renames and deletes credentials
// that do not exist or belong to another user.
func testWebAuthnNotFound(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	mustCreateUser(t, s, newUser("u2"))
	mustCreateUser(t, s, newUser("u3"))
	c1 := mustCreateWebAuthnCredential(t, s, newWebAuthnCredential("wac_1", "u1"))
	c2 := mustCreateWebAuthnCredential(t, s, newWebAuthnCredential("wac_2", "u2"))
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"WebAuthnCredentialByCredentialID of an unknown id", func() error {
			_, err := s.WebAuthn().WebAuthnCredentialByCredentialID(t.Context(), tokenHash("unknown"))
			return err
		}},
		{"WebAuthnCredentialByCredentialID with a prefix of a stored id", func() error {
			_, err := s.WebAuthn().WebAuthnCredentialByCredentialID(t.Context(), c1.CredentialID[:16])
			return err
		}},
		{"WebAuthnCredentialByCredentialID with a nil id", func() error {
			_, err := s.WebAuthn().WebAuthnCredentialByCredentialID(t.Context(), nil)
			return err
		}},
		{"WebAuthnCredentialByCredentialID with an empty id", func() error {
			_, err := s.WebAuthn().WebAuthnCredentialByCredentialID(t.Context(), []byte{})
			return err
		}},
		{"WebAuthnCredentialByCredentialID with the API id", func() error {
			_, err := s.WebAuthn().WebAuthnCredentialByCredentialID(t.Context(), []byte(c1.ID))
			return err
		}},
		{"UseWebAuthnCredential of a missing id", func() error {
			return s.WebAuthn().UseWebAuthnCredential(t.Context(), "missing", 0, 1, false, base)
		}},
		{"RenameWebAuthnCredential of a missing id", func() error {
			return s.WebAuthn().RenameWebAuthnCredential(t.Context(), "u1", "missing", "renamed")
		}},
		{"RenameWebAuthnCredential of another user's credential", func() error {
			return s.WebAuthn().RenameWebAuthnCredential(t.Context(), "u1", c2.ID, "renamed")
		}},
		{"RenameWebAuthnCredential by a user without credentials", func() error {
			return s.WebAuthn().RenameWebAuthnCredential(t.Context(), "u3", c1.ID, "renamed")
		}},
		{"RenameWebAuthnCredential by a missing user", func() error {
			return s.WebAuthn().RenameWebAuthnCredential(t.Context(), "missing", c1.ID, "renamed")
		}},
		{"DeleteWebAuthnCredential of a missing id", func() error {
			return s.WebAuthn().DeleteWebAuthnCredential(t.Context(), "u1", "missing")
		}},
		{"DeleteWebAuthnCredential of another user's credential", func() error {
			return s.WebAuthn().DeleteWebAuthnCredential(t.Context(), "u1", c2.ID)
		}},
		{"DeleteWebAuthnCredential by a user without credentials", func() error {
			return s.WebAuthn().DeleteWebAuthnCredential(t.Context(), "u3", c1.ID)
		}},
		{"DeleteWebAuthnCredential by a missing user", func() error {
			return s.WebAuthn().DeleteWebAuthnCredential(t.Context(), "missing", c1.ID)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, tc.name, tc.call(), store.ErrNotFound)
		})
	}
	for _, u := range []string{"u3", "missing"} {
		if cs, err := s.WebAuthn().WebAuthnCredentialsByUser(t.Context(), u); err != nil || len(cs) != 0 {
			t.Errorf("WebAuthnCredentialsByUser(%s) = %d credentials, %v; want none, nil", u, len(cs), err)
		}
		if n, err := s.WebAuthn().DeleteUserWebAuthnCredentials(t.Context(), u); err != nil || n != 0 {
			t.Errorf("DeleteUserWebAuthnCredentials(%s) = %d, %v; want 0, nil", u, n, err)
		}
	}
	wantStoredWebAuthn(t, s, "u1", c1)
	wantStoredWebAuthn(t, s, "u2", c2)
}

// testWebAuthnCredentialsByUser lists credentials created in an order
// other than their CreatedAt's, some at one instant (the id breaks the
// tie) once stored with the microsecond precision.
func testWebAuthnCredentialsByUser(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	mustCreateUser(t, s, newUser("u2"))
	mk := func(id, userID string, createdAt time.Duration) *store.WebAuthnCredential {
		c := newWebAuthnCredential(id, userID)
		c.CreatedAt = base.Add(createdAt)
		return mustCreateWebAuthnCredential(t, s, c)
	}
	third := mk("wac_a", "u1", 3*time.Hour)
	first := mk("wac_z", "u1", time.Hour)
	tieB := mk("wac_c", "u1", 2*time.Hour+900*time.Nanosecond)
	other := mk("wac_b", "u2", 2*time.Hour)
	tieA := mk("wac_b2", "u1", 2*time.Hour+100*time.Nanosecond)
	if norm(tieA.CreatedAt) != norm(tieB.CreatedAt) {
		t.Fatal("the tied credentials are not stored at one instant")
	}
	for _, tc := range []struct {
		name   string
		userID string
		want   []*store.WebAuthnCredential
	}{
		{"oldest first, ties by id", "u1", []*store.WebAuthnCredential{first, tieA, tieB, third}},
		{"another user", "u2", []*store.WebAuthnCredential{other}},
		{"a user without credentials", "u3", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.WebAuthn().WebAuthnCredentialsByUser(t.Context(), tc.userID)
			if err != nil {
				t.Fatalf("WebAuthnCredentialsByUser: %v", err)
			}
			if d := diff(wantWebAuthnCredentials(tc.want...), got); d != "" {
				t.Errorf("WebAuthnCredentialsByUser (-want +got):\n%s", d)
			}
		})
	}
}

// testUseWebAuthnCredential records assertions in sequence: only one
// made from the stored count is accepted.
func testUseWebAuthnCredential(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	mustCreateUser(t, s, newUser("u2"))
	c := newWebAuthnCredential("wac_1", "u1")
	c.SignCount, c.BackupState = 10, false
	mustCreateWebAuthnCredential(t, s, c)
	counterless := newWebAuthnCredential("wac_2", "u1")
	mustCreateWebAuthnCredential(t, s, counterless)
	bystander := mustCreateWebAuthnCredential(t, s, newWebAuthnCredential("wac_3", "u2"))
	want := *c
	at := func(i int) time.Time { return base.Add(time.Duration(i)*time.Minute + 7*time.Nanosecond) }
	for i, step := range []struct {
		name        string
		id          string
		old, new    uint32
		backupState bool
		want        error
	}{
		{"the next count", c.ID, 10, 11, true, nil},
		{"from the previous count", c.ID, 10, 12, true, store.ErrConflict},
		{"from a count above the stored one", c.ID, 12, 13, false, store.ErrConflict},
		{"skipping counts, no longer backed up", c.ID, 11, 100, false, nil},
		{"the largest count", c.ID, 100, 1<<32 - 1, true, nil},
		{"from the largest count", c.ID, 1<<32 - 1, 0, true, nil},
		{"from the largest count again", c.ID, 1<<32 - 1, 1, true, store.ErrConflict},
		{"the same count", c.ID, 0, 0, false, nil},
		{"the same count again", c.ID, 0, 0, true, nil},
		{"from a count below the stored one", c.ID, 0, 5, true, nil},
		{"from zero again", c.ID, 0, 6, true, store.ErrConflict},
	} {
		t.Run(step.name, func(t *testing.T) {
			err := s.WebAuthn().UseWebAuthnCredential(t.Context(), step.id, step.old, step.new, step.backupState, at(i))
			if step.want != nil {
				wantErr(t, "UseWebAuthnCredential", err, step.want)
			} else if err != nil {
				t.Fatalf("UseWebAuthnCredential: %v", err)
			} else {
				usedAt := at(i)
				want.SignCount, want.BackupState, want.LastUsedAt = step.new, step.backupState, &usedAt
			}
			if d := diff(wantWebAuthnCredential(&want), mustWebAuthnCredential(t, s, c.CredentialID)); d != "" {
				t.Errorf("stored credential (-want +got):\n%s", d)
			}
		})
	}
	// An authenticator that does not count reports 0 each time: every use
	// is recorded.
	t.Run("an authenticator that does not count", func(t *testing.T) {
		for i := range 3 {
			usedAt := at(100 + i)
			if err := s.WebAuthn().UseWebAuthnCredential(t.Context(), counterless.ID, 0, 0, true, usedAt); err != nil {
				t.Fatalf("use %d: %v", i, err)
			}
			want := *counterless
			want.LastUsedAt = &usedAt
			if d := diff(wantWebAuthnCredential(&want), mustWebAuthnCredential(t, s, counterless.CredentialID)); d != "" {
				t.Errorf("stored credential after use %d (-want +got):\n%s", i, d)
			}
		}
	})
	wantStoredWebAuthn(t, s, "u2", bystander)
}

// testRenameWebAuthnCredential renames a credential: only its name
// changes, and only the owner's credential.
func testRenameWebAuthnCredential(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	mustCreateUser(t, s, newUser("u2"))
	c := mustCreateWebAuthnCredential(t, s, newWebAuthnCredential("wac_1", "u1"))
	sibling := mustCreateWebAuthnCredential(t, s, newWebAuthnCredential("wac_2", "u1"))
	bystander := mustCreateWebAuthnCredential(t, s, newWebAuthnCredential("wac_3", "u2"))
	for _, name := range []string{"Work laptop", "Work laptop", "Clé 🔑", "", sibling.Name} {
		t.Run(fmt.Sprintf("%q", name), func(t *testing.T) {
			if err := s.WebAuthn().RenameWebAuthnCredential(t.Context(), "u1", c.ID, name); err != nil {
				t.Fatalf("RenameWebAuthnCredential: %v", err)
			}
			want := *c
			want.Name = name
			wantStoredWebAuthn(t, s, "u1", &want, sibling)
			wantStoredWebAuthn(t, s, "u2", bystander)
		})
	}
}

// testDeleteWebAuthnCredential deletes one credential of the user; its
// credential id is free again afterwards.
func testDeleteWebAuthnCredential(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	mustCreateUser(t, s, newUser("u2"))
	c := mustCreateWebAuthnCredential(t, s, newWebAuthnCredential("wac_1", "u1"))
	sibling := mustCreateWebAuthnCredential(t, s, newWebAuthnCredential("wac_2", "u1"))
	bystander := mustCreateWebAuthnCredential(t, s, newWebAuthnCredential("wac_3", "u2"))
	if err := s.WebAuthn().DeleteWebAuthnCredential(t.Context(), "u1", c.ID); err != nil {
		t.Fatalf("DeleteWebAuthnCredential: %v", err)
	}
	_, err := s.WebAuthn().WebAuthnCredentialByCredentialID(t.Context(), c.CredentialID)
	wantErr(t, "WebAuthnCredentialByCredentialID after the delete", err, store.ErrNotFound)
	wantErr(t, "DeleteWebAuthnCredential again", s.WebAuthn().DeleteWebAuthnCredential(t.Context(), "u1", c.ID), store.ErrNotFound)
	wantErr(t, "UseWebAuthnCredential after the delete", s.WebAuthn().UseWebAuthnCredential(t.Context(), c.ID, 0, 1, true, base), store.ErrNotFound)
	wantErr(t, "RenameWebAuthnCredential after the delete", s.WebAuthn().RenameWebAuthnCredential(t.Context(), "u1", c.ID, "renamed"), store.ErrNotFound)
	wantStoredWebAuthn(t, s, "u1", sibling)
	wantStoredWebAuthn(t, s, "u2", bystander)

	// The id and the credential id can be registered again, by anyone.
	again := newWebAuthnCredential(c.ID, "u2")
	again.CreatedAt = base.Add(time.Hour)
	mustCreateWebAuthnCredential(t, s, again)
	wantStoredWebAuthn(t, s, "u2", bystander, again)
}

// testDeleteUserWebAuthnCredentials deletes every credential of a user and
// no other user's.
func testDeleteUserWebAuthnCredentials(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	mustCreateUser(t, s, newUser("u2"))
	var mine []*store.WebAuthnCredential
	for i := range 3 {
		mine = append(mine, mustCreateWebAuthnCredential(t, s, newWebAuthnCredential(fmt.Sprintf("wac_%d", i), "u1")))
	}
	bystander := mustCreateWebAuthnCredential(t, s, newWebAuthnCredential("wac_other", "u2"))
	for _, step := range []struct {
		name string
		want int
	}{
		{"every credential", 3},
		{"again", 0},
	} {
		t.Run(step.name, func(t *testing.T) {
			n, err := s.WebAuthn().DeleteUserWebAuthnCredentials(t.Context(), "u1")
			if err != nil || n != step.want {
				t.Fatalf("DeleteUserWebAuthnCredentials = %d, %v; want %d, nil", n, err, step.want)
			}
			wantStoredWebAuthn(t, s, "u1")
			for _, c := range mine {
				_, err := s.WebAuthn().WebAuthnCredentialByCredentialID(t.Context(), c.CredentialID)
				wantErr(t, "WebAuthnCredentialByCredentialID("+c.ID+")", err, store.ErrNotFound)
			}
			wantStoredWebAuthn(t, s, "u2", bystander)
		})
	}
}

// testWebAuthnInTx registers, uses, renames and deletes credentials inside
// transactions: the transaction sees its own writes, and a rollback takes
// them back.
func testWebAuthnInTx(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	old := mustCreateWebAuthnCredential(t, s, newWebAuthnCredential("wac_old", "u1"))
	fresh := newWebAuthnCredential("wac_fresh", "u1")
	fresh.CreatedAt = base.Add(time.Minute)
	usedAt := base.Add(2 * time.Minute)
	err := s.InTx(t.Context(), func(tx store.Tx) error {
		mustCreateWebAuthnCredential(t, tx, fresh)
		wantStoredWebAuthn(t, tx, "u1", old, fresh)
		if err := tx.WebAuthn().UseWebAuthnCredential(t.Context(), fresh.ID, 0, 1, true, usedAt); err != nil {
			t.Errorf("UseWebAuthnCredential inside the transaction: %v", err)
		}
		err := tx.WebAuthn().UseWebAuthnCredential(t.Context(), fresh.ID, 0, 2, true, usedAt)
		wantErr(t, "second UseWebAuthnCredential inside the transaction", err, store.ErrConflict)
		if err := tx.WebAuthn().RenameWebAuthnCredential(t.Context(), "u1", fresh.ID, "renamed"); err != nil {
			t.Errorf("RenameWebAuthnCredential inside the transaction: %v", err)
		}
		want := *fresh
		want.SignCount, want.LastUsedAt, want.Name = 1, &usedAt, "renamed"
		if d := diff(wantWebAuthnCredential(&want), mustWebAuthnCredential(t, tx, fresh.CredentialID)); d != "" {
			t.Errorf("credential inside the transaction (-want +got):\n%s", d)
		}
		if err := tx.WebAuthn().DeleteWebAuthnCredential(t.Context(), "u1", old.ID); err != nil {
			t.Errorf("DeleteWebAuthnCredential inside the transaction: %v", err)
		}
		if n, err := tx.WebAuthn().DeleteUserWebAuthnCredentials(t.Context(), "u1"); err != nil || n != 1 {
			t.Errorf("DeleteUserWebAuthnCredentials inside the transaction = %d, %v; want 1", n, err)
		}
		wantStoredWebAuthn(t, tx, "u1")
		return errAbort
	})
	wantErr(t, "InTx", err, errAbort)
	wantStoredWebAuthn(t, s, "u1", old)
	_, err = s.WebAuthn().WebAuthnCredentialByCredentialID(t.Context(), fresh.CredentialID)
	wantErr(t, "WebAuthnCredentialByCredentialID(fresh) after rollback", err, store.ErrNotFound)

	err = s.InTx(t.Context(), func(tx store.Tx) error {
		if err := tx.WebAuthn().UseWebAuthnCredential(t.Context(), old.ID, 0, 1, true, usedAt); err != nil {
			return err
		}
		return tx.Audit().AppendEvent(t.Context(), &store.Event{Type: "signin", UserID: "u1", At: usedAt})
	})
	if err != nil {
		t.Fatalf("InTx: %v", err)
	}
	want := *old
	want.SignCount, want.LastUsedAt = 1, &usedAt
	wantStoredWebAuthn(t, s, "u1", &want)
}
