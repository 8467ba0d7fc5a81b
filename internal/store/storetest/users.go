package storetest

import (
	"cmp"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

var usersTests = []storeTest{
	{"CreateAndGet", testCreateAndGetUser},
	{"CreateConflict", testCreateUserConflict},
	{"NotFound", testUsersNotFound},
	{"SetPasswordHash", testSetPasswordHash},
	{"MarkEmailVerified", testMarkEmailVerified},
	{"ChangeEmail", testChangeEmail},
	{"SetPhone", testSetPhone},
	{"SetAdmin", testSetAdmin},
}

func testCreateAndGetUser(t *testing.T, s store.Store) {
	minimal := &store.User{ID: "u-minimal", Email: "m@example.org", EmailKey: "m@example.org", CreatedAt: base, UpdatedAt: base}
	unicode := newUser("u-unicode")
	unicode.Name = "Zoë Ångström 山田 \"quoted\" 'single' ; DROP TABLE users; --"
	unicode.Email = "Zoë@xn--bcher-kva.example"
	unicode.UpdatedAt = base.Add(time.Hour)
	phone := newUser("u-phone")
	phone.Phone = "+351912345678"
	full := newUser("u-full")
	full.Phone, full.Admin = "+14155550100", true
	admin := newUser("u-admin")
	admin.Admin = true
	for _, u := range []*store.User{full, minimal, unicode, phone, admin} {
		t.Run(u.ID, func(t *testing.T) {
			mustCreateUser(t, s, u)
			got, err := s.Users().UserByID(t.Context(), u.ID)
			if err != nil {
				t.Fatalf("UserByID: %v", err)
			}
			if d := diff(wantUser(u), got); d != "" {
				t.Errorf("UserByID mismatch (-want +got):\n%s", d)
			}
			got, err = s.Users().UserByEmailKey(t.Context(), u.EmailKey)
			if err != nil {
				t.Fatalf("UserByEmailKey: %v", err)
			}
			if d := diff(wantUser(u), got); d != "" {
				t.Errorf("UserByEmailKey mismatch (-want +got):\n%s", d)
			}
			if u.Phone == "" {
				return
			}
			got, err = s.Users().UserByPhone(t.Context(), u.Phone)
			if err != nil {
				t.Fatalf("UserByPhone: %v", err)
			}
			if d := diff(wantUser(u), got); d != "" {
				t.Errorf("UserByPhone mismatch (-want +got):\n%s", d)
			}
		})
	}
}

func testCreateUserConflict(t *testing.T, s store.Store) {
	orig := mustCreateUser(t, s, newUser("u1"))
	sameEmail := newUser("u2")
	sameEmail.EmailKey = orig.EmailKey
	orig.Phone = "+14155550100"
	if err := s.Users().SetPhone(t.Context(), orig.ID, orig.Phone, orig.UpdatedAt); err != nil {
		t.Fatalf("SetPhone: %v", err)
	}
	sameID := newUser("u1")
	sameID.EmailKey = "other@example.com"
	samePhone := newUser("u3")
	samePhone.Phone = orig.Phone
	for _, tc := range []struct {
		name   string
		u      *store.User
		absent func() error // the rejected user left no trace
	}{
		{"same email key", sameEmail, func() error {
			_, err := s.Users().UserByID(t.Context(), "u2")
			return err
		}},
		{"same id", sameID, func() error {
			_, err := s.Users().UserByEmailKey(t.Context(), "other@example.com")
			return err
		}},
		{"same phone", samePhone, func() error {
			_, err := s.Users().UserByID(t.Context(), "u3")
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, "CreateUser", s.Users().CreateUser(t.Context(), tc.u), store.ErrConflict)
			wantErr(t, "lookup of the rejected user", tc.absent(), store.ErrNotFound)
			if d := diff(wantUser(orig), mustUser(t, s, orig.ID)); d != "" {
				t.Errorf("original user changed (-want +got):\n%s", d)
			}
		})
	}
}

func testUsersNotFound(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"UserByID", func() error {
			_, err := s.Users().UserByID(t.Context(), "missing")
			return err
		}},
		{"UserByEmailKey", func() error {
			_, err := s.Users().UserByEmailKey(t.Context(), "missing@example.com")
			return err
		}},
		{"UserByEmailKey is exact", func() error {
			_, err := s.Users().UserByEmailKey(t.Context(), "USER.U1@EXAMPLE.COM")
			return err
		}},
		{"SetPasswordHash", func() error {
			return s.Users().SetPasswordHash(t.Context(), "missing", "", "new", base)
		}},
		{"UserByPhone", func() error {
			_, err := s.Users().UserByPhone(t.Context(), "+14155550199")
			return err
		}},
		// u1 has no phone: "" must not find the users without one.
		{"UserByPhone with no number", func() error {
			_, err := s.Users().UserByPhone(t.Context(), "")
			return err
		}},
		{"MarkEmailVerified", func() error {
			return s.Users().MarkEmailVerified(t.Context(), "missing", newUser("u1").EmailKey, base)
		}},
		{"ChangeEmail", func() error {
			return s.Users().ChangeEmail(t.Context(), "missing", newUser("u1").EmailKey, "New@example.com", "new@example.com", base)
		}},
		{"SetPhone", func() error {
			return s.Users().SetPhone(t.Context(), "missing", "+14155550199", base)
		}},
		{"SetPhone clearing", func() error {
			return s.Users().SetPhone(t.Context(), "missing", "", base)
		}},
		{"SetAdmin", func() error {
			return s.Users().SetAdmin(t.Context(), "missing", true, base)
		}},
		{"SetAdmin revoking", func() error {
			return s.Users().SetAdmin(t.Context(), "missing", false, base)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, tc.name, tc.call(), store.ErrNotFound)
		})
	}
}

func testSetPasswordHash(t *testing.T, s store.Store) {
	for _, tc := range []struct {
		name     string
		stored   string // hash at creation
		before   []string
		old, new string
		want     error
	}{
		{name: "matching old hash", stored: "h1", old: "h1", new: "h2"},
		{name: "from empty hash", stored: "", old: "", new: "h2"},
		{name: "stale old hash", stored: "h1", old: "h0", new: "h2", want: store.ErrConflict},
		{name: "empty old hash when one is set", stored: "h1", old: "", new: "h2", want: store.ErrConflict},
		// A transparent rehash computed from h1 must not undo a password
		// change to h2 that committed first.
		{name: "rehash after password change", stored: "h1", before: []string{"h1", "changed"}, old: "h1", new: "rehashed", want: store.ErrConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := newUser("u-" + tc.name)
			u.PasswordHash = tc.stored
			mustCreateUser(t, s, u)
			want := wantUser(u)
			for i := 0; i < len(tc.before); i += 2 {
				if err := s.Users().SetPasswordHash(t.Context(), u.ID, tc.before[i], tc.before[i+1], base.Add(time.Minute)); err != nil {
					t.Fatalf("SetPasswordHash (setup): %v", err)
				}
				want.PasswordHash, want.UpdatedAt = tc.before[i+1], norm(base.Add(time.Minute))
			}
			at := base.Add(time.Hour + 123*time.Nanosecond)
			err := s.Users().SetPasswordHash(t.Context(), u.ID, tc.old, tc.new, at)
			if tc.want != nil {
				wantErr(t, "SetPasswordHash", err, tc.want)
			} else {
				if err != nil {
					t.Fatalf("SetPasswordHash: %v", err)
				}
				want.PasswordHash, want.UpdatedAt = tc.new, norm(at)
			}
			if d := diff(want, mustUser(t, s, u.ID)); d != "" {
				t.Errorf("stored user (-want +got):\n%s", d)
			}
		})
	}
}

func testMarkEmailVerified(t *testing.T, s store.Store) {
	at := base.Add(time.Hour + 123*time.Nanosecond)
	for _, tc := range []struct {
		name     string
		id       string
		verified bool   // at creation
		emailKey string // "" for the user's own
		want     error
	}{
		{name: "unverified", id: "u-unverified"},
		// Verified already: not an error, and nothing changes.
		{name: "verified", id: "u-verified", verified: true},
		{name: "e-mail changed since", id: "u-changed", emailKey: "old@example.com", want: store.ErrConflict},
		{name: "e-mail key differs in case", id: "u-case", emailKey: "USER.U-CASE@EXAMPLE.COM", want: store.ErrConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := newUser(tc.id)
			u.EmailVerified = tc.verified
			mustCreateUser(t, s, u)
			key := cmp.Or(tc.emailKey, u.EmailKey)
			want := wantUser(u)
			err := s.Users().MarkEmailVerified(t.Context(), u.ID, key, at)
			switch {
			case tc.want != nil:
				wantErr(t, "MarkEmailVerified", err, tc.want)
			case err != nil:
				t.Fatalf("MarkEmailVerified: %v", err)
			case !tc.verified:
				want.EmailVerified, want.UpdatedAt = true, norm(at)
			}
			if d := diff(want, mustUser(t, s, u.ID)); d != "" {
				t.Errorf("stored user (-want +got):\n%s", d)
			}
		})
	}
}

func testChangeEmail(t *testing.T, s store.Store) {
	other := mustCreateUser(t, s, newUser("u-other"))
	at := base.Add(time.Hour + 123*time.Nanosecond)
	for _, tc := range []struct {
		name             string
		id               string
		verified         bool   // at creation
		oldKey           string // "" for the user's own
		newEmail, newKey string
		want             error
	}{
		{name: "to a new address", id: "u-new", newEmail: "Fresh@Example.org", newKey: "fresh@example.org"},
		{name: "marks the new address verified", id: "u-unverified", newEmail: "Second@Example.org", newKey: "second@example.org"},
		{name: "same key, new spelling", id: "u-same", verified: true, newEmail: "USER.u-same@example.com", newKey: "user.u-same@example.com"},
		{name: "e-mail changed since", id: "u-stale", verified: true, oldKey: "stale@example.com",
			newEmail: "Third@Example.org", newKey: "third@example.org", want: store.ErrConflict},
		{name: "new address taken", id: "u-taken", verified: true, newEmail: other.Email, newKey: other.EmailKey, want: store.ErrConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := newUser(tc.id)
			u.EmailVerified = tc.verified
			mustCreateUser(t, s, u)
			want := wantUser(u)
			err := s.Users().ChangeEmail(t.Context(), u.ID, cmp.Or(tc.oldKey, u.EmailKey), tc.newEmail, tc.newKey, at)
			if tc.want != nil {
				wantErr(t, "ChangeEmail", err, tc.want)
			} else {
				if err != nil {
					t.Fatalf("ChangeEmail: %v", err)
				}
				want.Email, want.EmailKey, want.EmailVerified, want.UpdatedAt = tc.newEmail, tc.newKey, true, norm(at)
			}
			if d := diff(want, mustUser(t, s, u.ID)); d != "" {
				t.Errorf("stored user (-want +got):\n%s", d)
			}
			got, err := s.Users().UserByEmailKey(t.Context(), want.EmailKey)
			if err != nil || got.ID != u.ID {
				t.Errorf("UserByEmailKey(%s) = %v, %v; want %s", want.EmailKey, got, err, u.ID)
			}
			if want.EmailKey != u.EmailKey {
				_, err := s.Users().UserByEmailKey(t.Context(), u.EmailKey)
				wantErr(t, "UserByEmailKey(the old key)", err, store.ErrNotFound)
			}
			if d := diff(wantUser(other), mustUser(t, s, other.ID)); d != "" {
				t.Errorf("other user changed (-want +got):\n%s", d)
			}
		})
	}
}

// testSetPhone walks one user's number through set, replace, a refused
// taken number and clear; a cleared number is free for another user, and
// any number of users have none.
func testSetPhone(t *testing.T, s store.Store) {
	const (
		first  = "+14155550100"
		second = "+351912345678"
	)
	other := newUser("u-other")
	other.Phone = second
	mustCreateUser(t, s, other)
	mustCreateUser(t, s, newUser("u-none"))
	u := mustCreateUser(t, s, newUser("u1"))
	want := wantUser(u)
	for i, step := range []struct {
		name  string
		id    string
		phone string
		err   error
	}{
		{"set", "u1", first, nil},
		{"set again", "u1", first, nil}, // changes nothing
		{"another user's number", "u1", second, store.ErrConflict},
		{"clear", "u1", "", nil},
		{"clear again", "u1", "", nil},
		{"number freed by the other user", "u-other", "", nil},
		{"freed number", "u1", second, nil},
	} {
		t.Run(step.name, func(t *testing.T) {
			at := base.Add(time.Duration(i+1)*time.Minute + 321*time.Nanosecond)
			err := s.Users().SetPhone(t.Context(), step.id, step.phone, at)
			if step.err != nil {
				wantErr(t, "SetPhone", err, step.err)
			} else if err != nil {
				t.Fatalf("SetPhone: %v", err)
			}
			if step.err == nil && step.id == u.ID && step.phone != want.Phone {
				want.Phone, want.UpdatedAt = step.phone, norm(at)
			}
			if d := diff(want, mustUser(t, s, u.ID)); d != "" {
				t.Errorf("stored user (-want +got):\n%s", d)
			}
			if want.Phone != "" {
				if got, err := s.Users().UserByPhone(t.Context(), want.Phone); err != nil || got.ID != u.ID {
					t.Errorf("UserByPhone(%s) = %v, %v; want %s", want.Phone, got, err, u.ID)
				}
			}
			for _, p := range []string{first, second} {
				if p == want.Phone {
					continue
				}
				got, err := s.Users().UserByPhone(t.Context(), p)
				if err == nil && got.ID == u.ID {
					t.Errorf("UserByPhone(%s) finds %s, whose number is %q", p, u.ID, want.Phone)
				}
			}
		})
	}
	if _, err := s.Users().UserByPhone(t.Context(), first); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UserByPhone of a number no one has = %v, want ErrNotFound", err)
	}
	if got := mustUser(t, s, "u-other"); got.Phone != "" {
		t.Errorf("u-other's phone = %q, want none", got.Phone)
	}
}

// testSetAdmin grants and revokes the flag from either starting value:
// a change moves UpdatedAt to at, setting the current value is not an
// error and changes nothing, not even UpdatedAt. Other users keep theirs.
func testSetAdmin(t *testing.T, s store.Store) {
	for _, tc := range []struct {
		name  string
		admin bool   // at creation
		set   []bool // successive SetAdmin calls
	}{
		{name: "grant", set: []bool{true}},
		{name: "revoke", admin: true, set: []bool{false}},
		{name: "grant to an admin", admin: true, set: []bool{true}},
		{name: "revoke from a non-admin", set: []bool{false}},
		{name: "grant twice", set: []bool{true, true}},
		{name: "grant, revoke, grant", set: []bool{true, false, true}},
		{name: "revoke twice", admin: true, set: []bool{false, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "u-" + strings.ReplaceAll(tc.name, " ", "-")
			u := newUser(id)
			u.Admin = tc.admin
			mustCreateUser(t, s, u)
			other := newUser(id + "-other")
			other.Admin = !tc.admin
			mustCreateUser(t, s, other)
			want := wantUser(u)
			if d := diff(want, mustUser(t, s, u.ID)); d != "" {
				t.Fatalf("created user (-want +got):\n%s", d)
			}
			for i, admin := range tc.set {
				at := base.Add(time.Duration(i+1)*time.Minute + 321*time.Nanosecond)
				if err := s.Users().SetAdmin(t.Context(), u.ID, admin, at); err != nil {
					t.Fatalf("SetAdmin(%v) #%d: %v", admin, i+1, err)
				}
				if admin != want.Admin {
					want.Admin, want.UpdatedAt = admin, norm(at)
				}
				if d := diff(want, mustUser(t, s, u.ID)); d != "" {
					t.Errorf("after SetAdmin(%v) #%d (-want +got):\n%s", admin, i+1, d)
				}
			}
			if got, err := s.Users().UserByEmailKey(t.Context(), u.EmailKey); err != nil || got.Admin != want.Admin {
				t.Errorf("UserByEmailKey = %+v, %v; want Admin %v", got, err, want.Admin)
			}
			if d := diff(wantUser(other), mustUser(t, s, other.ID)); d != "" {
				t.Errorf("other user changed (-want +got):\n%s", d)
			}
		})
	}
}
