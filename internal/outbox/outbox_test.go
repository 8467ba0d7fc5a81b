package outbox

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMissingFileIsEmpty(t *testing.T) {
	got, err := Open(t.TempDir()).List(20)
	if err != nil || len(got) != 0 {
		t.Fatalf("List = %v, %v; want empty, nil", got, err)
	}
}

func TestAppendThenList(t *testing.T) {
	dir := t.TempDir()
	o := Open(dir)
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for i := range 3 {
		e := Entry{Channel: "email", To: "ada@example.com", Subject: fmt.Sprint("subject ", i), Body: "line one\nline two ✓", At: at.Add(time.Duration(i) * time.Minute)}
		if err := o.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.Append(Entry{ID: "sms_1", Channel: "sms", To: "+15550100", Body: "123456"}); err != nil {
		t.Fatal(err)
	}

	info, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("outbox mode %v, want 0600", info.Mode().Perm())
	}

	// A second Outbox (another process: the CLI) reads what the first wrote.
	got, err := Open(dir).List(2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Subject != "subject 2" || got[1].ID != "sms_1" {
		t.Fatalf("List(2) = %+v", got)
	}
	if !got[0].At.Equal(at.Add(2*time.Minute)) || got[0].Body != "line one\nline two ✓" {
		t.Errorf("entry did not round-trip: %+v", got[0])
	}
	if !strings.HasPrefix(got[0].ID, "out_") || got[1].At.IsZero() {
		t.Errorf("missing ID or time not filled in: %+v", got)
	}
	all, err := Open(dir).List(0)
	if err != nil || len(all) != 4 || all[0].Subject != "subject 0" {
		t.Errorf("List(0) = %+v, %v; want all 4, oldest first", all, err)
	}
}

func TestCorruptLinesAreSkipped(t *testing.T) {
	dir := t.TempDir()
	o := Open(dir)
	if err := o.Append(Entry{Channel: "email", To: "a@example.com", Body: "first"}); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, FileName), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(f, "not json\nnull\n{\"channel\": \"email\", \"to\": \"cut")
	f.Close()
	// The cut-short line swallows the next entry's line break; entries after
	// it are readable again.
	if err := o.Append(Entry{Channel: "email", To: "b@example.com", Body: "lost"}); err != nil {
		t.Fatal(err)
	}
	if err := o.Append(Entry{Channel: "email", To: "c@example.com", Body: "third"}); err != nil {
		t.Fatal(err)
	}
	got, err := o.List(10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Body != "first" || got[1].Body != "third" {
		t.Errorf("List = %+v, want first and third", got)
	}
}

func TestCompaction(t *testing.T) {
	dir := t.TempDir()
	o := Open(dir)
	for i := range maxEntries + 1 {
		if err := o.Append(Entry{Channel: "sms", To: "+15550100", Body: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := o.List(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != keepEntries || got[0].Body != fmt.Sprint(maxEntries+1-keepEntries) || got[len(got)-1].Body != fmt.Sprint(maxEntries) {
		t.Fatalf("after compaction: %d entries, %q..%q", len(got), got[0].Body, got[len(got)-1].Body)
	}
	info, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("compacted outbox mode %v, want 0600", info.Mode().Perm())
	}
	if files, _ := os.ReadDir(dir); len(files) != 1 {
		t.Errorf("temporary files left behind: %v", files)
	}
	// Appending goes on from the compacted file.
	if err := o.Append(Entry{Channel: "sms", To: "+15550100", Body: "next"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := o.List(0); len(got) != keepEntries+1 || got[len(got)-1].Body != "next" {
		t.Errorf("after one more append: %d entries", len(got))
	}
}

func TestCompactionCountsExistingFile(t *testing.T) {
	dir := t.TempDir()
	first := Open(dir)
	for i := range maxEntries {
		if err := first.Append(Entry{Channel: "sms", To: "+15550100", Body: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	// A restarted server counts the entries already there.
	restarted := Open(dir)
	if err := restarted.Append(Entry{Channel: "sms", To: "+15550100", Body: "over"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := restarted.List(0); len(got) != keepEntries {
		t.Errorf("%d entries, want %d after compaction", len(got), keepEntries)
	}
}

func TestConcurrentAppends(t *testing.T) {
	o := Open(t.TempDir())
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			if err := o.Append(Entry{Channel: "email", To: fmt.Sprintf("u%d@example.com", i), Body: strings.Repeat("x", 5000)}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, err := o.List(0)
	if err != nil || len(got) != 50 {
		t.Fatalf("List = %d entries, %v; want 50", len(got), err)
	}
}
