package mail

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/id"
)

// Template kinds.
const (
	KindVerifyEmail      = "verify_email"       // Link + Code: confirm your address
	KindRecovery         = "recovery"           // Link: reset your password (ExpiresIn)
	KindPasswordChanged  = "password_changed"   // notice: your password was changed (IP, Device, At); if it was not you, reset it at Link
	KindMagicLink        = "magic_link"         // Link: sign in
	KindEmailOTP         = "email_otp"          // Code: your sign-in code
	KindChangeEmail      = "change_email"       // sent to the NEW address: Link to confirm NewEmail
	KindEmailChanged     = "email_changed"      // notice to the OLD address: your address was changed to NewEmail; Link undoes it (ExpiresIn)
	KindPhoneAdded       = "phone_added"        // notice: Phone can now receive sign-in codes; if it was not you, reset the password at Link
	KindRecoveryCodeUsed = "recovery_code_used" // notice: a recovery code signed in (IP, Device, At); if it was not you, reset at Link
	KindMFAChanged       = "mfa_changed"        // notice: Change (an app turned on or off, new recovery codes); if it was not you, reset at Link
	KindAccountExists    = "account_exists"     // someone tried to sign up (or move another account) with this address, which already has an account; Link = sign-in/reset page
	KindNewDevice        = "new_device"         // notice: a device that had not signed in before did (At, Device, IP, Location); Link signs it out and starts a reset (ExpiresIn)
	KindPasswordUsed     = "password_used"      // notice: the right password came from an unusual place and was refused for risk (At, Device, IP, Location); Link starts a reset (ExpiresIn)
)

// kinds lists every template kind; each has templates/<kind>.txt and
// templates/<kind>.html.
var kinds = []string{
	KindVerifyEmail, KindRecovery, KindPasswordChanged, KindMagicLink,
	KindEmailOTP, KindChangeEmail, KindEmailChanged, KindAccountExists, KindPhoneAdded, KindRecoveryCodeUsed, KindMFAChanged,
	KindNewDevice, KindPasswordUsed,
}

// Data fills a template. Every field may be empty; the templates leave out
// what is missing.
type Data struct {
	To        string
	Link      string        // action link (absolute URL)
	Code      string        // one-time code
	ExpiresIn time.Duration // of the link or code, rendered as "15 minutes", "24 hours"
	NewEmail  string
	Phone     string // E.164
	Change    string // what changed, a sentence without its full stop (KindMFAChanged)
	IP        string
	Device    string // e.g. "Firefox on Linux"
	Location  string // approximate, e.g. "Lisbon, Portugal"
	At        time.Time
}

// view is what the templates see: the data and what is shown around it.
type view struct {
	Data
	Product string
	BaseURL string
	Subject string
	Expires string // ExpiresIn, for people
	When    string // At, for people
}

//go:embed templates
var files embed.FS

// htmlFuncs are the functions of the HTML templates.
var htmlFuncs = htmltemplate.FuncMap{
	// action is the argument of the "button" template.
	"action": func(label, link string) struct{ Label, Link string } {
		return struct{ Label, Link string }{label, link}
	},
}

type kindTemplates struct {
	text *texttemplate.Template // "subject" and "<kind>.txt"
	html *htmltemplate.Template // "layout.html", which includes "content"
}

// Templates renders the e-mails of one deployment.
type Templates struct {
	product string
	baseURL string
	kinds   map[string]kindTemplates
}

// NewTemplates parses the embedded templates. product is the product name
// shown in subjects and bodies; baseURL is the public URL shown in the
// footer.
func NewTemplates(product, baseURL string) (*Templates, error) {
	if strings.TrimSpace(product) == "" {
		return nil, errors.New("mail: empty product name")
	}
	t := &Templates{product: product, baseURL: baseURL, kinds: map[string]kindTemplates{}}
	for _, kind := range kinds {
		text, err := texttemplate.New(kind).ParseFS(files, "templates/common.txt", "templates/"+kind+".txt")
		if err != nil {
			return nil, fmt.Errorf("mail: template %s: %w", kind, err)
		}
		if text.Lookup("subject") == nil {
			return nil, fmt.Errorf("mail: template %s.txt defines no subject", kind)
		}
		html, err := htmltemplate.New(kind).Funcs(htmlFuncs).ParseFS(files, "templates/layout.html", "templates/"+kind+".html")
		if err != nil {
			return nil, fmt.Errorf("mail: template %s: %w", kind, err)
		}
		if html.Lookup("content") == nil {
			return nil, fmt.Errorf("mail: template %s.html defines no content", kind)
		}
		t.kinds[kind] = kindTemplates{text: text, html: html}
	}
	return t, nil
}

// Render renders the e-mail of kind for d, with a new message ID.
func (t *Templates) Render(kind string, d Data) (*Message, error) {
	k, ok := t.kinds[kind]
	if !ok {
		return nil, fmt.Errorf("mail: unknown template kind %q", kind)
	}
	v := view{Data: d, Product: t.product, BaseURL: t.baseURL, Expires: humanDuration(d.ExpiresIn)}
	if !d.At.IsZero() {
		v.When = d.At.UTC().Format("2 January 2006, 15:04 UTC")
	}
	var subject, text, html bytes.Buffer
	if err := k.text.ExecuteTemplate(&subject, "subject", v); err != nil {
		return nil, fmt.Errorf("mail: render %s subject: %w", kind, err)
	}
	v.Subject = strings.Join(strings.Fields(subject.String()), " ") // one line, whatever the data
	if err := k.text.ExecuteTemplate(&text, kind+".txt", v); err != nil {
		return nil, fmt.Errorf("mail: render %s text: %w", kind, err)
	}
	if err := k.html.ExecuteTemplate(&html, "layout.html", v); err != nil {
		return nil, fmt.Errorf("mail: render %s html: %w", kind, err)
	}
	return &Message{
		ID:      id.New("msg"),
		Kind:    kind,
		To:      d.To,
		Subject: v.Subject,
		Text:    tidyText(text.String()),
		HTML:    strings.TrimSpace(html.String()) + "\n",
	}, nil
}

// tidyText trims trailing spaces, and the blank lines that optional parts
// of a template leave: at most one blank line in a row, none at either end.
func tidyText(s string) string {
	var b strings.Builder
	blank := false
	for line := range strings.Lines(s) {
		line = strings.TrimRight(line, " \t\r\n")
		if line == "" {
			blank = b.Len() > 0
			continue
		}
		if blank {
			b.WriteByte('\n')
			blank = false
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}

// humanDuration renders d for people: "30 seconds", "15 minutes", "1 hour",
// "24 hours", "7 days"; "" for d <= 0.
func humanDuration(d time.Duration) string {
	day := 24 * time.Hour
	switch {
	case d <= 0:
		return ""
	case d < time.Minute:
		return plural(int64((d+time.Second/2)/time.Second), "second")
	case d >= 2*day && d%day == 0:
		return plural(int64(d/day), "day")
	case d >= time.Hour && d%time.Hour == 0:
		return plural(int64(d/time.Hour), "hour")
	default:
		return plural(int64((d+time.Minute/2)/time.Minute), "minute")
	}
}

func plural(n int64, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}
