package ipguard

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/audit"
	"github.com/gatehouse-auth/gatehouse/internal/httpx"
	"github.com/gatehouse-auth/gatehouse/internal/problem"
	"github.com/gatehouse-auth/gatehouse/internal/session"
	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// maxExpiresIn bounds expires_in (seconds): ten years.
const maxExpiresIn = 10 * 365 * 24 * 3600

// Register adds the administrators' rule API to mux, every route behind
// sessions.RequireAdmin:
//
//	GET    /v1/admin/ip-rules           the live rules
//	PUT    /v1/admin/ip-rules           create or replace the rule of a prefix
//	DELETE /v1/admin/ip-rules/{prefix}  delete it (198.51.100.0/24 as is in the path)
//
// Every change is audited (ip.rule_changed, with the administrator's user
// id), enforced by this replica before the answer and announced to the
// others.
func (g *Guard) Register(mux *http.ServeMux, adapt func(httpx.HandlerFunc) http.Handler, sessions *session.Manager) {
	mux.Handle("GET /v1/admin/ip-rules", adapt(sessions.RequireAdmin(g.listRules)))
	mux.Handle("PUT /v1/admin/ip-rules", adapt(sessions.RequireAdmin(g.putRule)))
	mux.Handle("DELETE /v1/admin/ip-rules/{prefix...}", adapt(sessions.RequireAdmin(g.deleteRule)))
}

// RuleJSON is a rule on the wire.
type RuleJSON struct {
	Prefix    string     `json:"prefix"`
	Action    string     `json:"action"`
	Reason    string     `json:"reason"`
	CreatedBy string     `json:"created_by"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

func ruleJSON(r *store.IPRule) RuleJSON {
	j := RuleJSON{Prefix: r.Prefix.String(), Action: r.Action, Reason: r.Reason, CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt.UTC()}
	if !r.ExpiresAt.IsZero() {
		t := r.ExpiresAt.UTC()
		j.ExpiresAt = &t
	}
	return j
}

func (g *Guard) listRules(w http.ResponseWriter, r *http.Request, _ *session.Principal) error {
	rules, err := g.db.IPRules().ListIPRules(r.Context(), g.now())
	if err != nil {
		return fmt.Errorf("ipguard: list rules: %w", err)
	}
	out := struct {
		Rules []RuleJSON `json:"rules"`
	}{Rules: []RuleJSON{}}
	for _, rule := range rules {
		out.Rules = append(out.Rules, ruleJSON(rule))
	}
	return httpx.WriteJSON(w, http.StatusOK, out)
}

func invalid(field, format string, args ...any) error {
	return problem.InvalidField.WithDetail(format, args...).With("field", field)
}

func (g *Guard) putRule(w http.ResponseWriter, r *http.Request, p *session.Principal) error {
	var req struct {
		Prefix    string `json:"prefix"`
		Action    string `json:"action"`
		Reason    string `json:"reason"`
		ExpiresIn *int64 `json:"expires_in"`
	}
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	switch {
	case req.Prefix == "":
		return problem.MissingField.WithDetail("Field \"prefix\" is required.").With("field", "prefix")
	case req.Action == "":
		return problem.MissingField.WithDetail("Field \"action\" is required.").With("field", "action")
	}
	if err := httpx.CheckString("prefix", req.Prefix, 64); err != nil {
		return err
	}
	prefix, err := ParsePrefix(req.Prefix)
	if err != nil {
		return invalid("prefix", "Field \"prefix\" must be an IP address or a CIDR prefix.")
	}
	if err := CheckPrefix(prefix); err != nil {
		return invalid("prefix", "Field \"prefix\" must be at most as broad as /%d for IPv4 and /%d for IPv6.", MinBitsIPv4, MinBitsIPv6)
	}
	if req.Action != store.IPAllow && req.Action != store.IPDeny {
		return invalid("action", "Field \"action\" must be %q or %q.", store.IPAllow, store.IPDeny)
	}
	if err := httpx.CheckString("reason", req.Reason, MaxReason); err != nil {
		return err
	}
	now := g.now()
	rule := &store.IPRule{Prefix: prefix, Action: req.Action, Reason: req.Reason, CreatedBy: "admin:" + p.User.ID, CreatedAt: now}
	if req.ExpiresIn != nil {
		if *req.ExpiresIn < 1 || *req.ExpiresIn > maxExpiresIn {
			return invalid("expires_in", "Field \"expires_in\" must be a number of seconds from 1 to %d.", maxExpiresIn)
		}
		rule.ExpiresAt = now.Add(time.Duration(*req.ExpiresIn) * time.Second)
	}
	if err := Put(r.Context(), g.db, rule, audit.New(r, now, audit.IPRuleChanged, p.User.ID, p.Session.ID)); err != nil {
		return fmt.Errorf("ipguard: put rule: %w", err)
	}
	g.changed(r, rule.Prefix, "put", rule.Action)
	return httpx.WriteJSON(w, http.StatusOK, ruleJSON(rule))
}

func (g *Guard) deleteRule(w http.ResponseWriter, r *http.Request, p *session.Principal) error {
	prefix, err := ParsePrefix(r.PathValue("prefix"))
	if err != nil {
		return invalid("prefix", "The path must end with an IP address or a CIDR prefix.")
	}
	err = Delete(r.Context(), g.db, prefix, audit.New(r, g.now(), audit.IPRuleChanged, p.User.ID, p.Session.ID))
	if errors.Is(err, store.ErrNotFound) {
		return problem.NotFound.WithDetail("No rule has the prefix %s.", prefix)
	}
	if err != nil {
		return fmt.Errorf("ipguard: delete rule: %w", err)
	}
	if err := Forget(r.Context(), g.eph, prefix); err != nil {
		g.log.WarnContext(r.Context(), "ipguard: ban marker not cleared", slog.Any("error", err))
	}
	g.changed(r, prefix, "delete", "")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// changed makes an operator's change effective here before the answer,
// and announces it to the other replicas.
func (g *Guard) changed(r *http.Request, prefix fmt.Stringer, op, action string) {
	ctx := r.Context()
	if err := g.Reload(ctx); err != nil {
		g.log.WarnContext(ctx, "ipguard: reload after a change failed; retrying in the background", slog.Any("error", err))
		g.requestReload()
	}
	if err := Announce(ctx, g.eph); err != nil {
		g.log.WarnContext(ctx, "ipguard: rule change not announced; other replicas reload within their refresh interval", slog.Any("error", err))
	}
	g.log.InfoContext(ctx, "ipguard: rule changed", slog.String("prefix", prefix.String()), slog.String("op", op), slog.String("action", action))
}
