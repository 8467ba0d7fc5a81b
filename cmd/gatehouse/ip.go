package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/app"
	"github.com/gatehouse-auth/gatehouse/internal/config"
	"github.com/gatehouse-auth/gatehouse/internal/ephemeral"
	"github.com/gatehouse-auth/gatehouse/internal/ipguard"
	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/store/sqlstore"
)

const ipUsage = `usage: gatehouse ip <command> [flags]

commands:
  list                    list the live allow and deny rules of client
                          addresses, stuffing bans included
  allow PREFIX [flags]    exempt a block (an office NAT) from per-IP rate
                          limits and credential-stuffing bans
  deny PREFIX [flags]     refuse every request from a block (403 ip_blocked)
  delete PREFIX           delete the rule of a block (lifts a ban)

PREFIX is an address (192.0.2.7, 2001:db8::1) or a CIDR prefix
(198.51.100.0/24, 2001:db8::/48). Rules broader than /8 (IPv4) or /32
(IPv6) are refused. allow and deny replace the rule of the same prefix
and take --for DURATION (default: until deleted) and --reason TEXT (for
operators; never shown to clients). The most specific rule holding an
address decides (an allow /28 inside a denied /24 stays open).

Every command takes the storage flags of "migrate", plus --redis and
--redis-prefix: with them (or GATEHOUSE_REDIS) running servers apply a
change at once; without, within 10 seconds. Changes are audited
(ip.rule_changed, by=cli).

Run "gatehouse ip <command> -h" for the flags of a command.
`

func ipCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, ipUsage)
		return errors.New("ip: missing command")
	}
	switch args[0] {
	case "list":
		return listIPRules(ctx, args[1:], stdout, stderr)
	case "allow", "deny":
		return putIPRule(ctx, args[0], args[1:], stdout, stderr)
	case "delete":
		return deleteIPRule(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, ipUsage)
		return nil
	default:
		fmt.Fprint(stderr, ipUsage)
		return fmt.Errorf("unknown ip command %q", args[0])
	}
}

// ipCmd is one parsed ip subcommand.
type ipCmd struct {
	cfg    config.Config
	prefix netip.Prefix
	dur    time.Duration
	reason string
}

// parseIP parses the flags of ip name, which takes one PREFIX argument
// (before or after the flags) when withPrefix.
func parseIP(name string, args []string, stderr io.Writer, withPrefix, withRule bool) (*ipCmd, error) {
	c := &ipCmd{cfg: config.Default()}
	fs := flag.NewFlagSet("ip "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	config.StorageFlags(fs, &c.cfg)
	fs.StringVar(&c.cfg.Redis, "redis", c.cfg.Redis, "Redis URL of the servers, to tell them of a change at once")
	fs.StringVar(&c.cfg.RedisPrefix, "redis-prefix", c.cfg.RedisPrefix, "prefix of every Redis key and channel (as the servers')")
	if withRule {
		fs.DurationVar(&c.dur, "for", 0, "how long the rule lasts (default: until deleted)")
		fs.StringVar(&c.reason, "reason", "", "why, for operators (at most 200 characters)")
	}
	if err := config.Parse(fs, args, config.LookupEnv); err != nil {
		return nil, err
	}
	rest := fs.Args()
	if withPrefix && len(rest) > 0 {
		// Flags may follow the prefix: gatehouse ip deny 192.0.2.0/24 --for 1h
		arg := rest[0]
		if err := fs.Parse(rest[1:]); err != nil {
			return nil, err
		}
		rest = append([]string{arg}, fs.Args()...)
	}
	usage := "usage: gatehouse ip " + name + " [flags]"
	if withPrefix {
		usage = "usage: gatehouse ip " + name + " PREFIX [flags]"
	}
	switch {
	case withPrefix && len(rest) != 1, !withPrefix && len(rest) != 0:
		return nil, errors.New(usage)
	case c.dur < 0:
		return nil, errors.New("--for must be positive")
	}
	if withPrefix {
		p, err := ipguard.ParsePrefix(rest[0])
		if err != nil {
			return nil, err
		}
		c.prefix = p
	}
	return c, nil
}

func (c *ipCmd) open(ctx context.Context, stderr io.Writer) (*sqlstore.DB, error) {
	return app.OpenStore(ctx, &c.cfg, true, newLogger(stderr, c.cfg.LogLevel))
}

// announce tells the running servers of a change over Redis, when given;
// a failure is a warning: the change is stored, and servers reload it
// within their refresh interval anyway.
func (c *ipCmd) announce(ctx context.Context, stdout, stderr io.Writer, forget bool) {
	if c.cfg.Redis == "" {
		fmt.Fprintln(stdout, "running servers apply it within 10s (no --redis to tell them at once)")
		return
	}
	err := func() error {
		r, err := ephemeral.NewRedis(ctx, c.cfg.Redis, c.cfg.RedisPrefix)
		if err != nil {
			return err
		}
		defer r.Close()
		if forget {
			if err := ipguard.Forget(ctx, r, c.prefix); err != nil {
				return err
			}
		}
		return ipguard.Announce(ctx, r)
	}()
	if err != nil {
		fmt.Fprintf(stderr, "warning: servers not told at once (%v); they apply the change within 10s\n", err)
		return
	}
	fmt.Fprintln(stdout, "running servers told at once")
}

func listIPRules(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseIP("list", args, stderr, false, false)
	if err != nil {
		return err
	}
	db, err := c.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer db.Close()
	rules, err := db.IPRules().ListIPRules(ctx, time.Now())
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PREFIX\tACTION\tEXPIRES\tCREATED\tCREATED BY\tREASON")
	for _, r := range rules {
		expires := "never"
		if !r.ExpiresAt.IsZero() {
			expires = r.ExpiresAt.UTC().Format(time.RFC3339)
		}
		reason := r.Reason
		if reason == "" {
			reason = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Prefix, r.Action, expires, r.CreatedAt.UTC().Format(time.RFC3339), r.CreatedBy, reason)
	}
	return tw.Flush()
}

func putIPRule(ctx context.Context, action string, args []string, stdout, stderr io.Writer) error {
	c, err := parseIP(action, args, stderr, true, true)
	if err != nil {
		return err
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	rule := &store.IPRule{Prefix: c.prefix, Action: action, Reason: strings.TrimSpace(c.reason), CreatedBy: "cli", CreatedAt: now}
	if c.dur > 0 {
		rule.ExpiresAt = now.Add(c.dur)
	}
	if err := ipguard.CheckRule(rule); err != nil {
		return err
	}
	db, err := c.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer db.Close()
	e := &store.Event{At: now, Details: map[string]string{"by": "cli"}}
	if err := ipguard.Put(ctx, db, rule, e); err != nil {
		return err
	}
	until := "until deleted"
	if !rule.ExpiresAt.IsZero() {
		until = "until " + rule.ExpiresAt.Format(time.RFC3339)
	}
	fmt.Fprintf(stdout, "%s %s %s\n", action, rule.Prefix, until)
	c.announce(ctx, stdout, stderr, false)
	return nil
}

func deleteIPRule(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseIP("delete", args, stderr, true, false)
	if err != nil {
		return err
	}
	db, err := c.open(ctx, stderr)
	if err != nil {
		return err
	}
	defer db.Close()
	e := &store.Event{At: time.Now().UTC().Truncate(time.Microsecond), Details: map[string]string{"by": "cli"}}
	err = ipguard.Delete(ctx, db, c.prefix, e)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no rule has the prefix %s", c.prefix)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "deleted the rule of %s\n", c.prefix)
	c.announce(ctx, stdout, stderr, true)
	return nil
}
