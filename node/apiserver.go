package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/content"
	"github.com/canopy-p2p/canopy/leaf"
	"github.com/canopy-p2p/canopy/transfer"
)

// maxSearchTimeout bounds how long one API search may collect hits.
const maxSearchTimeout = 60 * time.Second

// prepareAPI loads (or creates) the API token and settles the downloads
// directory. Start calls it before anything else starts, so that a damaged
// token file stops the node before it has joined the network.
func (n *Node) prepareAPI() (token string, err error) {
	if token, err = loadOrCreateAPIToken(n.cfg.DataDir); err != nil {
		return "", err
	}
	if n.downloads, err = n.cfg.downloadsDir(); err != nil {
		return "", fmt.Errorf("node: downloads directory: %w", err)
	}
	return token, nil
}

// serveAPI starts the local API: it listens and serves the handlers behind
// the guard of apiauth.go, which checks token.
func (n *Node) serveAPI(token string) error {
	ln, err := net.Listen("tcp", n.cfg.API)
	if err != nil {
		return fmt.Errorf("node: local API: %w", err)
	}
	n.apiLn = ln
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", n.handleStatus)
	mux.HandleFunc("POST /v1/search", n.handleSearch)
	mux.HandleFunc("POST /v1/search/stream", n.handleSearchStream)
	mux.HandleFunc("POST /v1/get", n.handleGet)
	mux.HandleFunc("POST /v1/natcheck", n.handleNATCheck)
	n.peopleAPI(mux)
	n.browseAPI(mux)
	n.uploadsAPI(mux)
	n.wishesAPI(mux)
	n.registerDownloads(mux)
	n.debugAPI(mux)
	if err := n.registerUI(mux, token, port); err != nil {
		ln.Close()
		return fmt.Errorf("node: web UI: %w", err)
	}
	n.apiGuard = newAPIGuard(token, port, n.cfg.APIMaxBody, n.ui.sessions, n.log, mux)
	n.apiSrv = &http.Server{
		Handler:           n.apiGuard,
		ReadHeaderTimeout: 5 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return n.ctx },
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.apiSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("local API", zap.Error(err))
		}
	}()
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, api.Error{Error: err.Error()})
}

// readJSON decodes the request body, which the guard has bounded with
// http.MaxBytesReader, into v: one JSON value with known fields only. It
// answers a bad body itself (413 for one over the limit, 400 otherwise)
// and then returns false.
func (n *Node) readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		// Only white space may follow the value. Reading to the end also
		// finds a body that runs past the limit after a valid value.
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("more after the JSON value")
			if _, ok := errors.AsType[*http.MaxBytesError](terr); ok {
				err = terr
			}
		}
	}
	if err == nil {
		return true
	}
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		n.apiGuard.refuse(w, r, refusedTooLarge, http.StatusRequestEntityTooLarge, n.apiGuard.tooLarge())
		return false
	}
	writeError(w, http.StatusBadRequest, fmt.Errorf("bad request body: %w", err))
	return false
}

// Status describes the node.
func (n *Node) Status() api.Status {
	st := api.Status{
		ID:      n.id.ID.String(),
		Role:    n.Role(),
		Version: Version,
		Control: n.control,
		Uptime:  time.Since(n.started).Round(time.Second).String(),
		Policy:  n.policySource,
	}
	for _, a := range n.leaf.Attachments() {
		st.Supernodes = append(st.Supernodes, api.Attachment{ID: a.ID.String(), Control: a.Control, Since: a.Since, Files: a.Files, IndexError: a.IndexError})
	}
	if entries, err := n.lib.Entries(); err == nil {
		st.SharedFiles = len(entries)
		for _, e := range entries {
			st.SharedBytes += e.Size
		}
	}
	ts := n.leaf.TransferStats()
	st.Transfers = &api.Transfers{
		BytesSent:      ts.UploadedDirect + ts.UploadedRelayed,
		BytesReceived:  ts.DownloadedDirect + ts.DownloadedRelayed,
		UpLimit:        ts.UpLimit,
		DownLimit:      ts.DownLimit,
		UploadsRefused: ts.UploadsRefused,
		Direct:         ts.DirectConnections,
		Relayed:        ts.RelayedConnections,
	}
	st.Promotion = n.promotionStatus()
	natSt := n.natStatus()
	st.NAT = &natSt
	st.People = n.peopleCounters()
	if sn := n.Supernode(); sn != nil {
		for _, m := range sn.Members() {
			st.Ring = append(st.Ring, api.RingMember{ID: m.Meta.NodeID.String(), Control: m.Meta.Control, Gossip: m.Addr,
				Leaves: int(m.Meta.Leaves), Slots: int(m.Meta.Slots), Load: int(m.Meta.Load), Self: m.Self,
				Linked: !m.Self && sn.Linked(m.Meta.NodeID)})
		}
		st.Leaves = len(sn.Leaves())
		st.IndexFiles = sn.IndexStats().Files
	}
	return st
}

func (n *Node) handleStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, n.Status())
}

func (n *Node) handleNATCheck(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	writeJSON(w, http.StatusOK, n.NATCheck(ctx))
}

// Search searches the network and remembers the results for Get.
func (n *Node) Search(ctx context.Context, req api.SearchRequest) (api.SearchResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, searchTimeout(req))
	defer cancel()
	start := time.Now()
	first := time.Duration(-1)
	f, err := n.searchFilter(req)
	if err != nil {
		return api.SearchResponse{}, err
	}
	res, err := n.search(ctx, req.Words, req.Limit, f, func([]leaf.Result) {
		if first < 0 {
			first = time.Since(start)
		}
	})
	if err != nil {
		return api.SearchResponse{}, err
	}
	n.hits.put(res)
	return searchResponse(res, start, first), nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (n *Node) handleSearch(w http.ResponseWriter, r *http.Request) {
	var req api.SearchRequest
	if !n.readJSON(w, r, &req) {
		return
	}
	res, err := n.Search(r.Context(), req)
	if err != nil {
		writeSearchError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// Sources finds who offers a file: the sources of a recent search or, failing
// that, a look-up on the network.
func (n *Node) Sources(ctx context.Context, id content.ID) (leaf.Result, error) {
	if r, ok := n.hits.get(id); ok && len(r.Sources) > 0 {
		return r, nil
	}
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	r, err := n.leaf.Locate(lctx, id)
	if err != nil {
		return leaf.Result{}, err
	}
	if len(r.Sources) == 0 {
		return r, fmt.Errorf("%w: %s (only this node has it)", leaf.ErrNoSources, id)
	}
	n.hits.put([]leaf.Result{r})
	return r, nil
}

// Get downloads a file found by Sources into dir, creating dir if it is
// missing: the program that embeds the node chose it. (Requests through the
// local API go through resolveOut first.)
func (n *Node) Get(ctx context.Context, r leaf.Result, dir string, progress func(transfer.Progress)) (transfer.Result, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return transfer.Result{}, err
	}
	return n.download(ctx, r, dir, progress)
}

// download downloads into dir, which must exist.
func (n *Node) download(ctx context.Context, r leaf.Result, dir string, progress func(transfer.Progress)) (transfer.Result, error) {
	return n.leaf.Download(ctx, transfer.Request{
		Content: r.ID, Name: r.Name, Size: r.Size, Sources: r.Sources, OutDir: dir, Progress: progress,
	})
}

// errOut is the class of resolveOut's refusals.
var errOut = errors.New("out")

// resolveOut decides where a download requested through the local API is
// written, and whether that directory may be created. The rule:
//
//   - No out: the downloads directory (Config.Downloads), created if
//     missing.
//   - out must be absolute (the node's working directory means nothing to
//     the client) and is cleaned first, so "/x/../y" is "/y" and every
//     later step works on the path that is checked.
//   - An existing directory is used as it is: the request carries the
//     token, so it speaks for the user, and writing where the user can
//     write is the user's choice (canopy get --out ~/Music).
//   - A missing directory is created only inside the downloads directory,
//     judged after resolving symbolic links on the part of the path that
//     exists (a link inside the downloads directory that points out of it
//     does not count as inside). Creating directories elsewhere is what an
//     attack needs (~/.config/autostart/, ~/.ssh/) and what no user needs
//     from a download, who can make a directory themselves.
func resolveOut(out, downloads string) (dir string, create bool, err error) {
	if out == "" {
		return downloads, true, nil
	}
	if !filepath.IsAbs(out) || strings.ContainsRune(out, 0) {
		return "", false, fmt.Errorf("%w: %q is not an absolute directory", errOut, out)
	}
	dir = filepath.Clean(out)
	fi, err := os.Stat(dir)
	switch {
	case err == nil && fi.IsDir():
		return dir, false, nil
	case err == nil:
		return "", false, fmt.Errorf("%w: %s is not a directory", errOut, dir)
	case !errors.Is(err, fs.ErrNotExist):
		return "", false, fmt.Errorf("%w: %s: %w", errOut, dir, err)
	}
	realDir, err := realPath(dir)
	if err != nil {
		return "", false, fmt.Errorf("%w: %s: %w", errOut, dir, err)
	}
	realDownloads, err := realPath(downloads)
	if err != nil {
		return "", false, fmt.Errorf("%w: downloads directory %s: %w", errOut, downloads, err)
	}
	if rel, err := filepath.Rel(realDownloads, realDir); err != nil || !filepath.IsLocal(rel) {
		return "", false, fmt.Errorf("%w: %s does not exist, and the node creates directories only inside its downloads directory %s: create it first, or leave out empty", errOut, dir, downloads)
	}
	return dir, true, nil
}

// realPath resolves the symbolic links of the longest part of path that
// exists and appends the rest unchanged. A link that cannot be resolved
// (dangling, a loop) is an error: what it would point to once created is
// not known.
func realPath(path string) (string, error) {
	rest := ""
	for p := path; ; {
		if _, err := os.Lstat(p); err == nil {
			r, err := filepath.EvalSymlinks(p)
			if err != nil {
				return "", fmt.Errorf("a symbolic link on the way cannot be followed: %w", err)
			}
			return filepath.Join(r, rest), nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(p)
		if parent == p {
			return "", fmt.Errorf("no part of %s exists", path)
		}
		rest = filepath.Join(filepath.Base(p), rest)
		p = parent
	}
}

func (n *Node) handleGet(w http.ResponseWriter, r *http.Request) {
	var req api.GetRequest
	if !n.readJSON(w, r, &req) {
		return
	}
	id, err := content.ParseID(req.ID)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("%q is not a content ID: %w", req.ID, err))
		return
	}
	dir, create, err := resolveOut(req.Out, n.downloads)
	if err != nil {
		n.apiGuard.refuse(w, r, refusedOut, http.StatusBadRequest, err.Error())
		return
	}
	src, err := n.Sources(r.Context(), id)
	if err != nil {
		code := http.StatusNotFound
		if errors.Is(err, leaf.ErrNotAttached) {
			code = http.StatusBadGateway
		}
		writeError(w, code, err)
		return
	}
	// Created only now that there is something to put in it.
	if create {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			writeError(w, http.StatusInternalServerError, fmt.Errorf("create %s: %w", dir, err))
			return
		}
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	emit := func(ev api.GetEvent) {
		_ = enc.Encode(ev)
		if fl != nil {
			fl.Flush()
		}
	}
	// Progress arrives from the download goroutine; the handler's goroutine
	// owns the response, so progress is handed over and the latest one wins.
	latest := make(chan transfer.Progress, 1)
	done := make(chan struct{})
	var res transfer.Result
	var derr error
	go func() {
		defer close(done)
		res, derr = n.download(r.Context(), src, dir, func(p transfer.Progress) {
			select {
			case <-latest:
			default:
			}
			latest <- p
		})
	}()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var last transfer.Progress
wait:
	for {
		select {
		case p := <-latest:
			last = p
		case <-tick.C:
			emit(api.GetEvent{Event: "progress", Name: src.Name, Have: last.Have, Total: last.Total, Rate: last.Rate, Sources: last.Sources})
		case <-done:
			break wait
		}
	}
	if derr != nil {
		emit(api.GetEvent{Event: "error", Error: derr.Error()})
		return
	}
	ev := api.GetEvent{Event: "done", Name: src.Name, Path: res.Path, Have: res.Size, Total: res.Size, Seconds: res.Duration.Seconds()}
	for _, s := range res.Sources {
		if s.Bad {
			ev.BadSources = append(ev.BadSources, s.Node.String())
		}
		if s.Conn.Path != "" {
			ev.Connections = append(ev.Connections, api.Connection{Source: s.Node.String(), Path: s.Conn.Path,
				Local: s.Conn.LocalType, Remote: s.Conn.RemoteType, ConnectMS: float64(s.Conn.ConnectTime) / float64(time.Millisecond), Bytes: s.Bytes})
		}
	}
	emit(ev)
}
