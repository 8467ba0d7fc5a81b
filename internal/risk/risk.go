// Package risk owns the risk score of a sign-in or a refresh: it compares the
// request with the session's or the user's history, scores what changed and
// maps the score through configurable bands to a Decision. It is pure logic;
// the caller looks up locations (package geo), loads history, and acts on the
// Decision:
//
//	Allow   proceed
//	Audit   proceed and record an audit event (tell the user about a new device)
//	StepUp  require a fresh second factor; a refresh answers 401 step_up_required
//	Deny    refuse, and revoke the session
//
// # Signals
//
// A move is measured from the most recent earlier location to the current one,
// less both locations' accuracy radii so that coarse locations do not invent
// distance. Distance bands follow the trust levels: under 50 km high trust,
// 50–100 km medium, 100 km or more low. Travel is impossible when the implied
// speed exceeds 1000 km/h over at least 100 km. IP addresses compare by /24
// (IPv4) or /64 (IPv6); user agents by browser and OS family, never version.
//
// # Score
//
// Signals fall into groups. Within a group only the strongest signal counts
// (a move of 100 km implies another network; a new device may well run another
// browser); the groups add up and the total is capped at 100.
//
//	group     reason              weight
//	network   ip_changed               5
//	          asn_changed             10
//	distance  distance_50km           20   50 km ≤ distance < 100 km
//	          distance_100km          40   distance ≥ 100 km
//	          location_unknown        40   known before, not placeable now
//	client    new_device              20
//	          ua_family_changed       40
//	travel    impossible_travel       25
//
// With DefaultBands (audit=20,step-up=40,deny=95):
//
//	known device, < 50 km, at most a new IP or ASN     0–10   allow
//	50–100 km                                         20–30   audit
//	new device                                        20–30   audit
//	new device and 50–100 km                          40–50   step-up
//	100 km or more                                    40–50   step-up
//	another browser or OS family                      40–50   step-up
//	impossible travel                                 65–75   step-up
//	100 km or more and another browser or OS family   80–90   step-up
//	impossible travel and a new device, same ASN      85–90   step-up
//	impossible travel, a new device and another ASN      95   deny
//	impossible travel and another browser or OS family  100   deny
//
// Without impossible travel a score never exceeds 90, so the default bands deny
// only impossible travel together with another browser or OS family, or with
// both a new device and another ASN.
package risk

import (
	"math"
	"net/netip"
	"time"

	"github.com/mileusna/useragent"

	"github.com/gatehouse-auth/gatehouse/internal/geo"
)

// Thresholds of the location signals.
const (
	// MediumTrustKm is the distance from which a move counts
	// (distance_50km).
	MediumTrustKm = 50.0
	// LowTrustKm is the distance from which a move counts as far
	// (distance_100km), and the least distance of impossible travel.
	LowTrustKm = 100.0
	// ImpossibleSpeedKmh is the implied speed above which travel is
	// impossible: faster than an airliner.
	ImpossibleSpeedKmh = 1000.0
	// MinElapsed is the least time assumed between two observations when
	// computing a speed, so that near-simultaneous requests do not divide by
	// almost zero.
	MinElapsed = time.Minute
)

// earthRadiusKm is the mean Earth radius (IUGG).
const earthRadiusKm = 6371.0088

// Observation is one request as seen by the server.
type Observation struct {
	At        time.Time
	IP        netip.Addr
	UserAgent string
	// Loc is the location of IP; the zero value when unknown.
	Loc geo.Location
	// Device is an opaque identifier of a known device (a device cookie, or
	// on refresh the identifier bound to the session); empty means unknown,
	// which always counts as a new device.
	Device string
}

// Signals is what changed between the history and the current request.
type Signals struct {
	NewDevice bool
	// UAFamilyChanged reports another browser or OS family; versions do not
	// count.
	UAFamilyChanged bool
	// IPChanged reports another /24 (IPv4) or /64 (IPv6) network.
	IPChanged bool
	// ASNChanged reports another autonomous system; false unless both are
	// known.
	ASNChanged bool
	// DistanceKm is the distance from the most recent location less both
	// accuracy radii, floored at 0; 0 unless both locations are known.
	DistanceKm float64
	// SpeedKmh is DistanceKm over the time elapsed (at least MinElapsed).
	SpeedKmh float64
	// ImpossibleTravel reports SpeedKmh above ImpossibleSpeedKmh over a
	// DistanceKm of at least LowTrustKm.
	ImpossibleTravel bool
	// LocationUnknown reports that the most recent location was known and
	// the current one is not (an address the database cannot place, or
	// only to within more than LowTrustKm): it weighs like a move of
	// LowTrustKm, or hopping through unplaceable addresses would launder
	// any move.
	LocationUnknown bool
}

// Compare compares a refresh cur with the session's previous observation prev.
// It is CompareHistory with a history of one.
func Compare(prev, cur Observation) Signals {
	return CompareHistory([]Observation{prev}, cur)
}

// CompareHistory compares a sign-in cur with the user's history, in any order:
// the device is new unless cur.Device appears in history; IP, ASN and user
// agent family changed unless some entry shares them; distance and speed are
// measured from the most recent entry. An empty history (a first sign-in)
// gives only NewDevice.
func CompareHistory(history []Observation, cur Observation) Signals {
	sig := Signals{NewDevice: true}
	if len(history) == 0 {
		return sig
	}
	curFamily := uaFamily(cur.UserAgent)
	curNet, curNetOK := network(cur.IP)
	var uaShared, ipSeen, ipShared, asnSeen, asnShared bool
	latest := history[0]
	for _, h := range history {
		if !h.At.Before(latest.At) {
			latest = h
		}
		if cur.Device != "" && h.Device == cur.Device {
			sig.NewDevice = false
		}
		if !uaShared && (h.UserAgent == cur.UserAgent || uaFamily(h.UserAgent) == curFamily) {
			uaShared = true
		}
		if n, ok := network(h.IP); ok {
			ipSeen = true
			ipShared = ipShared || n == curNet
		}
		if h.Loc.ASN != 0 {
			asnSeen = true
			asnShared = asnShared || h.Loc.ASN == cur.Loc.ASN
		}
	}
	sig.UAFamilyChanged = !uaShared
	sig.IPChanged = curNetOK && ipSeen && !ipShared
	sig.ASNChanged = cur.Loc.ASN != 0 && asnSeen && !asnShared

	if latest.Loc.Known && (!cur.Loc.Known || cur.Loc.AccuracyKm > LowTrustKm) {
		sig.LocationUnknown = true
	}
	if latest.Loc.Known && cur.Loc.Known {
		d := haversineKm(latest.Loc, cur.Loc) - float64(latest.Loc.AccuracyKm) - float64(cur.Loc.AccuracyKm)
		sig.DistanceKm = max(d, 0)
		elapsed := max(cur.At.Sub(latest.At).Abs(), MinElapsed)
		sig.SpeedKmh = sig.DistanceKm / elapsed.Hours()
		sig.ImpossibleTravel = sig.SpeedKmh > ImpossibleSpeedKmh && sig.DistanceKm >= LowTrustKm
	}
	return sig
}

// family is a user agent's browser and OS, without versions.
type family struct{ browser, os string }

func uaFamily(ua string) family {
	p := useragent.Parse(ua)
	return family{browser: p.Name, os: p.OS}
}

// network returns the /24 or /64 around addr; false if addr is invalid.
func network(addr netip.Addr) (netip.Prefix, bool) {
	if !addr.IsValid() {
		return netip.Prefix{}, false
	}
	addr = addr.Unmap()
	bits := 64
	if addr.Is4() {
		bits = 24
	}
	p, err := addr.Prefix(bits)
	return p, err == nil
}

// haversineKm is the great-circle distance between a and b.
func haversineKm(a, b geo.Location) float64 {
	lat1, lat2 := a.Lat*math.Pi/180, b.Lat*math.Pi/180
	dLat := lat2 - lat1
	dLon := (b.Lon - a.Lon) * math.Pi / 180
	h := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(lat1)*math.Cos(lat2)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * earthRadiusKm * math.Asin(math.Sqrt(min(h, 1)))
}
