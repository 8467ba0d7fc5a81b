package gatehouse

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Config configures a Client.
type Config struct {
	// Issuer is the Gatehouse base URL, exactly as it appears in the
	// tokens' "iss" claim, e.g. "https://auth.example.com".
	Issuer string
	// Audience is this resource server's audience.
	Audience string
	// ClientID and ClientSecret are this resource server's credentials for
	// the revocation feed.
	ClientID     string
	ClientSecret string
	// HTTPClient is used for the JWKS and the revocation feed; nil means
	// defaults. Its Timeout is not applied to the feed's long-lived stream.
	HTTPClient *http.Client
	// MaxStaleness: see RevocationFeedOptions. Default 15s.
	MaxStaleness time.Duration
	// Leeway: see VerifierConfig. Default 10s.
	Leeway time.Duration
	// Logger receives revocation feed problems; nil means slog.Default().
	Logger *slog.Logger
}

// Client bundles a Verifier with the issuer's JWKS
// (Issuer + "/.well-known/jwks.json") and revocation feed
// (Issuer + "/v1/revocations").
type Client struct {
	verifier *Verifier
	feed     *RevocationFeed
}

// New returns a Client and starts following the revocation feed in a
// goroutine that stops when ctx is done. Until the feed's first snapshot has
// arrived (see Ready), every token is refused with ErrRevocationStale.
func New(ctx context.Context, cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.Issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
		u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("gatehouse: Config.Issuer must be an http(s) URL without credentials, query or fragment")
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		// Over cleartext, anyone on the path could swap the JWKS (and
		// forge any token) or read the feed credential.
		return nil, errors.New("gatehouse: Config.Issuer must use https (plain http is allowed for loopback addresses only)")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{CheckRedirect: refuseRedirects}
	}
	if cfg.ClientID == "" || cfg.ClientSecret == "" {
		return nil, errors.New("gatehouse: Config.ClientID and Config.ClientSecret are required")
	}
	base := strings.TrimSuffix(cfg.Issuer, "/")
	keys := NewRemoteKeySet(base+"/.well-known/jwks.json", RemoteKeySetOptions{
		HTTPClient: cfg.HTTPClient,
	})
	feed := NewRevocationFeed(base+"/v1/revocations", cfg.ClientID, cfg.ClientSecret, RevocationFeedOptions{
		HTTPClient:   cfg.HTTPClient,
		MaxStaleness: cfg.MaxStaleness,
		Logger:       cfg.Logger,
	})
	v, err := NewVerifier(VerifierConfig{
		Issuer:      cfg.Issuer,
		Audience:    cfg.Audience,
		Leeway:      cfg.Leeway,
		Keys:        keys,
		Revocations: feed,
	})
	if err != nil {
		return nil, err
	}
	go feed.Run(ctx) // returns only when ctx is done
	return &Client{verifier: v, feed: feed}, nil
}

// Verifier returns the client's Verifier.
func (c *Client) Verifier() *Verifier { return c.verifier }

// Ready returns a channel that is closed once the revocation feed's first
// snapshot has arrived.
func (c *Client) Ready() <-chan struct{} { return c.feed.Ready() }

// Middleware is Middleware(c.Verifier()).
func (c *Client) Middleware(next http.Handler) http.Handler {
	return Middleware(c.verifier)(next)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// refuseRedirects keeps the JWKS and the feed at the configured issuer: a
// redirect (to another host, or from https to http) is an error.
func refuseRedirects(*http.Request, []*http.Request) error {
	return errors.New("gatehouse: redirects are not followed")
}
