// Package ui owns the hosted pages and their static assets: the pages that
// e-mailed links land on — e-mail verification, password reset, magic-link
// sign-in, the reset request and "this wasn't me" from the notice of a
// sign-in by a new device (it signs that device out, then opens the reset
// page with a fresh reset token) — plus sign-in (password, passkey from the
// browser's dialog or the e-mail field's autofill, and the second step of a
// challenged sign-in: an app code, a security key or a recovery code) and
// the signed-in user's passkeys and security keys (add, rename, remove,
// with step-up by password or passkey when the API asks for a recent
// sign-in). Where the server requires a second factor (--require-mfa), a
// session that has not passed one is told so on sign-in and on the
// passkeys page, which confirms it with the new key (a step-up) as soon
// as one is added.
//
// The pages hold no secrets and no logic of their own: one script
// (assets/ui.js, picked by the body's data-page) talks to the JSON API on
// the same origin, and WebAuthn options and credentials pass through the
// browser's own JSON forms. A link page reads the link's secret from the
// URL fragment (which browsers never send to a server), drops it from the
// address bar, and posts it when the user confirms: a GET never spends
// anything. The passkey pages must be opened at the server's public URL,
// whose origin and host are the WebAuthn origin and relying party.
package ui

import (
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
)

//go:embed pages/*.html
var pageFS embed.FS

//go:embed assets
var assetFS embed.FS

// csp lets the pages run their own script and style and talk to their own
// origin, and nothing else.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Pages are the hosted pages' names: /ui/<name>.
var Pages = []string{"verify-email", "reset-password", "magic-link", "recovery", "sign-in", "passkeys", "not-me"}

// Handler serves the pages and assets.
type Handler struct {
	product string
	pages   map[string]*template.Template
	assets  http.Handler
}

// New parses the pages. product is the name shown on them.
func New(product string) (*Handler, error) {
	h := &Handler{product: product, pages: map[string]*template.Template{}}
	for _, name := range Pages {
		t, err := template.ParseFS(pageFS, "pages/layout.html", "pages/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("ui: page %s: %w", name, err)
		}
		h.pages[name] = t
	}
	sub, err := fs.Sub(assetFS, "assets")
	if err != nil {
		return nil, fmt.Errorf("ui: assets: %w", err)
	}
	h.assets = http.StripPrefix("/ui/assets/", http.FileServerFS(sub))
	return h, nil
}

// Register adds the routes to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	for _, name := range Pages {
		t := h.pages[name]
		mux.HandleFunc("GET /ui/"+name, func(w http.ResponseWriter, r *http.Request) {
			hdr := w.Header()
			hdr.Set("Content-Type", "text/html; charset=utf-8")
			hdr.Set("Content-Security-Policy", csp)
			hdr.Set("Cache-Control", "no-store")
			hdr.Set("Referrer-Policy", "no-referrer")
			_ = t.ExecuteTemplate(w, "layout", map[string]string{"Product": h.product, "Page": name})
		})
	}
	mux.HandleFunc("GET /ui/assets/{file}", func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		hdr.Set("Content-Security-Policy", csp)
		hdr.Set("Cache-Control", "public, max-age=300")
		h.assets.ServeHTTP(w, r)
	})
}
