package session

import (
	"slices"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/store"
)

func principal(sid string) *Principal {
	return &Principal{Session: store.Session{ID: sid}, User: store.User{ID: "usr_1"}}
}

func TestCacheTTLAndInvalidation(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	c := newCache(30*time.Second, func() time.Time { return now })
	h1, h2 := []byte("hash-one"), []byte("hash-two")
	c.put(h1, principal("ses_a"))
	c.put(h2, principal("ses_b"))
	if _, ok := c.get(h1); !ok {
		t.Fatal("miss right after put")
	}
	c.invalidate("ses_a")
	if _, ok := c.get(h1); ok {
		t.Fatal("invalidated session still cached")
	}
	if _, ok := c.get(h2); !ok {
		t.Fatal("invalidation dropped another session")
	}
	now = now.Add(30 * time.Second)
	if _, ok := c.get(h2); ok {
		t.Fatal("entry served past its TTL")
	}
}

// A store read that started before a revocation must not put the stale,
// still-active copy back into the cache after the invalidation ran.
func TestAttackCacheRaceCannotResurrectRevokedSession(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	c := newCache(30*time.Second, func() time.Time { return now })
	stale := principal("ses_a") // read from the store before the revocation committed
	c.invalidate("ses_a")       // the revocation's invalidation
	c.put([]byte("hash"), stale)
	if _, ok := c.get([]byte("hash")); ok {
		t.Fatal("stale copy re-entered the cache after its revocation")
	}
	now = now.Add(31 * time.Second)
	c.put([]byte("hash"), stale)
	if _, ok := c.get([]byte("hash")); !ok {
		t.Fatal("tombstone never expires")
	}
}

func TestCacheReturnsCopies(t *testing.T) {
	c := newCache(time.Minute, time.Now)
	c.put([]byte("h"), principal("ses_a"))
	p, _ := c.get([]byte("h"))
	p.Session.IP = "mutated"
	q, _ := c.get([]byte("h"))
	if q.Session.IP == "mutated" {
		t.Fatal("cache hands out shared state")
	}
}

func TestCacheDisabledAndFlush(t *testing.T) {
	off := newCache(0, time.Now)
	off.put([]byte("h"), principal("ses_a"))
	if _, ok := off.get([]byte("h")); ok {
		t.Fatal("TTL 0 must disable the cache")
	}
	c := newCache(time.Minute, time.Now)
	c.put([]byte("h"), principal("ses_a"))
	c.flush()
	if _, ok := c.get([]byte("h")); ok {
		t.Fatal("flush kept an entry")
	}
}

func TestCacheBounded(t *testing.T) {
	c := newCache(time.Minute, time.Now)
	for i := range maxCacheEntries + 10 {
		c.put([]byte{byte(i), byte(i >> 8), byte(i >> 16)}, principal("ses"))
	}
	if n := len(c.byHash); n > maxCacheEntries {
		t.Fatalf("%d entries, bound %d", n, maxCacheEntries)
	}
}

func TestDeviceLabel(t *testing.T) {
	for ua, want := range map[string]string{
		"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0":                                          "Firefox on Linux",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36": "Chrome on Windows",
		"curl/8.0": "curl",
		"":         "Unknown device",
	} {
		if got := DeviceLabel(ua); got != want {
			t.Errorf("%q → %q, want %q", ua, got, want)
		}
	}
}

// Local activity (a touch) must not extend how long a cached copy is
// trusted: after the TTL the store is read again, whatever the client does.
func TestAttackTouchCannotExtendCacheTrust(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	c := newCache(30*time.Second, func() time.Time { return now })
	c.put([]byte("h"), principal("ses_a"))
	for range 5 {
		now = now.Add(10 * time.Second)
		p := principal("ses_a")
		p.Session.UserAgent = now.String() // a client rotating its User-Agent
		c.update([]byte("h"), p)
	}
	if _, ok := c.get([]byte("h")); ok {
		t.Fatal("touches kept a cached copy trusted past its TTL")
	}
}

func TestTombstonesAreSwept(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	c := newCache(30*time.Second, func() time.Time { return now })
	for i := range 1000 {
		c.invalidate("ses_" + string(rune('a'+i%26)) + time.Duration(i).String())
	}
	now = now.Add(31 * time.Second)
	c.invalidate("ses_last")
	if n := len(c.tombstones); n != 1 {
		t.Fatalf("%d tombstones after their TTL, want 1", n)
	}
	off := newCache(0, time.Now)
	off.invalidate("ses_x")
	if len(off.tombstones) != 0 {
		t.Fatal("a disabled cache records tombstones")
	}
}

func TestAALOf(t *testing.T) {
	for _, tc := range []struct {
		amr  []string
		want int
	}{
		{[]string{"pwd"}, 1},
		{[]string{"pwd", "otp", "mfa"}, 2},
		{[]string{"pwd", "mfa"}, 2},               // password + recovery code
		{[]string{"otp", "sms", "otp", "mfa"}, 1}, // texted code + app code: two things had
		{[]string{"email", "otp", "mfa"}, 1},      // a mailbox is no authenticator
		{[]string{"email", "pwd"}, 1},             // a link or e-mailed code, then a password step-up
		{[]string{"otp", "email", "mfa"}, 1},
		{[]string{"email"}, 1},
		{[]string{"hwk", "user", "mfa"}, 2}, // a passkey that verified its user
		{[]string{"swk", "user", "mfa"}, 2},
		{[]string{"hwk"}, 1},                         // a key without user verification
		{[]string{"hwk", "otp", "mfa"}, 1},           // … and an app code: two things had
		{[]string{"pwd", "hwk", "mfa"}, 2},           // password + security key
		{[]string{"email", "hwk", "mfa"}, 1},         // link + key without user verification
		{[]string{"email", "hwk", "user", "mfa"}, 2}, // link + key that verified its user
		{[]string{"user"}, 1},
		{nil, 1},
	} {
		if got := AALOf(tc.amr); got != tc.want {
			t.Errorf("AALOf(%v) = %d, want %d", tc.amr, got, tc.want)
		}
	}
}

func TestStepUpAMR(t *testing.T) {
	for _, tc := range []struct {
		have, proof, want []string
		aal               int
	}{
		{[]string{"pwd"}, []string{"pwd"}, []string{"pwd"}, 1},
		{[]string{"pwd"}, []string{"otp"}, []string{"pwd", "otp", "mfa"}, 2},
		{[]string{"pwd"}, []string{"hwk"}, []string{"pwd", "hwk", "mfa"}, 2},
		{[]string{"email"}, []string{"pwd"}, []string{"email", "pwd"}, 1},        // an e-mailed code is "email" alone
		{[]string{"email"}, []string{"otp"}, []string{"email", "otp", "mfa"}, 1}, // two methods, but a mailbox and an app are one authenticator
		{[]string{"email", "otp", "mfa"}, []string{"pwd"}, []string{"email", "otp", "mfa", "pwd"}, 2},
		{[]string{"email"}, []string{"swk", "user", "mfa"}, []string{"email", "swk", "user", "mfa"}, 2}, // a passkey that verified its user
		{[]string{"pwd", "otp", "mfa"}, []string{"otp"}, []string{"pwd", "otp", "mfa"}, 2},
	} {
		got := StepUpAMR(tc.have, tc.proof)
		if !slices.Equal(got, tc.want) || AALOf(got) != tc.aal {
			t.Errorf("StepUpAMR(%v, %v) = %v (AAL%d), want %v (AAL%d)", tc.have, tc.proof, got, AALOf(got), tc.want, tc.aal)
		}
		if len(tc.have) > 0 && &got[0] == &tc.have[0] {
			t.Errorf("StepUpAMR(%v, …) shares the caller's slice", tc.have)
		}
	}
}
