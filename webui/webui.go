// Package webui is the node's web user interface: plain HTML, JavaScript
// modules and CSS embedded in the binary (no build step, nothing fetched at
// run time), served by the node on its local API address under /ui/, and
// the login that gives a browser a session: a one-time code in a link
// (`canopy ui`) or the API token typed into the login page, each exchanged
// for an HttpOnly, SameSite=Strict cookie holding a session ID.
//
// The package serves pages and logins only. Which requests need a session
// is decided by the node's API guard, which asks Public; the pages talk to
// the node through the same /v1/ API as the command line.
package webui

import (
	"embed"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"strings"

	"github.com/canopy-p2p/canopy/api"
)

//go:embed assets
var embedded embed.FS

// Assets returns the embedded files, as served under /ui/assets/.
func Assets() fs.FS {
	sub, err := fs.Sub(embedded, "assets")
	if err != nil {
		panic(err) // the directory is embedded above: it exists
	}
	return sub
}

// The paths of the UI.
const (
	// Root is the UI's start page; the pages are its #fragments.
	Root = "/ui/"
	// LoginPath is the login page (GET, with ?code= to redeem a one-time
	// code) and the token login (POST, JSON LoginRequest).
	LoginPath = "/ui/login"
	// LogoutPath ends the session (POST).
	LogoutPath = "/ui/logout"
	// AssetsPath is where the embedded files are served.
	AssetsPath = "/ui/assets/"
)

// publicAssets are the files the login page needs before there is a
// session. They hold no user data: the login page's script and the style
// sheet.
var publicAssets = map[string]bool{AssetsPath + "login.js": true, AssetsPath + "style.css": true}

// Public says whether r may be served without a token or session: the login
// page, its two files, and the token login itself. Everything else the UI
// serves (the app, its scripts, every /v1/ call it makes) needs the session.
func Public(r *http.Request) bool {
	p := r.URL.Path
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return p == LoginPath || publicAssets[p]
	case http.MethodPost:
		return p == LoginPath
	}
	return false
}

// IsPage says whether r is a browser asking for a UI page (not an API
// call): a request the guard answers, when it lacks a session, with a
// redirect to the login page instead of a JSON 401.
func IsPage(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	p := r.URL.Path
	return p == "/" || p == "/ui" || strings.HasPrefix(p, "/ui/") && !strings.HasPrefix(p, AssetsPath)
}

// LoginRequest is the body of POST /ui/login.
type LoginRequest struct {
	Token string `json:"token"`
}

// maxLoginBody bounds POST /ui/login's body: a token and its JSON.
const maxLoginBody = 1 << 10

// Config is what the handler needs from the node.
type Config struct {
	Sessions *Sessions
	// CookieName is the session cookie's name. The node includes its API
	// port in it: browsers keep cookies by host, not by port, and two nodes
	// on one machine must not overwrite each other's session.
	CookieName string
	// CheckToken says whether a token typed into the login page is the
	// node's (in constant time).
	CheckToken func(string) bool
}

// Register adds the UI's routes to mux.
func Register(mux *http.ServeMux, cfg Config) {
	h := &handler{cfg: cfg, files: http.StripPrefix(AssetsPath, http.FileServerFS(Assets()))}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, Root, http.StatusSeeOther)
	})
	mux.HandleFunc("GET /ui", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, Root, http.StatusSeeOther)
	})
	mux.HandleFunc("GET "+Root+"{$}", h.app)
	mux.HandleFunc("GET "+AssetsPath, h.asset)
	mux.HandleFunc("GET "+LoginPath, h.loginPage)
	mux.HandleFunc("POST "+LoginPath, h.login)
	mux.HandleFunc("POST "+LogoutPath, h.logout)
}

type handler struct {
	cfg   Config
	files http.Handler
}

// pageHeaders are set on every UI answer: the pages run only their own
// scripts and styles (no inline code, so an injected string cannot run),
// are never framed (clickjacking), and send no Referer to anyone.
func pageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
}

func (h *handler) serveFile(w http.ResponseWriter, name string) {
	b, err := fs.ReadFile(Assets(), name)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	pageHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(b)
}

func (h *handler) app(w http.ResponseWriter, r *http.Request) { h.serveFile(w, "index.html") }

func (h *handler) asset(w http.ResponseWriter, r *http.Request) {
	pageHeaders(w)
	h.files.ServeHTTP(w, r)
}

// loginPage shows the login form or, with ?code=, redeems a one-time code:
// a good code becomes the session cookie; either way the answer is a
// redirect, so that the code leaves the address bar and the history.
func (h *handler) loginPage(w http.ResponseWriter, r *http.Request) {
	code, has := r.URL.Query()["code"]
	if !has {
		h.serveFile(w, "login.html")
		return
	}
	if len(code) == 1 {
		session, ok, err := h.cfg.Sessions.Redeem(code[0])
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if ok {
			h.setCookie(w, session)
			http.Redirect(w, r, Root, http.StatusSeeOther)
			return
		}
	}
	http.Redirect(w, r, LoginPath+"?expired=1", http.StatusSeeOther)
}

// login checks a token typed into the login page and starts a session.
func (h *handler) login(w http.ResponseWriter, r *http.Request) {
	var req LoginRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, maxLoginBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "bad login request: "+err.Error())
		return
	}
	if !h.cfg.CheckToken(strings.TrimSpace(req.Token)) {
		writeError(w, http.StatusUnauthorized, "wrong token: it is in api.token in the node's data directory (or run canopy ui)")
		return
	}
	session, err := h.cfg.Sessions.NewSession()
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	h.setCookie(w, session)
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, "{}\n")
}

func (h *handler) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(h.cfg.CookieName); err == nil {
		h.cfg.Sessions.End(c.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: h.cfg.CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, "{}\n")
}

// setCookie hands the browser its session: HttpOnly (no script, even an
// injected one, can read it), SameSite=Strict (no other site's page makes
// the browser send it), for the whole origin, and a browser-session cookie
// (no Max-Age): closing the browser logs out; the server ends it after
// SessionIdle without use. Not Secure: the API is plain HTTP on loopback.
func (h *handler) setCookie(w http.ResponseWriter, session string) {
	http.SetCookie(w, &http.Cookie{Name: h.cfg.CookieName, Value: session, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(api.Error{Error: msg})
}
