package risk

// Reasons name the signals in an Assessment. They are stable: audit events and
// operators' queries depend on them.
const (
	ReasonNewDevice        = "new_device"
	ReasonUAFamilyChanged  = "ua_family_changed"
	ReasonIPChanged        = "ip_changed"
	ReasonASNChanged       = "asn_changed"
	ReasonDistance50km     = "distance_50km"
	ReasonDistance100km    = "distance_100km"
	ReasonImpossibleTravel = "impossible_travel"
	ReasonLocationUnknown  = "location_unknown"
)

// Weights of the signals; the package documentation explains them.
const (
	weightIPChanged        = 5
	weightASNChanged       = 10
	weightDistance50km     = 20
	weightDistance100km    = 40
	weightNewDevice        = 20
	weightUAFamilyChanged  = 40
	weightImpossibleTravel = 25
)

// Score returns the risk score of s, from 0 (nothing changed) to 100.
func Score(s Signals) int {
	network := max(weight(s.IPChanged, weightIPChanged), weight(s.ASNChanged, weightASNChanged))
	distance := max(
		weight(s.DistanceKm >= MediumTrustKm, weightDistance50km),
		weight(s.DistanceKm >= LowTrustKm || s.LocationUnknown, weightDistance100km),
	)
	client := max(weight(s.NewDevice, weightNewDevice), weight(s.UAFamilyChanged, weightUAFamilyChanged))
	travel := weight(s.ImpossibleTravel, weightImpossibleTravel)
	return min(network+distance+client+travel, 100)
}

func weight(on bool, w int) int {
	if on {
		return w
	}
	return 0
}

// Assessment is the outcome of scoring a request.
type Assessment struct {
	Score    int
	Decision Decision
	// Reasons lists the signals present, in a fixed order; nil if none.
	Reasons []string
}

// Assess scores s and decides with bands b.
func Assess(s Signals, b Bands) Assessment {
	score := Score(s)
	return Assessment{Score: score, Decision: b.Decide(score), Reasons: reasons(s)}
}

func reasons(s Signals) []string {
	var r []string
	add := func(on bool, reason string) {
		if on {
			r = append(r, reason)
		}
	}
	add(s.NewDevice, ReasonNewDevice)
	add(s.UAFamilyChanged, ReasonUAFamilyChanged)
	add(s.IPChanged, ReasonIPChanged)
	add(s.ASNChanged, ReasonASNChanged)
	add(s.DistanceKm >= MediumTrustKm && s.DistanceKm < LowTrustKm, ReasonDistance50km)
	add(s.DistanceKm >= LowTrustKm, ReasonDistance100km)
	add(s.ImpossibleTravel, ReasonImpossibleTravel)
	add(s.LocationUnknown, ReasonLocationUnknown)
	return r
}
