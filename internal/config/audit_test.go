package config

import (
	"flag"
	"io"
	"strings"
	"testing"
)

func TestAuditStreamFlags(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	env := map[string]string{"GATEHOUSE_AUDIT_WEBHOOK_SECRET": secret}
	c := Default()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	ServeFlags(fs, &c)
	err := Parse(fs, []string{"--audit-webhook-url", "https://siem.example.com/gatehouse", "--audit-stdout"},
		func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	if c.AuditWebhookURL != "https://siem.example.com/gatehouse" || c.AuditWebhookSecret != secret || !c.AuditStdout {
		t.Fatalf("audit settings %q %q %v", c.AuditWebhookURL, c.AuditWebhookSecret, c.AuditStdout)
	}
	if err := c.validateAuditStream(); err != nil {
		t.Errorf("valid audit webhook refused: %v", err)
	}
}

func TestAuditStreamValidation(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		url, secret string
		ok          bool
		want        string
	}{
		{"", "", true, ""},
		{"https://siem.example.com/in", secret, true, ""},
		{"http://127.0.0.1:9000/in", secret, true, ""},
		{"http://localhost:9000/in", secret, true, ""},
		{"http://[::1]:9000/in", secret, true, ""},
		{"http://siem.example.com/in", secret, false, "https"},
		{"https://siem.example.com/in", "", false, "at least 32 bytes"},
		{"https://siem.example.com/in", secret[:31], false, "at least 32 bytes"},
		{"", secret, false, "without --audit-webhook-url"},
		{"siem.example.com/in", secret, false, "absolute https URL"},
		{"ftp://siem.example.com/in", secret, false, "absolute https URL"},
		{"https://user:pw@siem.example.com/in", secret, false, "credentials"},
	} {
		c := Default()
		c.AuditWebhookURL, c.AuditWebhookSecret = tc.url, tc.secret
		err := c.Validate()
		switch {
		case tc.ok && err != nil:
			t.Errorf("%q: refused: %v", tc.url, err)
		case !tc.ok && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q with a %d-byte secret: %v, want an error about %q", tc.url, len(tc.secret), err, tc.want)
		}
	}
}
