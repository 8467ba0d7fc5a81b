package app

import (
	"context"
	"crypto/rand"
	"net/http"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-auth/gatehouse/internal/audit"
	"github.com/gatehouse-auth/gatehouse/internal/httpx"
	"github.com/gatehouse-auth/gatehouse/internal/metrics"
	"github.com/gatehouse-auth/gatehouse/internal/session"
)

// startAudit runs the audit chain's sealer and the configured streaming
// sinks (--audit-webhook-url, --audit-stdout) until ctx (the server's run
// context) ends, registers the administrators' audit routes on mux, and
// exposes the chain's metrics on m.
func (s *Server) startAudit(ctx context.Context, mux *http.ServeMux, adapt func(httpx.HandlerFunc) http.Handler, m *metrics.Metrics) {
	sealer := audit.NewSealer(s.DB, s.log)
	go sealer.Run(ctx)

	holder, _ := os.Hostname()
	holder += "/" + rand.Text()[:10] // this replica, for the sinks' leases
	var webhookFailures func() uint64
	if s.cfg.AuditWebhookURL != "" {
		st := audit.NewStreamer(s.DB, audit.NewWebhook(s.cfg.AuditWebhookURL, s.cfg.AuditWebhookSecret, nil),
			audit.StreamConfig{Holder: holder}, s.log)
		webhookFailures = st.Failures
		go st.Run(ctx)
	}
	if s.cfg.AuditStdout {
		st := audit.NewStreamer(s.DB, audit.NewWriter(os.Stdout), audit.StreamConfig{Holder: holder}, s.log)
		go st.Run(ctx)
	}

	m.Register(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gatehouse_audit_unsealed_events",
			Help: "Audit events not yet linked into the tamper-evident chain, as of this replica's last sealer run.",
		}, func() float64 { return float64(sealer.Unsealed()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "gatehouse_audit_webhook_failures_total",
			Help: "Failed deliveries of audit batches to --audit-webhook-url by this replica.",
		}, func() float64 {
			if webhookFailures == nil {
				return 0
			}
			return float64(webhookFailures())
		}),
	)

	admin := func(h httpx.HandlerFunc) http.Handler {
		return adapt(s.Sessions.RequireAdmin(func(w http.ResponseWriter, r *http.Request, _ *session.Principal) error {
			return h(w, r)
		}))
	}
	mux.Handle("GET /v1/admin/audit", admin(audit.AdminListHandler(s.DB.Audit(), s.log)))
	mux.Handle("GET /v1/admin/audit/export", admin(audit.AdminExportHandler(s.DB.Audit(), s.log)))
}
