package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

var txTests = []storeTest{
	{"Commit", testTxCommit},
	{"ReadYourWrites", testTxReadYourWrites},
	{"Rollback", testTxRollback},
}

var errAbort = errors.New("storetest: abort transaction")

func testTxCommit(t *testing.T, s store.Store) {
	u, ss := newUser("u1"), newSession("s1", "u1")
	ss.Kind = store.SessionToken
	e := newEvent("signup", "u1", 1)
	rt, k := newRefreshToken("rt1", "s1"), newSigningKey("k1", base)
	wac := newWebAuthnCredential("wac_1", "u1")
	err := s.InTx(t.Context(), func(tx store.Tx) error {
		mustCreateUser(t, tx, u)
		mustCreateSession(t, tx, ss)
		mustAppend(t, tx, e)
		mustCreateRefreshToken(t, tx, rt)
		mustCreateSigningKey(t, tx, k)
		mustCreateWebAuthnCredential(t, tx, wac)
		return nil
	})
	if err != nil {
		t.Fatalf("InTx: %v", err)
	}
	wantStoredWebAuthn(t, s, "u1", wac)
	if d := diff(wantRefreshToken(rt), mustRefreshToken(t, s, rt.Hash)); d != "" {
		t.Errorf("refresh token after commit (-want +got):\n%s", d)
	}
	if d := diffKeys(wantSigningKeys(k), mustListSigningKeys(t, s)); d != "" {
		t.Errorf("signing keys after commit (-want +got):\n%s", d)
	}
	if d := diff(wantUser(u), mustUser(t, s, "u1")); d != "" {
		t.Errorf("user after commit (-want +got):\n%s", d)
	}
	if d := diff(wantSession(ss), mustSession(t, s, "s1")); d != "" {
		t.Errorf("session after commit (-want +got):\n%s", d)
	}
	got, err := s.Audit().ListUserEvents(t.Context(), "u1", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if d := diff(wantEvents(e), got); d != "" {
		t.Errorf("events after commit (-want +got):\n%s", d)
	}
}

func testTxReadYourWrites(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("u1"))
	mustCreateSession(t, s, newSession("s-outside", "u1"))
	outsideRT := mustCreateRefreshToken(t, s, newRefreshToken("rt-outside", "s-outside"))
	err := s.InTx(t.Context(), func(tx store.Tx) error {
		mustCreateUser(t, tx, newUser("u2"))
		if _, err := tx.Users().UserByEmailKey(t.Context(), newUser("u2").EmailKey); err != nil {
			t.Errorf("UserByEmailKey inside the transaction: %v", err)
		}
		if err := tx.Users().SetPasswordHash(t.Context(), "u2", newUser("u2").PasswordHash, "new", base); err != nil {
			t.Errorf("SetPasswordHash inside the transaction: %v", err)
		}
		if u := mustUser(t, tx, "u2"); u.PasswordHash != "new" {
			t.Errorf("PasswordHash inside the transaction = %q, want %q", u.PasswordHash, "new")
		}
		if revoked, err := tx.Sessions().RevokeSession(t.Context(), "s-outside", base, "logout"); !revoked || err != nil {
			t.Errorf("RevokeSession inside the transaction = %v, %v", revoked, err)
		}
		if active, err := tx.Sessions().ListActiveSessions(t.Context(), "u1", base); err != nil || len(active) != 0 {
			t.Errorf("ListActiveSessions inside the transaction = %d sessions, %v; want 0", len(active), err)
		}
		if revs, err := tx.Sessions().RevokedSessionsSince(t.Context(), base); err != nil || len(revs) != 1 || revs[0].SessionID != "s-outside" {
			t.Errorf("RevokedSessionsSince inside the transaction = %v, %v; want s-outside", revs, err)
		}
		if err := tx.RefreshTokens().MarkRefreshTokenUsed(t.Context(), outsideRT.ID, base, "fp", []byte("sealed")); err != nil {
			t.Errorf("MarkRefreshTokenUsed inside the transaction: %v", err)
		}
		if rt := mustRefreshToken(t, tx, outsideRT.Hash); rt.UsedAt == nil || rt.Client != "fp" {
			t.Errorf("refresh token inside the transaction: UsedAt %v, Client %q; want used by %q", rt.UsedAt, rt.Client, "fp")
		}
		err := tx.RefreshTokens().MarkRefreshTokenUsed(t.Context(), outsideRT.ID, base, "fp", []byte("sealed"))
		wantErr(t, "second MarkRefreshTokenUsed inside the transaction", err, store.ErrConflict)
		mustCreateSession(t, tx, newSession("s-inside", "u2"))
		rt := mustCreateRefreshToken(t, tx, newRefreshToken("rt-inside", "s-inside"))
		if err := tx.RefreshTokens().MarkRefreshTokenUsed(t.Context(), rt.ID, base, "fp", []byte("sealed")); err != nil {
			t.Errorf("MarkRefreshTokenUsed of a token created in the transaction: %v", err)
		}
		mustCreateSigningKey(t, tx, newSigningKey("k-inside", base))
		mustSigningKey(t, tx, "k-inside")
		e := mustAppend(t, tx, newEvent("e", "u2", 1))
		if got, err := tx.Audit().ListUserEvents(t.Context(), "u2", 0, 10); err != nil || len(got) != 1 || got[0].ID != e.ID {
			t.Errorf("ListUserEvents inside the transaction = %v, %v", got, err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("InTx: %v", err)
	}
}

func testTxRollback(t *testing.T, s store.Store) {
	mustCreateUser(t, s, newUser("existing"))
	mustCreateSession(t, s, newSession("s-existing", "existing"))
	mustCreateRefreshToken(t, s, newRefreshToken("rt-existing", "s-existing"))
	mustCreateWebAuthnCredential(t, s, newWebAuthnCredential("wac-existing", "existing"))
	for _, tc := range []struct {
		name string
		// fn writes through tx and then fails; check inspects InTx's
		// error (nil when fn panicked, see below).
		fn    func(t *testing.T, tx store.Tx) error
		check func(t *testing.T, err error)
	}{
		{
			name: "fn returns an error",
			fn: func(t *testing.T, tx store.Tx) error {
				return errAbort
			},
			check: func(t *testing.T, err error) { wantErr(t, "InTx", err, errAbort) },
		},
		{
			name: "a store call fails",
			fn: func(t *testing.T, tx store.Tx) error {
				dup := newUser("dup")
				dup.EmailKey = newUser("existing").EmailKey
				return tx.Users().CreateUser(t.Context(), dup)
			},
			check: func(t *testing.T, err error) { wantErr(t, "InTx", err, store.ErrConflict) },
		},
		{
			name: "fn panics",
			fn: func(t *testing.T, tx store.Tx) error {
				panic(errAbort)
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			panicked := func() (p any) {
				defer func() { p = recover() }()
				err = s.InTx(t.Context(), func(tx store.Tx) error {
					mustCreateUser(t, tx, newUser("u1"))
					mustCreateSession(t, tx, newSession("s1", "u1"))
					mustAppend(t, tx, newEvent("signup", "u1", 1))
					mustCreateRefreshToken(t, tx, newRefreshToken("rt1", "s1"))
					mustCreateSigningKey(t, tx, newSigningKey("k1", base))
					if _, err := tx.Sessions().RevokeSession(t.Context(), "s-existing", base, "logout"); err != nil {
						t.Errorf("RevokeSession: %v", err)
					}
					if err := tx.RefreshTokens().MarkRefreshTokenUsed(t.Context(), "rt-existing", base, "fp", []byte("sealed")); err != nil {
						t.Errorf("MarkRefreshTokenUsed: %v", err)
					}
					mustCreateWebAuthnCredential(t, tx, newWebAuthnCredential("wac_1", "u1"))
					if err := tx.WebAuthn().UseWebAuthnCredential(t.Context(), "wac-existing", 0, 1, false, base); err != nil {
						t.Errorf("UseWebAuthnCredential: %v", err)
					}
					return tc.fn(t, tx)
				})
				return nil
			}()
			if tc.check != nil {
				if panicked != nil {
					t.Fatalf("InTx panicked: %v", panicked)
				}
				tc.check(t, err)
			} else if panicked != errAbort {
				t.Fatalf("InTx recovered %v, want the panic re-raised", panicked)
			}
			assertRolledBack(t, s)
		})
	}
}

// assertRolledBack checks that nothing testTxRollback's transaction wrote
// survived, and that the store still accepts a transaction afterwards (a
// leaked connection or lock would hang or fail it).
func assertRolledBack(t *testing.T, s store.Store) {
	t.Helper()
	_, err := s.Users().UserByID(t.Context(), "u1")
	wantErr(t, "UserByID after rollback", err, store.ErrNotFound)
	_, err = s.Sessions().SessionByID(t.Context(), "s1")
	wantErr(t, "SessionByID after rollback", err, store.ErrNotFound)
	_, err = s.Sessions().SessionByTokenHash(t.Context(), newSession("s1", "u1").TokenHash)
	wantErr(t, "SessionByTokenHash after rollback", err, store.ErrNotFound)
	if evs, err := s.Audit().ListUserEvents(t.Context(), "u1", 0, 10); err != nil || len(evs) != 0 {
		t.Errorf("ListUserEvents after rollback = %d events, %v; want none", len(evs), err)
	}
	if ss := mustSession(t, s, "s-existing"); ss.RevokedAt != nil {
		t.Errorf("revocation inside the rolled-back transaction persisted")
	}
	if revs, err := s.Sessions().RevokedSessionsSince(t.Context(), time.Time{}); err != nil || len(revs) != 0 {
		t.Errorf("RevokedSessionsSince after rollback = %v, %v; want none", revs, err)
	}
	_, err = s.RefreshTokens().RefreshTokenByHash(t.Context(), newRefreshToken("rt1", "s1").Hash)
	wantErr(t, "RefreshTokenByHash after rollback", err, store.ErrNotFound)
	if rt := mustRefreshToken(t, s, newRefreshToken("rt-existing", "s-existing").Hash); rt.UsedAt != nil || rt.Client != "" {
		t.Errorf("MarkRefreshTokenUsed inside the rolled-back transaction persisted: UsedAt %v, Client %q", rt.UsedAt, rt.Client)
	}
	if ks := mustListSigningKeys(t, s); len(ks) != 0 {
		t.Errorf("ListSigningKeys after rollback = %d keys, want none", len(ks))
	}
	_, err = s.WebAuthn().WebAuthnCredentialByCredentialID(t.Context(), newWebAuthnCredential("wac_1", "u1").CredentialID)
	wantErr(t, "WebAuthnCredentialByCredentialID after rollback", err, store.ErrNotFound)
	wantStoredWebAuthn(t, s, "existing", newWebAuthnCredential("wac-existing", "existing"))
	err = s.InTx(t.Context(), func(tx store.Tx) error {
		return tx.Sessions().TouchSession(t.Context(), "s-existing", base.Add(time.Second), "192.0.2.1", "ua")
	})
	if err != nil {
		t.Errorf("InTx after rollback: %v", err)
	}
}
