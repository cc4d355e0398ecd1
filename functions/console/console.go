// Package console is aigw's web console (the console function): pages for
// jobs, a job, pools, algorithms and the operator's admin tasks, served as
// plain HTML, JavaScript and CSS embedded in the binary.
//
// The browser never holds a credential it could leak to a script: signing in
// (an API client's id and secret, or the admin token) trades the credential
// with the auth function for a short-lived access token, which the console
// puts in an HttpOnly, SameSite=Strict cookie that lives as long as the token
// and is scoped to the console's path. The pages call the public API through
// the console's /api/{function}/ proxy, which turns that cookie into
// `Authorization: Bearer` and forwards the call unchanged, so every action
// is one a user could make with curl; the console adds no API of its own and
// keeps nothing in memory.
//
// CSRF: the cookie is SameSite=Strict, and every state-changing request (sign
// in, sign out, each proxied POST, PUT, PATCH or DELETE) must carry the header
// X-Aigw-Console, which a cross-site form cannot send and a cross-site script
// cannot send without a CORS preflight that the console never answers; a
// request the browser marks as cross-site (Sec-Fetch-Site) is refused too.
package console

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/aigw/aigw/internal/fnserve"
	"github.com/aigw/aigw/internal/web"
)

//go:embed assets
var assets embed.FS

// CookieName is the session cookie: the access token itself.
const CookieName = "aigw_console"

// HeaderCSRF must be sent (any value) with every state-changing request.
const HeaderCSRF = "X-Aigw-Console"

// headerForwardedPrefix is the path the gateway serves the function under.
const headerForwardedPrefix = "X-Forwarded-Prefix"

// upstreams are the functions the console proxies to, and the paths of each
// that the pages use; anything else is a 404 at the console.
var upstreams = map[string][]string{
	"router":       {"/v1/"},
	"auth":         {"/admin/clients"},
	"orchestrator": {"/admin/tenants/", "/v1/pipelines"},
	"executors":    {"/admin/executors"},
}

// Deps are what the console is built on.
type Deps struct {
	Config Config
	Log    *slog.Logger
	// Client calls the auth function at sign-in (default: 10 s timeout).
	Client *http.Client
	// Transport carries proxied API calls (default http.DefaultTransport).
	Transport http.RoundTripper
	// Now is the clock (default time.Now).
	Now func() time.Time
}

type console struct {
	Deps
	upstream *url.URL
	index    *template.Template
	static   http.Handler
	proxy    *httputil.ReverseProxy
}

// New returns the console function's HTTP handler.
func New(d Deps) (http.Handler, error) {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Client == nil {
		d.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if d.Transport == nil {
		d.Transport = http.DefaultTransport
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Config.Upstream == "" {
		d.Config.Upstream = DefaultUpstream
	}
	u, err := url.Parse(d.Config.Upstream)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("console: Config.Upstream must be an http(s) URL")
	}
	idx, err := template.ParseFS(assets, "assets/index.html")
	if err != nil {
		return nil, err
	}
	static, err := fs.Sub(assets, "assets")
	if err != nil {
		return nil, err
	}
	c := &console{Deps: d, upstream: u, index: idx, static: http.FileServerFS(static)}
	c.proxy = &httputil.ReverseProxy{
		Rewrite:        c.rewrite,
		Transport:      d.Transport,
		FlushInterval:  -1, // event streams reach the page as they come
		ModifyResponse: c.modifyResponse,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			d.Log.WarnContext(r.Context(), "api call failed", "path", r.URL.Path, "err", err)
			web.WriteError(w, r, nil, web.Errorf(http.StatusBadGateway, "bad_gateway", "the API did not answer; try again"))
		},
	}

	r := chi.NewRouter()
	r.Use(securityHeaders)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		web.WriteError(w, r, d.Log, web.NotFound("no route %s %s", r.Method, r.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		web.WriteError(w, r, d.Log, web.MethodNotAllowed(r))
	})
	r.Get("/_/health", fnserve.Health(nil))
	r.Get("/", c.serveIndex)
	r.Get("/index.html", c.serveIndex)
	r.Get("/app.js", c.serveStatic)
	r.Get("/app.css", c.serveStatic)
	r.Get("/favicon.svg", c.serveStatic)
	r.With(sameSite).Post("/session", web.Handle(d.Log, c.signIn).ServeHTTP)
	r.Get("/session", web.Handle(d.Log, c.whoAmI).ServeHTTP)
	r.With(sameSite).Delete("/session", c.signOut)
	r.With(sameSite).HandleFunc("/api/{fn}/*", c.serveAPI)
	return r, nil
}

// securityHeaders: the pages load only their own scripts and styles, talk
// only to their own origin, and are never framed.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
			"connect-src 'self'; form-action 'self'; base-uri 'self'; frame-ancestors 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

// sameSite refuses state-changing requests without HeaderCSRF, and any
// request the browser says comes from another site.
func sameSite(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
			web.WriteError(w, r, nil, web.Forbidden("cross-site requests are refused"))
			return
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
		default:
			if r.Header.Get(HeaderCSRF) == "" {
				web.WriteError(w, r, nil, web.Forbidden("send the header %s with every change (the console's pages do)", HeaderCSRF))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// prefix is the path the browser reaches the console under, without a
// trailing slash ("" at the root).
func (c *console) prefix(r *http.Request) string {
	if c.Config.PublicPath != "" {
		return c.Config.PublicPath
	}
	if p := strings.TrimSuffix(r.Header.Get(headerForwardedPrefix), "/"); p != "" && validPath(p) {
		return p
	}
	return ""
}

func (c *console) serveIndex(w http.ResponseWriter, r *http.Request) {
	var buf bytes.Buffer
	if err := c.index.Execute(&buf, struct{ Base string }{c.prefix(r) + "/"}); err != nil {
		web.WriteError(w, r, c.Log, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(buf.Bytes())
}

func (c *console) serveStatic(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-cache")
	c.static.ServeHTTP(w, r)
}

// serveAPI proxies /api/{fn}/{path} to the function with the session's token.
func (c *console) serveAPI(w http.ResponseWriter, r *http.Request) {
	fn := chi.URLParam(r, "fn")
	rest := "/" + chi.URLParam(r, "*")
	allowed := false
	for _, p := range upstreams[fn] {
		allowed = allowed || strings.HasPrefix(rest, p) || rest == strings.TrimSuffix(p, "/")
	}
	if !allowed || path.Clean(rest) != rest {
		web.WriteError(w, r, c.Log, web.NotFound("the console does not proxy %s %s", fn, rest))
		return
	}
	if _, ok := c.token(r); !ok {
		c.clearCookie(w, r)
		web.WriteError(w, r, nil, web.Errorf(http.StatusUnauthorized, "session_expired", "your session has ended; sign in again"))
		return
	}
	c.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), prefixKey{}, c.prefix(r))))
}

// prefixKey holds, in a proxied request's context, the console's prefix (for
// the cookie of modifyResponse).
type prefixKey struct{}

// rewrite points a proxied call at its function, with the session's token
// instead of the browser's cookies.
func (c *console) rewrite(pr *httputil.ProxyRequest) {
	fn := chi.URLParamFromCtx(pr.In.Context(), "fn")
	rest := "/" + chi.URLParamFromCtx(pr.In.Context(), "*")
	u := *c.upstream
	u.Path = strings.TrimSuffix(u.Path, "/") + "/function/" + fn + rest
	u.RawPath = ""
	u.RawQuery = pr.In.URL.RawQuery
	pr.Out.URL = &u
	pr.Out.Host = ""
	pr.Out.Header.Del("Cookie")
	pr.Out.Header.Del(HeaderCSRF)
	pr.Out.Header.Del("Origin")
	pr.Out.Header.Del("Referer")
	pr.Out.Header.Del(headerForwardedPrefix) // the API's Location headers are its own
	tok, _ := c.token(pr.In)
	pr.Out.Header.Set("Authorization", "Bearer "+tok)
}

// modifyResponse keeps the API's cookies away from the browser and ends the
// session when the API refuses its token.
func (c *console) modifyResponse(resp *http.Response) error {
	resp.Header.Del("Set-Cookie")
	if resp.Header.Get("Cache-Control") == "" {
		resp.Header.Set("Cache-Control", "no-store")
	}
	if resp.StatusCode == http.StatusUnauthorized {
		p, _ := resp.Request.Context().Value(prefixKey{}).(string)
		resp.Header.Add("Set-Cookie", cookie(p, secure(resp.Request), "", -1).String())
	}
	return nil
}
