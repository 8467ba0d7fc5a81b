package gatehouse

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// errEventTooLarge is returned by sseReader for a line or an event over its
// size limit.
var errEventTooLarge = errors.New("server-sent event too large")

// sseEvent is one dispatched Server-Sent Event.
type sseEvent struct {
	name string // the "event" field; "message" when absent
	data []byte // the "data" lines joined with "\n"
}

// sseReader reads Server-Sent Events as specified by the WHATWG HTML
// standard ("Interpreting an event stream"): lines end in CRLF, LF or CR; a
// leading BOM is skipped; lines starting with ':' are comments; a field's
// value loses one leading space; "data" lines are joined with "\n"; a blank
// line dispatches the event, unless it has no data. The "id" and "retry"
// fields and unknown fields are ignored, and an incomplete event at the end
// of the stream is discarded. Any single line, and the data of any single
// event, is limited to max bytes.
type sseReader struct {
	br      *bufio.Reader
	max     int
	line    []byte
	skipLF  bool // the previous line ended in CR: a following LF is part of it
	started bool // the optional BOM has been dealt with
}

func newSSEReader(r io.Reader, max int) *sseReader {
	return &sseReader{br: bufio.NewReader(r), max: max}
}

// next returns the next event. At the end of the stream it returns io.EOF
// (or io.ErrUnexpectedEOF if the stream ended within an event).
func (r *sseReader) next() (sseEvent, error) {
	var (
		name    string
		data    []byte
		hasData bool
	)
	for {
		line, err := r.readLine()
		if err != nil {
			if err == io.EOF && (hasData || name != "") {
				err = io.ErrUnexpectedEOF
			}
			return sseEvent{}, err
		}
		if len(line) == 0 {
			if !hasData {
				name = ""
				continue
			}
			if name == "" {
				name = "message"
			}
			return sseEvent{name: name, data: data}, nil
		}
		if line[0] == ':' {
			continue
		}
		field, value, found := bytes.Cut(line, []byte{':'})
		if found && len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
		switch string(field) {
		case "event":
			name = string(value)
		case "data":
			if hasData {
				data = append(data, '\n')
			}
			if len(data)+len(value) > r.max {
				return sseEvent{}, errEventTooLarge
			}
			data = append(data, value...)
			hasData = true
		}
	}
}

// readLine returns the next line without its terminator. The slice is only
// valid until the next call.
func (r *sseReader) readLine() ([]byte, error) {
	r.line = r.line[:0]
	for {
		b, err := r.br.ReadByte()
		if err != nil {
			// A final line without terminator can only be part of an
			// incomplete event, which is discarded anyway.
			return nil, err
		}
		if r.skipLF {
			r.skipLF = false
			if b == '\n' {
				continue
			}
		}
		switch b {
		case '\n':
			return r.stripBOM(r.line), nil
		case '\r':
			r.skipLF = true
			return r.stripBOM(r.line), nil
		}
		if len(r.line) >= r.max {
			return nil, errEventTooLarge
		}
		r.line = append(r.line, b)
	}
}

func (r *sseReader) stripBOM(line []byte) []byte {
	if !r.started {
		r.started = true
		line = bytes.TrimPrefix(line, []byte("\uFEFF"))
	}
	return line
}
