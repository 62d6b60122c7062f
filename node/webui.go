package node

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/library"
	"github.com/canopy-p2p/canopy/webui"
)

// The web UI's live streams look for changes server-side, so that a page
// holds one event stream and never polls.
const (
	// statusCheckInterval is how often GET /v1/status/events builds the
	// status to see whether it changed: a role change or a new attachment
	// shows within a second, and building it is cheap (a few locks and a
	// library count).
	statusCheckInterval = time.Second
	// statusRefresh is how often the status is sent even unchanged, so
	// that the uptime a page shows moves.
	statusRefresh = 10 * time.Second
	// libraryCheckInterval is how often GET /v1/library/events checks the
	// library's revision and scan state.
	libraryCheckInterval = time.Second
)

// uiState is the node's web UI: its login sessions, and whether a rescan
// asked for through the API still runs (so that one is not started twice).
type uiState struct {
	sessions *webui.Sessions

	mu       sync.Mutex
	scanning bool
}

// registerUI adds the web UI (pages, login) and its endpoints to mux.
func (n *Node) registerUI(mux *http.ServeMux, token, port string) error {
	sessions, err := webui.NewSessions(webui.SessionConfig{})
	if err != nil {
		return err
	}
	n.ui = &uiState{sessions: sessions}
	g := &apiGuard{token: []byte(token)}
	webui.Register(mux, webui.Config{Sessions: sessions, CookieName: sessionCookie(port), CheckToken: g.checkToken})
	mux.HandleFunc("POST /v1/ui/code", n.handleUICode)
	mux.HandleFunc("GET /v1/status/events", n.handleStatusEvents)
	mux.HandleFunc("GET /v1/library/events", n.handleLibraryEvents)
	mux.HandleFunc("POST /v1/library/rescan", n.handleRescan)
	mux.HandleFunc("GET /v1/config", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, n.settings())
	})
	return nil
}

// handleUICode makes a one-time login link: `canopy ui` asks for one with
// the token and opens it in a browser.
func (n *Node) handleUICode(w http.ResponseWriter, r *http.Request) {
	code, exp, err := n.ui.sessions.NewCode()
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	u := url.URL{Scheme: "http", Host: n.APIAddr(), Path: webui.LoginPath, RawQuery: "code=" + code}
	writeJSON(w, http.StatusOK, api.UICode{URL: u.String(), Expires: exp})
}

// sseStart begins an event stream, or answers that it cannot.
func sseStart(w http.ResponseWriter) (http.Flusher, bool) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, errors.New("streaming not supported"))
		return nil, false
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	fl.Flush()
	return fl, true
}

// pushOnChange serves an event stream of what snapshot returns: at once,
// then each time its JSON differs from the last sent (looked at every
// check), and at least every refresh when refresh > 0. key, when not nil,
// gives the part of the snapshot that counts as a change (the status
// without its uptime). version, when not nil, is a cheap summary of the
// state: while it stays the same, snapshot is not even built (the library
// is listed only when its revision or scan changed). The handler's
// goroutine does everything; it ends when the client leaves or the node
// stops.
func (n *Node) pushOnChange(w http.ResponseWriter, r *http.Request, event string, check, refresh time.Duration,
	snapshot func() (any, error), key func(any) any, version func() any) {
	fl, ok := sseStart(w)
	if !ok {
		return
	}
	tick := time.NewTicker(check)
	defer tick.Stop()
	var lastKey []byte
	var lastSent time.Time
	var lastVersion any
	// send builds the snapshot and sends it if it changed; false when the
	// client is gone.
	send := func() bool {
		var ver any
		if version != nil {
			ver = version()
			if !lastSent.IsZero() && ver == lastVersion && (refresh <= 0 || time.Since(lastSent) < refresh) {
				return true // nothing changed: nothing to build
			}
		}
		v, err := snapshot()
		if err != nil {
			n.log.Warn("web UI event stream", zap.String("event", event), zap.Error(err))
			return true
		}
		k := v
		if key != nil {
			k = key(v)
		}
		kb, _ := json.Marshal(k)
		lastVersion = ver
		if bytes.Equal(kb, lastKey) && (refresh <= 0 || time.Since(lastSent) < refresh) {
			return true
		}
		b, err := json.Marshal(v)
		if err != nil {
			n.log.Error("web UI event", zap.Error(err))
			return false
		}
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b); err != nil {
			return false
		}
		fl.Flush()
		lastKey, lastSent = kb, time.Now()
		return true
	}
	for {
		if !send() {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
	}
}

func (n *Node) handleStatusEvents(w http.ResponseWriter, r *http.Request) {
	n.pushOnChange(w, r, api.StatusEventName, statusCheckInterval, statusRefresh,
		func() (any, error) { return n.Status(), nil },
		func(v any) any { st := v.(api.Status); st.Uptime = ""; return st }, nil)
}

func (n *Node) handleLibraryEvents(w http.ResponseWriter, r *http.Request) {
	n.pushOnChange(w, r, api.LibraryEventName, libraryCheckInterval, 0,
		func() (any, error) { return n.LibraryStatus() }, nil, n.libraryVersion)
}

// libraryVersion changes whenever LibraryStatus would: a scan that changed
// files moves the revision, one that hashed moves the stats, a share
// added, removed or seen by others moves the access generation, and a
// scan starts, hashes the next file or ends.
func (n *Node) libraryVersion() any {
	type version struct {
		rev, access int64
		stats       library.Stats
		scan        library.ScanState
		asked       bool
	}
	return version{rev: n.lib.Revision(), access: n.lib.AccessGen(), stats: n.lib.Stats(), scan: n.lib.ScanState(),
		asked: n.rescanAsked()}
}

// rescanAsked says a rescan asked for through the API has not ended (it
// may not have started yet: the library's ScanState does not show it).
func (n *Node) rescanAsked() bool {
	if n.ui == nil {
		return false
	}
	n.ui.mu.Lock()
	defer n.ui.mu.Unlock()
	return n.ui.scanning
}

// handleRescan starts a scan of the shared folders in the node's own
// goroutine (a large library takes minutes to hash; the page follows it on
// /v1/library/events) and answers 202 with the library. A rescan asked for
// while one runs is not started twice.
func (n *Node) handleRescan(w http.ResponseWriter, r *http.Request) {
	if n.ctx.Err() != nil {
		writeError(w, http.StatusServiceUnavailable, errors.New("the node is stopping"))
		return
	}
	n.ui.mu.Lock()
	start := !n.ui.scanning
	n.ui.scanning = true
	n.ui.mu.Unlock()
	if start {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			// The library records the result, which LibraryStatus shows.
			if _, err := n.Rescan(n.ctx); err != nil && n.ctx.Err() == nil {
				n.log.Warn("rescan asked for through the API", zap.Error(err))
			}
			n.ui.mu.Lock()
			n.ui.scanning = false
			n.ui.mu.Unlock()
		}()
	}
	l, err := n.LibraryStatus()
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusAccepted, l)
}

// settings is the effective configuration: what the program that started
// the node said (canopy up passes what `canopy config show` prints), or
// else the node's own Config.
func (n *Node) settings() api.Settings {
	if n.cfg.Settings != nil {
		return *n.cfg.Settings
	}
	c := n.cfg
	set := func(key string, v any) api.Setting { return api.Setting{Key: key, Value: v, Source: "node"} }
	return api.Settings{Settings: []api.Setting{
		set("data", c.DataDir), set("downloads", n.downloads), set("share", append([]string{}, c.Shares...)),
		set("listen", c.Listen), set("advertise", c.Advertise), set("gossip", c.Gossip), set("api", n.APIAddr()),
		set("join", append([]string{}, c.Join...)), set("supernode", fmt.Sprint(c.Consent)), set("attach", c.Attach),
		set("turn", c.TURN), set("stun", c.STUN), set("portmap", c.PortMap),
	}}
}
