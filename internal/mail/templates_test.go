package mail

import (
	"bytes"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/outbox"
)

func newTemplates(t *testing.T) *Templates {
	t.Helper()
	tmpl, err := NewTemplates("Acme Auth", "https://auth.acme.test")
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

var full = Data{
	To:        "ada@example.com",
	Link:      "https://auth.acme.test/act#token=ghl_Zm9v-YmFy_9&next=%2F",
	Code:      "042917",
	ExpiresIn: 15 * time.Minute,
	NewEmail:  "ada.new@example.com",
	Phone:     "+447400123456",
	Change:    "An authenticator app was turned on",
	IP:        "203.0.113.7",
	Device:    "Firefox on Linux",
	Location:  "Lisbon, Portugal",
	At:        time.Date(2026, 5, 1, 9, 30, 0, 0, time.UTC),
}

// wants are what each kind shows of full, in its text and HTML bodies.
var wants = map[string][]string{
	KindVerifyEmail:      {full.Link, full.Code, "is your e-mail address", "expire in 15 minutes", "ignore this e-mail"},
	KindRecovery:         {full.Link, "works once", "expires in 15 minutes", "ignore this e-mail"},
	KindPasswordChanged:  {full.Link, full.IP, full.Device, "1 May 2026, 09:30 UTC", "was changed"},
	KindMagicLink:        {full.Link, "works once", "expires in 15 minutes", "ignore this e-mail"},
	KindEmailOTP:         {full.Code, "expires in 15 minutes", "ignore this e-mail"},
	KindChangeEmail:      {full.Link, full.NewEmail, "expires in 15 minutes", "ignore this e-mail"},
	KindEmailChanged:     {full.NewEmail, full.Link, full.IP, "1 May 2026, 09:30 UTC", "undo", "expires in 15 minutes"},
	KindMFAChanged:       {full.Change, full.Link, full.IP, "reset your password"},
	KindRecoveryCodeUsed: {full.Link, full.IP, full.Device, "recovery codes", "reset your password"},
	KindPhoneAdded:       {full.Phone[1:], full.Link, full.IP, "sign-in codes", "reset your password"},
	KindAccountExists:    {full.Link, full.To, "already has an account", "ignore this e-mail"},
	KindNewDevice:        {full.Link, full.IP, full.Device, full.Location, "1 May 2026, 09:30 UTC", "had not signed in", "works once", "expires in 15 minutes"},
	KindPasswordUsed:     {full.Link, full.IP, full.Device, full.Location, "1 May 2026, 09:30 UTC", "right password", "not signed in", "works once"},
}

var (
	blankLines  = regexp.MustCompile(`\n\n\n`)
	leftovers   = regexp.MustCompile(`<no value>|\{\{|\}\}|%!`)
	sixDigits   = regexp.MustCompile(`\b(\d{6})\b`)
	remoteStuff = regexp.MustCompile(`(?i)<script|<img|<link|<iframe|src=|javascript:|@import|url\(`)
	unescaped   = regexp.MustCompile(`(?i)<script|<img|<b>|href="javascript:`)
)

func TestRenderEveryKind(t *testing.T) {
	tmpl := newTemplates(t)
	if len(wants) != len(kinds) {
		t.Fatalf("the test covers %d kinds of %d", len(wants), len(kinds))
	}
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			for name, d := range map[string]Data{"full": full, "empty": {}, "only To": {To: "ada@example.com"}} {
				m, err := tmpl.Render(kind, d)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if !strings.HasPrefix(m.ID, "msg_") || m.Kind != kind || m.To != d.To {
					t.Errorf("%s: ID %q, Kind %q, To %q", name, m.ID, m.Kind, m.To)
				}
				if !strings.Contains(m.Subject, "Acme Auth") || strings.ContainsAny(m.Subject, "\r\n") {
					t.Errorf("%s: subject %q", name, m.Subject)
				}
				if leftovers.MatchString(m.Text) || leftovers.MatchString(m.HTML) {
					t.Errorf("%s: template leftovers:\n%s\n%s", name, m.Text, m.HTML)
				}
				if blankLines.MatchString(m.Text) || strings.HasPrefix(m.Text, "\n") || !strings.HasSuffix(m.Text, ".\n") && !strings.HasSuffix(m.Text, ")\n") {
					t.Errorf("%s: untidy text:\n%q", name, m.Text)
				}
				if remoteStuff.MatchString(m.HTML) {
					t.Errorf("%s: HTML loads or runs something: %s", name, remoteStuff.FindString(m.HTML))
				}
				if !strings.Contains(m.Text, "https://auth.acme.test") || !strings.Contains(m.HTML, "https://auth.acme.test") {
					t.Errorf("%s: no footer with the public URL", name)
				}
				if name != "full" {
					if strings.Contains(m.Text, "expire") {
						t.Errorf("%s: an expiry without ExpiresIn:\n%s", name, m.Text)
					}
					continue
				}
				for _, w := range wants[kind] {
					if !strings.Contains(m.Text, w) {
						t.Errorf("text lacks %q:\n%s", w, m.Text)
					}
					if !strings.Contains(m.HTML, strings.ReplaceAll(w, "&", "&amp;")) {
						t.Errorf("HTML lacks %q:\n%s", w, m.HTML)
					}
				}
				// The first six-digit number of a code e-mail is its code
				// (what the end-to-end tests read).
				if strings.Contains(m.Text, full.Code) {
					if got := sixDigits.FindStringSubmatch(m.Text); got[1] != full.Code {
						t.Errorf("first six digits %q, want the code", got[1])
					}
				}
			}
		})
	}
}

func TestRenderUnknownKind(t *testing.T) {
	if _, err := newTemplates(t).Render("newsletter", full); err == nil {
		t.Error("Render of an unknown kind succeeded")
	}
}

func TestRenderGivesNewIDs(t *testing.T) {
	tmpl := newTemplates(t)
	a, _ := tmpl.Render(KindMagicLink, full)
	b, _ := tmpl.Render(KindMagicLink, full)
	if a.ID == b.ID {
		t.Error("two renders share a message ID")
	}
}

func TestNewTemplatesNeedsAProduct(t *testing.T) {
	if _, err := NewTemplates(" ", "https://auth.acme.test"); err == nil {
		t.Error("NewTemplates accepted an empty product name")
	}
}

func TestRenderEscapesHTML(t *testing.T) {
	tmpl, err := NewTemplates(`Acme <b>Auth</b>`, "https://auth.acme.test")
	if err != nil {
		t.Fatal(err)
	}
	d := full
	d.NewEmail = `"<script>alert(1)</script>"@evil.test`
	d.Device = `<img src=x onerror=alert(1)>`
	d.Link = "javascript:alert(1)"
	for _, kind := range kinds {
		m, err := tmpl.Render(kind, d)
		if err != nil {
			t.Fatal(err)
		}
		if bad := unescaped.FindString(m.HTML); bad != "" {
			t.Errorf("%s: unescaped input in HTML: %s", kind, bad)
		}
		if kind == KindChangeEmail && !strings.Contains(m.HTML, "&lt;script&gt;") {
			t.Errorf("%s: NewEmail not shown escaped:\n%s", kind, m.HTML)
		}
		if kind == KindPasswordChanged && !strings.Contains(m.HTML, "&lt;img src=x") {
			t.Errorf("%s: Device not shown escaped:\n%s", kind, m.HTML)
		}
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                               "",
		-time.Minute:                    "",
		30 * time.Second:                "30 seconds",
		time.Minute:                     "1 minute",
		15 * time.Minute:                "15 minutes",
		90 * time.Minute:                "90 minutes",
		time.Hour:                       "1 hour",
		24 * time.Hour:                  "24 hours",
		36 * time.Hour:                  "36 hours",
		48 * time.Hour:                  "2 days",
		168 * time.Hour:                 "7 days",
		15*time.Minute + 20*time.Second: "15 minutes",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestOutboxSender(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	s := NewOutboxSender(outbox.Open(dir), slog.New(slog.NewTextHandler(&logs, nil)))
	m, err := newTemplates(t).Render(KindEmailOTP, full)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	got, err := outbox.Open(dir).List(10)
	if err != nil || len(got) != 1 {
		t.Fatalf("outbox: %v, %v", got, err)
	}
	e := got[0]
	if e.ID != m.ID || e.Channel != "email" || e.To != m.To || e.Subject != m.Subject || e.Body != m.Text || time.Since(e.At) > time.Minute {
		t.Errorf("outbox entry %+v", e)
	}
	for _, w := range []string{"level=INFO", m.To, full.Code} {
		if !strings.Contains(logs.String(), w) {
			t.Errorf("log lacks %q: %s", w, logs.String())
		}
	}
	if err := s.Send(t.Context(), &Message{ID: "bad id", To: "a@example.com", Text: "x"}); err == nil {
		t.Error("outbox sender took a message with a bad ID")
	}
}
