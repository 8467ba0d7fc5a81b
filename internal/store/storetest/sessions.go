package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

var sessionsTests = []storeTest{
	{"CreateAndGet", testCreateAndGetSession},
	{"CreateConflict", testCreateSessionConflict},
	{"NotFound", testSessionsNotFound},
	{"ListActiveSessions", testListActiveSessions},
	{"TouchSession", testTouchSession},
	{"RotateSessionToken", testRotateSessionToken},
	{"RevokeSession", testRevokeSession},
	{"RevokeUserSessions", testRevokeUserSessions},
	{"RevokedSessionsSince", testRevokedSessionsSince},
}

func testCreateAndGetSession(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	full := newSession("s-full", "u1")
	full.AAL, full.AMR = 2, []string{"pwd", "otp", "mfa"}
	full.LastSeenAt, full.AuthTime = base.Add(time.Minute), base.Add(30*time.Second)
	minimal := &store.Session{ID: "s-minimal", UserID: "u1", TokenHash: tokenHash("minimal"),
		CreatedAt: base, LastSeenAt: base, AuthTime: base, ExpiresAt: base.Add(time.Hour)}
	binary := newSession("s-binary", "u1")
	binary.TokenHash = make([]byte, 32) // NUL and high bytes must survive
	for i := range binary.TokenHash {
		binary.TokenHash[i] = byte(i * 37)
	}
	revoked := newSession("s-revoked", "u1")
	revokedAt := base.Add(2 * time.Minute)
	revoked.RevokedAt, revoked.RevokeReason = &revokedAt, "logout"
	cookie := newSession("s-cookie", "u1")
	cookie.Kind = store.SessionCookie
	token := newSession("s-token", "u1")
	token.Kind = store.SessionToken
	for _, ss := range []*store.Session{full, minimal, binary, revoked, cookie, token} {
		t.Run(ss.ID, func(t *testing.T) {
			mustCreateSession(t, s, ss)
			got, err := s.Sessions().SessionByID(t.Context(), ss.ID)
			if err != nil {
				t.Fatalf("SessionByID: %v", err)
			}
			if d := diff(wantSession(ss), got); d != "" {
				t.Errorf("SessionByID mismatch (-want +got):\n%s", d)
			}
			got, err = s.Sessions().SessionByTokenHash(t.Context(), ss.TokenHash)
			if err != nil {
				t.Fatalf("SessionByTokenHash: %v", err)
			}
			if d := diff(wantSession(ss), got); d != "" {
				t.Errorf("SessionByTokenHash mismatch (-want +got):\n%s", d)
			}
		})
	}
}

func testCreateSessionConflict(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	orig := mustCreateSession(t, s, newSession("s1", "u1"))
	sameID := newSession("s1", "u1")
	sameID.TokenHash = tokenHash("another token")
	sameHash := newSession("s2", "u1")
	sameHash.TokenHash = orig.TokenHash
	for _, tc := range []struct {
		name   string
		ss     *store.Session
		absent func() error
	}{
		{"same id", sameID, func() error {
			_, err := s.Sessions().SessionByTokenHash(t.Context(), sameID.TokenHash)
			return err
		}},
		{"same token hash", sameHash, func() error {
			_, err := s.Sessions().SessionByID(t.Context(), "s2")
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, "CreateSession", s.Sessions().CreateSession(t.Context(), tc.ss), store.ErrConflict)
			wantErr(t, "lookup of the rejected session", tc.absent(), store.ErrNotFound)
			if d := diff(wantSession(orig), mustSession(t, s, "s1")); d != "" {
				t.Errorf("original session changed (-want +got):\n%s", d)
			}
		})
	}
}

func testSessionsNotFound(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	mustCreateSession(t, s, newSession("s1", "u1"))
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"SessionByID", func() error {
			_, err := s.Sessions().SessionByID(t.Context(), "missing")
			return err
		}},
		{"SessionByTokenHash", func() error {
			_, err := s.Sessions().SessionByTokenHash(t.Context(), tokenHash("token-missing"))
			return err
		}},
		{"SessionByTokenHash with a prefix of a stored hash", func() error {
			_, err := s.Sessions().SessionByTokenHash(t.Context(), tokenHash("token-s1")[:16])
			return err
		}},
		{"TouchSession", func() error {
			return s.Sessions().TouchSession(t.Context(), "missing", base, "192.0.2.1", "ua")
		}},
		{"RotateSessionToken", func() error {
			return s.Sessions().RotateSessionToken(t.Context(), "missing", tokenHash("new"), base, 1, []string{"pwd"})
		}},
		{"RevokeSession", func() error {
			_, err := s.Sessions().RevokeSession(t.Context(), "missing", base, "logout")
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, tc.name, tc.call(), store.ErrNotFound)
		})
	}
	t.Run("RevokeUserSessions of an unknown user", func(t *testing.T) {
		ids, err := s.Sessions().RevokeUserSessions(t.Context(), "missing", "", base, "logout")
		if err != nil || len(ids) != 0 {
			t.Fatalf("RevokeUserSessions = %v, %v; want none, nil", ids, err)
		}
	})
}

func testListActiveSessions(t *testing.T, s store.Store) {
	now := base.Add(10 * time.Hour)
	mustCreateUser(t, s, newUser("u1"))
	mustCreateUser(t, s, newUser("u2"))
	mk := func(id, user string, lastSeen, expires time.Duration) *store.Session {
		ss := newSession(id, user)
		ss.LastSeenAt, ss.ExpiresAt = base.Add(lastSeen), now.Add(expires)
		return mustCreateSession(t, s, ss)
	}
	a := mk("a-seen-1h", "u1", time.Hour, time.Hour)
	b := mk("b-seen-3h", "u1", 3*time.Hour, time.Hour)
	c := mk("c-seen-2h", "u1", 2*time.Hour, time.Hour)
	d := mk("d-expires-in-1us", "u1", 0, time.Microsecond)
	mk("e-revoked", "u1", 4*time.Hour, time.Hour)
	if _, err := s.Sessions().RevokeSession(t.Context(), "e-revoked", base, "logout"); err != nil {
		t.Fatal(err)
	}
	mk("f-expires-now", "u1", 5*time.Hour, 0)
	mk("g-expired-1us-ago", "u1", 5*time.Hour, -time.Microsecond)
	mk("h-other-user", "u2", 6*time.Hour, time.Hour)

	for _, tc := range []struct {
		name string
		user string
		want []*store.Session
	}{
		{"newest LastSeenAt first, revoked and expired excluded", "u1", []*store.Session{b, c, a, d}},
		{"other user", "u2", []*store.Session{mustSession(t, s, "h-other-user")}},
		{"user without sessions", "u3", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Sessions().ListActiveSessions(t.Context(), tc.user, now)
			if err != nil {
				t.Fatalf("ListActiveSessions: %v", err)
			}
			want := make([]*store.Session, len(tc.want))
			for i, ss := range tc.want {
				want[i] = wantSession(ss)
			}
			if d := diff(want, got); d != "" {
				t.Errorf("ListActiveSessions (-want +got):\n%s", d)
			}
		})
	}
}

func testTouchSession(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	at := base.Add(5*time.Minute + 999*time.Nanosecond)
	for _, tc := range []struct {
		name    string
		revoked bool
	}{
		{"active session records activity", false},
		{"revoked session is left alone", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ss := mustCreateSession(t, s, newSession("s-"+tc.name, "u1"))
			want := wantSession(ss)
			if tc.revoked {
				if _, err := s.Sessions().RevokeSession(t.Context(), ss.ID, base.Add(time.Minute), "logout"); err != nil {
					t.Fatal(err)
				}
				want = mustSession(t, s, ss.ID)
			} else {
				want.LastSeenAt, want.IP, want.UserAgent = norm(at), "2001:db8::1", "curl/8.5.0"
			}
			if err := s.Sessions().TouchSession(t.Context(), ss.ID, at, "2001:db8::1", "curl/8.5.0"); err != nil {
				t.Fatalf("TouchSession: %v", err)
			}
			if d := diff(want, mustSession(t, s, ss.ID)); d != "" {
				t.Errorf("after TouchSession (-want +got):\n%s", d)
			}
		})
	}
}

func testRotateSessionToken(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	authTime := base.Add(7*time.Minute + 1)
	for _, tc := range []struct {
		name string
		aal  int
		amr  []string
	}{
		{"step-up raises the assurance", 2, []string{"pwd", "otp", "mfa"}},
		{"same assurance", 1, []string{"pwd"}},
		{"another method", 1, []string{"hwk", "user"}},
		{"no methods", 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ss := mustCreateSession(t, s, newSession("s-"+tc.name, "u1"))
			newHash := tokenHash("rotated-" + tc.name)
			if err := s.Sessions().RotateSessionToken(t.Context(), ss.ID, newHash, authTime, tc.aal, tc.amr); err != nil {
				t.Fatalf("RotateSessionToken: %v", err)
			}
			_, err := s.Sessions().SessionByTokenHash(t.Context(), ss.TokenHash)
			wantErr(t, "SessionByTokenHash(old hash)", err, store.ErrNotFound)
			got, err := s.Sessions().SessionByTokenHash(t.Context(), newHash)
			if err != nil {
				t.Fatalf("SessionByTokenHash(new hash): %v", err)
			}
			want := wantSession(ss)
			want.TokenHash, want.AuthTime, want.AAL, want.AMR = newHash, norm(authTime), tc.aal, tc.amr
			if d := diff(want, got); d != "" {
				t.Errorf("rotated session (-want +got):\n%s", d)
			}
			if d := diff(want, mustSession(t, s, ss.ID)); d != "" {
				t.Errorf("rotated session by id (-want +got):\n%s", d)
			}
		})
	}
	t.Run("revoked session", func(t *testing.T) {
		ss := mustCreateSession(t, s, newSession("s-revoked", "u1"))
		if _, err := s.Sessions().RevokeSession(t.Context(), ss.ID, base, "logout"); err != nil {
			t.Fatal(err)
		}
		want := mustSession(t, s, ss.ID)
		err := s.Sessions().RotateSessionToken(t.Context(), ss.ID, tokenHash("rotated-revoked"), authTime, 2, []string{"pwd", "otp", "mfa"})
		wantErr(t, "RotateSessionToken", err, store.ErrNotFound)
		_, err = s.Sessions().SessionByTokenHash(t.Context(), tokenHash("rotated-revoked"))
		wantErr(t, "SessionByTokenHash(refused hash)", err, store.ErrNotFound)
		if d := diff(want, mustSession(t, s, ss.ID)); d != "" {
			t.Errorf("revoked session changed (-want +got):\n%s", d)
		}
	})
}

func testRevokeSession(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	ss := mustCreateSession(t, s, newSession("s1", "u1"))
	first := base.Add(time.Minute + 1)
	for _, tc := range []struct {
		name        string
		at          time.Time
		reason      string
		wantRevoked bool
	}{
		{"active session", first, "logout", true},
		{"already revoked", base.Add(time.Hour), "revoked_by_user", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			revoked, err := s.Sessions().RevokeSession(t.Context(), ss.ID, tc.at, tc.reason)
			if err != nil || revoked != tc.wantRevoked {
				t.Fatalf("RevokeSession = %v, %v; want %v, nil", revoked, err, tc.wantRevoked)
			}
			// The first revocation's time and reason stick; the session
			// stays readable by id and by hash.
			want := wantSession(ss)
			r := norm(first)
			want.RevokedAt, want.RevokeReason = &r, "logout"
			if d := diff(want, mustSession(t, s, ss.ID)); d != "" {
				t.Errorf("SessionByID (-want +got):\n%s", d)
			}
			got, err := s.Sessions().SessionByTokenHash(t.Context(), ss.TokenHash)
			if err != nil {
				t.Fatalf("SessionByTokenHash: %v", err)
			}
			if d := diff(want, got); d != "" {
				t.Errorf("SessionByTokenHash (-want +got):\n%s", d)
			}
		})
	}
}

func testRevokeUserSessions(t *testing.T, s store.Store) {
	at := base.Add(time.Hour + 1)
	for _, tc := range []struct {
		name     string
		active   []string // the user's active sessions
		exceptID string
		want     []string
	}{
		{"all but the current one", []string{"a", "b", "c"}, "b", []string{"a", "c"}},
		{"all", []string{"a", "b", "c"}, "", []string{"a", "b", "c"}},
		{"except an unknown id", []string{"a", "b"}, "zzz", []string{"a", "b"}},
		{"only the current one", []string{"a"}, "a", nil},
		{"none", nil, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Every case has its own users and session ids.
			user, other := "u-"+tc.name, "other-"+tc.name
			mustCreateUser(t, s, newUser(user))
			mustCreateUser(t, s, newUser(other))
			prefix := tc.name + "/"
			for _, id := range tc.active {
				mustCreateSession(t, s, newSession(prefix+id, user))
			}
			// An already revoked session of the user and an active one of
			// another user must be left alone.
			old := mustCreateSession(t, s, newSession(prefix+"old", user))
			if _, err := s.Sessions().RevokeSession(t.Context(), old.ID, base, "logout"); err != nil {
				t.Fatal(err)
			}
			oldWant := mustSession(t, s, old.ID)
			otherWant := wantSession(mustCreateSession(t, s, newSession(prefix+"other", other)))

			exceptID := tc.exceptID
			if exceptID != "" {
				exceptID = prefix + exceptID
			}
			got, err := s.Sessions().RevokeUserSessions(t.Context(), user, exceptID, at, "password_changed")
			if err != nil {
				t.Fatalf("RevokeUserSessions: %v", err)
			}
			var want []string
			for _, id := range tc.want {
				want = append(want, prefix+id)
			}
			slices.Sort(got)
			if d := diff(want, got); d != "" {
				t.Errorf("revoked ids (-want +got):\n%s", d)
			}
			for _, id := range tc.active {
				ss := mustSession(t, s, prefix+id)
				if slices.Contains(want, ss.ID) {
					if ss.RevokedAt == nil || !ss.RevokedAt.Equal(norm(at)) || ss.RevokeReason != "password_changed" {
						t.Errorf("session %s: RevokedAt=%v reason=%q, want %v %q", ss.ID, ss.RevokedAt, ss.RevokeReason, norm(at), "password_changed")
					}
				} else if ss.RevokedAt != nil {
					t.Errorf("session %s was revoked, want it active", ss.ID)
				}
			}
			if d := diff(oldWant, mustSession(t, s, old.ID)); d != "" {
				t.Errorf("previously revoked session changed (-want +got):\n%s", d)
			}
			if d := diff(otherWant, mustSession(t, s, prefix+"other")); d != "" {
				t.Errorf("other user's session changed (-want +got):\n%s", d)
			}
			again, err := s.Sessions().RevokeUserSessions(t.Context(), user, exceptID, at, "password_changed")
			if err != nil || len(again) != 0 {
				t.Errorf("second RevokeUserSessions = %v, %v; want none, nil", again, err)
			}
		})
	}
}

// testRevokedSessionsSince revokes sessions in every way the store offers
// (RevokeSession, RevokeUserSessions, created revoked), at times whose order
// differs from the ids', and reads them back from several instants.
func testRevokedSessionsSince(t *testing.T, s store.Store) {
	since := base.Add(time.Hour + 500*time.Nanosecond)
	for _, u := range []string{"u1", "u2", "u3"} {
		mustCreateUser(t, s, newUser(u))
	}
	for _, id := range []string{"active", "a-before", "b-at-since", "c-third", "z-second"} {
		mustCreateSession(t, s, newSession(id, "u1"))
	}
	expired := newSession("expired-not-revoked", "u1")
	expired.ExpiresAt = base
	mustCreateSession(t, s, expired)
	for _, id := range []string{"u2-b", "u2-a", "u2-keep"} {
		mustCreateSession(t, s, newSession(id, "u2"))
	}
	createdRevoked := newSession("created-revoked", "u3")
	createdRevokedAt := since.Add(4 * time.Minute)
	createdRevoked.RevokedAt, createdRevoked.RevokeReason = &createdRevokedAt, "logout"
	mustCreateSession(t, s, createdRevoked)

	revoke := func(id string, at time.Time) {
		t.Helper()
		if ok, err := s.Sessions().RevokeSession(t.Context(), id, at, "logout"); !ok || err != nil {
			t.Fatalf("RevokeSession(%s) = %v, %v", id, ok, err)
		}
	}
	revoke("a-before", since.Add(-time.Microsecond))
	revoke("b-at-since", since)
	revoke("z-second", since.Add(time.Minute))
	revoke("c-third", since.Add(2*time.Minute))
	// Revoked together, at one instant: the id breaks the tie.
	if ids, err := s.Sessions().RevokeUserSessions(t.Context(), "u2", "u2-keep", since.Add(3*time.Minute), "password_changed"); err != nil || len(ids) != 2 {
		t.Fatalf("RevokeUserSessions = %v, %v", ids, err)
	}
	// Revoking again keeps the first revocation time.
	if ok, err := s.Sessions().RevokeSession(t.Context(), "z-second", since.Add(time.Hour), "logout"); ok || err != nil {
		t.Fatalf("second RevokeSession = %v, %v; want false, nil", ok, err)
	}

	rev := func(id string, at time.Time) store.Revocation {
		return store.Revocation{SessionID: id, RevokedAt: norm(at)}
	}
	all := []store.Revocation{
		rev("b-at-since", since),
		rev("z-second", since.Add(time.Minute)),
		rev("c-third", since.Add(2*time.Minute)),
		rev("u2-a", since.Add(3*time.Minute)),
		rev("u2-b", since.Add(3*time.Minute)),
		rev("created-revoked", createdRevokedAt),
	}
	for _, tc := range []struct {
		name  string
		since time.Time
		want  []store.Revocation
	}{
		{"at or after since, oldest first", since, all},
		{"since with the stored precision", norm(since), all},
		{"since a microsecond later", since.Add(time.Microsecond), all[1:]},
		{"since a microsecond earlier", since.Add(-time.Microsecond), append([]store.Revocation{rev("a-before", since.Add(-time.Microsecond))}, all...)},
		{"since the last revocation", createdRevokedAt, all[5:]},
		{"since after every revocation", createdRevokedAt.Add(time.Microsecond), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Sessions().RevokedSessionsSince(t.Context(), tc.since)
			if err != nil {
				t.Fatalf("RevokedSessionsSince: %v", err)
			}
			if d := diff(tc.want, got); d != "" {
				t.Errorf("RevokedSessionsSince (-want +got):\n%s", d)
			}
			for _, r := range got {
				if r.RevokedAt.Location() != time.UTC {
					t.Errorf("RevokedAt of %s is in %s, want UTC", r.SessionID, r.RevokedAt.Location())
				}
			}
		})
	}
}
