package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// The Race tests attack the store from many goroutines at once. Any error
// other than the contract's sentinels (for SQLite, "database is locked" in
// particular) fails them.
var raceTests = []storeTest{
	{"ConcurrentSignupSameEmail", testConcurrentSignupSameEmail},
	{"ConcurrentSignupInTx", testConcurrentSignupInTx},
	{"ConcurrentPasswordCAS", testConcurrentPasswordCAS},
	{"ConcurrentRevokeSameSession", testConcurrentRevokeSameSession},
	{"ConcurrentRotateSameSession", testConcurrentRotateSameSession},
	{"ConcurrentRevokeUserSessions", testConcurrentRevokeUserSessions},
	{"ConcurrentRefreshRotation", testConcurrentRefreshRotation},
	{"ConcurrentRefreshTokenSameHash", testConcurrentRefreshTokenSameHash},
	{"ConcurrentSigningKeySameID", testConcurrentSigningKeySameID},
	{"ConcurrentConsumeVerification", testConcurrentConsumeVerification},
	{"ConcurrentConsumeVerificationInTx", testConcurrentConsumeVerificationInTx},
	{"ConcurrentAttemptVerification", testConcurrentAttemptVerification},
	{"ConcurrentCreateVerification", testConcurrentCreateVerification},
	{"ConcurrentUseTOTPStep", testConcurrentUseTOTPStep},
	{"ConcurrentUseRecoveryCode", testConcurrentUseRecoveryCode},
	{"ConcurrentReplaceRecoveryCodes", testConcurrentReplaceRecoveryCodes},
	{"ConcurrentPutPendingAndConfirmTOTP", testConcurrentPutPendingAndConfirmTOTP},
	{"ConcurrentUseWebAuthnCredential", testConcurrentUseWebAuthnCredential},
	{"Hammer", testHammer},
}

const racers = 20

// oneWinner checks that exactly one of errs is nil and every other is
// loserErr, and returns the winner's index.
func oneWinner(t *testing.T, errs []error, loserErr error) int {
	t.Helper()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("racers %d and %d both succeeded", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, loserErr):
			t.Errorf("racer %d: got error %v, want %v", i, err, loserErr)
		}
	}
	if winner < 0 {
		t.Fatalf("no racer succeeded")
	}
	return winner
}

func testConcurrentSignupSameEmail(t *testing.T, s store.Store) {
	errs := make([]error, racers)
	concurrently(racers, func(i int) {
		u := newUser(fmt.Sprintf("u%02d", i))
		u.EmailKey = "race@example.com"
		errs[i] = s.Users().CreateUser(t.Context(), u)
	})
	w := oneWinner(t, errs, store.ErrConflict)
	u, err := s.Users().UserByEmailKey(t.Context(), "race@example.com")
	if err != nil || u.ID != fmt.Sprintf("u%02d", w) {
		t.Fatalf("UserByEmailKey = %+v, %v; want the winner u%02d", u, err, w)
	}
	for i := range racers {
		if i == w {
			continue
		}
		_, err := s.Users().UserByID(t.Context(), fmt.Sprintf("u%02d", i))
		wantErr(t, "UserByID(loser)", err, store.ErrNotFound)
	}
}

// testConcurrentSignupInTx races whole sign-up transactions (user, session,
// audit event) on one e-mail: the losers must leave nothing behind.
func testConcurrentSignupInTx(t *testing.T, s store.Store) {
	errs := make([]error, racers)
	concurrently(racers, func(i int) {
		uid := fmt.Sprintf("u%02d", i)
		errs[i] = s.InTx(t.Context(), func(tx store.Tx) error {
			u := newUser(uid)
			u.EmailKey = "race@example.com"
			if err := tx.Users().CreateUser(t.Context(), u); err != nil {
				return err
			}
			if err := tx.Sessions().CreateSession(t.Context(), newSession("s-"+uid, uid)); err != nil {
				return err
			}
			return tx.Audit().AppendEvent(t.Context(), &store.Event{Type: "signup", UserID: uid, At: base})
		})
	})
	w := oneWinner(t, errs, store.ErrConflict)
	for i := range racers {
		uid := fmt.Sprintf("u%02d", i)
		_, uErr := s.Users().UserByID(t.Context(), uid)
		_, sErr := s.Sessions().SessionByID(t.Context(), "s-"+uid)
		evs, eErr := s.Audit().ListUserEvents(t.Context(), uid, 0, 10)
		if eErr != nil {
			t.Fatal(eErr)
		}
		if i == w {
			if uErr != nil || sErr != nil || len(evs) != 1 {
				t.Errorf("winner %s: user %v, session %v, %d events; want all written", uid, uErr, sErr, len(evs))
			}
		} else if !errors.Is(uErr, store.ErrNotFound) || !errors.Is(sErr, store.ErrNotFound) || len(evs) != 0 {
			t.Errorf("loser %s: user %v, session %v, %d events; want nothing written", uid, uErr, sErr, len(evs))
		}
	}
}

func testConcurrentPasswordCAS(t *testing.T, s store.Store) {
	u := newUser("u1")
	u.PasswordHash = "h0"
	mustCreateUser(t, s, u)
	errs := make([]error, racers)
	concurrently(racers, func(i int) {
		errs[i] = s.Users().SetPasswordHash(t.Context(), "u1", "h0", fmt.Sprintf("h-%02d", i), base)
	})
	w := oneWinner(t, errs, store.ErrConflict)
	if got := mustUser(t, s, "u1").PasswordHash; got != fmt.Sprintf("h-%02d", w) {
		t.Errorf("PasswordHash = %q, want the winner's h-%02d", got, w)
	}
}

func testConcurrentRevokeSameSession(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	mustCreateSession(t, s, newSession("s1", "u1"))
	revoked := make([]bool, racers)
	errs := make([]error, racers)
	concurrently(racers, func(i int) {
		revoked[i], errs[i] = s.Sessions().RevokeSession(t.Context(), "s1", base.Add(time.Duration(i)*time.Second), fmt.Sprintf("r%02d", i))
	})
	winner := -1
	for i := range racers {
		switch {
		case errs[i] != nil:
			t.Errorf("racer %d: %v", i, errs[i])
		case revoked[i] && winner >= 0:
			t.Errorf("racers %d and %d both reported the revocation", winner, i)
		case revoked[i]:
			winner = i
		}
	}
	if winner < 0 {
		t.Fatal("no racer reported the revocation")
	}
	ss := mustSession(t, s, "s1")
	if ss.RevokeReason != fmt.Sprintf("r%02d", winner) || !ss.RevokedAt.Equal(norm(base.Add(time.Duration(winner)*time.Second))) {
		t.Errorf("stored revocation %v %q is not the winner's (%d)", ss.RevokedAt, ss.RevokeReason, winner)
	}
}

func testConcurrentRotateSameSession(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	orig := mustCreateSession(t, s, newSession("s1", "u1"))
	hash := func(i int) []byte { return tokenHash(fmt.Sprintf("rotated-%02d", i)) }
	authTime := func(i int) time.Time { return base.Add(time.Duration(i+1) * time.Second) }
	amr := func(i int) []string { return []string{"pwd", fmt.Sprintf("r%02d", i)} }
	errs := make([]error, racers)
	concurrently(racers, func(i int) {
		errs[i] = s.Sessions().RotateSessionToken(t.Context(), "s1", hash(i), authTime(i), 2+i, amr(i))
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("racer %d: %v", i, err)
		}
	}
	// The last writer wins; exactly its hash, and no other, finds s1, and
	// the session holds that writer's proof, whole.
	got := mustSession(t, s, "s1")
	found := 0
	for i := range racers {
		ss, err := s.Sessions().SessionByTokenHash(t.Context(), hash(i))
		switch {
		case err == nil && ss.ID == "s1" && bytes.Equal(hash(i), got.TokenHash):
			found++
			want := wantSession(orig)
			want.TokenHash, want.AuthTime, want.AAL, want.AMR = hash(i), norm(authTime(i)), 2+i, amr(i)
			if d := diff(want, got); d != "" {
				t.Errorf("session after the race is not racer %d's rotation (-want +got):\n%s", i, d)
			}
		case !errors.Is(err, store.ErrNotFound):
			t.Errorf("SessionByTokenHash(hash %d) = %v, %v; want only the stored hash to resolve", i, ss, err)
		}
	}
	if found != 1 {
		t.Errorf("%d rotated hashes resolve to the session, want 1", found)
	}
	_, err := s.Sessions().SessionByTokenHash(t.Context(), orig.TokenHash)
	wantErr(t, "SessionByTokenHash(original hash)", err, store.ErrNotFound)
}

func testConcurrentRevokeUserSessions(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	var want []string
	for i := range 30 {
		id := fmt.Sprintf("s%02d", i)
		mustCreateSession(t, s, newSession(id, "u1"))
		if i > 0 {
			want = append(want, id)
		}
	}
	const callers = 10
	got := make([][]string, callers)
	errs := make([]error, callers)
	concurrently(callers, func(i int) {
		got[i], errs[i] = s.Sessions().RevokeUserSessions(t.Context(), "u1", "s00", base, "password_changed")
	})
	var union []string
	for i := range callers {
		if errs[i] != nil {
			t.Errorf("caller %d: %v", i, errs[i])
		}
		union = append(union, got[i]...)
	}
	slices.Sort(union)
	// Every session reported exactly once, across all callers.
	if d := diff(want, union); d != "" {
		t.Errorf("revoked ids across callers (-want +got):\n%s", d)
	}
	active, err := s.Sessions().ListActiveSessions(t.Context(), "u1", base)
	if err != nil || len(active) != 1 || active[0].ID != "s00" {
		t.Errorf("active sessions = %v, %v; want only s00", active, err)
	}
}

// testConcurrentRefreshRotation races rotations of one refresh token, each
// in its own transaction as the token endpoint runs them: mark the token
// used and, only if that won, insert a successor. Exactly one rotation
// commits; the losers see ErrConflict and leave no successor behind.
func testConcurrentRefreshRotation(t *testing.T, s store.Store) {
	const rotators = 50
	newTokenSession(t, s, "s1", "u1")
	orig := mustCreateRefreshToken(t, s, newRefreshToken("rt0", "s1"))
	successor := func(i int) *store.RefreshToken {
		return newRefreshToken(fmt.Sprintf("rt-successor-%02d", i), "s1")
	}
	usedAt := func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) }
	client := func(i int) string { return fmt.Sprintf("fp-%02d", i) }
	errs := make([]error, rotators)
	concurrently(rotators, func(i int) {
		errs[i] = s.InTx(t.Context(), func(tx store.Tx) error {
			if err := tx.RefreshTokens().MarkRefreshTokenUsed(t.Context(), orig.ID, usedAt(i), client(i), []byte(client(i))); err != nil {
				return err
			}
			return tx.RefreshTokens().CreateRefreshToken(t.Context(), successor(i))
		})
	})
	w := oneWinner(t, errs, store.ErrConflict)

	want := wantRefreshToken(orig)
	u := norm(usedAt(w))
	want.UsedAt, want.Client, want.Successor = &u, client(w), []byte(client(w))
	if d := diff(want, mustRefreshToken(t, s, orig.Hash)); d != "" {
		t.Errorf("rotated token is not the winner's (%d) (-want +got):\n%s", w, d)
	}
	for i := range rotators {
		rt, err := s.RefreshTokens().RefreshTokenByHash(t.Context(), successor(i).Hash)
		if i == w {
			if err != nil {
				t.Fatalf("winner's successor: %v", err)
			}
			if d := diff(wantRefreshToken(successor(w)), rt); d != "" {
				t.Errorf("winner's successor (-want +got):\n%s", d)
			}
			continue
		}
		wantErr(t, fmt.Sprintf("RefreshTokenByHash(successor of loser %d)", i), err, store.ErrNotFound)
	}
}

func testConcurrentRefreshTokenSameHash(t *testing.T, s store.Store) {
	newTokenSession(t, s, "s1", "u1")
	hash := tokenHash("refresh-race")
	errs := make([]error, racers)
	concurrently(racers, func(i int) {
		rt := newRefreshToken(fmt.Sprintf("rt%02d", i), "s1")
		rt.Hash = hash
		errs[i] = s.RefreshTokens().CreateRefreshToken(t.Context(), rt)
	})
	w := oneWinner(t, errs, store.ErrConflict)
	if rt := mustRefreshToken(t, s, hash); rt.ID != fmt.Sprintf("rt%02d", w) {
		t.Errorf("RefreshTokenByHash = %s, want the winner rt%02d", rt.ID, w)
	}
}

func testConcurrentSigningKeySameID(t *testing.T, s store.Store) {
	errs := make([]error, racers)
	concurrently(racers, func(i int) {
		k := newSigningKey("k1", base)
		k.KEKVersion = i + 1
		errs[i] = s.SigningKeys().CreateSigningKey(t.Context(), k)
	})
	w := oneWinner(t, errs, store.ErrConflict)
	if ks := mustListSigningKeys(t, s); len(ks) != 1 || ks[0].KEKVersion != w+1 {
		t.Errorf("ListSigningKeys = %v, want only the winner's key (KEK version %d)", ks, w+1)
	}
}

func testConcurrentConsumeVerification(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	v := mustCreateVerification(t, s, newVerification("v1", "u1", store.PurposeMagicLink))
	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) }
	errs := make([]error, racers)
	concurrently(racers, func(i int) {
		errs[i] = s.Verifications().ConsumeVerification(t.Context(), v.ID, at(i))
	})
	w := oneWinner(t, errs, store.ErrConflict)
	if d := diffVerification(wantUsed(v, at(w)), mustVerification(t, s, v.LinkHash)); d != "" {
		t.Errorf("consumed verification is not the winner's (%d) (-want +got):\n%s", w, d)
	}
}

// testConcurrentConsumeVerificationInTx races sign-ins by one magic link,
// each in its own transaction as the handler runs them: consume the link
// and, only if that won, record the sign-in. Exactly one commits.
func testConcurrentConsumeVerificationInTx(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	v := mustCreateVerification(t, s, newVerification("v1", "u1", store.PurposeMagicLink))
	errs := make([]error, racers)
	concurrently(racers, func(i int) {
		errs[i] = s.InTx(t.Context(), func(tx store.Tx) error {
			if err := tx.Verifications().ConsumeVerification(t.Context(), v.ID, base); err != nil {
				return err
			}
			return tx.Audit().AppendEvent(t.Context(), &store.Event{Type: "signin", UserID: "u1", At: base,
				Details: map[string]string{"racer": fmt.Sprint(i)}})
		})
	})
	w := oneWinner(t, errs, store.ErrConflict)
	evs, err := s.Audit().ListUserEvents(t.Context(), "u1", 0, racers+1)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Details["racer"] != fmt.Sprint(w) {
		t.Errorf("events = %v, want only the winner's (%d)", evs, w)
	}
}

// testConcurrentAttemptVerification counts wrong codes from many goroutines:
// every failure is counted once and each caller sees its own count; once
// one caller's count reaches max, the rest get ErrConflict.
func testConcurrentAttemptVerification(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	for i, tc := range []struct {
		name string
		max  int
	}{
		{"reaching max", 5},
		{"below max", 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := mustCreateVerification(t, s, newVerification(fmt.Sprintf("v%d", i), "u1", purposes[i]))
			counts := make([]int, racers)
			errs := make([]error, racers)
			concurrently(racers, func(j int) {
				counts[j], errs[j] = s.Verifications().AttemptVerification(t.Context(), v.ID, tc.max, base.Add(time.Duration(j)*time.Second))
			})
			want := min(racers, tc.max)
			seen := map[int]int{} // count -> racer
			killer := -1
			for j := range racers {
				switch {
				case errs[j] == nil && (counts[j] < 1 || counts[j] > want):
					t.Errorf("racer %d: count %d, want 1..%d", j, counts[j], want)
				case errs[j] == nil:
					if k, dup := seen[counts[j]]; dup {
						t.Errorf("racers %d and %d both saw count %d", k, j, counts[j])
					}
					seen[counts[j]] = j
					if counts[j] == tc.max {
						killer = j
					}
				case !errors.Is(errs[j], store.ErrConflict):
					t.Errorf("racer %d: got error %v, want ErrConflict", j, errs[j])
				}
			}
			if len(seen) != want {
				t.Errorf("%d failures counted, want %d", len(seen), want)
			}
			w := wantVerification(v)
			w.Attempts = want
			if killer >= 0 {
				u := norm(base.Add(time.Duration(killer) * time.Second))
				w.UsedAt = &u
			} else if tc.max <= racers {
				t.Errorf("no racer reached max %d", tc.max)
			}
			if d := diffVerification(w, mustVerification(t, s, v.LinkHash)); d != "" {
				t.Errorf("stored verification (-want +got):\n%s", d)
			}
		})
	}
}

// testConcurrentCreateVerification sends many links for one user and
// purpose at once, directly and in transactions: whatever the
// interleaving, exactly one is left unused, and it is the current one.
func testConcurrentCreateVerification(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	older := mustCreateVerification(t, s, newVerification("v-older", "u1", store.PurposeVerifyEmail))
	other := mustCreateVerification(t, s, newVerification("v-other", "u1", store.PurposeRecovery))
	vs := make([]*store.Verification, racers)
	for i := range vs {
		vs[i] = newVerification(fmt.Sprintf("v%02d", i), "u1", store.PurposeVerifyEmail)
		vs[i].CreatedAt = base.Add(time.Duration(i+1) * time.Second)
	}
	errs := make([]error, racers)
	concurrently(racers, func(i int) {
		if i%2 == 0 {
			errs[i] = s.Verifications().CreateVerification(t.Context(), vs[i])
			return
		}
		errs[i] = s.InTx(t.Context(), func(tx store.Tx) error {
			return tx.Verifications().CreateVerification(t.Context(), vs[i])
		})
	})
	var unused []string
	for i, v := range vs {
		if errs[i] != nil {
			t.Errorf("racer %d: %v", i, errs[i])
			continue
		}
		if got := mustVerification(t, s, v.LinkHash); got.UsedAt == nil {
			unused = append(unused, got.ID)
		}
	}
	if len(unused) != 1 {
		t.Fatalf("unused verifications = %v, want exactly one", unused)
	}
	if got := mustCurrentVerification(t, s, "u1", store.PurposeVerifyEmail); got.ID != unused[0] {
		t.Errorf("current verification = %s, want %s", got.ID, unused[0])
	}
	if got := mustVerification(t, s, older.LinkHash); got.UsedAt == nil {
		t.Error("the verification from before the race is still unused")
	}
	if d := diffVerification(wantVerification(other), mustVerification(t, s, other.LinkHash)); d != "" {
		t.Errorf("verification of another purpose changed (-want +got):\n%s", d)
	}
}

// testConcurrentUseTOTPStep replays one code from many goroutines,
// directly and in transactions: exactly one use is accepted.
func testConcurrentUseTOTPStep(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	f := mustPutPendingTOTP(t, s, newTOTP("u1"))
	mustConfirmTOTP(t, s, "u1", 10, base)
	errs := make([]error, racers)
	concurrently(racers, func(i int) {
		if i%2 == 0 {
			errs[i] = s.MFA().UseTOTPStep(t.Context(), "u1", 11)
			return
		}
		errs[i] = s.InTx(t.Context(), func(tx store.Tx) error {
			return tx.MFA().UseTOTPStep(t.Context(), "u1", 11)
		})
	})
	oneWinner(t, errs, store.ErrConflict)
	if d := diffTOTP(wantConfirmedTOTP(f, 11, base), mustTOTP(t, s, "u1")); d != "" {
		t.Errorf("stored factor (-want +got):\n%s", d)
	}
}

// testConcurrentUseRecoveryCode spends one recovery code from many
// goroutines, directly and in transactions as the sign-in handler does
// (use the code and, only if that won, record the sign-in): exactly one
// use succeeds.
func testConcurrentUseRecoveryCode(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	codes := mustReplaceRecoveryCodes(t, s, "u1", newRecoveryCodes("u1", "rc", 3))
	errs := make([]error, racers)
	concurrently(racers, func(i int) {
		at := base.Add(time.Duration(i) * time.Second)
		if i%2 == 0 {
			errs[i] = s.MFA().UseRecoveryCode(t.Context(), "u1", codes[1].Hash, at)
			return
		}
		errs[i] = s.InTx(t.Context(), func(tx store.Tx) error {
			if err := tx.MFA().UseRecoveryCode(t.Context(), "u1", codes[1].Hash, at); err != nil {
				return err
			}
			return tx.Audit().AppendEvent(t.Context(), &store.Event{Type: "signin", UserID: "u1", At: at,
				Details: map[string]string{"racer": fmt.Sprint(i)}})
		})
	})
	w := oneWinner(t, errs, store.ErrNotFound)
	wantRecoveryCodes(t, s, "u1", 2)
	evs, err := s.Audit().ListUserEvents(t.Context(), "u1", 0, racers+1)
	if err != nil {
		t.Fatal(err)
	}
	if w%2 == 1 && (len(evs) != 1 || evs[0].Details["racer"] != fmt.Sprint(w)) {
		t.Errorf("events = %v, want only the winner's (%d)", evs, w)
	} else if w%2 == 0 && len(evs) != 0 {
		t.Errorf("events = %v, want none (the winner, %d, used the code directly)", evs, w)
	}
}

// testConcurrentReplaceRecoveryCodes regenerates a user's codes from many
// goroutines, directly and in transactions: whatever the interleaving, the
// user ends with exactly one whole set.
func testConcurrentReplaceRecoveryCodes(t *testing.T, s store.Store) {
	const perSet = 5
	mustCreateUser(t, s, newUser("u1"))
	mustReplaceRecoveryCodes(t, s, "u1", newRecoveryCodes("u1", "before", perSet))
	sets := make([][]*store.RecoveryCode, racers)
	for i := range sets {
		sets[i] = newRecoveryCodes("u1", fmt.Sprintf("set%02d", i), perSet)
	}
	errs := make([]error, racers)
	concurrently(racers, func(i int) {
		if i%2 == 0 {
			errs[i] = s.MFA().ReplaceRecoveryCodes(t.Context(), "u1", sets[i])
			return
		}
		errs[i] = s.InTx(t.Context(), func(tx store.Tx) error {
			return tx.MFA().ReplaceRecoveryCodes(t.Context(), "u1", sets[i])
		})
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("racer %d: %v", i, err)
		}
	}
	if t.Failed() {
		return
	}
	wantRecoveryCodes(t, s, "u1", perSet)
	// Spend every code of every set: only one set's codes all work.
	var whole []int
	for i, set := range sets {
		worked := 0
		for _, c := range set {
			switch err := s.MFA().UseRecoveryCode(t.Context(), "u1", c.Hash, base); {
			case err == nil:
				worked++
			case !errors.Is(err, store.ErrNotFound):
				t.Errorf("UseRecoveryCode(%s): %v", c.ID, err)
			}
		}
		switch worked {
		case perSet:
			whole = append(whole, i)
		case 0:
		default:
			t.Errorf("%d of set %d's codes work, want all or none", worked, i)
		}
	}
	if len(whole) != 1 {
		t.Errorf("sets whose codes work = %v, want exactly one", whole)
	}
}

// testConcurrentPutPendingAndConfirmTOTP races enrolments against
// confirmations, starting from a pending factor and from none. At most
// one confirmation wins (exactly one when a factor was pending from the
// start); no enrolment replaces the factor once it is confirmed, and the
// stored factor is whole: the secret and KEK version of one enrolment.
func testConcurrentPutPendingAndConfirmTOTP(t *testing.T, s store.Store) {
	for _, tc := range []struct {
		name    string
		pending bool
	}{
		{"from a pending factor", true},
		{"from none", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uid := "u-" + strings.ReplaceAll(tc.name, " ", "-")
			mustCreateUser(t, s, newUser(uid))
			enrolment := func(i int) *store.TOTPFactor {
				return &store.TOTPFactor{UserID: uid, SecretSealed: tokenHash(fmt.Sprintf("secret-%02d", i)),
					KEKVersion: i + 1, CreatedAt: base.Add(time.Duration(i) * time.Second)}
			}
			const initial = racers // the index of the factor stored before the race
			if tc.pending {
				mustPutPendingTOTP(t, s, enrolment(initial))
			}
			at := func(i int) time.Time { return base.Add(time.Hour + time.Duration(i)*time.Second) }
			errs := make([]error, racers)
			concurrently(racers, func(i int) {
				switch i % 4 {
				case 0: // enrol
					errs[i] = s.MFA().PutPendingTOTP(t.Context(), enrolment(i))
				case 1: // enrol in a transaction
					errs[i] = s.InTx(t.Context(), func(tx store.Tx) error {
						return tx.MFA().PutPendingTOTP(t.Context(), enrolment(i))
					})
				case 2: // confirm
					errs[i] = s.MFA().ConfirmTOTP(t.Context(), uid, int64(1000+i), at(i))
				default: // confirm in a transaction
					errs[i] = s.InTx(t.Context(), func(tx store.Tx) error {
						return tx.MFA().ConfirmTOTP(t.Context(), uid, int64(1000+i), at(i))
					})
				}
			})
			confirmer := -1
			stored := map[int]bool{} // enrolments that succeeded
			if tc.pending {
				stored[initial] = true
			}
			for i, err := range errs {
				enrol := i%4 < 2
				switch {
				case err == nil && enrol:
					stored[i] = true
				case err == nil && confirmer >= 0:
					t.Errorf("confirmations %d and %d both succeeded", confirmer, i)
				case err == nil:
					confirmer = i
				case errors.Is(err, store.ErrConflict):
				case errors.Is(err, store.ErrNotFound) && !enrol && !tc.pending:
				default:
					t.Errorf("racer %d: %v", i, err)
				}
			}
			if tc.pending && confirmer < 0 {
				t.Fatal("no confirmation succeeded")
			}
			if len(stored) == 0 {
				if _, err := s.MFA().TOTPByUser(t.Context(), uid); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("TOTPByUser with no enrolment = %v, want ErrNotFound", err)
				}
				return
			}
			got := mustTOTP(t, s, uid)
			owner := got.KEKVersion - 1
			if !stored[owner] {
				t.Fatalf("stored factor has KEK version %d: not a successful enrolment's", got.KEKVersion)
			}
			want := wantTOTP(enrolment(owner))
			if confirmer >= 0 {
				want = wantConfirmedTOTP(enrolment(owner), int64(1000+confirmer), at(confirmer))
				wantErr(t, "PutPendingTOTP after the race", s.MFA().PutPendingTOTP(t.Context(), enrolment(0)), store.ErrConflict)
			}
			if d := diffTOTP(want, got); d != "" {
				t.Errorf("stored factor (-want +got):\n%s", d)
			}
		})
	}
}

// testConcurrentUseWebAuthnCredential records assertions made from one
// counter value from many goroutines, directly and in transactions as the
// sign-in handler does (record the use and, only if that won, the
// sign-in), each with a count of its own: exactly one is accepted, and
// the credential holds its count, backup state and time.
func testConcurrentUseWebAuthnCredential(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	c := newWebAuthnCredential("wac_1", "u1")
	c.SignCount = 10
	mustCreateWebAuthnCredential(t, s, c)
	count := func(i int) uint32 { return uint32(11 + i) }
	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) }
	errs := make([]error, racers)
	concurrently(racers, func(i int) {
		if i%2 == 0 {
			errs[i] = s.WebAuthn().UseWebAuthnCredential(t.Context(), c.ID, 10, count(i), i%4 == 0, at(i))
			return
		}
		errs[i] = s.InTx(t.Context(), func(tx store.Tx) error {
			if err := tx.WebAuthn().UseWebAuthnCredential(t.Context(), c.ID, 10, count(i), i%4 == 1, at(i)); err != nil {
				return err
			}
			return tx.Audit().AppendEvent(t.Context(), &store.Event{Type: "signin", UserID: "u1", At: at(i),
				Details: map[string]string{"racer": fmt.Sprint(i)}})
		})
	})
	w := oneWinner(t, errs, store.ErrConflict)
	want := *c
	usedAt := at(w)
	want.SignCount, want.BackupState, want.LastUsedAt = count(w), w%4 < 2, &usedAt
	if d := diff(wantWebAuthnCredential(&want), mustWebAuthnCredential(t, s, c.CredentialID)); d != "" {
		t.Errorf("stored credential is not the winner's (%d) (-want +got):\n%s", w, d)
	}
	evs, err := s.Audit().ListUserEvents(t.Context(), "u1", 0, racers+1)
	if err != nil {
		t.Fatal(err)
	}
	if w%2 == 1 && (len(evs) != 1 || evs[0].Details["racer"] != fmt.Sprint(w)) {
		t.Errorf("events = %v, want only the winner's (%d)", evs, w)
	} else if w%2 == 0 && len(evs) != 0 {
		t.Errorf("events = %v, want none (the winner, %d, recorded the use directly)", evs, w)
	}
}

// hammerSession is a session one hammer worker created; only that worker
// rotates it, so its final token hash is known.
type hammerSession struct {
	id            string
	hash          []byte
	oldHashes     [][]byte
	rotateRefused bool // RotateSessionToken said ErrNotFound: it must be revoked
}

// testHammer runs workers that create sessions of one user (directly, in
// committed transactions, in rolled-back transactions), touch, rotate and
// revoke them (directly and in transactions) and list them, all at once.
// Afterwards the store must hold exactly what the successful operations
// imply.
func testHammer(t *testing.T, s store.Store) {
	const workers = 8
	ops := 60
	if testing.Short() {
		ops = 20
	}
	ctx := t.Context()
	mustCreateUser(t, s, newUser("u1"))

	var (
		mu            sync.Mutex
		pool          []string // committed session ids, any worker may revoke them
		revokedTrue   = map[string]int{}
		txCreated     int // "hammer.created" events committed
		txRevokeCalls int // "hammer.revoked" events committed
	)
	created := make([][]*hammerSession, workers)
	rolledBack := make([][]string, workers)

	concurrently(workers, func(w int) {
		rng := rand.New(rand.NewPCG(uint64(w), 0x6a7e))
		var mine []*hammerSession
		seq := 0
		next := func() *store.Session {
			seq++
			return newSession(fmt.Sprintf("w%d-s%03d", w, seq), "u1")
		}
		keep := func(ss *store.Session) {
			mine = append(mine, &hammerSession{id: ss.ID, hash: ss.TokenHash})
			mu.Lock()
			pool = append(pool, ss.ID)
			mu.Unlock()
		}
		pick := func() string {
			mu.Lock()
			defer mu.Unlock()
			if len(pool) == 0 {
				return ""
			}
			return pool[rng.IntN(len(pool))]
		}
		fail := func(op string, err error) { t.Errorf("worker %d: %s: %v", w, op, err) }

		for op := range ops {
			at := base.Add(time.Duration(op) * time.Second)
			switch r := rng.IntN(100); {
			case r < 20:
				ss := next()
				if err := s.Sessions().CreateSession(ctx, ss); err != nil {
					fail("CreateSession", err)
					continue
				}
				keep(ss)
			case r < 32:
				ss := next()
				err := s.InTx(ctx, func(tx store.Tx) error {
					if err := tx.Sessions().CreateSession(ctx, ss); err != nil {
						return err
					}
					return tx.Audit().AppendEvent(ctx, &store.Event{Type: "hammer.created", UserID: "u1", SessionID: ss.ID, At: at})
				})
				if err != nil {
					fail("InTx(create)", err)
					continue
				}
				keep(ss)
				mu.Lock()
				txCreated++
				mu.Unlock()
			case r < 40:
				ss := next()
				err := s.InTx(ctx, func(tx store.Tx) error {
					if err := tx.Sessions().CreateSession(ctx, ss); err != nil {
						return err
					}
					if err := tx.Audit().AppendEvent(ctx, &store.Event{Type: "hammer.rolled_back", UserID: "u1", At: at}); err != nil {
						return err
					}
					return errAbort
				})
				if !errors.Is(err, errAbort) {
					fail("InTx(rollback)", err)
				}
				rolledBack[w] = append(rolledBack[w], ss.ID)
			case r < 60:
				if len(mine) == 0 {
					continue
				}
				o := mine[rng.IntN(len(mine))]
				if err := s.Sessions().TouchSession(ctx, o.id, at, fmt.Sprintf("192.0.2.%d", w), "hammer"); err != nil {
					fail("TouchSession", err)
				}
			case r < 70:
				if len(mine) == 0 {
					continue
				}
				o := mine[rng.IntN(len(mine))]
				h := tokenHash(fmt.Sprintf("%s-rotated-%d", o.id, op))
				switch err := s.Sessions().RotateSessionToken(ctx, o.id, h, at, 2, []string{"pwd", "otp", "mfa"}); {
				case err == nil:
					o.oldHashes, o.hash = append(o.oldHashes, o.hash), h
				case errors.Is(err, store.ErrNotFound):
					o.rotateRefused = true
				default:
					fail("RotateSessionToken", err)
				}
			case r < 80:
				id := pick()
				if id == "" {
					continue
				}
				revoked, err := s.Sessions().RevokeSession(ctx, id, at, "hammer")
				if err != nil {
					fail("RevokeSession", err)
					continue
				}
				if revoked {
					mu.Lock()
					revokedTrue[id]++
					mu.Unlock()
				}
			case r < 90:
				id := pick()
				if id == "" {
					continue
				}
				var revoked bool
				err := s.InTx(ctx, func(tx store.Tx) error {
					var err error
					if revoked, err = tx.Sessions().RevokeSession(ctx, id, at, "hammer_tx"); err != nil {
						return err
					}
					return tx.Audit().AppendEvent(ctx, &store.Event{Type: "hammer.revoked", UserID: "u1", SessionID: id, At: at})
				})
				if err != nil {
					fail("InTx(revoke)", err)
					continue
				}
				mu.Lock()
				txRevokeCalls++
				if revoked {
					revokedTrue[id]++
				}
				mu.Unlock()
			default:
				active, err := s.Sessions().ListActiveSessions(ctx, "u1", base)
				if err != nil {
					fail("ListActiveSessions", err)
					continue
				}
				for _, ss := range active {
					if ss.UserID != "u1" || ss.RevokedAt != nil {
						t.Errorf("worker %d: ListActiveSessions returned %+v", w, ss)
					}
				}
			}
		}
		created[w] = mine
	})
	if t.Failed() {
		return
	}

	// The final state must be exactly what the successful operations imply.
	var wantActive []string
	total, revoked := 0, 0
	for _, mine := range created {
		for _, o := range mine {
			total++
			ss := mustSession(t, s, o.id)
			n := revokedTrue[o.id]
			switch {
			case n > 1:
				t.Errorf("session %s: %d revocations reported true, want at most one", o.id, n)
			case n == 1 && ss.RevokedAt == nil:
				t.Errorf("session %s: a revocation was reported but the session is active", o.id)
			case n == 0 && ss.RevokedAt != nil:
				t.Errorf("session %s is revoked but no revocation reported it", o.id)
			}
			if ss.RevokedAt == nil {
				wantActive = append(wantActive, o.id)
				if o.rotateRefused {
					t.Errorf("session %s: rotation was refused but the session is active", o.id)
				}
			} else {
				revoked++
			}
			if got, err := s.Sessions().SessionByTokenHash(ctx, o.hash); err != nil || got.ID != o.id {
				t.Errorf("session %s: its last rotated hash finds %v, %v", o.id, got, err)
			}
			for _, h := range o.oldHashes {
				_, err := s.Sessions().SessionByTokenHash(ctx, h)
				wantErr(t, "SessionByTokenHash(superseded hash of "+o.id+")", err, store.ErrNotFound)
			}
		}
	}
	rolled := 0
	for _, ids := range rolledBack {
		for _, id := range ids {
			rolled++
			_, err := s.Sessions().SessionByID(ctx, id)
			wantErr(t, "SessionByID(rolled back "+id+")", err, store.ErrNotFound)
		}
	}

	active, err := s.Sessions().ListActiveSessions(ctx, "u1", base)
	if err != nil {
		t.Fatal(err)
	}
	var gotActive []string
	for _, ss := range active {
		gotActive = append(gotActive, ss.ID)
	}
	slices.Sort(gotActive)
	slices.Sort(wantActive)
	if d := diff(wantActive, gotActive); d != "" {
		t.Errorf("active sessions (-want +got):\n%s", d)
	}

	events, err := s.Audit().ListUserEvents(ctx, "u1", 0, 100_000)
	if err != nil {
		t.Fatal(err)
	}
	byType := map[string]int{}
	for _, e := range events {
		byType[e.Type]++
	}
	want := map[string]int{"hammer.created": txCreated, "hammer.revoked": txRevokeCalls}
	maps.DeleteFunc(want, func(_ string, n int) bool { return n == 0 })
	if d := diff(want, byType); d != "" {
		t.Errorf("audit events by type (-want +got):\n%s", d)
	}
	t.Logf("hammer: %d sessions committed (%d in transactions), %d revoked, %d active, %d transactions rolled back",
		total, txCreated, revoked, len(gotActive), rolled)
}
