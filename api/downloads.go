package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// The states of a Download (package downloads has their meaning).
const (
	DownloadQueued      = "queued"
	DownloadConnecting  = "connecting"
	DownloadDownloading = "downloading"
	DownloadPaused      = "paused"
	DownloadVerifying   = "verifying"
	DownloadDone        = "done"
	DownloadFailed      = "failed"
)

// The actions of Client.DownloadAction: POST /v1/downloads/{id}/{action}.
const (
	ActionPause  = "pause"
	ActionResume = "resume"
	ActionCancel = "cancel"
	ActionRetry  = "retry"
)

// DownloadRequest asks the node to download a file: POST /v1/downloads.
// The job is the node's: it goes on when the client leaves, and across
// restarts of the node.
type DownloadRequest struct {
	// ID is the content ID.
	ID string `json:"id"`
	// Name is the file name to save as; empty: the search hit's name, else
	// the sources' own.
	Name string `json:"name,omitempty"`
	// Out is an absolute directory; empty: the node's downloads directory.
	// The node creates a missing one only inside its downloads directory.
	Out string `json:"out,omitempty"`
	// Sources, if any, are the nodes to fetch from (at most 64); without
	// them the node looks the file up, as get does. Either way it looks
	// again each time the job starts.
	Sources []SourceRef `json:"sources,omitempty"`
}

// SourceRef names a source: its node ID and the supernodes through which
// it can be signalled.
type SourceRef struct {
	Node string   `json:"node"`
	Via  []string `json:"via,omitempty"`
}

// Download is a download job.
type Download struct {
	ID      int64  `json:"id"`
	Content string `json:"content"`
	Name    string `json:"name"`
	OutDir  string `json:"out_dir"`
	// State is one of the Download* constants; Reason says why a job
	// failed.
	State    string     `json:"state"`
	Reason   string     `json:"reason,omitempty"`
	Created  time.Time  `json:"created"`
	Updated  time.Time  `json:"updated"`
	Finished *time.Time `json:"finished,omitempty"`
	// Size is the file's size (the search hit's until the manifest is
	// known), Have the verified bytes held, Pieces of PieceCount.
	Size       int64 `json:"size"`
	Have       int64 `json:"have"`
	Pieces     int   `json:"pieces"`
	PieceCount int   `json:"piece_count"`
	// Rate is the bytes per second of the current run (0 when not running).
	Rate float64 `json:"rate"`
	// Sources are the sources of the current or last run.
	Sources []DownloadSource `json:"sources,omitempty"`
	// Part is the part file while unfinished; Path the file once done.
	Part string `json:"part,omitempty"`
	Path string `json:"path,omitempty"`
	// Fetched counts the verified bytes received over every run; Refetched
	// the part of it fetched more than once (lost in a crash, or bad on
	// disk).
	Fetched   int64 `json:"fetched"`
	Refetched int64 `json:"refetched"`
	// Existing is set by POST /v1/downloads when an unfinished job for the
	// same file and directory existed and is returned instead of a new one.
	Existing bool `json:"existing,omitempty"`
}

// DownloadSource is one source of a job and how it is reached.
type DownloadSource struct {
	Node string `json:"node"`
	// Path is "direct" or "relayed" once connected; Local and Remote the
	// ICE candidate types of the pair.
	Path      string  `json:"path,omitempty"`
	Local     string  `json:"local,omitempty"`
	Remote    string  `json:"remote,omitempty"`
	ConnectMS float64 `json:"connect_ms,omitempty"`
	// Bytes is the verified data it delivered in this run.
	Bytes int64 `json:"bytes"`
	// Error says why it was dropped; Bad that it sent bad data.
	Error string `json:"error,omitempty"`
	Bad   bool   `json:"bad,omitempty"`
	// Queued is the job's place in the source's upload queue (1 first)
	// while every upload slot there is taken; 0 when not queued.
	Queued int `json:"queued,omitempty"`
}

// DownloadList answers GET /v1/downloads: every job, oldest first.
type DownloadList struct {
	Downloads []Download `json:"downloads"`
}

// DownloadEventName is the SSE event name of GET /v1/downloads/events,
// whose every event's data is one Download as JSON: first every job as it
// is, then each change.
const DownloadEventName = "download"

// Enqueue asks the node to download a file and returns the job.
func (c *Client) Enqueue(ctx context.Context, req DownloadRequest) (Download, error) {
	var d Download
	_, err := c.do(ctx, http.MethodPost, "/v1/downloads", req, &d)
	return d, err
}

// Downloads lists the node's download jobs.
func (c *Client) Downloads(ctx context.Context) ([]Download, error) {
	var l DownloadList
	_, err := c.do(ctx, http.MethodGet, "/v1/downloads", nil, &l)
	return l.Downloads, err
}

// Download returns one job.
func (c *Client) Download(ctx context.Context, id int64) (Download, error) {
	var d Download
	_, err := c.do(ctx, http.MethodGet, "/v1/downloads/"+strconv.FormatInt(id, 10), nil, &d)
	return d, err
}

// DownloadAction pauses, resumes, cancels or retries a job (Action*).
func (c *Client) DownloadAction(ctx context.Context, id int64, action string) (Download, error) {
	var d Download
	_, err := c.do(ctx, http.MethodPost, "/v1/downloads/"+strconv.FormatInt(id, 10)+"/"+url.PathEscape(action), nil, &d)
	return d, err
}

// maxEventBytes bounds one event of the stream.
const maxEventBytes = 1 << 20

// FollowDownloads reads the node's event stream of job changes (only job
// id's, if id is not 0) and calls fn with each, until fn returns false (then
// it returns nil), ctx ends, or the stream breaks.
func (c *Client) FollowDownloads(ctx context.Context, id int64, fn func(Download) bool) error {
	path := "/v1/downloads/events"
	if id != 0 {
		path += "?id=" + strconv.FormatInt(id, 10)
	}
	return follow(ctx, c, path, fn)
}

// follow reads the server-sent events at path, decoding each event's data
// as a T, and calls fn with each until fn returns false (nil), ctx ends
// (its error) or the stream does.
func follow[T any](ctx context.Context, c *Client, path string, fn func(T) bool) error {
	resp, err := c.do(ctx, http.MethodGet, path, nil, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), maxEventBytes)
	var data bytes.Buffer
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) == 0:
			if data.Len() == 0 {
				continue
			}
			var d T
			if err := json.Unmarshal(data.Bytes(), &d); err != nil {
				return fmt.Errorf("bad event from node: %w", err)
			}
			data.Reset()
			if !fn(d) {
				return nil
			}
		case bytes.HasPrefix(line, []byte("data:")):
			if data.Len()+len(line) > maxEventBytes {
				return errors.New("event from node too large")
			}
			data.Write(bytes.TrimPrefix(bytes.TrimPrefix(line, []byte("data:")), []byte(" ")))
		}
		// event:, id:, retry: and comments (keep-alives) need nothing.
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return errors.New("the node closed the event stream")
}
