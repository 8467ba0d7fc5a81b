// Package geotest writes small MaxMind DB files for tests, laid out like
// GeoLite2-City and GeoLite2-ASN so that package geo reads them exactly as it
// reads the real databases. No binary fixture is committed.
package geotest

import (
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// Entry is one network of a city database.
type Entry struct {
	Prefix   netip.Prefix
	Lat, Lon float64
	// AccuracyKm is written as location.accuracy_radius; 0 leaves it out.
	AccuracyKm uint16
	City       string // city.names.en; empty leaves it out
	Country    string // country.iso_code; empty leaves it out
}

// ASNEntry is one network of an ASN database.
type ASNEntry struct {
	Prefix netip.Prefix
	ASN    uint32
	Org    string
}

// WriteCity writes a "GeoLite2-City" database holding entries to a new file in
// dir and returns its path.
func WriteCity(t testing.TB, dir string, entries []Entry) string {
	t.Helper()
	tree := newTree(t, "GeoLite2-City")
	for _, e := range entries {
		location := mmdbtype.Map{
			"latitude":  mmdbtype.Float64(e.Lat),
			"longitude": mmdbtype.Float64(e.Lon),
		}
		if e.AccuracyKm != 0 {
			location["accuracy_radius"] = mmdbtype.Uint16(e.AccuracyKm)
		}
		record := mmdbtype.Map{"location": location}
		if e.City != "" {
			record["city"] = mmdbtype.Map{
				"names": mmdbtype.Map{"en": mmdbtype.String(e.City)},
			}
		}
		if e.Country != "" {
			record["country"] = mmdbtype.Map{"iso_code": mmdbtype.String(e.Country)}
		}
		insert(t, tree, e.Prefix, record)
	}
	return write(t, tree, dir, "GeoLite2-City-*.mmdb")
}

// WriteASN writes a "GeoLite2-ASN" database holding entries to a new file in
// dir and returns its path.
func WriteASN(t testing.TB, dir string, entries []ASNEntry) string {
	t.Helper()
	tree := newTree(t, "GeoLite2-ASN")
	for _, e := range entries {
		insert(t, tree, e.Prefix, mmdbtype.Map{
			"autonomous_system_number":       mmdbtype.Uint32(e.ASN),
			"autonomous_system_organization": mmdbtype.String(e.Org),
		})
	}
	return write(t, tree, dir, "GeoLite2-ASN-*.mmdb")
}

// newTree returns an IPv6 tree with IPv4 aliased into it (::ffff:0:0/96 and
// the others), as in the GeoLite2 files. Reserved networks are allowed so that
// tests can prove geo ignores private addresses even when a file lists them.
func newTree(t testing.TB, databaseType string) *mmdbwriter.Tree {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            databaseType,
		Description:             map[string]string{"en": "Gatehouse test " + databaseType},
		Languages:               []string{"en"},
		IPVersion:               6,
		RecordSize:              28,
		IncludeReservedNetworks: true,
	})
	if err != nil {
		t.Fatalf("geotest: new %s tree: %v", databaseType, err)
	}
	return tree
}

func insert(t testing.TB, tree *mmdbwriter.Tree, p netip.Prefix, record mmdbtype.Map) {
	t.Helper()
	if !p.IsValid() {
		t.Fatalf("geotest: invalid prefix %v", p)
	}
	p = p.Masked()
	network := &net.IPNet{
		IP:   p.Addr().AsSlice(),
		Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen()),
	}
	if err := tree.Insert(network, record); err != nil {
		t.Fatalf("geotest: insert %v: %v", p, err)
	}
}

func write(t testing.TB, tree *mmdbwriter.Tree, dir, pattern string) string {
	t.Helper()
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		t.Fatalf("geotest: %v", err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		f.Close()
		t.Fatalf("geotest: write %s: %v", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("geotest: close %s: %v", f.Name(), err)
	}
	return f.Name()
}
