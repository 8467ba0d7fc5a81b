// Package mail owns outbound e-mail: the messages Gatehouse sends (rendered
// from the embedded templates, one per kind), the Sender interface, the SMTP
// sender, and the development sender that writes to the log and the dev
// outbox instead. Senders mark failures that a retry cannot fix with
// dispatch.Permanent; every other error is worth retrying.
package mail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/dispatch"
	"github.com/gatehouse-auth/gatehouse/internal/outbox"
)

// Message is one rendered e-mail.
type Message struct {
	ID      string // "msg_" + random; the Message-ID header is <ID@domain-of-From>
	Kind    string // the template name
	To      string
	Subject string
	Text    string
	HTML    string
}

// Sender delivers a message.
type Sender interface {
	Send(ctx context.Context, m *Message) error
}

var messageIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,100}$`)

// checkMessage refuses a message no server could deliver. The ID goes into
// the Message-ID header, so it is held to the shape id.New produces.
func checkMessage(m *Message) error {
	switch {
	case m == nil:
		return dispatch.Permanent(errors.New("mail: nil message"))
	case !messageIDPattern.MatchString(m.ID):
		return dispatch.Permanent(fmt.Errorf("mail: message id %q is not an id", m.ID))
	case m.To == "":
		return dispatch.Permanent(errors.New("mail: no recipient"))
	case m.Text == "":
		return dispatch.Permanent(errors.New("mail: empty text body"))
	}
	return nil
}

// outboxSender keeps messages on this machine instead of sending them.
type outboxSender struct {
	outbox *outbox.Outbox
	log    *slog.Logger
}

// NewOutboxSender is the development sender: it logs each message (to,
// subject, text body) at info level and appends it to the dev outbox with
// Channel "email".
func NewOutboxSender(o *outbox.Outbox, log *slog.Logger) Sender {
	return &outboxSender{outbox: o, log: log}
}

func (s *outboxSender) Send(ctx context.Context, m *Message) error {
	if err := checkMessage(m); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "mail: development outbox", slog.String("id", m.ID), slog.String("kind", m.Kind),
		slog.String("to", m.To), slog.String("subject", m.Subject), slog.String("text", m.Text))
	e := outbox.Entry{ID: m.ID, Channel: "email", To: m.To, Subject: m.Subject, Body: m.Text, At: time.Now().UTC()}
	if err := s.outbox.Append(e); err != nil {
		return fmt.Errorf("mail: %w", err)
	}
	return nil
}
