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

// Check validates the delivery fields of a request.
func (d Delivery) Check() error {
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

// Start is a session about to be created by a sign-in or sign-up: built
// before the transaction, stored inside it (Create), handed out after
// commit (Respond).
type Start struct {
	session *store.Session
	d       Delivery
	create  func(ctx context.Context, tx store.Tx) error
	respond func(w http.ResponseWriter, status int, u *store.User) error
	// quiet: not a sign-in from a device (a sign-up, a session replaced
	// after a password change), so no new-device notice.
	quiet bool
}

// Begin prepares the session of a sign-in by userID with the methods amr,
// delivered as d asks.
func (h *Handler) Begin(r *http.Request, userID string, amr []string, d Delivery) *Start {
	st := &Start{d: d}
	if d.token() {
		client := d.Client
		if client == "" {
			client = token.ClientBrowser
		}
		g := h.Tokens.Begin(r, userID, amr, client)
		st.session, st.create = g.Session, g.Create
		st.respond = func(w http.ResponseWriter, status int, u *store.User) error {
			extra := map[string]any{"user": ViewOf(u), "session": h.Sessions.ViewOf(g.Session, u, true)}
			if tok := h.signedIn(w, r, u, st); client == token.ClientNative {
				extra["device_token"] = tok
			}
			return h.Tokens.Respond(w, status, g, extra)
		}
		return st
	}
	s, secret := h.Sessions.New(r, userID, amr)
	st.session = s
	st.create = func(ctx context.Context, tx store.Tx) error {
		return tx.Sessions().CreateSession(ctx, s)
	}
	st.respond = func(w http.ResponseWriter, status int, u *store.User) error {
		h.signedIn(w, r, u, st)
		h.Sessions.SetCookie(w, secret, s.ExpiresAt)
		return httpx.WriteJSON(w, status, signedIn{ViewOf(u), h.Sessions.ViewOf(s, u, true)})
	}
	return st
}

// Quiet marks the session as no sign-in from a device (a sign-up, a
// replacement): no new-device notice.
func (st *Start) Quiet() *Start {
	st.quiet = true
	return st
}

// SessionID is the id of the session to be created.
func (st *Start) SessionID() string { return st.session.ID }

// Create stores the session inside tx.
func (st *Start) Create(ctx context.Context, tx store.Tx) error { return st.create(ctx, tx) }

// Respond hands the committed session to the client.
func (st *Start) Respond(w http.ResponseWriter, status int, u *store.User) error {
	return st.respond(w, status, u)
}

// Event records the delivery mode on the sign-in's audit event.
func (st *Start) Event(e *store.Event) *store.Event {
	if st.d.token() {
		audit.With(e, "mode", "token")
	}
	return e
}
