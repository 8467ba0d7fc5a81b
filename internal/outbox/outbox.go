// Package outbox owns the development outbox: on a laptop without an SMTP
// server or SMS provider, messages are appended to a JSON-lines file in the
// data directory instead of being sent, and `gatehouse outbox` lists them.
// The file keeps only recent messages; it is for development, never for
// production delivery.
package outbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/id"
)

// FileName is the outbox file inside the data directory.
const FileName = "outbox.jsonl"

const (
	// maxEntries is how many entries the file may hold before it is compacted.
	maxEntries = 400
	// keepEntries is how many of the newest entries compaction keeps.
	keepEntries = 200
)

// Entry is one message in the outbox.
type Entry struct {
	ID      string    `json:"id"`
	Channel string    `json:"channel"` // "email" or "sms"
	To      string    `json:"to"`
	Subject string    `json:"subject,omitempty"`
	Body    string    `json:"body"` // the plain-text body
	At      time.Time `json:"at"`
}

// Outbox is the outbox file of one data directory.
type Outbox struct {
	path string

	mu    sync.Mutex
	lines int // lines in the file; -1 until counted
}

// Open returns the outbox kept in dataDir/outbox.jsonl. The file is created
// (mode 0600) on the first Append; dataDir must exist.
func Open(dataDir string) *Outbox {
	return &Outbox{path: filepath.Join(dataDir, FileName), lines: -1}
}

// Append adds e to the outbox, giving it an ID ("out_…") and time if they
// are empty. When the file holds more than 400 entries, it is rewritten with
// the newest 200. Append is safe for concurrent use in one process.
func (o *Outbox) Append(e Entry) error {
	if e.ID == "" {
		e.ID = id.New("out")
	}
	if e.At.IsZero() {
		e.At = time.Now()
	}
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	line = append(line, '\n')

	o.mu.Lock()
	defer o.mu.Unlock()
	if o.lines < 0 {
		data, err := os.ReadFile(o.path)
		if err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("outbox: %w", err)
		}
		o.lines = bytes.Count(data, []byte{'\n'})
	}
	f, err := os.OpenFile(o.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	_, err = f.Write(line)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		o.lines = -1 // a partial write: count again next time
		return fmt.Errorf("outbox: append: %w", err)
	}
	o.lines++
	if o.lines > maxEntries {
		return o.compact()
	}
	return nil
}

// compact rewrites the file with the newest keepEntries entries, atomically:
// a reader sees the old file or the new one. o.mu is held.
func (o *Outbox) compact() error {
	entries, err := o.read()
	if err != nil {
		return err
	}
	entries = entries[max(len(entries)-keepEntries, 0):]
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, e := range entries {
		if err := enc.Encode(e); err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(o.path), FileName+".*.tmp") // mode 0600
	if err != nil {
		return fmt.Errorf("outbox: compact: %w", err)
	}
	_, err = tmp.Write(buf.Bytes())
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), o.path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("outbox: compact: %w", err)
	}
	o.lines = len(entries)
	return nil
}

// List returns the newest n entries (all of them if n <= 0), oldest first.
// A missing file is an empty outbox; a corrupt line is skipped.
func (o *Outbox) List(n int) ([]Entry, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	entries, err := o.read()
	if err != nil {
		return nil, err
	}
	if n > 0 {
		entries = entries[max(len(entries)-n, 0):]
	}
	return entries, nil
}

// read parses the file, skipping lines that are not entries (a write cut
// short, a hand edit).
func (o *Outbox) read() ([]Entry, error) {
	data, err := os.ReadFile(o.path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	var entries []Entry
	for line := range bytes.Lines(data) {
		var e Entry
		if json.Unmarshal(line, &e) == nil && e.Channel != "" {
			entries = append(entries, e)
		}
	}
	return entries, nil
}
