// Command gatehouse is the Gatehouse server and its operator CLI:
//
//	gatehouse serve          run the server (zero configuration: SQLite in ./gatehouse-data)
//	gatehouse migrate        apply the embedded schema migrations and exit
//	gatehouse users import   create users from JSON lines with imported password hashes
//	gatehouse keys rotate    add an access-token signing key (published now, signing later)
//	gatehouse keys list      list the signing keys and their state
//	gatehouse outbox         list the messages of the dev outbox (no SMTP configured)
//	gatehouse audit verify   check the tamper-evident audit chain (and --anchor heads)
//	gatehouse audit export   write audit events as JSON lines (filters: --user --type --ip --since --until)
//	gatehouse ip             list, allow, deny or delete rules of client addresses (and stuffing bans)
//	gatehouse version        print the version
//
// Every flag can also be set with an environment variable GATEHOUSE_<NAME>
// (e.g. --data-dir is GATEHOUSE_DATA_DIR); a flag on the command line wins.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/account"
	"github.com/gatehouse-auth/gatehouse/internal/app"
	"github.com/gatehouse-auth/gatehouse/internal/audit"
	"github.com/gatehouse-auth/gatehouse/internal/config"
	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const usage = `usage: gatehouse <command> [flags]

commands:
  serve          run the server
  migrate        apply database migrations and exit
  users import   import users from JSON lines (file argument or stdin)
  users admin    mark a user an administrator (--revoke: no longer)
  keys rotate    add an access-token signing key (published now, signing later)
  keys list      list the access-token signing keys and their state
  outbox         list e-mails and texts kept in the dev outbox (no SMTP configured)
  audit verify   check the tamper-evident audit chain; non-zero exit on tampering
  audit export   write audit events as JSON lines (--user, --type, --ip, --since, --until)
  ip list        list the allow and deny rules of client addresses (stuffing bans included)
  ip allow|deny  allow or deny an address or CIDR block (--for, --reason)
  ip delete      delete the rule of an address or block (lifts a ban)
  version        print the version

Run "gatehouse <command> -h" for the flags of a command.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "gatehouse:", err)
		}
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stderr)
	case "migrate":
		return migrate(ctx, args[1:], stderr)
	case "users":
		switch {
		case len(args) >= 2 && args[1] == "import":
			return importUsers(ctx, args[2:], stdin, stdout, stderr)
		case len(args) >= 2 && args[1] == "admin":
			return adminUser(ctx, args[2:], stdout, stderr)
		}
		return errors.New(`usage: gatehouse users import [flags] [file.jsonl] | gatehouse users admin [--revoke] [flags] EMAIL`)
	case "keys":
		return keysCommand(ctx, args[1:], stdout, stderr)
	case "outbox":
		return outboxCommand(ctx, args[1:], stdout, stderr)
	case "audit":
		return auditCommand(ctx, args[1:], stdout, stderr)
	case "ip":
		return ipCommand(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "gatehouse", version)
		return nil
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	cfg := config.Default()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config.ServeFlags(fs, &cfg)
	if err := config.Parse(fs, args, config.LookupEnv); err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogLevel)
	srv, err := app.New(ctx, cfg, log, app.Options{})
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if cfg.MetricsAddr != "" {
		mln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("listen for metrics: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", srv.Metrics)
		ms := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = ms.Serve(mln) }()
		defer ms.Close()
		log.Info("metrics listening", slog.String("addr", mln.Addr().String()))
	}
	log.Info("gatehouse listening",
		slog.String("addr", ln.Addr().String()),
		slog.String("public_url", cfg.BaseURL()),
		slog.String("database", srv.Dialect),
		slog.Bool("redis", cfg.Redis != ""),
		slog.Bool("dev", cfg.Dev),
		slog.String("version", version))
	if err := srv.Run(ctx, ln); err != nil {
		return err
	}
	log.Info("gatehouse stopped")
	return nil
}

func migrate(ctx context.Context, args []string, stderr io.Writer) error {
	cfg := config.Default()
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config.StorageFlags(fs, &cfg)
	if err := config.Parse(fs, args, config.LookupEnv); err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogLevel)
	db, err := app.OpenStore(ctx, &cfg, false, log)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		return err
	}
	log.Info("migrations applied", slog.String("database", db.Dialect()))
	return nil
}

func importUsers(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	cfg := config.Default()
	fs := flag.NewFlagSet("users import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config.StorageFlags(fs, &cfg)
	if err := config.Parse(fs, args, config.LookupEnv); err != nil {
		return err
	}
	in := stdin
	if fs.NArg() > 0 {
		f, err := os.Open(fs.Arg(0))
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	log := newLogger(stderr, cfg.LogLevel)
	db, err := app.OpenStore(ctx, &cfg, true, log)
	if err != nil {
		return err
	}
	defer db.Close()
	res, err := account.Import(ctx, db, in, nil)
	for _, e := range res.Errors {
		fmt.Fprintln(stderr, e)
	}
	fmt.Fprintf(stdout, "imported %d, skipped %d (already registered), failed %d\n", res.Imported, res.Skipped, len(res.Errors))
	if err != nil {
		return err
	}
	if len(res.Errors) > 0 {
		return fmt.Errorf("%d lines failed", len(res.Errors))
	}
	return nil
}

// adminUser marks the account of an e-mail address an administrator (or,
// with --revoke, no longer one). Policies such as --require-mfa-for-admins
// apply from the account's next request. Audited as user.admin_granted or
// user.admin_revoked.
func adminUser(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := config.Default()
	fs := flag.NewFlagSet("users admin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config.StorageFlags(fs, &cfg)
	revoke := fs.Bool("revoke", false, "remove the administrator mark instead")
	if err := config.Parse(fs, args, config.LookupEnv); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: gatehouse users admin [--revoke] [flags] EMAIL")
	}
	email, err := account.ParseEmail(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("%q is not an e-mail address", fs.Arg(0))
	}
	log := newLogger(stderr, cfg.LogLevel)
	db, err := app.OpenStore(ctx, &cfg, true, log)
	if err != nil {
		return err
	}
	defer db.Close()
	u, err := db.Users().UserByEmailKey(ctx, email.Key)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no account has the address %s", email.Display)
	}
	if err != nil {
		return err
	}
	now := time.Now()
	typ := audit.AdminGranted
	if *revoke {
		typ = audit.AdminRevoked
	}
	err = db.InTx(ctx, func(tx store.Tx) error {
		if err := tx.Users().SetAdmin(ctx, u.ID, !*revoke, now); err != nil {
			return err
		}
		e := &store.Event{Type: typ, UserID: u.ID, At: now, Details: map[string]string{"by": "cli"}}
		return tx.Audit().AppendEvent(ctx, e)
	})
	if err != nil {
		return err
	}
	state := "an administrator"
	if *revoke {
		state = "not an administrator"
	}
	fmt.Fprintf(stdout, "%s (%s) is now %s\n", u.Email, u.ID, state)
	return nil
}
