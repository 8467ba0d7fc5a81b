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

var verificationsTests = []storeTest{
	{"CreateAndGet", testCreateAndGetVerification},
	{"CreateConflict", testCreateVerificationConflict},
	{"NotFound", testVerificationsNotFound},
	{"NewerReplacesOlder", testNewerVerificationReplacesOlder},
	{"InTx", testVerificationsInTx},
	{"ConsumeVerification", testConsumeVerification},
	{"AttemptVerification", testAttemptVerification},
	{"RetireVerifications", testRetireVerifications},
	{"DeleteVerificationsBefore", testDeleteVerificationsBefore},
}

// purposes is every verification purpose.
var purposes = []string{store.PurposeVerifyEmail, store.PurposeRecovery, store.PurposeMagicLink, store.PurposeEmailOTP,
	store.PurposeSMSOTP, store.PurposeVerifyPhone, store.PurposeChangeEmail, store.PurposeRevertEmail}

// newVerification is an unused verification of the user for purpose,
// by link and code, that expires an hour after base.
func newVerification(id, userID, purpose string) *store.Verification {
	return &store.Verification{
		ID:        id,
		UserID:    userID,
		Purpose:   purpose,
		LinkHash:  tokenHash("link-" + id),
		CodeHash:  tokenHash("code-" + id),
		Target:    "User." + userID + "@Example.com",
		CreatedAt: base,
		ExpiresAt: base.Add(time.Hour),
	}
}

// wantVerification is v as a store returns it.
func wantVerification(v *store.Verification) *store.Verification {
	w := *v
	w.CreatedAt, w.ExpiresAt = norm(v.CreatedAt), norm(v.ExpiresAt)
	if v.UsedAt != nil {
		u := norm(*v.UsedAt)
		w.UsedAt = &u
	}
	return &w
}

// wantUsed is v as a store returns it once used at at.
func wantUsed(v *store.Verification, at time.Time) *store.Verification {
	w := wantVerification(v)
	u := norm(at)
	w.UsedAt = &u
	return w
}

// diffVerification compares verifications like diff, except that a nil
// byte slice (no link, no code, unbound) differs from an empty one.
func diffVerification(want, got *store.Verification) string {
	return cmp.Diff(want, got)
}

func mustCreateVerification(t *testing.T, s store.Tx, v *store.Verification) *store.Verification {
	t.Helper()
	if err := s.Verifications().CreateVerification(t.Context(), v); err != nil {
		t.Fatalf("CreateVerification(%s): %v", v.ID, err)
	}
	return v
}

// mustVerification reads a verification back by its link hash.
func mustVerification(t *testing.T, s store.Tx, linkHash []byte) *store.Verification {
	t.Helper()
	v, err := s.Verifications().VerificationByLinkHash(t.Context(), linkHash)
	if err != nil {
		t.Fatalf("VerificationByLinkHash: %v", err)
	}
	return v
}

func mustCurrentVerification(t *testing.T, s store.Tx, userID, purpose string) *store.Verification {
	t.Helper()
	v, err := s.Verifications().CurrentVerification(t.Context(), userID, purpose)
	if err != nil {
		t.Fatalf("CurrentVerification(%s, %s): %v", userID, purpose, err)
	}
	return v
}

// testCreateAndGetVerification stores every shape of verification, each
// for a user of its own, and reads it back by link hash (if it has one)
// and as the current one (if unused).
func testCreateAndGetVerification(t *testing.T, s store.Store) {
	binary := make([]byte, 32) // NUL and high bytes must survive
	for i := range binary {
		binary[i] = byte(255 - i*41)
	}
	used := base.Add(time.Minute + 999*time.Nanosecond)
	for _, tc := range []struct {
		name string
		mod  func(v *store.Verification)
	}{
		{"link and code", func(*store.Verification) {}},
		{"link only", func(v *store.Verification) { v.CodeHash = nil }},
		{"code only", func(v *store.Verification) { v.LinkHash = nil }},
		{"empty code hash", func(v *store.Verification) { v.CodeHash = []byte{} }},
		{"empty link hash", func(v *store.Verification) { v.LinkHash = []byte{} }},
		{"bound to a browser", func(v *store.Verification) { v.Binding = tokenHash("nonce") }},
		{"empty binding", func(v *store.Verification) { v.Binding = []byte{} }},
		{"binary hashes", func(v *store.Verification) { v.LinkHash, v.CodeHash, v.Binding = binary, binary[1:], binary[2:] }},
		{"change of e-mail from a session", func(v *store.Verification) {
			v.Purpose, v.Target, v.SessionID = store.PurposeChangeEmail, "Zoë@xn--bcher-kva.example", "s-asking"
		}},
		{"phone", func(v *store.Verification) {
			v.Purpose, v.Target, v.LinkHash = store.PurposeVerifyPhone, "+351912345678", nil
		}},
		{"failed attempts", func(v *store.Verification) { v.Purpose, v.LinkHash, v.Attempts = store.PurposeSMSOTP, nil, 3 }},
		{"expired", func(v *store.Verification) { v.CreatedAt, v.ExpiresAt = base.Add(-2*time.Hour), base.Add(-time.Hour) }},
		{"used", func(v *store.Verification) { v.UsedAt = &used }},
		{"times below a microsecond", func(v *store.Verification) {
			v.CreatedAt, v.ExpiresAt = base.Add(time.Nanosecond), base.Add(time.Hour+999*time.Nanosecond)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uid := "u-" + strings.ReplaceAll(tc.name, " ", "-")
			mustCreateUser(t, s, newUser(uid))
			v := newVerification("v-"+uid, uid, store.PurposeVerifyEmail)
			tc.mod(v)
			mustCreateVerification(t, s, v)
			var got []*store.Verification
			if v.LinkHash != nil {
				got = append(got, mustVerification(t, s, v.LinkHash))
			}
			if v.UsedAt == nil {
				got = append(got, mustCurrentVerification(t, s, uid, v.Purpose))
			}
			for _, g := range got {
				if d := diffVerification(wantVerification(v), g); d != "" {
					t.Errorf("stored verification (-want +got):\n%s", d)
				}
				times := map[string]time.Time{"CreatedAt": g.CreatedAt, "ExpiresAt": g.ExpiresAt}
				if g.UsedAt != nil {
					times["UsedAt"] = *g.UsedAt
				}
				for name, tm := range times {
					if tm.Location() != time.UTC {
						t.Errorf("%s in %s, want UTC", name, tm.Location())
					}
				}
			}
		})
	}
}

func testCreateVerificationConflict(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	mustCreateUser(t, s, newUser("u2"))
	orig := mustCreateVerification(t, s, newVerification("v1", "u1", store.PurposeMagicLink))
	sameID := newVerification("v1", "u2", store.PurposeRecovery)
	sameLink := newVerification("v2", "u1", store.PurposeMagicLink)
	sameLink.LinkHash = orig.LinkHash
	sameLinkOtherUser := newVerification("v3", "u2", store.PurposeVerifyEmail)
	sameLinkOtherUser.LinkHash = orig.LinkHash
	for _, tc := range []struct {
		name string
		v    *store.Verification
	}{
		{"same id", sameID},
		// The rejected one must not retire orig either.
		{"same link hash", sameLink},
		{"same link hash, another user", sameLinkOtherUser},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Verifications().CreateVerification(t.Context(), tc.v)
			wantErr(t, "CreateVerification", err, store.ErrConflict)
			for _, h := range [][]byte{tc.v.LinkHash, tc.v.CodeHash} {
				if strings.Contains(err.Error(), hex.EncodeToString(h)) || strings.Contains(err.Error(), string(h)) {
					t.Errorf("error %q quotes a hash", err)
				}
			}
			if d := diffVerification(wantVerification(orig), mustVerification(t, s, orig.LinkHash)); d != "" {
				t.Errorf("original verification changed (-want +got):\n%s", d)
			}
			if got := mustCurrentVerification(t, s, orig.UserID, orig.Purpose); got.ID != orig.ID {
				t.Errorf("current verification = %s, want the original", got.ID)
			}
			if tc.v.UserID != orig.UserID || tc.v.Purpose != orig.Purpose {
				_, err := s.Verifications().CurrentVerification(t.Context(), tc.v.UserID, tc.v.Purpose)
				wantErr(t, "CurrentVerification of the rejected one", err, store.ErrNotFound)
			}
		})
	}
	// Neither code hashes nor missing links are unique.
	t.Run("same code hash, no link", func(t *testing.T) {
		for _, id := range []string{"v-code-1", "v-code-2"} {
			v := newVerification(id, "u2", store.PurposeEmailOTP)
			v.LinkHash, v.CodeHash = nil, orig.CodeHash
			mustCreateVerification(t, s, v)
		}
		if got := mustCurrentVerification(t, s, "u2", store.PurposeEmailOTP); got.ID != "v-code-2" {
			t.Errorf("current verification = %s, want v-code-2", got.ID)
		}
	})
}

func testVerificationsNotFound(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	v := mustCreateVerification(t, s, newVerification("v1", "u1", store.PurposeVerifyEmail))
	codeOnly := newVerification("v-code", "u1", store.PurposeSMSOTP)
	codeOnly.LinkHash = nil
	mustCreateVerification(t, s, codeOnly)
	usedAt := base
	used := newVerification("v-used", "u1", store.PurposeRecovery)
	used.UsedAt = &usedAt
	mustCreateVerification(t, s, used)
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"VerificationByLinkHash", func() error {
			_, err := s.Verifications().VerificationByLinkHash(t.Context(), tokenHash("link-missing"))
			return err
		}},
		{"VerificationByLinkHash with a prefix of a stored hash", func() error {
			_, err := s.Verifications().VerificationByLinkHash(t.Context(), v.LinkHash[:16])
			return err
		}},
		{"VerificationByLinkHash with a code hash", func() error {
			_, err := s.Verifications().VerificationByLinkHash(t.Context(), v.CodeHash)
			return err
		}},
		// A code-only verification has no link: nil must not find it.
		{"VerificationByLinkHash with nil", func() error {
			_, err := s.Verifications().VerificationByLinkHash(t.Context(), nil)
			return err
		}},
		{"CurrentVerification of another purpose", func() error {
			_, err := s.Verifications().CurrentVerification(t.Context(), "u1", store.PurposeMagicLink)
			return err
		}},
		{"CurrentVerification of a missing user", func() error {
			_, err := s.Verifications().CurrentVerification(t.Context(), "missing", store.PurposeVerifyEmail)
			return err
		}},
		{"CurrentVerification when the only one is used", func() error {
			_, err := s.Verifications().CurrentVerification(t.Context(), "u1", store.PurposeRecovery)
			return err
		}},
		{"ConsumeVerification", func() error {
			return s.Verifications().ConsumeVerification(t.Context(), "missing", base)
		}},
		{"AttemptVerification", func() error {
			_, err := s.Verifications().AttemptVerification(t.Context(), "missing", 5, base)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, tc.name, tc.call(), store.ErrNotFound)
		})
	}
	if d := diffVerification(wantVerification(v), mustVerification(t, s, v.LinkHash)); d != "" {
		t.Errorf("stored verification changed (-want +got):\n%s", d)
	}
}

// testNewerVerificationReplacesOlder creates verifications one after the
// other: each retires (at its own CreatedAt) the unused ones of its user
// and purpose, and only those.
func testNewerVerificationReplacesOlder(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	mustCreateUser(t, s, newUser("u2"))
	at := func(min int) time.Time { return base.Add(time.Duration(min)*time.Minute + 7*time.Nanosecond) }
	mk := func(id, userID, purpose string, min int) *store.Verification {
		v := newVerification(id, userID, purpose)
		v.CreatedAt, v.ExpiresAt = at(min), at(min+60)
		return v
	}
	consumed := mk("consumed", "u1", store.PurposeVerifyEmail, 0)
	first := mk("first", "u1", store.PurposeVerifyEmail, 1)
	otherPurpose := mk("other-purpose", "u1", store.PurposeRecovery, 2)
	otherUser := mk("other-user", "u2", store.PurposeVerifyEmail, 3)
	second := mk("second", "u1", store.PurposeVerifyEmail, 4)
	// Created with an earlier CreatedAt than second's, it still replaces
	// second: the newest creation wins, whatever its clock said.
	third := mk("third", "u1", store.PurposeVerifyEmail, -10)
	third.LinkHash = nil

	mustCreateVerification(t, s, consumed)
	if err := s.Verifications().ConsumeVerification(t.Context(), consumed.ID, at(0)); err != nil {
		t.Fatal(err)
	}
	for _, v := range []*store.Verification{first, otherPurpose, otherUser, second} {
		mustCreateVerification(t, s, v)
	}
	for _, tc := range []struct {
		name string
		v    *store.Verification
		want *store.Verification
	}{
		{"the older one", first, wantUsed(first, second.CreatedAt)},
		{"the newer one", second, wantVerification(second)},
		{"one used before", consumed, wantUsed(consumed, at(0))},
		{"another purpose", otherPurpose, wantVerification(otherPurpose)},
		{"another user", otherUser, wantVerification(otherUser)},
	} {
		if d := diffVerification(tc.want, mustVerification(t, s, tc.v.LinkHash)); d != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, d)
		}
	}
	for _, want := range []*store.Verification{second, otherPurpose, otherUser} {
		if d := diffVerification(wantVerification(want), mustCurrentVerification(t, s, want.UserID, want.Purpose)); d != "" {
			t.Errorf("current verification (-want +got):\n%s", d)
		}
	}

	mustCreateVerification(t, s, third)
	if d := diffVerification(wantUsed(second, third.CreatedAt), mustVerification(t, s, second.LinkHash)); d != "" {
		t.Errorf("second after third (-want +got):\n%s", d)
	}
	if d := diffVerification(wantVerification(third), mustCurrentVerification(t, s, "u1", store.PurposeVerifyEmail)); d != "" {
		t.Errorf("current verification after third (-want +got):\n%s", d)
	}
	if d := diffVerification(wantUsed(first, second.CreatedAt), mustVerification(t, s, first.LinkHash)); d != "" {
		t.Errorf("first, retired before, after third (-want +got):\n%s", d)
	}
}

// testVerificationsInTx creates and consumes inside transactions: the
// transaction sees its own writes, and a rollback takes the new
// verification and the retirement of the older one back.
func testVerificationsInTx(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	old := mustCreateVerification(t, s, newVerification("v-old", "u1", store.PurposeMagicLink))
	rolledBack := newVerification("v-rolled-back", "u1", store.PurposeMagicLink)
	rolledBack.CreatedAt = base.Add(time.Minute)
	err := s.InTx(t.Context(), func(tx store.Tx) error {
		mustCreateVerification(t, tx, rolledBack)
		if got := mustCurrentVerification(t, tx, "u1", store.PurposeMagicLink); got.ID != rolledBack.ID {
			t.Errorf("current verification inside the transaction = %s, want %s", got.ID, rolledBack.ID)
		}
		if got := mustVerification(t, tx, old.LinkHash); got.UsedAt == nil {
			t.Error("older verification not retired inside the transaction")
		}
		if err := tx.Verifications().ConsumeVerification(t.Context(), rolledBack.ID, base.Add(2*time.Minute)); err != nil {
			t.Errorf("ConsumeVerification inside the transaction: %v", err)
		}
		err := tx.Verifications().ConsumeVerification(t.Context(), rolledBack.ID, base.Add(2*time.Minute))
		wantErr(t, "second ConsumeVerification inside the transaction", err, store.ErrConflict)
		return errAbort
	})
	wantErr(t, "InTx", err, errAbort)
	_, err = s.Verifications().VerificationByLinkHash(t.Context(), rolledBack.LinkHash)
	wantErr(t, "VerificationByLinkHash after rollback", err, store.ErrNotFound)
	if d := diffVerification(wantVerification(old), mustCurrentVerification(t, s, "u1", store.PurposeMagicLink)); d != "" {
		t.Errorf("current verification after rollback (-want +got):\n%s", d)
	}

	committed := newVerification("v-committed", "u1", store.PurposeMagicLink)
	committed.CreatedAt = base.Add(3 * time.Minute)
	consumedAt := base.Add(4 * time.Minute)
	err = s.InTx(t.Context(), func(tx store.Tx) error {
		mustCreateVerification(t, tx, committed)
		return tx.Verifications().ConsumeVerification(t.Context(), committed.ID, consumedAt)
	})
	if err != nil {
		t.Fatalf("InTx: %v", err)
	}
	if d := diffVerification(wantUsed(committed, consumedAt), mustVerification(t, s, committed.LinkHash)); d != "" {
		t.Errorf("committed verification (-want +got):\n%s", d)
	}
	if d := diffVerification(wantUsed(old, committed.CreatedAt), mustVerification(t, s, old.LinkHash)); d != "" {
		t.Errorf("older verification after commit (-want +got):\n%s", d)
	}
}

func testConsumeVerification(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	expires := base.Add(time.Hour)
	for i, tc := range []struct {
		name   string
		before []time.Time // earlier successful consumptions
		at     time.Time
		want   error
	}{
		{name: "unused", at: base.Add(time.Minute + 123*time.Nanosecond)},
		{name: "just before expiry", at: expires.Add(-time.Microsecond)},
		{name: "at expiry", at: expires, want: store.ErrConflict},
		{name: "after expiry", at: expires.Add(time.Second), want: store.ErrConflict},
		{name: "already used", before: []time.Time{base}, at: base.Add(time.Minute), want: store.ErrConflict},
		{name: "already used, same time", before: []time.Time{base}, at: base, want: store.ErrConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// One purpose each, so that no creation retires another.
			v := newVerification(fmt.Sprintf("v%d", i), "u1", purposes[i])
			v.ExpiresAt = expires
			mustCreateVerification(t, s, v)
			want := wantVerification(v)
			for _, at := range tc.before {
				if err := s.Verifications().ConsumeVerification(t.Context(), v.ID, at); err != nil {
					t.Fatalf("ConsumeVerification (setup): %v", err)
				}
				want = wantUsed(v, at)
			}
			err := s.Verifications().ConsumeVerification(t.Context(), v.ID, tc.at)
			if tc.want != nil {
				wantErr(t, "ConsumeVerification", err, tc.want)
			} else {
				if err != nil {
					t.Fatalf("ConsumeVerification: %v", err)
				}
				want = wantUsed(v, tc.at)
			}
			if d := diffVerification(want, mustVerification(t, s, v.LinkHash)); d != "" {
				t.Errorf("stored verification (-want +got):\n%s", d)
			}
		})
	}
	t.Run("retired", func(t *testing.T) {
		older := mustCreateVerification(t, s, newVerification("v-older", "u1", store.PurposeChangeEmail))
		newer := newVerification("v-newer", "u1", store.PurposeChangeEmail)
		newer.CreatedAt = base.Add(time.Second)
		mustCreateVerification(t, s, newer)
		err := s.Verifications().ConsumeVerification(t.Context(), older.ID, base.Add(time.Minute))
		wantErr(t, "ConsumeVerification", err, store.ErrConflict)
		if d := diffVerification(wantUsed(older, newer.CreatedAt), mustVerification(t, s, older.LinkHash)); d != "" {
			t.Errorf("retired verification (-want +got):\n%s", d)
		}
	})
}

func testAttemptVerification(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	mustCreateUser(t, s, newUser("u2"))
	v := newVerification("v1", "u1", store.PurposeEmailOTP)
	mustCreateVerification(t, s, v)
	bystander := mustCreateVerification(t, s, newVerification("v2", "u2", store.PurposeEmailOTP))
	const maxFailures = 3
	at := func(i int) time.Time { return base.Add(time.Duration(i)*time.Minute + 5*time.Nanosecond) }
	want := wantVerification(v)
	for i, step := range []struct {
		name  string
		count int
		err   error
	}{
		{"first wrong code", 1, nil},
		{"second wrong code", 2, nil},
		{"the wrong code that reaches max", 3, nil}, // marks it used
		{"after max", 0, store.ErrConflict},
	} {
		t.Run(step.name, func(t *testing.T) {
			n, err := s.Verifications().AttemptVerification(t.Context(), v.ID, maxFailures, at(i))
			if step.err != nil {
				wantErr(t, "AttemptVerification", err, step.err)
			} else if err != nil || n != step.count {
				t.Fatalf("AttemptVerification = %d, %v; want %d", n, err, step.count)
			}
			if step.count > 0 {
				want.Attempts = step.count
			}
			if step.count == maxFailures {
				u := norm(at(i))
				want.UsedAt = &u
			}
			if d := diffVerification(want, mustVerification(t, s, v.LinkHash)); d != "" {
				t.Errorf("stored verification (-want +got):\n%s", d)
			}
		})
	}
	t.Run("consumed", func(t *testing.T) {
		c := mustCreateVerification(t, s, newVerification("v-consumed", "u1", store.PurposeSMSOTP))
		if err := s.Verifications().ConsumeVerification(t.Context(), c.ID, base); err != nil {
			t.Fatal(err)
		}
		_, err := s.Verifications().AttemptVerification(t.Context(), c.ID, maxFailures, at(1))
		wantErr(t, "AttemptVerification", err, store.ErrConflict)
		if d := diffVerification(wantUsed(c, base), mustVerification(t, s, c.LinkHash)); d != "" {
			t.Errorf("stored verification (-want +got):\n%s", d)
		}
	})
	t.Run("max 1", func(t *testing.T) {
		one := mustCreateVerification(t, s, newVerification("v-one", "u1", store.PurposeVerifyPhone))
		if n, err := s.Verifications().AttemptVerification(t.Context(), one.ID, 1, at(1)); n != 1 || err != nil {
			t.Fatalf("AttemptVerification = %d, %v; want 1", n, err)
		}
		w := wantUsed(one, at(1))
		w.Attempts = 1
		if d := diffVerification(w, mustVerification(t, s, one.LinkHash)); d != "" {
			t.Errorf("stored verification (-want +got):\n%s", d)
		}
	})
	if d := diffVerification(wantVerification(bystander), mustVerification(t, s, bystander.LinkHash)); d != "" {
		t.Errorf("another user's verification changed (-want +got):\n%s", d)
	}
}

func testRetireVerifications(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	mustCreateUser(t, s, newUser("u2"))
	usedBefore := base.Add(-time.Minute)
	usedRecovery := newVerification("used-recovery", "u1", store.PurposeRecovery)
	usedRecovery.UsedAt = &usedBefore
	mustCreateVerification(t, s, usedRecovery)
	mk := func(id, userID, purpose string) *store.Verification {
		return mustCreateVerification(t, s, newVerification(id, userID, purpose))
	}
	recovery := mk("recovery", "u1", store.PurposeRecovery)
	magic := mk("magic", "u1", store.PurposeMagicLink)
	otp := mk("otp", "u1", store.PurposeEmailOTP)
	verify := mk("verify", "u1", store.PurposeVerifyEmail)
	otherUser := mk("other-user", "u2", store.PurposeRecovery)
	all := []*store.Verification{recovery, magic, otp, verify, otherUser, usedRecovery}
	want := map[string]*store.Verification{}
	for _, v := range all {
		want[v.ID] = wantVerification(v)
	}
	for i, step := range []struct {
		name     string
		purposes []string
		retired  []*store.Verification
	}{
		{"no purposes", nil, nil},
		{"one purpose", []string{store.PurposeRecovery}, []*store.Verification{recovery}},
		{"several purposes, one repeated", []string{store.PurposeMagicLink, store.PurposeEmailOTP, store.PurposeMagicLink},
			[]*store.Verification{magic, otp}},
		{"already retired", []string{store.PurposeRecovery, store.PurposeMagicLink}, nil},
		{"purpose the user has none of", []string{store.PurposeSMSOTP}, nil},
	} {
		t.Run(step.name, func(t *testing.T) {
			at := base.Add(time.Duration(i+1)*time.Minute + 3*time.Nanosecond)
			n, err := s.Verifications().RetireVerifications(t.Context(), "u1", at, step.purposes...)
			if err != nil || n != len(step.retired) {
				t.Fatalf("RetireVerifications = %d, %v; want %d", n, err, len(step.retired))
			}
			for _, v := range step.retired {
				want[v.ID] = wantUsed(v, at)
			}
			for _, v := range all {
				if d := diffVerification(want[v.ID], mustVerification(t, s, v.LinkHash)); d != "" {
					t.Errorf("%s (-want +got):\n%s", v.ID, d)
				}
			}
		})
	}
}

func testDeleteVerificationsBefore(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	cut := base.Add(time.Hour)
	var kept, deleted []*store.Verification
	for i, tc := range []struct {
		expires time.Duration // relative to cut
		used    bool
		delete  bool
	}{
		{-time.Hour, false, true},
		{-time.Microsecond, true, true},
		{0, false, false}, // expires at the cut: not before it
		{time.Microsecond, true, false},
		{time.Hour, false, false},
	} {
		// One purpose each, so that no creation retires another.
		v := newVerification(fmt.Sprintf("v%d", i), "u1", purposes[i])
		v.ExpiresAt = cut.Add(tc.expires)
		if tc.used {
			usedAt := base
			v.UsedAt = &usedAt
		}
		mustCreateVerification(t, s, v)
		if tc.delete {
			deleted = append(deleted, v)
		} else {
			kept = append(kept, v)
		}
	}
	n, err := s.Verifications().DeleteVerificationsBefore(t.Context(), cut)
	if err != nil || n != len(deleted) {
		t.Fatalf("DeleteVerificationsBefore = %d, %v; want %d", n, err, len(deleted))
	}
	for _, v := range deleted {
		_, err := s.Verifications().VerificationByLinkHash(t.Context(), v.LinkHash)
		wantErr(t, "VerificationByLinkHash("+v.ID+")", err, store.ErrNotFound)
	}
	for _, v := range kept {
		if d := diffVerification(wantVerification(v), mustVerification(t, s, v.LinkHash)); d != "" {
			t.Errorf("%s (-want +got):\n%s", v.ID, d)
		}
	}
	if n, err := s.Verifications().DeleteVerificationsBefore(t.Context(), cut); err != nil || n != 0 {
		t.Errorf("DeleteVerificationsBefore again = %d, %v; want 0", n, err)
	}
}
