package signing

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/problem"
)

// ServeJWKS serves the published public keys as a JWK Set, cacheable for
// JWKSMaxAge, with an ETag so a revalidation costs a 304. Mount it under
// GET.
func (k *Keyring) ServeJWKS(w http.ResponseWriter, r *http.Request) {
	set := k.set.Load()
	if set == nil {
		w.Header().Set("Cache-Control", "no-store")
		problem.Write(w, r, k.log, problem.Unavailable.WithDetail("The signing keys are not loaded."))
		return
	}
	body := set.jwks(k.cfg.TokenLifetime, k.now())
	sum := sha256.Sum256(body)
	etag := `"` + base64.RawURLEncoding.EncodeToString(sum[:16]) + `"`
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age="+strconv.FormatInt(int64(k.cfg.JWKSMaxAge/time.Second), 10))
	h.Set("ETag", etag)
	if etagMatches(r.Header.Values("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	_, _ = w.Write(body)
}

// jwks returns {"keys":[...]} of the keys published at now, in schedule
// order. Each key is the JWK of a public key checked at load, so no
// private member can appear.
func (s *keySet) jwks(lifetime time.Duration, now time.Time) []byte {
	var b bytes.Buffer
	b.WriteString(`{"keys":[`)
	first := true
	for i, key := range s.keys {
		if !s.times.published(i, lifetime, now) {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.Write(key.publicJSON)
	}
	b.WriteString("]}")
	return b.Bytes()
}

// etagMatches applies If-None-Match (weak comparison, RFC 9110 13.1.2).
func etagMatches(headers []string, etag string) bool {
	for _, h := range headers {
		for _, tag := range strings.Split(h, ",") {
			tag = strings.TrimSpace(tag)
			if tag == "*" || strings.TrimPrefix(tag, "W/") == etag {
				return true
			}
		}
	}
	return false
}
