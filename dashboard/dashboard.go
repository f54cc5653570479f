// Package dashboard is zasync's web dashboard: pages over the cluster-wide HTTP API (package
// httpapi) to watch and run an installation from a browser. The pages are plain HTML, CSS
// and JavaScript embedded in the binary: no CDN, no build step, no inline script (they are
// served with a strict Content-Security-Policy). They refresh themselves by short polling.
//
// New returns it as an http.Handler to mount under any prefix (with http.StripPrefix): the
// pages reach the API relative to where they are served, at api/v1/. The API's rules hold:
// actions need the token given with WithToken (the pages ask for it once and keep it for the
// browser tab), and with none are served to loopback clients only.
package dashboard

import (
	"embed"
	"io/fs"
	"log/slog"
	"net/http"

	"github.com/zasync/zasync/httpapi"
	"github.com/zasync/zasync/runtime"
)

//go:embed assets
var assets embed.FS

// Option changes what New serves.
type Option func(*options)

type options struct {
	token  string
	logger *slog.Logger
}

// WithToken makes the actions require token (see httpapi.WithToken).
func WithToken(token string) Option { return func(o *options) { o.token = token } }

// WithLogger sets where the handler logs what goes wrong. Default: nowhere.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// csp is the pages' Content-Security-Policy: their own scripts, styles and API only.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// New returns the dashboard over rt.
func New(rt *runtime.Runtime, opts ...Option) http.Handler {
	o := options{logger: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	static, _ := fs.Sub(assets, "assets") // the folder is embedded: cannot fail
	files := http.FileServerFS(static)
	mux := http.NewServeMux()
	mux.Handle("/api/", http.StripPrefix("/api", httpapi.New(rt, httpapi.WithToken(o.token), httpapi.WithLogger(o.logger))))
	mux.Handle("GET /assets/", http.StripPrefix("/assets", files))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/"
		files.ServeHTTP(w, r2)
	})
	return secured(mux)
}

// secured adds the pages' security headers to every answer.
func secured(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", csp)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}
