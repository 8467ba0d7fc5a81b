package risk

import (
	"fmt"
	"strconv"
	"strings"
)

// Decision is what to do with a request. The zero value is not a decision.
type Decision int

// Decisions, from least to most severe.
const (
	Allow Decision = iota + 1
	Audit
	StepUp
	Deny
)

func (d Decision) String() string {
	switch d {
	case Allow:
		return "allow"
	case Audit:
		return "audit"
	case StepUp:
		return "step-up"
	case Deny:
		return "deny"
	default:
		return "Decision(" + strconv.Itoa(int(d)) + ")"
	}
}

// Bands holds the lowest score of each band; scores below Audit allow. Bands
// come from ParseBands or DefaultBands, which satisfy 1 ≤ Audit < StepUp <
// Deny ≤ 100. The zero Bands means DefaultBands.
type Bands struct {
	Audit, StepUp, Deny int
}

// DefaultBands follow the distance trust levels; see the package
// documentation.
var DefaultBands = Bands{Audit: 20, StepUp: 40, Deny: 95}

// Decide maps score to its band's Decision.
func (b Bands) Decide(score int) Decision {
	b = b.orDefault()
	switch {
	case score >= b.Deny:
		return Deny
	case score >= b.StepUp:
		return StepUp
	case score >= b.Audit:
		return Audit
	default:
		return Allow
	}
}

// String formats b as ParseBands reads it, e.g. "audit=20,step-up=40,deny=95".
func (b Bands) String() string {
	b = b.orDefault()
	return fmt.Sprintf("audit=%d,step-up=%d,deny=%d", b.Audit, b.StepUp, b.Deny)
}

func (b Bands) orDefault() Bands {
	if b == (Bands{}) {
		return DefaultBands
	}
	return b
}

// ParseBands parses bands written as comma-separated name=score pairs, such as
// the --risk-bands flag "audit=30,step-up=50,deny=80". All three names (audit,
// step-up, deny) are required, once each, in any order, with scores in 1..100
// that increase from audit to deny.
func ParseBands(s string) (Bands, error) {
	var b Bands
	seen := map[string]bool{}
	for item := range strings.SplitSeq(s, ",") {
		name, value, ok := strings.Cut(item, "=")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok {
			return Bands{}, fmt.Errorf("risk: parse bands %q: %q is not name=score", s, item)
		}
		var field *int
		switch name {
		case "audit":
			field = &b.Audit
		case "step-up":
			field = &b.StepUp
		case "deny":
			field = &b.Deny
		default:
			return Bands{}, fmt.Errorf("risk: parse bands %q: unknown band %q (want audit, step-up or deny)", s, name)
		}
		if seen[name] {
			return Bands{}, fmt.Errorf("risk: parse bands %q: band %q given twice", s, name)
		}
		seen[name] = true
		n, err := strconv.Atoi(value)
		if err != nil || n < 1 || n > 100 {
			return Bands{}, fmt.Errorf("risk: parse bands %q: band %q: score %q is not an integer in 1..100", s, name, value)
		}
		*field = n
	}
	for _, name := range []string{"audit", "step-up", "deny"} {
		if !seen[name] {
			return Bands{}, fmt.Errorf("risk: parse bands %q: band %q missing", s, name)
		}
	}
	if b.Audit >= b.StepUp || b.StepUp >= b.Deny {
		return Bands{}, fmt.Errorf("risk: parse bands %q: scores must increase: audit < step-up < deny", s)
	}
	return b, nil
}
