package sms

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/outbox"
)

// outboxSender keeps messages on this machine instead of sending them.
type outboxSender struct {
	outbox *outbox.Outbox
	log    *slog.Logger
}

// NewOutboxSender is the development sender: logs the message (to, body) at
// info and appends it to the dev outbox with Channel "sms".
func NewOutboxSender(o *outbox.Outbox, log *slog.Logger) Sender {
	return &outboxSender{outbox: o, log: log}
}

func (s *outboxSender) Send(ctx context.Context, m *Message) error {
	if err := checkMessage(m); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "sms: development outbox", slog.String("id", m.ID), slog.String("to", m.To), slog.String("body", m.Body))
	if err := s.outbox.Append(outbox.Entry{ID: m.ID, Channel: "sms", To: m.To, Body: m.Body, At: time.Now().UTC()}); err != nil {
		return fmt.Errorf("sms: outbox: %w", err)
	}
	return nil
}
