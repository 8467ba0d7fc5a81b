package risk

import (
	"net/netip"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/geo"
)

// Locator finds an address's approximate location (*geo.DB; a nil *geo.DB
// knows nothing, which turns the location signals off).
type Locator interface {
	Lookup(netip.Addr) geo.Location
}

// Engine is the configured scorer: a locator and the bands.
type Engine struct {
	geo   Locator
	bands Bands
}

// NewEngine returns an Engine locating with loc and deciding with b.
func NewEngine(loc Locator, b Bands) *Engine { return &Engine{geo: loc, bands: b.orDefault()} }

// Observe builds the observation of a request or of a stored sign-in: at,
// the client address (text, as stored; unparsable is unknown), the user
// agent, and an opaque device identifier ("" for a device not known).
func (e *Engine) Observe(at time.Time, ip, userAgent, device string) Observation {
	o := Observation{At: at, UserAgent: userAgent, Device: device}
	if a, err := netip.ParseAddr(ip); err == nil {
		o.IP = a.Unmap()
		if e.geo != nil {
			o.Loc = e.geo.Lookup(o.IP)
		}
	}
	return o
}

// Assess scores a refresh cur against the session's history and decides.
func (e *Engine) Assess(history []Observation, cur Observation) Assessment {
	return Assess(CompareHistory(history, cur), e.bands)
}

// AssessSignIn scores a sign-in cur against the account's earlier ones. A
// browser or OS family the account never used is a new device there (a
// second computer, a phone), not the strong signal it is when one
// session's refresh token changes hands.
func (e *Engine) AssessSignIn(history []Observation, cur Observation) Assessment {
	sig := CompareHistory(history, cur)
	if sig.UAFamilyChanged {
		sig.UAFamilyChanged, sig.NewDevice = false, true
	}
	return Assess(sig, e.bands)
}

// Place is a location's label for people ("Lyon, FR"), "" when unknown.
func Place(l geo.Location) string {
	switch {
	case l.City != "" && l.Country != "":
		return l.City + ", " + l.Country
	default:
		return l.Country
	}
}
