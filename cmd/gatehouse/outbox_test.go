package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/outbox"
)

func TestOutboxCommand(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()

	var stdout bytes.Buffer
	if err := outboxCommand(ctx, []string{"--data-dir", dir}, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "empty") {
		t.Errorf("empty outbox printed %q", stdout.String())
	}

	o := outbox.Open(dir)
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, e := range []outbox.Entry{
		{Channel: "email", To: "old@example.com", Subject: "Old", Body: "old body", At: at},
		{Channel: "email", To: "ada@example.com", Subject: "Reset your Gatehouse password", Body: "Reset it here:\nhttps://auth.example.com/reset#t=abc\n", At: at.Add(time.Minute)},
		{Channel: "sms", To: "+15550100", Body: "Your code is 123456", At: at.Add(2 * time.Minute)},
	} {
		if err := o.Append(e); err != nil {
			t.Fatal(err)
		}
	}

	stdout.Reset()
	if err := outboxCommand(ctx, []string{"--data-dir", dir, "-n", "2"}, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	want := "2026-05-01T12:01:00Z  email  to ada@example.com\n" +
		"Subject: Reset your Gatehouse password\n" +
		"    Reset it here:\n" +
		"    https://auth.example.com/reset#t=abc\n" +
		"\n" +
		"2026-05-01T12:02:00Z  sms  to +15550100\n" +
		"    Your code is 123456\n"
	if stdout.String() != want {
		t.Errorf("outbox -n 2 printed\n%s\nwant\n%s", stdout.String(), want)
	}

	// The data directory can come from the environment, like every flag.
	t.Setenv("GATEHOUSE_DATA_DIR", dir)
	stdout.Reset()
	if err := outboxCommand(ctx, []string{"--json"}, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("--json printed %d lines: %q", len(lines), stdout.String())
	}
	var e outbox.Entry
	if err := json.Unmarshal([]byte(lines[1]), &e); err != nil {
		t.Fatal(err)
	}
	if e.To != "ada@example.com" || e.Channel != "email" || !e.At.Equal(at.Add(time.Minute)) || !strings.HasPrefix(e.ID, "out_") {
		t.Errorf("--json entry %+v", e)
	}
}

func TestOutboxCommandUsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"--data-dir", dir, "extra"},
		{"--data-dir", dir, "-n", "0"},
		{"--data-dir", dir, "--bogus"},
	} {
		if err := outboxCommand(context.Background(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("outbox %q succeeded", args)
		}
	}
}
