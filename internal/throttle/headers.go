package throttle

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Headers is middleware that answers with the RateLimit-Policy and
// RateLimit header fields (draft-ietf-httpapi-ratelimit-headers-10) for
// every limit the request was counted against:
//
//	RateLimit-Policy: "login_ip";q=100;w=900, "login_account";q=10;w=900
//	RateLimit: "login_ip";r=99;t=9, "login_account";r=9;t=90
//
// q is the quota and w its window in seconds; r is what remains and t the
// seconds until the quota is whole again. A refused request also carries
// Retry-After (set by the problem response).
func Headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rep := &reporter{}
		hw := &headerWriter{ResponseWriter: w, rep: rep}
		next.ServeHTTP(hw, r.WithContext(context.WithValue(r.Context(), reporterKey{}, rep)))
	})
}

type reporterKey struct{}

type state struct {
	class string
	rule  Rule
	res   Result
}

type reporter struct {
	mu     sync.Mutex
	states []state
}

// report records a decision for the request's headers; a class decided
// twice keeps its latest state.
func report(ctx context.Context, class string, rule Rule, res Result) {
	rep, ok := ctx.Value(reporterKey{}).(*reporter)
	if !ok {
		return
	}
	rep.mu.Lock()
	defer rep.mu.Unlock()
	for i := range rep.states {
		if rep.states[i].class == class {
			rep.states[i] = state{class, rule, res}
			return
		}
	}
	rep.states = append(rep.states, state{class, rule, res})
}

// write sets the header fields, once the handler is done deciding.
func (rep *reporter) write(h http.Header) {
	rep.mu.Lock()
	defer rep.mu.Unlock()
	if len(rep.states) == 0 {
		return
	}
	policies := make([]string, len(rep.states))
	limits := make([]string, len(rep.states))
	for i, s := range rep.states {
		policies[i] = fmt.Sprintf("%q;q=%d;w=%d", s.class, s.rule.Limit, seconds(s.rule.Window))
		limits[i] = fmt.Sprintf("%q;r=%d;t=%d", s.class, s.res.Remaining, seconds(s.res.ResetAfter))
	}
	h.Set("RateLimit-Policy", strings.Join(policies, ", "))
	h.Set("RateLimit", strings.Join(limits, ", "))
}

// seconds rounds d up to whole seconds.
func seconds(d time.Duration) int64 { return int64((d + time.Second - 1) / time.Second) }

// headerWriter adds the header fields just before the response's header is
// sent.
type headerWriter struct {
	http.ResponseWriter
	rep   *reporter
	wrote bool
}

func (w *headerWriter) WriteHeader(code int) {
	if !w.wrote {
		w.wrote = true
		w.rep.write(w.Header())
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *headerWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *headerWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush implements http.Flusher for streamed responses.
func (w *headerWriter) Flush() {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}
