package wire

import (
	"encoding/binary"
	"fmt"

	"github.com/canopy-p2p/canopy/identity"
)

// Type says what an envelope's payload is. Each type has exactly one body type,
// listed beside it.
type Type uint8

// Message types. Numbers are part of the protocol: never reuse one.
const (
	// Control links (TLS): leaf↔supernode and supernode↔supernode.
	TypeHello          Type = 1  // Hello: first message of the dialling side
	TypeWelcome        Type = 2  // Welcome: the accepting side's answer
	TypeRefuse         Type = 3  // Refuse: not accepted, with reason and alternatives
	TypeIndexUpdate    Type = 4  // IndexUpdate: a leaf's shared files, full or a delta
	TypeIndexAck       Type = 5  // IndexAck: what the supernode holds after an update
	TypeQuery          Type = 6  // Query: a keyword search; the envelope ID is the query ID
	TypeQueryHit       Type = 7  // QueryHit: results for the query whose ID the envelope carries
	TypeSignal         Type = 8  // Signal: WebRTC signalling between two leaves, relayed
	TypePing           Type = 9  // Ping: keep-alive and round-trip probe
	TypePong           Type = 10 // Pong: answer to Ping, same envelope ID
	TypeBye            Type = 11 // Bye: the sender closes the link, with the reason
	TypeGuidance       Type = 12 // Guidance: a supernode's view of the ring, for its leaves
	TypeDialBack       Type = 13 // DialBack: a leaf asks its supernode to dial it back
	TypeDialBackResult Type = 14 // DialBackResult: what the dial-back found
	TypeHandover       Type = 15 // Handover: the supernode is demoting; move to these
	TypeICEServers     Type = 16 // ICEServers: the supernode's STUN/TURN services and the leaf's credentials
	TypeStepIn         Type = 17 // StepIn: the last supernode is leaving and asks this leaf to take over

	// Data channels (leaf↔leaf transfers).
	TypeManifestRequest Type = 32 // ManifestRequest
	TypeManifest        Type = 33 // Manifest: part of a file's piece hash list
	TypePieceRequest    Type = 34 // PieceRequest
	TypePieceData       Type = 35 // PieceData: one block of a piece
	TypeTransferError   Type = 36 // TransferError
)

var typeNames = map[Type]string{
	TypeHello: "hello", TypeWelcome: "welcome", TypeRefuse: "refuse",
	TypeIndexUpdate: "index-update", TypeIndexAck: "index-ack", TypeQuery: "query",
	TypeQueryHit: "query-hit", TypeSignal: "signal", TypePing: "ping", TypePong: "pong",
	TypeBye: "bye", TypeGuidance: "guidance", TypeDialBack: "dial-back",
	TypeDialBackResult: "dial-back-result", TypeHandover: "handover", TypeICEServers: "ice-servers", TypeStepIn: "step-in", TypeManifestRequest: "manifest-request", TypeManifest: "manifest",
	TypePieceRequest: "piece-request", TypePieceData: "piece-data", TypeTransferError: "transfer-error",
}

// String names the type for logs.
func (t Type) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type-%d", uint8(t))
}

// Known reports whether this code knows the type.
func (t Type) Known() bool { _, ok := typeNames[t]; return ok }

// MaxListLen bounds every list in every body (files in one index update, hits in
// one batch, sources of one hit, supernodes in a welcome).
const MaxListLen = 4096

// Role is what a node is on a link.
type Role uint8

// Roles.
const (
	RoleLeaf      Role = 1
	RoleSupernode Role = 2
	// RoleProbe is a supernode dialling a leaf back to check that the leaf is
	// reachable from outside; the link closes after the welcome.
	RoleProbe Role = 3
)

func (r Role) String() string {
	switch r {
	case RoleLeaf:
		return "leaf"
	case RoleSupernode:
		return "supernode"
	case RoleProbe:
		return "probe"
	}
	return fmt.Sprintf("role-%d", uint8(r))
}

// PeerInfo tells how to reach a supernode.
type PeerInfo struct {
	ID      identity.NodeID `cbor:"1,keyasint"`
	Control string          `cbor:"2,keyasint"` // TLS control address, host:port
	// Load is the supernode's slot occupancy in percent (0–100) and Slots
	// its free leaf slots, as its gossip metadata last said; a leaf ranks
	// candidates by them. Both zero when unknown (Known false).
	Load  uint8  `cbor:"3,keyasint,omitempty"`
	Slots uint16 `cbor:"4,keyasint,omitempty"`
	Known bool   `cbor:"5,keyasint,omitempty"`
}

// Hello opens a control link. The node ID is not in it: TLS proves it.
type Hello struct {
	Role     Role   `cbor:"1,keyasint"`
	Software string `cbor:"2,keyasint"`
	// Control is where a supernode accepts control links (empty for a leaf).
	Control string `cbor:"3,keyasint,omitempty"`
	// Gossip is a supernode's memberlist address (empty for a leaf).
	Gossip string `cbor:"4,keyasint,omitempty"`
	// Candidate is set by a leaf whose user allows it to become a supernode
	// (consent auto or always). Its supernodes may then name it as a
	// successor, once a dial-back has shown that it is reachable.
	Candidate bool `cbor:"5,keyasint,omitempty"`
	// Supernodes are, from a leaf, the other supernodes it is attached to
	// (Gnutella's X-Try-Ultrapeers in the other direction): a supernode that
	// does not have them in its ring joins them, which heals a ring split by
	// an emergency election whose candidates did not know each other.
	Supernodes []PeerInfo `cbor:"6,keyasint,omitempty"`
	// Successors are, from a leaf, the successors it was told of when its
	// last supernode went and has not attached to since: nodes that may have
	// stepped in. The orphans that ranked a successor first are the ones
	// that know of it; if they all attach elsewhere before it promotes, it
	// would be a supernode no one else knows of. A supernode that receives
	// them tries to join any that are not in its ring (see supernode's
	// RingHints).
	Successors []PeerInfo `cbor:"7,keyasint,omitempty"`
}

// Welcome accepts a control link.
type Welcome struct {
	Role     Role   `cbor:"1,keyasint"`
	Software string `cbor:"2,keyasint"`
	// Gossip is the accepting supernode's memberlist address, for a supernode
	// that wants to join the ring through it.
	Gossip string `cbor:"3,keyasint,omitempty"`
	// Supernodes are other ring members a leaf may attach to as well.
	Supernodes []PeerInfo `cbor:"4,keyasint,omitempty"`
	// Observed is the dialler's address as the acceptor sees it.
	Observed string `cbor:"5,keyasint,omitempty"`
}

// Refuse declines a control link.
type Refuse struct {
	Reason     string     `cbor:"1,keyasint"`
	Supernodes []PeerInfo `cbor:"2,keyasint,omitempty"`
}

// IndexFile is one shared file as the index knows it.
type IndexFile struct {
	ID   [32]byte `cbor:"1,keyasint"`
	Name string   `cbor:"2,keyasint"`
	Size int64    `cbor:"3,keyasint"`
}

// IndexUpdate carries a leaf's shared files to a supernode. A full upload is a
// run of updates whose first has Reset set; a delta adds and removes entries.
// Rev is the leaf library's revision after the update is applied.
type IndexUpdate struct {
	Reset  bool        `cbor:"1,keyasint,omitempty"`
	Add    []IndexFile `cbor:"2,keyasint,omitempty"`
	Remove []IndexFile `cbor:"3,keyasint,omitempty"`
	Rev    int64       `cbor:"4,keyasint"`
	// More says further updates of the same revision follow.
	More bool `cbor:"5,keyasint,omitempty"`
}

// IndexAck confirms an index update.
type IndexAck struct {
	Rev   int64  `cbor:"1,keyasint"`
	Files int    `cbor:"2,keyasint"`
	Error string `cbor:"3,keyasint,omitempty"`
}

// Query is a keyword search, or with Content set a look-up of the sources of
// one file. The envelope's ID identifies it everywhere; TTL and Hops bound how
// far it travels.
type Query struct {
	Words   string   `cbor:"1,keyasint,omitempty"`
	Limit   int      `cbor:"2,keyasint,omitempty"`
	Content [32]byte `cbor:"3,keyasint,omitempty"`
}

// MaxQueryWords bounds the text of a query in bytes.
const MaxQueryWords = 256

// Source is a leaf that shares a file and the supernodes through which a
// downloader can signal it.
type Source struct {
	Node identity.NodeID   `cbor:"1,keyasint"`
	Via  []identity.NodeID `cbor:"2,keyasint"`
	// Name is the name Node itself shares the file under, as its
	// supernode's index holds it (at most MaxIndexName bytes); empty from
	// a supernode older than the field. Hit.Name is a count of owners,
	// which sybils can win; this is one owner's own word, which no number
	// of others changes. A receiver bounds and cleans it before showing it
	// (textsafe.Bound).
	Name string `cbor:"3,keyasint,omitempty"`
}

// Hit is one file found by a query.
type Hit struct {
	ID      [32]byte `cbor:"1,keyasint"`
	Name    string   `cbor:"2,keyasint"`
	Size    int64    `cbor:"3,keyasint"`
	Sources []Source `cbor:"4,keyasint"`
}

// QueryHit carries results back toward a query's origin; the envelope ID is the
// query's ID.
type QueryHit struct {
	From identity.NodeID `cbor:"1,keyasint"` // the supernode that answered
	Hits []Hit           `cbor:"2,keyasint"`
	// RetryAfterMs, when set, is a supernode's "slow down": it did not run
	// the query because the leaf is over its query rate, and will take one
	// again after this many milliseconds. Such an answer has no hits. An
	// older leaf ignores the field and sees an empty answer.
	RetryAfterMs uint32 `cbor:"3,keyasint,omitempty"`
}

// SignalKind says what a Signal carries.
type SignalKind uint8

// Signal kinds.
const (
	SignalOffer     SignalKind = 1
	SignalAnswer    SignalKind = 2
	SignalCandidate SignalKind = 3
	SignalClose     SignalKind = 4
)

// Signal carries WebRTC session description or an ICE candidate from one leaf
// to another through their supernodes. Supernodes overwrite From with the
// authenticated sender; in addition the sender signs the session data with its
// own key so that the receiver trusts it end to end.
type Signal struct {
	Session [16]byte        `cbor:"1,keyasint"`
	From    identity.NodeID `cbor:"2,keyasint"`
	// FromVia are the supernodes through which an answer reaches the sender.
	FromVia []identity.NodeID `cbor:"3,keyasint,omitempty"`
	To      identity.NodeID   `cbor:"4,keyasint"`
	// Via is the supernode the recipient is attached to.
	Via  identity.NodeID `cbor:"5,keyasint"`
	Kind SignalKind      `cbor:"6,keyasint"`
	Data string          `cbor:"7,keyasint"` // SDP or candidate JSON
	// Content is the file the session is about (offers only).
	Content [32]byte `cbor:"8,keyasint,omitempty"`
	PubKey  []byte   `cbor:"9,keyasint,omitempty"`
	Sig     []byte   `cbor:"10,keyasint,omitempty"`
	// Time is when the sender signed the signal, in Unix milliseconds. It is
	// signed, so that a receiver can refuse an offer replayed after its
	// window (see transfer.DefaultOfferWindow); the session ID is the nonce
	// that makes each offer unique within it.
	Time int64 `cbor:"11,keyasint,omitempty"`
	// Name is, in an answer, the uploader's own name for the content: the
	// name of the file it serves from. It is first-hand (signed by the
	// sharer), unlike a hit's name, which supernodes choose among the names
	// of every owner. A receiver bounds it to MaxSignalNameBytes.
	Name string `cbor:"12,keyasint,omitempty"`
}

// MaxSignalNameBytes bounds the Name of an answer a receiver keeps: 255
// bytes, the index's bound on names (index.DefaultMaxNameBytes, NAME_MAX of
// the common file systems).
const MaxSignalNameBytes = MaxIndexName

// SignedBytes is what the sender of a signal signs: everything that matters to
// the receiver, with a domain tag.
func (s *Signal) SignedBytes() []byte {
	b := make([]byte, 0, 128+len(s.Name)+len(s.Data))
	// v2 added Time: a v1 signature does not cover it, so the tag changed
	// rather than letting an old signature vouch for any time.
	b = append(b, "canopy signal v2\x00"...)
	b = append(b, s.Session[:]...)
	b = append(b, s.From[:]...)
	b = append(b, s.To[:]...)
	b = append(b, byte(s.Kind))
	b = binary.BigEndian.AppendUint64(b, uint64(s.Time))
	b = append(b, s.Content[:]...)
	// Length-prefixed, so that no byte moves between Name and Data.
	b = binary.BigEndian.AppendUint32(b, uint32(len(s.Name)))
	b = append(b, s.Name...)
	b = append(b, s.Data...)
	return b
}

// Guidance is a supernode's view of the ring, sent to its leaves when they
// attach and whenever it changes: Gnutella's "ultrapeer needed", with the
// figures behind it, so that each leaf runs the promotion policy on the same
// view the supernodes have.
type Guidance struct {
	// Supernodes is the number of live ring members, the sender included.
	Supernodes int `cbor:"1,keyasint"`
	// Leaves is the sum of the leaf links the members report.
	Leaves int `cbor:"2,keyasint"`
	// FreeSlots is the sum of the free leaf slots the members advertise.
	FreeSlots int `cbor:"3,keyasint"`
	// LoadPermille is the members' mean slot occupancy, in thousandths.
	LoadPermille int `cbor:"4,keyasint"`
	// Needed is the sender's answer to "does the ring need another
	// supernode?" (promotion.Needed), with the rule behind it in Why.
	Needed bool   `cbor:"5,keyasint,omitempty"`
	Why    string `cbor:"6,keyasint,omitempty"`
	// Supernodes to attach to, with their load.
	Peers []PeerInfo `cbor:"7,keyasint,omitempty"`
	// Successors are leaves of the sender that are reachable and willing to
	// become supernodes, in the order they should step in should every
	// supernode vanish (the emergency election).
	Successors []PeerInfo `cbor:"8,keyasint,omitempty"`
}

// DialBack asks the supernode to dial the leaf back at the port of Control,
// on the address the supernode sees the leaf's link come from: proof that
// the leaf accepts connections from outside. The leaf's advertised host is
// not used, so that a leaf cannot point its supernode at a third party.
type DialBack struct {
	Control string `cbor:"1,keyasint"`
}

// DialBackResult answers a DialBack.
type DialBackResult struct {
	// Addr is the address the supernode dialled.
	Addr string `cbor:"1,keyasint"`
	// OK is true when the dial and the authenticated handshake succeeded.
	OK bool `cbor:"2,keyasint,omitempty"`
	// Error says why not.
	Error string `cbor:"3,keyasint,omitempty"`
}

// Handover tells a leaf that its supernode is demoting: it should attach to
// one of Supernodes, then close this link. The supernode leaves the ring only
// when its leaves have gone, so no leaf is left without a supernode between.
type Handover struct {
	Reason     string     `cbor:"1,keyasint,omitempty"`
	Supernodes []PeerInfo `cbor:"2,keyasint,omitempty"`
}

// StepIn tells a leaf that its supernode, the last one in the ring, is
// stopping gracefully and has chosen it to take over: the leaf promotes (if
// its own policy agrees, promotion.Input.AskedToStepIn), the supernode waits
// until it has joined the ring and then hands every leaf over to it with
// Handover. A leaf heeds it only from a supernode whose latest Guidance
// showed a ring of one.
type StepIn struct {
	Reason string `cbor:"1,keyasint,omitempty"`
}

// ICEServer is a STUN or TURN server for WebRTC's ICE, with the leaf's
// credentials for a TURN relay.
type ICEServer struct {
	URLs       []string `cbor:"1,keyasint"`
	Username   string   `cbor:"2,keyasint,omitempty"`
	Credential string   `cbor:"3,keyasint,omitempty"`
	// Expires is when the credentials stop working (Unix seconds; 0: never).
	Expires int64 `cbor:"4,keyasint,omitempty"`
}

// ICEServers tells a leaf which STUN and TURN services its supernode runs,
// with TURN credentials issued to that leaf alone and limited in time; the
// supernode sends them when the leaf attaches and again before they expire.
type ICEServers struct {
	Servers []ICEServer `cbor:"1,keyasint,omitempty"`
	// Discovery is the host:port of the supernode's STUN service for NAT
	// behaviour discovery: an RFC 5780 server when the supernode has two
	// addresses, otherwise a plain binding service.
	Discovery string `cbor:"2,keyasint,omitempty"`
}

// Ping probes a link.
type Ping struct {
	Nonce uint64 `cbor:"1,keyasint"`
}

// Pong answers a Ping.
type Pong struct {
	Nonce uint64 `cbor:"1,keyasint"`
}

// Bye closes a link with a reason.
type Bye struct {
	Reason string `cbor:"1,keyasint"`
}

// ManifestRequest asks for part of a file's piece hash list.
type ManifestRequest struct {
	Content [32]byte `cbor:"1,keyasint"`
	First   uint32   `cbor:"2,keyasint"`
	Count   uint32   `cbor:"3,keyasint"`
}

// MaxManifestHashes bounds the piece hashes in one Manifest message so that it
// fits a data channel message.
const MaxManifestHashes = 1024

// Manifest answers a ManifestRequest. Hashes holds Count 32-byte piece hashes
// starting at piece First.
type Manifest struct {
	Content    [32]byte `cbor:"1,keyasint"`
	Size       int64    `cbor:"2,keyasint"`
	PieceSize  uint32   `cbor:"3,keyasint"`
	PieceCount uint32   `cbor:"4,keyasint"`
	First      uint32   `cbor:"5,keyasint"`
	Hashes     []byte   `cbor:"6,keyasint"`
}

// PieceRequest asks for one whole piece.
type PieceRequest struct {
	Content [32]byte `cbor:"1,keyasint"`
	Index   uint32   `cbor:"2,keyasint"`
}

// PieceData is one block of a piece; a piece arrives as blocks in order.
type PieceData struct {
	Index  uint32 `cbor:"1,keyasint"`
	Offset uint32 `cbor:"2,keyasint"`
	Data   []byte `cbor:"3,keyasint"`
}

// TransferError tells the downloader why a request cannot be served.
type TransferError struct {
	Content [32]byte `cbor:"1,keyasint"`
	Reason  string   `cbor:"2,keyasint"`
}
