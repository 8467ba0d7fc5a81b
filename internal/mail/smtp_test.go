package mail

import (
	"context"
	"net/mail"
	"strings"
	"testing"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/gatehouse-auth/gatehouse/internal/dispatch"
	"github.com/gatehouse-auth/gatehouse/internal/id"
	"github.com/gatehouse-auth/gatehouse/internal/mail/mailtest"
)

const from = "Gatehouse <auth@gatehouse.test>"

func TestNewSMTP(t *testing.T) {
	tests := []struct {
		url      string
		str      string // String(), "" if NewSMTP must fail
		ssl      bool
		policy   gomail.TLSPolicy
		user     string
		password string
		wantErr  string
	}{
		{url: "smtp://mail.example.com", str: "smtp://mail.example.com:587", policy: gomail.TLSMandatory},
		{url: "smtp://mail.example.com:25/", str: "smtp://mail.example.com:25", policy: gomail.TLSMandatory},
		{url: "smtps://mail.example.com", str: "smtps://mail.example.com:465", ssl: true},
		{url: "smtps://mail.example.com:2465", str: "smtps://mail.example.com:2465", ssl: true},
		// Loopback: STARTTLS if offered.
		{url: "smtp://localhost:1025", str: "smtp://localhost:1025", policy: gomail.TLSOpportunistic},
		{url: "smtp://127.0.0.1", str: "smtp://127.0.0.1:587", policy: gomail.TLSOpportunistic},
		{url: "smtp://[::1]:2525", str: "smtp://[::1]:2525", policy: gomail.TLSOpportunistic},
		{url: "smtp://127.0.0.2", str: "smtp://127.0.0.2:587", policy: gomail.TLSMandatory}, // go-mail's loopback test too
		// Credentials are fine: a non-loopback host always gets TLS.
		{url: "smtp://ada:p%40ss@mail.example.com", str: "smtp://mail.example.com:587", policy: gomail.TLSMandatory, user: "ada", password: "p@ss"},
		{url: "smtp://ada:pw@localhost", str: "smtp://localhost:587", policy: gomail.TLSOpportunistic, user: "ada", password: "pw"},
		{url: "smtps://ada:pw@mail.example.com", str: "smtps://mail.example.com:465", ssl: true, user: "ada", password: "pw"},

		{url: "http://mail.example.com", wantErr: "scheme"},
		{url: "mail.example.com:587", wantErr: "scheme"},
		{url: "", wantErr: "scheme"},
		{url: "smtp://", wantErr: "no host"},
		{url: "smtp:mail.example.com", wantErr: "no host"},
		{url: "smtp://:25", wantErr: "no host"},
		{url: "smtp://mail.example.com:0", wantErr: "bad port"},
		{url: "smtp://mail.example.com:65536", wantErr: "bad port"},
		{url: "smtp://mail.example.com:smtp", wantErr: "port"},
		{url: "smtp://mail.example.com/relay", wantErr: "path"},
		{url: "smtp://mail.example.com?tls=off", wantErr: "query"},
		{url: "smtp://ada@mail.example.com", wantErr: "password"},
		{url: "smtp://:pw@mail.example.com", wantErr: "user name"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			s, err := NewSMTP(SMTPConfig{URL: tt.url, From: from})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewSMTP(%q) = %v, want an error with %q", tt.url, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewSMTP(%q): %v", tt.url, err)
			}
			if s.String() != tt.str || s.ssl != tt.ssl || s.user != tt.user || s.password != tt.password {
				t.Errorf("got %s ssl=%v user=%q password=%q", s, s.ssl, s.user, s.password)
			}
			if !tt.ssl && s.policy != tt.policy {
				t.Errorf("TLS policy %s, want %s", s.policy, tt.policy)
			}
			if s.timeout != 30*time.Second || s.domain != "gatehouse.test" {
				t.Errorf("timeout %s, domain %q", s.timeout, s.domain)
			}
		})
	}
}

func TestNewSMTPNeverShowsThePassword(t *testing.T) {
	for _, u := range []string{"smtp://ada:hunter2@mail.example.com:bad", "smtp://ada:hunter2@mail.example.com/x", "ftp://ada:hunter2@mail.example.com"} {
		if _, err := NewSMTP(SMTPConfig{URL: u, From: from}); err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("NewSMTP(%q) error %v", u, err)
		}
	}
	s, err := NewSMTP(SMTPConfig{URL: "smtps://ada:hunter2@mail.example.com", From: from})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(s.String(), "hunter2") || strings.Contains(s.String(), "ada") {
		t.Errorf("String() = %q", s)
	}
}

func TestNewSMTPFrom(t *testing.T) {
	for _, tt := range []struct {
		from, domain string
	}{
		{"auth@example.com", "example.com"},
		{"Example Auth <auth@example.com>", "example.com"},
		{`"Zoë's Café" <no-reply@mail.example.org>`, "mail.example.org"},
	} {
		s, err := NewSMTP(SMTPConfig{URL: "smtp://mail.example.com", From: tt.from})
		if err != nil || s.domain != tt.domain {
			t.Errorf("From %q: %v, domain %q", tt.from, err, s.domain)
		}
	}
	for _, bad := range []string{"", "auth", "Auth <auth@example.com", "auth@example.com, other@example.com", "a@example.com\r\nBcc: x@example.com"} {
		if _, err := NewSMTP(SMTPConfig{URL: "smtp://mail.example.com", From: bad}); err == nil || !strings.Contains(err.Error(), "From") {
			t.Errorf("From %q: %v, want an error", bad, err)
		}
	}
}

// send sends one message through srv, configured by rawURL (srv.URL() if "").
func send(t *testing.T, srv *mailtest.Server, rawURL string, m *Message) error {
	t.Helper()
	if rawURL == "" {
		rawURL = srv.URL()
	}
	s, err := NewSMTP(SMTPConfig{URL: rawURL, From: from, RootCAs: srv.RootCAs(), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s.Send(context.Background(), m)
}

func testMessage() *Message {
	return &Message{ID: id.New("msg"), Kind: "test", To: "ada@example.com", Subject: "Hello", Text: "Hello.\n", HTML: "<p>Hello.</p>"}
}

func TestSendRoundTrip(t *testing.T) {
	srv := mailtest.NewServer(t)
	tmpl, err := NewTemplates("Zoë's Café", "https://auth.example.com")
	if err != nil {
		t.Fatal(err)
	}
	m, err := tmpl.Render(KindVerifyEmail, Data{To: "jürgen@example.com", Link: "https://auth.example.com/verify#token=ghl_abc&x=1", Code: "042917", ExpiresIn: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	m.Text += "Grüße, Привет, 你好 — ✓\n"
	if err := send(t, srv, "", m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := srv.Wait(t, 1, 5*time.Second)[0]

	if got.From != "auth@gatehouse.test" || len(got.To) != 1 || got.To[0] != "jürgen@example.com" {
		t.Errorf("envelope from %q to %q", got.From, got.To)
	}
	if got.Subject != m.Subject || !strings.Contains(got.Subject, "Zoë's Café") {
		t.Errorf("subject %q, want %q", got.Subject, m.Subject)
	}
	if got.Text != m.Text {
		t.Errorf("text part\n%q\nwant\n%q", got.Text, m.Text)
	}
	if got.HTML != m.HTML {
		t.Errorf("html part\n%q\nwant\n%q", got.HTML, m.HTML)
	}
	if h := got.Header.Get("Message-Id"); h != "<"+m.ID+"@gatehouse.test>" {
		t.Errorf("Message-ID %q", h)
	}
	if h := got.Header.Get("Auto-Submitted"); h != "auto-generated" {
		t.Errorf("Auto-Submitted %q", h)
	}
	if h := got.Header.Get("Content-Type"); !strings.HasPrefix(h, "multipart/alternative;") {
		t.Errorf("Content-Type %q", h)
	}
	if d, err := got.Header.Date(); err != nil || time.Since(d) > time.Minute {
		t.Errorf("Date %q: %v", got.Header.Get("Date"), err)
	}
	if a, err := mail.ParseAddress(got.Header.Get("From")); err != nil || a.Name != "Gatehouse" || a.Address != "auth@gatehouse.test" {
		t.Errorf("From header %q: %v", got.Header.Get("From"), err)
	}
	for _, h := range []string{"User-Agent", "X-Mailer"} {
		if v := got.Header.Get(h); v != "" {
			t.Errorf("%s header %q gives the library away", h, v)
		}
	}
}

func TestSendTextOnly(t *testing.T) {
	srv := mailtest.NewServer(t)
	m := testMessage()
	m.HTML = ""
	if err := send(t, srv, "", m); err != nil {
		t.Fatal(err)
	}
	got := srv.Wait(t, 1, 5*time.Second)[0]
	if got.Text != "Hello.\n" || got.HTML != "" || !strings.HasPrefix(got.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("text-only message: %q %q %q", got.Header.Get("Content-Type"), got.Text, got.HTML)
	}
}

func TestSendSTARTTLS(t *testing.T) {
	srv := mailtest.NewServer(t, mailtest.StartTLS())
	if err := send(t, srv, "", testMessage()); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got := srv.Wait(t, 1, 5*time.Second)[0]; !got.TLS {
		t.Error("a loopback server offering STARTTLS got the message in plaintext")
	}

	// A certificate the sender does not trust fails, and may be fixed (retry).
	s, err := NewSMTP(SMTPConfig{URL: srv.URL(), From: from, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Send(context.Background(), testMessage())
	if err == nil || dispatch.IsPermanent(err) || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted certificate: %v", err)
	}
	if n := len(srv.Messages()); n != 1 {
		t.Errorf("%d messages delivered, want 1", n)
	}
}

func TestSendImplicitTLS(t *testing.T) {
	srv := mailtest.NewServer(t, mailtest.ImplicitTLS())
	if !strings.HasPrefix(srv.URL(), "smtps://") {
		t.Fatalf("URL %q", srv.URL())
	}
	if err := send(t, srv, "", testMessage()); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got := srv.Wait(t, 1, 5*time.Second)[0]; !got.TLS {
		t.Error("smtps delivered in plaintext")
	}
}

func TestSTARTTLSRequiredOffLoopback(t *testing.T) {
	// The test server is on loopback, so give the sender the policy of a
	// remote host, which NewSMTP chooses for every non-loopback host (see
	// TestNewSMTP).
	srv := mailtest.NewServer(t) // no STARTTLS
	s, err := NewSMTP(SMTPConfig{URL: strings.Replace(srv.URL(), "smtp://", "smtp://ada:pw@", 1), From: from, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s.policy = gomail.TLSMandatory
	err = s.Send(context.Background(), testMessage())
	if err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Fatalf("Send without STARTTLS = %v, want a STARTTLS error", err)
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("%d messages delivered in plaintext", n)
	}
}

func TestSendAuth(t *testing.T) {
	srv := mailtest.NewServer(t, mailtest.StartTLS(), mailtest.Auth("ada", "s3cret pass"))
	withCreds := func(user string) string {
		return strings.Replace(srv.URL(), "smtp://", "smtp://"+user+"@", 1)
	}
	if err := send(t, srv, withCreds("ada:s3cret%20pass"), testMessage()); err != nil {
		t.Fatalf("Send with the right password: %v", err)
	}
	if got := srv.Wait(t, 1, 5*time.Second)[0]; !got.TLS {
		t.Error("authenticated in plaintext")
	}

	err := send(t, srv, withCreds("ada:wrong"), testMessage())
	if err == nil || !dispatch.IsPermanent(err) || !strings.Contains(err.Error(), "535") {
		t.Errorf("wrong password: %v, want a permanent 535", err)
	}
	err = send(t, srv, "", testMessage())
	if err == nil || !dispatch.IsPermanent(err) {
		t.Errorf("no credentials: %v, want a permanent error", err)
	}
	if n := len(srv.Messages()); n != 1 {
		t.Errorf("%d messages delivered, want 1", n)
	}
}

func TestSendAuthPlaintextLoopback(t *testing.T) {
	// A local relay without TLS (a development mail catcher) may take
	// credentials: they never leave the machine.
	srv := mailtest.NewServer(t, mailtest.Auth("ada", "pw"))
	if err := send(t, srv, strings.Replace(srv.URL(), "smtp://", "smtp://ada:pw@", 1), testMessage()); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got := srv.Wait(t, 1, 5*time.Second)[0]; got.TLS {
		t.Error("TLS without STARTTLS?")
	}
}

func TestSendRejected(t *testing.T) {
	srv := mailtest.NewServer(t)

	srv.SetReject(550)
	err := send(t, srv, "", testMessage())
	if err == nil || !dispatch.IsPermanent(err) || !strings.Contains(err.Error(), "550") {
		t.Errorf("550: %v, want a permanent error", err)
	}

	srv.SetReject(451)
	err = send(t, srv, "", testMessage())
	if err == nil || dispatch.IsPermanent(err) || !strings.Contains(err.Error(), "451") {
		t.Errorf("451: %v, want a retryable error", err)
	}

	srv.SetReject(0)
	if err := send(t, srv, "", testMessage()); err != nil {
		t.Errorf("after the server recovered: %v", err)
	}
	if n := len(srv.Wait(t, 1, 5*time.Second)); n != 1 {
		t.Errorf("%d messages delivered, want 1", n)
	}
}

func TestSendConnectionFailureIsRetryable(t *testing.T) {
	srv := mailtest.NewServer(t)
	s, err := NewSMTP(SMTPConfig{URL: srv.URL(), From: from})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Send(ctx, testMessage()); err == nil || dispatch.IsPermanent(err) {
		t.Errorf("cancelled send: %v, want a retryable error", err)
	}
}

func TestSendRefusesBadMessages(t *testing.T) {
	s, err := NewSMTP(SMTPConfig{URL: "smtp://127.0.0.1:1", From: from})
	if err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(*Message){
		"bad recipient": func(m *Message) { m.To = "not an address" },
		"no recipient":  func(m *Message) { m.To = "" },
		"header in id":  func(m *Message) { m.ID = "msg_x>\r\nBcc: x@example.com" },
		"empty text":    func(m *Message) { m.Text = "" },
	} {
		m := testMessage()
		edit(m)
		if err := s.Send(context.Background(), m); err == nil || !dispatch.IsPermanent(err) {
			t.Errorf("%s: %v, want a permanent error", name, err)
		}
	}
}
