package device

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

var key = []byte("0123456789abcdef0123456789abcdef")

func TestKnown(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	d := New(key, clock, true)
	tok := d.Issue("usr_a", "hash-1")
	other := New([]byte("another key, another deployment!"), clock, true).Issue("usr_a", "hash-1")
	for _, tc := range []struct {
		name  string
		token string
		user  string
		want  bool
	}{
		{"own token", tok, "usr_a", true},
		{"another account", tok, "usr_b", false},
		{"another epoch (the password changed)", d.Issue("usr_a", "hash-0"), "usr_a", false},
		{"another key", other, "usr_a", false},
		{"tampered mac", tok[:15] + string(tok[15]^1) + tok[16:], "usr_a", false},
		{"non-canonical base64", tok[:len(tok)-1] + string(tok[len(tok)-1]^1), "usr_a", false},
		{"tampered time", "AAAAAGsF4dY" + tok[11:], "usr_a", false},
		{"junk", "a.b", "usr_a", false},
		{"no dot", "abc", "usr_a", false},
		{"empty", "", "usr_a", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/v1/login", nil)
			r.Header.Set(Header, tc.token)
			if got := d.Known(r, tc.user, "hash-1"); got != tc.want {
				t.Errorf("Known(header) = %v, want %v", got, tc.want)
			}
			r = httptest.NewRequest("POST", "/v1/login", nil)
			r.AddCookie(&http.Cookie{Name: d.CookieName(), Value: tc.token})
			if got := d.Known(r, tc.user, "hash-1"); got != tc.want {
				t.Errorf("Known(cookie) = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestAttackExpiredTokenIsUnfamiliar(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	d := New(key, func() time.Time { return now }, false)
	tok := d.Issue("usr_a", "")
	now = now.Add(Lifetime + time.Second)
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set(Header, tok)
	if d.Known(r, "usr_a", "") {
		t.Fatal("a token older than Lifetime is known")
	}
}

// The cookie keeps one token per account, newest first, at most
// MaxPerCookie, and drops junk.
func TestRememberKeepsAccountsOnOneBrowser(t *testing.T) {
	d := New(key, nil, true)
	var cookie string
	for i, u := range []string{"u1", "u2", "u1", "u3", "u4", "u5", "u6"} {
		r := httptest.NewRequest("POST", "/v1/login", nil)
		if cookie != "" {
			v := cookie
			if i == 3 {
				v += "~junk<script>"
			}
			r.AddCookie(&http.Cookie{Name: d.CookieName(), Value: v})
		}
		w := httptest.NewRecorder()
		d.Remember(w, r, u, "e")
		c := w.Result().Cookies()[0]
		if c.Name != "__Host-gh_device" || !c.HttpOnly || !c.Secure || c.Path != "/" || c.SameSite != http.SameSiteLaxMode {
			t.Fatalf("cookie attributes: %+v", c)
		}
		cookie = c.Value
	}
	toks := strings.Split(cookie, "~")
	if len(toks) != MaxPerCookie {
		t.Fatalf("%d tokens kept, want %d", len(toks), MaxPerCookie)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.AddCookie(&http.Cookie{Name: d.CookieName(), Value: cookie})
	for u, want := range map[string]bool{"u6": true, "u5": true, "u1": true, "u2": false} {
		if d.Known(r, u, "e") != want {
			t.Errorf("Known(%s) = %v, want %v", u, !want, want)
		}
	}
	if strings.Contains(cookie, "junk") {
		t.Error("junk carried forward")
	}
}

func FuzzKnown(f *testing.F) {
	d := New(key, nil, false)
	f.Add(d.Issue("u", ""), "u")
	f.Add("a.b~c.d", "u")
	f.Fuzz(func(t *testing.T, cookie, user string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.AddCookie(&http.Cookie{Name: d.CookieName(), Value: cookie})
		r.Header.Set(Header, cookie)
		d.Known(r, user, user)
		w := httptest.NewRecorder()
		d.Remember(w, r, user, user)
	})
}
