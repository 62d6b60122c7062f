package api

import (
	"context"
	"net/http"
	"time"
)

// The uploads: what this node serves now and who waits for a slot.
//
//	GET /v1/uploads           Uploads
//	GET /v1/uploads/events    text/event-stream of Uploads (UploadsEventName)

// UploadsEventName is the SSE event name of GET /v1/uploads/events: the
// uploads at once, then each time they change (checked every second; the
// bytes of a running upload are a change).
const UploadsEventName = "uploads"

// Uploads is the node's upload slots and queue.
type Uploads struct {
	// Slots is how many uploads may run at once (--max-uploads), PerPeer
	// how many of them one peer may hold, MaxQueue how many requests may
	// wait.
	Slots    int `json:"slots"`
	PerPeer  int `json:"per_peer"`
	MaxQueue int `json:"max_queue"`
	// Active are the uploads holding a slot, the oldest first.
	Active []Upload `json:"active"`
	// Queue are the requests waiting, in the order they will be served.
	Queue []QueuedUpload `json:"queue"`
	// UploadedDirect and UploadedRelayed count the bytes served since the
	// node started.
	UploadedDirect  int64 `json:"uploaded_direct"`
	UploadedRelayed int64 `json:"uploaded_relayed"`
}

// Upload is one upload in progress.
type Upload struct {
	// Peer is the downloader; Contact its name when it is a contact.
	Peer    string `json:"peer"`
	Contact string `json:"contact,omitempty"`
	Content string `json:"content"`
	Name    string `json:"name"`
	Size    int64  `json:"size"`
	// Sent counts the bytes served so far. A downloader with several
	// sources asks each for some pieces only, so it may end below Size.
	Sent    int64     `json:"sent"`
	Started time.Time `json:"started"`
	// Path is "direct" or "relayed"; Local and Remote the ICE candidate
	// types of the pair.
	Path   string `json:"path"`
	Local  string `json:"local,omitempty"`
	Remote string `json:"remote,omitempty"`
}

// QueuedUpload is one request waiting for an upload slot.
type QueuedUpload struct {
	Peer     string `json:"peer"`
	Contact  string `json:"contact,omitempty"`
	Content  string `json:"content"`
	Position int    `json:"position"`
	// Since is when it first asked, LastAsked when it last did: a queued
	// downloader asks again every 15 s, and one that stops asking leaves
	// the queue.
	Since     time.Time `json:"since"`
	LastAsked time.Time `json:"last_asked"`
}

// Uploads returns the node's uploads and upload queue.
func (c *Client) Uploads(ctx context.Context) (Uploads, error) {
	var u Uploads
	_, err := c.do(ctx, http.MethodGet, "/v1/uploads", nil, &u)
	return u, err
}

// FollowUploads calls fn with the uploads at once and then with each
// change, until fn returns false (nil), ctx ends (its error) or the node
// closes the stream.
func (c *Client) FollowUploads(ctx context.Context, fn func(Uploads) bool) error {
	return follow(ctx, c, "/v1/uploads/events", fn)
}
