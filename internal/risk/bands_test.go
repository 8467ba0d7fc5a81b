package risk_test

import (
	"strings"
	"testing"

	"github.com/gatehouse-auth/gatehouse/internal/risk"
)

func TestParseBands(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    risk.Bands
		wantErr string
	}{
		{"ok/flag-example", "audit=30,step-up=50,deny=80", risk.Bands{Audit: 30, StepUp: 50, Deny: 80}, ""},
		{"ok/default", risk.DefaultBands.String(), risk.DefaultBands, ""},
		{"ok/any-order", "deny=80,audit=30,step-up=50", risk.Bands{Audit: 30, StepUp: 50, Deny: 80}, ""},
		{"ok/spaces", " audit = 1 , step-up=2,deny= 100 ", risk.Bands{Audit: 1, StepUp: 2, Deny: 100}, ""},
		{"fail/empty", "", risk.Bands{}, "is not name=score"},
		{"fail/no-equals", "audit=30,step-up,deny=80", risk.Bands{}, `"step-up" is not name=score`},
		{"fail/unknown", "audit=30,stepup=50,deny=80", risk.Bands{}, `unknown band "stepup"`},
		{"fail/case", "Audit=30,step-up=50,deny=80", risk.Bands{}, `unknown band "Audit"`},
		{"fail/duplicate", "audit=30,audit=40,step-up=50,deny=80", risk.Bands{}, `band "audit" given twice`},
		{"fail/missing", "audit=30,step-up=50", risk.Bands{}, `band "deny" missing`},
		{"fail/trailing-comma", "audit=30,step-up=50,deny=80,", risk.Bands{}, `"" is not name=score`},
		{"fail/not-integer", "audit=thirty,step-up=50,deny=80", risk.Bands{}, `score "thirty" is not an integer in 1..100`},
		{"fail/zero", "audit=0,step-up=50,deny=80", risk.Bands{}, `score "0" is not an integer in 1..100`},
		{"fail/above-100", "audit=30,step-up=50,deny=101", risk.Bands{}, `score "101" is not an integer in 1..100`},
		{"fail/equal", "audit=50,step-up=50,deny=80", risk.Bands{}, "scores must increase"},
		{"fail/decreasing", "audit=30,step-up=90,deny=80", risk.Bands{}, "scores must increase"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := risk.ParseBands(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseBands(%q) error = %v, want it to contain %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseBands(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseBands(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestBandsString(t *testing.T) {
	if got, want := risk.DefaultBands.String(), "audit=20,step-up=40,deny=95"; got != want {
		t.Errorf("DefaultBands.String() = %q, want %q", got, want)
	}
	if got, want := (risk.Bands{}).String(), risk.DefaultBands.String(); got != want {
		t.Errorf("Bands{}.String() = %q, want %q", got, want)
	}
}

func FuzzParseBands(f *testing.F) {
	for _, s := range []string{
		"audit=20,step-up=40,deny=95",
		"deny=80,audit=30,step-up=50",
		" audit = 1 , step-up=2,deny= 100 ",
		"audit=+5,step-up=06,deny=7",
		"audit=30,audit=40",
		"",
		",",
		"=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := risk.ParseBands(s)
		if err != nil {
			return
		}
		if b.Audit < 1 || b.Audit >= b.StepUp || b.StepUp >= b.Deny || b.Deny > 100 {
			t.Fatalf("ParseBands(%q) = %+v, want 1 ≤ audit < step-up < deny ≤ 100", s, b)
		}
		again, err := risk.ParseBands(b.String())
		if err != nil {
			t.Fatalf("ParseBands(%q) of ParseBands(%q): %v", b.String(), s, err)
		}
		if again != b {
			t.Fatalf("round trip of %q: %+v, then %+v", s, b, again)
		}
	})
}

// FuzzCompareUserAgent feeds arbitrary user agents, which clients control, to
// the family comparison: it must not panic, must be symmetric, and a user
// agent never differs from itself.
func FuzzCompareUserAgent(f *testing.F) {
	f.Add(chromeWin120, firefoxWin)
	f.Add(safariMac, safariIOS)
	f.Add("", "curl/8.5.0")
	f.Fuzz(func(t *testing.T, a, b string) {
		prev, cur := home, home
		prev.UserAgent, cur.UserAgent = a, b
		ab := risk.Compare(prev, cur).UAFamilyChanged
		prev.UserAgent, cur.UserAgent = b, a
		if ba := risk.Compare(prev, cur).UAFamilyChanged; ab != ba {
			t.Fatalf("UAFamilyChanged(%q, %q) = %v, but reversed %v", a, b, ab, ba)
		}
		prev.UserAgent, cur.UserAgent = a, a
		if risk.Compare(prev, cur).UAFamilyChanged {
			t.Fatalf("UAFamilyChanged(%q, itself) = true", a)
		}
	})
}
