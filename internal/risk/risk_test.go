package risk_test

import (
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse-auth/gatehouse/internal/geo"
	"github.com/gatehouse-auth/gatehouse/internal/risk"
)

var (
	paris      = geo.Location{Known: true, Lat: 48.8566, Lon: 2.3522, City: "Paris", Country: "FR"}
	versailles = geo.Location{Known: true, Lat: 48.8049, Lon: 2.1204, City: "Versailles", Country: "FR"}
	chartres   = geo.Location{Known: true, Lat: 48.4439, Lon: 1.4890, City: "Chartres", Country: "FR"}
	orleans    = geo.Location{Known: true, Lat: 47.9030, Lon: 1.9093, City: "Orléans", Country: "FR"}
	lyon       = geo.Location{Known: true, Lat: 45.7640, Lon: 4.8357, City: "Lyon", Country: "FR"}
	newYork    = geo.Location{Known: true, Lat: 40.7128, Lon: -74.0060, City: "New York", Country: "US"}
	tokyo      = geo.Location{Known: true, Lat: 35.6762, Lon: 139.6503, City: "Tokyo", Country: "JP"}
)

const (
	chromeWin120 = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
	chromeWin131 = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	edgeWin      = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0"
	firefoxWin   = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
	chromeDroid  = "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36"
	safariMac    = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Safari/605.1.15"
	safariIOS    = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// at returns loc with ASN asn.
func at(loc geo.Location, asn uint) geo.Location {
	loc.ASN = asn
	return loc
}

// home is the session's last refresh: a known laptop in Paris.
var home = risk.Observation{
	At:        t0,
	IP:        netip.MustParseAddr("81.250.1.2"),
	UserAgent: chromeWin120,
	Loc:       at(paris, 3215),
	Device:    "laptop",
}

// from returns home moved to loc, with another IP, after d.
func from(loc geo.Location, asn uint, d time.Duration) risk.Observation {
	o := home
	o.At = t0.Add(d)
	o.IP = netip.MustParseAddr("203.0.113.7")
	o.Loc = at(loc, asn)
	return o
}

func TestHaversine(t *testing.T) {
	tests := []struct {
		name   string
		to     geo.Location
		wantKm float64
	}{
		{"same-place", paris, 0},
		{"versailles", versailles, 17.9},
		{"lyon", lyon, 391.5},
		{"new-york", newYork, 5837},
		{"tokyo", tokyo, 9712},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cur := home
			cur.Loc = tt.to
			got := risk.Compare(risk.Observation{At: t0, Loc: paris}, cur).DistanceKm
			if math.Abs(got-tt.wantKm) > 0.005*tt.wantKm+0.001 {
				t.Errorf("Paris → %s = %.1f km, want %.1f km ± 0.5%%", tt.name, got, tt.wantKm)
			}
		})
	}
}

// TestAttackUnplaceableAddressAfterKnownStepsUp: hopping through an
// address the database cannot place must not launder a move: losing a
// known location weighs like a move of 100 km.
func TestAttackUnplaceableAddressAfterKnownStepsUp(t *testing.T) {
	prev, cur := home, home
	prev.Loc, cur.Loc = paris, geo.Location{}
	cur.At = t0.Add(time.Minute)
	if a := risk.Assess(risk.Compare(prev, cur), risk.DefaultBands); a.Decision != risk.StepUp {
		t.Fatalf("decision %v (%v), want step-up", a.Decision, a.Reasons)
	}
	// Never known: nothing to lose.
	prev.Loc = geo.Location{}
	if a := risk.Assess(risk.Compare(prev, cur), risk.DefaultBands); a.Decision != risk.Allow {
		t.Fatalf("decision %v (%v) without any location, want allow", a.Decision, a.Reasons)
	}
}

func TestDistanceAccuracyDiscount(t *testing.T) {
	withAccuracy := func(loc geo.Location, km int) geo.Location {
		loc.AccuracyKm = km
		return loc
	}
	tests := []struct {
		name       string
		prev, cur  geo.Location
		wantKm     float64
		wantReason string
	}{
		{"precise", paris, lyon, 391.5, risk.ReasonDistance100km},
		{"one-coarse", withAccuracy(paris, 100), lyon, 291.5, risk.ReasonDistance100km},
		{"both-coarse", withAccuracy(paris, 100), withAccuracy(lyon, 100), 191.5, risk.ReasonDistance100km},
		{"coarse-leaves-50km-band", withAccuracy(paris, 300), withAccuracy(lyon, 20), 71.5, risk.ReasonDistance50km},
		// A current radius over 100 km places nothing: the laundering
		// guard below.
		{"radius-covers-move", withAccuracy(paris, 200), withAccuracy(lyon, 200), 0, risk.ReasonLocationUnknown},
		{"short-move-swallowed", withAccuracy(paris, 10), withAccuracy(versailles, 10), 0, ""},
		{"prev-unknown", geo.Location{}, lyon, 0, ""},
		{"cur-unknown", paris, geo.Location{Country: "FR"}, 0, risk.ReasonLocationUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prev, cur := home, home
			prev.Loc, cur.Loc = tt.prev, tt.cur
			cur.At = t0.Add(time.Minute) // fast enough to be impossible
			sig := risk.Compare(prev, cur)
			if math.Abs(sig.DistanceKm-tt.wantKm) > 0.5 {
				t.Errorf("DistanceKm = %.1f, want %.1f", sig.DistanceKm, tt.wantKm)
			}
			if tt.wantKm == 0 && (sig.SpeedKmh != 0 || sig.ImpossibleTravel) {
				t.Errorf("SpeedKmh = %.0f, ImpossibleTravel = %v, want none", sig.SpeedKmh, sig.ImpossibleTravel)
			}
			var want []string
			if tt.wantReason != "" {
				want = []string{tt.wantReason}
			}
			if tt.wantReason == risk.ReasonDistance100km {
				want = append(want, risk.ReasonImpossibleTravel)
			}
			if diff := cmp.Diff(want, risk.Assess(sig, risk.DefaultBands).Reasons); diff != "" {
				t.Errorf("Reasons mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestImpossibleTravelRequiresStepUp(t *testing.T) {
	lyonKm := risk.Compare(home, from(lyon, 3215, time.Hour)).DistanceKm
	// elapsed returns the time to cover the Paris–Lyon distance at kmh.
	elapsed := func(kmh float64) time.Duration {
		return time.Duration(lyonKm / kmh * float64(time.Hour))
	}
	tests := []struct {
		name           string
		cur            risk.Observation
		wantImpossible bool
		want           risk.Decision
	}{
		{"new-york-in-1h", from(newYork, 3215, time.Hour), true, risk.StepUp},
		{"new-york-in-1h-new-asn", from(newYork, 7922, time.Hour), true, risk.StepUp},
		{"tokyo-in-2h", from(tokyo, 3215, 2*time.Hour), true, risk.StepUp},
		{"tokyo-in-2h-before", from(tokyo, 3215, -2*time.Hour), true, risk.StepUp},
		{"simultaneous", from(lyon, 3215, 0), true, risk.StepUp},
		{"speed-above-threshold", from(lyon, 3215, elapsed(risk.ImpossibleSpeedKmh*1.005)), true, risk.StepUp},
		{"speed-below-threshold", from(lyon, 3215, elapsed(risk.ImpossibleSpeedKmh*0.995)), false, risk.StepUp},
		{"new-york-by-plane", from(newYork, 3215, 9*time.Hour), false, risk.StepUp},
		{"fast-but-under-100km", from(chartres, 3215, time.Minute), false, risk.Audit},
		{"orleans-fast", from(orleans, 3215, time.Minute), true, risk.StepUp},
		{"orleans-coarse-under-100km", func() risk.Observation {
			o := from(orleans, 3215, time.Minute)
			o.Loc.AccuracyKm = 11
			return o
		}(), false, risk.Audit},
		{"versailles-at-once", from(versailles, 3215, 0), false, risk.Allow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig := risk.Compare(home, tt.cur)
			if sig.ImpossibleTravel != tt.wantImpossible {
				t.Errorf("ImpossibleTravel = %v (%.0f km at %.0f km/h), want %v", sig.ImpossibleTravel, sig.DistanceKm, sig.SpeedKmh, tt.wantImpossible)
			}
			if got := risk.Assess(sig, risk.DefaultBands); got.Decision != tt.want {
				t.Errorf("Decision = %v (score %d, %v), want %v", got.Decision, got.Score, got.Reasons, tt.want)
			}
		})
	}
}

func TestBandEdges(t *testing.T) {
	tests := []struct {
		name        string
		sig         risk.Signals
		wantScore   int
		wantReasons []string
		want        risk.Decision
	}{
		{"allow/nothing", risk.Signals{}, 0, nil, risk.Allow},
		{"allow/ip-and-asn", risk.Signals{IPChanged: true, ASNChanged: true}, 10, []string{"ip_changed", "asn_changed"}, risk.Allow},
		{"allow/49.9km", risk.Signals{DistanceKm: 49.9, IPChanged: true, ASNChanged: true}, 10, []string{"ip_changed", "asn_changed"}, risk.Allow},
		{"audit/50km", risk.Signals{DistanceKm: 50}, 20, []string{"distance_50km"}, risk.Audit},
		{"audit/99.9km", risk.Signals{DistanceKm: 99.9, IPChanged: true, ASNChanged: true}, 30, []string{"ip_changed", "asn_changed", "distance_50km"}, risk.Audit},
		{"step-up/100km", risk.Signals{DistanceKm: 100}, 40, []string{"distance_100km"}, risk.StepUp},
		{"audit/new-device", risk.Signals{NewDevice: true}, 20, []string{"new_device"}, risk.Audit},
		{"audit/new-device-new-network", risk.Signals{NewDevice: true, IPChanged: true, ASNChanged: true}, 30, []string{"new_device", "ip_changed", "asn_changed"}, risk.Audit},
		{"step-up/new-device-50km", risk.Signals{NewDevice: true, DistanceKm: 50}, 40, []string{"new_device", "distance_50km"}, risk.StepUp},
		{"step-up/ua-family", risk.Signals{UAFamilyChanged: true}, 40, []string{"ua_family_changed"}, risk.StepUp},
		{"step-up/new-device-another-family", risk.Signals{NewDevice: true, UAFamilyChanged: true}, 40, []string{"new_device", "ua_family_changed"}, risk.StepUp},
		{"step-up/100km-ua-family-asn", risk.Signals{DistanceKm: 100, UAFamilyChanged: true, NewDevice: true, IPChanged: true, ASNChanged: true}, 90, []string{"new_device", "ua_family_changed", "ip_changed", "asn_changed", "distance_100km"}, risk.StepUp},
		{"step-up/impossible", risk.Signals{DistanceKm: 100, ImpossibleTravel: true, IPChanged: true, ASNChanged: true}, 75, []string{"ip_changed", "asn_changed", "distance_100km", "impossible_travel"}, risk.StepUp},
		{"step-up/impossible-new-device-same-asn", risk.Signals{DistanceKm: 5000, ImpossibleTravel: true, NewDevice: true, IPChanged: true}, 90, []string{"new_device", "ip_changed", "distance_100km", "impossible_travel"}, risk.StepUp},
		{"deny/impossible-new-device-asn", risk.Signals{DistanceKm: 5000, ImpossibleTravel: true, NewDevice: true, ASNChanged: true}, 95, []string{"new_device", "asn_changed", "distance_100km", "impossible_travel"}, risk.Deny},
		{"deny/impossible-ua-family", risk.Signals{DistanceKm: 5000, ImpossibleTravel: true, UAFamilyChanged: true}, 100, []string{"ua_family_changed", "distance_100km", "impossible_travel"}, risk.Deny},
		{"deny/everything-capped", risk.Signals{NewDevice: true, UAFamilyChanged: true, IPChanged: true, ASNChanged: true, DistanceKm: 9000, SpeedKmh: 9000, ImpossibleTravel: true}, 100, []string{"new_device", "ua_family_changed", "ip_changed", "asn_changed", "distance_100km", "impossible_travel"}, risk.Deny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := risk.Assessment{Score: tt.wantScore, Decision: tt.want, Reasons: tt.wantReasons}
			if diff := cmp.Diff(want, risk.Assess(tt.sig, risk.DefaultBands)); diff != "" {
				t.Errorf("Assess mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecideEdges(t *testing.T) {
	for _, b := range []risk.Bands{risk.DefaultBands, {}, {Audit: 30, StepUp: 50, Deny: 80}, {Audit: 1, StepUp: 2, Deny: 100}} {
		eff := b
		if b == (risk.Bands{}) {
			eff = risk.DefaultBands
		}
		edges := []struct {
			score int
			want  risk.Decision
		}{
			{0, risk.Allow},
			{eff.Audit - 1, risk.Allow},
			{eff.Audit, risk.Audit},
			{eff.StepUp - 1, risk.Audit},
			{eff.StepUp, risk.StepUp},
			{eff.Deny - 1, risk.StepUp},
			{eff.Deny, risk.Deny},
			{100, risk.Deny},
		}
		for _, e := range edges {
			if got := b.Decide(e.score); got != e.want {
				t.Errorf("%v.Decide(%d) = %v, want %v", b, e.score, got, e.want)
			}
		}
	}
}

func TestUAFamilyChange(t *testing.T) {
	tests := []struct {
		name     string
		prev     string
		cur      string
		want     bool
		decision risk.Decision
	}{
		{"same/identical", chromeWin120, chromeWin120, false, risk.Allow},
		{"same/newer-chrome", chromeWin120, chromeWin131, false, risk.Allow},
		{"same/empty", "", "", false, risk.Allow},
		{"changed/chrome-to-firefox", chromeWin120, firefoxWin, true, risk.StepUp},
		{"changed/chrome-to-edge", chromeWin131, edgeWin, true, risk.StepUp},
		{"changed/windows-to-android", chromeWin131, chromeDroid, true, risk.StepUp},
		{"changed/macos-to-ios", safariMac, safariIOS, true, risk.StepUp},
		{"changed/browser-to-curl", chromeWin120, "curl/8.5.0", true, risk.StepUp},
		{"changed/stripped", chromeWin120, "", true, risk.StepUp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prev, cur := home, home
			prev.UserAgent, cur.UserAgent = tt.prev, tt.cur
			cur.At = t0.Add(time.Hour)
			sig := risk.Compare(prev, cur)
			if sig.UAFamilyChanged != tt.want {
				t.Errorf("UAFamilyChanged = %v, want %v", sig.UAFamilyChanged, tt.want)
			}
			if got := risk.Assess(sig, risk.DefaultBands).Decision; got != tt.decision {
				t.Errorf("Decision = %v, want %v", got, tt.decision)
			}
		})
	}
}

func TestCompare(t *testing.T) {
	with := func(f func(*risk.Observation)) risk.Observation {
		o := home
		o.At = t0.Add(time.Hour)
		f(&o)
		return o
	}
	addr := netip.MustParseAddr
	tests := []struct {
		name      string
		prev, cur risk.Observation
		want      risk.Signals
	}{
		{"same", home, with(func(*risk.Observation) {}), risk.Signals{}},
		{"ip/same-v4-24", home, with(func(o *risk.Observation) { o.IP = addr("81.250.1.254") }), risk.Signals{}},
		{"ip/other-v4-24", home, with(func(o *risk.Observation) { o.IP = addr("81.250.2.2") }), risk.Signals{IPChanged: true}},
		{"ip/v4-mapped", home, with(func(o *risk.Observation) { o.IP = addr("::ffff:81.250.1.9") }), risk.Signals{}},
		{"ip/v4-to-v6", home, with(func(o *risk.Observation) { o.IP = addr("2a01:cb00:1:2::1") }), risk.Signals{IPChanged: true}},
		{
			"ip/same-v6-64",
			with(func(o *risk.Observation) { o.At = t0; o.IP = addr("2a01:cb00:1:2::1") }),
			with(func(o *risk.Observation) { o.IP = addr("2a01:cb00:1:2:ffff::1") }),
			risk.Signals{},
		},
		{
			"ip/other-v6-64",
			with(func(o *risk.Observation) { o.At = t0; o.IP = addr("2a01:cb00:1:2::1") }),
			with(func(o *risk.Observation) { o.IP = addr("2a01:cb00:1:3::1") }),
			risk.Signals{IPChanged: true},
		},
		{"ip/cur-unknown", home, with(func(o *risk.Observation) { o.IP = netip.Addr{} }), risk.Signals{}},
		{"asn/other", home, with(func(o *risk.Observation) { o.Loc.ASN = 12322 }), risk.Signals{ASNChanged: true}},
		{"asn/cur-unknown", home, with(func(o *risk.Observation) { o.Loc.ASN = 0 }), risk.Signals{}},
		{"asn/prev-unknown", with(func(o *risk.Observation) { o.At = t0; o.Loc.ASN = 0 }), home, risk.Signals{}},
		{"device/other", home, with(func(o *risk.Observation) { o.Device = "phone" }), risk.Signals{NewDevice: true}},
		{"device/unknown", home, with(func(o *risk.Observation) { o.Device = "" }), risk.Signals{NewDevice: true}},
		{
			"device/both-unknown",
			with(func(o *risk.Observation) { o.At = t0; o.Device = "" }),
			with(func(o *risk.Observation) { o.Device = "" }),
			risk.Signals{NewDevice: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, risk.Compare(tt.prev, tt.cur)); diff != "" {
				t.Errorf("Compare mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCompareHistory(t *testing.T) {
	phone := risk.Observation{
		At:        t0.Add(-48 * time.Hour),
		IP:        netip.MustParseAddr("92.184.100.1"),
		UserAgent: chromeDroid,
		Loc:       at(lyon, 51207),
		Device:    "phone",
	}
	history := []risk.Observation{phone, home} // not in time order: home is the latest
	tests := []struct {
		name     string
		history  []risk.Observation
		cur      risk.Observation
		want     risk.Signals
		decision risk.Decision
	}{
		{
			"first-sign-in",
			nil,
			from(newYork, 7922, time.Hour),
			risk.Signals{NewDevice: true},
			risk.Audit,
		},
		{
			"known-laptop-at-home",
			history,
			func() risk.Observation { o := home; o.At = t0.Add(time.Hour); return o }(),
			risk.Signals{},
			risk.Allow,
		},
		{
			// Device, UA family, IP and ASN all match the older entry;
			// the distance is measured from the latest one (Paris).
			"known-phone-in-lyon",
			history,
			func() risk.Observation { o := phone; o.At = t0.Add(3 * time.Hour); return o }(),
			risk.Signals{DistanceKm: 391.5, SpeedKmh: 130.5},
			risk.StepUp,
		},
		{
			"new-tablet-on-known-family-and-asn",
			history,
			func() risk.Observation {
				o := home
				o.At, o.Device, o.IP = t0.Add(time.Hour), "tablet", netip.MustParseAddr("92.184.7.7")
				o.UserAgent, o.Loc = chromeDroid, at(versailles, 51207)
				return o
			}(),
			risk.Signals{NewDevice: true, IPChanged: true, DistanceKm: 17.9, SpeedKmh: 17.9},
			risk.Audit,
		},
		{
			"new-mac-on-new-network-nearby",
			history,
			func() risk.Observation {
				o := home
				o.At, o.Device, o.IP = t0.Add(time.Hour), "mac", netip.MustParseAddr("5.51.0.1")
				o.UserAgent, o.Loc = safariMac, at(versailles, 15557)
				return o
			}(),
			risk.Signals{NewDevice: true, UAFamilyChanged: true, IPChanged: true, ASNChanged: true, DistanceKm: 17.9, SpeedKmh: 17.9},
			risk.StepUp,
		},
		{
			"stolen-password-from-tokyo",
			history,
			func() risk.Observation {
				o := home
				o.At, o.Device, o.IP = t0.Add(time.Hour), "", netip.MustParseAddr("2400:4050::1")
				o.UserAgent, o.Loc = firefoxWin, at(tokyo, 4713)
				return o
			}(),
			risk.Signals{NewDevice: true, UAFamilyChanged: true, IPChanged: true, ASNChanged: true, DistanceKm: 9711.7, SpeedKmh: 9711.7, ImpossibleTravel: true},
			risk.Deny,
		},
	}
	approx := cmp.Comparer(func(a, b float64) bool { return math.Abs(a-b) < 0.5 })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig := risk.CompareHistory(tt.history, tt.cur)
			if diff := cmp.Diff(tt.want, sig, approx); diff != "" {
				t.Errorf("CompareHistory mismatch (-want +got):\n%s", diff)
			}
			if got := risk.Assess(sig, risk.DefaultBands).Decision; got != tt.decision {
				t.Errorf("Decision = %v, want %v", got, tt.decision)
			}
		})
	}
}

func TestDecisionString(t *testing.T) {
	tests := []struct {
		d    risk.Decision
		want string
	}{
		{risk.Allow, "allow"},
		{risk.Audit, "audit"},
		{risk.StepUp, "step-up"},
		{risk.Deny, "deny"},
		{0, "Decision(0)"},
	}
	for _, tt := range tests {
		if got := tt.d.String(); got != tt.want {
			t.Errorf("Decision(%d).String() = %q, want %q", int(tt.d), got, tt.want)
		}
	}
}

func BenchmarkAssess(b *testing.B) {
	sig := risk.Signals{NewDevice: true, IPChanged: true, ASNChanged: true, DistanceKm: 5837, SpeedKmh: 5837, ImpossibleTravel: true}
	for b.Loop() {
		risk.Assess(sig, risk.DefaultBands)
	}
}

func BenchmarkCompare(b *testing.B) {
	cur := from(newYork, 7922, time.Hour)
	cur.UserAgent = firefoxWin
	for b.Loop() {
		risk.Compare(home, cur)
	}
}
