package app

import (
	"context"
	"fmt"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/ipguard"
	"github.com/gatehouse-auth/gatehouse/internal/metrics"
)

// ipRulesRefresh bounds how long a rule change that was not announced (the
// CLI without --redis, a lost pub/sub message) goes unseen by a replica.
const ipRulesRefresh = 10 * time.Second

// startIPGuard builds the client-address guard (allow and deny lists,
// credential-stuffing bans; package ipguard) as s.IPGuard, loads the rules
// and keeps them current until ctx (the server's run context) ends. The
// server does not start if the rules cannot be loaded: it must not serve
// without its deny list.
func (s *Server) startIPGuard(ctx context.Context, m *metrics.Metrics) error {
	never := func(n int) int {
		if n == 0 {
			return -1 // ipguard: negative = no bans of this kind
		}
		return n
	}
	s.IPGuard = ipguard.New(ipguard.Config{
		StuffingAccounts:         never(s.cfg.StuffingAccounts),
		StuffingAccountsPerBlock: never(s.cfg.StuffingAccountsPerBlock),
		StuffingWindow:           s.cfg.StuffingWindow,
		BanDuration:              s.cfg.IPBanDuration,
		Refresh:                  ipRulesRefresh,
	}, ipguard.Deps{DB: s.DB, Eph: s.eph, Log: s.log, Now: s.Sessions.Now, Decisions: m.Security})
	if err := s.IPGuard.Start(ctx); err != nil {
		return fmt.Errorf("app: ip rules: %w", err)
	}
	return nil
}
