package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// Shares, browsing and the network (README.md, "Sharing by trust and
// browsing"): GET /v1/library, POST /v1/library/shares, GET
// /v1/browse/{node}, GET /v1/network.

// Library is the node's own shares (GET /v1/library).
type Library struct {
	Shares []Share `json:"shares"`
	// Files and Bytes are the totals of every share.
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
	// Public is how many of the files are shared with everyone, and so in
	// the supernodes' index.
	Public int `json:"public"`
	// Scanning is set while a scan runs, Hashing then the file it hashes.
	Scanning bool   `json:"scanning"`
	Hashing  string `json:"hashing,omitempty"`
	// LastScan is when the last scan ended (absent before the first), with
	// what it did, or its error.
	LastScan  *ScanSummary `json:"last_scan,omitempty"`
	ScanError string       `json:"scan_error,omitempty"`
	// Scans counts the scans since the node started, HashedFiles and
	// HashedBytes what they hashed.
	Scans       int64 `json:"scans"`
	HashedFiles int64 `json:"hashed_files"`
	HashedBytes int64 `json:"hashed_bytes"`
	// List is the shared files by path, at most MaxLibraryFiles of them
	// (Truncated says there are more).
	List      []LibraryFile `json:"list"`
	Truncated bool          `json:"truncated,omitempty"`
}

// ScanSummary is what one scan did.
type ScanSummary struct {
	At        string `json:"at"` // RFC 3339
	Added     int    `json:"added"`
	Changed   int    `json:"changed"`
	Removed   int    `json:"removed"`
	Unchanged int    `json:"unchanged"`
	Skipped   int    `json:"skipped"`
	Hashed    int    `json:"hashed"`
}

// Share is one shared folder.
type Share struct {
	Dir string `json:"dir"`
	// Name is what other nodes see it as.
	Name string `json:"name"`
	// Visibility is everyone, contacts or trusted.
	Visibility string `json:"visibility"`
	// Available is false when the directory cannot be read now.
	Available bool  `json:"available"`
	Files     int   `json:"files"`
	Bytes     int64 `json:"bytes"`
}

// ShareSet adds, changes or (Visibility "none") stops sharing one folder
// while the node runs (POST /v1/library/shares). It lasts until the node
// stops: the config file and flags are what a restart shares.
type ShareSet struct {
	Dir        string `json:"dir"`
	Visibility string `json:"visibility"`
}

// BrowseResponse is what a peer shares with this node (GET
// /v1/browse/{node}?limit=N).
type BrowseResponse struct {
	Node    string         `json:"node"`
	Folders []BrowseFolder `json:"folders"`
	Files   []BrowseFile   `json:"files"`
	// Truncated: the peer shares more than the limit; Files has the first.
	Truncated bool    `json:"truncated,omitempty"`
	Pages     int     `json:"pages"`
	ElapsedMS float64 `json:"elapsed_ms"`
	// Path is how the peer was reached: "direct" or "relayed".
	Path string `json:"path,omitempty"`
}

// BrowseFolder is one folder of a peer.
type BrowseFolder struct {
	Name       string `json:"name"`
	Visibility string `json:"visibility"`
}

// BrowseFile is one file of a peer; canopy get takes its ID.
type BrowseFile struct {
	Folder string `json:"folder"`
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	ID     string `json:"id"`
	// Have: this node has the file already (it shares it, or downloaded
	// it and the file is still there).
	Have bool `json:"have,omitempty"`
}

// Network is the network as the node sees it (GET /v1/network).
type Network struct {
	// From is the supernode that answered (this node, when it is one).
	From       string             `json:"from"`
	Supernodes []NetworkSupernode `json:"supernodes"`
	Totals     NetworkTotals      `json:"totals"`
	// Contacts are the contacts online now, and the supernodes holding
	// their presence.
	Contacts []OnlineContact `json:"contacts"`
}

// NetworkSupernode is one ring member.
type NetworkSupernode struct {
	ID      string `json:"id"`
	Control string `json:"control,omitempty"`
	// Load is slot occupancy in percent; Slots free leaf slots.
	Load     int    `json:"load"`
	Leaves   int    `json:"leaves"`
	Slots    int    `json:"slots"`
	Files    int    `json:"files"`
	Version  string `json:"version,omitempty"`
	UptimeS  int64  `json:"uptime_s"`
	Attached bool   `json:"attached,omitempty"` // this node is one of its leaves
	Self     bool   `json:"self,omitempty"`     // this node
}

// NetworkTotals sum the ring.
type NetworkTotals struct {
	Supernodes int `json:"supernodes"`
	Leaves     int `json:"leaves"`
	Files      int `json:"files"`
}

// OnlineContact is a contact online now.
type OnlineContact struct {
	ID    string   `json:"id"`
	Name  string   `json:"name,omitempty"`
	Nick  string   `json:"nick,omitempty"`
	Trust string   `json:"trust"`
	Where []string `json:"where,omitempty"`
}

// Library returns the node's shares.
func (c *Client) Library(ctx context.Context) (Library, error) {
	var l Library
	_, err := c.do(ctx, http.MethodGet, "/v1/library", nil, &l)
	return l, err
}

// SetShare adds, changes or stops sharing one folder.
func (c *Client) SetShare(ctx context.Context, set ShareSet) (Library, error) {
	var l Library
	_, err := c.do(ctx, http.MethodPost, "/v1/library/shares", set, &l)
	return l, err
}

// Browse lists what node shares with this node, at most limit files (0:
// the node's default).
func (c *Client) Browse(ctx context.Context, node string, limit int) (BrowseResponse, error) {
	var b BrowseResponse
	path := "/v1/browse/" + url.PathEscape(node)
	if limit > 0 {
		path += "?limit=" + strconv.Itoa(limit)
	}
	_, err := c.do(ctx, http.MethodGet, path, nil, &b)
	return b, err
}

// Network returns the network as the node sees it.
func (c *Client) Network(ctx context.Context) (Network, error) {
	var n Network
	_, err := c.do(ctx, http.MethodGet, "/v1/network", nil, &n)
	return n, err
}
