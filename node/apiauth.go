package node

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/internal/atomicfile"
	"github.com/canopy-p2p/canopy/internal/loglimit"
	"github.com/canopy-p2p/canopy/webui"
)

// The local API trusts no one by default. It listens on loopback, but
// loopback is not a boundary: every web page the user visits can send
// requests to 127.0.0.1 (a form post needs no CORS permission), and a page
// on an attacker's name that later resolves to 127.0.0.1 (DNS rebinding)
// can even read the answers. So every request must pass, in this order:
//
//  1. Host: a loopback name or address. A rebound page's requests carry
//     the attacker's name in Host, and stop here.
//  2. Sec-Fetch-Site: absent, "same-origin" or "none". Browsers send it on
//     every request; "cross-site" and "same-site" are other pages (a page
//     on another port of localhost is "same-site").
//  3. Origin: absent, or the API's own origin (http, a loopback host, the
//     API's port). Browsers send it on every POST and cross-origin fetch.
//  4. The token: Authorization: Bearer, or a web UI session: the cookie
//     sessionCookie holding a live session ID (package webui), from a
//     request that proves it comes from the API's own origin (see
//     cookieFromOwnOrigin). The login page and the login itself
//     (webui.Public) need neither; a browser asking for a UI page without
//     them is sent to the login page.
//  5. Content-Type: application/json on anything but GET and HEAD: the
//     content types a page may send without a CORS preflight (text/plain,
//     forms) are refused even with a token.
//  6. A body of at most Config.APIMaxBody bytes.
//
// Each refusal is counted by reason (Node.APIRefusals) and logged, at most
// once per refusalLogInterval per reason.

// refusal is why the API refused a request.
type refusal int

const (
	refusedHost refusal = iota
	refusedCrossSite
	refusedOrigin
	refusedNoToken
	refusedWrongToken
	refusedContentType
	refusedTooLarge
	refusedOut
	numRefusals
)

var refusalNames = [numRefusals]string{"host", "cross-site", "origin", "no token", "wrong token", "content type", "too large", "out"}

// APIRefusals counts the local API's refusals by reason, since the node
// started.
type APIRefusals struct {
	// Host: a Host header that is not a loopback name or address (DNS
	// rebinding).
	Host uint64 `json:"host"`
	// CrossSite: Sec-Fetch-Site other than same-origin or none.
	CrossSite uint64 `json:"cross_site"`
	// Origin: an Origin that is not the API's own, or a token cookie from
	// a request that does not prove it comes from the API's own origin.
	Origin uint64 `json:"origin"`
	// NoToken and WrongToken: 401s.
	NoToken    uint64 `json:"no_token"`
	WrongToken uint64 `json:"wrong_token"`
	// ContentType: a body that is not application/json (415).
	ContentType uint64 `json:"content_type"`
	// TooLarge: a body over Config.APIMaxBody (413).
	TooLarge uint64 `json:"too_large"`
	// Out: a download directory that the node will not create (it is
	// missing and outside the downloads directory), or that is not an
	// absolute directory.
	Out uint64 `json:"out"`
}

// apiRefusalCounters are the live counters behind APIRefusals.
type apiRefusalCounters [numRefusals]atomic.Uint64

// Snapshot returns the counts.
func (c *apiRefusalCounters) Snapshot() APIRefusals {
	return APIRefusals{
		Host: c[refusedHost].Load(), CrossSite: c[refusedCrossSite].Load(), Origin: c[refusedOrigin].Load(),
		NoToken: c[refusedNoToken].Load(), WrongToken: c[refusedWrongToken].Load(),
		ContentType: c[refusedContentType].Load(), TooLarge: c[refusedTooLarge].Load(), Out: c[refusedOut].Load(),
	}
}

// APIRefusals returns the local API's refusals so far (zero when the API is
// off).
func (n *Node) APIRefusals() APIRefusals {
	if n.apiGuard == nil {
		return APIRefusals{}
	}
	return n.apiGuard.counts.Snapshot()
}

// APITokenFile returns the file that holds the local API's token ("" when
// the API is off). The command line reads it; other programs may too.
func (n *Node) APITokenFile() string {
	if n.apiGuard == nil {
		return ""
	}
	return api.TokenPath(n.cfg.DataDir)
}

// loadOrCreateAPIToken returns the token in dataDir, creating it on first
// start. A token file that exists but is damaged, empty or readable by
// other users stops the node with an error naming the file: making a new
// token silently would lock out every script that holds the old one, and a
// token others can read protects nothing.
func loadOrCreateAPIToken(dataDir string) (string, error) {
	path := api.TokenPath(dataDir)
	tok, err := api.ReadTokenFile(dataDir)
	if err == nil {
		if fi, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("node: API token: %w", err)
		} else if perm := fi.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
			return "", fmt.Errorf("node: API token file %s is readable by other users (mode %v): run chmod 600 on it", path, perm)
		}
		return tok, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("node: %w", err)
	}
	random := make([]byte, api.TokenBytes)
	if _, err := rand.Read(random); err != nil {
		return "", fmt.Errorf("node: API token: %w", err)
	}
	text, err := api.NewTokenText(random)
	if err != nil {
		return "", err
	}
	if err := atomicfile.Write(path, text, 0o600); err != nil {
		return "", fmt.Errorf("node: API token: write %s: %w", path, err)
	}
	return api.ParseToken(text)
}

// apiGuard checks every local API request (see the list above) before it
// reaches the handlers.
type apiGuard struct {
	token   []byte
	port    string // the API listener's port, for the own-origin check
	maxBody int64
	// sessions are the web UI's logged-in browsers; cookie is the name of
	// the cookie that carries a session ID.
	sessions sessionChecker
	cookie   string
	counts   apiRefusalCounters
	logs     *refusalLog
	next     http.Handler
}

// sessionChecker says whether a web UI session ID is live (webui.Sessions).
type sessionChecker interface {
	Valid(session string) bool
}

func newAPIGuard(token, port string, maxBody int64, sessions sessionChecker, log *zap.Logger, next http.Handler) *apiGuard {
	return &apiGuard{token: []byte(token), port: port, maxBody: maxBody, sessions: sessions, cookie: sessionCookie(port),
		logs: newRefusalLog(log, time.Now), next: next}
}

// sessionCookie is the name of the web UI's session cookie for the API on
// port: browsers keep cookies by host, not by port, so two nodes on one
// machine need two names not to log each other's browser out.
func sessionCookie(port string) string { return api.CookieName + "_" + port }

// checkToken compares a token with the API's in constant time, so that the
// answer's timing says nothing about how much of a guess was right. (Only
// the length can show, and it is public: api.TokenLen.)
func (g *apiGuard) checkToken(sent string) bool {
	return subtle.ConstantTimeCompare([]byte(sent), g.token) == 1
}

// refuse answers a refused request, counts and logs it. The log line
// quotes the request's headers bounded (maxLoggedHeader); the answer is msg.
func (g *apiGuard) refuse(w http.ResponseWriter, r *http.Request, why refusal, code int, msg string) {
	g.counts[why].Add(1)
	g.logs.log(why, r)
	if code == http.StatusUnauthorized {
		// RFC 6750 §3: a 401 names the scheme; invalid_token when one was
		// sent.
		h := `Bearer realm="canopy"`
		if why == refusedWrongToken {
			h += `, error="invalid_token"`
		}
		w.Header().Set("WWW-Authenticate", h)
	}
	writeError(w, code, errors.New(msg))
}

func (g *apiGuard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Answers are for the user's own tools: never cached, never sniffed
	// into something a browser would render.
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if !loopbackHost(r.Host) {
		g.refuse(w, r, refusedHost, http.StatusForbidden, "the local API answers only requests addressed to a loopback host (localhost, 127.0.0.0/8, [::1])")
		return
	}
	site := r.Header.Get("Sec-Fetch-Site")
	if site != "" && site != "same-origin" && site != "none" {
		g.refuse(w, r, refusedCrossSite, http.StatusForbidden, "the local API refuses requests from other web pages (Sec-Fetch-Site)")
		return
	}
	origins := r.Header.Values("Origin")
	if len(origins) > 1 || len(origins) == 1 && !g.ownOrigin(origins[0]) {
		g.refuse(w, r, refusedOrigin, http.StatusForbidden, "the local API refuses cross-origin requests")
		return
	}
	if !webui.Public(r) {
		if why, code, msg := g.authenticate(r, len(origins) == 1, site); msg != "" {
			if code == http.StatusUnauthorized && webui.IsPage(r) {
				// A person opening the UI without a session (or with
				// an expired one) gets the login page, not JSON.
				g.counts[why].Add(1)
				g.logs.log(why, r)
				http.Redirect(w, r, webui.LoginPath, http.StatusSeeOther)
				return
			}
			g.refuse(w, r, why, code, msg)
			return
		}
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != "application/json" {
			g.refuse(w, r, refusedContentType, http.StatusUnsupportedMediaType, "the request body must be Content-Type: application/json")
			return
		}
	}
	if r.ContentLength > g.maxBody {
		g.refuse(w, r, refusedTooLarge, http.StatusRequestEntityTooLarge, g.tooLarge())
		return
	}
	// A body sent without a length (chunked) is cut at the limit as it is
	// read; readJSON turns that into the same 413.
	r.Body = http.MaxBytesReader(w, r.Body, g.maxBody)
	g.next.ServeHTTP(w, r)
}

func (g *apiGuard) tooLarge() string {
	return fmt.Sprintf("request too large: the local API takes bodies of at most %d bytes", g.maxBody)
}

// authenticate checks the token: Authorization: Bearer, or else the cookie.
// It returns an empty msg when the request may go on.
func (g *apiGuard) authenticate(r *http.Request, hasOrigin bool, site string) (why refusal, code int, msg string) {
	var sent string
	switch auths := r.Header.Values("Authorization"); {
	case len(auths) > 1:
		return refusedWrongToken, http.StatusUnauthorized, "send one Authorization header"
	case len(auths) == 1:
		scheme, tok, _ := strings.Cut(auths[0], " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return refusedWrongToken, http.StatusUnauthorized, "the local API takes Authorization: Bearer <token>"
		}
		sent = strings.TrimSpace(tok)
	default:
		c, err := r.Cookie(g.cookie)
		if err != nil || g.sessions == nil {
			return refusedNoToken, http.StatusUnauthorized, "the local API needs its token: Authorization: Bearer <token>, with the token from " + api.TokenFileName + " in the node's data directory"
		}
		if !cookieFromOwnOrigin(r.Method, hasOrigin, site) {
			return refusedOrigin, http.StatusForbidden, "the session cookie is accepted only from the node's own pages; programs send Authorization: Bearer <token>"
		}
		if !g.sessions.Valid(c.Value) {
			return refusedWrongToken, http.StatusUnauthorized, "the web UI session has ended: log in again (canopy ui)"
		}
		return 0, 0, ""
	}
	if !g.checkToken(sent) {
		return refusedWrongToken, http.StatusUnauthorized, "wrong API token (it is in " + api.TokenFileName + " in the node's data directory)"
	}
	return 0, 0, ""
}

// cookieFromOwnOrigin says whether a request that authenticates with the
// cookie proves it comes from the API's own pages. A browser attaches
// cookies by host, not by port, and counts every port of localhost as the
// same site, so even a SameSite=Strict cookie reaches the API from a page
// on another local port. The server therefore demands what SameSite=Strict
// means for one origin. A request that changes something (anything but GET
// and HEAD) must carry an Origin header (already checked to be the API's
// own): browsers send it on every such request, same-origin ones included,
// so its absence means the request did not come from the node's page. A
// GET or HEAD may instead carry Sec-Fetch-Site: same-origin, or "none"
// (the user typed the URL or followed a bookmark). A request with a cookie
// and neither header is refused: a browser sends one of them, and a
// program can send the Authorization header.
func cookieFromOwnOrigin(method string, hasOrigin bool, site string) bool {
	if method != http.MethodGet && method != http.MethodHead {
		return hasOrigin
	}
	return hasOrigin || site == "same-origin" || site == "none"
}

// ownOrigin says whether an Origin header names the API itself: http, a
// loopback host and the API's port. Anything else, including "null"
// (sandboxed frames, file: pages), is another page.
func (g *apiGuard) ownOrigin(origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Scheme != "http" || u.User != nil || u.Opaque != "" || u.Path != "" || u.RawQuery != "" || u.Fragment != "" {
		return false
	}
	return u.Port() == g.port && loopbackName(u.Hostname())
}

// loopbackHost says whether a Host header (host, host:port, [v6] or
// [v6]:port) names this machine's loopback: "localhost", 127.0.0.0/8 or
// ::1, with any port. The API's own listen address is one of these, since
// Config.Validate allows only loopback addresses. Any other name, even one
// that resolves to 127.0.0.1 now, is refused: that is what DNS rebinding
// does.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, port, err := net.SplitHostPort(hostport); err == nil {
		if port != "" && strings.Trim(port, "0123456789") != "" {
			return false
		}
		host = h
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	return loopbackName(host)
}

// loopbackName says whether host (without port or brackets) is
// "localhost" or a loopback address. "localhost." (with the root's dot) is
// refused: it is looked up in the DNS, which an attacker may answer.
func loopbackName(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Zone() == "" && a.Unmap().IsLoopback()
}

// refusalLogInterval is how often one reason of refusal is logged: a page
// that retries in a loop would otherwise fill the log; the counters still
// count every refusal, and the next line says how many were not logged.
const refusalLogInterval = 10 * time.Second

// maxLoggedHeader bounds each request header quoted in a refusal's log line.
const maxLoggedHeader = 100

// refusalLog logs refusals, at most one line per reason per
// refusalLogInterval.
type refusalLog struct {
	logger *zap.Logger
	now    func() time.Time
	lines  loglimit.Limiter[refusal]
}

func newRefusalLog(log *zap.Logger, now func() time.Time) *refusalLog {
	return &refusalLog{logger: log, now: now, lines: loglimit.Limiter[refusal]{Every: refusalLogInterval}}
}

func (l *refusalLog) log(why refusal, r *http.Request) {
	ok, skipped := l.lines.Allow(why, l.now())
	if !ok {
		return
	}
	l.logger.Warn("local API refused a request",
		zap.String("reason", refusalNames[why]),
		zap.String("remote", r.RemoteAddr),
		zap.String("method", truncate(r.Method)),
		zap.String("path", truncate(r.URL.Path)),
		zap.String("host", truncate(r.Host)),
		zap.String("origin", truncate(r.Header.Get("Origin"))),
		zap.Uint64("not_logged_since_last", skipped))
}

func truncate(s string) string {
	if len(s) <= maxLoggedHeader {
		return s
	}
	return s[:maxLoggedHeader] + "…"
}
