// Package metrics owns the Prometheus metrics: requests by route, status
// and problem code (so sign-ins by result, refreshes, refresh-token reuse
// and rate-limited requests are each one query away) and request latency by
// route, on a registry of its own with the Go runtime and process
// collectors. The registry is served on a separate listener
// (--metrics-addr), never on the public one.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gatehouse-auth/gatehouse/internal/httpx"
	"github.com/gatehouse-auth/gatehouse/internal/problem"
)

// Metrics are the server's collectors.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	// LimiterFallbacks counts rate-limit decisions made in this replica's
	// memory because Redis failed.
	LimiterFallbacks prometheus.Counter
	// Security counts security decisions by kind and outcome (stuffing
	// bans, account protection, risk decisions): events an operator alerts
	// on, counted where they are decided rather than inferred from status
	// codes.
	Security *prometheus.CounterVec
}

// New registers the collectors on a new registry.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_http_requests_total",
			Help: "HTTP requests by route pattern, status and problem code (\"\" for a success).",
		}, []string{"route", "status", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gatehouse_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route"}),
		LimiterFallbacks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_ratelimit_fallback_decisions_total",
			Help: "Rate-limit decisions made in this replica's memory because Redis failed.",
		}),
		Security: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_security_decisions_total",
			Help: "Security decisions by kind (ip_ban, account_protection, risk) and outcome.",
		}, []string{"kind", "outcome"}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.LimiterFallbacks, m.Security,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Register adds collectors owned by other packages (the audit chain's
// gauges) to the registry; it panics on a duplicate, like MustRegister.
func (m *Metrics) Register(cs ...prometheus.Collector) { m.reg.MustRegister(cs...) }

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

type routeKey struct{}

// RecordRoute tells the metrics of this request which route pattern served
// it ("POST /v1/login"): the router, which matches it anyway, calls it, so
// the metrics need no route lookup of their own. A request whose router
// does not call it counts as "unmatched".
func RecordRoute(ctx context.Context, pattern string) {
	if route, ok := ctx.Value(routeKey{}).(*string); ok && pattern != "" {
		*route = pattern
	}
}

// Middleware counts and times every request under its route pattern (the
// pattern, not the path: ids in paths must not become labels), with the
// problem code of an error answer.
func (m *Metrics) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		route := "unmatched"
		ctx, code := problem.WithRecorder(context.WithValue(r.Context(), routeKey{}, &route))
		sw := &httpx.StatusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(ctx))
		status := sw.Status()
		if status == 0 {
			status = http.StatusOK
		}
		m.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
		m.requests.WithLabelValues(route, strconv.Itoa(status), *code).Inc()
	})
}
