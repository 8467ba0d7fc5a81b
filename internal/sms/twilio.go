package sms

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/gatehouse-auth/gatehouse/internal/dispatch"
)

// TwilioConfig configures the Twilio-compatible sender.
type TwilioConfig struct {
	AccountSID string
	AuthToken  string
	From       string       // E.164 sender number or a Messaging Service SID ("MG…": then sent as MessagingServiceSid)
	BaseURL    string       // default "https://api.twilio.com"; tests point it at an httptest server. Must be https unless the host is loopback.
	Client     *http.Client // nil = a client with a 15s timeout that does not follow redirects
}

const defaultTwilioBaseURL = "https://api.twilio.com"

var (
	// accountSIDPattern admits Twilio's "AC…" and the project ids of
	// Twilio-compatible providers, and keeps the SID safe in a URL path.
	accountSIDPattern = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)
	serviceSIDPattern = regexp.MustCompile(`^MG[0-9a-fA-F]{32}$`)
)

// Twilio sends messages through Twilio's Messages API, or any provider that
// implements it.
type Twilio struct {
	endpoint  string
	sid       string
	token     string
	fromField string // "From" or "MessagingServiceSid"
	from      string
	client    *http.Client
}

// NewTwilio validates cfg and returns a sender. A Client given in cfg is
// copied and set not to follow redirects.
func NewTwilio(cfg TwilioConfig) (*Twilio, error) {
	if !accountSIDPattern.MatchString(cfg.AccountSID) {
		return nil, errors.New("sms: twilio: account SID missing or malformed")
	}
	if cfg.AuthToken == "" {
		return nil, errors.New("sms: twilio: auth token missing")
	}
	t := &Twilio{sid: cfg.AccountSID, token: cfg.AuthToken, from: cfg.From, client: httpClient(cfg.Client)}
	switch {
	case e164Pattern.MatchString(cfg.From):
		t.fromField = "From"
	case serviceSIDPattern.MatchString(cfg.From):
		t.fromField = "MessagingServiceSid"
	default:
		return nil, fmt.Errorf("sms: twilio: sender %q is neither an E.164 number nor a Messaging Service SID (MG…)", cfg.From)
	}
	base := cfg.BaseURL
	if base == "" {
		base = defaultTwilioBaseURL
	}
	u, err := parseEndpoint(base)
	if err != nil {
		return nil, fmt.Errorf("sms: twilio: base URL: %w", err)
	}
	t.endpoint = strings.TrimRight(u.String(), "/") + "/2010-04-01/Accounts/" + cfg.AccountSID + "/Messages.json"
	return t, nil
}

// Send POSTs application/x-www-form-urlencoded To, From (or
// MessagingServiceSid), Body to {BaseURL}/2010-04-01/Accounts/{AccountSID}/Messages.json
// with HTTP Basic auth AccountSID:AuthToken. 2xx = sent. 4xx other than
// 408/429 → dispatch.Permanent(err); 408, 429, 5xx and network errors are
// returned as retryable errors. Error messages include the status and
// Twilio's JSON error code/message if present, never the auth token.
func (t *Twilio) Send(ctx context.Context, m *Message) error {
	if err := checkMessage(m); err != nil {
		return dispatch.Permanent(err)
	}
	form := url.Values{"To": {m.To}, t.fromField: {t.from}, "Body": {m.Body}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return dispatch.Permanent(fmt.Errorf("sms: twilio: %w", err))
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(t.sid, t.token)
	return post(t.client, req, "twilio", t.token)
}
