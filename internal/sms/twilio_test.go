package sms

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gatehouse-auth/gatehouse/internal/dispatch"
)

const (
	testSID        = "AC0123456789abcdef0123456789abcdef"
	testToken      = "tok_9f8e7d6c5b4a39281706f5e4d3c2b1a0"
	testServiceSID = "MG0123456789abcdef0123456789abcdef"
	testFrom       = "+15005550006"
)

func testMessage() *Message {
	return &Message{ID: "sms_abcdefghijklmnopqrstuvwxyz", To: "+447400123456", Body: "Your Gatehouse code is 123456"}
}

// twilioServer is a Twilio-compatible Messages endpoint. It answers with
// status and reply once the request has been checked.
func twilioServer(t *testing.T, status int, reply string, wantFrom [2]string) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/2010-04-01/Accounts/{sid}/Messages.json", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			t.Errorf("method %s, want POST", r.Method)
		}
		if sid := r.PathValue("sid"); sid != testSID {
			t.Errorf("account in path %q, want %q", sid, testSID)
		}
		if user, pass, ok := r.BasicAuth(); !ok || user != testSID || pass != testToken {
			t.Errorf("basic auth %q:%q (%v), want the account SID and token", user, pass, ok)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
			t.Errorf("Content-Type %q", ct)
		}
		if err := r.ParseForm(); err != nil {
			t.Errorf("form: %v", err)
		}
		m := testMessage()
		want := map[string]string{"To": m.To, "Body": m.Body, wantFrom[0]: wantFrom[1]}
		for k, v := range want {
			if got := r.PostForm.Get(k); got != v {
				t.Errorf("form %s = %q, want %q", k, got, v)
			}
		}
		if len(r.PostForm) != len(want) {
			t.Errorf("form has fields %v, want exactly %v", r.PostForm, want)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, reply)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("unexpected request %s %s", r.Method, r.URL)
		http.NotFound(w, r)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestTwilioSend(t *testing.T) {
	const created = `{"sid":"SM0123456789abcdef0123456789abcdef","status":"queued","to":"+447400123456","error_code":null}`
	tests := []struct {
		name          string
		from          string
		status        int
		reply         string
		wantErr       bool
		wantPermanent bool
		wantText      []string
	}{
		{name: "created", from: testFrom, status: 201, reply: created},
		{name: "created via messaging service", from: testServiceSID, status: 201, reply: created},
		{name: "200 is sent too", from: testFrom, status: 200, reply: created},
		{
			name: "invalid To is permanent", from: testFrom, status: 400,
			reply:   `{"code":21211,"message":"Invalid 'To' Phone Number","more_info":"https://www.twilio.com/docs/errors/21211","status":400}`,
			wantErr: true, wantPermanent: true, wantText: []string{"400", "21211", "Invalid 'To' Phone Number"},
		},
		{
			name: "token echoed by the peer is redacted", from: testFrom, status: 401,
			reply:   `{"code":20003,"message":"Authenticate: bad token ` + testToken + `"}`,
			wantErr: true, wantPermanent: true, wantText: []string{"401", "20003", "[REDACTED]"},
		},
		{
			name: "non-JSON error body", from: testFrom, status: 403, reply: "<html>forbidden</html>",
			wantErr: true, wantPermanent: true, wantText: []string{"403", "<html>forbidden</html>"},
		},
		{
			name: "too many requests is retryable", from: testFrom, status: 429,
			reply:   `{"code":20429,"message":"Too Many Requests"}`,
			wantErr: true, wantText: []string{"429", "20429", "Too Many Requests"},
		},
		{name: "request timeout is retryable", from: testFrom, status: 408, reply: "", wantErr: true, wantText: []string{"408"}},
		{
			name: "unavailable is retryable", from: testFrom, status: 503, reply: "upstream down",
			wantErr: true, wantText: []string{"503", "upstream down"},
		},
		{
			name: "huge error body is cut", from: testFrom, status: 500, reply: strings.Repeat("x", 1<<20),
			wantErr: true, wantText: []string{"500", "xxx…"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			field := "From"
			if strings.HasPrefix(tt.from, "MG") {
				field = "MessagingServiceSid"
			}
			srv := twilioServer(t, tt.status, tt.reply, [2]string{field, tt.from})
			tw, err := NewTwilio(TwilioConfig{AccountSID: testSID, AuthToken: testToken, From: tt.from, BaseURL: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			err = tw.Send(context.Background(), testMessage())
			checkSendError(t, err, tt.wantErr, tt.wantPermanent, tt.wantText)
			if err != nil && len(err.Error()) > 600 {
				t.Errorf("error is %d bytes long; the peer's text must be cut", len(err.Error()))
			}
		})
	}
}

// checkSendError checks a Send result's classification and text, and that
// the test token never shows.
func checkSendError(t *testing.T, err error, wantErr, wantPermanent bool, wantText []string) {
	t.Helper()
	if (err != nil) != wantErr {
		t.Fatalf("Send: %v, want error %v", err, wantErr)
	}
	if err == nil {
		return
	}
	if got := dispatch.IsPermanent(err); got != wantPermanent {
		t.Errorf("IsPermanent(%v) = %v, want %v", err, got, wantPermanent)
	}
	for _, s := range wantText {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q lacks %q", err, s)
		}
	}
	if strings.Contains(err.Error(), testToken) {
		t.Errorf("error %q contains the auth token", err)
	}
}

// redirectServer answers every request at / with a redirect to /elsewhere,
// and counts requests that reach /elsewhere.
func redirectServer(t *testing.T, code int) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var followed atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) {
		followed.Add(1)
		w.WriteHeader(http.StatusCreated)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere", code)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, &followed
}

func TestTwilioDoesNotFollowRedirects(t *testing.T) {
	for _, tt := range []struct {
		name   string
		client *http.Client
	}{
		{"default client", nil},
		{"caller's client that follows redirects", &http.Client{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv, followed := redirectServer(t, http.StatusTemporaryRedirect)
			tw, err := NewTwilio(TwilioConfig{AccountSID: testSID, AuthToken: testToken, From: testFrom, BaseURL: srv.URL, Client: tt.client})
			if err != nil {
				t.Fatal(err)
			}
			err = tw.Send(context.Background(), testMessage())
			checkSendError(t, err, true, true, []string{"307"})
			if n := followed.Load(); n != 0 {
				t.Errorf("redirect followed %d times", n)
			}
			if tt.client != nil && tt.client.CheckRedirect != nil {
				t.Error("the caller's client was modified")
			}
		})
	}
}

func TestTwilioNetworkErrorIsRetryable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	tw, err := NewTwilio(TwilioConfig{AccountSID: testSID, AuthToken: testToken, From: testFrom, BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	checkSendError(t, tw.Send(context.Background(), testMessage()), true, false, []string{"twilio"})
}

func TestTwilioRefusesBadMessages(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	tw, err := NewTwilio(TwilioConfig{AccountSID: testSID, AuthToken: testToken, From: testFrom, BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	for name, m := range badMessages() {
		t.Run(name, func(t *testing.T) {
			checkSendError(t, tw.Send(context.Background(), m), true, true, nil)
		})
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("%d bad messages reached the provider", n)
	}
}

func badMessages() map[string]*Message {
	bad := func(f func(m *Message)) *Message {
		m := testMessage()
		f(m)
		return m
	}
	return map[string]*Message{
		"nil":              nil,
		"no id":            bad(func(m *Message) { m.ID = "" }),
		"id with newline":  bad(func(m *Message) { m.ID = "sms_a\r\nX-Evil: 1" }),
		"national number":  bad(func(m *Message) { m.To = "07400123456" }),
		"formatted number": bad(func(m *Message) { m.To = "+44 7400 123456" }),
		"empty body":       bad(func(m *Message) { m.Body = "" }),
	}
}

func TestNewTwilio(t *testing.T) {
	valid := TwilioConfig{AccountSID: testSID, AuthToken: testToken, From: testFrom}
	with := func(f func(c *TwilioConfig)) TwilioConfig {
		c := valid
		f(&c)
		return c
	}
	tests := []struct {
		name         string
		cfg          TwilioConfig
		wantEndpoint string // "" = refused
	}{
		{"default base URL", valid, "https://api.twilio.com/2010-04-01/Accounts/" + testSID + "/Messages.json"},
		{"messaging service", with(func(c *TwilioConfig) { c.From = testServiceSID }), "https://api.twilio.com/2010-04-01/Accounts/" + testSID + "/Messages.json"},
		{"compatible provider with a path", with(func(c *TwilioConfig) {
			c.BaseURL, c.AccountSID = "https://example.signalwire.com/api/laml/", "b0a1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d"
		}), "https://example.signalwire.com/api/laml/2010-04-01/Accounts/b0a1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d/Messages.json"},
		{"http on 127.0.0.1", with(func(c *TwilioConfig) { c.BaseURL = "http://127.0.0.1:8080" }), "http://127.0.0.1:8080/2010-04-01/Accounts/" + testSID + "/Messages.json"},
		{"http on ::1", with(func(c *TwilioConfig) { c.BaseURL = "http://[::1]:8080" }), "http://[::1]:8080/2010-04-01/Accounts/" + testSID + "/Messages.json"},
		{"http on localhost", with(func(c *TwilioConfig) { c.BaseURL = "http://localhost:8080" }), "http://localhost:8080/2010-04-01/Accounts/" + testSID + "/Messages.json"},
		{"missing SID", with(func(c *TwilioConfig) { c.AccountSID = "" }), ""},
		{"SID with a path", with(func(c *TwilioConfig) { c.AccountSID = "AC123/../x" }), ""},
		{"missing token", with(func(c *TwilioConfig) { c.AuthToken = "" }), ""},
		{"missing from", with(func(c *TwilioConfig) { c.From = "" }), ""},
		{"national from", with(func(c *TwilioConfig) { c.From = "5005550006" }), ""},
		{"alphanumeric from", with(func(c *TwilioConfig) { c.From = "Gatehouse" }), ""},
		{"short service SID", with(func(c *TwilioConfig) { c.From = "MG123" }), ""},
		{"http on a public host", with(func(c *TwilioConfig) { c.BaseURL = "http://api.twilio.com" }), ""},
		{"http on a private address", with(func(c *TwilioConfig) { c.BaseURL = "http://10.0.0.5" }), ""},
		{"other scheme", with(func(c *TwilioConfig) { c.BaseURL = "ftp://api.twilio.com" }), ""},
		{"no host", with(func(c *TwilioConfig) { c.BaseURL = "https:///path" }), ""},
		{"relative", with(func(c *TwilioConfig) { c.BaseURL = "api.twilio.com" }), ""},
		{"credentials in URL", with(func(c *TwilioConfig) { c.BaseURL = "https://user:pw@api.twilio.com" }), ""},
		{"query in URL", with(func(c *TwilioConfig) { c.BaseURL = "https://api.twilio.com?x=1" }), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tw, err := NewTwilio(tt.cfg)
			if tt.wantEndpoint == "" {
				if err == nil {
					t.Fatalf("NewTwilio accepted %+v", tt.cfg)
				}
				if strings.Contains(err.Error(), testToken) {
					t.Errorf("error %q contains the auth token", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tw.endpoint != tt.wantEndpoint {
				t.Errorf("endpoint %q, want %q", tw.endpoint, tt.wantEndpoint)
			}
		})
	}
}

func TestDefaultClient(t *testing.T) {
	c := httpClient(nil)
	if c.Timeout != httpTimeout || c.CheckRedirect == nil {
		t.Errorf("default client: timeout %v, redirect policy set %v", c.Timeout, c.CheckRedirect != nil)
	}
	if err := c.CheckRedirect(nil, nil); !errors.Is(err, http.ErrUseLastResponse) {
		t.Errorf("redirect policy returns %v", err)
	}
}
