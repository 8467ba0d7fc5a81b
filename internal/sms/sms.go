// Package sms owns outbound text messages: the Sender interface, a
// Twilio-compatible HTTP sender, a generic signed-webhook sender, the
// development sender that writes to the dev outbox, and the normalization of
// phone numbers to E.164.
package sms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gatehouse-auth/gatehouse/internal/dispatch"
)

// Message is one text message to send.
type Message struct {
	ID   string // "sms_" + random (the caller sets it with id.New("sms"))
	To   string // E.164
	Body string
}

// Sender delivers a message. HTTP senders mark failures that a retry cannot
// fix with dispatch.Permanent; every other error is worth retrying.
type Sender interface {
	Send(ctx context.Context, m *Message) error
}

var (
	e164Pattern      = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	messageIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,100}$`)
)

// checkMessage refuses a message no provider could deliver. The ID goes into
// an HTTP header, so it is held to the shape id.New produces.
func checkMessage(m *Message) error {
	switch {
	case m == nil:
		return errors.New("sms: nil message")
	case !messageIDPattern.MatchString(m.ID):
		return fmt.Errorf("sms: message id %q is not an id", m.ID)
	case !e164Pattern.MatchString(m.To):
		return errors.New("sms: recipient is not an E.164 number")
	case m.Body == "":
		return errors.New("sms: empty message body")
	}
	return nil
}

const (
	httpTimeout  = 15 * time.Second
	maxReplySize = 64 << 10 // bytes of a provider's reply that are read
	maxDetailLen = 300      // bytes of a provider's error message kept in our error
)

// noRedirect makes a client hand back a redirect instead of following it:
// following would re-send the credentials and the message to wherever the
// peer points.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// httpClient returns c (or a default client with a timeout) set never to
// follow redirects. A caller's client is copied, not modified; its transport
// is shared.
func httpClient(c *http.Client) *http.Client {
	if c == nil {
		return &http.Client{Timeout: httpTimeout, CheckRedirect: noRedirect}
	}
	cp := *c
	cp.CheckRedirect = noRedirect
	return &cp
}

// parseEndpoint parses an endpoint URL: https, or http only on a loopback
// host (a local relay, a test server), without credentials, query or fragment.
func parseEndpoint(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid URL: %w", err)
	}
	switch {
	case u.Host == "" || u.Opaque != "":
		return nil, fmt.Errorf("URL %q has no host", raw)
	case u.User != nil:
		return nil, errors.New("URL must not contain credentials")
	case u.RawQuery != "" || u.Fragment != "":
		return nil, errors.New("URL must not contain a query or fragment")
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopback(u.Hostname()):
	default:
		return nil, fmt.Errorf("URL %q must be https (http only on a loopback host)", u.Redacted())
	}
	return u, nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// post sends one request and classifies the outcome: 2xx is success; 408,
// 429, 5xx and transport errors are retryable; anything else (other 4xx, an
// unfollowed redirect) is dispatch.Permanent. secret, if not empty, is
// scrubbed from whatever the peer said before it goes into the error.
func post(client *http.Client, req *http.Request, name, secret string) error {
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("sms: %s: %w", name, err)
	}
	defer resp.Body.Close()
	// Read (a bounded part of) the reply even on success, so the connection
	// can be reused; a failed read only shortens the error's detail.
	reply, _ := io.ReadAll(io.LimitReader(resp.Body, maxReplySize))
	status := resp.StatusCode
	if status >= 200 && status < 300 {
		return nil
	}
	detail := replyDetail(reply, secret)
	if status >= 300 && status < 400 {
		detail = " (redirects are not followed)" + detail
	}
	fail := fmt.Errorf("sms: %s: HTTP %d%s", name, status, detail)
	if status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500 {
		return fail
	}
	return dispatch.Permanent(fail)
}

// replyDetail summarizes an error reply for our error message: Twilio-style
// JSON {"code", "message"} when present, otherwise the start of the body.
// The peer's text is quoted so it cannot forge log lines.
func replyDetail(reply []byte, secret string) string {
	var e struct {
		Code    json.Number `json:"code"`
		Message string      `json:"message"`
	}
	code, msg := "", string(reply)
	if json.Unmarshal(reply, &e) == nil && (e.Code != "" || e.Message != "") {
		code, msg = e.Code.String(), e.Message
	}
	var b strings.Builder
	if code != "" {
		b.WriteString(", error " + truncate(code))
	}
	if msg != "" {
		if secret != "" {
			msg = strings.ReplaceAll(msg, secret, "[REDACTED]")
		}
		fmt.Fprintf(&b, ": %q", truncate(msg))
	}
	return b.String()
}

// truncate cuts s to at most maxDetailLen bytes without splitting a rune.
func truncate(s string) string {
	if len(s) <= maxDetailLen {
		return s
	}
	cut := maxDetailLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
