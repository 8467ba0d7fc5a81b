package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// The tamper-evident chain. Every event gets a link once it has committed:
// Seq (1, 2, 3 … without gaps), PrevHash (the previous link's Hash; 32 zero
// bytes for Seq 1) and Hash = LinkHash of the event. Editing, deleting or
// reordering a sealed event breaks a link that Verify recomputes; rewriting
// the whole tail consistently is caught by the anchors (heads the sealer
// logged, or a sink received) that the operator keeps outside the
// database.
//
// Appends stay as they were — inside the business transaction, with no
// chain-wide lock on the request path — and a Sealer in every replica
// links the new events a moment later. The window between commit and
// sealing (about a second while sealers run) is the one where an event is
// protected only by the database itself.

// linkDomain opens every hashed encoding, so a link hash can never be
// mistaken for the hash of anything else (and a format change gets a new
// name).
const linkDomain = "gatehouse.audit.link.v1"

// GenesisHash is the PrevHash of Seq 1: 32 zero bytes.
var GenesisHash = make([]byte, sha256.Size)

// LinkHash is the hash of event e at position seq after the link whose
// hash is prev: SHA-256 over an unambiguous encoding of
//
//	"gatehouse.audit.link.v1", seq, prev, id, type, user_id, session_id,
//	ip, user_agent, at, details
//
// where each string or byte field is its length as a big-endian uint64
// followed by its bytes, each integer (seq, id, at) is 8 bytes big-endian
// (two's complement), at is the event time in UTC unix microseconds, and
// details is the JSON object of the details with keys sorted and no HTML
// escaping ({} when there are none). The hash must be computed from the
// values as the store returns them (times at microsecond precision,
// client text cleaned), which is what both the Sealer and Verify do.
func LinkHash(seq int64, prev []byte, e *store.Event) []byte {
	h := sha256.New()
	var n [8]byte
	putInt := func(v int64) {
		binary.BigEndian.PutUint64(n[:], uint64(v))
		h.Write(n[:])
	}
	putBytes := func(b []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	putBytes([]byte(linkDomain))
	putInt(seq)
	putBytes(prev)
	putInt(e.ID)
	putBytes([]byte(e.Type))
	putBytes([]byte(e.UserID))
	putBytes([]byte(e.SessionID))
	putBytes([]byte(e.IP))
	putBytes([]byte(e.UserAgent))
	putInt(e.At.UTC().UnixMicro())
	putBytes(canonicalDetails(e.Details))
	return h.Sum(nil)
}

// canonicalDetails is details as a JSON object with sorted keys (what
// encoding/json does for a map) and without HTML escaping.
func canonicalDetails(d map[string]string) []byte {
	if len(d) == 0 {
		return []byte("{}")
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(d) // a map[string]string always encodes
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// SealerInterval is how often every replica's sealer looks for unsealed
// events.
const SealerInterval = time.Second

// sealBatch is how many events one sealer transaction links. On SQLite
// the transaction holds the single writer, so it is kept short.
const sealBatch = 256

// Sealer links committed events into the chain. Every replica runs one;
// they serialise on store.Audit.LockAuditChain, and a sealer that loses a
// race anyway (store.ErrConflict from the unique seq) retries at its next
// run.
type Sealer struct {
	db       store.Store
	log      *slog.Logger
	kick     chan struct{}
	unsealed atomic.Int64
}

// NewSealer returns a sealer of db's audit log; log receives the chain
// heads (at Info: the external anchors) and failures.
func NewSealer(db store.Store, log *slog.Logger) *Sealer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sealer{db: db, log: log, kick: make(chan struct{}, 1)}
}

// Run seals every SealerInterval, and whenever Kick is called, until ctx
// is done.
func (s *Sealer) Run(ctx context.Context) {
	t := time.NewTicker(SealerInterval)
	defer t.Stop()
	for {
		if _, err := s.Seal(ctx); err != nil && ctx.Err() == nil {
			if errors.Is(err, store.ErrConflict) {
				s.log.Debug("audit sealer lost a race; retrying", slog.Any("error", err))
			} else {
				s.log.Warn("audit sealing failed", slog.Any("error", err))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.kick:
		}
	}
}

// Kick asks Run to seal now, without waiting.
func (s *Sealer) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Unsealed is the number of unsealed events at the end of the last run
// (the gatehouse_audit_unsealed_events gauge).
func (s *Sealer) Unsealed() int64 { return s.unsealed.Load() }

// Seal links every event unsealed now, one transaction per batch, and
// returns how many it linked. After each batch it logs the new head at
// Info ("audit chain sealed", seq and hash): operators keep those lines
// as anchors for `gatehouse audit verify --anchor`.
func (s *Sealer) Seal(ctx context.Context) (int, error) {
	total := 0
	for {
		// A cheap read first: an idle sealer takes no lock.
		count, _, err := s.db.Audit().UnsealedEventStats(ctx)
		if err != nil {
			return total, fmt.Errorf("audit: seal: %w", err)
		}
		s.unsealed.Store(count)
		if count == 0 {
			return total, nil
		}
		n, head, err := s.sealBatch(ctx)
		if err != nil {
			return total, fmt.Errorf("audit: seal: %w", err)
		}
		total += n
		if n > 0 {
			s.log.Info("audit chain sealed", slog.Int64("seq", head.Seq), slog.String("hash", hex.EncodeToString(head.Hash)), slog.Int("events", n))
		}
		if n < sealBatch {
			if count, _, err := s.db.Audit().UnsealedEventStats(ctx); err == nil {
				s.unsealed.Store(count)
			}
			return total, nil
		}
	}
}

// sealBatch links up to sealBatch unsealed events after the head, in id
// order, in one transaction, and returns how many and the new head.
func (s *Sealer) sealBatch(ctx context.Context) (n int, head store.ChainLink, err error) {
	err = s.db.InTx(ctx, func(tx store.Tx) error {
		a := tx.Audit()
		if err := a.LockAuditChain(ctx); err != nil {
			return err
		}
		h, err := a.ChainHead(ctx)
		if err != nil {
			return err
		}
		events, err := a.UnsealedEvents(ctx, sealBatch)
		if err != nil {
			return err
		}
		seq, prev := h.Seq, h.Hash
		if seq == 0 {
			prev = GenesisHash
		}
		for _, e := range events {
			seq++
			hash := LinkHash(seq, prev, e)
			if err := a.SealEvent(ctx, e.ID, seq, prev, hash); err != nil {
				return err
			}
			prev = hash
		}
		n, head = len(events), store.ChainLink{Seq: seq, Hash: prev}
		return nil
	})
	if err != nil {
		return 0, store.ChainLink{}, err
	}
	return n, head, nil
}
