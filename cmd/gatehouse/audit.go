package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/app"
	"github.com/gatehouse-auth/gatehouse/internal/audit"
	"github.com/gatehouse-auth/gatehouse/internal/config"
	"github.com/gatehouse-auth/gatehouse/internal/store/sqlstore"
)

const auditUsage = `usage: gatehouse audit <command> [flags]

commands:
  verify   walk the tamper-evident audit chain from seq 1, recompute every
           link and report the first break: an edited event (hash
           mismatch), deleted events (a gap in seq, or a prev_hash
           mismatch), reordered events (prev_hash mismatch). Each
           --anchor SEQ:HEXHASH (repeatable; the seq and hash of an
           "audit chain sealed" log line, or of the last event a sink
           received) must still be in the chain, which catches a truncated
           or rewritten tail. Warns when events stay unsealed for over a
           minute (no server is sealing). Exits non-zero on any tamper
           finding.
  export   write the events matching --user, --type, --ip, --since and
           --until (RFC 3339) to stdout as JSON lines, oldest first

Both take the storage flags of "migrate" and only read the database.

Run "gatehouse audit <command> -h" for the flags of a command.
`

func auditCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, auditUsage)
		return errors.New("audit: missing command")
	}
	switch args[0] {
	case "verify":
		return verifyAudit(ctx, args[1:], stdout, stderr)
	case "export":
		return exportAudit(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, auditUsage)
		return nil
	default:
		fmt.Fprint(stderr, auditUsage)
		return fmt.Errorf("unknown audit command %q", args[0])
	}
}

// anchorList collects repeated --anchor flags.
type anchorList []audit.Anchor

func (l *anchorList) String() string { return fmt.Sprint(*l) }

func (l *anchorList) Set(s string) error {
	a, err := audit.ParseAnchor(s)
	if err != nil {
		return err
	}
	*l = append(*l, a)
	return nil
}

// openAuditStore opens the database for reading the audit log: it is not
// migrated (these commands never write), so a schema older than this build
// is reported as such.
func openAuditStore(ctx context.Context, cfg *config.Config, stderr io.Writer) (*sqlstore.DB, error) {
	db, err := app.OpenStore(ctx, cfg, false, newLogger(stderr, cfg.LogLevel))
	if err != nil {
		return nil, err
	}
	if err := db.Ping(ctx); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	return db, nil
}

func verifyAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := config.Default()
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config.StorageFlags(fs, &cfg)
	var anchors anchorList
	fs.Var(&anchors, "anchor", "SEQ:HEXHASH of a chain head recorded outside the database (repeatable)")
	if err := config.Parse(fs, args, config.LookupEnv); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("audit verify: unexpected argument %q", fs.Arg(0))
	}
	db, err := openAuditStore(ctx, &cfg, stderr)
	if err != nil {
		return err
	}
	defer db.Close()
	now := time.Now()
	r, err := audit.Verify(ctx, db.Audit(), anchors, now)
	if err != nil {
		return err
	}
	for _, f := range r.Findings {
		fmt.Fprintf(stdout, "TAMPERED: %s\n", f)
	}
	if r.Intact() {
		fmt.Fprintf(stdout, "audit chain intact: %d events, head seq %d hash %x\n", r.Checked, r.Head.Seq, r.Head.Hash)
		if len(anchors) > 0 {
			fmt.Fprintf(stdout, "all %d anchors found\n", len(anchors))
		}
	} else {
		fmt.Fprintf(stdout, "verified %d events before the first break (last good link: seq %d hash %x)\n", r.Checked, r.Head.Seq, r.Head.Hash)
	}
	if r.Unsealed > 0 {
		fmt.Fprintf(stdout, "%d events not yet sealed, the oldest from %s\n", r.Unsealed, r.OldestUnsealed.UTC().Format(time.RFC3339))
	}
	if r.SealerStalled {
		fmt.Fprintf(stdout, "WARNING: unsealed events older than %s: no server is sealing the chain (is gatehouse serve running and healthy?)\n", audit.StaleUnsealed)
	}
	if !r.Intact() {
		return fmt.Errorf("audit chain verification failed: %d findings", len(r.Findings))
	}
	return nil
}

func exportAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := config.Default()
	fs := flag.NewFlagSet("audit export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config.StorageFlags(fs, &cfg)
	user := fs.String("user", "", "only the events of this user id")
	typ := fs.String("type", "", "only events of this type, e.g. login.failed")
	ip := fs.String("ip", "", "only events from this client IP address")
	since := fs.String("since", "", "only events at or after this RFC 3339 time")
	until := fs.String("until", "", "only events before this RFC 3339 time")
	if err := config.Parse(fs, args, config.LookupEnv); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("audit export: unexpected argument %q", fs.Arg(0))
	}
	f, err := audit.ParseFilter(*user, *typ, *ip, *since, *until)
	if err != nil {
		return fmt.Errorf("audit export: --%w", err)
	}
	db, err := openAuditStore(ctx, &cfg, stderr)
	if err != nil {
		return err
	}
	defer db.Close()
	w := bufio.NewWriter(stdout)
	if err := audit.Export(ctx, db.Audit(), f, w, w.Flush); err != nil {
		return err
	}
	return w.Flush()
}
