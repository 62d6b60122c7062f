// Package api is the node's local HTTP+JSON API: the types both sides share and
// the client the command line uses. The server lives in package node. The API
// listens on loopback only; it is how the user's own tools drive their node.
package api

import "time"

// DefaultAddr is where a node serves its local API unless told otherwise.
const DefaultAddr = "127.0.0.1:7375"

// DefaultSearchTimeout is how long a search collects hits when the request
// names no timeout: a query crosses the ring in well under a second, and a
// person waits a few seconds at most.
const DefaultSearchTimeout = 3 * time.Second

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
	// NAT is the NAT behaviour and reachability (also `canopy natcheck`).
	NAT *NAT `json:"nat,omitempty"`
	// People counts what the people protocol refused and held back.
	People *PeopleCounters `json:"people,omitempty"`
	// Transfers are the node's transfer counters and bandwidth limits.
	Transfers *Transfers `json:"transfers,omitempty"`
}

// Transfers sums up the node's uploads and downloads since it started.
type Transfers struct {
	// BytesSent and BytesReceived count piece data sent, and verified
	// piece data received.
	BytesSent     int64 `json:"bytes_sent"`
	BytesReceived int64 `json:"bytes_received"`
	// UpLimit and DownLimit are the bandwidth limits, bytes per second
	// (0: none).
	UpLimit   float64 `json:"up_limit"`
	DownLimit float64 `json:"down_limit"`
	// UploadsRefused counts offers refused (busy, not shared, limits).
	UploadsRefused int64 `json:"uploads_refused"`
	// Direct and Relayed count the connections whose data channel opened,
	// by path.
	Direct  int64 `json:"direct"`
	Relayed int64 `json:"relayed"`
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
	// TimeoutMS is how long to collect hits, in milliseconds (0:
	// DefaultSearchTimeout).
	TimeoutMS int `json:"timeout_ms,omitempty"`
	Limit     int `json:"limit,omitempty"`
	// MinSize and MaxSize bound the files' sizes in bytes (MaxSize 0:
	// none); Ext lists the extensions wanted ("mp3", "flac"; empty: any).
	// Hits from nodes the user blocked are never shown.
	MinSize int64    `json:"min_size,omitempty"`
	MaxSize int64    `json:"max_size,omitempty"`
	Ext     []string `json:"ext,omitempty"`
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
	// Connections say how each source was reached (done only).
	Connections []Connection `json:"connections,omitempty"`
	Error       string       `json:"error,omitempty"`
}

// Connection is how a download reached one source.
type Connection struct {
	// Source is the source's node ID.
	Source string `json:"source"`
	// Path is "direct" (leaf to leaf, through NATs if any) or "relayed"
	// (through a supernode's TURN relay).
	Path string `json:"path"`
	// Local and Remote are the ICE candidate types of the selected pair:
	// host, srflx, prflx or relay.
	Local  string `json:"local"`
	Remote string `json:"remote"`
	// ConnectMS is the time from the first signal to the open data channel.
	ConnectMS float64 `json:"connect_ms"`
	// Bytes is the verified data the source delivered.
	Bytes int64 `json:"bytes"`
}

// NAT is what the node knows of its NAT, for `canopy natcheck` and status.
type NAT struct {
	// Kind is a familiar name: "public/no NAT", "full cone", "restricted
	// cone", "port-restricted cone", "symmetric", "UDP blocked", "unknown".
	Kind string `json:"kind"`
	// Mapping and Filtering are the RFC 4787 behaviours.
	Mapping   string `json:"mapping"`
	Filtering string `json:"filtering"`
	// Public is the address the STUN servers saw (host:port).
	Public string `json:"public,omitempty"`
	// Local is the address the probes were sent from.
	Local string `json:"local,omitempty"`
	// Evidence lists each test and what it saw.
	Evidence []string `json:"evidence,omitempty"`
	// CheckedAt is when the discovery ran; zero before the first.
	CheckedAt time.Time `json:"checked_at"`
	// Error says why discovery could not run (no supernode with STUN yet).
	Error string `json:"error,omitempty"`
	// PortMap is the port mapping state ("nat-pmp 203.0.113.5:41000 until …",
	// "none: …").
	PortMap string `json:"port_map,omitempty"`
	// Reachability is the dial-back verdict.
	Reachability Reachability `json:"reachability"`
}

// Error is the body of every non-2xx answer.
type Error struct {
	Error string `json:"error"`
}
