package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/content"
	"github.com/canopy-p2p/canopy/downloads"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/leaf"
	"github.com/canopy-p2p/canopy/wire"
)

// startJobs opens the download jobs, which resume the jobs the last run
// left unfinished.
func (n *Node) startJobs() error {
	cfg := n.cfg.Jobs
	cfg.DBPath = filepath.Join(n.cfg.DataDir, downloads.DBName)
	cfg.Fetcher = n.leaf
	cfg.Lookup = func(ctx context.Context, id content.ID) (downloads.Found, error) {
		// Jobs resume as the node starts, usually before its leaf side
		// has attached: without a supernode there is no look-up and no
		// signalling, so the job waits for one first.
		n.waitAttached(ctx, jobAttachWait)
		r, err := n.Sources(ctx, id)
		if err != nil {
			return downloads.Found{}, err
		}
		return downloads.Found{Name: r.Name, Size: r.Size, Sources: r.Sources}, nil
	}
	cfg.Logger = n.log
	m, err := downloads.Open(cfg)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	n.jobs = m
	return nil
}

// jobAttachWait bounds how long a job that starts waits for the leaf side
// to attach to a supernode: long enough for a node that has just started
// (a supernode answers in well under a second on a home line), short enough
// that an offline node's jobs go on to their retries.
const jobAttachWait = 15 * time.Second

// waitAttached waits until the leaf side is attached to a supernode, ctx
// ends, or max has passed.
func (n *Node) waitAttached(ctx context.Context, max time.Duration) {
	if len(n.leaf.Attachments()) > 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, max)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for len(n.leaf.Attachments()) == 0 {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Downloads returns the node's download jobs.
func (n *Node) Downloads() *downloads.Manager { return n.jobs }

func (n *Node) registerDownloads(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/downloads", n.handleEnqueue)
	mux.HandleFunc("GET /v1/downloads", n.handleDownloads)
	mux.HandleFunc("GET /v1/downloads/events", n.handleDownloadEvents)
	mux.HandleFunc("GET /v1/downloads/{id}", n.handleDownload)
	mux.HandleFunc("POST /v1/downloads/{id}/{action}", n.handleDownloadAction)
}

// apiDownload is a job as the API shows it.
func apiDownload(j downloads.Job) api.Download {
	d := api.Download{ID: j.ID, Content: j.Content.String(), Name: j.Name, OutDir: j.OutDir, State: string(j.State),
		Reason: j.Reason, Created: j.Created, Updated: j.Updated, Size: j.Size, Have: j.Have, Pieces: j.Pieces,
		PieceCount: j.PieceCount, Rate: j.Rate, Part: j.Part, Path: j.Path, Fetched: j.Fetched, Refetched: j.Refetched}
	if !j.Finished.IsZero() {
		f := j.Finished
		d.Finished = &f
	}
	for _, s := range j.Sources {
		d.Sources = append(d.Sources, api.DownloadSource{Node: s.Node.String(), Path: s.Path, Local: s.Local, Remote: s.Remote,
			ConnectMS: s.ConnectMS, Bytes: s.Bytes, Error: s.Err, Bad: s.Bad, Queued: s.Queued})
	}
	return d
}

// parseSources reads the sources of a DownloadRequest.
func parseSources(refs []api.SourceRef) ([]wire.Source, error) {
	out := make([]wire.Source, 0, len(refs))
	for _, r := range refs {
		id, err := identity.ParseNodeID(r.Node)
		if err != nil {
			return nil, fmt.Errorf("source %q: %w", r.Node, err)
		}
		s := wire.Source{Node: id}
		for _, v := range r.Via {
			via, err := identity.ParseNodeID(v)
			if err != nil {
				return nil, fmt.Errorf("source %q via %q: %w", r.Node, v, err)
			}
			s.Via = append(s.Via, via)
		}
		out = append(out, s)
	}
	return out, nil
}

func (n *Node) handleEnqueue(w http.ResponseWriter, r *http.Request) {
	var req api.DownloadRequest
	if !n.readJSON(w, r, &req) {
		return
	}
	id, err := content.ParseID(req.ID)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("%q is not a content ID: %w", req.ID, err))
		return
	}
	sources, err := parseSources(req.Sources)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	dir, create, err := resolveOut(req.Out, n.downloads)
	if err != nil {
		n.apiGuard.refuse(w, r, refusedOut, http.StatusBadRequest, err.Error())
		return
	}
	dr := downloads.Request{Content: id, Name: req.Name, OutDir: dir, Sources: sources}
	if len(sources) == 0 {
		// As get does: a file nobody offers is refused now, not queued to
		// fail. The job looks again each time it starts.
		found, err := n.Sources(r.Context(), id)
		if err != nil {
			code := http.StatusNotFound
			if errors.Is(err, leaf.ErrNotAttached) {
				code = http.StatusBadGateway
			}
			writeError(w, code, err)
			return
		}
		dr.Sources, dr.Size = found.Sources, found.Size
		if dr.Name == "" {
			dr.Name = found.Name
		}
	}
	if create {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			writeError(w, http.StatusInternalServerError, fmt.Errorf("create %s: %w", dir, err))
			return
		}
	}
	j, existing, err := n.jobs.Enqueue(dr)
	if err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, downloads.ErrBadRequest) {
			code = http.StatusBadRequest
		}
		writeError(w, code, err)
		return
	}
	d := apiDownload(j)
	d.Existing = existing
	code := http.StatusCreated
	if existing {
		code = http.StatusOK
	}
	writeJSON(w, code, d)
}

func (n *Node) handleDownloads(w http.ResponseWriter, r *http.Request) {
	list := api.DownloadList{Downloads: []api.Download{}}
	for _, j := range n.jobs.List() {
		list.Downloads = append(list.Downloads, apiDownload(j))
	}
	writeJSON(w, http.StatusOK, list)
}

// jobID reads the {id} of a path.
func jobID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		writeError(w, http.StatusBadRequest, fmt.Errorf("%q is not a download ID", r.PathValue("id")))
		return 0, false
	}
	return id, true
}

func jobError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, downloads.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, downloads.ErrAction):
		code = http.StatusConflict
	case errors.Is(err, downloads.ErrClosed):
		code = http.StatusServiceUnavailable
	}
	writeError(w, code, err)
}

func (n *Node) handleDownload(w http.ResponseWriter, r *http.Request) {
	id, ok := jobID(w, r)
	if !ok {
		return
	}
	j, err := n.jobs.Get(id)
	if err != nil {
		jobError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, apiDownload(j))
}

func (n *Node) handleDownloadAction(w http.ResponseWriter, r *http.Request) {
	id, ok := jobID(w, r)
	if !ok {
		return
	}
	var a downloads.Action
	switch act := r.PathValue("action"); act {
	case api.ActionPause, api.ActionResume, api.ActionCancel, api.ActionRetry:
		a = downloads.Action(act)
	default:
		writeError(w, http.StatusNotFound, fmt.Errorf("no action %q: pause, resume, cancel or retry", act))
		return
	}
	j, err := n.jobs.Do(id, a)
	if err != nil {
		jobError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, apiDownload(j))
}

// handleDownloadEvents serves the job changes as server-sent events: every
// job (or the one of ?id=) as it is, then each change, until the client
// leaves or the node stops.
func (n *Node) handleDownloadEvents(w http.ResponseWriter, r *http.Request) {
	var only int64
	if q := r.URL.Query().Get("id"); q != "" {
		id, err := strconv.ParseInt(q, 10, 64)
		if err != nil || id <= 0 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("%q is not a download ID", q))
			return
		}
		if _, err := n.jobs.Get(id); err != nil {
			jobError(w, err)
			return
		}
		only = id
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, errors.New("streaming unsupported"))
		return
	}
	sub := n.jobs.Subscribe()
	defer sub.Stop()
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	fl.Flush()
	keep := time.NewTicker(sseKeepAlive)
	defer keep.Stop()
	for {
		jobs, ok := sub.Take()
		for _, j := range jobs {
			if only != 0 && j.ID != only {
				continue
			}
			b, err := jsonLine(apiDownload(j))
			if err != nil {
				n.log.Error("download event", zap.Error(err))
				continue
			}
			if _, err := fmt.Fprintf(w, "event: %s\nid: %d\ndata: %s\n\n", api.DownloadEventName, j.ID, b); err != nil {
				return
			}
		}
		if len(jobs) > 0 {
			fl.Flush()
		}
		if !ok {
			return
		}
		select {
		case <-sub.Ready():
		case <-keep.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			fl.Flush()
		case <-r.Context().Done():
			return
		}
	}
}

// jsonLine encodes v on one line, as an SSE data field needs: encoding/json
// escapes every newline inside strings.
func jsonLine(v any) ([]byte, error) { return json.Marshal(v) }
