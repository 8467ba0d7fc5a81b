package app_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatehouse-auth/gatehouse/internal/config"
)

// TestMetrics: requests are counted by route pattern, status and problem
// code — sign-ins by result, rate-limited requests — and timed by route;
// ids in paths never become labels; the public listener does not serve
// /metrics.
func TestMetrics(t *testing.T) {
	h := newHarness(t, "sqlite", func(c *config.Config) { c.LoginFailuresPerAccount = 2 })
	const email = "metrics@example.com"
	c := h.newUser(email)
	mustStatus(t, h.client().login(email, goodPassword), http.StatusOK)
	for range 3 {
		h.client().login(email, "a wrong password for sure")
	}
	mustStatus(t, c.do("DELETE", "/v1/sessions/ses_notasessionofthisuserxxxxxx", nil), http.StatusNotFound)
	mustStatus(t, h.client().do("GET", "/metrics", nil), http.StatusNotFound)

	rec := httptest.NewRecorder()
	h.srv.Metrics.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	raw, _ := io.ReadAll(rec.Body)
	body := string(raw)
	for _, want := range []string{
		`gatehouse_http_requests_total{code="",route="POST /v1/login",status="200"} 1`,
		`gatehouse_http_requests_total{code="invalid_credentials",route="POST /v1/login",status="401"} 2`,
		`gatehouse_http_requests_total{code="extra_proof_required",route="POST /v1/login",status="403"} 1`,
		`gatehouse_http_requests_total{code="",route="POST /v1/signup",status="201"} 1`,
		`gatehouse_http_requests_total{code="not_found",route="DELETE /v1/sessions/{id}",status="404"} 1`,
		`gatehouse_http_requests_total{code="not_found",route="unmatched",status="404"} 1`,
		`gatehouse_http_request_duration_seconds_count{route="POST /v1/login"} 4`,
		`go_goroutines `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(body, "ses_notasession") {
		t.Error("a path id became a label")
	}
	if t.Failed() {
		t.Logf("%s", body)
	}
}
