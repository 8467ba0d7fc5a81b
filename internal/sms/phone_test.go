package sms

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		name, raw, region, want string
	}{
		{"US national with formatting", "(201) 555-0123", "US", "+12015550123"},
		{"US with country code", "+1 201-555-0123", "", "+12015550123"},
		{"US dotted, region ignored for +", "+1.201.555.0123", "DE", "+12015550123"},
		{"US IDD 011 from the US", "011 44 7400 123456", "US", "+447400123456"},
		{"GB national mobile", "07400 123456", "GB", "+447400123456"},
		{"GB international with (0)", "+44 (0)7400 123456", "", "+447400123456"},
		{"GB 00 prefix without region", "0044 7400 123456", "", "+447400123456"},
		{"GB 00 prefix from DE", "0044-7400-123456", "DE", "+447400123456"},
		{"DE national mobile", "0151 23456789", "DE", "+4915123456789"},
		{"DE international with slash", "+49 151/23456789", "", "+4915123456789"},
		{"FR national mobile", "06 12 34 56 78", "FR", "+33612345678"},
		{"FR international", "+33 6 12 34 56 78", "GB", "+33612345678"},
		{"IN national mobile", "081234 56789", "IN", "+918123456789"},
		{"IN international", "+91 81234-56789", "", "+918123456789"},
		{"surrounding whitespace", "  \t+44 7400 123456\n", "", "+447400123456"},
		{"32 characters", "+44" + strings.Repeat(" ", 19) + "7400123456", "", "+447400123456"},
		{"surrounding whitespace not counted", strings.Repeat(" ", 40) + "+44 7400 123456" + strings.Repeat(" ", 40), "", "+447400123456"},
		{"full-width digits and plus", "＋４４ ７４００ １２３４５６", "", "+447400123456"},
		{"Arabic-Indic digits", "+٤٤٧٤٠٠١٢٣٤٥٦", "", "+447400123456"},
		{"unicode dashes", "+44–7400–123456", "", "+447400123456"},
		{"GB VoIP accepted", "056 1234 5678", "GB", "+445612345678"},
		{"GB personal accepted", "070 1234 5678", "GB", "+447012345678"},
		{"GB pager accepted", "076 4012 3456", "GB", "+447640123456"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Normalize(tt.raw, tt.region)
			if err != nil {
				t.Fatalf("Normalize(%q, %q): %v", tt.raw, tt.region, err)
			}
			if got != tt.want {
				t.Errorf("Normalize(%q, %q) = %q, want %q", tt.raw, tt.region, got, tt.want)
			}
		})
	}
}

func TestNormalizeRefuses(t *testing.T) {
	tests := []struct {
		name, raw, region, reason string
	}{
		{"empty", "", "US", "empty"},
		{"blank", "   ", "US", "empty"},
		{"national number without region", "07400 123456", "", "international format"},
		{"digits without + and without region", "447400123456", "", "international format"},
		{"33 characters", "+44" + strings.Repeat(" ", 20) + "7400123456", "", "longer than 32"},
		{"very long", strings.Repeat("1", 1<<20), "US", "longer than 32"},
		{"too short", "+1 201", "", ""},
		{"invalid US area code", "+1 123 555 0123", "", "not a valid number"},
		{"unassigned country code", "+999 1234 5678", "", ""},
		{"too few digits for GB", "+44 7400 12345", "", "not a valid number"},
		{"letters", "+1 800 FLOWERS", "", "unexpected character"},
		{"extension", "+44 7400 123456 ext. 12", "", "unexpected character"},
		{"tel URI", "tel:+447400123456", "", "unexpected character"},
		{"plus inside", "44+7400123456", "GB", "plus sign inside"},
		{"double plus", "++447400123456", "", "plus sign inside"},
		{"no digits", "+()-", "", "no digits"},
		{"national number in wrong region", "07400 123456", "US", ""},
		{"00 prefix where 00 is not the international prefix", "0044 7400 123456", "US", ""},
		{"GB fixed line", "020 7946 0958", "GB", "fixed-line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Normalize(tt.raw, tt.region)
			if !errors.Is(err, ErrInvalidPhone) {
				t.Fatalf("Normalize(%q, %q) = %q, %v; want ErrInvalidPhone", tt.raw, tt.region, got, err)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("error %q does not give the reason %q", err, tt.reason)
			}
		})
	}
}

// TestNormalizeNumberTypes takes each region's example numbers from the
// library's own metadata, so the test follows metadata updates.
func TestNormalizeNumberTypes(t *testing.T) {
	refused := []phonenumbers.PhoneNumberType{
		phonenumbers.PREMIUM_RATE, phonenumbers.SHARED_COST, phonenumbers.TOLL_FREE,
		phonenumbers.UAN, phonenumbers.VOICEMAIL, phonenumbers.FIXED_LINE,
	}
	accepted := []phonenumbers.PhoneNumberType{
		phonenumbers.MOBILE, phonenumbers.FIXED_LINE_OR_MOBILE, phonenumbers.PERSONAL_NUMBER,
		phonenumbers.VOIP, phonenumbers.PAGER,
	}
	seen := map[bool]int{}
	for _, region := range []string{"US", "GB", "DE", "FR", "IN", "IT", "ES", "BR", "JP", "AU"} {
		for _, set := range []struct {
			types []phonenumbers.PhoneNumberType
			ok    bool
		}{{refused, false}, {accepted, true}} {
			for _, typ := range set.types {
				ex := phonenumbers.GetExampleNumberForType(region, typ)
				// No example for this type, or the example falls under
				// another type (FIXED_LINE_OR_MOBILE has no example of its
				// own; US fixed-line examples are FIXED_LINE_OR_MOBILE).
				if ex == nil || phonenumbers.GetNumberType(ex) != typ {
					continue
				}
				seen[set.ok]++
				e164 := phonenumbers.Format(ex, phonenumbers.E164)
				for _, in := range []struct{ raw, region string }{
					{phonenumbers.Format(ex, phonenumbers.NATIONAL), region},
					{phonenumbers.Format(ex, phonenumbers.INTERNATIONAL), ""},
				} {
					got, err := Normalize(in.raw, in.region)
					switch {
					case set.ok && (err != nil || got != e164):
						t.Errorf("%s type %d: Normalize(%q, %q) = %q, %v; want %q", region, typ, in.raw, in.region, got, err, e164)
					case !set.ok && !errors.Is(err, ErrInvalidPhone):
						t.Errorf("%s type %d: Normalize(%q, %q) = %q, %v; want refused", region, typ, in.raw, in.region, got, err)
					}
				}
			}
		}
	}
	if seen[true] < 10 || seen[false] < 20 {
		t.Fatalf("too few example numbers checked (accepted %d, refused %d): metadata changed?", seen[true], seen[false])
	}
}

func TestNormalizeUnknownRegion(t *testing.T) {
	for _, region := range []string{"XX", "us", "ZZ", "001"} {
		_, err := Normalize("+447400123456", region)
		if err == nil || errors.Is(err, ErrInvalidPhone) {
			t.Errorf("region %q: err = %v; want a configuration error, not ErrInvalidPhone", region, err)
		}
	}
}

var e164Shape = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

func FuzzNormalize(f *testing.F) {
	regions := []string{"", "US", "GB", "DE", "FR", "IN", "IT", "AR", "MX", "BR", "JP", "KR", "AU"}
	for _, seed := range []string{
		"+1 (201) 555-0123", "(201) 555-0123", "07400 123456", "0044 7400 123456",
		"+44 (0)7400 123456", "011 44 7400 123456", "0151 23456789", "+٤٤٧٤٠٠١٢٣٤٥٦",
		"＋４４ ７４００ １２３４５６", "+39 06 1234 5678", "+54 9 11 2345-6789", "+52 1 222 123 4567",
		"001 1 201 555 0123", "+", "00", "", "++", "+0", "+800 1234 5678", "+882 1234 5678",
	} {
		for i := range regions {
			f.Add(seed, uint8(i))
		}
	}
	f.Fuzz(func(t *testing.T, raw string, r uint8) {
		region := regions[int(r)%len(regions)]
		got, err := Normalize(raw, region)
		if err != nil {
			if !errors.Is(err, ErrInvalidPhone) {
				t.Fatalf("Normalize(%q, %q): %v is not ErrInvalidPhone", raw, region, err)
			}
			return
		}
		if !e164Shape.MatchString(got) {
			t.Fatalf("Normalize(%q, %q) = %q: not E.164", raw, region, got)
		}
		for _, again := range []string{"", region} {
			if got2, err := Normalize(got, again); err != nil || got2 != got {
				t.Fatalf("Normalize(%q, %q) = %q, but Normalize(%q, %q) = %q, %v", raw, region, got, got, again, got2, err)
			}
		}
	})
}
