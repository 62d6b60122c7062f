package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/downloads"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/leaf"
	"github.com/canopy-p2p/canopy/wishes"
)

// wishesCheckInterval is how often GET /v1/wishes/events looks for a change.
const wishesCheckInterval = time.Second

// startWishes opens the wishes (wishes.json in the data directory) and
// starts their runner, after the download jobs it queues into.
func (n *Node) startWishes() error {
	st, err := wishes.Open(filepath.Join(n.cfg.DataDir, wishes.FileName))
	if err != nil {
		return err
	}
	r, err := wishes.Start(wishes.Config{
		Store:  st,
		Params: wishes.Params{Interval: n.cfg.WishInterval},
		Search: n.wishSearch,
		Held:   n.haveContent,
		Fetch:  n.wishFetch,
		Attached: func() []identity.NodeID {
			return n.leaf.Supernodes()
		},
		Logger: n.log.Named("wishes"),
	})
	if err != nil {
		return err
	}
	n.wishes = r
	return nil
}

// wishSearch runs one wish's search as the API's search does: its bounds,
// blocked nodes hidden.
func (n *Node) wishSearch(ctx context.Context, w wishes.Wish, d time.Duration) ([]wishes.Hit, error) {
	f, err := n.searchFilter(api.SearchRequest{MinSize: w.MinSize, MaxSize: w.MaxSize, Ext: w.Ext})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	res, err := n.search(ctx, w.Words, leaf.DefaultSearchLimit, f, nil)
	if errors.Is(err, context.DeadlineExceeded) {
		err = nil // the search's time is up: what came is the answer
	}
	out := make([]wishes.Hit, 0, len(res))
	for _, r := range res {
		if !r.Local {
			out = append(out, wishes.Hit{Content: r.ID, Name: r.Name, Size: r.Size, Sources: r.Sources})
		}
	}
	return out, err
}

// wishFetch queues a wish's match as a download job.
func (n *Node) wishFetch(h wishes.Hit, dir string) (int64, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	j, _, err := n.jobs.Enqueue(downloads.Request{Content: h.Content, Name: h.Name, Size: h.Size, OutDir: dir, Sources: h.Sources})
	return j.ID, err
}

// Wishes returns the node's wishes for the API.
func (n *Node) Wishes() api.WishList {
	ws := n.wishes.List()
	p := n.wishes.Params()
	out := api.WishList{Wishes: make([]api.Wish, 0, len(ws)), IntervalS: p.Interval.Seconds(), Burst: p.Burst}
	for _, w := range ws {
		out.Wishes = append(out.Wishes, wishView(w))
	}
	return out
}

func wishView(w wishes.Wish) api.Wish {
	v := api.Wish{ID: w.ID, Words: w.Words, MinSize: w.MinSize, MaxSize: w.MaxSize, Ext: w.Ext, To: w.OutDir,
		Created: w.Created, Runs: w.Runs, LastError: w.LastError, Found: make([]api.WishHit, 0, len(w.Found))}
	if !w.LastRun.IsZero() {
		t := w.LastRun
		v.LastRun = &t
	}
	for _, f := range w.Found {
		v.Found = append(v.Found, api.WishHit{Content: f.Content.String(), Name: f.Name, Size: f.Size, Job: f.Job, At: f.At})
	}
	return v
}

// AddWish adds a wish from the API.
func (n *Node) AddWish(add api.WishAdd) (api.Wish, error) {
	downloads := n.downloads
	if downloads == "" { // no local API: not resolved at start
		var err error
		if downloads, err = n.cfg.downloadsDir(); err != nil {
			return api.Wish{}, err
		}
	}
	dir, _, err := resolveOut(add.To, downloads)
	if err != nil {
		return api.Wish{}, err
	}
	w, err := n.wishes.Add(wishes.Wish{Words: add.Words, MinSize: add.MinSize, MaxSize: add.MaxSize, Ext: add.Ext, OutDir: dir})
	return wishView(w), err
}

func (n *Node) wishesAPI(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/wishes", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, n.Wishes())
	})
	mux.HandleFunc("POST /v1/wishes", func(w http.ResponseWriter, r *http.Request) {
		var req api.WishAdd
		if !n.readJSON(w, r, &req) {
			return
		}
		wish, err := n.AddWish(req)
		if err != nil {
			code := http.StatusInternalServerError
			if errors.Is(err, wishes.ErrBadWish) || errors.Is(err, errOut) {
				code = http.StatusBadRequest
			}
			writeError(w, code, err)
			return
		}
		writeJSON(w, http.StatusOK, wish)
	})
	mux.HandleFunc("POST /v1/wishes/{id}/remove", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("%q is not a wish ID", r.PathValue("id")))
			return
		}
		if err := n.wishes.Remove(id); err != nil {
			code := http.StatusInternalServerError
			if errors.Is(err, wishes.ErrNotFound) {
				code = http.StatusNotFound
			}
			writeError(w, code, err)
			return
		}
		writeJSON(w, http.StatusOK, struct{}{})
	})
	mux.HandleFunc("GET /v1/wishes/events", func(w http.ResponseWriter, r *http.Request) {
		n.pushOnChange(w, r, api.WishesEventName, wishesCheckInterval, 0,
			func() (any, error) { return n.Wishes(), nil }, nil, func() any { return n.wishes.Revision() })
	})
}
