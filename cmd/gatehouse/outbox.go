package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/config"
	"github.com/gatehouse-auth/gatehouse/internal/outbox"
)

// outboxCommand implements `gatehouse outbox`: it lists the newest messages
// of the development outbox, where e-mails and texts go when no SMTP server
// or SMS provider is configured.
func outboxCommand(_ context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := config.Default()
	fs := flag.NewFlagSet("outbox", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: gatehouse outbox [flags]\n\nList the newest messages of the development outbox (<data-dir>/"+outbox.FileName+"),\nwhere e-mails and texts go when no SMTP server or SMS provider is configured.\n\nflags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory of the server's data (the outbox file)")
	n := fs.Int("n", 20, "how many of the newest messages to list")
	asJSON := fs.Bool("json", false, "print the messages as JSON lines")
	if err := config.Parse(fs, args, config.LookupEnv); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("outbox: unexpected argument %q", fs.Arg(0))
	}
	if *n <= 0 {
		return fmt.Errorf("outbox: -n must be positive, got %d", *n)
	}
	entries, err := outbox.Open(cfg.DataDir).List(*n)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, e := range entries {
			if err := enc.Encode(e); err != nil {
				return err
			}
		}
		return nil
	}
	if len(entries) == 0 {
		fmt.Fprintf(stdout, "The outbox in %s is empty.\n", cfg.DataDir)
		return nil
	}
	for i, e := range entries {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		fmt.Fprintf(stdout, "%s  %s  to %s\n", e.At.UTC().Format(time.RFC3339), e.Channel, e.To)
		if e.Subject != "" {
			fmt.Fprintf(stdout, "Subject: %s\n", e.Subject)
		}
		for line := range strings.Lines(strings.TrimRight(e.Body, "\n")) {
			fmt.Fprintf(stdout, "    %s", line)
		}
		fmt.Fprintln(stdout)
	}
	return nil
}
