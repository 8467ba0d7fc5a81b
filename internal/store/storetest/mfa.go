package storetest

import (
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

var mfaTests = []storeTest{
	{"PutAndGetTOTP", testPutAndGetTOTP},
	{"PutPendingReplacesPending", testPutPendingReplacesPending},
	{"PutPendingConflict", testPutPendingTOTPConflict},
	{"NotFound", testMFANotFound},
	{"ConfirmTOTP", testConfirmTOTP},
	{"UseTOTPStep", testUseTOTPStep},
	{"DeleteTOTP", testDeleteTOTP},
	{"TOTPInTx", testTOTPInTx},
	{"ReplaceRecoveryCodes", testReplaceRecoveryCodes},
	{"ReplaceRecoveryCodesConflict", testReplaceRecoveryCodesConflict},
	{"ReplaceRecoveryCodesOfAnotherUser", testReplaceRecoveryCodesOfAnotherUser},
	{"UseRecoveryCode", testUseRecoveryCode},
	{"RecoveryCodesInTx", testRecoveryCodesInTx},
}

// newTOTP is a pending factor of the user, enrolled at base.
func newTOTP(userID string) *store.TOTPFactor {
	return &store.TOTPFactor{
		UserID:       userID,
		SecretSealed: tokenHash("totp-" + userID),
		KEKVersion:   1,
		CreatedAt:    base,
	}
}

// wantTOTP is f as a store returns it after PutPendingTOTP: pending.
func wantTOTP(f *store.TOTPFactor) *store.TOTPFactor {
	w := *f
	w.CreatedAt, w.ConfirmedAt = norm(f.CreatedAt), nil
	return &w
}

// wantConfirmedTOTP is f as a store returns it once confirmed at at with
// step.
func wantConfirmedTOTP(f *store.TOTPFactor, step int64, at time.Time) *store.TOTPFactor {
	w := wantTOTP(f)
	c := norm(at)
	w.ConfirmedAt, w.LastStep = &c, step
	return w
}

// diffTOTP compares factors; a nil secret differs from an empty one.
func diffTOTP(want, got *store.TOTPFactor) string {
	return cmp.Diff(want, got)
}

func mustPutPendingTOTP(t *testing.T, s store.Tx, f *store.TOTPFactor) *store.TOTPFactor {
	t.Helper()
	if err := s.MFA().PutPendingTOTP(t.Context(), f); err != nil {
		t.Fatalf("PutPendingTOTP(%s): %v", f.UserID, err)
	}
	return f
}

func mustTOTP(t *testing.T, s store.Tx, userID string) *store.TOTPFactor {
	t.Helper()
	f, err := s.MFA().TOTPByUser(t.Context(), userID)
	if err != nil {
		t.Fatalf("TOTPByUser(%s): %v", userID, err)
	}
	return f
}

func mustConfirmTOTP(t *testing.T, s store.Tx, userID string, step int64, at time.Time) {
	t.Helper()
	if err := s.MFA().ConfirmTOTP(t.Context(), userID, step, at); err != nil {
		t.Fatalf("ConfirmTOTP(%s): %v", userID, err)
	}
}

// newRecoveryCodes is a set of n unused codes of the user; prefix tells
// sets apart.
func newRecoveryCodes(userID, prefix string, n int) []*store.RecoveryCode {
	codes := make([]*store.RecoveryCode, n)
	for i := range codes {
		id := fmt.Sprintf("%s-%s-%d", prefix, userID, i)
		codes[i] = &store.RecoveryCode{ID: id, UserID: userID, Hash: tokenHash("recovery-" + id), CreatedAt: base}
	}
	return codes
}

func mustReplaceRecoveryCodes(t *testing.T, s store.Tx, userID string, codes []*store.RecoveryCode) []*store.RecoveryCode {
	t.Helper()
	if err := s.MFA().ReplaceRecoveryCodes(t.Context(), userID, codes); err != nil {
		t.Fatalf("ReplaceRecoveryCodes(%s): %v", userID, err)
	}
	return codes
}

// wantRecoveryCodes checks the user has want unused codes.
func wantRecoveryCodes(t *testing.T, s store.Tx, userID string, want int) {
	t.Helper()
	n, err := s.MFA().CountRecoveryCodes(t.Context(), userID)
	if err != nil || n != want {
		t.Errorf("CountRecoveryCodes(%s) = %d, %v; want %d", userID, n, err, want)
	}
}

// testPutAndGetTOTP stores every shape of pending factor, each for a user
// of its own, and reads it back.
func testPutAndGetTOTP(t *testing.T, s store.Store) {
	binary := make([]byte, 64) // NUL and high bytes must survive
	for i := range binary {
		binary[i] = byte(255 - i*37)
	}
	confirmed := base.Add(time.Minute)
	for _, tc := range []struct {
		name string
		mod  func(f *store.TOTPFactor)
	}{
		{"plain", func(*store.TOTPFactor) {}},
		{"binary secret", func(f *store.TOTPFactor) { f.SecretSealed = binary }},
		{"one-byte secret", func(f *store.TOTPFactor) { f.SecretSealed = []byte{0} }},
		{"newer KEK", func(f *store.TOTPFactor) { f.KEKVersion = 7 }},
		{"last step", func(f *store.TOTPFactor) { f.LastStep = 58_000_000 }},
		{"largest step", func(f *store.TOTPFactor) { f.LastStep = 1<<63 - 1 }},
		{"time below a microsecond", func(f *store.TOTPFactor) { f.CreatedAt = base.Add(999 * time.Nanosecond) }},
		{"time before the unix epoch", func(f *store.TOTPFactor) {
			f.CreatedAt = time.Date(1969, 7, 20, 20, 17, 40, 123_456_789, time.UTC)
		}},
		{"zero time", func(f *store.TOTPFactor) { f.CreatedAt = time.Time{} }},
		// A pending factor is pending, whatever f says.
		{"ConfirmedAt set", func(f *store.TOTPFactor) { f.ConfirmedAt = &confirmed }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uid := "u-" + strings.ReplaceAll(tc.name, " ", "-")
			mustCreateUser(t, s, newUser(uid))
			f := newTOTP(uid)
			tc.mod(f)
			mustPutPendingTOTP(t, s, f)
			got := mustTOTP(t, s, uid)
			if d := diffTOTP(wantTOTP(f), got); d != "" {
				t.Errorf("stored factor (-want +got):\n%s", d)
			}
			if got.CreatedAt.Location() != time.UTC {
				t.Errorf("CreatedAt in %s, want UTC", got.CreatedAt.Location())
			}
		})
	}
}

// testPutPendingReplacesPending enrols twice: the second pending factor
// replaces the first, and another user's factor is left alone.
func testPutPendingReplacesPending(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	mustCreateUser(t, s, newUser("u2"))
	bystander := mustPutPendingTOTP(t, s, newTOTP("u2"))
	first := mustPutPendingTOTP(t, s, newTOTP("u1"))
	second := &store.TOTPFactor{UserID: "u1", SecretSealed: tokenHash("second secret"), KEKVersion: 2,
		CreatedAt: base.Add(time.Hour + 5*time.Nanosecond), LastStep: 3}
	mustPutPendingTOTP(t, s, second)
	if d := diffTOTP(wantTOTP(second), mustTOTP(t, s, "u1")); d != "" {
		t.Errorf("factor after the second enrolment (-want +got):\n%s", d)
	}
	// Enrolling the first again puts it back, LastStep included.
	mustPutPendingTOTP(t, s, first)
	if d := diffTOTP(wantTOTP(first), mustTOTP(t, s, "u1")); d != "" {
		t.Errorf("factor after the third enrolment (-want +got):\n%s", d)
	}
	if d := diffTOTP(wantTOTP(bystander), mustTOTP(t, s, "u2")); d != "" {
		t.Errorf("another user's factor changed (-want +got):\n%s", d)
	}
}

// testPutPendingTOTPConflict enrols over a confirmed factor: refused,
// without touching it.
func testPutPendingTOTPConflict(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	f := mustPutPendingTOTP(t, s, newTOTP("u1"))
	confirmedAt := base.Add(time.Minute + 7*time.Nanosecond)
	mustConfirmTOTP(t, s, "u1", 100, confirmedAt)
	want := wantConfirmedTOTP(f, 100, confirmedAt)
	for _, tc := range []struct {
		name string
		f    *store.TOTPFactor
	}{
		{"same factor again", newTOTP("u1")},
		{"another secret", &store.TOTPFactor{UserID: "u1", SecretSealed: tokenHash("attacker secret"), KEKVersion: 2,
			CreatedAt: base.Add(time.Hour)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.MFA().PutPendingTOTP(t.Context(), tc.f)
			wantErr(t, "PutPendingTOTP", err, store.ErrConflict)
			if strings.Contains(err.Error(), hex.EncodeToString(tc.f.SecretSealed)) || strings.Contains(err.Error(), string(tc.f.SecretSealed)) {
				t.Errorf("error %q quotes the secret", err)
			}
			if d := diffTOTP(want, mustTOTP(t, s, "u1")); d != "" {
				t.Errorf("confirmed factor changed (-want +got):\n%s", d)
			}
		})
	}
}

func testMFANotFound(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	mustCreateUser(t, s, newUser("u2"))
	mustPutPendingTOTP(t, s, newTOTP("u2"))
	codes := mustReplaceRecoveryCodes(t, s, "u2", newRecoveryCodes("u2", "rc", 2))
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"TOTPByUser of a user without a factor", func() error {
			_, err := s.MFA().TOTPByUser(t.Context(), "u1")
			return err
		}},
		{"TOTPByUser of a missing user", func() error {
			_, err := s.MFA().TOTPByUser(t.Context(), "missing")
			return err
		}},
		{"ConfirmTOTP of a user without a factor", func() error {
			return s.MFA().ConfirmTOTP(t.Context(), "u1", 1, base)
		}},
		{"ConfirmTOTP of a missing user", func() error {
			return s.MFA().ConfirmTOTP(t.Context(), "missing", 1, base)
		}},
		{"UseTOTPStep of a user without a factor", func() error {
			return s.MFA().UseTOTPStep(t.Context(), "u1", 1)
		}},
		{"UseTOTPStep of a missing user", func() error {
			return s.MFA().UseTOTPStep(t.Context(), "missing", 1)
		}},
		{"DeleteTOTP of a user without a factor", func() error {
			return s.MFA().DeleteTOTP(t.Context(), "u1")
		}},
		{"DeleteTOTP of a missing user", func() error {
			return s.MFA().DeleteTOTP(t.Context(), "missing")
		}},
		{"UseRecoveryCode of a user without codes", func() error {
			return s.MFA().UseRecoveryCode(t.Context(), "u1", codes[0].Hash, base)
		}},
		{"UseRecoveryCode of a missing user", func() error {
			return s.MFA().UseRecoveryCode(t.Context(), "missing", codes[0].Hash, base)
		}},
		{"UseRecoveryCode with an unknown hash", func() error {
			return s.MFA().UseRecoveryCode(t.Context(), "u2", tokenHash("unknown"), base)
		}},
		{"UseRecoveryCode with a nil hash", func() error {
			return s.MFA().UseRecoveryCode(t.Context(), "u2", nil, base)
		}},
		{"UseRecoveryCode with an empty hash", func() error {
			return s.MFA().UseRecoveryCode(t.Context(), "u2", []byte{}, base)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, tc.name, tc.call(), store.ErrNotFound)
		})
	}
	if d := diffTOTP(wantTOTP(newTOTP("u2")), mustTOTP(t, s, "u2")); d != "" {
		t.Errorf("another user's factor changed (-want +got):\n%s", d)
	}
	wantRecoveryCodes(t, s, "u1", 0)
	wantRecoveryCodes(t, s, "missing", 0)
	wantRecoveryCodes(t, s, "u2", 2)
}

func testConfirmTOTP(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	mustCreateUser(t, s, newUser("u2"))
	bystander := mustPutPendingTOTP(t, s, newTOTP("u2"))
	f := newTOTP("u1")
	f.LastStep = 50 // whatever enrolment stored, confirmation sets it
	mustPutPendingTOTP(t, s, f)
	at := base.Add(2*time.Minute + 999*time.Nanosecond)
	mustConfirmTOTP(t, s, "u1", 58_000_000, at)
	want := wantConfirmedTOTP(f, 58_000_000, at)
	got := mustTOTP(t, s, "u1")
	if d := diffTOTP(want, got); d != "" {
		t.Errorf("confirmed factor (-want +got):\n%s", d)
	}
	if got.ConfirmedAt != nil && got.ConfirmedAt.Location() != time.UTC {
		t.Errorf("ConfirmedAt in %s, want UTC", got.ConfirmedAt.Location())
	}
	for _, tc := range []struct {
		name string
		step int64
	}{
		{"again, same step", 58_000_000},
		{"again, later step", 58_000_001},
		{"again, earlier step", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.MFA().ConfirmTOTP(t.Context(), "u1", tc.step, base.Add(time.Hour))
			wantErr(t, "ConfirmTOTP", err, store.ErrConflict)
			if d := diffTOTP(want, mustTOTP(t, s, "u1")); d != "" {
				t.Errorf("confirmed factor changed (-want +got):\n%s", d)
			}
		})
	}
	if d := diffTOTP(wantTOTP(bystander), mustTOTP(t, s, "u2")); d != "" {
		t.Errorf("another user's factor changed (-want +got):\n%s", d)
	}
}

// testUseTOTPStep accepts steps in sequence: only a step later than the
// last accepted one passes.
func testUseTOTPStep(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	mustCreateUser(t, s, newUser("u2"))
	f := mustPutPendingTOTP(t, s, newTOTP("u1"))
	confirmedAt := base.Add(time.Minute)
	mustConfirmTOTP(t, s, "u1", 100, confirmedAt)
	pending := mustPutPendingTOTP(t, s, newTOTP("u2"))
	last := int64(100)
	for _, step := range []struct {
		name string
		step int64
		want error
	}{
		{"the confirming step again", 100, store.ErrConflict},
		{"an earlier step", 99, store.ErrConflict},
		{"step 0", 0, store.ErrConflict},
		{"the next step", 101, nil},
		{"the same step again", 101, store.ErrConflict},
		{"a later step, skipping some", 105, nil},
		{"a skipped step", 103, store.ErrConflict},
		{"the largest step", 1<<63 - 1, nil},
		{"anything after it", 106, store.ErrConflict},
	} {
		t.Run(step.name, func(t *testing.T) {
			err := s.MFA().UseTOTPStep(t.Context(), "u1", step.step)
			if step.want != nil {
				wantErr(t, "UseTOTPStep", err, step.want)
			} else if err != nil {
				t.Fatalf("UseTOTPStep(%d): %v", step.step, err)
			} else {
				last = step.step
			}
			if d := diffTOTP(wantConfirmedTOTP(f, last, confirmedAt), mustTOTP(t, s, "u1")); d != "" {
				t.Errorf("stored factor (-want +got):\n%s", d)
			}
		})
	}
	t.Run("pending factor", func(t *testing.T) {
		err := s.MFA().UseTOTPStep(t.Context(), "u2", 1000)
		wantErr(t, "UseTOTPStep", err, store.ErrConflict)
		if d := diffTOTP(wantTOTP(pending), mustTOTP(t, s, "u2")); d != "" {
			t.Errorf("pending factor changed (-want +got):\n%s", d)
		}
	})
}

// testDeleteTOTP removes pending and confirmed factors; a removed factor
// can be enrolled again.
func testDeleteTOTP(t *testing.T, s store.Store) {
	for _, tc := range []struct {
		name    string
		confirm bool
	}{
		{"pending", false},
		{"confirmed", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uid := "u-" + tc.name
			mustCreateUser(t, s, newUser(uid))
			mustPutPendingTOTP(t, s, newTOTP(uid))
			if tc.confirm {
				mustConfirmTOTP(t, s, uid, 100, base)
			}
			if err := s.MFA().DeleteTOTP(t.Context(), uid); err != nil {
				t.Fatalf("DeleteTOTP: %v", err)
			}
			_, err := s.MFA().TOTPByUser(t.Context(), uid)
			wantErr(t, "TOTPByUser after DeleteTOTP", err, store.ErrNotFound)
			wantErr(t, "DeleteTOTP again", s.MFA().DeleteTOTP(t.Context(), uid), store.ErrNotFound)
			wantErr(t, "UseTOTPStep after DeleteTOTP", s.MFA().UseTOTPStep(t.Context(), uid, 200), store.ErrNotFound)

			again := newTOTP(uid)
			again.SecretSealed, again.CreatedAt = tokenHash("re-enrolled"), base.Add(time.Hour)
			mustPutPendingTOTP(t, s, again)
			if d := diffTOTP(wantTOTP(again), mustTOTP(t, s, uid)); d != "" {
				t.Errorf("re-enrolled factor (-want +got):\n%s", d)
			}
		})
	}
	t.Run("another user's factor stays", func(t *testing.T) {
		mustCreateUser(t, s, newUser("u1"))
		mustCreateUser(t, s, newUser("u2"))
		mustPutPendingTOTP(t, s, newTOTP("u1"))
		kept := mustPutPendingTOTP(t, s, newTOTP("u2"))
		if err := s.MFA().DeleteTOTP(t.Context(), "u1"); err != nil {
			t.Fatal(err)
		}
		if d := diffTOTP(wantTOTP(kept), mustTOTP(t, s, "u2")); d != "" {
			t.Errorf("another user's factor (-want +got):\n%s", d)
		}
	})
}

// testTOTPInTx enrols, confirms and uses a factor inside transactions:
// the transaction sees its own writes, and a rollback takes them back.
func testTOTPInTx(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	old := mustPutPendingTOTP(t, s, newTOTP("u1"))
	rolledBack := &store.TOTPFactor{UserID: "u1", SecretSealed: tokenHash("rolled back"), KEKVersion: 2, CreatedAt: base.Add(time.Minute)}
	err := s.InTx(t.Context(), func(tx store.Tx) error {
		mustPutPendingTOTP(t, tx, rolledBack)
		mustConfirmTOTP(t, tx, "u1", 10, base.Add(2*time.Minute))
		if d := diffTOTP(wantConfirmedTOTP(rolledBack, 10, base.Add(2*time.Minute)), mustTOTP(t, tx, "u1")); d != "" {
			t.Errorf("factor inside the transaction (-want +got):\n%s", d)
		}
		if err := tx.MFA().UseTOTPStep(t.Context(), "u1", 11); err != nil {
			t.Errorf("UseTOTPStep inside the transaction: %v", err)
		}
		wantErr(t, "second UseTOTPStep inside the transaction", tx.MFA().UseTOTPStep(t.Context(), "u1", 11), store.ErrConflict)
		wantErr(t, "PutPendingTOTP inside the transaction", tx.MFA().PutPendingTOTP(t.Context(), newTOTP("u1")), store.ErrConflict)
		return errAbort
	})
	wantErr(t, "InTx", err, errAbort)
	if d := diffTOTP(wantTOTP(old), mustTOTP(t, s, "u1")); d != "" {
		t.Errorf("factor after rollback (-want +got):\n%s", d)
	}

	confirmedAt := base.Add(3 * time.Minute)
	err = s.InTx(t.Context(), func(tx store.Tx) error {
		if err := tx.MFA().ConfirmTOTP(t.Context(), "u1", 20, confirmedAt); err != nil {
			return err
		}
		return tx.MFA().UseTOTPStep(t.Context(), "u1", 21)
	})
	if err != nil {
		t.Fatalf("InTx: %v", err)
	}
	if d := diffTOTP(wantConfirmedTOTP(old, 21, confirmedAt), mustTOTP(t, s, "u1")); d != "" {
		t.Errorf("factor after commit (-want +got):\n%s", d)
	}

	err = s.InTx(t.Context(), func(tx store.Tx) error {
		if err := tx.MFA().DeleteTOTP(t.Context(), "u1"); err != nil {
			return err
		}
		_, err := tx.MFA().TOTPByUser(t.Context(), "u1")
		wantErr(t, "TOTPByUser after DeleteTOTP inside the transaction", err, store.ErrNotFound)
		return errAbort
	})
	wantErr(t, "InTx", err, errAbort)
	if d := diffTOTP(wantConfirmedTOTP(old, 21, confirmedAt), mustTOTP(t, s, "u1")); d != "" {
		t.Errorf("factor after a rolled-back delete (-want +got):\n%s", d)
	}
}

// testReplaceRecoveryCodes replaces a user's set step by step; another
// user's codes are never touched.
func testReplaceRecoveryCodes(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	mustCreateUser(t, s, newUser("u2"))
	other := mustReplaceRecoveryCodes(t, s, "u2", newRecoveryCodes("u2", "other", 3))
	first := newRecoveryCodes("u1", "first", 10)
	second := newRecoveryCodes("u1", "second", 4)
	// Codes stored already used do not count.
	usedAt := base.Add(-time.Minute)
	second[3].UsedAt = &usedAt
	// The same hashes as another user's codes: unique per user only.
	sameHashes := newRecoveryCodes("u1", "same", 3)
	for i, c := range sameHashes {
		c.Hash = other[i].Hash
	}
	for _, step := range []struct {
		name  string
		codes []*store.RecoveryCode
		want  int
		gone  []*store.RecoveryCode // codes that no longer work
	}{
		{"first set", first, 10, nil},
		{"a new set", second, 3, first},
		{"the same set again", second, 3, second[3:]},
		{"another user's hashes", sameHashes, 3, second},
		{"empty set", []*store.RecoveryCode{}, 0, sameHashes},
		{"first set again", first, 10, nil},
		{"nil set", nil, 0, first},
	} {
		t.Run(step.name, func(t *testing.T) {
			mustReplaceRecoveryCodes(t, s, "u1", step.codes)
			wantRecoveryCodes(t, s, "u1", step.want)
			for _, c := range step.gone {
				wantErr(t, "UseRecoveryCode("+c.ID+")", s.MFA().UseRecoveryCode(t.Context(), "u1", c.Hash, base), store.ErrNotFound)
			}
			wantRecoveryCodes(t, s, "u1", step.want)
			wantRecoveryCodes(t, s, "u2", len(other))
		})
	}
	t.Run("replacing restores used codes", func(t *testing.T) {
		codes := mustReplaceRecoveryCodes(t, s, "u1", newRecoveryCodes("u1", "restored", 2))
		if err := s.MFA().UseRecoveryCode(t.Context(), "u1", codes[0].Hash, base); err != nil {
			t.Fatal(err)
		}
		wantRecoveryCodes(t, s, "u1", 1)
		mustReplaceRecoveryCodes(t, s, "u1", newRecoveryCodes("u1", "restored", 2))
		wantRecoveryCodes(t, s, "u1", 2)
		if err := s.MFA().UseRecoveryCode(t.Context(), "u1", codes[0].Hash, base); err != nil {
			t.Errorf("UseRecoveryCode of a code replaced by itself: %v", err)
		}
	})
}

// testReplaceRecoveryCodesConflict replaces with sets that cannot be
// stored: the replacement fails as a whole and the old codes stay.
func testReplaceRecoveryCodesConflict(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	mustCreateUser(t, s, newUser("u2"))
	old := mustReplaceRecoveryCodes(t, s, "u1", newRecoveryCodes("u1", "old", 3))
	other := mustReplaceRecoveryCodes(t, s, "u2", newRecoveryCodes("u2", "other", 2))
	if err := s.MFA().UseRecoveryCode(t.Context(), "u1", old[2].Hash, base); err != nil {
		t.Fatal(err)
	}
	dupHash := newRecoveryCodes("u1", "dup-hash", 3)
	dupHash[2].Hash = dupHash[0].Hash
	dupID := newRecoveryCodes("u1", "dup-id", 3)
	dupID[2].ID = dupID[0].ID
	otherID := newRecoveryCodes("u1", "other-id", 2)
	otherID[1].ID = other[0].ID
	for _, tc := range []struct {
		name  string
		codes []*store.RecoveryCode
	}{
		{"a hash twice", dupHash},
		{"an id twice", dupID},
		{"another user's code id", otherID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.MFA().ReplaceRecoveryCodes(t.Context(), "u1", tc.codes)
			wantErr(t, "ReplaceRecoveryCodes", err, store.ErrConflict)
			for _, c := range tc.codes {
				if strings.Contains(err.Error(), hex.EncodeToString(c.Hash)) || strings.Contains(err.Error(), string(c.Hash)) {
					t.Errorf("error %q quotes a hash", err)
				}
			}
			wantRecoveryCodes(t, s, "u1", 2)
			wantRecoveryCodes(t, s, "u2", 2)
			for _, c := range tc.codes {
				if err := s.MFA().UseRecoveryCode(t.Context(), "u1", c.Hash, base); err == nil {
					t.Errorf("code %s of the rejected set works", c.ID)
				}
			}
		})
	}
	for _, c := range old[:2] {
		if err := s.MFA().UseRecoveryCode(t.Context(), "u1", c.Hash, base); err != nil {
			t.Errorf("UseRecoveryCode(%s) after the rejected replacements: %v", c.ID, err)
		}
	}
	if err := s.MFA().UseRecoveryCode(t.Context(), "u2", other[0].Hash, base); err != nil {
		t.Errorf("another user's code after the rejected replacements: %v", err)
	}
}

// testReplaceRecoveryCodesOfAnotherUser passes codes that name another
// user: nothing is written.
func testReplaceRecoveryCodesOfAnotherUser(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	mustCreateUser(t, s, newUser("u2"))
	mustReplaceRecoveryCodes(t, s, "u1", newRecoveryCodes("u1", "old", 2))
	mixed := append(newRecoveryCodes("u1", "new", 2), newRecoveryCodes("u2", "new", 1)...)
	if err := s.MFA().ReplaceRecoveryCodes(t.Context(), "u1", mixed); err == nil {
		t.Fatal("ReplaceRecoveryCodes with a code of another user succeeded")
	}
	wantRecoveryCodes(t, s, "u1", 2)
	wantRecoveryCodes(t, s, "u2", 0)
}

func testUseRecoveryCode(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	mustCreateUser(t, s, newUser("u2"))
	codes := mustReplaceRecoveryCodes(t, s, "u1", newRecoveryCodes("u1", "rc", 3))
	other := mustReplaceRecoveryCodes(t, s, "u2", newRecoveryCodes("u2", "rc", 1))
	at := base.Add(time.Minute + 3*time.Nanosecond)
	for _, step := range []struct {
		name   string
		userID string
		hash   []byte
		want   error
		unused int // u1's unused codes after it
	}{
		{"a code", "u1", codes[0].Hash, nil, 2},
		{"the same code again", "u1", codes[0].Hash, store.ErrNotFound, 2},
		{"another user's code", "u1", other[0].Hash, store.ErrNotFound, 2},
		{"a code, by another user", "u2", codes[1].Hash, store.ErrNotFound, 2},
		{"a prefix of a code", "u1", codes[1].Hash[:16], store.ErrNotFound, 2},
		{"another code", "u1", codes[1].Hash, nil, 1},
		{"the last code", "u1", codes[2].Hash, nil, 0},
		{"once all are used", "u1", codes[2].Hash, store.ErrNotFound, 0},
	} {
		t.Run(step.name, func(t *testing.T) {
			err := s.MFA().UseRecoveryCode(t.Context(), step.userID, step.hash, at)
			if step.want != nil {
				wantErr(t, "UseRecoveryCode", err, step.want)
			} else if err != nil {
				t.Fatalf("UseRecoveryCode: %v", err)
			}
			wantRecoveryCodes(t, s, "u1", step.unused)
			wantRecoveryCodes(t, s, "u2", 1)
		})
	}
}

// testRecoveryCodesInTx replaces and uses codes inside transactions: the
// transaction sees its own writes, and a rollback brings the old set back.
func testRecoveryCodesInTx(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	old := mustReplaceRecoveryCodes(t, s, "u1", newRecoveryCodes("u1", "old", 3))
	fresh := newRecoveryCodes("u1", "fresh", 5)
	err := s.InTx(t.Context(), func(tx store.Tx) error {
		mustReplaceRecoveryCodes(t, tx, "u1", fresh)
		wantRecoveryCodes(t, tx, "u1", 5)
		wantErr(t, "UseRecoveryCode(old) inside the transaction", tx.MFA().UseRecoveryCode(t.Context(), "u1", old[0].Hash, base), store.ErrNotFound)
		if err := tx.MFA().UseRecoveryCode(t.Context(), "u1", fresh[0].Hash, base); err != nil {
			t.Errorf("UseRecoveryCode inside the transaction: %v", err)
		}
		wantErr(t, "second UseRecoveryCode inside the transaction", tx.MFA().UseRecoveryCode(t.Context(), "u1", fresh[0].Hash, base), store.ErrNotFound)
		wantRecoveryCodes(t, tx, "u1", 4)
		return errAbort
	})
	wantErr(t, "InTx", err, errAbort)
	wantRecoveryCodes(t, s, "u1", 3)
	wantErr(t, "UseRecoveryCode(fresh) after rollback", s.MFA().UseRecoveryCode(t.Context(), "u1", fresh[1].Hash, base), store.ErrNotFound)

	err = s.InTx(t.Context(), func(tx store.Tx) error {
		if err := tx.MFA().UseRecoveryCode(t.Context(), "u1", old[0].Hash, base); err != nil {
			return err
		}
		return tx.MFA().DeleteTOTP(t.Context(), "u1") // no factor: the whole transaction fails
	})
	wantErr(t, "InTx", err, store.ErrNotFound)
	wantRecoveryCodes(t, s, "u1", 3)

	err = s.InTx(t.Context(), func(tx store.Tx) error {
		return tx.MFA().UseRecoveryCode(t.Context(), "u1", old[0].Hash, base)
	})
	if err != nil {
		t.Fatalf("InTx: %v", err)
	}
	wantRecoveryCodes(t, s, "u1", 2)
}
