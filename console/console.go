// Package console is Groundgate's admin console, served by the gateway
// itself under /groundgate/console/ to operators (the keys listed in the
// gateway's introspect): the features × teams matrix with live toggles,
// the policies and the explain playground, usage and cost, the audit log
// with each interaction's story, agent feedback, pools and deployments,
// budgets. Pages are rendered on the server from embedded templates, with
// a little embedded CSS and JavaScript: no CDN, works offline, usable
// with the keyboard alone.
//
// It also serves POST /groundgate/feedback, where the principal who got
// an answer rates it.
package console

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/groundgate/groundgate/analytics"
	"github.com/groundgate/groundgate/toggles"
	"github.com/groundgate/groundgate/wire"
)

// Paths the console serves.
const (
	Prefix       = "/groundgate/console/"
	FeedbackPath = "/groundgate/feedback"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// Owns reports whether the console serves the path.
func Owns(path string) bool {
	return path == FeedbackPath || path == strings.TrimSuffix(Prefix, "/") || strings.HasPrefix(path, Prefix)
}

// Console serves the pages. It is built per config and holds no state of
// its own: toggles live in their store, figures in the audit database.
type Console struct {
	gw      Gateway
	toggles *toggles.View
	db      func() (analytics.Backend, error) // nil: the audit sink has no analytics backend
	logger  *zap.Logger
	pages   map[string]*template.Template
	assets  http.Handler
	now     func() time.Time
}

// New builds the console. db returns the analytics backend (the audit
// sink's SQLite database or Dataverse table); none (the sink is JSONL,
// or Dataverse without its analytics columns) or an error leaves the
// usage, audit and feedback pages saying why.
func New(gw Gateway, tv *toggles.View, db func() (analytics.Backend, error), logger *zap.Logger) (*Console, error) {
	c := &Console{gw: gw, toggles: tv, db: db, logger: logger, pages: map[string]*template.Template{}, now: time.Now}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" || base == "partials" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials.html", n)
		if err != nil {
			return nil, err
		}
		c.pages[base] = t
	}
	sub, _ := fs.Sub(assetFS, "assets")
	c.assets = http.StripPrefix(Prefix+"assets/", http.FileServer(http.FS(sub)))
	return c, nil
}

// ServeHTTP serves the console's paths (see Owns).
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if r.URL.Path == FeedbackPath {
		c.serveFeedbackAPI(w, r)
		return
	}
	rest := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, strings.TrimSuffix(Prefix, "/")), "/")
	if strings.HasPrefix(rest, "assets/") {
		w.Header().Set("Cache-Control", "max-age=3600")
		c.assets.ServeHTTP(w, r)
		return
	}
	// Pages never go in shared caches, and never in frames.
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'")
	w.Header().Set("Referrer-Policy", "same-origin")
	switch rest {
	case "login":
		c.serveLogin(w, r)
		return
	case "logout":
		c.serveLogout(w, r)
		return
	}
	s, err := c.authenticate(r)
	if err != nil {
		var we *wire.Error
		if errors.As(err, &we) && we.Status == http.StatusForbidden {
			c.renderError(w, r, nil, http.StatusForbidden, we.Message)
			return
		}
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			http.Redirect(w, r, Prefix+"login?next="+template.URLQueryEscaper(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		c.renderError(w, r, nil, http.StatusUnauthorized, "Sign in first.")
		return
	}
	if r.Method == http.MethodPost && !s.validCSRF(r) {
		c.renderError(w, r, s, http.StatusForbidden, "The form is stale or came from another site; reload the page and try again.")
		return
	}
	c.route(w, r, s, rest)
}

func (c *Console) route(w http.ResponseWriter, r *http.Request, s *session, rest string) {
	head, tail, _ := strings.Cut(rest, "/")
	method := map[string]string{
		"": "GET", "features": "GET POST", "features/export": "GET", "policies": "GET POST", "usage": "GET",
		"audit": "GET", "feedback": "GET", "pools": "GET", "budgets": "GET",
	}
	key := head
	if head == "features" && tail == "export" {
		key = "features/export"
	} else if tail != "" && head != "audit" {
		c.renderError(w, r, s, http.StatusNotFound, "No such page.")
		return
	}
	allowed, ok := method[key]
	if head == "audit" && tail != "" {
		allowed, ok = "GET POST", true
	}
	if !ok {
		c.renderError(w, r, s, http.StatusNotFound, "No such page.")
		return
	}
	if m := r.Method; !strings.Contains(allowed, m) && !(m == http.MethodHead && strings.Contains(allowed, "GET")) {
		w.Header().Set("Allow", strings.ReplaceAll(allowed, " ", ", "))
		c.renderError(w, r, s, http.StatusMethodNotAllowed, "Method not allowed.")
		return
	}
	switch key {
	case "":
		http.Redirect(w, r, Prefix+"features", http.StatusSeeOther)
	case "features":
		c.serveFeatures(w, r, s)
	case "features/export":
		c.serveExport(w, r, s)
	case "policies":
		c.servePolicies(w, r, s)
	case "usage":
		c.serveUsage(w, r, s)
	case "audit":
		if tail == "" {
			c.serveAudit(w, r, s)
		} else {
			c.serveStory(w, r, s, tail)
		}
	case "feedback":
		c.serveFeedbackPage(w, r, s)
	case "pools":
		c.servePools(w, r, s)
	case "budgets":
		c.serveBudgets(w, r, s)
	}
}

// authenticate accepts a session cookie or, for scripts, an operator's
// key in the request's headers.
func (c *Console) authenticate(r *http.Request) (*session, error) {
	if s := c.sessionOf(r); s != nil {
		return s, nil
	}
	if r.Header.Get("Authorization") == "" && r.Header.Get("api-key") == "" {
		return nil, errors.New("no session")
	}
	p, err := c.gw.Authenticate(r)
	if err != nil {
		return nil, err
	}
	if _, ok := c.gw.SessionKey(p.Name); !ok {
		return nil, &wire.Error{Status: http.StatusForbidden, Type: wire.TypePermission, Code: "operator_only",
			Message: "Key " + p.Name + " may not use the admin console (see introspect)."}
	}
	return &session{name: p.Name}, nil
}

func (c *Console) serveLogin(w http.ResponseWriter, r *http.Request) {
	next := r.FormValue("next")
	if !strings.HasPrefix(next, Prefix) || strings.HasPrefix(next, Prefix+"login") {
		next = Prefix + "features"
	}
	data := map[string]any{"Next": next}
	if r.Method == http.MethodPost {
		key := strings.TrimSpace(r.PostFormValue("key"))
		probe, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, "/", nil)
		probe.Header.Set("Authorization", "Bearer "+key)
		p, err := c.gw.Authenticate(probe)
		var sk []byte
		ok := false
		if err == nil {
			sk, ok = c.gw.SessionKey(p.Name)
		}
		switch {
		case key == "":
			data["Error"] = "Enter an operator key."
		case err != nil:
			data["Error"] = "This key is not valid."
		case !ok:
			data["Error"] = "Key " + p.Name + " is not an operator key (see introspect in the gateway's configuration)."
		default:
			http.SetCookie(w, c.newSessionCookie(r, p.Name, sk))
			http.Redirect(w, r, next, http.StatusSeeOther)
			return
		}
		c.render(w, r, nil, http.StatusUnauthorized, "login", "Sign in", data)
		return
	} else if r.Method != http.MethodGet && r.Method != http.MethodHead {
		c.renderError(w, r, nil, http.StatusMethodNotAllowed, "Method not allowed.")
		return
	}
	c.render(w, r, nil, 0, "login", "Sign in", data)
}

func (c *Console) serveLogout(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		c.renderError(w, r, nil, http.StatusMethodNotAllowed, "Sign out with the button.")
		return
	}
	if s := c.sessionOf(r); s != nil && !s.validCSRF(r) {
		c.renderError(w, r, s, http.StatusForbidden, "The form is stale; reload the page and try again.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: Prefix, MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
}

// page is what every template gets.
type page struct {
	Title   string
	Nav     string
	User    string
	CSRF    string
	Flash   string
	Problem string
	Data    any
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, s *session, status int, name, title string, data any) {
	t, ok := c.pages[name]
	if !ok {
		http.Error(w, "missing template "+name, http.StatusInternalServerError)
		return
	}
	p := page{Title: title, Nav: name, Data: data, Flash: r.URL.Query().Get("done")}
	if s != nil {
		p.User, p.CSRF = s.name, s.csrf
	}
	if m, ok := data.(map[string]any); ok {
		if e, ok := m["Error"].(string); ok {
			p.Problem = e
		}
	}
	var b strings.Builder
	if err := t.Execute(&b, p); err != nil {
		c.logger.Error("console: rendering a page", zap.String("page", name), zap.Error(err))
		http.Error(w, "The page could not be rendered.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if status != 0 {
		w.WriteHeader(status)
	}
	_, _ = w.Write([]byte(b.String()))
}

func (c *Console) renderError(w http.ResponseWriter, r *http.Request, s *session, status int, msg string) {
	c.render(w, r, s, status, "error", http.StatusText(status), map[string]any{"Error": msg, "Status": status})
}

func (c *Console) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), 10*time.Second)
}
