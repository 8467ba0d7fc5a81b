package audit_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/audit"
	"github.com/gatehouse-auth/gatehouse/internal/store"
)

func linkEvent() *store.Event {
	return &store.Event{
		ID: 42, Type: "login.failed", UserID: "usr_1", SessionID: "ses_1", IP: "203.0.113.9",
		UserAgent: "Mozilla/5.0", At: time.Date(2025, 3, 14, 15, 9, 26, 535_897_000, time.UTC),
		Details: map[string]string{"reason": "password", "email": "a<b>&c@example.com"},
	}
}

// TestLinkHashIsDeterministic pins the encoding: the hash of a known event
// never changes (verifiers outside this code base recompute it), whatever
// the time zone of At or the order of the details.
func TestLinkHashIsDeterministic(t *testing.T) {
	prev := bytes.Repeat([]byte{0xab}, 32)
	e := linkEvent()
	const want = "93dd76de547c51e35aea4096807cf6971b8198d0420f9be66c4e0158be647d90"
	got := hex.EncodeToString(audit.LinkHash(7, prev, e))
	if got != want {
		t.Errorf("LinkHash = %s, want %s: the link encoding changed, which breaks every existing chain and outside verifier", got, want)
	}
	same := linkEvent()
	same.At = same.At.In(time.FixedZone("UTC+05:30", 5*3600+1800))
	same.Details = map[string]string{"email": "a<b>&c@example.com", "reason": "password"}
	if g := hex.EncodeToString(audit.LinkHash(7, prev, same)); g != got {
		t.Errorf("the same event in another zone or detail order hashes to %s, want %s", g, got)
	}
	if len(audit.LinkHash(1, audit.GenesisHash, &store.Event{})) != 32 {
		t.Error("LinkHash is not 32 bytes")
	}
	noDetails, emptyDetails := linkEvent(), linkEvent()
	noDetails.Details, emptyDetails.Details = nil, map[string]string{}
	if !bytes.Equal(audit.LinkHash(1, prev, noDetails), audit.LinkHash(1, prev, emptyDetails)) {
		t.Error("nil and empty details hash differently (the store returns either)")
	}
}

// TestLinkHashCoversEveryField: changing any hashed field, or moving bytes
// from one field to the next, changes the hash.
func TestLinkHashCoversEveryField(t *testing.T) {
	prev := bytes.Repeat([]byte{1}, 32)
	base := audit.LinkHash(7, prev, linkEvent())
	for name, mutate := range map[string]func(e *store.Event) (int64, []byte){
		"seq":        func(e *store.Event) (int64, []byte) { return 8, prev },
		"prev hash":  func(e *store.Event) (int64, []byte) { return 7, audit.GenesisHash },
		"id":         func(e *store.Event) (int64, []byte) { e.ID++; return 7, prev },
		"type":       func(e *store.Event) (int64, []byte) { e.Type = "login.succeeded"; return 7, prev },
		"user":       func(e *store.Event) (int64, []byte) { e.UserID = "usr_2"; return 7, prev },
		"session":    func(e *store.Event) (int64, []byte) { e.SessionID = ""; return 7, prev },
		"ip":         func(e *store.Event) (int64, []byte) { e.IP = "203.0.113.10"; return 7, prev },
		"user agent": func(e *store.Event) (int64, []byte) { e.UserAgent += " "; return 7, prev },
		"at":         func(e *store.Event) (int64, []byte) { e.At = e.At.Add(time.Microsecond); return 7, prev },
		"detail":     func(e *store.Event) (int64, []byte) { e.Details["reason"] = "mfa"; return 7, prev },
		"detail key": func(e *store.Event) (int64, []byte) { e.Details["x"] = ""; return 7, prev },
		"field boundary": func(e *store.Event) (int64, []byte) {
			e.Type, e.UserID = e.Type+e.UserID[:1], e.UserID[1:]
			return 7, prev
		},
	} {
		e := linkEvent()
		seq, p := mutate(e)
		if bytes.Equal(audit.LinkHash(seq, p, e), base) {
			t.Errorf("changing the %s leaves the hash unchanged", name)
		}
	}
}

func TestParseAnchor(t *testing.T) {
	h := strings.Repeat("ab", 32)
	a, err := audit.ParseAnchor(" 12:" + h + "\n")
	if err != nil || a.Seq != 12 || hex.EncodeToString(a.Hash) != h || a.String() != "12:"+h {
		t.Fatalf("ParseAnchor = %+v, %v", a, err)
	}
	for _, bad := range []string{"", "12", ":" + h, "0:" + h, "-1:" + h, "x:" + h, "12:" + h[:62], "12:" + h + "00", "12:" + strings.Repeat("zz", 32)} {
		if _, err := audit.ParseAnchor(bad); err == nil {
			t.Errorf("ParseAnchor(%q) succeeded", bad)
		}
	}
}

// TestAuditChainSealsAndVerifies: a clean chain verifies, head for head
// with the sealer's logged anchors; the sealer links in id order, logs
// every batch's head at Info, and leaves nothing unsealed.
func TestAuditChainSealsAndVerifies(t *testing.T) {
	forEachBackend(t, func(t *testing.T, c *chainDB) {
		mustIntact(t, c.verify(), 0)
		events := c.append(5)
		if r := c.verify(); !r.Intact() || r.Unsealed != 5 || r.SealerStalled {
			t.Fatalf("before sealing: %+v", r)
		}
		if n := c.seal(); n != 5 {
			t.Fatalf("sealed %d, want 5", n)
		}
		if c.sealer.Unsealed() != 0 {
			t.Errorf("Unsealed() = %d after sealing", c.sealer.Unsealed())
		}
		c.append(300) // more than one batch
		if n := c.seal(); n != 300 {
			t.Fatalf("sealed %d, want 300", n)
		}
		if n := c.seal(); n != 0 {
			t.Errorf("an idle run sealed %d", n)
		}
		r := c.verify(c.loggedAnchors()...)
		mustIntact(t, r, 305)
		if r.Unsealed != 0 || r.SealerStalled {
			t.Errorf("unsealed %d, stalled %v", r.Unsealed, r.SealerStalled)
		}
		anchors := c.loggedAnchors()
		if len(anchors) != 3 || anchors[0].Seq != 5 || anchors[2].Seq != 305 || !bytes.Equal(anchors[2].Hash, r.Head.Hash) {
			t.Errorf("logged heads %v, want seqs 5, 261, 305 ending at the verified head %x", anchors, r.Head.Hash)
		}
		chain, err := c.db.Audit().ChainEvents(t.Context(), 0, 5)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range chain {
			if e.ID != events[i].ID || e.Seq != int64(i+1) {
				t.Errorf("seq %d holds event %d, want %d (id order)", e.Seq, e.ID, events[i].ID)
			}
		}
		if !bytes.Equal(chain[0].PrevHash, audit.GenesisHash) {
			t.Errorf("seq 1 prev_hash %x, want 32 zero bytes", chain[0].PrevHash)
		}
	})
}

// TestAuditChainStalledSealerWarned: an event left unsealed for over a
// minute is reported (the sealer is not running) but is not tampering.
func TestAuditChainStalledSealerWarned(t *testing.T) {
	forEachBackend(t, func(t *testing.T, c *chainDB) {
		c.append(2)
		c.seal()
		old := &store.Event{Type: audit.LoginFailed, At: time.Now().Add(-2 * time.Minute)}
		if err := c.db.Audit().AppendEvent(t.Context(), old); err != nil {
			t.Fatal(err)
		}
		r := c.verify()
		if !r.Intact() || !r.SealerStalled || r.Unsealed != 1 || !r.OldestUnsealed.Equal(old.At.UTC().Truncate(time.Microsecond)) {
			t.Fatalf("report %+v: want intact, 1 stale unsealed event", r)
		}
	})
}

// TestAttackAuditChainEditDetected: an attacker with write access to the
// database edits a sealed event — any field — and Verify names the event
// and its seq. Re-hashing the edited event moves the break to the next
// link.
func TestAttackAuditChainEditDetected(t *testing.T) {
	for _, tc := range []struct {
		name string
		seq  int64
		set  func(c *chainDB) string
		args []any
	}{
		{"type", 1, fixed("type = 'login.succeeded'"), nil},
		{"user", 2, fixed("user_id = 'usr_innocent'"), nil},
		{"session", 3, fixed("session_id = ''"), nil},
		{"ip", 4, fixed("ip = '198.51.100.1'"), nil},
		{"user agent", 5, fixed("user_agent = 'curl/8'"), nil},
		{"details", 6, fixed(`details = '{"reason":"nothing to see"}'`), nil},
		{"time", 3, func(c *chainDB) string {
			if c.dialect == "postgres" {
				return "at = at + interval '1 second'"
			}
			return "at = at + 1000000" // unix microseconds
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, c *chainDB) {
				c.append(6)
				c.seal()
				mustIntact(t, c.verify(), 6)
				if c.exec("UPDATE audit_events SET "+tc.set(c)+" WHERE seq = ?", append(tc.args, tc.seq)...) != 1 {
					t.Fatal("no row edited")
				}
				f := mustFind(t, c.verify(), audit.FindingEdited, tc.seq)
				if f.EventID == 0 || !strings.Contains(f.Detail, "changed after sealing") {
					t.Errorf("finding %+v", f)
				}
				if r := c.verify(); r.Checked != tc.seq-1 {
					t.Errorf("verified %d links before the break, want %d", r.Checked, tc.seq-1)
				}
			})
		})
	}
	t.Run("edited and re-hashed", func(t *testing.T) {
		forEachBackend(t, func(t *testing.T, c *chainDB) {
			c.append(6)
			c.seal()
			events, err := c.db.Audit().ChainEvents(t.Context(), 2, 1)
			if err != nil {
				t.Fatal(err)
			}
			e := events[0]
			e.Type = "login.succeeded"
			c.exec("UPDATE audit_events SET type = ?, hash = ? WHERE seq = 3", e.Type, audit.LinkHash(3, e.PrevHash, e))
			mustFind(t, c.verify(), audit.FindingBrokenLink, 4)
		})
	})
}

func fixed(set string) func(*chainDB) string { return func(*chainDB) string { return set } }

// TestAttackAuditChainDeleteDetected: deleting sealed events leaves a gap
// in seq; closing the gap by renumbering breaks the prev_hash link.
func TestAttackAuditChainDeleteDetected(t *testing.T) {
	t.Run("one event", func(t *testing.T) {
		forEachBackend(t, func(t *testing.T, c *chainDB) {
			c.append(6)
			c.seal()
			c.exec("DELETE FROM audit_events WHERE seq = 3")
			f := mustFind(t, c.verify(), audit.FindingMissing, 3)
			if !strings.Contains(f.Detail, "seq 3 missing") {
				t.Errorf("finding %v", f)
			}
		})
	})
	t.Run("a range", func(t *testing.T) {
		forEachBackend(t, func(t *testing.T, c *chainDB) {
			c.append(6)
			c.seal()
			c.exec("DELETE FROM audit_events WHERE seq IN (2, 3, 4)")
			f := mustFind(t, c.verify(), audit.FindingMissing, 2)
			if !strings.Contains(f.Detail, "seq 2..4 missing") {
				t.Errorf("finding %v", f)
			}
		})
	})
	t.Run("the first event", func(t *testing.T) {
		forEachBackend(t, func(t *testing.T, c *chainDB) {
			c.append(3)
			c.seal()
			c.exec("DELETE FROM audit_events WHERE seq = 1")
			mustFind(t, c.verify(), audit.FindingMissing, 1)
		})
	})
	t.Run("renumbered to close the gap", func(t *testing.T) {
		forEachBackend(t, func(t *testing.T, c *chainDB) {
			c.append(6)
			c.seal()
			c.exec("DELETE FROM audit_events WHERE seq = 3")
			for seq := 4; seq <= 6; seq++ {
				c.exec("UPDATE audit_events SET seq = ? WHERE seq = ?", seq-1, seq)
			}
			mustFind(t, c.verify(), audit.FindingBrokenLink, 3)
		})
	})
	t.Run("unsealed and re-sealed at the tail", func(t *testing.T) {
		// Clearing an event's link makes the sealer link it again at the
		// end; the hole it leaves stays.
		forEachBackend(t, func(t *testing.T, c *chainDB) {
			c.append(4)
			c.seal()
			c.exec("UPDATE audit_events SET seq = NULL, prev_hash = NULL, hash = NULL WHERE seq = 2")
			if n := c.seal(); n != 1 {
				t.Fatalf("re-sealed %d", n)
			}
			mustFind(t, c.verify(), audit.FindingMissing, 2)
		})
	})
}

// TestAttackAuditChainReorderDetected: swapping the positions of two
// sealed events breaks the link where the first of them now sits.
func TestAttackAuditChainReorderDetected(t *testing.T) {
	t.Run("swap seqs", func(t *testing.T) {
		forEachBackend(t, func(t *testing.T, c *chainDB) {
			c.append(6)
			c.seal()
			c.exec("UPDATE audit_events SET seq = 1000 WHERE seq = 3")
			c.exec("UPDATE audit_events SET seq = 3 WHERE seq = 4")
			c.exec("UPDATE audit_events SET seq = 4 WHERE seq = 1000")
			f := mustFind(t, c.verify(), audit.FindingBrokenLink, 3)
			if !strings.Contains(f.Detail, "does not follow seq 2") {
				t.Errorf("finding %v", f)
			}
		})
	})
	t.Run("swap seqs and links", func(t *testing.T) {
		// The attacker also swaps prev_hash and hash: the links then fit
		// their neighbours, but the contents no longer hash to them.
		forEachBackend(t, func(t *testing.T, c *chainDB) {
			c.append(6)
			c.seal()
			chain, err := c.db.Audit().ChainEvents(t.Context(), 2, 2)
			if err != nil {
				t.Fatal(err)
			}
			a, b := chain[0], chain[1]
			c.exec("UPDATE audit_events SET seq = 1000 WHERE id = ?", a.ID)
			c.exec("UPDATE audit_events SET seq = 3, prev_hash = ?, hash = ? WHERE id = ?", a.PrevHash, a.Hash, b.ID)
			c.exec("UPDATE audit_events SET seq = 4, prev_hash = ?, hash = ? WHERE id = ?", b.PrevHash, b.Hash, a.ID)
			mustFind(t, c.verify(), audit.FindingEdited, 3)
		})
	})
}

// TestAttackAuditChainTailTruncationDetectedByAnchor: deleting the newest
// events leaves a shorter chain that is consistent in itself — only an
// anchor kept outside the database (the sealer's log line) shows it; and
// once new events are sealed over the cut, the anchored seq holds another
// hash.
func TestAttackAuditChainTailTruncationDetectedByAnchor(t *testing.T) {
	forEachBackend(t, func(t *testing.T, c *chainDB) {
		c.append(4)
		c.seal()
		c.append(3)
		c.seal()
		anchors := c.loggedAnchors()
		if len(anchors) != 2 || anchors[1].Seq != 7 {
			t.Fatalf("logged heads %v", anchors)
		}
		mustIntact(t, c.verify(anchors...), 7)

		c.exec("DELETE FROM audit_events WHERE seq >= 6")
		mustIntact(t, c.verify(), 5) // the links alone cannot tell
		r := c.verify(anchors...)
		f := mustFind(t, r, audit.FindingTruncated, 7)
		if len(r.Findings) != 1 || !strings.Contains(f.Detail, "no longer in the chain") {
			t.Errorf("findings %v", r.Findings)
		}

		// The server goes on sealing: the chain grows past seq 7 again.
		c.append(3)
		c.seal()
		mustIntact(t, c.verify(), 8)
		r = c.verify(anchors...)
		mustFind(t, r, audit.FindingRewritten, 7)
		if len(r.Findings) != 1 {
			t.Errorf("the older anchor (seq 4) still holds; findings %v", r.Findings)
		}
	})
}

// TestAuditChainConcurrentSealers: two replicas (two handles on one
// database) seal while events are appended from both: one gap-free chain
// holds every event once.
func TestAuditChainConcurrentSealers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, c *chainDB) {
		other := c.open()
		sealers := []*audit.Sealer{c.sealer, audit.NewSealer(other, nil)}
		stores := []store.Store{c.db, other}
		const perReplica = 60
		var wg sync.WaitGroup
		done := make(chan struct{})
		errs := make(chan error, 4)
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range perReplica {
					e := &store.Event{Type: "race", UserID: "usr_" + string(rune('a'+i)), At: time.Now(), Details: map[string]string{"j": string(rune('a' + j%26))}}
					if err := stores[i].Audit().AppendEvent(t.Context(), e); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		var sealing sync.WaitGroup
		for _, s := range sealers {
			sealing.Add(1)
			go func() {
				defer sealing.Done()
				for {
					select {
					case <-done:
						return
					default:
					}
					if _, err := s.Seal(t.Context()); err != nil && !errors.Is(err, store.ErrConflict) {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(done)
		sealing.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		c.seal()
		r := c.verify(c.loggedAnchors()...)
		mustIntact(t, r, 2*perReplica)
		if r.Unsealed != 0 {
			t.Errorf("%d events left unsealed", r.Unsealed)
		}
	})
}
