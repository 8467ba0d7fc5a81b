package token

import (
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/gatehouse-auth/gatehouse/internal/problem"
)

// ResourceServers are the APIs allowed to introspect tokens and read the
// revocation feed, authenticated with HTTP Basic (client_secret_basic).
// Only SHA-256 digests of the secrets are kept.
type ResourceServers struct {
	digests map[string][sha256.Size]byte
	log     *slog.Logger
}

// NewResourceServers parses "id:secret" entries (validated by config).
func NewResourceServers(entries []string, log *slog.Logger) *ResourceServers {
	rs := &ResourceServers{digests: map[string][sha256.Size]byte{}, log: log}
	for _, e := range entries {
		id, secret, _ := strings.Cut(e, ":")
		rs.digests[id] = sha256.Sum256([]byte(secret))
	}
	return rs
}

// unknownDigest is compared against when the id is unknown, so a wrong id
// costs the same as a wrong secret.
var unknownDigest = sha256.Sum256([]byte("gatehouse: no such resource server"))

// Authenticate returns the caller's resource-server id, if its Basic
// credentials match one. RFC 6749 §2.3.1 form-url-encodes both parts, but
// many clients send them raw: both readings are tried, each compared in
// constant time.
func (rs *ResourceServers) Authenticate(r *http.Request) (string, bool) {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return "", false
	}
	if rs.match(user, pass) {
		return user, true
	}
	id, err1 := url.QueryUnescape(user)
	secret, err2 := url.QueryUnescape(pass)
	if err1 != nil || err2 != nil || !rs.match(id, secret) {
		return "", false
	}
	return id, true
}

func (rs *ResourceServers) match(id, secret string) bool {
	want, known := rs.digests[id]
	if !known {
		want = unknownDigest
	}
	got := sha256.Sum256([]byte(secret))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1 && known
}

// Require lets only authenticated resource servers through; others get
// 401 with a Basic challenge.
func (rs *ResourceServers) Require(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := rs.Authenticate(r); !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="gatehouse", charset="UTF-8"`)
			problem.Write(w, r, rs.log, problem.Unauthenticated.WithDetail("A resource-server credential is required."))
			return
		}
		next.ServeHTTP(w, r)
	})
}
