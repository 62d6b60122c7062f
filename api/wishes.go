package api

import (
	"context"
	"net/http"
	"strconv"
	"time"
)

// The wishes: standing searches whose new matches the node downloads.
//
//	GET  /v1/wishes              WishList
//	POST /v1/wishes              WishAdd → Wish
//	POST /v1/wishes/{id}/remove  → {}
//	GET  /v1/wishes/events       text/event-stream of WishList (WishesEventName)

// WishesEventName is the SSE event name of GET /v1/wishes/events: the
// wishes at once, then each time they change.
const WishesEventName = "wishes"

// WishAdd adds a wish.
type WishAdd struct {
	Words string `json:"words"`
	// MinSize and MaxSize bound the files' sizes in bytes (MaxSize 0:
	// none); Ext lists the extensions wanted (empty: any).
	MinSize int64    `json:"min_size,omitempty"`
	MaxSize int64    `json:"max_size,omitempty"`
	Ext     []string `json:"ext,omitempty"`
	// To is the directory its downloads go to (empty: the node's
	// downloads directory; as a download's out, inside it or new).
	To string `json:"to,omitempty"`
}

// WishList is the node's wishes and their schedule.
type WishList struct {
	Wishes []Wish `json:"wishes"`
	// IntervalS is the average time between two wish searches, in
	// seconds; Burst how many may run back to back.
	IntervalS float64 `json:"interval_s"`
	Burst     int     `json:"burst"`
}

// Wish is one standing search and what it found.
type Wish struct {
	ID        int64      `json:"id"`
	Words     string     `json:"words"`
	MinSize   int64      `json:"min_size,omitempty"`
	MaxSize   int64      `json:"max_size,omitempty"`
	Ext       []string   `json:"ext,omitempty"`
	To        string     `json:"to"`
	Created   time.Time  `json:"created"`
	LastRun   *time.Time `json:"last_run,omitempty"`
	Runs      int        `json:"runs"`
	LastError string     `json:"last_error,omitempty"`
	Found     []WishHit  `json:"found"`
}

// WishHit is one match a wish downloaded, as the download job Job.
type WishHit struct {
	Content string    `json:"content"`
	Name    string    `json:"name"`
	Size    int64     `json:"size"`
	Job     int64     `json:"job"`
	At      time.Time `json:"at"`
}

// Wishes lists the node's wishes.
func (c *Client) Wishes(ctx context.Context) (WishList, error) {
	var l WishList
	_, err := c.do(ctx, http.MethodGet, "/v1/wishes", nil, &l)
	return l, err
}

// AddWish adds a wish; it runs as soon as the node's budget allows.
func (c *Client) AddWish(ctx context.Context, add WishAdd) (Wish, error) {
	var w Wish
	_, err := c.do(ctx, http.MethodPost, "/v1/wishes", add, &w)
	return w, err
}

// RemoveWish forgets a wish; its downloads go on.
func (c *Client) RemoveWish(ctx context.Context, id int64) error {
	var none struct{}
	_, err := c.do(ctx, http.MethodPost, "/v1/wishes/"+strconv.FormatInt(id, 10)+"/remove", nil, &none)
	return err
}
