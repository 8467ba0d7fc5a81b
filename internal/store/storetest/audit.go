package storetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

var auditTests = []storeTest{
	{"AppendAndList", testAppendAndListEvents},
	{"Pagination", testEventPagination},
	{"PerUserIsolation", testEventIsolation},
	{"SealAndHead", testSealAndHead},
	{"SealConflicts", testSealConflicts},
	{"LockAuditChainNeedsTx", testLockAuditChainNeedsTx},
	{"ChainEventsPaging", testChainEventsPaging},
	{"QueryEvents", testQueryEvents},
	{"SinkCursor", testSinkCursor},
	{"ConcurrentSealers", testConcurrentSealers},
	{"ConcurrentSealersWithoutLock", testConcurrentSealersWithoutLock},
	{"ConcurrentSinkClaims", testConcurrentSinkClaims},
}

func newEvent(typ, userID string, i int) *store.Event {
	return &store.Event{
		Type:      typ,
		UserID:    userID,
		SessionID: "s1",
		IP:        "198.51.100.7",
		UserAgent: "Mozilla/5.0",
		At:        base.Add(time.Duration(i) * time.Second),
		Details:   map[string]string{"n": string(rune('a' + i%26))},
	}
}

func mustAppend(t *testing.T, s store.Tx, e *store.Event) *store.Event {
	t.Helper()
	if err := s.Audit().AppendEvent(t.Context(), e); err != nil {
		t.Fatalf("AppendEvent(%s): %v", e.Type, err)
	}
	return e
}

// wantEvents is the events as a store returns them.
func wantEvents(es ...*store.Event) []*store.Event {
	out := make([]*store.Event, len(es))
	for i, e := range es {
		w := *e
		w.At = norm(e.At)
		out[i] = &w
	}
	return out
}

func testAppendAndListEvents(t *testing.T, s store.Store) {
	e1 := mustAppend(t, s, newEvent("signin.succeeded", "u1", 1))
	e2 := mustAppend(t, s, &store.Event{Type: "signin.failed", UserID: "u1", At: base.Add(2 * time.Second)})
	e3 := mustAppend(t, s, newEvent("password.changed", "u1", 3))
	if e1.ID <= 0 || e2.ID <= e1.ID || e3.ID <= e2.ID {
		t.Fatalf("event ids %d, %d, %d: want positive and increasing", e1.ID, e2.ID, e3.ID)
	}
	got, err := s.Audit().ListUserEvents(t.Context(), "u1", 0, 10)
	if err != nil {
		t.Fatalf("ListUserEvents: %v", err)
	}
	if d := diff(wantEvents(e3, e2, e1), got); d != "" {
		t.Errorf("ListUserEvents (-want +got):\n%s", d)
	}
}

func testEventPagination(t *testing.T, s store.Store) {
	var ev []*store.Event // u1's events, oldest first
	for i := range 7 {
		ev = append(ev, mustAppend(t, s, newEvent("e", "u1", i)))
		mustAppend(t, s, newEvent("e", "u2", i)) // interleaved ids
	}
	for _, tc := range []struct {
		name   string
		before int64
		limit  int
		want   []*store.Event
	}{
		{"newest page", 0, 3, []*store.Event{ev[6], ev[5], ev[4]}},
		{"negative before means newest", -1, 2, []*store.Event{ev[6], ev[5]}},
		{"max before", math.MaxInt64, 1, []*store.Event{ev[6]}},
		{"before a cursor", ev[4].ID, 2, []*store.Event{ev[3], ev[2]}},
		{"cursor is exclusive", ev[1].ID, 10, []*store.Event{ev[0]}},
		{"before the oldest", ev[0].ID, 10, nil},
		{"limit beyond the end", 0, 100, []*store.Event{ev[6], ev[5], ev[4], ev[3], ev[2], ev[1], ev[0]}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Audit().ListUserEvents(t.Context(), "u1", tc.before, tc.limit)
			if err != nil {
				t.Fatalf("ListUserEvents: %v", err)
			}
			if d := diff(wantEvents(tc.want...), got); d != "" {
				t.Errorf("ListUserEvents(before=%d, limit=%d) (-want +got):\n%s", tc.before, tc.limit, d)
			}
		})
	}
	t.Run("walk every page", func(t *testing.T) {
		var walked []*store.Event
		before := int64(0)
		for range len(ev) + 1 {
			page, err := s.Audit().ListUserEvents(t.Context(), "u1", before, 2)
			if err != nil {
				t.Fatalf("ListUserEvents: %v", err)
			}
			if len(page) == 0 {
				break
			}
			walked = append(walked, page...)
			before = page[len(page)-1].ID
		}
		want := wantEvents(ev[6], ev[5], ev[4], ev[3], ev[2], ev[1], ev[0])
		if d := diff(want, walked); d != "" {
			t.Errorf("walked pages (-want +got):\n%s", d)
		}
	})
}

func testEventIsolation(t *testing.T, s store.Store) {
	a := mustAppend(t, s, newEvent("e", "alice", 1))
	mustAppend(t, s, newEvent("e", "bob", 2))
	mustAppend(t, s, newEvent("signin.failed", "", 3)) // unknown actor
	mustAppend(t, s, newEvent("e", "alice2", 4))       // a prefix is not a match
	for _, tc := range []struct {
		user string
		want []*store.Event
	}{
		{"alice", []*store.Event{a}},
		{"ali", nil},
		{"carol", nil},
	} {
		t.Run(tc.user, func(t *testing.T) {
			got, err := s.Audit().ListUserEvents(t.Context(), tc.user, 0, 10)
			if err != nil {
				t.Fatalf("ListUserEvents: %v", err)
			}
			if d := diff(wantEvents(tc.want...), got); d != "" {
				t.Errorf("ListUserEvents(%q) (-want +got):\n%s", tc.user, d)
			}
		})
	}
}

// testLink is the link hash the chain tests use: the store never computes
// hashes (audit.LinkHash does), it only keeps them, so any 32-byte
// function of the position will do.
func testLink(seq int64, prev []byte, id int64) []byte {
	h := sha256.New()
	_ = binary.Write(h, binary.BigEndian, seq)
	h.Write(prev)
	_ = binary.Write(h, binary.BigEndian, id)
	return h.Sum(nil)
}

var zeroHash = make([]byte, 32)

// sealed is e with the link (seq, prev, hash), as a store returns it.
func sealed(e *store.Event, seq int64, prev, hash []byte) *store.Event {
	w := *wantEvents(e)[0]
	w.Seq, w.PrevHash, w.Hash = seq, prev, hash
	return &w
}

// sealAll runs the sealer protocol of the store.Audit contract once: in
// one transaction, lock, read the head, and link every unsealed event
// after it. lock=false skips the lock, to show the unique seq still keeps
// the chain whole. It returns how many events it linked.
func sealAll(t *testing.T, s store.Store, lock bool) (int, error) {
	n := 0
	err := s.InTx(t.Context(), func(tx store.Tx) error {
		a := tx.Audit()
		if lock {
			if err := a.LockAuditChain(t.Context()); err != nil {
				return err
			}
		}
		head, err := a.ChainHead(t.Context())
		if err != nil {
			return err
		}
		events, err := a.UnsealedEvents(t.Context(), 1000)
		if err != nil {
			return err
		}
		seq, prev := head.Seq, head.Hash
		if seq == 0 {
			prev = zeroHash
		}
		for _, e := range events {
			seq++
			h := testLink(seq, prev, e.ID)
			if err := a.SealEvent(t.Context(), e.ID, seq, prev, h); err != nil {
				return err
			}
			prev = h
		}
		n = len(events)
		return nil
	})
	return n, err
}

// checkChain reads the whole chain and fails unless it holds exactly the
// events with ids want (in any order) at seqs 1..len(want), each linked
// to the one before.
func checkChain(t *testing.T, s store.Store, want map[int64]bool) {
	t.Helper()
	events, err := s.Audit().ChainEvents(t.Context(), 0, len(want)+10)
	if err != nil {
		t.Fatalf("ChainEvents: %v", err)
	}
	if len(events) != len(want) {
		t.Fatalf("chain holds %d events, want %d", len(events), len(want))
	}
	prev := zeroHash
	seen := map[int64]bool{}
	for i, e := range events {
		if e.Seq != int64(i+1) {
			t.Fatalf("chain position %d has seq %d, want %d: a gap or a seq given twice", i+1, e.Seq, i+1)
		}
		if !bytes.Equal(e.PrevHash, prev) || !bytes.Equal(e.Hash, testLink(e.Seq, prev, e.ID)) {
			t.Fatalf("seq %d (event %d) is not linked to seq %d", e.Seq, e.ID, e.Seq-1)
		}
		if !want[e.ID] || seen[e.ID] {
			t.Fatalf("seq %d holds event %d: unexpected or twice", e.Seq, e.ID)
		}
		seen[e.ID] = true
		prev = e.Hash
	}
	head, err := s.Audit().ChainHead(t.Context())
	if err != nil || head.Seq != int64(len(want)) || !bytes.Equal(head.Hash, prev) {
		t.Fatalf("ChainHead = %+v, %v; want seq %d", head, err, len(want))
	}
	if n, _, err := s.Audit().UnsealedEventStats(t.Context()); err != nil || n != 0 {
		t.Fatalf("UnsealedEventStats = %d, %v; want 0 left", n, err)
	}
}

func testSealAndHead(t *testing.T, s store.Store) {
	a := s.Audit()
	head, err := a.ChainHead(t.Context())
	if err != nil || head.Seq != 0 || head.Hash != nil {
		t.Fatalf("ChainHead of an empty log = %+v, %v; want the zero link", head, err)
	}
	if n, oldest, err := a.UnsealedEventStats(t.Context()); err != nil || n != 0 || !oldest.IsZero() {
		t.Fatalf("UnsealedEventStats of an empty log = %d, %v, %v", n, oldest, err)
	}
	e3 := mustAppend(t, s, newEvent("e", "u1", 3))
	e1 := mustAppend(t, s, newEvent("e", "u1", 1)) // later id, earlier time
	e2 := mustAppend(t, s, newEvent("e", "u2", 2))
	if e3.Seq != 0 || e3.Hash != nil {
		t.Fatalf("AppendEvent set a link: %+v", e3)
	}
	got, err := a.UnsealedEvents(t.Context(), 10)
	if err != nil {
		t.Fatalf("UnsealedEvents: %v", err)
	}
	if d := diff(wantEvents(e3, e1, e2), got); d != "" {
		t.Errorf("UnsealedEvents, by id (-want +got):\n%s", d)
	}
	if got, err := a.UnsealedEvents(t.Context(), 2); err != nil || len(got) != 2 || got[1].ID != e1.ID {
		t.Errorf("UnsealedEvents(limit 2) = %v, %v", got, err)
	}
	if n, oldest, err := a.UnsealedEventStats(t.Context()); err != nil || n != 3 || !oldest.Equal(norm(e1.At)) {
		t.Errorf("UnsealedEventStats = %d, %v, %v; want 3, %v", n, oldest, err, norm(e1.At))
	}

	h1, h2 := testLink(1, zeroHash, e3.ID), testLink(2, nil, e1.ID)
	err = s.InTx(t.Context(), func(tx store.Tx) error {
		if err := tx.Audit().LockAuditChain(t.Context()); err != nil {
			return err
		}
		if err := tx.Audit().SealEvent(t.Context(), e3.ID, 1, zeroHash, h1); err != nil {
			return err
		}
		if err := tx.Audit().SealEvent(t.Context(), e1.ID, 2, h1, h2); err != nil {
			return err
		}
		if head, err := tx.Audit().ChainHead(t.Context()); err != nil || head.Seq != 2 || !bytes.Equal(head.Hash, h2) {
			t.Errorf("ChainHead inside the sealing transaction = %+v, %v", head, err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("sealing: %v", err)
	}
	if head, err := a.ChainHead(t.Context()); err != nil || head.Seq != 2 || !bytes.Equal(head.Hash, h2) {
		t.Errorf("ChainHead = %+v, %v; want seq 2", head, err)
	}
	chain, err := a.ChainEvents(t.Context(), 0, 10)
	if err != nil {
		t.Fatalf("ChainEvents: %v", err)
	}
	if d := diff([]*store.Event{sealed(e3, 1, zeroHash, h1), sealed(e1, 2, h1, h2)}, chain); d != "" {
		t.Errorf("ChainEvents (-want +got):\n%s", d)
	}
	if got, err := a.UnsealedEvents(t.Context(), 10); err != nil || len(got) != 1 || got[0].ID != e2.ID {
		t.Errorf("UnsealedEvents after sealing = %v, %v; want only event %d", got, err, e2.ID)
	}
	if n, oldest, err := a.UnsealedEventStats(t.Context()); err != nil || n != 1 || !oldest.Equal(norm(e2.At)) {
		t.Errorf("UnsealedEventStats after sealing = %d, %v, %v", n, oldest, err)
	}
	// Every read returns the link.
	list, err := a.ListUserEvents(t.Context(), "u1", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if d := diff([]*store.Event{sealed(e1, 2, h1, h2), sealed(e3, 1, zeroHash, h1)}, list); d != "" {
		t.Errorf("ListUserEvents (-want +got):\n%s", d)
	}
}

func testSealConflicts(t *testing.T, s store.Store) {
	a := s.Audit()
	e1 := mustAppend(t, s, newEvent("e", "u1", 1))
	e2 := mustAppend(t, s, newEvent("e", "u1", 2))
	h1 := testLink(1, zeroHash, e1.ID)
	if err := a.SealEvent(t.Context(), e1.ID, 1, zeroHash, h1); err != nil {
		t.Fatalf("SealEvent: %v", err)
	}
	for _, tc := range []struct {
		name string
		id   int64
		seq  int64
		want error
	}{
		{"sealed twice", e1.ID, 2, store.ErrConflict},
		{"seq taken", e2.ID, 1, store.ErrConflict},
		{"no such event", e2.ID + 100, 5, store.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := a.SealEvent(t.Context(), tc.id, tc.seq, zeroHash, testLink(tc.seq, zeroHash, tc.id))
			if !errors.Is(err, tc.want) {
				t.Errorf("SealEvent = %v, want %v", err, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name       string
		seq        int64
		prev, hash []byte
	}{
		{"seq 0", 0, zeroHash, h1},
		{"negative seq", -1, zeroHash, h1},
		{"short prev hash", 2, zeroHash[:31], h1},
		{"no hash", 2, h1, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := a.SealEvent(t.Context(), e2.ID, tc.seq, tc.prev, tc.hash)
			if err == nil || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
				t.Errorf("SealEvent = %v, want a plain error", err)
			}
		})
	}
	// The refusals changed nothing: the sealed event keeps its link and
	// the other is still unsealed.
	chain, err := a.ChainEvents(t.Context(), 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if d := diff([]*store.Event{sealed(e1, 1, zeroHash, h1)}, chain); d != "" {
		t.Errorf("chain after refused seals (-want +got):\n%s", d)
	}
	if got, err := a.UnsealedEvents(t.Context(), 10); err != nil || len(got) != 1 || got[0].ID != e2.ID {
		t.Errorf("UnsealedEvents = %v, %v", got, err)
	}
	// A conflict inside a sealer's transaction rolls the batch back.
	err = s.InTx(t.Context(), func(tx store.Tx) error {
		if err := tx.Audit().SealEvent(t.Context(), e2.ID, 2, h1, testLink(2, h1, e2.ID)); err != nil {
			return err
		}
		return tx.Audit().SealEvent(t.Context(), e1.ID, 3, zeroHash, zeroHash)
	})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("batch with a conflict = %v, want ErrConflict", err)
	}
	if got, err := a.UnsealedEvents(t.Context(), 10); err != nil || len(got) != 1 {
		t.Errorf("after the rolled-back batch, UnsealedEvents = %v, %v; want event %d still unsealed", got, err, e2.ID)
	}
	for _, limit := range []int{0, -1} {
		if _, err := a.UnsealedEvents(t.Context(), limit); err == nil {
			t.Errorf("UnsealedEvents(limit %d) succeeded", limit)
		}
	}
}

func testLockAuditChainNeedsTx(t *testing.T, s store.Store) {
	if err := s.Audit().LockAuditChain(t.Context()); err == nil {
		t.Error("LockAuditChain outside a transaction succeeded; it would lock nothing")
	}
	err := s.InTx(t.Context(), func(tx store.Tx) error {
		if err := tx.Audit().LockAuditChain(t.Context()); err != nil {
			return err
		}
		return tx.Audit().LockAuditChain(t.Context()) // re-entrant within the transaction
	})
	if err != nil {
		t.Errorf("LockAuditChain in a transaction: %v", err)
	}
}

func testChainEventsPaging(t *testing.T, s store.Store) {
	want := map[int64]bool{}
	for i := range 5 {
		want[mustAppend(t, s, newEvent("e", "u1", i)).ID] = true
	}
	if n, err := sealAll(t, s, true); err != nil || n != 5 {
		t.Fatalf("sealAll = %d, %v", n, err)
	}
	checkChain(t, s, want)
	mustAppend(t, s, newEvent("e", "u1", 9)) // unsealed: not in the chain
	for _, tc := range []struct {
		after int64
		limit int
		seqs  []int64
	}{
		{0, 2, []int64{1, 2}},
		{2, 2, []int64{3, 4}},
		{4, 10, []int64{5}},
		{5, 10, nil},
		{-3, 1, []int64{1}},
	} {
		got, err := s.Audit().ChainEvents(t.Context(), tc.after, tc.limit)
		if err != nil {
			t.Fatalf("ChainEvents(%d, %d): %v", tc.after, tc.limit, err)
		}
		var seqs []int64
		for _, e := range got {
			seqs = append(seqs, e.Seq)
		}
		if d := diff(tc.seqs, seqs); d != "" {
			t.Errorf("ChainEvents(%d, %d) seqs (-want +got):\n%s", tc.after, tc.limit, d)
		}
	}
	if _, err := s.Audit().ChainEvents(t.Context(), 0, 0); err == nil {
		t.Error("ChainEvents(limit 0) succeeded")
	}
	// A second run links the new event after the head.
	if n, err := sealAll(t, s, true); err != nil || n != 1 {
		t.Fatalf("second sealAll = %d, %v", n, err)
	}
	if head, err := s.Audit().ChainHead(t.Context()); err != nil || head.Seq != 6 {
		t.Errorf("ChainHead = %+v, %v; want seq 6", head, err)
	}
}

func testQueryEvents(t *testing.T, s store.Store) {
	mk := func(typ, user, ip string, i int) *store.Event {
		e := newEvent(typ, user, i)
		e.IP = ip
		return mustAppend(t, s, e)
	}
	e0 := mk("login.failed", "", "203.0.113.9", 0)
	e1 := mk("login.succeeded", "u1", "198.51.100.7", 1)
	e2 := mk("login.failed", "u1", "203.0.113.9", 2)
	e3 := mk("password.changed", "u1", "198.51.100.7", 3)
	e4 := mk("login.failed", "u2", "2001:db8::1", 4)
	e5 := mk("login.failed", "u1", "203.0.113.9", 5)
	if _, err := sealAll(t, s, true); err != nil {
		t.Fatal(err)
	}
	e6 := mk("login.failed", "u1", "203.0.113.9", 6) // unsealed
	all := []*store.Event{e0, e1, e2, e3, e4, e5, e6}
	chain, err := s.Audit().ChainEvents(t.Context(), 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[int64]*store.Event{e6.ID: wantEvents(e6)[0]}
	for _, e := range chain {
		stored[e.ID] = e
	}
	want := func(es ...*store.Event) []*store.Event {
		out := make([]*store.Event, len(es))
		for i, e := range es {
			out[i] = stored[e.ID]
		}
		return out
	}
	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) }
	for _, tc := range []struct {
		name string
		f    store.EventFilter
		want []*store.Event
	}{
		{"everything", store.EventFilter{Limit: 100}, want(all...)},
		{"page", store.EventFilter{Limit: 2}, want(e0, e1)},
		{"after a cursor", store.EventFilter{After: e1.ID, Limit: 2}, want(e2, e3)},
		{"after the last", store.EventFilter{After: e6.ID, Limit: 10}, nil},
		{"user", store.EventFilter{UserID: "u1", Limit: 100}, want(e1, e2, e3, e5, e6)},
		{"user prefix is not a match", store.EventFilter{UserID: "u", Limit: 100}, nil},
		{"type", store.EventFilter{Type: "login.failed", Limit: 100}, want(e0, e2, e4, e5, e6)},
		{"ip", store.EventFilter{IP: "203.0.113.9", Limit: 100}, want(e0, e2, e5, e6)},
		{"ipv6", store.EventFilter{IP: "2001:db8::1", Limit: 100}, want(e4)},
		{"since (inclusive)", store.EventFilter{Since: at(4), Limit: 100}, want(e4, e5, e6)},
		{"until (exclusive)", store.EventFilter{Until: at(2), Limit: 100}, want(e0, e1)},
		{"since and until", store.EventFilter{Since: at(1), Until: at(3), Limit: 100}, want(e1, e2)},
		{"every filter", store.EventFilter{UserID: "u1", Type: "login.failed", IP: "203.0.113.9", Since: at(3), Until: at(7), After: e2.ID, Limit: 1}, want(e5)},
		{"every filter, next page", store.EventFilter{UserID: "u1", Type: "login.failed", IP: "203.0.113.9", Since: at(3), Until: at(7), After: e5.ID, Limit: 1}, want(e6)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Audit().QueryEvents(t.Context(), tc.f)
			if err != nil {
				t.Fatalf("QueryEvents: %v", err)
			}
			if d := diff(tc.want, got); d != "" {
				t.Errorf("QueryEvents(%+v) (-want +got):\n%s", tc.f, d)
			}
		})
	}
	if got := stored[e0.ID]; got.Seq == 0 || stored[e6.ID].Seq != 0 {
		t.Errorf("QueryEvents must return sealed events with their link and unsealed ones without: %+v", got)
	}
	if _, err := s.Audit().QueryEvents(t.Context(), store.EventFilter{}); err == nil {
		t.Error("QueryEvents without a limit succeeded")
	}
}

func testSinkCursor(t *testing.T, s store.Store) {
	a := s.Audit()
	now := base
	lease := func(d time.Duration) time.Time { return now.Add(d) }
	claim := func(sink, holder string, at time.Time) (int64, error) {
		return a.ClaimAuditSink(t.Context(), sink, holder, at, at.Add(30*time.Second))
	}
	if c, err := claim("webhook", "A", now); err != nil || c != 0 {
		t.Fatalf("first claim = %d, %v; want cursor 0", c, err)
	}
	if _, err := claim("webhook", "B", now.Add(10*time.Second)); !errors.Is(err, store.ErrConflict) {
		t.Errorf("claim of a live lease by another holder = %v, want ErrConflict", err)
	}
	if c, err := claim("stdout", "B", now); err != nil || c != 0 {
		t.Errorf("another sink is independent: %d, %v", c, err)
	}
	if err := a.AdvanceAuditSink(t.Context(), "webhook", "B", 0, 5); !errors.Is(err, store.ErrConflict) {
		t.Errorf("advance by a non-holder = %v, want ErrConflict", err)
	}
	if err := a.AdvanceAuditSink(t.Context(), "webhook", "A", 0, 5); err != nil {
		t.Fatalf("advance by the holder: %v", err)
	}
	if err := a.AdvanceAuditSink(t.Context(), "webhook", "A", 0, 7); !errors.Is(err, store.ErrConflict) {
		t.Errorf("advance from a stale cursor = %v, want ErrConflict", err)
	}
	if err := a.AdvanceAuditSink(t.Context(), "webhook", "A", 5, 5); err == nil || errors.Is(err, store.ErrConflict) {
		t.Errorf("advance that does not move = %v, want a plain error", err)
	}
	if err := a.AdvanceAuditSink(t.Context(), "nosuch", "A", 0, 1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("advance of an unknown sink = %v, want ErrNotFound", err)
	}
	// Renewal by the holder keeps the cursor.
	if c, err := claim("webhook", "A", now.Add(20*time.Second)); err != nil || c != 5 {
		t.Errorf("renewal = %d, %v; want cursor 5", c, err)
	}
	// Renewed until +50s: B is refused at +45s and gets it at +50s.
	if _, err := claim("webhook", "B", lease(45*time.Second)); !errors.Is(err, store.ErrConflict) {
		t.Errorf("claim before the renewed lease expired = %v, want ErrConflict", err)
	}
	if c, err := claim("webhook", "B", lease(50*time.Second)); err != nil || c != 5 {
		t.Fatalf("claim of an expired lease = %d, %v; want cursor 5", c, err)
	}
	if err := a.AdvanceAuditSink(t.Context(), "webhook", "A", 5, 6); !errors.Is(err, store.ErrConflict) {
		t.Errorf("advance by the previous holder = %v, want ErrConflict", err)
	}
	// Release by a non-holder does nothing; by the holder frees it at once.
	if err := a.ReleaseAuditSink(t.Context(), "webhook", "A"); err != nil {
		t.Fatal(err)
	}
	if _, err := claim("webhook", "A", lease(55*time.Second)); !errors.Is(err, store.ErrConflict) {
		t.Errorf("claim after a non-holder's release = %v, want ErrConflict", err)
	}
	if err := a.ReleaseAuditSink(t.Context(), "webhook", "B"); err != nil {
		t.Fatal(err)
	}
	if c, err := claim("webhook", "A", lease(55*time.Second)); err != nil || c != 5 {
		t.Errorf("claim after release = %d, %v; want cursor 5", c, err)
	}
	if _, err := claim("", "A", now); err == nil {
		t.Error("claim of an unnamed sink succeeded")
	}
}

// testConcurrentSealers runs sealers (with the lock) while events are
// appended: one gap-free chain holds every event exactly once.
func testConcurrentSealers(t *testing.T, s store.Store) {
	raceSealers(t, s, true)
}

// testConcurrentSealersWithoutLock races sealers that skip the lock: the
// unique seq refuses the losers (ErrConflict, nothing else), and the chain
// stays whole.
func testConcurrentSealersWithoutLock(t *testing.T, s store.Store) {
	raceSealers(t, s, false)
}

func raceSealers(t *testing.T, s store.Store, lock bool) {
	const appenders, perAppender, sealers = 4, 15, 4
	var (
		mu   sync.Mutex
		want = map[int64]bool{}
		wg   sync.WaitGroup
		done = make(chan struct{})
		errs = make(chan error, appenders+sealers)
	)
	for a := range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perAppender {
				e := newEvent("race", fmt.Sprintf("u%d", a), i)
				if err := s.InTx(t.Context(), func(tx store.Tx) error { return tx.Audit().AppendEvent(t.Context(), e) }); err != nil {
					errs <- fmt.Errorf("append: %w", err)
					return
				}
				mu.Lock()
				want[e.ID] = true
				mu.Unlock()
			}
		}()
	}
	var sealersWG sync.WaitGroup
	for range sealers {
		sealersWG.Add(1)
		go func() {
			defer sealersWG.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				if _, err := sealAll(t, s, lock); err != nil && !errors.Is(err, store.ErrConflict) {
					errs <- fmt.Errorf("seal: %w", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	sealersWG.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Whatever the last racing run left unsealed.
	for {
		n, err := sealAll(t, s, lock)
		if err != nil {
			t.Fatalf("final seal: %v", err)
		}
		if n == 0 {
			break
		}
	}
	checkChain(t, s, want)
}

// testConcurrentSinkClaims: of many replicas claiming one free cursor at
// once, exactly one gets the lease.
func testConcurrentSinkClaims(t *testing.T, s store.Store) {
	errs := make([]error, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.Audit().ClaimAuditSink(t.Context(), "webhook", fmt.Sprintf("replica-%d", i), base, base.Add(time.Minute))
		}()
	}
	wg.Wait()
	oneWinner(t, errs, store.ErrConflict)
}
