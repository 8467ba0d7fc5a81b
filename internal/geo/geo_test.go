package geo_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse-auth/gatehouse/internal/geo"
	"github.com/gatehouse-auth/gatehouse/internal/geo/geotest"
)

var (
	paris = geo.Location{Known: true, Lat: 48.8566, Lon: 2.3522, AccuracyKm: 20, City: "Paris", Country: "FR", ASN: 3215, ASOrg: "Orange S.A."}
	tokyo = geo.Location{Known: true, Lat: 35.6762, Lon: 139.6503, AccuracyKm: 50, City: "Tokyo", Country: "JP", ASN: 4713, ASOrg: "NTT Communications"}
)

// openTestDB builds a city and an ASN database and opens them.
func openTestDB(t *testing.T) *geo.DB {
	t.Helper()
	dir := t.TempDir()
	city := geotest.WriteCity(t, dir, []geotest.Entry{
		{Prefix: netip.MustParsePrefix("81.250.0.0/16"), Lat: paris.Lat, Lon: paris.Lon, AccuracyKm: 20, City: "Paris", Country: "FR"},
		{Prefix: netip.MustParsePrefix("2400:4050::/32"), Lat: tokyo.Lat, Lon: tokyo.Lon, AccuracyKm: 50, City: "Tokyo", Country: "JP"},
		{Prefix: netip.MustParsePrefix("8.8.8.0/24"), Lat: 37.751, Lon: -97.822, AccuracyKm: 1000, Country: "US"},
		{Prefix: netip.MustParsePrefix("192.168.0.0/16"), Lat: 1, Lon: 1, City: "Nowhere", Country: "ZZ"},
	})
	asn := geotest.WriteASN(t, dir, []geotest.ASNEntry{
		{Prefix: netip.MustParsePrefix("81.250.0.0/16"), ASN: 3215, Org: "Orange S.A."},
		{Prefix: netip.MustParsePrefix("2400:4050::/32"), ASN: 4713, Org: "NTT Communications"},
		{Prefix: netip.MustParsePrefix("192.168.0.0/16"), ASN: 64512, Org: "Private"},
	})
	db, err := geo.Open(city, asn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db
}

func TestLookup(t *testing.T) {
	db := openTestDB(t)
	tests := []struct {
		name string
		addr string
		want geo.Location
	}{
		{"ok/ipv4", "81.250.12.34", paris},
		{"ok/ipv4-mapped", "::ffff:81.250.12.34", paris},
		{"ok/ipv6", "2400:4050:1::1", tokyo},
		{"ok/country-only-no-asn", "8.8.8.8", geo.Location{Known: true, Lat: 37.751, Lon: -97.822, AccuracyKm: 1000, Country: "US"}},
		{"unknown/ipv4", "1.1.1.1", geo.Location{}},
		{"unknown/ipv6", "2a00:1450::1", geo.Location{}},
		{"private/listed-in-db", "192.168.1.1", geo.Location{}},
		{"private/ipv4", "10.1.2.3", geo.Location{}},
		{"private/ipv6-ula", "fd00::1", geo.Location{}},
		{"loopback/ipv4", "127.0.0.1", geo.Location{}},
		{"loopback/ipv6", "::1", geo.Location{}},
		{"link-local", "fe80::1", geo.Location{}},
		{"unspecified", "0.0.0.0", geo.Location{}},
		{"multicast", "224.0.0.1", geo.Location{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := db.Lookup(netip.MustParseAddr(tt.addr))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Lookup(%s) mismatch (-want +got):\n%s", tt.addr, diff)
			}
		})
	}
	if got := db.Lookup(netip.Addr{}); got != (geo.Location{}) {
		t.Errorf("Lookup(invalid) = %+v, want zero", got)
	}
}

func TestLookupWithoutASNDatabase(t *testing.T) {
	dir := t.TempDir()
	city := geotest.WriteCity(t, dir, []geotest.Entry{
		{Prefix: netip.MustParsePrefix("81.250.0.0/16"), Lat: paris.Lat, Lon: paris.Lon, City: "Paris", Country: "FR"},
	})
	db, err := geo.Open(city, "")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer db.Close()
	want := geo.Location{Known: true, Lat: paris.Lat, Lon: paris.Lon, City: "Paris", Country: "FR"}
	if got := db.Lookup(netip.MustParseAddr("81.250.1.1")); got != want {
		t.Errorf("Lookup = %+v, want %+v", got, want)
	}
}

func TestNilDB(t *testing.T) {
	var db *geo.DB
	if got := db.Lookup(netip.MustParseAddr("81.250.1.1")); got != (geo.Location{}) {
		t.Errorf("Lookup = %+v, want zero", got)
	}
	if err := db.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
}

func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	city := geotest.WriteCity(t, dir, []geotest.Entry{{Prefix: netip.MustParsePrefix("81.250.0.0/16"), Lat: 1, Lon: 1}})
	asn := geotest.WriteASN(t, dir, []geotest.ASNEntry{{Prefix: netip.MustParsePrefix("81.250.0.0/16"), ASN: 3215, Org: "Orange S.A."}})
	garbage := filepath.Join(dir, "garbage.mmdb")
	if err := os.WriteFile(garbage, []byte("this is not a MaxMind DB file"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.mmdb")

	tests := []struct {
		name      string
		city, asn string
		wantErr   string
	}{
		{"fail/city-missing", missing, "", "open city database"},
		{"fail/city-not-mmdb", garbage, "", "open city database"},
		{"fail/asn-db-as-city", asn, "", `database type "GeoLite2-ASN", want a City database`},
		{"fail/asn-missing", city, missing, "open ASN database"},
		{"fail/asn-not-mmdb", city, garbage, "open ASN database"},
		{"fail/city-db-as-asn", city, city, "open ASN database"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := geo.Open(tt.city, tt.asn)
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded, want error")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Open error = %q, want it to contain %q", err, tt.wantErr)

			}
		})
	}
}

func TestLookupConcurrent(t *testing.T) {
	db := openTestDB(t)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if got := db.Lookup(netip.MustParseAddr("2400:4050::1")); got != tokyo {
					t.Errorf("Lookup = %+v, want %+v", got, tokyo)
					return
				}
			}
		})
	}
	wg.Wait()
}
