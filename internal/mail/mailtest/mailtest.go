// Package mailtest owns a real SMTP server for tests: it listens on
// 127.0.0.1, records every message it accepts, and parses each one's MIME
// parts so tests can read the links and codes that were actually delivered.
// It can offer STARTTLS or implicit TLS with a generated certificate,
// require AUTH PLAIN, and refuse recipients with a chosen reply code.
package mailtest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Received is one message the server accepted.
type Received struct {
	From string   // envelope sender (MAIL FROM)
	To   []string // envelope recipients (RCPT TO)
	Data []byte   // the message as received
	TLS  bool     // whether the connection was encrypted
	// Header is the message's header; Subject, Text and HTML are decoded.
	Header  mail.Header
	Subject string
	Text    string // the text/plain part
	HTML    string // the text/html part
}

// Option configures a Server.
type Option func(*Server)

// StartTLS makes the server offer STARTTLS, with a certificate for
// 127.0.0.1 and localhost from a CA that RootCAs returns.
func StartTLS() Option { return func(s *Server) { s.startTLS = true } }

// ImplicitTLS makes the server speak TLS from the first byte (smtps).
func ImplicitTLS() Option { return func(s *Server) { s.implicitTLS = true } }

// Auth makes the server offer AUTH PLAIN and refuse mail from clients that
// did not authenticate as user with password. With StartTLS, AUTH is
// offered only after STARTTLS, like on real servers; without a TLS option,
// it is offered in plaintext, like on a loopback relay.
func Auth(user, password string) Option {
	return func(s *Server) { s.user, s.password = user, password }
}

// Server is a running SMTP server; it stops when the test ends.
type Server struct {
	t           testing.TB
	srv         *smtp.Server
	addr        string
	startTLS    bool
	implicitTLS bool
	user        string
	password    string
	roots       *x509.CertPool

	mu       sync.Mutex
	messages []Received
	arrived  chan struct{} // closed and replaced on every message
	reject   int           // reply code to RCPT TO; 0 accepts
	logDone  bool          // the test ended: log nothing more
}

// NewServer starts a server on 127.0.0.1 on a free port.
func NewServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{t: t, arrived: make(chan struct{})}
	for _, opt := range opts {
		opt(s)
	}
	s.srv = smtp.NewServer(smtp.BackendFunc(s.newSession))
	s.srv.Domain = "mailtest.localhost"
	s.srv.ReadTimeout = 30 * time.Second
	s.srv.WriteTimeout = 30 * time.Second
	s.srv.ErrorLog = log.New(logWriter{s}, "mailtest: ", 0)
	if s.startTLS || s.implicitTLS {
		cert, roots := newCertificate(t)
		s.roots = roots
		s.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	} else {
		// With no TLS at all, AUTH is offered in plaintext (a loopback
		// relay); with TLS, only after STARTTLS.
		s.srv.AllowInsecureAuth = true
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mailtest: %v", err)
	}
	if s.implicitTLS {
		ln = tls.NewListener(ln, s.srv.TLSConfig)
	}
	s.addr = ln.Addr().String()
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = s.srv.Serve(ln)
	}()
	t.Cleanup(func() {
		s.srv.Close()
		ln.Close() // in case Serve had not registered it yet
		<-served
		s.mu.Lock()
		s.logDone = true
		s.mu.Unlock()
	})
	return s
}

// URL is the server's address for the SMTP sender: smtp://127.0.0.1:port,
// or smtps://… with ImplicitTLS.
func (s *Server) URL() string {
	if s.implicitTLS {
		return "smtps://" + s.addr
	}
	return "smtp://" + s.addr
}

// RootCAs holds the CA of the server's certificate (nil without TLS).
func (s *Server) RootCAs() *x509.CertPool { return s.roots }

// SetReject makes the server answer RCPT TO with code (e.g. 550 for a
// permanent failure, 451 for a temporary one); 0 accepts again.
func (s *Server) SetReject(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reject = code
}

// Messages returns the messages received so far, oldest first.
func (s *Server) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.messages...)
}

// Wait waits until the server has received at least n messages and returns
// them; it fails the test after timeout.
func (s *Server) Wait(t testing.TB, n int, timeout time.Duration) []Received {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		got, arrived := len(s.messages), s.arrived
		s.mu.Unlock()
		if got >= n {
			return s.Messages()
		}
		select {
		case <-arrived:
		case <-deadline.C:
			t.Fatalf("mailtest: %d messages after %s, want %d", got, timeout, n)
		}
	}
}

func (s *Server) record(r Received) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.messages = append(s.messages, r)
	close(s.arrived)
	s.arrived = make(chan struct{})
}

// logWriter sends go-smtp's error log to the test log while the test runs.
type logWriter struct{ s *Server }

func (w logWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if !w.s.logDone {
		w.s.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

// session is one SMTP connection's state.
type session struct {
	s      *Server
	conn   *smtp.Conn
	authed bool
	from   string
	to     []string
}

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{s: s, conn: c}, nil
}

func (ss *session) AuthMechanisms() []string {
	if ss.s.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, password string) error {
		if user != ss.s.user || password != ss.s.password {
			return smtp.ErrAuthFailed
		}
		ss.authed = true
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.s.user != "" && !ss.authed {
		return smtp.ErrAuthRequired
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.s.mu.Lock()
	code := ss.s.reject
	ss.s.mu.Unlock()
	if code != 0 {
		return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCodeNotSet, Message: "mailtest: recipient refused"}
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, encrypted := ss.conn.TLSConnectionState()
	rec := Received{From: ss.from, To: slices.Clone(ss.to), Data: data, TLS: encrypted}
	if err := parse(&rec); err != nil {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCodeNotSet, Message: "mailtest: " + err.Error()}
	}
	ss.s.record(rec)
	return nil
}

func (ss *session) Reset() {
	ss.from, ss.to = "", nil
}

func (ss *session) Logout() error { return nil }

// parse fills r's Header, Subject, Text and HTML from r.Data.
func parse(r *Received) error {
	m, err := mail.ReadMessage(bytes.NewReader(r.Data))
	if err != nil {
		return err
	}
	r.Header = m.Header
	if r.Subject, err = new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject")); err != nil {
		return fmt.Errorf("subject: %w", err)
	}
	return parsePart(r, m.Header.Get("Content-Type"), m.Header.Get("Content-Transfer-Encoding"), m.Body)
}

// parsePart reads one MIME entity, descending into multiparts, and keeps the
// first text/plain and text/html parts.
func parsePart(r *Received, contentType, encoding string, body io.Reader) error {
	if contentType == "" {
		contentType = "text/plain"
	}
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return err
	}
	if strings.HasPrefix(mediaType, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			// NextRawPart: decode quoted-printable here, like base64.
			p, err := mr.NextRawPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			if err := parsePart(r, p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p); err != nil {
				return err
			}
		}
	}
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "quoted-printable":
		body = quotedprintable.NewReader(body)
	case "base64":
		body = base64.NewDecoder(base64.StdEncoding, body) // skips line breaks
	}
	content, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	text := strings.ReplaceAll(string(content), "\r\n", "\n")
	switch {
	case mediaType == "text/plain" && r.Text == "":
		r.Text = text
	case mediaType == "text/html" && r.HTML == "":
		r.HTML = text
	}
	return nil
}

// newCertificate makes a self-signed ECDSA certificate for 127.0.0.1, ::1
// and localhost, and a pool that trusts it.
func newCertificate(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("mailtest: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mailtest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("mailtest: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("mailtest: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, roots
}
