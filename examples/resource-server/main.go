// Command resource-server is a minimal API protected by Gatehouse access
// tokens. GET /hello answers with the caller's subject and session.
//
// Configuration comes from flags, defaulting to environment variables:
//
//	-issuer         GATEHOUSE_ISSUER         e.g. https://auth.example.com
//	-audience       GATEHOUSE_AUDIENCE       this API's audience
//	-client-id      GATEHOUSE_CLIENT_ID      resource-server id (revocation feed)
//	-client-secret  GATEHOUSE_CLIENT_SECRET  prefer the variable: command lines are visible to other users
//	-addr           ADDR                     listen address, default localhost:8081
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gatehouse-auth/gatehouse/sdk/go/gatehouse"
)

func main() {
	addr := flag.String("addr", envOr("ADDR", "localhost:8081"), "listen address")
	issuer := flag.String("issuer", os.Getenv("GATEHOUSE_ISSUER"), "Gatehouse issuer URL")
	audience := flag.String("audience", os.Getenv("GATEHOUSE_AUDIENCE"), "audience of this API")
	clientID := flag.String("client-id", os.Getenv("GATEHOUSE_CLIENT_ID"), "resource-server client id")
	// Not defaulted from the environment, so that -h never prints it.
	clientSecret := flag.String("client-secret", "", "resource-server client secret (default $GATEHOUSE_CLIENT_SECRET, which is preferable)")
	flag.Parse()
	if *clientSecret == "" {
		*clientSecret = os.Getenv("GATEHOUSE_CLIENT_SECRET")
	}

	if err := run(*addr, gatehouse.Config{
		Issuer:       *issuer,
		Audience:     *audience,
		ClientID:     *clientID,
		ClientSecret: *clientSecret,
	}); err != nil {
		slog.Error("resource-server", "error", err)
		os.Exit(1)
	}
}

func run(addr string, cfg gatehouse.Config) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// New starts following the revocation feed; until its first snapshot
	// arrives, requests are answered 503 (fail closed).
	gh, err := gatehouse.New(ctx, cfg)
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.Handle("GET /hello", gh.Middleware(http.HandlerFunc(hello)))
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}

	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(shutdownCtx)
	}()
	slog.Info("listening", "addr", addr, "issuer", cfg.Issuer, "audience", cfg.Audience)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func hello(w http.ResponseWriter, r *http.Request) {
	claims, ok := gatehouse.ClaimsFromContext(r.Context())
	if !ok { // unreachable behind the middleware
		http.Error(w, "unauthenticated", http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{
		"subject": claims.Subject,
		"session": claims.SessionID,
	})
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
