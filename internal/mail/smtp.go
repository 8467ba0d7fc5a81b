package mail

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/gatehouse-auth/gatehouse/internal/dispatch"
)

// SMTPConfig configures the SMTP sender.
type SMTPConfig struct {
	// URL is smtp://[user:pass@]host[:port] (default port 587; STARTTLS is
	// required, except on a loopback host, where it is used if offered) or
	// smtps://[user:pass@]host[:port] (default port 465, implicit TLS).
	// Credentials are sent only over TLS, or to a loopback host.
	URL string
	// From is the From address of every e-mail: "Name <addr>" or addr.
	From string
	// RootCAs verify the server's certificate; nil means the system roots.
	RootCAs *x509.CertPool
	// Timeout bounds each connection; default 30s.
	Timeout time.Duration
}

// SMTP sends e-mail through an SMTP server, one connection per message.
type SMTP struct {
	scheme    string
	host      string
	port      int
	user      string
	password  string
	ssl       bool             // smtps: implicit TLS
	policy    gomail.TLSPolicy // STARTTLS policy of smtp://
	tlsConfig *tls.Config
	from      *netmail.Address
	domain    string // of From, for Message-IDs
	timeout   time.Duration
}

var _ Sender = (*SMTP)(nil)

// NewSMTP validates cfg and returns the sender. It does not connect.
func NewSMTP(cfg SMTPConfig) (*SMTP, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		// url.Error repeats the URL, password included: keep only the cause.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("mail: SMTP URL: %w", err)
	}
	s := &SMTP{scheme: u.Scheme, host: u.Hostname(), timeout: cfg.Timeout}
	switch u.Scheme {
	case "smtp":
		s.port = gomail.DefaultPortTLS
	case "smtps":
		s.port, s.ssl = gomail.DefaultPortSSL, true
	default:
		return nil, fmt.Errorf("mail: SMTP URL: the scheme must be smtp or smtps, got %q", u.Scheme)
	}
	if u.Opaque != "" || s.host == "" {
		return nil, errors.New("mail: SMTP URL: no host; want smtp://[user:pass@]host[:port]")
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("mail: SMTP URL: unexpected path, query or fragment")
	}
	if p := u.Port(); p != "" {
		if s.port, err = strconv.Atoi(p); err != nil || s.port < 1 || s.port > 65535 {
			return nil, fmt.Errorf("mail: SMTP URL: bad port %q", p)
		}
	}
	if u.User != nil {
		var ok bool
		s.user = u.User.Username()
		s.password, ok = u.User.Password()
		if s.user == "" || !ok {
			return nil, errors.New("mail: SMTP URL: credentials need a user name and a password")
		}
	}
	// Plaintext is possible only on a loopback host, so credentials never
	// cross a network unencrypted. go-mail's PLAIN and LOGIN enforce the
	// same rule on each connection.
	s.policy = gomail.TLSMandatory
	if isLoopback(s.host) {
		s.policy = gomail.TLSOpportunistic
	}
	s.tlsConfig = &tls.Config{ServerName: s.host, RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12}

	if s.from, err = netmail.ParseAddress(cfg.From); err != nil {
		return nil, fmt.Errorf("mail: From %q: %w", cfg.From, err)
	}
	s.domain = s.from.Address[strings.LastIndexByte(s.from.Address, '@')+1:]
	if s.timeout <= 0 {
		s.timeout = 30 * time.Second
	}
	return s, nil
}

// isLoopback is the same test as go-mail's for sending credentials without
// TLS.
func isLoopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

// String is the server for logs: scheme://host:port, never the credentials.
func (s *SMTP) String() string {
	return s.scheme + "://" + net.JoinHostPort(s.host, strconv.Itoa(s.port))
}

// Send delivers m as multipart/alternative (text and HTML). A 5xx reply of
// the server is dispatch.Permanent; every other failure is worth retrying.
func (s *SMTP) Send(ctx context.Context, m *Message) error {
	if err := checkMessage(m); err != nil {
		return err
	}
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	msg.FromMailAddress(s.from)
	if err := msg.To(m.To); err != nil {
		return dispatch.Permanent(fmt.Errorf("mail: recipient: %w", err))
	}
	msg.Subject(m.Subject)
	msg.SetDate()
	msg.SetMessageIDWithValue(m.ID + "@" + s.domain)
	msg.SetGenHeader("Auto-Submitted", "auto-generated")
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}

	// A client per message: go-mail's Client keeps per-connection state.
	client, err := gomail.NewClient(s.host, s.clientOptions()...)
	if err != nil {
		return fmt.Errorf("mail: %w", err)
	}
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		err = fmt.Errorf("mail: send %s to %s: %w", m.ID, s, err)
		if code := replyCode(err); code >= 500 && code < 600 {
			return dispatch.Permanent(err)
		}
		return err
	}
	return nil
}

func (s *SMTP) clientOptions() []gomail.Option {
	// WithPort, not WithTLSPortPolicy or WithSSLPort: those fall back to
	// plaintext on port 25 when the first port fails.
	opts := []gomail.Option{
		gomail.WithPort(s.port),
		gomail.WithTimeout(s.timeout),
		gomail.WithTLSConfig(s.tlsConfig),
	}
	if s.ssl {
		opts = append(opts, gomail.WithSSL())
	} else {
		opts = append(opts, gomail.WithTLSPolicy(s.policy))
	}
	if s.user != "" {
		// PLAIN or LOGIN when offered, else the strongest mechanism go-mail
		// finds.
		opts = append(opts,
			gomail.WithUsername(s.user), gomail.WithPassword(s.password),
			gomail.WithOpportunisticSMTPAuth(gomail.SMTPAuthPlain, gomail.SMTPAuthLogin))
	}
	return opts
}

// replyCode is the SMTP reply code in err, or 0 if err is not a reply.
func replyCode(err error) int {
	var send *gomail.SendError
	if errors.As(err, &send) && send.ErrorCode() != 0 {
		return send.ErrorCode()
	}
	var reply *textproto.Error
	if errors.As(err, &reply) {
		return reply.Code
	}
	return 0
}
