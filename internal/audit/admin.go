package audit

import (
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/httpx"
	"github.com/gatehouse-auth/gatehouse/internal/problem"
	"github.com/gatehouse-auth/gatehouse/internal/store"
)

// The administration API of the audit log. The handlers assume an
// administrator: the caller guards them (session.Manager.RequireAdmin).

// NDJSON is the media type of the streamed export.
const NDJSON = "application/x-ndjson"

// adminParams are the query parameters the admin endpoints accept; any
// other is refused, so that a misspelt filter cannot silently widen an
// export to the whole log.
var adminParams = map[string]bool{"user": true, "type": true, "ip": true, "since": true, "until": true, "after": true, "limit": true}

// AdminListHandler serves GET /v1/admin/audit: the events matching
// ?user=&type=&ip=&since=&until= with id > ?after=, oldest first, ?limit=
// (1..1000, default 100) per page, as {"events": [...], "next_after": id}
// (next_after only when there may be more). With "Accept:
// application/x-ndjson" it streams every match instead, like
// AdminExportHandler.
func AdminListHandler(a store.Audit, log *slog.Logger) httpx.HandlerFunc {
	export := AdminExportHandler(a, log)
	return func(w http.ResponseWriter, r *http.Request) error {
		if acceptsNDJSON(r) {
			return export(w, r)
		}
		f, err := adminFilter(r)
		if err != nil {
			return err
		}
		limit := f.Limit
		f.Limit = limit + 1
		events, err := a.QueryEvents(r.Context(), f)
		if err != nil {
			return fmt.Errorf("audit: admin list: %w", err)
		}
		resp := struct {
			Events    []EventJSON `json:"events"`
			NextAfter *int64      `json:"next_after,omitempty"`
		}{Events: []EventJSON{}}
		for i, e := range events {
			if i == limit {
				next := events[i-1].ID
				resp.NextAfter = &next
				break
			}
			resp.Events = append(resp.Events, ToJSON(e))
		}
		return httpx.WriteJSON(w, http.StatusOK, resp)
	}
}

// exportWriteWindow is how long the client gets to take each page of a
// streamed export (the server's write timeout would cut a long one).
const exportWriteWindow = 30 * time.Second

// AdminExportHandler serves GET /v1/admin/audit/export: every event
// matching the filters of AdminListHandler (limit does not apply), as
// JSON lines, oldest first, read from the store a page at a time so that
// memory stays bounded. An error after the first line aborts the
// response, so a cut stream never looks complete.
func AdminExportHandler(a store.Audit, log *slog.Logger) httpx.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		f, err := adminFilter(r)
		if err != nil {
			return err
		}
		rc := http.NewResponseController(w)
		_ = rc.SetWriteDeadline(time.Now().Add(exportWriteWindow))
		h := w.Header()
		h.Set("Content-Type", NDJSON)
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		err = Export(r.Context(), a, f, w, func() error {
			if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
				return err
			}
			_ = rc.SetWriteDeadline(time.Now().Add(exportWriteWindow))
			return nil
		})
		if err != nil {
			if r.Context().Err() == nil {
				log.ErrorContext(r.Context(), "audit export failed", slog.Any("error", err))
			}
			panic(http.ErrAbortHandler)
		}
		return nil
	}
}

// acceptsNDJSON reports whether the Accept header names NDJSON.
func acceptsNDJSON(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for _, part := range strings.Split(v, ",") {
			if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == NDJSON {
				return true
			}
		}
	}
	return false
}

// adminFilter reads and checks the query parameters.
func adminFilter(r *http.Request) (store.EventFilter, error) {
	q := r.URL.Query()
	for name, vs := range q {
		if !adminParams[name] {
			return store.EventFilter{}, problem.BadRequest.WithDetail("Unknown query parameter %q.", name).With("field", name)
		}
		if len(vs) > 1 {
			return store.EventFilter{}, problem.BadRequest.WithDetail("Query parameter %q is repeated.", name).With("field", name)
		}
	}
	f, err := ParseFilter(q.Get("user"), q.Get("type"), q.Get("ip"), q.Get("since"), q.Get("until"))
	var ff *FilterField
	if errors.As(err, &ff) {
		return f, problem.BadRequest.WithDetail("Query parameter %q %s.", ff.Field, ff.Reason).With("field", ff.Field)
	}
	if err != nil {
		return f, err
	}
	limit, err := intParam(q.Get("limit"), 100, 1, 1000, "limit")
	if err != nil {
		return f, err
	}
	after, err := intParam(q.Get("after"), 0, 0, 1<<62, "after")
	if err != nil {
		return f, err
	}
	f.Limit, f.After = limit, int64(after)
	return f, nil
}
