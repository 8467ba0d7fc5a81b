package storetest

import (
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

var usersTests = []storeTest{
	{"CreateAndGet", testCreateAndGetUser},
	{"CreateConflict", testCreateUserConflict},
	{"NotFound", testUsersNotFound},
	{"SetPasswordHash", testSetPasswordHash},
}

func testCreateAndGetUser(t *testing.T, s store.Store) {
	minimal := &store.User{ID: "u-minimal", Email: "m@example.org", EmailKey: "m@example.org", CreatedAt: base, UpdatedAt: base}
	unicode := newUser("u-unicode")
	unicode.Name = "Zoë Ångström 山田 \"quoted\" 'single' ; DROP TABLE users; --"
	unicode.Email = "Zoë@xn--bcher-kva.example"
	unicode.UpdatedAt = base.Add(time.Hour)
	for _, u := range []*store.User{newUser("u-full"), minimal, unicode} {
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
		})
	}
}

func testCreateUserConflict(t *testing.T, s store.Store) {
	orig := mustCreateUser(t, s, newUser("u1"))
	sameEmail := newUser("u2")
	sameEmail.EmailKey = orig.EmailKey
	sameID := newUser("u1")
	sameID.EmailKey = "other@example.com"
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
