package config

import (
	"flag"
	"testing"
	"time"
)

// TestValidateStuffingBans: the credential-stuffing settings.
func TestValidateStuffingBans(t *testing.T) {
	refused := map[string]func(*Config){
		"one account bans":         func(c *Config) { c.StuffingAccounts = 1 },
		"one account bans a block": func(c *Config) { c.StuffingAccountsPerBlock = 1 },
		"negative":                 func(c *Config) { c.StuffingAccounts = -5 },
		"block under address":      func(c *Config) { c.StuffingAccounts, c.StuffingAccountsPerBlock = 30, 20 },
		"zero window":              func(c *Config) { c.StuffingWindow = 0 },
		"ban under a minute":       func(c *Config) { c.IPBanDuration = time.Second },
		"ban over thirty days":     func(c *Config) { c.IPBanDuration = 721 * time.Hour },
	}
	for name, mutate := range refused {
		c := Default()
		mutate(&c)
		if c.Validate() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for name, mutate := range map[string]func(*Config){
		"defaults":        func(*Config) {},
		"no address bans": func(c *Config) { c.StuffingAccounts = 0 },
		"no block bans":   func(c *Config) { c.StuffingAccountsPerBlock = 0 },
	} {
		c := Default()
		mutate(&c)
		if err := c.Validate(); err != nil {
			t.Errorf("%s: refused: %v", name, err)
		}
	}

	c := Default()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	ServeFlags(fs, &c)
	env := map[string]string{"GATEHOUSE_IP_BAN_DURATION": "2h"}
	err := Parse(fs, []string{"--stuffing-accounts", "25", "--stuffing-accounts-per-block=80", "--stuffing-window", "5m"},
		func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	if c.StuffingAccounts != 25 || c.StuffingAccountsPerBlock != 80 || c.StuffingWindow != 5*time.Minute || c.IPBanDuration != 2*time.Hour {
		t.Fatalf("parsed %d %d %s %s", c.StuffingAccounts, c.StuffingAccountsPerBlock, c.StuffingWindow, c.IPBanDuration)
	}
}
