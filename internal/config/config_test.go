package config

import (
	"flag"
	"io"
	"slices"
	"testing"
	"time"
)

func TestParseFlagsAndEnvironment(t *testing.T) {
	env := map[string]string{
		"GATEHOUSE_ADDR":                 "0.0.0.0:9000",
		"GATEHOUSE_DATA_DIR":             "/var/lib/gatehouse",
		"GATEHOUSE_DEV":                  "true",
		"GATEHOUSE_SESSION_IDLE_TIMEOUT": "2h",
		"GATEHOUSE_TRUSTED_ORIGINS":      "https://a.example, https://b.example",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	c := Default()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	ServeFlags(fs, &c)
	if err := Parse(fs, []string{"--addr", "127.0.0.1:7000"}, lookup); err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:7000" {
		t.Errorf("flag must win over env: addr %q", c.Addr)
	}
	if c.DataDir != "/var/lib/gatehouse" || !c.Dev || c.SessionIdleTimeout != 2*time.Hour {
		t.Errorf("env not applied: %+v", c)
	}
	if len(c.TrustedOrigins) != 2 || c.TrustedOrigins[1] != "https://b.example" {
		t.Errorf("trusted origins %q", c.TrustedOrigins)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("valid config refused: %v", err)
	}
}

func TestEveryFlagHasAnEnvironmentVariable(t *testing.T) {
	c := Default()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	ServeFlags(fs, &c)
	seen := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { seen[EnvName(f.Name)] = true })
	for _, want := range []string{"GATEHOUSE_ADDR", "GATEHOUSE_DATA_DIR", "GATEHOUSE_DATABASE", "GATEHOUSE_REDIS", "GATEHOUSE_PUBLIC_URL", "GATEHOUSE_DEV"} {
		if !seen[want] {
			t.Errorf("no flag behind %s", want)
		}
	}
}

func TestValidateRefuses(t *testing.T) {
	cases := map[string]func(*Config){
		"short passwords":       func(c *Config) { c.PasswordMinLength = 7 },
		"plain http public url": func(c *Config) { c.PublicURL = "http://auth.example.com" },
		"relative public url":   func(c *Config) { c.PublicURL = "/auth" },
		"idle longer than life": func(c *Config) { c.SessionIdleTimeout = c.SessionLifetime + time.Hour },
		"zero reauth age":       func(c *Config) { c.ReauthMaxAge = 0 },
		"negative cache ttl":    func(c *Config) { c.SessionCacheTTL = -time.Second },
		"zero argon2 threads":   func(c *Config) { c.Argon2Threads = 0 },
		"zero throttle":         func(c *Config) { c.LoginFailuresPerAccount = 0 },
		"unknown log level":     func(c *Config) { c.LogLevel = "loud" },
		// A public URL that is not loopback means real users: the dev
		// outbox (which logs live links) must not stand in for SMTP.
		"production without smtp": func(c *Config) { c.PublicURL = "https://auth.example.com" },
		"smtp without from":       func(c *Config) { c.SMTPURL = "smtp://mail.example.com" },
		"unknown sms provider":    func(c *Config) { c.SMSProvider = "carrier-pigeon" },
		"twilio without token": func(c *Config) {
			c.SMSProvider, c.TwilioAccountSID, c.SMSFrom = "twilio", "AC123", "+14155550100"
		},
		"webhook without secret":   func(c *Config) { c.SMSProvider, c.SMSWebhookURL = "webhook", "https://sms.example.com" },
		"recovery ttl over 1h":     func(c *Config) { c.RecoveryTTL = time.Hour + time.Minute },
		"otp ttl over 15m":         func(c *Config) { c.OTPTTL = 16 * time.Minute },
		"magic link ttl over 1h":   func(c *Config) { c.MagicLinkTTL = 2 * time.Hour },
		"zero message limit":       func(c *Config) { c.MessagesPerAddress = 0 },
		"empty product name":       func(c *Config) { c.ProductName = " " },
		"webauthn rp id an ip":     func(c *Config) { c.WebAuthnRPID = "192.0.2.1" },
		"webauthn rp id with port": func(c *Config) { c.WebAuthnRPID = "localhost:8080" },
		"webauthn origin off the rp id": func(c *Config) {
			c.WebAuthnRPID, c.WebAuthnOrigins = "localhost", []string{"https://evil.example"}
		},
		"webauthn origin a suffix, not a subdomain": func(c *Config) {
			c.WebAuthnRPID, c.WebAuthnOrigins = "example.com", []string{"https://notexample.com"}
		},
		"webauthn plain http off localhost": func(c *Config) {
			c.WebAuthnRPID, c.WebAuthnOrigins = "example.com", []string{"http://login.example.com"}
		},
		"webauthn origin with a path":  func(c *Config) { c.WebAuthnOrigins = []string{"http://localhost:8080/ui"} },
		"trusted proxy not an address": func(c *Config) { c.TrustedProxies = []string{"proxy.internal"} },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			c := Default()
			mutate(&c)
			if c.Validate() == nil {
				t.Error("accepted")
			}
		})
	}
	c := Default()
	c.Dev = true
	c.PublicURL = "http://localhost:8080"
	if err := c.Validate(); err != nil {
		t.Errorf("dev localhost refused: %v", err)
	}
	c = Default()
	c.PublicURL, c.SMTPURL, c.MailFrom = "https://auth.example.com", "smtps://mail.example.com", "auth@example.com"
	if err := c.Validate(); err != nil {
		t.Errorf("production with SMTP refused: %v", err)
	}
}

func TestWebAuthnRelyingParty(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mutate  func(*Config)
		rpID    string
		origins []string
	}{
		{"zero configuration", func(*Config) {}, "localhost", []string{"http://localhost:8080"}},
		{"every interface", func(c *Config) { c.Addr = "0.0.0.0:9000" }, "localhost", []string{"http://localhost:9000"}},
		{"public url", func(c *Config) { c.PublicURL = "https://login.example.com" }, "login.example.com", []string{"https://login.example.com"}},
		{"public url with a port", func(c *Config) { c.PublicURL = "https://login.example.com:8443/" }, "login.example.com", []string{"https://login.example.com:8443"}},
		{"parent domain", func(c *Config) {
			c.PublicURL, c.WebAuthnRPID = "https://login.example.com", "example.com"
		}, "example.com", []string{"https://login.example.com"}},
		{"several origins", func(c *Config) {
			c.WebAuthnRPID, c.WebAuthnOrigins = "example.com", []string{"https://example.com", "https://app.example.com"}
		}, "example.com", []string{"https://example.com", "https://app.example.com"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.mutate(&c)
			rpID, origins := c.WebAuthn()
			if rpID != tc.rpID || !slices.Equal(origins, tc.origins) {
				t.Errorf("WebAuthn() = %q %q, want %q %q", rpID, origins, tc.rpID, tc.origins)
			}
			if err := c.validateWebAuthn(); err != nil {
				t.Errorf("refused: %v", err)
			}
		})
	}
}
