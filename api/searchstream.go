package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// The events of a streaming search (POST /v1/search/stream), one JSON
// object per line.
const (
	// SearchEventHit carries one file as it is known so far. A file's ID
	// comes again when another supernode reports it, with the sources
	// merged: the later event replaces the earlier one.
	SearchEventHit = "hit"
	// SearchEventDone is the last line: the search ended (limit reached,
	// timeout, or every supernode asked has answered or refused), with the
	// whole result as POST /v1/search gives it.
	SearchEventDone = "done"
	// SearchEventError is a last line that says the search failed after
	// the answer had begun. (A search that fails before its first hit is
	// answered with an HTTP error instead, as POST /v1/search is: 429 with
	// Retry-After when the supernodes asked to slow down.)
	SearchEventError = "error"
)

// MaxSearchEventLine bounds one line of the search stream that a client
// reads. The largest is the done event: up to a limit's worth of hits, each
// with a 255-byte name and its source IDs; clients of large searches use
// POST /v1/search.
const MaxSearchEventLine = 16 << 20

// SearchEvent is one line of the NDJSON stream that answers a SearchRequest
// sent to POST /v1/search/stream.
type SearchEvent struct {
	// Event is SearchEventHit, SearchEventDone or SearchEventError.
	Event string `json:"event"`
	// Hit is the file (hit events).
	Hit *Hit `json:"hit,omitempty"`
	// ElapsedMS is the time since the query was sent, in milliseconds.
	ElapsedMS float64 `json:"elapsed_ms"`
	// Result is the whole search (done events): every file, sorted by
	// sources, best first, and the first hit's time.
	Result *SearchResponse `json:"result,omitempty"`
	// Error says why the search failed (error events).
	Error string `json:"error,omitempty"`
}

// SearchStream runs a search and calls onHit (from the calling goroutine)
// with every hit event as the node sends it, so that a caller can show
// files while the search goes on. It returns the done event's result.
func (c *Client) SearchStream(ctx context.Context, req SearchRequest, onHit func(SearchEvent)) (SearchResponse, error) {
	resp, err := c.do(ctx, http.MethodPost, "/v1/search/stream", req, nil)
	if err != nil {
		return SearchResponse{}, err
	}
	defer resp.Body.Close()
	res, err := readSearchStream(resp.Body, onHit)
	if err != nil && ctx.Err() != nil {
		return SearchResponse{}, ctx.Err()
	}
	return res, err
}

// readSearchStream reads a search stream's lines up to its done or error
// line, each at most MaxSearchEventLine bytes.
func readSearchStream(r io.Reader, onHit func(SearchEvent)) (SearchResponse, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxSearchEventLine)
	for sc.Scan() {
		var ev SearchEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return SearchResponse{}, fmt.Errorf("bad search event from node: %w", err)
		}
		switch ev.Event {
		case SearchEventHit:
			if ev.Hit == nil {
				return SearchResponse{}, errors.New("bad search event from node: a hit without its file")
			}
			if onHit != nil {
				onHit(ev)
			}
		case SearchEventDone:
			if ev.Result == nil {
				return SearchResponse{}, errors.New("bad search event from node: done without the result")
			}
			return *ev.Result, nil
		case SearchEventError:
			return SearchResponse{}, errors.New(ev.Error)
		}
		// Other events are from a newer node: skipped.
	}
	if err := sc.Err(); err != nil {
		return SearchResponse{}, err
	}
	return SearchResponse{}, errors.New("the node closed the search stream without a result")
}
