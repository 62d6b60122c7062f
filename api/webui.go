package api

import (
	"context"
	"net/http"
	"time"
)

// The web UI's endpoints (package webui serves the pages themselves):
//
//	POST /v1/ui/code            → UICode: a one-time login link (canopy ui)
//	GET  /v1/status/events      text/event-stream of Status (StatusEventName)
//	GET  /v1/library/events     text/event-stream of Library (LibraryEventName)
//	POST /v1/library/rescan     → Library: a scan of the shared folders starts
//	GET  /v1/config             Settings: the effective settings

// UICode is a one-time login code for the web UI.
type UICode struct {
	// URL is the link to open: the login page with the code. It works
	// once, until Expires.
	URL     string    `json:"url"`
	Expires time.Time `json:"expires"`
}

// StatusEventName is the SSE event name of GET /v1/status/events, whose
// every event's data is one Status: the status at once, then again each
// time it changes (checked every second), and at least every 10 s.
const StatusEventName = "status"

// LibraryEventName is the SSE event name of GET /v1/library/events: the
// library at once, then each time it changes.
const LibraryEventName = "library"

// MaxLibraryFiles bounds the files a Library lists (the counts cover
// every file).
const MaxLibraryFiles = 1000

// LibraryFile is one shared file.
type LibraryFile struct {
	Path string `json:"path"`
	Name string `json:"name"`
	Size int64  `json:"size"`
	ID   string `json:"id"`
}

// Settings is the node's effective configuration, as `canopy config show
// --json` prints it.
type Settings struct {
	// File is the config file consulted; FileFound says it existed.
	File      string    `json:"file"`
	FileFound bool      `json:"file_found"`
	Settings  []Setting `json:"settings"`
}

// Setting is one setting's value and where it came from.
type Setting struct {
	Key   string `json:"key"`
	Flag  string `json:"flag,omitempty"`
	Env   string `json:"env,omitempty"`
	Value any    `json:"value"`
	// Source is flag, env, file or default (or node, for a node that its
	// program started without saying); Where names the flag, the variable
	// or the file.
	Source string `json:"source"`
	Where  string `json:"where,omitempty"`
	// Default says what an empty default means (derived values).
	Default string `json:"default_note,omitempty"`
}

// UICode asks the node for a one-time login link to its web UI.
func (c *Client) UICode(ctx context.Context) (UICode, error) {
	var code UICode
	_, err := c.do(ctx, http.MethodPost, "/v1/ui/code", struct{}{}, &code)
	return code, err
}
