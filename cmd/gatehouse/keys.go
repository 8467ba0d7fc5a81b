package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/app"
	"github.com/gatehouse-auth/gatehouse/internal/config"
	"github.com/gatehouse-auth/gatehouse/internal/secrets"
	"github.com/gatehouse-auth/gatehouse/internal/signing"
)

const keysUsage = `usage: gatehouse keys <command> [flags]

commands:
  rotate   create a new access-token signing key: published in the JWKS at
           once, signing from --key-publish-delay later (the current key
           keeps signing until then, and stays published for the access-token
           lifetime after)
  list     list the signing keys with their state (pending, active,
           retiring, expired)

Both take the storage flags of "migrate" and the key flags of "serve"
(--signing-algorithm, --key-publish-delay, --jwks-max-age,
--access-token-ttl); use the servers' values. Running servers pick up a
rotation within a minute, without a restart.

Private keys are sealed with the key-encryption key in <data-dir>/keys/
(kek-vN.key). With PostgreSQL, every replica and this command must use the
same keys/ directory: run it where that directory is mounted, with
--data-dir pointing to it.

Run "gatehouse keys <command> -h" for the flags of a command.
`

func keysCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, keysUsage)
		return errors.New("keys: missing command")
	}
	switch args[0] {
	case "rotate":
		return rotateKeys(ctx, args[1:], stdout, stderr)
	case "list":
		return listKeys(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, keysUsage)
		return nil
	default:
		fmt.Fprint(stderr, keysUsage)
		return fmt.Errorf("unknown keys command %q", args[0])
	}
}

// keysConfig parses the flags of a keys subcommand.
func keysConfig(name string, args []string, stderr io.Writer) (config.Config, signing.Config, error) {
	cfg := config.Default()
	fs := flag.NewFlagSet("keys "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	config.StorageFlags(fs, &cfg)
	config.KeyFlags(fs, &cfg)
	if err := config.Parse(fs, args, config.LookupEnv); err != nil {
		return cfg, signing.Config{}, err
	}
	if fs.NArg() > 0 {
		return cfg, signing.Config{}, fmt.Errorf("keys %s: unexpected argument %q", name, fs.Arg(0))
	}
	if err := cfg.ValidateKeys(); err != nil {
		return cfg, signing.Config{}, err
	}
	return cfg, signing.Config{
		Algorithm:      cfg.SigningAlgorithm,
		PublishDelay:   cfg.KeyPublishDelay,
		TokenLifetime:  cfg.TokenLifetime(),
		ReloadInterval: config.KeyReloadInterval,
		JWKSMaxAge:     cfg.JWKSMaxAge,
	}, nil
}

func rotateKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, scfg, err := keysConfig("rotate", args, stderr)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogLevel)
	db, err := app.OpenStore(ctx, &cfg, true, log)
	if err != nil {
		return err
	}
	defer db.Close()
	keks, err := secrets.LoadKEKs(cfg.DataDir, log)
	if err != nil {
		return err
	}
	now := time.Now()
	key, err := signing.Rotate(ctx, db.SigningKeys(), keks, scfg, now)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "kid:        %s\nalgorithm:  %s\npublished:  now (servers reload within %s)\nactivates:  %s (in %s)\n",
		key.ID, key.Algorithm, config.KeyReloadInterval, key.ActivatesAt.UTC().Format(time.RFC3339), key.ActivatesAt.Sub(now).Round(time.Second))
	return nil
}

func listKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, scfg, err := keysConfig("list", args, stderr)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogLevel)
	db, err := app.OpenStore(ctx, &cfg, true, log)
	if err != nil {
		return err
	}
	defer db.Close()
	keys, err := signing.List(ctx, db.SigningKeys(), scfg, time.Now())
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KID\tALGORITHM\tSTATE\tCREATED\tACTIVATES\tRETIRED\tUNPUBLISHED")
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Algorithm, k.State,
			formatTime(&k.CreatedAt), formatTime(&k.ActivatesAt), formatTime(k.RetiredAt), formatTime(k.UnpublishAt))
	}
	return tw.Flush()
}

func formatTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
