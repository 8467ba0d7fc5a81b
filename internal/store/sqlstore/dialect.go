package sqlstore

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// dialect is everything the shared queries need to know about a backend.
type dialect interface {
	// name is "sqlite" or "postgres".
	name() string
	// rebind rewrites the '?' placeholders of query for the driver.
	rebind(query string) string
	// timeArg converts t, already in UTC and truncated to the microsecond,
	// to the value bound for a time column.
	timeArg(t time.Time) any
	// isUniqueViolation reports whether err is a unique or primary-key
	// constraint violation.
	isUniqueViolation(err error) bool
	// scrub returns err without any part that can quote the values of a
	// row, such as PostgreSQL's "Failing row contains (...)" detail.
	scrub(err error) error
}

// normTime is the one time normalisation both backends apply on the way in
// and on the way out: UTC, microsecond precision, no monotonic reading.
func normTime(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}

// rebindDollar rewrites '?' placeholders to $1, $2, ... ; a '?' inside a
// single-quoted literal is left alone.
func rebindDollar(query string) string {
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	inQuote := false
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'':
			inQuote = !inQuote
		case c == '?' && !inQuote:
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// timeCol scans a NOT NULL time column stored either as unix microseconds
// (SQLite) or as timestamptz (PostgreSQL).
type timeCol struct{ dst *time.Time }

func (c timeCol) Scan(src any) error {
	if src == nil {
		return fmt.Errorf("sqlstore: NULL in a NOT NULL time column")
	}
	t, err := toTime(src)
	if err != nil {
		return err
	}
	*c.dst = t
	return nil
}

// nullTimeCol scans a nullable time column; NULL leaves *dst nil.
type nullTimeCol struct{ dst **time.Time }

func (c nullTimeCol) Scan(src any) error {
	if src == nil {
		*c.dst = nil
		return nil
	}
	t, err := toTime(src)
	if err != nil {
		return err
	}
	*c.dst = &t
	return nil
}

func toTime(src any) (time.Time, error) {
	switch v := src.(type) {
	case int64:
		return time.UnixMicro(v).UTC(), nil
	case time.Time:
		return normTime(v), nil
	default:
		return time.Time{}, fmt.Errorf("sqlstore: cannot scan %T into a time", src)
	}
}
