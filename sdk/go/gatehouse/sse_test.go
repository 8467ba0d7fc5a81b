package gatehouse

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

func readEvents(r io.Reader, max int) ([]sseEvent, error) {
	sr := newSSEReader(r, max)
	var out []sseEvent
	for {
		ev, err := sr.next()
		if err != nil {
			return out, err
		}
		out = append(out, ev)
	}
}

func TestSSEReader(t *testing.T) {
	ev := func(name, data string) sseEvent { return sseEvent{name: name, data: []byte(data)} }
	cases := []struct {
		name string
		in   string
		want []sseEvent
		err  error
	}{
		{"basic", "event: snapshot\ndata: {}\n\n", []sseEvent{ev("snapshot", "{}")}, io.EOF},
		{"default type", "data: x\n\n", []sseEvent{ev("message", "x")}, io.EOF},
		{"multi-line data", "data: a\ndata: b\n\n", []sseEvent{ev("message", "a\nb")}, io.EOF},
		{"CRLF", "event: a\r\ndata: x\r\n\r\n", []sseEvent{ev("a", "x")}, io.EOF},
		{"CR", "event: a\rdata: x\r\r", []sseEvent{ev("a", "x")}, io.EOF},
		{"mixed endings", "data: 1\r\n\ndata: 2\r\rdata: 3\n\r\n", []sseEvent{ev("message", "1"), ev("message", "2"), ev("message", "3")}, io.EOF},
		{"comments", ": hi\ndata: x\n: there\n\n", []sseEvent{ev("message", "x")}, io.EOF},
		{"comment only", ": keep-alive\n\n", nil, io.EOF},
		{"no space after colon", "data:x\n\n", []sseEvent{ev("message", "x")}, io.EOF},
		{"only one space stripped", "data:  x\n\n", []sseEvent{ev("message", " x")}, io.EOF},
		{"field without colon", "data\n\n", []sseEvent{ev("message", "")}, io.EOF},
		{"empty data", "data:\n\n", []sseEvent{ev("message", "")}, io.EOF},
		{"value with colon", "event: a:b\ndata: c:d\n\n", []sseEvent{ev("a:b", "c:d")}, io.EOF},
		{"no data, no dispatch, type reset", "event: a\n\ndata: y\n\n", []sseEvent{ev("message", "y")}, io.EOF},
		{"id, retry and unknown fields ignored", "id: 1\nretry: 10\nfoo: bar\ndata: x\n\n", []sseEvent{ev("message", "x")}, io.EOF},
		{"field names are case-sensitive", "Data: x\nEVENT: y\n\n", nil, io.EOF},
		{"BOM at start", "\ufeffdata: x\n\n", []sseEvent{ev("message", "x")}, io.EOF},
		{"BOM only at start", "data: x\n\n\ufeffdata: y\n\n", []sseEvent{ev("message", "x")}, io.EOF},
		{"incomplete event", "data: x\n", nil, io.ErrUnexpectedEOF},
		{"incomplete line", "data: x", nil, io.EOF},
		{"line too long", "data: " + strings.Repeat("x", 40) + "\n\n", nil, errEventTooLarge},
		{"event too large", "data: 0123456789\ndata: 0123456789\ndata: 0123456789\ndata: 0123456789\n\n", nil, errEventTooLarge},
		{"long comments are bounded too", ": " + strings.Repeat("x", 40) + "\n", nil, errEventTooLarge},
		{"at the limit", "data:" + strings.Repeat("x", 32) + "\n\n", []sseEvent{ev("message", strings.Repeat("x", 32))}, io.EOF},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range []io.Reader{strings.NewReader(tc.in), iotest.OneByteReader(strings.NewReader(tc.in))} {
				got, err := readEvents(r, 37)
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				if !eventsEqual(got, tc.want) {
					t.Fatalf("events = %q, want %q", got, tc.want)
				}
			}
		})
	}
}

func eventsEqual(a, b []sseEvent) bool {
	return slices.EqualFunc(a, b, func(x, y sseEvent) bool { return x.name == y.name && bytes.Equal(x.data, y.data) })
}

// FuzzSSEReader: arbitrary streams never panic, respect the size limit, and
// parse the same however they are split into reads.
func FuzzSSEReader(f *testing.F) {
	for _, s := range []string{
		"event: snapshot\ndata: {\"revoked\":[],\"heartbeat\":5}\n\n",
		"event: revoke\r\ndata: {\"sid\":\"ses_y\",\"until\":1730000600}\r\n\r\n",
		": comment\revent: heartbeat\rdata: {\"at\":1}\r\r",
		"\ufeffdata\ndata:\ndata: x\n\n",
		"id: 1\nretry: 5\n\n\n",
	} {
		f.Add([]byte(s))
	}
	const max = 64
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := readEvents(bytes.NewReader(in), max)
		if err == nil {
			t.Fatal("no terminal error")
		}
		for _, ev := range got {
			if len(ev.data) > max || len(ev.name) > max {
				t.Fatalf("event over the limit: %d/%d bytes", len(ev.name), len(ev.data))
			}
			if strings.ContainsAny(ev.name, "\r\n") || ev.name == "" {
				t.Fatalf("bad event name %q", ev.name)
			}
		}
		got2, err2 := readEvents(iotest.OneByteReader(bytes.NewReader(in)), max)
		if !eventsEqual(got, got2) || !errors.Is(err2, err) {
			t.Fatalf("split reads differ: %q %v vs %q %v", got, err, got2, err2)
		}
	})
}
