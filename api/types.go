// Package api is the node's local HTTP+JSON API: the types both sides share and
// the client the command line uses. The server lives in package node. The API
// listens on loopback only; it is how the user's own tools drive their node.
package api

import "time"

// DefaultAddr is where a node serves its local API unless told otherwise.
const DefaultAddr = "127.0.0.1:7375"

// Status describes a running node.
type Status struct {
	ID      string `json:"id"`
	Role    string `json:"role"`
	Version string `json:"version"`
	// Control is the address the node accepts control links on.
	Control string `json:"control"`
	Uptime  string `json:"uptime"`
	// Supernodes are the supernodes the node's leaf side is attached to.
	Supernodes []Attachment `json:"supernodes"`
	// Ring lists the ring members (supernode role only).
	Ring []RingMember `json:"ring,omitempty"`
	// Leaves is how many leaves are attached (supernode role only).
	Leaves int `json:"leaves"`
	// IndexFiles is how many files the supernode's partial index holds.
	IndexFiles int `json:"index_files"`
	// SharedFiles is how many files this node shares.
	SharedFiles int `json:"shared_files"`
	// SharedBytes is their total size.
	SharedBytes int64 `json:"shared_bytes"`
	// Policy says which promotion policy the node loaded.
	Policy string `json:"policy"`
	// Promotion explains the node's role: the policy's last decision and
	// each check behind it.
	Promotion *Promotion `json:"promotion,omitempty"`
}

// Promotion is the role decision, in words, like gtk-gnutella's list of
// ultrapeer checks.
type Promotion struct {
	// Consent is the --supernode setting: auto, never or always.
	Consent string `json:"consent"`
	// Action is the last decision: stay, promote or demote.
	Action string `json:"action"`
	// Summary is the decision in one sentence.
	Summary string `json:"summary"`
	// Checks are the rules evaluated, in order, each with ✓ or ✗.
	Checks    []string  `json:"checks"`
	DecidedAt time.Time `json:"decided_at"`
	// Reachability is the dial-back verdict and its evidence.
	Reachability Reachability `json:"reachability"`
	// Demotions is the number of demotions in a row (for the back-off).
	Demotions int `json:"demotions"`
	// Switches are the role changes of this run, oldest first.
	Switches []RoleSwitch `json:"switches,omitempty"`
}

// Reachability says whether other nodes can reach this one.
type Reachability struct {
	Verdict  string   `json:"verdict"`
	Evidence []string `json:"evidence,omitempty"`
	// ProbesReceived counts supernodes' dial-backs that reached this node.
	ProbesReceived int `json:"probes_received"`
}

// RoleSwitch is one role change.
type RoleSwitch struct {
	At     time.Time `json:"at"`
	To     string    `json:"to"`
	Reason string    `json:"reason"`
}

// Attachment is a link from the node's leaf side to a supernode.
type Attachment struct {
	ID      string    `json:"id"`
	Control string    `json:"control"`
	Since   time.Time `json:"since"`
	// Files is how many of our files that supernode holds in its index.
	Files      int    `json:"files"`
	IndexError string `json:"index_error,omitempty"`
}

// RingMember is a supernode as the gossip ring describes it.
type RingMember struct {
	ID      string `json:"id"`
	Control string `json:"control"`
	Gossip  string `json:"gossip"`
	Leaves  int    `json:"leaves"`
	Slots   int    `json:"free_slots"`
	Load    int    `json:"load"`
	// Linked says this node has a control link to the member.
	Linked bool `json:"linked"`
	Self   bool `json:"self,omitempty"`
}

// SearchRequest asks the network for files.
type SearchRequest struct {
	Words string `json:"words"`
	// Timeout is how long to collect hits, in milliseconds (default 3000).
	TimeoutMS int `json:"timeout_ms,omitempty"`
	Limit     int `json:"limit,omitempty"`
}

// SearchResponse holds the hits of a search.
type SearchResponse struct {
	Hits []Hit `json:"hits"`
	// FirstHitMS is the time from sending the query to the first hit (-1: none).
	FirstHitMS float64 `json:"first_hit_ms"`
	ElapsedMS  float64 `json:"elapsed_ms"`
}

// Hit is one file found.
type Hit struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Size int64  `json:"size"`
	// Sources is how many other leaves offer the file.
	Sources     int      `json:"sources"`
	SourceNodes []string `json:"source_nodes"`
	// Local says this node shares the file itself.
	Local bool `json:"local,omitempty"`
}

// GetRequest asks the node to download a file into Out (an absolute directory).
type GetRequest struct {
	ID  string `json:"id"`
	Out string `json:"out"`
}

// GetEvent is one line of the NDJSON stream that answers a GetRequest.
type GetEvent struct {
	// Event is "progress", "done" or "error".
	Event string `json:"event"`
	Name  string `json:"name,omitempty"`
	Have  int64  `json:"have,omitempty"`
	Total int64  `json:"total,omitempty"`
	// Rate is the current download rate in bytes per second.
	Rate    float64 `json:"rate,omitempty"`
	Sources int     `json:"sources,omitempty"`
	Path    string  `json:"path,omitempty"`
	// Seconds is the download's duration (done only).
	Seconds float64 `json:"seconds,omitempty"`
	// BadSources lists sources dropped for sending bad data (done only).
	BadSources []string `json:"bad_sources,omitempty"`
	Error      string   `json:"error,omitempty"`
}

// Error is the body of every non-2xx answer.
type Error struct {
	Error string `json:"error"`
}
