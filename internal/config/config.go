// Package config owns the server configuration: one plain struct with safe
// defaults, filled from command-line flags and GATEHOUSE_<NAME> environment
// variables (a flag given on the command line wins), validated once at
// start and immutable after.
package config

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/httpx"
	"github.com/gatehouse-auth/gatehouse/internal/risk"
)

// Config is everything `gatehouse serve` can be told.
type Config struct {
	Addr     string // listen address
	DataDir  string // SQLite file (default backend) and key files
	Database string // "" = SQLite in DataDir; postgres://… = PostgreSQL
	Redis    string // "" = in-process ephemeral state; redis://… = shared
	// RedisPrefix namespaces every key and channel, so deployments (or
	// test runs) can share one Redis.
	RedisPrefix string
	PublicURL   string // external base URL; "" = http://Addr
	Dev         bool   // plain-http localhost development: cookies drop Secure
	LogLevel    string
	// TrustedOrigins may make cross-origin state-changing requests
	// (e.g. a front-end on another origin), comma-separated.
	TrustedOrigins []string
	// TrustedProxies are the addresses and CIDR prefixes of the reverse
	// proxies whose Forwarded / X-Forwarded-For headers name the client.
	TrustedProxies []string
	// MetricsAddr is the listen address of the Prometheus endpoint
	// (GET /metrics); "" = no metrics listener.
	MetricsAddr string
	// RequireMFA: every session must pass a second factor; one that has
	// not may only enrol a factor and step up with it.
	RequireMFA bool
	// RequireMFAForAdmins: the same for administrators only (accounts
	// marked with `gatehouse users admin`).
	RequireMFAForAdmins bool
	// GeoIPDB is a MaxMind-format city database (GeoLite2-City, DB-IP
	// City Lite); "" turns the location signals off. GeoIPASNDB is an
	// optional ASN database (GeoLite2-ASN).
	GeoIPDB    string
	GeoIPASNDB string
	// RiskBands maps risk scores to decisions ("audit=20,step-up=40,deny=95").
	RiskBands string
	// WebAuthnRPID is the WebAuthn relying party id, a domain ("" = the
	// public URL's host; "localhost" for a loopback IP).
	WebAuthnRPID string
	// WebAuthnOrigins are the origins allowed to run WebAuthn ceremonies
	// ("" = the public URL's origin).
	WebAuthnOrigins []string

	SessionIdleTimeout time.Duration
	SessionLifetime    time.Duration
	ReauthMaxAge       time.Duration
	SessionCacheTTL    time.Duration

	PasswordMinLength int
	Argon2Memory      uint32 // KiB
	Argon2Time        uint32
	Argon2Threads     uint
	HashConcurrency   int

	LoginAttemptsPerIP      int64
	LoginFailuresPerAccount int64
	LoginFailureWindow      time.Duration
	// Account protection (account.Protection): the cap of consecutive
	// failures after which no device signs in with a password, how long
	// an account's failures count, and the progressive delay per
	// (account, IP): after LoginDelayAfter failures, 1s doubling to
	// LoginDelayMax.
	LoginMaxFailuresPerAccount int64
	// TokenRequestsPerIP limits the token endpoints (refresh, OAuth
	// token, revocation, introspection) per client IP per
	// LoginFailureWindow.
	TokenRequestsPerIP        int64
	LoginAccountFailureWindow time.Duration
	LoginDelayAfter           int64
	LoginDelayMax             time.Duration
	SignupsPerIP              int64
	SignupWindow              time.Duration

	// Credential-stuffing bans (package ipguard): how many distinct
	// accounts may fail to sign in from one address (an IPv6 /64) or one
	// block (an IPv4 /24, an IPv6 /48) per StuffingWindow before it is
	// denied for IPBanDuration (0: no bans of that kind).
	StuffingAccounts         int
	StuffingAccountsPerBlock int
	StuffingWindow           time.Duration
	IPBanDuration            time.Duration

	// Token mode.
	AccessTokenTTL      time.Duration
	AccessTokenAudience string // "" = BaseURL()
	RefreshIdleTimeout  time.Duration
	RefreshLifetime     time.Duration
	// RefreshGrace is how long a just-rotated refresh token may be presented
	// again by the same client and get the same successor (0 = never).
	RefreshGrace time.Duration
	// SigningAlgorithm of new signing keys: "EdDSA" or "ES256".
	SigningAlgorithm string
	// KeyPublishDelay is how long a rotated-in key is published in the JWKS
	// before it signs; it must exceed JWKSMaxAge plus the key reload
	// interval, so every verifier has it before the first token.
	KeyPublishDelay time.Duration
	JWKSMaxAge      time.Duration
	// ResourceServers are "id:secret" credentials of the APIs allowed to
	// introspect tokens and read the revocation feed.
	ResourceServers []string

	// Messages. Without SMTPURL (and on a loopback public URL only) e-mail
	// goes to the log and the dev outbox.
	SMTPURL     string // smtp://user:pass@host:port or smtps://…
	MailFrom    string // From address of every e-mail
	ProductName string // shown in e-mails and pages
	// SMSProvider is "" (SMS codes off; the dev outbox on a loopback
	// public URL), "twilio" or "webhook".
	SMSProvider      string
	TwilioAccountSID string
	TwilioAuthToken  string
	TwilioBaseURL    string // "" = https://api.twilio.com
	SMSFrom          string // Twilio sender number or Messaging Service SID
	SMSWebhookURL    string
	SMSWebhookSecret string
	// SMSDefaultRegion is the region of national phone numbers ("US");
	// "" requires international numbers.
	SMSDefaultRegion string

	// RequireVerifiedEmail makes sign-up enumeration-safe: it answers the
	// same whether or not the address is registered, and an account can
	// sign in only once its address is verified.
	RequireVerifiedEmail bool
	VerifyEmailTTL       time.Duration
	RecoveryTTL          time.Duration
	MagicLinkTTL         time.Duration
	OTPTTL               time.Duration
	// MagicLinkSameBrowser binds a magic link to the browser that asked for
	// it.
	MagicLinkSameBrowser bool
	// Messages sent per address (or number) and per client IP per
	// MessageWindow.
	MessagesPerAddress int64
	MessagesPerIP      int64
	MessageWindow      time.Duration

	// Audit streaming. AuditWebhookURL receives the sealed audit chain in
	// signed batches (HMAC-SHA256 with AuditWebhookSecret); AuditStdout
	// writes it to stdout as JSON lines.
	AuditWebhookURL    string
	AuditWebhookSecret string
	AuditStdout        bool

	ShutdownTimeout time.Duration
}

// MaxRecoveryTTL bounds the password-reset link lifetime.
const MaxRecoveryTTL = time.Hour

// KeyReloadInterval is how often a replica re-reads the signing keys.
const KeyReloadInterval = time.Minute

// VerifierLeeway is the clock leeway of the server's own access-token
// checks (and the SDK's default).
const VerifierLeeway = 10 * time.Second

// minResourceSecret is the shortest resource-server secret accepted.
const minResourceSecret = 32

// Default returns the zero-configuration settings.
func Default() Config {
	return Config{
		Addr:                       "127.0.0.1:8080",
		DataDir:                    "./gatehouse-data",
		RedisPrefix:                "gatehouse:",
		LogLevel:                   "info",
		SessionIdleTimeout:         72 * time.Hour,
		SessionLifetime:            30 * 24 * time.Hour,
		ReauthMaxAge:               10 * time.Minute,
		SessionCacheTTL:            30 * time.Second,
		PasswordMinLength:          15,
		Argon2Memory:               19456,
		Argon2Time:                 2,
		Argon2Threads:              1,
		LoginAttemptsPerIP:         100,
		LoginFailuresPerAccount:    10,
		LoginMaxFailuresPerAccount: 100,
		TokenRequestsPerIP:         1000,
		LoginAccountFailureWindow:  24 * time.Hour,
		LoginDelayAfter:            3,
		LoginDelayMax:              15 * time.Minute,
		RiskBands:                  risk.DefaultBands.String(),
		LoginFailureWindow:         15 * time.Minute,
		SignupsPerIP:               20,
		SignupWindow:               time.Hour,
		StuffingAccounts:           20,
		StuffingAccountsPerBlock:   60,
		StuffingWindow:             10 * time.Minute,
		IPBanDuration:              time.Hour,
		ShutdownTimeout:            15 * time.Second,
		AccessTokenTTL:             10 * time.Minute,
		RefreshIdleTimeout:         14 * 24 * time.Hour,
		RefreshLifetime:            90 * 24 * time.Hour,
		RefreshGrace:               10 * time.Second,
		SigningAlgorithm:           "EdDSA",
		KeyPublishDelay:            15 * time.Minute,
		JWKSMaxAge:                 5 * time.Minute,
		ProductName:                "Gatehouse",
		VerifyEmailTTL:             24 * time.Hour,
		RecoveryTTL:                15 * time.Minute,
		MagicLinkTTL:               15 * time.Minute,
		OTPTTL:                     10 * time.Minute,
		MessagesPerAddress:         5,
		MessagesPerIP:              30,
		MessageWindow:              time.Hour,
	}
}

type commaList struct{ dst *[]string }

func (c commaList) String() string {
	if c.dst == nil {
		return ""
	}
	return strings.Join(*c.dst, ",")
}

func (c commaList) Set(s string) error {
	*c.dst = nil
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*c.dst = append(*c.dst, v)
		}
	}
	return nil
}

type uint32Value struct{ dst *uint32 }

func (u uint32Value) String() string {
	if u.dst == nil {
		return "0"
	}
	return fmt.Sprint(*u.dst)
}

func (u uint32Value) Set(s string) error {
	var v uint64
	if _, err := fmt.Sscan(s, &v); err != nil || v > 1<<32-1 {
		return fmt.Errorf("not a 32-bit unsigned integer: %q", s)
	}
	*u.dst = uint32(v)
	return nil
}

// StorageFlags registers the flags that name the storage (shared by every
// subcommand that opens the database).
func StorageFlags(fs *flag.FlagSet, c *Config) {
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory for the SQLite database and key files")
	fs.StringVar(&c.Database, "database", c.Database, "database URL: empty for SQLite in --data-dir, or postgres://…")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
}

// ServeFlags registers every flag of `gatehouse serve`.
func ServeFlags(fs *flag.FlagSet, c *Config) {
	StorageFlags(fs, c)
	fs.StringVar(&c.Addr, "addr", c.Addr, "listen address")
	fs.StringVar(&c.Redis, "redis", c.Redis, "Redis URL (redis:// or rediss://) for shared ephemeral state; empty = in-process")
	fs.StringVar(&c.RedisPrefix, "redis-prefix", c.RedisPrefix, "prefix of every Redis key and channel")
	fs.StringVar(&c.PublicURL, "public-url", c.PublicURL, "external base URL of this server (default http://<addr>)")
	fs.BoolVar(&c.Dev, "dev", c.Dev, "plain-http localhost development: session cookies drop Secure and the __Host- prefix")
	fs.Var(commaList{&c.TrustedOrigins}, "trusted-origins", "comma-separated origins allowed to make cross-origin state-changing requests")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", c.MetricsAddr, "listen address of the Prometheus /metrics endpoint, apart from the public one (empty: none)")
	fs.Var(commaList{&c.TrustedProxies}, "trusted-proxies", "comma-separated addresses or CIDR prefixes of reverse proxies whose Forwarded / X-Forwarded-For headers are believed")
	fs.BoolVar(&c.RequireMFA, "require-mfa", c.RequireMFA, "every session must pass a second factor (sessions without one may only enrol one and step up with it)")
	fs.BoolVar(&c.RequireMFAForAdmins, "require-mfa-for-admins", c.RequireMFAForAdmins, "the sessions of administrators (gatehouse users admin) must pass a second factor")
	fs.StringVar(&c.GeoIPDB, "geoip-db", c.GeoIPDB, "MaxMind-format city database (GeoLite2-City, DB-IP City Lite) for location risk signals; empty: location signals off")
	fs.StringVar(&c.GeoIPASNDB, "geoip-asn-db", c.GeoIPASNDB, "optional MaxMind-format ASN database (GeoLite2-ASN) for the network-change signal")
	fs.StringVar(&c.RiskBands, "risk-bands", c.RiskBands, "risk score (0-100) thresholds of the decisions after allow: audit, step-up, deny")
	fs.StringVar(&c.WebAuthnRPID, "webauthn-rp-id", c.WebAuthnRPID, "WebAuthn relying party id, a domain (default: the public URL's host)")
	fs.Var(commaList{&c.WebAuthnOrigins}, "webauthn-origins", "comma-separated origins allowed to use passkeys (default: the public URL's origin)")
	fs.DurationVar(&c.SessionIdleTimeout, "session-idle-timeout", c.SessionIdleTimeout, "a session unused this long expires")
	fs.DurationVar(&c.SessionLifetime, "session-lifetime", c.SessionLifetime, "absolute lifetime of a session")
	fs.DurationVar(&c.ReauthMaxAge, "reauth-max-age", c.ReauthMaxAge, "how recent a sign-in must be for sensitive actions")
	fs.DurationVar(&c.SessionCacheTTL, "session-cache-ttl", c.SessionCacheTTL, "how long a replica trusts its cached copy of a session (0 disables the cache)")
	fs.IntVar(&c.PasswordMinLength, "password-min-length", c.PasswordMinLength, "minimum password length in characters (at least 8; 15 recommended for password-only accounts)")
	fs.Var(uint32Value{&c.Argon2Memory}, "argon2-memory", "argon2id memory in KiB")
	fs.Var(uint32Value{&c.Argon2Time}, "argon2-time", "argon2id iterations")
	fs.UintVar(&c.Argon2Threads, "argon2-threads", c.Argon2Threads, "argon2id parallelism")
	fs.IntVar(&c.HashConcurrency, "hash-concurrency", c.HashConcurrency, "maximum simultaneous password hashes (0 = number of CPUs)")
	fs.Int64Var(&c.LoginAttemptsPerIP, "login-attempts-per-ip", c.LoginAttemptsPerIP, "sign-in attempts allowed per client IP per window")
	fs.Int64Var(&c.LoginFailuresPerAccount, "login-failures-per-account", c.LoginFailuresPerAccount, "consecutive failed sign-ins of an account after which unfamiliar devices must sign in another way than the password (e-mailed code, link, passkey); also the per-account limit of code and second-factor guesses per --login-failure-window")
	fs.Int64Var(&c.TokenRequestsPerIP, "token-requests-per-ip", c.TokenRequestsPerIP, "requests to the token endpoints (refresh, OAuth token, revocation, introspection) per client IP per --login-failure-window")
	fs.Int64Var(&c.LoginMaxFailuresPerAccount, "login-max-failures-per-account", c.LoginMaxFailuresPerAccount, "consecutive failed sign-ins of an account after which no device, known or not, may use the password (NIST 800-63B: at most 100)")
	fs.DurationVar(&c.LoginAccountFailureWindow, "login-account-failure-window", c.LoginAccountFailureWindow, "how long an account's failed sign-ins count, from the first")
	fs.Int64Var(&c.LoginDelayAfter, "login-delay-after", c.LoginDelayAfter, "failed sign-ins of one account from one address before each further attempt must wait (1s, doubling)")
	fs.DurationVar(&c.LoginDelayMax, "login-delay-max", c.LoginDelayMax, "the longest wait between attempts on one account from one address")
	fs.DurationVar(&c.LoginFailureWindow, "login-failure-window", c.LoginFailureWindow, "window of the failed sign-in limits")
	fs.Int64Var(&c.SignupsPerIP, "signups-per-ip", c.SignupsPerIP, "sign-up attempts allowed per client IP per window")
	fs.DurationVar(&c.SignupWindow, "signup-window", c.SignupWindow, "window of the sign-up limit")
	fs.IntVar(&c.StuffingAccounts, "stuffing-accounts", c.StuffingAccounts, "distinct accounts failing to sign in from one address (IPv6: one /64) per --stuffing-window before it is banned (0 = never)")
	fs.IntVar(&c.StuffingAccountsPerBlock, "stuffing-accounts-per-block", c.StuffingAccountsPerBlock, "distinct accounts failing to sign in from one IPv4 /24 or IPv6 /48 per --stuffing-window before the block is banned (0 = never)")
	fs.DurationVar(&c.StuffingWindow, "stuffing-window", c.StuffingWindow, "window of the credential-stuffing counts")
	fs.DurationVar(&c.IPBanDuration, "ip-ban-duration", c.IPBanDuration, "how long a credential-stuffing ban lasts (1m to 720h)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "how long to drain requests on shutdown")
	KeyFlags(fs, c)
	fs.StringVar(&c.AccessTokenAudience, "access-token-audience", c.AccessTokenAudience, "aud claim of access tokens (default: the public URL)")
	fs.DurationVar(&c.RefreshIdleTimeout, "refresh-idle-timeout", c.RefreshIdleTimeout, "a refresh token unused this long expires")
	fs.DurationVar(&c.RefreshLifetime, "refresh-lifetime", c.RefreshLifetime, "absolute lifetime of a token-mode session (its refresh-token family)")
	fs.DurationVar(&c.RefreshGrace, "refresh-grace", c.RefreshGrace, "window in which the same client re-presenting a rotated refresh token gets the same successor (0 = none)")
	fs.StringVar(&c.SMTPURL, "smtp-url", c.SMTPURL, "SMTP server for e-mail: smtp://user:pass@host:587 (STARTTLS) or smtps://…:465; empty = the dev outbox (loopback public URL only); prefer the environment variable")
	fs.StringVar(&c.MailFrom, "mail-from", c.MailFrom, "From address of e-mails, e.g. \"Example <auth@example.com>\" (required with --smtp-url)")
	fs.StringVar(&c.ProductName, "product-name", c.ProductName, "product name shown in e-mails and pages")
	fs.StringVar(&c.SMSProvider, "sms-provider", c.SMSProvider, "SMS sender: twilio or webhook; empty = SMS codes off (dev outbox on a loopback public URL)")
	fs.StringVar(&c.TwilioAccountSID, "twilio-account-sid", c.TwilioAccountSID, "Twilio account SID")
	fs.StringVar(&c.TwilioAuthToken, "twilio-auth-token", c.TwilioAuthToken, "Twilio auth token (prefer the environment variable)")
	fs.StringVar(&c.TwilioBaseURL, "twilio-base-url", c.TwilioBaseURL, "base URL of a Twilio-compatible API (default https://api.twilio.com)")
	fs.StringVar(&c.SMSFrom, "sms-from", c.SMSFrom, "Twilio sender: an E.164 number or a Messaging Service SID")
	fs.StringVar(&c.SMSWebhookURL, "sms-webhook-url", c.SMSWebhookURL, "URL that receives signed SMS requests (--sms-provider webhook)")
	fs.StringVar(&c.SMSWebhookSecret, "sms-webhook-secret", c.SMSWebhookSecret, "HMAC secret of the SMS webhook, at least 32 characters (prefer the environment variable)")
	fs.StringVar(&c.SMSDefaultRegion, "sms-default-region", c.SMSDefaultRegion, "region of national phone numbers, e.g. US; empty = international numbers only")
	fs.BoolVar(&c.RequireVerifiedEmail, "require-verified-email", c.RequireVerifiedEmail, "sign-up answers the same for new and registered addresses, and accounts sign in only after verifying their address")
	fs.DurationVar(&c.VerifyEmailTTL, "verify-email-ttl", c.VerifyEmailTTL, "lifetime of e-mail verification links and codes")
	fs.DurationVar(&c.RecoveryTTL, "recovery-ttl", c.RecoveryTTL, "lifetime of password-reset links (at most 1h)")
	fs.DurationVar(&c.MagicLinkTTL, "magic-link-ttl", c.MagicLinkTTL, "lifetime of magic sign-in links (at most 1h)")
	fs.DurationVar(&c.OTPTTL, "otp-ttl", c.OTPTTL, "lifetime of one-time sign-in codes (at most 15m)")
	fs.BoolVar(&c.MagicLinkSameBrowser, "magic-link-same-browser", c.MagicLinkSameBrowser, "a magic link signs in only the browser that asked for it")
	fs.Int64Var(&c.MessagesPerAddress, "messages-per-address", c.MessagesPerAddress, "e-mails or texts sent per address or number per --message-window")
	fs.Int64Var(&c.MessagesPerIP, "messages-per-ip", c.MessagesPerIP, "e-mails or texts requested per client IP per --message-window")
	fs.DurationVar(&c.MessageWindow, "message-window", c.MessageWindow, "window of the message limits")
	fs.StringVar(&c.AuditWebhookURL, "audit-webhook-url", c.AuditWebhookURL, "URL that receives the sealed audit log in signed batches (https unless loopback)")
	fs.StringVar(&c.AuditWebhookSecret, "audit-webhook-secret", c.AuditWebhookSecret, "HMAC secret of the audit webhook, at least 32 bytes (prefer the environment variable)")
	fs.BoolVar(&c.AuditStdout, "audit-stdout", c.AuditStdout, "write the sealed audit log to stdout as JSON lines")
	fs.Var(commaList{&c.ResourceServers}, "resource-servers", "comma-separated id:secret credentials of APIs allowed to introspect tokens and read the revocation feed (secrets of at least 32 characters; prefer the environment variable)")
}

// KeyFlags registers the signing-key settings (shared by serve and keys).
func KeyFlags(fs *flag.FlagSet, c *Config) {
	fs.StringVar(&c.SigningAlgorithm, "signing-algorithm", c.SigningAlgorithm, "algorithm of new access-token signing keys: EdDSA or ES256")
	fs.DurationVar(&c.KeyPublishDelay, "key-publish-delay", c.KeyPublishDelay, "how long a rotated-in signing key is published before it signs")
	fs.DurationVar(&c.JWKSMaxAge, "jwks-max-age", c.JWKSMaxAge, "Cache-Control max-age of the JWKS")
	fs.DurationVar(&c.AccessTokenTTL, "access-token-ttl", c.AccessTokenTTL, "lifetime of access tokens")
}

// EnvName is the environment variable that sets flag name.
func EnvName(name string) string {
	return "GATEHOUSE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Parse parses args into fs, then fills every flag not given on the command
// line from its environment variable (lookup is os.LookupEnv in production).
func Parse(fs *flag.FlagSet, args []string, lookup func(string) (string, bool)) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		if v, ok := lookup(EnvName(f.Name)); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", EnvName(f.Name), err))
			}
		}
	})
	return errors.Join(errs...)
}

// DatabaseDSN returns the database to open: the configured URL, or the
// SQLite file in the data directory.
func (c *Config) DatabaseDSN() string {
	if c.Database != "" {
		return c.Database
	}
	return filepath.Join(c.DataDir, "gatehouse.db")
}

// Validate checks the configuration once at start.
func (c *Config) Validate() error {
	var errs []error
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("--public-url must be an absolute http(s) URL, got %q", c.PublicURL))
		} else if u.Scheme == "http" && !c.Dev && !isLoopbackHost(u.Hostname()) {
			errs = append(errs, errors.New("--public-url uses plain http on a non-loopback host; use https (or --dev on localhost)"))
		}
	}
	if c.Database != "" && strings.Contains(c.Database, "://") && !strings.HasPrefix(c.Database, "postgres://") && !strings.HasPrefix(c.Database, "postgresql://") {
		errs = append(errs, errors.New("--database must be empty (SQLite in --data-dir) or a postgres:// URL"))
	}
	if c.Dev && c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err == nil && !isLoopbackHost(u.Hostname()) {
			errs = append(errs, errors.New("--dev is for localhost only: --public-url must be a loopback address"))
		}
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("--shutdown-timeout must be positive"))
	}
	if c.PasswordMinLength < 8 {
		errs = append(errs, errors.New("--password-min-length must be at least 8 (NIST SP 800-63B)"))
	}
	if c.SessionIdleTimeout <= 0 || c.SessionLifetime <= 0 || c.SessionIdleTimeout > c.SessionLifetime {
		errs = append(errs, errors.New("--session-idle-timeout must be positive and at most --session-lifetime"))
	}
	if c.ReauthMaxAge <= 0 {
		errs = append(errs, errors.New("--reauth-max-age must be positive"))
	}
	if c.SessionCacheTTL < 0 {
		errs = append(errs, errors.New("--session-cache-ttl must not be negative"))
	}
	if c.Argon2Threads == 0 || c.Argon2Threads > 16 {
		errs = append(errs, errors.New("--argon2-threads must be 1..16"))
	}
	if c.LoginAttemptsPerIP <= 0 || c.LoginFailuresPerAccount <= 0 || c.SignupsPerIP <= 0 || c.LoginFailureWindow <= 0 || c.SignupWindow <= 0 {
		errs = append(errs, errors.New("throttle limits and windows must be positive"))
	}
	if c.StuffingAccounts < 0 || c.StuffingAccounts == 1 || c.StuffingAccountsPerBlock < 0 || c.StuffingAccountsPerBlock == 1 {
		errs = append(errs, errors.New("--stuffing-accounts and --stuffing-accounts-per-block must be 0 (no bans) or at least 2: failures on one account never ban an address"))
	}
	if c.StuffingAccounts > 0 && c.StuffingAccountsPerBlock > 0 && c.StuffingAccountsPerBlock < c.StuffingAccounts {
		errs = append(errs, errors.New("--stuffing-accounts-per-block must be at least --stuffing-accounts: a block holds many addresses"))
	}
	if c.StuffingWindow <= 0 || c.IPBanDuration < time.Minute || c.IPBanDuration > 720*time.Hour {
		errs = append(errs, errors.New("--stuffing-window must be positive and --ip-ban-duration between 1m and 720h"))
	}
	if _, err := risk.ParseBands(c.RiskBands); err != nil {
		errs = append(errs, fmt.Errorf("--risk-bands: %w", err))
	}
	if c.GeoIPASNDB != "" && c.GeoIPDB == "" {
		errs = append(errs, errors.New("--geoip-asn-db needs --geoip-db"))
	}
	if c.TokenRequestsPerIP <= 0 {
		errs = append(errs, errors.New("--token-requests-per-ip must be positive"))
	}
	if c.LoginMaxFailuresPerAccount < c.LoginFailuresPerAccount {
		errs = append(errs, errors.New("--login-max-failures-per-account must be at least --login-failures-per-account"))
	}
	if c.LoginAccountFailureWindow <= 0 || c.LoginDelayAfter < 1 || c.LoginDelayMax < time.Second {
		errs = append(errs, errors.New("--login-account-failure-window must be positive, --login-delay-after at least 1 and --login-delay-max at least 1s"))
	}
	if c.AccessTokenTTL < time.Minute || c.AccessTokenTTL > time.Hour {
		errs = append(errs, errors.New("--access-token-ttl must be between 1m and 1h"))
	}
	if c.RefreshIdleTimeout <= 0 || c.RefreshLifetime <= 0 || c.RefreshIdleTimeout > c.RefreshLifetime {
		errs = append(errs, errors.New("--refresh-idle-timeout must be positive and at most --refresh-lifetime"))
	}
	if c.RefreshGrace < 0 || c.RefreshGrace > time.Minute {
		errs = append(errs, errors.New("--refresh-grace must be between 0 and 1m"))
	}
	if err := c.ValidateKeys(); err != nil {
		errs = append(errs, err)
	}
	if err := c.validateWebAuthn(); err != nil {
		errs = append(errs, err)
	}
	if _, err := httpx.ParseTrustedProxies(c.TrustedProxies); err != nil {
		errs = append(errs, fmt.Errorf("--trusted-proxies: %w", err))
	}
	for _, rs := range c.ResourceServers {
		id, secret, ok := strings.Cut(rs, ":")
		if !ok || id == "" || len(secret) < minResourceSecret {
			errs = append(errs, fmt.Errorf("--resource-servers entries must be id:secret with a secret of at least %d characters", minResourceSecret))
			break
		}
	}
	if err := c.validateMessages(); err != nil {
		errs = append(errs, err)
	}
	if err := c.validateAuditStream(); err != nil {
		errs = append(errs, err)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("--log-level must be debug, info, warn or error, got %q", c.LogLevel))
	}
	return errors.Join(errs...)
}

// ValidateKeys checks the signing-key settings.
func (c *Config) ValidateKeys() error {
	var errs []error
	if c.SigningAlgorithm != "EdDSA" && c.SigningAlgorithm != "ES256" {
		errs = append(errs, fmt.Errorf("--signing-algorithm must be EdDSA or ES256, got %q", c.SigningAlgorithm))
	}
	if c.JWKSMaxAge <= 0 {
		errs = append(errs, errors.New("--jwks-max-age must be positive"))
	}
	if c.KeyPublishDelay < c.JWKSMaxAge+KeyReloadInterval {
		errs = append(errs, fmt.Errorf("--key-publish-delay must be at least --jwks-max-age plus %s, so every verifier has a new key before it signs", KeyReloadInterval))
	}
	return errors.Join(errs...)
}

// validateMessages checks the e-mail and SMS settings. A public URL that is
// not loopback means real users: e-mail must go through a real sender.
func (c *Config) validateMessages() error {
	var errs []error
	if c.SMTPURL == "" && !c.Local() {
		errs = append(errs, errors.New("--smtp-url is required when --public-url is not a loopback address: the dev outbox is for laptops"))
	}
	if c.SMTPURL != "" && c.MailFrom == "" {
		errs = append(errs, errors.New("--mail-from is required with --smtp-url"))
	}
	switch c.SMSProvider {
	case "":
	case "twilio":
		if c.TwilioAccountSID == "" || c.TwilioAuthToken == "" || c.SMSFrom == "" {
			errs = append(errs, errors.New("--sms-provider twilio needs --twilio-account-sid, --twilio-auth-token and --sms-from"))
		}
	case "webhook":
		if c.SMSWebhookURL == "" || c.SMSWebhookSecret == "" {
			errs = append(errs, errors.New("--sms-provider webhook needs --sms-webhook-url and --sms-webhook-secret"))
		}
	default:
		errs = append(errs, fmt.Errorf("--sms-provider must be empty, twilio or webhook, got %q", c.SMSProvider))
	}
	if strings.TrimSpace(c.ProductName) == "" || len(c.ProductName) > 64 {
		errs = append(errs, errors.New("--product-name must be 1..64 characters"))
	}
	if c.VerifyEmailTTL < time.Hour || c.VerifyEmailTTL > 7*24*time.Hour {
		errs = append(errs, errors.New("--verify-email-ttl must be between 1h and 168h"))
	}
	if c.RecoveryTTL < time.Minute || c.RecoveryTTL > MaxRecoveryTTL {
		errs = append(errs, fmt.Errorf("--recovery-ttl must be between 1m and %s", MaxRecoveryTTL))
	}
	if c.MagicLinkTTL < time.Minute || c.MagicLinkTTL > time.Hour {
		errs = append(errs, errors.New("--magic-link-ttl must be between 1m and 1h"))
	}
	if c.OTPTTL < time.Minute || c.OTPTTL > 15*time.Minute {
		errs = append(errs, errors.New("--otp-ttl must be between 1m and 15m"))
	}
	if c.MessagesPerAddress <= 0 || c.MessagesPerIP <= 0 || c.MessageWindow <= 0 {
		errs = append(errs, errors.New("message limits and window must be positive"))
	}
	return errors.Join(errs...)
}

// minAuditWebhookSecret is the shortest audit webhook secret accepted.
const minAuditWebhookSecret = 32

// validateAuditStream checks the audit webhook: an absolute https URL
// (http only to a loopback host), with a secret of at least 32 bytes, and
// no secret without a URL.
func (c *Config) validateAuditStream() error {
	if c.AuditWebhookURL == "" {
		if c.AuditWebhookSecret != "" {
			return errors.New("--audit-webhook-secret is set without --audit-webhook-url")
		}
		return nil
	}
	u, err := url.Parse(c.AuditWebhookURL)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		return errors.New("--audit-webhook-url must be an absolute https URL")
	case u.User != nil:
		return errors.New("--audit-webhook-url must not hold credentials: the batches are signed with --audit-webhook-secret")
	case u.Scheme == "http" && !isLoopbackHost(u.Hostname()):
		return errors.New("--audit-webhook-url must use https (plain http only to a loopback host)")
	case len(c.AuditWebhookSecret) < minAuditWebhookSecret:
		return fmt.Errorf("--audit-webhook-secret of at least %d bytes is required with --audit-webhook-url", minAuditWebhookSecret)
	}
	return nil
}

// Local reports whether the public URL is a loopback address: a laptop,
// where the dev outbox may stand in for real senders.
func (c *Config) Local() bool {
	u, err := url.Parse(c.BaseURL())
	return err == nil && isLoopbackHost(u.Hostname())
}

// TokenLifetime is how long an access token can verify anywhere after it
// is issued: its lifetime plus the leeway on both ends. Retired signing
// keys stay published this long.
func (c *Config) TokenLifetime() time.Duration { return c.AccessTokenTTL + 2*VerifierLeeway }

// Audience is the aud claim of access tokens.
func (c *Config) Audience() string {
	if c.AccessTokenAudience != "" {
		return c.AccessTokenAudience
	}
	return c.BaseURL()
}

// BaseURL is the public base URL, defaulting to http://Addr.
func (c *Config) BaseURL() string {
	if c.PublicURL != "" {
		return strings.TrimRight(c.PublicURL, "/")
	}
	return "http://" + c.Addr
}

// TLS reports whether clients reach the server over https (HSTS applies).
func (c *Config) TLS() bool { return strings.HasPrefix(c.BaseURL(), "https://") }

// WebAuthn returns the relying party id and the allowed origins. By
// default they follow the public URL; an IP address (the
// zero-configuration http://127.0.0.1:8080, or --addr 0.0.0.0:8080) cannot
// be an RP ID, so there the pages are to be opened at
// http://localhost:<port>.
func (c *Config) WebAuthn() (rpID string, origins []string) {
	u, err := url.Parse(c.BaseURL())
	if err != nil {
		return c.WebAuthnRPID, c.WebAuthnOrigins
	}
	rpID, origin := u.Hostname(), u.Scheme+"://"+u.Host
	if net.ParseIP(rpID) != nil {
		// Any IP (loopback, 0.0.0.0, a LAN address): passkeys work only
		// on localhost then; set --public-url to a domain for the rest.
		rpID = "localhost"
		origin = u.Scheme + "://" + net.JoinHostPort("localhost", u.Port())
		if u.Port() == "" {
			origin = u.Scheme + "://localhost"
		}
	}
	if c.WebAuthnRPID != "" {
		rpID = c.WebAuthnRPID
	}
	origins = []string{origin}
	if len(c.WebAuthnOrigins) > 0 {
		origins = c.WebAuthnOrigins
	}
	return rpID, origins
}

// validateWebAuthn checks the relying party: the RP ID is a domain, and
// every origin is that domain or a subdomain of it (WebAuthn §5.1.3),
// over https unless it is localhost.
func (c *Config) validateWebAuthn() error {
	rpID, origins := c.WebAuthn()
	if rpID == "" || net.ParseIP(rpID) != nil || strings.ContainsAny(rpID, ":/ ") {
		return fmt.Errorf("--webauthn-rp-id must be a domain name, got %q", rpID)
	}
	for _, o := range origins {
		u, err := url.Parse(o)
		if err != nil || u.Host == "" || u.Path != "" || (u.Scheme != "https" && u.Scheme != "http") {
			return fmt.Errorf("--webauthn-origins entries must be origins like https://login.example.com, got %q", o)
		}
		h := u.Hostname()
		if h != rpID && !strings.HasSuffix(h, "."+rpID) {
			return fmt.Errorf("WebAuthn origin %q is not on the relying party id %q or a subdomain of it", o, rpID)
		}
		if u.Scheme == "http" && h != "localhost" {
			return fmt.Errorf("WebAuthn origin %q must use https (browsers allow http for localhost only)", o)
		}
	}
	return nil
}

func isLoopbackHost(h string) bool {
	return h == "localhost" || h == "127.0.0.1" || h == "::1"
}

// LookupEnv is os.LookupEnv, named for Parse's callers.
var LookupEnv = os.LookupEnv
