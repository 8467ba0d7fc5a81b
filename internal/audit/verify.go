package audit

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// Anchor is a chain head recorded outside the database: the seq and hash
// of an "audit chain sealed" log line, or of the last event a sink
// received. Verify checks that the chain still holds it, which catches a
// truncated or consistently rewritten tail that the links alone cannot.
type Anchor struct {
	Seq  int64
	Hash []byte
}

// ParseAnchor parses "SEQ:HEXHASH".
func ParseAnchor(s string) (Anchor, error) {
	seqText, hashText, ok := strings.Cut(strings.TrimSpace(s), ":")
	seq, err := strconv.ParseInt(seqText, 10, 64)
	if !ok || err != nil || seq <= 0 {
		return Anchor{}, fmt.Errorf("anchor %q: want SEQ:HEXHASH with a positive SEQ", s)
	}
	hash, err := hex.DecodeString(hashText)
	if err != nil || len(hash) != len(GenesisHash) {
		return Anchor{}, fmt.Errorf("anchor %q: the hash must be %d hex characters", s, 2*len(GenesisHash))
	}
	return Anchor{Seq: seq, Hash: hash}, nil
}

func (a Anchor) String() string { return fmt.Sprintf("%d:%x", a.Seq, a.Hash) }

// Kinds of Finding: each is evidence that the log was tampered with.
const (
	// FindingEdited: a sealed event's contents no longer hash to its
	// stored hash.
	FindingEdited = "edited"
	// FindingMissing: seqs are missing before an event (events deleted).
	FindingMissing = "missing"
	// FindingBrokenLink: an event's prev_hash is not the previous link's
	// hash: events reordered, deleted and renumbered, inserted, or the
	// previous event edited and re-hashed.
	FindingBrokenLink = "broken_link"
	// FindingTruncated: an anchored seq is no longer in the chain.
	FindingTruncated = "truncated"
	// FindingRewritten: the event at an anchored seq has another hash.
	FindingRewritten = "rewritten"
)

// Finding is one piece of tamper evidence.
type Finding struct {
	Kind    string
	Seq     int64 // the position where the chain breaks
	EventID int64 // the event found there (0 if none)
	Detail  string
}

func (f Finding) String() string {
	return f.Kind + " at seq " + strconv.FormatInt(f.Seq, 10) + ": " + f.Detail
}

// StaleUnsealed is how old an unsealed event may get before Verify warns
// that no sealer is running.
const StaleUnsealed = time.Minute

// Report is the result of Verify.
type Report struct {
	// Checked is the number of links verified, from seq 1 to Head (or to
	// the first finding).
	Checked int64
	// Head is the last link verified: the chain's head when it is intact.
	Head store.ChainLink
	// Findings is the tamper evidence: the first broken link of the walk,
	// then every anchor the chain no longer holds. Empty: intact.
	Findings []Finding
	// Unsealed counts the events not yet in the chain; OldestUnsealed is
	// the earliest of their times.
	Unsealed       int64
	OldestUnsealed time.Time
	// SealerStalled: an unsealed event is older than StaleUnsealed, so no
	// sealer is running (or it keeps failing). Not tamper evidence, but
	// those events are unprotected.
	SealerStalled bool
}

// Intact reports whether Verify found no tamper evidence.
func (r *Report) Intact() bool { return len(r.Findings) == 0 }

// verifyPage is how many links Verify reads at a time.
const verifyPage = 1000

// Verify walks the chain of a by seq from 1, recomputing every link, and
// stops at the first break; it then checks every anchor and the unsealed
// backlog (at now). Memory stays bounded whatever the length of the log.
// An error means the walk could not be completed, not that the chain is
// broken.
func Verify(ctx context.Context, a store.Audit, anchors []Anchor, now time.Time) (*Report, error) {
	r := &Report{}
	finding := r.walk(ctx, a)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if finding.err != nil {
		return nil, finding.err
	}
	if finding.Kind != "" {
		r.Findings = append(r.Findings, finding.Finding)
	}
	for _, an := range anchors {
		events, err := a.ChainEvents(ctx, an.Seq-1, 1)
		if err != nil {
			return nil, fmt.Errorf("audit: verify anchor %s: %w", an, err)
		}
		switch {
		case len(events) == 0 || events[0].Seq != an.Seq:
			r.Findings = append(r.Findings, Finding{Kind: FindingTruncated, Seq: an.Seq,
				Detail: fmt.Sprintf("anchored seq %d (hash %x) is no longer in the chain: the tail was truncated or the event deleted", an.Seq, an.Hash)})
		case !bytes.Equal(events[0].Hash, an.Hash):
			r.Findings = append(r.Findings, Finding{Kind: FindingRewritten, Seq: an.Seq, EventID: events[0].ID,
				Detail: fmt.Sprintf("anchored hash %x, but event %d at seq %d has hash %x: the chain was rewritten from here or earlier", an.Hash, events[0].ID, an.Seq, events[0].Hash)})
		}
	}
	n, oldest, err := a.UnsealedEventStats(ctx)
	if err != nil {
		return nil, fmt.Errorf("audit: verify: %w", err)
	}
	r.Unsealed, r.OldestUnsealed = n, oldest
	r.SealerStalled = n > 0 && now.Sub(oldest) > StaleUnsealed
	return r, nil
}

type walkResult struct {
	Finding
	err error
}

// walk verifies the links from seq 1 and returns the first break (a zero
// Kind when there is none).
func (r *Report) walk(ctx context.Context, a store.Audit) walkResult {
	prev := GenesisHash
	next := int64(1)
	for {
		events, err := a.ChainEvents(ctx, next-1, verifyPage)
		if err != nil {
			return walkResult{err: fmt.Errorf("audit: verify: %w", err)}
		}
		for _, e := range events {
			if e.Seq != next {
				return walkResult{Finding: Finding{Kind: FindingMissing, Seq: next, EventID: e.ID,
					Detail: fmt.Sprintf("seq %s missing before event %d (seq %d): events were deleted", seqRange(next, e.Seq-1), e.ID, e.Seq)}}
			}
			if !bytes.Equal(e.PrevHash, prev) {
				return walkResult{Finding: Finding{Kind: FindingBrokenLink, Seq: e.Seq, EventID: e.ID,
					Detail: fmt.Sprintf("event %d does not follow seq %d: its prev_hash is %x, the hash of seq %d is %x (events reordered, deleted and renumbered, inserted, or seq %d edited and re-hashed)",
						e.ID, e.Seq-1, e.PrevHash, e.Seq-1, prev, e.Seq-1)}}
			}
			if h := LinkHash(e.Seq, e.PrevHash, e); !bytes.Equal(h, e.Hash) {
				return walkResult{Finding: Finding{Kind: FindingEdited, Seq: e.Seq, EventID: e.ID,
					Detail: fmt.Sprintf("event %d (%s) was changed after sealing: stored hash %x, its contents hash to %x", e.ID, e.Type, e.Hash, h)}}
			}
			prev = e.Hash
			r.Checked++
			r.Head = store.ChainLink{Seq: e.Seq, Hash: e.Hash}
			next++
		}
		if len(events) < verifyPage {
			return walkResult{}
		}
	}
}

func seqRange(from, to int64) string {
	if from == to {
		return strconv.FormatInt(from, 10)
	}
	return fmt.Sprintf("%d..%d", from, to)
}
