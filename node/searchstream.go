package node

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/leaf"
)

// searchTimeout is how long a search through the API collects hits: the
// request's timeout, DefaultSearchTimeout when it names none, and never
// more than maxSearchTimeout.
func searchTimeout(req api.SearchRequest) time.Duration {
	timeout := time.Duration(req.TimeoutMS) * time.Millisecond
	if timeout <= 0 {
		timeout = api.DefaultSearchTimeout
	}
	return min(timeout, maxSearchTimeout)
}

// apiHit is a search result as the API shows it.
func apiHit(r leaf.Result) api.Hit {
	h := api.Hit{ID: r.ID.String(), Name: r.Name, Size: r.Size, Sources: len(r.Sources), Local: r.Local}
	for _, s := range r.Sources {
		h.SourceNodes = append(h.SourceNodes, s.Node.String())
	}
	return h
}

// writeSearchError answers a search that failed before anything was sent:
// 502 when the node has no supernode to ask, 429 with Retry-After when
// the supernodes refused it for its rate, 400 otherwise.
func writeSearchError(w http.ResponseWriter, err error) {
	code := http.StatusBadRequest
	switch slow, ok := errors.AsType[*leaf.SlowDownError](err); {
	case errors.Is(err, leaf.ErrNotAttached):
		code = http.StatusBadGateway
	case ok:
		// The supernodes refused the search for its rate: the caller is
		// told when to try again, as HTTP says it.
		code = http.StatusTooManyRequests
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(slow.RetryAfter.Seconds())))))
	}
	writeError(w, code, err)
}

// handleSearchStream answers POST /v1/search/stream: the search of POST
// /v1/search, but each hit is written (and flushed) the moment its batch
// arrives from a supernode, so that a person sees the first file after the
// first answer and not after the timeout.
//
// The status line waits for the first hit: a search that fails before it
// (no supernode, or every supernode asked to slow down) is answered with
// the same HTTP error as POST /v1/search, 429 and Retry-After included.
// leaf.Search calls onHit from this goroutine, so the handler alone writes
// the response, with no goroutine or buffer in between.
func (n *Node) handleSearchStream(w http.ResponseWriter, r *http.Request) {
	var req api.SearchRequest
	if !n.readJSON(w, r, &req) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), searchTimeout(req))
	defer cancel()
	fl, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	started := false
	start := time.Now()
	first := time.Duration(-1)
	// emit writes one line; a write that fails means the client is gone,
	// which also ends r.Context() and with it the search.
	emit := func(ev api.SearchEvent) {
		if !started {
			started = true
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.WriteHeader(http.StatusOK)
		}
		_ = enc.Encode(ev)
		if fl != nil {
			fl.Flush()
		}
	}
	f, err := n.searchFilter(req)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	res, err := n.search(ctx, req.Words, req.Limit, f, func(batch []leaf.Result) {
		if first < 0 {
			first = time.Since(start)
		}
		for _, res := range batch {
			h := apiHit(res)
			emit(api.SearchEvent{Event: api.SearchEventHit, Hit: &h, ElapsedMS: ms(time.Since(start))})
		}
	})
	if err != nil {
		if !started {
			writeSearchError(w, err)
			return
		}
		emit(api.SearchEvent{Event: api.SearchEventError, ElapsedMS: ms(time.Since(start)), Error: err.Error()})
		return
	}
	n.hits.put(res)
	out := searchResponse(res, start, first)
	emit(api.SearchEvent{Event: api.SearchEventDone, ElapsedMS: out.ElapsedMS, Result: &out})
}

// searchResponse is the API's whole answer to a search that began at start
// and saw its first hit after first (negative: none).
func searchResponse(res []leaf.Result, start time.Time, first time.Duration) api.SearchResponse {
	out := api.SearchResponse{Hits: make([]api.Hit, 0, len(res)), ElapsedMS: ms(time.Since(start)), FirstHitMS: -1}
	if first >= 0 {
		out.FirstHitMS = ms(first)
	}
	for _, r := range res {
		out.Hits = append(out.Hits, apiHit(r))
	}
	return out
}
