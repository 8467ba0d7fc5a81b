package storetest

import (
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

var roundTripTests = []storeTest{
	{"Time", testTimeRoundTrip},
	{"AMR", testAMRRoundTrip},
	{"SessionKind", testSessionKindRoundTrip},
	{"Admin", testAdminRoundTrip},
	{"Details", testDetailsRoundTrip},
}

var secretsTests = []storeTest{
	{"ErrorsOmitHashes", testErrorsOmitHashes},
}

func testTimeRoundTrip(t *testing.T, s store.Store) {
	for i, in := range []time.Time{
		base,
		base.UTC(),
		time.Date(2025, 6, 1, 12, 0, 0, 999, time.UTC),                                     // below a microsecond
		time.Date(2025, 6, 1, 12, 0, 0, 999_999_999, time.FixedZone("UTC-08:00", -8*3600)), // truncated, not rounded
		time.Unix(0, 0),
		time.Date(1969, 7, 20, 20, 17, 40, 123_456_789, time.UTC), // before the unix epoch
		time.Date(2999, 12, 31, 23, 59, 59, 999_999_000, time.UTC),
		{}, // the zero time
	} {
		t.Run(fmt.Sprint(in), func(t *testing.T) {
			want := norm(in)
			uid, sid := fmt.Sprintf("u%d", i), fmt.Sprintf("s%d", i)
			u := newUser(uid)
			u.CreatedAt, u.UpdatedAt = in, in
			mustCreateUser(t, s, u)
			ss := newSession(sid, uid)
			ss.CreatedAt, ss.LastSeenAt, ss.AuthTime, ss.ExpiresAt, ss.RevokedAt = in, in, in, in, &in
			mustCreateSession(t, s, ss)
			mustAppend(t, s, &store.Event{Type: "e", UserID: uid, At: in})
			rt := newRefreshToken("rt"+sid, sid)
			rt.CreatedAt, rt.ExpiresAt, rt.UsedAt = in, in, &in
			mustCreateRefreshToken(t, s, rt)
			k := newSigningKey("k"+sid, in)
			k.CreatedAt = in
			mustCreateSigningKey(t, s, k)

			gu, gs := mustUser(t, s, uid), mustSession(t, s, sid)
			grt, gk := mustRefreshToken(t, s, rt.Hash), mustSigningKey(t, s, k.ID)
			revs, err := s.Sessions().RevokedSessionsSince(t.Context(), in)
			if err != nil {
				t.Fatalf("RevokedSessionsSince: %v", err)
			}
			ri := slices.IndexFunc(revs, func(r store.Revocation) bool { return r.SessionID == sid })
			if ri < 0 {
				t.Fatalf("RevokedSessionsSince(%v) = %v, want %s among them", in, revs, sid)
			}
			evs, err := s.Audit().ListUserEvents(t.Context(), uid, 0, 1)
			if err != nil || len(evs) != 1 {
				t.Fatalf("ListUserEvents = %v, %v", evs, err)
			}
			for name, got := range map[string]time.Time{
				"User.CreatedAt": gu.CreatedAt, "User.UpdatedAt": gu.UpdatedAt,
				"Session.CreatedAt": gs.CreatedAt, "Session.LastSeenAt": gs.LastSeenAt,
				"Session.AuthTime": gs.AuthTime, "Session.ExpiresAt": gs.ExpiresAt,
				"Session.RevokedAt": *gs.RevokedAt, "Event.At": evs[0].At,
				"RefreshToken.CreatedAt": grt.CreatedAt, "RefreshToken.ExpiresAt": grt.ExpiresAt,
				"RefreshToken.UsedAt": *grt.UsedAt, "Revocation.RevokedAt": revs[ri].RevokedAt,
				"SigningKey.CreatedAt": gk.CreatedAt, "SigningKey.ActivatesAt": gk.ActivatesAt,
			} {
				if !got.Equal(want) || got.Location() != time.UTC {
					t.Errorf("%s = %v (%s), want %v in UTC", name, got, got.Location(), want)
				}
			}
		})
	}
}

func testAMRRoundTrip(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	for i, amr := range [][]string{
		nil,
		{},
		{"pwd"},
		{"pwd", "otp", "mfa"},
		{"mfa", "hwk", "pwd"}, // order is kept
		{"pwd", "pwd"},
		{"with space", "with,comma", `"quoted"`, "ünï", ""},
	} {
		t.Run(fmt.Sprintf("%q", amr), func(t *testing.T) {
			ss := newSession(fmt.Sprintf("s%d", i), "u1")
			ss.AMR = amr
			mustCreateSession(t, s, ss)
			for _, got := range []*store.Session{mustSession(t, s, ss.ID), listed(t, s, "u1", ss.ID)} {
				if !slices.Equal(got.AMR, amr) {
					t.Errorf("AMR = %q, want %q", got.AMR, amr)
				}
			}
			// A rotation stores it the same way.
			rotated := mustCreateSession(t, s, newSession(ss.ID+"-rotated", "u1"))
			if err := s.Sessions().RotateSessionToken(t.Context(), rotated.ID, tokenHash(rotated.ID+"-new"), base, 2, amr); err != nil {
				t.Fatalf("RotateSessionToken: %v", err)
			}
			if got := mustSession(t, s, rotated.ID); !slices.Equal(got.AMR, amr) {
				t.Errorf("AMR after RotateSessionToken = %q, want %q", got.AMR, amr)
			}
		})
	}
}

func testSessionKindRoundTrip(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	for i, tc := range []struct{ kind, want string }{
		{"", store.SessionCookie},
		{store.SessionCookie, store.SessionCookie},
		{store.SessionToken, store.SessionToken},
	} {
		t.Run(fmt.Sprintf("%q", tc.kind), func(t *testing.T) {
			ss := newSession(fmt.Sprintf("s%d", i), "u1")
			ss.Kind = tc.kind
			mustCreateSession(t, s, ss)
			byHash, err := s.Sessions().SessionByTokenHash(t.Context(), ss.TokenHash)
			if err != nil {
				t.Fatalf("SessionByTokenHash: %v", err)
			}
			for _, got := range []*store.Session{mustSession(t, s, ss.ID), byHash, listed(t, s, "u1", ss.ID)} {
				if got.Kind != tc.want {
					t.Errorf("Kind = %q, want %q", got.Kind, tc.want)
				}
			}
			// Later writes keep the kind.
			if err := s.Sessions().TouchSession(t.Context(), ss.ID, base, "192.0.2.1", "ua"); err != nil {
				t.Fatal(err)
			}
			if err := s.Sessions().RotateSessionToken(t.Context(), ss.ID, tokenHash(fmt.Sprintf("rotated-%d", i)), base, 2, []string{"pwd", "otp"}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Sessions().RevokeSession(t.Context(), ss.ID, base, "logout"); err != nil {
				t.Fatal(err)
			}
			if got := mustSession(t, s, ss.ID); got.Kind != tc.want {
				t.Errorf("Kind after touch, rotation and revocation = %q, want %q", got.Kind, tc.want)
			}
		})
	}
}

// testAdminRoundTrip checks the admin flag reads back the same through
// every lookup, and that the other writes to a user keep it.
func testAdminRoundTrip(t *testing.T, s store.Store) {
	for i, admin := range []bool{false, true} {
		t.Run(fmt.Sprint(admin), func(t *testing.T) {
			u := newUser(fmt.Sprintf("u%d", i))
			u.Admin = admin
			u.Phone = fmt.Sprintf("+1415555010%d", i)
			mustCreateUser(t, s, u)
			check := func(when string) {
				t.Helper()
				byEmail, err := s.Users().UserByEmailKey(t.Context(), u.EmailKey)
				if err != nil {
					t.Fatalf("UserByEmailKey %s: %v", when, err)
				}
				byPhone, err := s.Users().UserByPhone(t.Context(), u.Phone)
				if err != nil {
					t.Fatalf("UserByPhone %s: %v", when, err)
				}
				for _, got := range []*store.User{mustUser(t, s, u.ID), byEmail, byPhone} {
					if got.Admin != admin {
						t.Errorf("Admin %s = %v, want %v", when, got.Admin, admin)
					}
				}
			}
			check("after CreateUser")
			if err := s.Users().SetPasswordHash(t.Context(), u.ID, u.PasswordHash, "new-hash", base); err != nil {
				t.Fatal(err)
			}
			if err := s.Users().MarkEmailVerified(t.Context(), u.ID, u.EmailKey, base); err != nil {
				t.Fatal(err)
			}
			newKey := "new." + u.EmailKey
			if err := s.Users().ChangeEmail(t.Context(), u.ID, u.EmailKey, "New."+u.Email, newKey, base); err != nil {
				t.Fatal(err)
			}
			u.EmailKey = newKey
			u.Phone = fmt.Sprintf("+1415555020%d", i)
			if err := s.Users().SetPhone(t.Context(), u.ID, u.Phone, base); err != nil {
				t.Fatal(err)
			}
			check("after the other writes")
		})
	}
}

// listed finds session id in the user's active sessions.
func listed(t *testing.T, s store.Store, userID, id string) *store.Session {
	t.Helper()
	active, err := s.Sessions().ListActiveSessions(t.Context(), userID, base)
	if err != nil {
		t.Fatalf("ListActiveSessions: %v", err)
	}
	for _, ss := range active {
		if ss.ID == id {
			return ss
		}
	}
	t.Fatalf("session %s not listed as active", id)
	return nil
}

func testDetailsRoundTrip(t *testing.T, s store.Store) {
	for i, details := range []map[string]string{
		nil,
		{},
		{"method": "password"},
		{
			"reason":    `bad "password" \ attempt`,
			"newline":   "line1\nline2\ttab",
			"unicode":   "🔐 Ünïcødé 山田",
			"empty":     "",
			"html":      "<script>alert(1)</script>",
			"key with ": "space",
		},
	} {
		t.Run(fmt.Sprint(len(details)), func(t *testing.T) {
			uid := fmt.Sprintf("u%d", i)
			mustAppend(t, s, &store.Event{Type: "e", UserID: uid, At: base, Details: details})
			evs, err := s.Audit().ListUserEvents(t.Context(), uid, 0, 1)
			if err != nil || len(evs) != 1 {
				t.Fatalf("ListUserEvents = %v, %v", evs, err)
			}
			if !maps.Equal(evs[0].Details, details) {
				t.Errorf("Details = %q, want %q", evs[0].Details, details)
			}
		})
	}
}

// testErrorsOmitHashes provokes the errors whose inputs carry secrets and
// checks the messages never quote them (errors end up in logs).
func testErrorsOmitHashes(t *testing.T, s store.Store) {
	u := newUser("u1")
	u.PasswordHash = "$argon2id$v=19$m=65536,t=3,p=4$U0VDUkVUU0FMVA$STORED-HASH-SECRET"
	mustCreateUser(t, s, u)
	ss := mustCreateSession(t, s, newSession("s1", "u1"))
	other := mustCreateSession(t, s, newSession("s2", "u1"))

	dupUser := newUser("u2")
	dupUser.EmailKey, dupUser.PasswordHash = u.EmailKey, "$argon2id$NEW-USER-HASH-SECRET"
	dupSession := newSession("s3", "u1")
	dupSession.TokenHash = ss.TokenHash
	rt := mustCreateRefreshToken(t, s, newRefreshToken("rt1", "s1"))
	dupRefresh := newRefreshToken("rt2", "s2")
	dupRefresh.Hash = rt.Hash
	key := newSigningKey("k1", base)
	key.PrivateSealed = []byte("SEALED-PRIVATE-KEY-SECRET")
	mustCreateSigningKey(t, s, key)
	dupKey := newSigningKey("k1", base)
	dupKey.PrivateSealed = []byte("OTHER-SEALED-PRIVATE-KEY-SECRET")

	secrets := []string{u.PasswordHash, dupUser.PasswordHash, "OLD-HASH-SECRET", "NEW-HASH-SECRET"}
	for _, h := range [][]byte{ss.TokenHash, other.TokenHash, rt.Hash, key.PrivateSealed, dupKey.PrivateSealed} {
		secrets = append(secrets, hex.EncodeToString(h), strings.ToUpper(hex.EncodeToString(h)), string(h))
	}
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"CreateUser conflict", s.Users().CreateUser(t.Context(), dupUser)},
		{"SetPasswordHash conflict", s.Users().SetPasswordHash(t.Context(), "u1", "OLD-HASH-SECRET", "NEW-HASH-SECRET", base)},
		{"CreateSession conflict", s.Sessions().CreateSession(t.Context(), dupSession)},
		// A token hash identifies one session: rotating onto a hash in
		// use must fail.
		{"RotateSessionToken onto a hash in use", s.Sessions().RotateSessionToken(t.Context(), "s1", other.TokenHash, base, 1, []string{"pwd"})},
		{"CreateRefreshToken conflict", s.RefreshTokens().CreateRefreshToken(t.Context(), dupRefresh)},
		{"CreateSigningKey conflict", s.SigningKeys().CreateSigningKey(t.Context(), dupKey)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == nil {
				t.Fatal("got nil error, want a failure")
			}
			for _, secret := range secrets {
				if strings.Contains(tc.err.Error(), secret) {
					t.Errorf("error %q contains a secret", tc.err)
				}
			}
		})
	}
}
