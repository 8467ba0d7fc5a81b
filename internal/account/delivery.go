package account

import (
	"context"
	"net/http"

	"github.com/gatehouse-auth/gatehouse/internal/audit"
	"github.com/gatehouse-auth/gatehouse/internal/httpx"
	"github.com/gatehouse-auth/gatehouse/internal/problem"
	"github.com/gatehouse-auth/gatehouse/internal/store"
	"github.com/gatehouse-auth/gatehouse/internal/token"
)

// Delivery is how a sign-in hands the new session to the client: "mode"
// cookie (the default) or token; in token mode "client" browser (refresh
// token in an HttpOnly cookie, the default) or native (in the body).
type Delivery struct {
	Mode   string `json:"mode"`
	Client string `json:"client"`
}

func (d Delivery) check() error {
	switch d.Mode {
	case "", "cookie":
		if d.Client != "" {
			return problem.InvalidField.WithDetail("Field \"client\" applies to token mode only.").With("field", "client")
		}
	case "token":
		switch d.Client {
		case "", token.ClientBrowser, token.ClientNative:
		default:
			return problem.InvalidField.WithDetail("Field \"client\" must be \"browser\" or \"native\".").With("field", "client")
		}
	default:
		return problem.InvalidField.WithDetail("Field \"mode\" must be \"cookie\" or \"token\".").With("field", "mode")
	}
	return nil
}

func (d Delivery) token() bool { return d.Mode == "token" }

// start is a session about to be created by a sign-in or sign-up: built
// before the transaction, stored inside it, handed out after commit.
type start struct {
	session *store.Session
	d       Delivery
	create  func(ctx context.Context, tx store.Tx) error
	respond func(w http.ResponseWriter, status int, u *store.User) error
}

func (h *Handler) begin(r *http.Request, userID string, amr []string, d Delivery) *start {
	if d.token() {
		client := d.Client
		if client == "" {
			client = token.ClientBrowser
		}
		g := h.Tokens.Begin(r, userID, amr, client)
		return &start{
			session: g.Session,
			d:       d,
			create:  g.Create,
			respond: func(w http.ResponseWriter, status int, u *store.User) error {
				return h.Tokens.Respond(w, status, g, map[string]any{"user": viewOf(u), "session": h.Sessions.ViewOf(g.Session, true)})
			},
		}
	}
	s, secret := h.Sessions.New(r, userID, amr)
	return &start{
		session: s,
		d:       d,
		create: func(ctx context.Context, tx store.Tx) error {
			return tx.Sessions().CreateSession(ctx, s)
		},
		respond: func(w http.ResponseWriter, status int, u *store.User) error {
			h.Sessions.SetCookie(w, secret, s.ExpiresAt)
			return httpx.WriteJSON(w, status, signedIn{viewOf(u), h.Sessions.ViewOf(s, true)})
		},
	}
}

// event records the delivery mode on the sign-in's audit event.
func (st *start) event(e *store.Event) *store.Event {
	if st.d.token() {
		audit.With(e, "mode", "token")
	}
	return e
}
