package storetest

import (
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

var refreshTokensTests = []storeTest{
	{"CreateAndGet", testCreateAndGetRefreshToken},
	{"CreateConflict", testCreateRefreshTokenConflict},
	{"NotFound", testRefreshTokensNotFound},
	{"MarkRefreshTokenUsed", testMarkRefreshTokenUsed},
	{"ForgetRefreshSuccessors", testForgetRefreshSuccessors},
}

// newTokenSession creates user userID and a token session id of it.
func newTokenSession(t *testing.T, s store.Tx, id, userID string) *store.Session {
	t.Helper()
	mustCreateUser(t, s, newUser(userID))
	ss := newSession(id, userID)
	ss.Kind = store.SessionToken
	return mustCreateSession(t, s, ss)
}

func testCreateAndGetRefreshToken(t *testing.T, s store.Store) {
	newTokenSession(t, s, "s1", "u1")
	fresh := newRefreshToken("rt-fresh", "s1")
	used := newRefreshToken("rt-used", "s1")
	usedAt := base.Add(time.Hour + 999*time.Nanosecond)
	used.UsedAt, used.Client = &usedAt, "3f1c0a9be2d4c7a1f00d5e6b7a8c9d0e"
	binary := newRefreshToken("rt-binary", "s1")
	binary.Hash = make([]byte, 32) // NUL and high bytes must survive
	for i := range binary.Hash {
		binary.Hash[i] = byte(255 - i*41)
	}
	binary.CreatedAt, binary.ExpiresAt = base.Add(time.Nanosecond), base.Add(time.Minute+time.Nanosecond)
	for _, rt := range []*store.RefreshToken{fresh, used, binary} {
		t.Run(rt.ID, func(t *testing.T) {
			mustCreateRefreshToken(t, s, rt)
			if d := diff(wantRefreshToken(rt), mustRefreshToken(t, s, rt.Hash)); d != "" {
				t.Errorf("RefreshTokenByHash mismatch (-want +got):\n%s", d)
			}
		})
	}
}

func testCreateRefreshTokenConflict(t *testing.T, s store.Store) {
	newTokenSession(t, s, "s1", "u1")
	other := newSession("s2", "u1")
	other.Kind = store.SessionToken
	mustCreateSession(t, s, other)
	orig := mustCreateRefreshToken(t, s, newRefreshToken("rt1", "s1"))
	sameID := newRefreshToken("rt1", "s1")
	sameID.Hash = tokenHash("another refresh token")
	sameHash := newRefreshToken("rt2", "s1")
	sameHash.Hash = orig.Hash
	sameHashOtherSession := newRefreshToken("rt3", "s2")
	sameHashOtherSession.Hash = orig.Hash
	for _, tc := range []struct {
		name   string
		rt     *store.RefreshToken
		absent []byte // a hash that must not resolve afterwards, if any
	}{
		{"same id", sameID, sameID.Hash},
		{"same hash", sameHash, nil},
		{"same hash in another family", sameHashOtherSession, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, "CreateRefreshToken", s.RefreshTokens().CreateRefreshToken(t.Context(), tc.rt), store.ErrConflict)
			if tc.absent != nil {
				_, err := s.RefreshTokens().RefreshTokenByHash(t.Context(), tc.absent)
				wantErr(t, "lookup of the rejected token", err, store.ErrNotFound)
			}
			if d := diff(wantRefreshToken(orig), mustRefreshToken(t, s, orig.Hash)); d != "" {
				t.Errorf("original token changed (-want +got):\n%s", d)
			}
		})
	}
}

func testRefreshTokensNotFound(t *testing.T, s store.Store) {
	newTokenSession(t, s, "s1", "u1")
	rt := mustCreateRefreshToken(t, s, newRefreshToken("rt1", "s1"))
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"RefreshTokenByHash", func() error {
			_, err := s.RefreshTokens().RefreshTokenByHash(t.Context(), tokenHash("refresh-missing"))
			return err
		}},
		{"RefreshTokenByHash with a prefix of a stored hash", func() error {
			_, err := s.RefreshTokens().RefreshTokenByHash(t.Context(), rt.Hash[:16])
			return err
		}},
		{"RefreshTokenByHash with a session's token hash", func() error {
			_, err := s.RefreshTokens().RefreshTokenByHash(t.Context(), newSession("s1", "u1").TokenHash)
			return err
		}},
		{"MarkRefreshTokenUsed", func() error {
			return s.RefreshTokens().MarkRefreshTokenUsed(t.Context(), "missing", base, "client", []byte("sealed"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, tc.name, tc.call(), store.ErrNotFound)
		})
	}
	if d := diff(wantRefreshToken(rt), mustRefreshToken(t, s, rt.Hash)); d != "" {
		t.Errorf("stored token changed (-want +got):\n%s", d)
	}
}

func testMarkRefreshTokenUsed(t *testing.T, s store.Store) {
	newTokenSession(t, s, "s1", "u1")
	rt := mustCreateRefreshToken(t, s, newRefreshToken("rt1", "s1"))
	sibling := mustCreateRefreshToken(t, s, newRefreshToken("rt2", "s1"))
	first := base.Add(time.Hour + 123*time.Nanosecond)
	for _, tc := range []struct {
		name   string
		at     time.Time
		client string
		want   error
	}{
		{"unused token", first, "fp-first", nil},
		{"already used", first.Add(time.Second), "fp-second", store.ErrConflict},
		{"already used, same time and client", first, "fp-first", store.ErrConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.RefreshTokens().MarkRefreshTokenUsed(t.Context(), rt.ID, tc.at, tc.client, []byte("sealed-"+tc.client))
			if tc.want == nil && err != nil {
				t.Fatalf("MarkRefreshTokenUsed: %v", err)
			}
			if tc.want != nil {
				wantErr(t, "MarkRefreshTokenUsed", err, tc.want)
			}
			// The first use's time, client and successor stick; the
			// rest of the family is untouched.
			want := wantRefreshToken(rt)
			usedAt := norm(first)
			want.UsedAt, want.Client, want.Successor = &usedAt, "fp-first", []byte("sealed-fp-first")
			if d := diff(want, mustRefreshToken(t, s, rt.Hash)); d != "" {
				t.Errorf("used token (-want +got):\n%s", d)
			}
			if d := diff(wantRefreshToken(sibling), mustRefreshToken(t, s, sibling.Hash)); d != "" {
				t.Errorf("sibling token changed (-want +got):\n%s", d)
			}
		})
	}
	t.Run("token created used", func(t *testing.T) {
		created := newRefreshToken("rt-created-used", "s1")
		usedAt := base
		created.UsedAt, created.Client = &usedAt, "fp-import"
		mustCreateRefreshToken(t, s, created)
		err := s.RefreshTokens().MarkRefreshTokenUsed(t.Context(), created.ID, first, "fp-other", []byte("sealed"))
		wantErr(t, "MarkRefreshTokenUsed", err, store.ErrConflict)
		if d := diff(wantRefreshToken(created), mustRefreshToken(t, s, created.Hash)); d != "" {
			t.Errorf("token changed (-want +got):\n%s", d)
		}
	})
}

func testForgetRefreshSuccessors(t *testing.T, s store.Store) {
	newTokenSession(t, s, "s1", "u1")
	newTokenSession(t, s, "s2", "u2")
	old := mustCreateRefreshToken(t, s, newRefreshToken("rt-old", "s1"))
	recent := mustCreateRefreshToken(t, s, newRefreshToken("rt-recent", "s1"))
	unused := mustCreateRefreshToken(t, s, newRefreshToken("rt-unused", "s1"))
	other := mustCreateRefreshToken(t, s, newRefreshToken("rt-other", "s2"))
	for _, u := range []struct {
		rt *store.RefreshToken
		at time.Time
	}{{old, base}, {recent, base.Add(20 * time.Second)}, {other, base}} {
		if err := s.RefreshTokens().MarkRefreshTokenUsed(t.Context(), u.rt.ID, u.at, "fp", []byte("sealed-"+u.rt.ID)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RefreshTokens().ForgetRefreshSuccessors(t.Context(), "s1", base.Add(10*time.Second)); err != nil {
		t.Fatalf("ForgetRefreshSuccessors: %v", err)
	}
	for _, tc := range []struct {
		rt   *store.RefreshToken
		want []byte
	}{
		{old, nil},                           // used before the cut: forgotten
		{recent, []byte("sealed-rt-recent")}, // inside the window: kept
		{unused, nil},                        // never had one
		{other, []byte("sealed-rt-other")},   // another family: untouched
	} {
		got := mustRefreshToken(t, s, tc.rt.Hash)
		if string(got.Successor) != string(tc.want) || got.UsedAt == nil && tc.rt != unused {
			t.Errorf("%s: successor %q, want %q", tc.rt.ID, got.Successor, tc.want)
		}
	}
}
