package problem

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"
)

func TestCopiesStillMatchTheirSentinel(t *testing.T) {
	err := fmt.Errorf("op: %w", RateLimited.WithDetail("slow down").WithRetryAfter(3*time.Second).Wrap(errors.New("cause")))
	if !errors.Is(err, RateLimited) {
		t.Fatal("a copy does not match its sentinel")
	}
	if errors.Is(err, InvalidCredentials) {
		t.Fatal("matches another problem")
	}
	if RateLimited.Detail != "" || RateLimited.RetryAfter != 0 {
		t.Fatal("WithDetail mutated the sentinel")
	}
}

func TestWriteRFC9457(t *testing.T) {
	rec := httptest.NewRecorder()
	rec.Header().Set("X-Request-Id", "rid")
	Write(rec, httptest.NewRequest("GET", "/", nil), nil, ReauthRequired.With("max_age", 600).WithRetryAfter(1500*time.Millisecond).Wrap(errors.New("private")))
	if rec.Code != 403 || rec.Header().Get("Content-Type") != "application/problem+json" || rec.Header().Get("Retry-After") != "2" {
		t.Fatalf("%d %v", rec.Code, rec.Header())
	}
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"type": TypeBase + "reauthentication_required", "title": ReauthRequired.Title, "status": float64(403), "code": "reauthentication_required", "max_age": float64(600), "request_id": "rid"}
	for k, v := range want {
		if body[k] != v {
			t.Errorf("%s = %v, want %v", k, body[k], v)
		}
	}
	if len(body) != len(want) {
		t.Errorf("unexpected members: %v (the private cause must never be sent)", body)
	}
}
