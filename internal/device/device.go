// Package device owns known-device recognition: a browser or app that
// completed a sign-in for an account holds a device token for it, and
// presenting it later marks the attempt as coming from a known device.
// Known devices keep signing in with a password while an account is under
// attack (see package account, protection), and a sign-in from an unknown
// device is what "new device" alerts and risk scoring count.
//
// Tokens are stateless: an issue time and an HMAC of (account id, the
// account's epoch, issue time) under a server key, so the store holds
// nothing and a token names no account to whoever reads it. The epoch is
// the account's password hash: a reset or change of the password (after a
// "not me", a claim of a squatted address) forgets every known device. Browsers keep up to MaxPerCookie tokens
// (several accounts on one browser) in an HttpOnly cookie; native apps
// keep the token returned at sign-in ("device_token") and send it back in
// the Gatehouse-Device-Token header.
// A token is not a credential: it never signs anyone in, it only spares
// its holder the extra proof asked of unfamiliar devices.
package device

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"strings"
	"time"
)

// MaxPerCookie bounds the tokens kept in the browser cookie (accounts
// signed in on one browser); the oldest is dropped.
const MaxPerCookie = 5

// Lifetime is how long a device stays known without a new sign-in.
const Lifetime = 365 * 24 * time.Hour

// macLen is the length of the truncated HMAC (128 bits).
const macLen = 16

// Devices issues and recognises device tokens.
type Devices struct {
	key    []byte
	now    func() time.Time
	secure bool
}

// New returns Devices with the HMAC key (32 random bytes, derived from a
// server secret), a clock and whether cookies are Secure (__Host-).
func New(key []byte, now func() time.Time, secure bool) *Devices {
	if now == nil {
		now = time.Now
	}
	return &Devices{key: key, now: now, secure: secure}
}

// CookieName is the browser cookie holding the tokens.
func (d *Devices) CookieName() string {
	if d.secure {
		return "__Host-gh_device"
	}
	return "gh_device"
}

func (d *Devices) mac(userID, epoch string, issued int64) []byte {
	m := hmac.New(sha256.New, d.key)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(issued))
	m.Write([]byte("gatehouse device v2\x00"))
	m.Write(b[:])
	e := sha256.Sum256([]byte(epoch))
	m.Write(e[:])
	m.Write([]byte(userID))
	return m.Sum(nil)[:macLen]
}

// Issue returns a new token for userID at epoch.
func (d *Devices) Issue(userID, epoch string) string {
	issued := d.now().Unix()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(issued))
	enc := base64.RawURLEncoding.Strict()
	return enc.EncodeToString(b[:]) + "." + enc.EncodeToString(d.mac(userID, epoch, issued))
}

// valid reports whether token is a live token of userID at epoch.
func (d *Devices) valid(token, userID, epoch string) bool {
	ts, sig, ok := strings.Cut(token, ".")
	if !ok {
		return false
	}
	enc := base64.RawURLEncoding.Strict()
	tb, err := enc.DecodeString(ts)
	if err != nil || len(tb) != 8 {
		return false
	}
	mac, err := enc.DecodeString(sig)
	if err != nil || len(mac) != macLen {
		return false
	}
	issued := int64(binary.BigEndian.Uint64(tb))
	age := d.now().Sub(time.Unix(issued, 0))
	if age < -time.Minute || age > Lifetime {
		return false
	}
	return hmac.Equal(mac, d.mac(userID, epoch, issued))
}

// cookieTokens returns the tokens of the request's cookie, at most
// MaxPerCookie.
func (d *Devices) cookieTokens(r *http.Request) []string {
	c, err := r.Cookie(d.CookieName())
	if err != nil || len(c.Value) > 1024 {
		return nil
	}
	ts := strings.Split(c.Value, "~")
	if len(ts) > MaxPerCookie {
		ts = ts[:MaxPerCookie]
	}
	return ts
}

// Header is the request header in which native apps send their token.
const Header = "Gatehouse-Device-Token"

// Known reports whether the request comes from a known device of userID
// at epoch: a token in the cookie, or in the Header (native apps).
func (d *Devices) Known(r *http.Request, userID, epoch string) bool {
	if t := r.Header.Get(Header); t != "" && len(t) < 128 && d.valid(t, userID, epoch) {
		return true
	}
	for _, t := range d.cookieTokens(r) {
		if d.valid(t, userID, epoch) {
			return true
		}
	}
	return false
}

// Remember marks the request's device as known for userID: a fresh token
// first in the browser cookie (replacing the account's older one), and
// returned for native apps to keep.
func (d *Devices) Remember(w http.ResponseWriter, r *http.Request, userID, epoch string) string {
	tok := d.Issue(userID, epoch)
	keep := []string{tok}
	for _, t := range d.cookieTokens(r) {
		if len(keep) == MaxPerCookie {
			break
		}
		if d.wellFormed(t) && !d.valid(t, userID, epoch) {
			keep = append(keep, t)
		}
	}
	http.SetCookie(w, &http.Cookie{
		Name:     d.CookieName(),
		Value:    strings.Join(keep, "~"),
		Path:     "/",
		MaxAge:   int(Lifetime / time.Second),
		Secure:   d.secure,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	})
	return tok
}

// wellFormed reports whether t looks like a token (of any account), so
// junk in the cookie is not carried forward.
func (d *Devices) wellFormed(t string) bool {
	ts, sig, ok := strings.Cut(t, ".")
	return ok && len(ts) == 11 && len(sig) == 22 && !strings.ContainsFunc(t, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
	})
}
