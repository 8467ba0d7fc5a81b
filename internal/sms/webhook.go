package sms

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/dispatch"
)

// WebhookConfig configures the signed-webhook sender.
type WebhookConfig struct {
	URL    string       // https (or http on a loopback host)
	Secret string       // at least 32 bytes
	Client *http.Client // nil = 15s timeout, no redirects
}

const minWebhookSecret = 32

// Webhook hands messages to an operator's own HTTP endpoint, signed so the
// receiver can tell them from forgeries and replays.
type Webhook struct {
	url    string
	secret []byte
	client *http.Client
}

// NewWebhook validates cfg and returns a sender. A Client given in cfg is
// copied and set not to follow redirects.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	u, err := parseEndpoint(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("sms: webhook: %w", err)
	}
	if len(cfg.Secret) < minWebhookSecret {
		return nil, fmt.Errorf("sms: webhook: secret shorter than %d bytes", minWebhookSecret)
	}
	return &Webhook{url: u.String(), secret: []byte(cfg.Secret), client: httpClient(cfg.Client)}, nil
}

type webhookPayload struct {
	ID     string `json:"id"`
	To     string `json:"to"`
	Body   string `json:"body"`
	SentAt string `json:"sent_at"`
}

// Send POSTs JSON {"id","to","body","sent_at"(RFC 3339)} with headers
// Content-Type: application/json, Gatehouse-Message-Id: <id>, and
// Gatehouse-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
// (Stripe-style, so receivers can refuse replays outside a tolerance
// window). Same status classification as Twilio.
func (w *Webhook) Send(ctx context.Context, m *Message) error {
	if err := checkMessage(m); err != nil {
		return dispatch.Permanent(err)
	}
	now := time.Now()
	body, err := json.Marshal(webhookPayload{ID: m.ID, To: m.To, Body: m.Body, SentAt: now.UTC().Format(time.RFC3339)})
	if err != nil {
		return dispatch.Permanent(fmt.Errorf("sms: webhook: %w", err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return dispatch.Permanent(fmt.Errorf("sms: webhook: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Gatehouse-Message-Id", m.ID)
	req.Header.Set("Gatehouse-Signature", signatureHeader(w.secret, now.Unix(), body))
	return post(w.client, req, "webhook", "")
}

func signatureHeader(secret []byte, t int64, body []byte) string {
	ts := strconv.FormatInt(t, 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(signature(secret, ts, body))
}

func signature(secret []byte, ts string, body []byte) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return mac.Sum(nil)
}

// errSignature is what every refusal of VerifyWebhookSignature wraps.
var errSignature = errors.New("sms: webhook signature refused")

// VerifyWebhookSignature is what a receiver runs (exported so operators' Go
// receivers and our tests share it): it checks the header against body and
// secret with constant-time comparison and refuses timestamps further than
// tolerance from now.
//
// The header is "t=<unix seconds>,v1=<hex>[,v1=<hex>…]": several v1 values
// (a sender mid-way through a secret rotation) pass if any matches; other
// keys are ignored so that later schemes can be added beside v1. A few
// minutes is a sensible tolerance; the receiver should also drop repeated
// Gatehouse-Message-Id values seen within it.
func VerifyWebhookSignature(header string, body []byte, secret string, tolerance time.Duration, now time.Time) error {
	if secret == "" {
		return fmt.Errorf("%w: no secret", errSignature)
	}
	var ts string
	var sigs [][]byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return fmt.Errorf("%w: malformed header", errSignature)
		}
		switch k {
		case "t":
			if ts != "" {
				return fmt.Errorf("%w: more than one timestamp", errSignature)
			}
			ts = v
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil || len(sig) != sha256.Size {
				return fmt.Errorf("%w: malformed v1 signature", errSignature)
			}
			sigs = append(sigs, sig)
		}
	}
	if ts == "" || len(sigs) == 0 {
		return fmt.Errorf("%w: header lacks t or v1", errSignature)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: malformed timestamp", errSignature)
	}
	if skew := now.Sub(time.Unix(sec, 0)).Abs(); skew > tolerance {
		return fmt.Errorf("%w: timestamp %s from now, tolerance %s", errSignature, skew.Truncate(time.Second), tolerance)
	}
	want := signature([]byte(secret), ts, body)
	for _, sig := range sigs {
		if hmac.Equal(sig, want) {
			return nil
		}
	}
	return fmt.Errorf("%w: no matching signature", errSignature)
}
