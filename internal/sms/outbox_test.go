package sms

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/outbox"
)

func TestOutboxSender(t *testing.T) {
	o := outbox.Open(t.TempDir())
	var logs bytes.Buffer
	s := NewOutboxSender(o, slog.New(slog.NewTextHandler(&logs, nil)))
	m := testMessage()
	before := time.Now()
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	entries, err := o.List(10)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("outbox has %d entries, want 1: %+v", len(entries), entries)
	}
	e := entries[0]
	if e.ID != m.ID || e.Channel != "sms" || e.To != m.To || e.Body != m.Body || e.Subject != "" {
		t.Errorf("entry %+v, want the message %+v on channel sms", e, m)
	}
	if e.At.Before(before.Add(-time.Second)) || e.At.After(time.Now().Add(time.Second)) {
		t.Errorf("entry time %v, want about now", e.At)
	}
	for _, want := range []string{"level=INFO", m.To, "123456"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log %q lacks %q", logs.String(), want)
		}
	}
	if err := s.Send(context.Background(), nil); err == nil {
		t.Error("nil message accepted")
	}
}
