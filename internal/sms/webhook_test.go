package sms

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const testSecret = "whsec_0123456789abcdef0123456789abcdef"

// webhookReceiver is what an operator runs: it verifies each delivery with
// VerifyWebhookSignature, checks the payload, and answers with status.
func webhookReceiver(t *testing.T, secret string, status int, reply string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var verified atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("read body: %v", err)
		}
		if err := VerifyWebhookSignature(r.Header.Get("Gatehouse-Signature"), body, secret, 5*time.Minute, time.Now()); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		verified.Add(1)
		m := testMessage()
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Gatehouse-Message-Id") != m.ID {
			t.Errorf("%s with Content-Type %q, Gatehouse-Message-Id %q", r.Method, r.Header.Get("Content-Type"), r.Header.Get("Gatehouse-Message-Id"))
		}
		var p map[string]string
		if err := json.Unmarshal(body, &p); err != nil {
			t.Errorf("payload %s: %v", body, err)
		}
		sentAt, err := time.Parse(time.RFC3339, p["sent_at"])
		if err != nil || time.Since(sentAt).Abs() > time.Minute {
			t.Errorf("sent_at %q: %v", p["sent_at"], err)
		}
		if p["id"] != m.ID || p["to"] != m.To || p["body"] != m.Body || len(p) != 4 {
			t.Errorf("payload %v", p)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, reply)
	}))
	t.Cleanup(srv.Close)
	return srv, &verified
}

func TestWebhookSend(t *testing.T) {
	tests := []struct {
		name             string
		receiverSecret   string
		status           int
		reply            string
		wantErr, wantPrm bool
		wantText         []string
	}{
		{name: "accepted", receiverSecret: testSecret, status: 200},
		{name: "accepted with 204", receiverSecret: testSecret, status: 204},
		{
			name: "receiver with another secret refuses", receiverSecret: strings.Repeat("z", 32),
			wantErr: true, wantPrm: true, wantText: []string{"401", "no matching signature"},
		},
		{
			name: "bad request is permanent", receiverSecret: testSecret, status: 422, reply: `{"message":"unroutable"}`,
			wantErr: true, wantPrm: true, wantText: []string{"422", "unroutable"},
		},
		{name: "429 is retryable", receiverSecret: testSecret, status: 429, wantErr: true, wantText: []string{"429"}},
		{name: "502 is retryable", receiverSecret: testSecret, status: 502, reply: "bad gateway", wantErr: true, wantText: []string{"502", "bad gateway"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, verified := webhookReceiver(t, tt.receiverSecret, tt.status, tt.reply)
			wh, err := NewWebhook(WebhookConfig{URL: srv.URL + "/sms", Secret: testSecret})
			if err != nil {
				t.Fatal(err)
			}
			err = wh.Send(context.Background(), testMessage())
			checkSendError(t, err, tt.wantErr, tt.wantPrm, tt.wantText)
			if want := tt.receiverSecret == testSecret; (verified.Load() == 1) != want {
				t.Errorf("receiver verified %d deliveries, want signature valid = %v", verified.Load(), want)
			}
		})
	}
}

func TestWebhookDoesNotFollowRedirects(t *testing.T) {
	srv, followed := redirectServer(t, http.StatusFound)
	wh, err := NewWebhook(WebhookConfig{URL: srv.URL, Secret: testSecret, Client: &http.Client{}})
	if err != nil {
		t.Fatal(err)
	}
	checkSendError(t, wh.Send(context.Background(), testMessage()), true, true, []string{"302"})
	if n := followed.Load(); n != 0 {
		t.Errorf("redirect followed %d times", n)
	}
}

func TestWebhookRefusesBadMessages(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	wh, err := NewWebhook(WebhookConfig{URL: srv.URL, Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	for name, m := range badMessages() {
		t.Run(name, func(t *testing.T) {
			checkSendError(t, wh.Send(context.Background(), m), true, true, nil)
		})
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("%d bad messages reached the receiver", n)
	}
}

func TestNewWebhook(t *testing.T) {
	tests := []struct {
		name string
		cfg  WebhookConfig
		ok   bool
	}{
		{"https", WebhookConfig{URL: "https://sms.example.com/hook", Secret: testSecret}, true},
		{"http on loopback", WebhookConfig{URL: "http://127.0.0.1:9000/hook", Secret: testSecret}, true},
		{"32-byte secret", WebhookConfig{URL: "https://sms.example.com/hook", Secret: strings.Repeat("s", 32)}, true},
		{"31-byte secret", WebhookConfig{URL: "https://sms.example.com/hook", Secret: strings.Repeat("s", 31)}, false},
		{"no secret", WebhookConfig{URL: "https://sms.example.com/hook"}, false},
		{"no URL", WebhookConfig{Secret: testSecret}, false},
		{"http on a public host", WebhookConfig{URL: "http://sms.example.com/hook", Secret: testSecret}, false},
		{"credentials in URL", WebhookConfig{URL: "https://u:p@sms.example.com/hook", Secret: testSecret}, false},
		{"unparsable URL", WebhookConfig{URL: "https://sms.example.com/%zz", Secret: testSecret}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewWebhook(tt.cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("NewWebhook: %v, want ok %v", err, tt.ok)
			}
			if err != nil && tt.cfg.Secret != "" && strings.Contains(err.Error(), tt.cfg.Secret) {
				t.Errorf("error %q contains the secret", err)
			}
		})
	}
}

func TestVerifyWebhookSignature(t *testing.T) {
	now := time.Unix(1_750_000_000, 0)
	body := []byte(`{"id":"sms_x","to":"+447400123456","body":"code 123456","sent_at":"2025-06-15T15:06:40Z"}`)
	sig := func(secret string, at time.Time, b []byte) string {
		return signatureHeader([]byte(secret), at.Unix(), b)
	}
	good := sig(testSecret, now, body)
	v1 := strings.SplitN(good, ",", 2)[1]
	ts := "t=" + strconv.FormatInt(now.Unix(), 10)
	tests := []struct {
		name, header string
		body         []byte
		secret       string
		ok           bool
	}{
		{"valid", good, body, testSecret, true},
		{"valid, 4 minutes old", sig(testSecret, now.Add(-4*time.Minute), body), body, testSecret, true},
		{"valid, spaces after commas", ts + ", " + v1, body, testSecret, true},
		{"valid among several v1 (rotation)", ts + ",v1=" + strings.Repeat("00", 32) + "," + v1, body, testSecret, true},
		{"unknown scheme ignored", ts + ",v0=abc," + v1, body, testSecret, true},
		{"tampered body", good, append([]byte(nil), strings.Replace(string(body), "123456", "654321", 1)...), testSecret, false},
		{"empty body", good, nil, testSecret, false},
		{"wrong secret", good, body, strings.Repeat("x", 40), false},
		{"empty secret", sig("", now, body), body, "", false},
		{"old timestamp", sig(testSecret, now.Add(-6*time.Minute), body), body, testSecret, false},
		{"future timestamp", sig(testSecret, now.Add(6*time.Minute), body), body, testSecret, false},
		{"timestamp changed", "t=" + strconv.FormatInt(now.Unix()+1, 10) + "," + v1, body, testSecret, false},
		{"huge timestamp", "t=9223372036854775807," + v1, body, testSecret, false},
		{"negative timestamp", "t=-1," + v1, body, testSecret, false},
		{"empty header", "", body, testSecret, false},
		{"garbage", "garbage", body, testSecret, false},
		{"no timestamp", v1, body, testSecret, false},
		{"no signature", ts, body, testSecret, false},
		{"two timestamps", ts + "," + ts + "," + v1, body, testSecret, false},
		{"non-numeric timestamp", "t=now," + v1, body, testSecret, false},
		{"non-hex signature", ts + ",v1=" + strings.Repeat("zz", 32), body, testSecret, false},
		{"short signature", ts + ",v1=" + v1[3:19], body, testSecret, false},
		{"upper-case key", strings.Replace(good, "v1=", "V1=", 1), body, testSecret, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyWebhookSignature(tt.header, tt.body, tt.secret, 5*time.Minute, now)
			if (err == nil) != tt.ok {
				t.Fatalf("VerifyWebhookSignature(%q): %v, want ok %v", tt.header, err, tt.ok)
			}
			if err != nil && !errors.Is(err, errSignature) {
				t.Errorf("error %v does not wrap errSignature", err)
			}
		})
	}
}
