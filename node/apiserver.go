package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/content"
	"github.com/canopy-p2p/canopy/leaf"
	"github.com/canopy-p2p/canopy/transfer"
)

// maxSearchTimeout bounds how long one API search may collect hits.
const maxSearchTimeout = 60 * time.Second

func (n *Node) serveAPI() error {
	ln, err := net.Listen("tcp", n.cfg.API)
	if err != nil {
		return fmt.Errorf("node: local API: %w", err)
	}
	n.apiLn = ln
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", n.handleStatus)
	mux.HandleFunc("POST /v1/search", n.handleSearch)
	mux.HandleFunc("POST /v1/get", n.handleGet)
	mux.HandleFunc("POST /v1/natcheck", n.handleNATCheck)
	n.apiSrv = &http.Server{
		Handler:           mux,
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

// readJSON decodes a bounded request body.
func readJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("bad request body: %w", err)
	}
	return nil
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
	st.Promotion = n.promotionStatus()
	natSt := n.natStatus()
	st.NAT = &natSt
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
	timeout := time.Duration(req.TimeoutMS) * time.Millisecond
	if timeout <= 0 {
		timeout = api.DefaultSearchTimeout
	}
	timeout = min(timeout, maxSearchTimeout)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	first := time.Duration(-1)
	res, err := n.leaf.Search(ctx, req.Words, req.Limit, func([]leaf.Result) {
		if first < 0 {
			first = time.Since(start)
		}
	})
	if err != nil {
		return api.SearchResponse{}, err
	}
	n.hits.put(res)
	out := api.SearchResponse{Hits: make([]api.Hit, 0, len(res)), ElapsedMS: ms(time.Since(start)), FirstHitMS: -1}
	if first >= 0 {
		out.FirstHitMS = ms(first)
	}
	for _, r := range res {
		h := api.Hit{ID: r.ID.String(), Name: r.Name, Size: r.Size, Sources: len(r.Sources), Local: r.Local}
		for _, s := range r.Sources {
			h.SourceNodes = append(h.SourceNodes, s.Node.String())
		}
		out.Hits = append(out.Hits, h)
	}
	return out, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (n *Node) handleSearch(w http.ResponseWriter, r *http.Request) {
	var req api.SearchRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	res, err := n.Search(r.Context(), req)
	if err != nil {
		code := http.StatusBadGateway
		if !errors.Is(err, leaf.ErrNotAttached) {
			code = http.StatusBadRequest
		}
		writeError(w, code, err)
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

// Get downloads a file found by Sources into dir.
func (n *Node) Get(ctx context.Context, r leaf.Result, dir string, progress func(transfer.Progress)) (transfer.Result, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return transfer.Result{}, err
	}
	return n.leaf.Download(ctx, transfer.Request{
		Content: r.ID, Name: r.Name, Size: r.Size, Sources: r.Sources, OutDir: dir, Progress: progress,
	})
}

func (n *Node) handleGet(w http.ResponseWriter, r *http.Request) {
	var req api.GetRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	id, err := content.ParseID(req.ID)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("%q is not a content ID: %w", req.ID, err))
		return
	}
	if !filepath.IsAbs(req.Out) {
		writeError(w, http.StatusBadRequest, errors.New("out must be an absolute directory"))
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
		res, derr = n.Get(r.Context(), src, req.Out, func(p transfer.Progress) {
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
