package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgreSQL for the refresh scenario: each Gatehouse on PostgreSQL gets a
// database of its own, created on the server that -postgres names and
// dropped when the run ends (after the servers have stopped), so that runs
// start alike and leave nothing behind. Neither the URL nor its password
// is ever printed.

// checkPostgresURL accepts a postgres:// URL whose hosts are all on this
// machine (loopback addresses, localhost or Unix sockets): loadgen loads
// nothing else.
func checkPostgresURL(admin string) error {
	u, err := url.Parse(admin)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return errors.New("want a postgres:// URL")
	}
	cfg, err := pgx.ParseConfig(admin)
	if err != nil {
		return errors.New("the URL does not parse") // pgx's message may quote it
	}
	hosts := []string{cfg.Host}
	for _, fb := range cfg.Fallbacks {
		hosts = append(hosts, fb.Host)
	}
	for _, h := range hosts {
		if strings.HasPrefix(h, "/") || h == "localhost" {
			continue
		}
		if ip := net.ParseIP(h); ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("refusing host %q: only PostgreSQL on this machine (loopback or a Unix socket) is used", h)
		}
	}
	return nil
}

// createDatabase creates a fresh database gh_bench_… through admin and
// returns the URL that names it, and its name. Unless keep, it is dropped
// at cleanup.
func createDatabase(ctx context.Context, admin string, keep bool) (dsn, name string, err error) {
	name = "gh_bench_" + strings.ToLower(rand.Text())
	if err := execAdmin(ctx, admin, "CREATE DATABASE "+name); err != nil {
		return "", "", fmt.Errorf("postgres: create database: %w", err)
	}
	if keep {
		fmt.Fprintf(os.Stderr, "loadgen: keeping PostgreSQL database %s (DROP DATABASE %s WITH (FORCE) when done)\n", name, name)
	} else {
		atCleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := execAdmin(ctx, admin, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
				fmt.Fprintf(os.Stderr, "loadgen: could not drop PostgreSQL database %s: %v\n", name, err)
			}
		})
	}
	u, _ := url.Parse(admin) // checked by checkPostgresURL
	u.Path, u.RawPath = "/"+name, ""
	return u.String(), name, nil
}

// execAdmin runs one statement on a connection of its own to admin.
func execAdmin(ctx context.Context, admin, sql string) error {
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return fmt.Errorf("connect: %w", err) // pgx names host, user and database, never the password
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}
