// Package geo owns IP geolocation: it resolves a client address to an
// approximate location and network (autonomous system) from MaxMind-format
// database files, for the risk signals in package risk.
//
// The city database (--geoip-db) may be GeoLite2-City, GeoIP2-City or DB-IP
// City Lite; an optional ASN database (GeoLite2-ASN or DB-IP ASN Lite) adds
// the autonomous system. Without a city database location signals are off: a
// nil *DB is valid and knows nothing.
//
// Files are read once at Open (memory-mapped); a new database file is picked
// up by restarting the server.
package geo

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"strings"

	"github.com/oschwald/geoip2-golang/v2"
)

// Location is what the databases know about an address. The zero value means
// nothing is known.
type Location struct {
	// Known reports whether Lat, Lon and AccuracyKm are set.
	Known bool
	// Lat and Lon are in degrees (WGS 84).
	Lat, Lon float64
	// AccuracyKm is the radius around Lat, Lon within which the client
	// probably is; 0 when the database does not say (DB-IP Lite).
	AccuracyKm int
	// City is the English city name, if any.
	City string
	// Country is the ISO 3166-1 alpha-2 code, if any.
	Country string
	// ASN is the autonomous system number; 0 when unknown.
	ASN uint
	// ASOrg is the autonomous system's organisation, if known.
	ASOrg string
}

// DB answers location lookups. It is safe for concurrent use by multiple
// goroutines, except that Close must not run concurrently with Lookup.
type DB struct {
	city *geoip2.Reader
	asn  *geoip2.Reader // nil without an ASN database
}

// Open opens the city database at cityPath and, unless asnPath is empty, the
// ASN database at asnPath. It fails if a file is missing, is not a MaxMind DB,
// or holds the wrong kind of data (the city file's database type must contain
// "City"; the ASN file must support ASN lookups).
func Open(cityPath, asnPath string) (*DB, error) {
	city, err := openReader(cityPath)
	if err != nil {
		return nil, fmt.Errorf("geo: open city database: %w", err)
	}
	if typ := city.Metadata().DatabaseType; !strings.Contains(typ, "City") {
		city.Close()
		return nil, fmt.Errorf("geo: open city database: %s has database type %q, want a City database such as GeoLite2-City or DBIP-City-Lite", cityPath, typ)
	}
	db := &DB{city: city}
	if asnPath == "" {
		return db, nil
	}
	asn, err := openReader(asnPath)
	if err != nil {
		city.Close()
		return nil, fmt.Errorf("geo: open ASN database: %w", err)
	}
	// The reader refuses ASN lookups on databases without ASN data; probing
	// once here turns a per-request failure into a start-up error.
	if _, err := asn.ASN(netip.IPv4Unspecified()); err != nil {
		city.Close()
		asn.Close()
		return nil, fmt.Errorf("geo: open ASN database: %s: %w", asnPath, err)
	}
	db.asn = asn
	return db, nil
}

// openReader opens path with geoip2, which also rejects database types it does
// not know. Errors name the file.
func openReader(path string) (*geoip2.Reader, error) {
	r, err := geoip2.Open(path)
	if err == nil {
		return r, nil
	}
	if r != nil {
		r.Close()
	}
	if _, ok := errors.AsType[*fs.PathError](err); ok {
		return nil, err // already names the file
	}
	return nil, fmt.Errorf("%s: %w", path, err)
}

// Lookup returns what the databases know about addr. IPv4-mapped IPv6
// addresses are looked up as IPv4. Private, loopback, link-local, multicast,
// unspecified and invalid addresses, addresses missing from the databases and
// records that fail to decode all give a Location with Known false: a lookup
// never fails a request. Lookup on a nil *DB returns the zero Location.
func (db *DB) Lookup(addr netip.Addr) Location {
	addr = addr.Unmap()
	if db == nil || !addr.IsGlobalUnicast() || addr.IsPrivate() {
		return Location{}
	}
	var loc Location
	if c, err := db.city.City(addr); err == nil {
		if c.Location.HasCoordinates() {
			loc.Known = true
			loc.Lat = *c.Location.Latitude
			loc.Lon = *c.Location.Longitude
			loc.AccuracyKm = int(c.Location.AccuracyRadius)
		}
		loc.City = c.City.Names.English
		loc.Country = c.Country.ISOCode
	}
	if db.asn != nil {
		if a, err := db.asn.ASN(addr); err == nil {
			loc.ASN = a.AutonomousSystemNumber
			loc.ASOrg = a.AutonomousSystemOrganization
		}
	}
	return loc
}

// Close releases the database files. Close on a nil *DB does nothing.
func (db *DB) Close() error {
	if db == nil {
		return nil
	}
	err := db.city.Close()
	if db.asn != nil {
		err = errors.Join(err, db.asn.Close())
	}
	return err
}
