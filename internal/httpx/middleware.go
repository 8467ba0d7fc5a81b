package httpx

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/problem"
)

// Middleware wraps a handler.
type Middleware func(http.Handler) http.Handler

// Chain applies mws so that the first one is the outermost.
func Chain(h http.Handler, mws ...Middleware) http.Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// SecurityHeaders sets the headers every response carries. The API serves
// no active content, so its CSP forbids everything, framing included
// (clickjacking); hsts adds Strict-Transport-Security for TLS deployments.
func SecurityHeaders(hsts bool) Middleware {
	// Built once: the header values are shared read-only slices (keys are
	// already canonical), which keeps this off the allocation profile.
	fixed := http.Header{
		"Content-Security-Policy":      {"default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"},
		"X-Content-Type-Options":       {"nosniff"},
		"X-Frame-Options":              {"DENY"},
		"Referrer-Policy":              {"no-referrer"},
		"Cross-Origin-Opener-Policy":   {"same-origin"},
		"Cross-Origin-Resource-Policy": {"same-origin"},
	}
	sts := []string{"max-age=63072000; includeSubDomains"}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			for k, v := range fixed {
				h[k] = v
			}
			if hsts || r.TLS != nil {
				h["Strict-Transport-Security"] = sts
			}
			next.ServeHTTP(w, r)
		})
	}
}

// CrossOrigin refuses cross-origin state-changing requests (CSRF, login
// CSRF included) using Go's http.CrossOriginProtection: Sec-Fetch-Site, or
// Origin compared with Host. trusted lists extra origins (scheme://host[:port])
// allowed to make such requests, e.g. a separate front-end. bypass lists
// mux patterns exempt from the check: endpoints that never read cookies
// (OAuth token, revocation and introspection), where CSRF has nothing to
// ride on. Its Handler is the middleware; its Check also serves
// forward-auth, which judges the proxied request.
func CrossOrigin(log *slog.Logger, trusted, bypass []string) (*http.CrossOriginProtection, error) {
	cop := http.NewCrossOriginProtection()
	for _, o := range trusted {
		if err := cop.AddTrustedOrigin(o); err != nil {
			return nil, fmt.Errorf("httpx: trusted origin %q: %w", o, err)
		}
	}
	for _, p := range bypass {
		cop.AddInsecureBypassPattern(p)
	}
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, r, log, problem.CrossOrigin)
	}))
	return cop, nil
}

// RequestID gives every request a random id, returned in X-Request-Id and
// attached to problem bodies and log lines. Incoming ids are not trusted.
func RequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b [12]byte
		_, _ = rand.Read(b[:])
		w.Header().Set("X-Request-Id", hex.EncodeToString(b[:]))
		next.ServeHTTP(w, r)
	})
}

// StatusWriter records the status and size of a response for the
// middleware that wraps the handler (logs, metrics). Unwrap lets
// http.ResponseController reach the connection (flushes, deadlines).
type StatusWriter struct {
	http.ResponseWriter
	status int
	bytes  int
}

// Status is the status written so far (200 once a body was written
// without one; 0 before anything).
func (s *StatusWriter) Status() int { return s.status }

func (s *StatusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *StatusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += n
	return n, err
}

func (s *StatusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// AccessLog logs one line per request: method, path (never the query, which
// may carry tokens), status, duration, client IP and request id. Panics in
// the handler are recovered into a 500 problem and logged.
//
// quiet, if not nil, picks requests logged at debug instead of info: the
// high-volume ones whose success says nothing (a proxy's forward-auth
// sub-requests, which the proxy logs itself).
func AccessLog(log *slog.Logger, quiet func(r *http.Request, status int) bool) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			sw := &StatusWriter{ResponseWriter: w}
			defer func() {
				v := recover()
				if v != nil {
					if v == http.ErrAbortHandler {
						panic(v)
					}
					log.ErrorContext(r.Context(), "panic in handler", slog.Any("panic", v), slog.String("path", r.URL.Path))
					if sw.status == 0 {
						problem.Write(sw, r, nil, problem.Internal)
					}
				}
				if sw.status == 0 {
					sw.status = http.StatusOK // nothing written: net/http sends 200
				}
				level := slog.LevelInfo
				if quiet != nil && quiet(r, sw.status) {
					level = slog.LevelDebug
				}
				if !log.Enabled(r.Context(), level) {
					return
				}
				log.LogAttrs(r.Context(), level, "request",
					slog.String("method", r.Method),
					slog.String("path", r.URL.Path),
					slog.Int("status", sw.status),
					slog.Int("bytes", sw.bytes),
					slog.Duration("duration", time.Since(start)),
					slog.String("ip", ClientIP(r).String()),
					slog.String("request_id", w.Header().Get("X-Request-Id")))
			}()
			next.ServeHTTP(sw, r)
		})
	}
}
