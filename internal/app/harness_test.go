package app_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/app"
	"github.com/gatehouse-auth/gatehouse/internal/config"
	"github.com/gatehouse-auth/gatehouse/internal/ephemeral/ephemeraltest"
	"github.com/gatehouse-auth/gatehouse/internal/mail/mailtest"
	"github.com/gatehouse-auth/gatehouse/internal/testutil"

	_ "modernc.org/sqlite" // database/sql driver "sqlite", to inspect the store's file
)

type harness struct {
	t     testing.TB
	srv   *app.Server
	ts    *httptest.Server
	clock *ephemeraltest.Clock
	logs  *testutil.SyncBuffer
	cfg   config.Config
	// smtp is the real SMTP server the harness's e-mail goes to, unless
	// the test configured its own.
	smtp *mailtest.Server
	// read counts the messages each recipient has had taken by nextMail.
	readMu sync.Mutex
	read   map[string]int
}

// backends lists the deployments every end-to-end test runs against:
// embedded SQLite with in-process state, and PostgreSQL with Redis (skipped
// when their test URLs are unset).
var backends = []string{"sqlite", "postgres+redis"}

// localhostURL as the configured public URL asks startHarness for
// http://localhost:<the listener's port>.
const localhostURL = "http://localhost"

// newHarness starts a real server (real store, real hashing) on a loopback
// listener. mutate adjusts the configuration first.
func newHarness(t testing.TB, backend string, mutate func(*config.Config)) *harness {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Addr = "127.0.0.1:0"
	cfg.HashConcurrency = 4
	if backend == "postgres+redis" {
		cfg.Database = testutil.PostgresURL(t)
		cfg.Redis = testutil.RedisURL(t)
		cfg.RedisPrefix = "gh_test_" + testutil.RandomHex(6) + ":"
	}
	if mutate != nil {
		mutate(&cfg)
	}
	return startHarness(t, cfg)
}

func startHarness(t testing.TB, cfg config.Config) *harness {
	t.Helper()
	// The listener exists before the server is built, so the public URL
	// (the tokens' issuer) is the real address.
	ts := httptest.NewUnstartedServer(nil)
	switch cfg.PublicURL {
	case "":
		cfg.PublicURL = "http://" + ts.Listener.Addr().String()
	case localhostURL:
		// The same listener named by host name: WebAuthn needs a domain
		// as its relying party id, and pages must be opened there.
		cfg.PublicURL = "http://localhost:" + strconv.Itoa(ts.Listener.Addr().(*net.TCPAddr).Port)
	}
	h := &harness{t: t, clock: ephemeraltest.NewClock(time.Now().UTC()), logs: &testutil.SyncBuffer{}, read: map[string]int{}}
	if cfg.SMTPURL == "" {
		h.smtp = mailtest.NewServer(t)
		cfg.SMTPURL = h.smtp.URL()
		cfg.MailFrom = "Gatehouse <auth@gatehouse.test>"
	}
	h.cfg = cfg
	log := slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := app.New(context.Background(), cfg, log, app.Options{Now: h.clock.Now})
	if err != nil {
		ts.Close()
		t.Fatalf("app.New: %v", err)
	}
	h.srv = srv
	ts.Config.Handler = srv.Handler
	ts.Start()
	h.ts = ts
	t.Cleanup(func() {
		h.ts.Close()
		if err := srv.Close(); err != nil {
			t.Errorf("close server: %v", err)
		}
	})
	return h
}

// client is one browser: it keeps the session cookie by hand so tests can
// inspect and tamper with it.
type client struct {
	h      *harness
	cookie *http.Cookie
	// device is the known-device cookie: a client that signed in before
	// is a known device of that account.
	device  *http.Cookie
	ua      string
	headers map[string]string
}

func (h *harness) client() *client {
	return &client{h: h, ua: "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r *response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not a JSON object: %v: %s", err, r.body)
	}
	return m
}

// code returns the problem code of an error response.
func (r *response) code(t testing.TB) string {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("status %d with Content-Type %q, want application/problem+json: %s", r.status, ct, r.body)
	}
	c, _ := r.json(t)["code"].(string)
	return c
}

func (c *client) do(method, path string, body any) *response {
	c.h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			c.h.t.Fatalf("marshal: %v", err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, c.h.ts.URL+path, rd)
	if err != nil {
		c.h.t.Fatalf("new request: %v", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", c.ua)
	for k, v := range c.headers {
		req.Header.Set(k, v)
	}
	if c.cookie != nil {
		req.AddCookie(c.cookie)
	}
	if c.device != nil {
		req.AddCookie(c.device)
	}
	res, err := c.h.ts.Client().Do(req)
	if err != nil {
		c.h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		c.h.t.Fatalf("read body: %v", err)
	}
	for _, ck := range res.Cookies() {
		if strings.HasSuffix(ck.Name, "gh_device") {
			c.device = ck
		}
		if ck.Name == c.h.srv.Sessions.CookieName() {
			if ck.MaxAge < 0 || ck.Value == "" {
				c.cookie = nil
			} else {
				c.cookie = ck
			}
		}
	}
	return &response{status: res.StatusCode, header: res.Header, body: raw}
}

const goodPassword = "correct horse battery staple"

func (c *client) signup(email, pw string) *response {
	return c.do("POST", "/v1/signup", map[string]string{"email": email, "password": pw})
}

func (c *client) login(email, pw string) *response {
	return c.do("POST", "/v1/login", map[string]string{"email": email, "password": pw})
}

// mustStatus fails the test unless r has the wanted status.
func mustStatus(t testing.TB, r *response, want int) {
	t.Helper()
	if r.status != want {
		t.Fatalf("status %d, want %d: %s", r.status, want, r.body)
	}
}

// newUser signs up a fresh account and returns its signed-in client.
func (h *harness) newUser(email string) *client {
	h.t.Helper()
	c := h.client()
	mustStatus(h.t, c.signup(email, goodPassword), http.StatusCreated)
	return c
}

func forEachBackend(t *testing.T, fn func(t *testing.T, backend string)) {
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			t.Parallel()
			fn(t, b)
		})
	}
}

// queryCount counts audit events of one type across all users, reading the
// SQLite file directly (sqlite harnesses only).
func queryCount(h *harness, eventType string, n *int) error {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(h.cfg.DataDir, "gatehouse.db")+"?mode=ro")
	if err != nil {
		return err
	}
	defer db.Close()
	return db.QueryRow("SELECT count(*) FROM audit_events WHERE type = ?", eventType).Scan(n)
}

// nextMail waits for the next e-mail to the address that this test has not
// taken yet, as delivered to the real SMTP server.
func (h *harness) nextMail(to string) mailtest.Received {
	h.t.Helper()
	h.readMu.Lock()
	n := h.read[to]
	h.read[to] = n + 1
	h.readMu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var mine []mailtest.Received
		for _, m := range h.smtp.Messages() {
			for _, rcpt := range m.To {
				if strings.EqualFold(rcpt, to) {
					mine = append(mine, m)
				}
			}
		}
		if len(mine) > n {
			return mine[n]
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("no e-mail #%d to %s within 10s (have %d)", n+1, to, len(mine))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mailCount is how many e-mails the address has received so far.
func (h *harness) mailCount(to string) int {
	n := 0
	for _, m := range h.smtp.Messages() {
		for _, rcpt := range m.To {
			if strings.EqualFold(rcpt, to) {
				n++
			}
		}
	}
	return n
}

var (
	linkTokenRE = regexp.MustCompile(`#token=(ghl_[A-Za-z0-9_-]+)`)
	codeRE      = regexp.MustCompile(`\b(\d{6})\b`)
)

// linkToken is the link secret in an e-mail's plain-text body.
func linkToken(t testing.TB, m mailtest.Received) string {
	t.Helper()
	sub := linkTokenRE.FindStringSubmatch(m.Text)
	if sub == nil {
		t.Fatalf("no link token in e-mail %q:\n%s", m.Subject, m.Text)
	}
	return sub[1]
}

// mailCode is the one-time code in an e-mail's plain-text body.
func mailCode(t testing.TB, m mailtest.Received) string {
	t.Helper()
	sub := codeRE.FindStringSubmatch(m.Text)
	if sub == nil {
		t.Fatalf("no code in e-mail %q:\n%s", m.Subject, m.Text)
	}
	return sub[1]
}
