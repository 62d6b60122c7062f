package transfer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/canopy-p2p/canopy/content"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/wire"
	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"
)

// PieceSource is what an uploader serves from; the leaf's library implements
// it. Manifest may be called concurrently from several upload sessions and
// may take a little time (it runs on a session goroutine, never on the
// signalling path).
type PieceSource interface {
	// Manifest returns the manifest of the content and the path of the file
	// that holds it. An error means the content is not shared here. The
	// uploader verifies every piece it reads against this manifest, so a file
	// that changed since it was hashed is never served as the old content.
	Manifest(id content.ID) (content.Manifest, string, error)
}

// Defaults for Config fields left zero.
const (
	// DefaultMaxUploads bounds concurrent upload sessions: a home uplink is
	// shared by all of them, and eight keeps each worth having.
	DefaultMaxUploads = 8
	// DefaultMaxUploadsPerPeer bounds the upload sessions one peer may hold
	// (connected and pending together). A node downloads at most three
	// files at once (its download queue), each with one session per
	// source, so an honest peer never needs more; one identity that
	// connects for real can then take three of the eight slots, not all.
	DefaultMaxUploadsPerPeer = 3
	// DefaultMaxSourcesPerDownload bounds the sources one download uses at a
	// time; more rarely raises throughput and costs everyone a connection.
	DefaultMaxSourcesPerDownload = 4
	// DefaultWindow is the number of pieces in flight per source: 8 pieces of
	// 256 KiB keep 2 MiB in the pipe, more than the bandwidth-delay product
	// of a home link at 100 ms.
	DefaultWindow = 8
	// DefaultConnectTimeout bounds signalling, ICE and DTLS for one source.
	// Gathering with STUN/TURN plus relayed signalling take a few seconds on
	// a bad day; ICE itself gives up after ~25 s in pion.
	DefaultConnectTimeout = 20 * time.Second
	// DefaultOfferWindow is how far an offer's signed time may lie from the
	// receiver's clock, either way. Home machines without working NTP drift
	// by tens of seconds (a minute is not rare after a suspend), and an
	// offer spends up to a few seconds in relayed signalling; two minutes
	// covers both with room, and is short enough that a captured offer is
	// useless soon. Offers seen are remembered for this long (replays).
	DefaultOfferWindow = 2 * time.Minute
	// DefaultMaxPendingPerPeer bounds the offers of one peer that were
	// answered but whose data channel has not opened yet. A downloader
	// opens one session per source and download; two leaves room for a
	// second download starting while the first connects.
	DefaultMaxPendingPerPeer = 2
	// DefaultPendingPerUpload sets the default total of pending offers:
	// this many per upload slot (2 × MaxUploads). Pending offers cost a
	// peer connection and a gathering each, not upload bandwidth, so a few
	// more than the slots keep slots filled without letting signalling
	// alone cost much.
	DefaultPendingPerUpload = 2
	// DefaultMaxOffersPerPeer bounds the offers of one peer remembered
	// within OfferWindow, and so the offers a peer may make in it. An
	// honest leaf offers once per download and retry; 32 in two minutes is
	// far beyond that, and keeps the replay cache of one peer small.
	DefaultMaxOffersPerPeer = 32
	// DefaultMaxOfferCache bounds the offers remembered from all peers
	// (at most 4096 × ~40 bytes). When it is full, offers are refused
	// rather than forgotten: forgetting one would let it be replayed.
	DefaultMaxOfferCache = 4096
)

// NoQueue, as Config.MaxQueue, keeps no upload queue: an offer that finds
// every slot taken is refused "busy".
const NoQueue = -1

// NoUploads, as Config.MaxUploads, serves no uploads: every offer is
// refused with "busy". Any negative value means the same.
const NoUploads = -1

// Config configures an Engine.
type Config struct {
	// Identity signs this node's signals. Must not be nil.
	Identity *identity.Identity
	// API creates peer connections (see ice.NewAPI). Must not be nil.
	API *webrtc.API
	// WebRTC is the peer connection configuration (ICE servers) that goes
	// with API.
	WebRTC webrtc.Configuration
	// ICEServers, if not nil, supplies the STUN and TURN servers of each new
	// peer connection, download dials and upload accepts alike: its result
	// replaces WebRTC.ICEServers for that connection (the rest of WebRTC
	// still applies). It exists because a node's servers change while it
	// runs: its supernodes come and go, and their TURN credentials are
	// issued per leaf and expire, so a list fixed at New goes stale.
	// It is called on session goroutines, possibly concurrently, once per
	// connection before gathering starts. It should return promptly (hand
	// out servers and credentials already at hand, no network round trip):
	// the connection waits for it, outside ConnectTimeout. A nil or empty
	// result means no STUN or TURN servers for that connection. Nil means
	// WebRTC.ICEServers for every connection.
	ICEServers func() []webrtc.ICEServer
	// Signal sends a signal toward s.To via supernode s.Via. The engine fills
	// and signs Session, From, To, Via, Kind, Data, Content, PubKey and Sig;
	// the function fills FromVia (the supernodes through which the peer can
	// answer) and delivers it. It is called from session goroutines, may
	// block until ctx is done, and may be called concurrently. Must not be
	// nil.
	Signal func(ctx context.Context, s wire.Signal) error
	// Source is what uploads serve from. Nil means the node shares nothing:
	// every offer is refused. A PeerSource decides per peer, and serves
	// browse sessions too (Browse).
	Source PieceSource
	// MaxBrowses bounds the browse sessions served at once. Zero means
	// DefaultMaxBrowses.
	MaxBrowses int
	// MaxUploads bounds concurrent upload sessions; offers beyond it are
	// refused with "busy". Zero means DefaultMaxUploads; NoUploads (or any
	// negative value) means none.
	MaxUploads int
	// MaxUploadsPerPeer bounds one peer's upload sessions, connected and
	// pending together; more are refused with "busy for this peer". Zero
	// means DefaultMaxUploadsPerPeer.
	MaxUploadsPerPeer int
	// MaxSourcesPerDownload bounds the sources one download connects to at
	// a time; further sources are kept as spares for those that drop. Zero
	// means DefaultMaxSourcesPerDownload.
	MaxSourcesPerDownload int
	// Window is the number of pieces requested ahead from one source. Zero
	// means DefaultWindow.
	Window int
	// ConnectTimeout bounds how long a source may take from offer to open
	// data channel. It is also the deadline of a pending offer on the
	// uploading side: an answered offer whose data channel has not opened
	// within it is dropped and frees its pending place. Zero means
	// DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// OfferWindow is how old (or how far in the future) an offer's signed
	// time may be; older offers are dropped, and offers seen are remembered
	// this long so that a replay is dropped too. Zero means
	// DefaultOfferWindow.
	OfferWindow time.Duration
	// MaxPendingPerPeer bounds one peer's offers answered but not yet
	// connected; more are refused. Zero means DefaultMaxPendingPerPeer.
	MaxPendingPerPeer int
	// MaxPending bounds all offers answered but not yet connected. Upload
	// slots are taken only when a data channel opens, so that offers which
	// never connect cannot hold them. Zero means DefaultPendingPerUpload ×
	// MaxUploads.
	MaxPending int
	// MaxOffersPerPeer bounds one peer's offers remembered within
	// OfferWindow (more are refused). Zero means DefaultMaxOffersPerPeer.
	MaxOffersPerPeer int
	// MaxOfferCache bounds all offers remembered. Zero means
	// DefaultMaxOfferCache.
	MaxOfferCache int
	// MaxQueue bounds the requests waiting for an upload slot (see
	// queue.go); an offer that finds it full is refused "busy". Zero means
	// DefaultMaxQueue; NoQueue (or any negative value) means no queue.
	MaxQueue int
	// QueueReask is how often a queued download asks again, and so, times
	// three, how long a queued request waits for its next ask before it
	// leaves the queue. Zero means DefaultQueueReask.
	QueueReask time.Duration
	// UploadPriority, if not nil, ranks a peer's queued requests: higher
	// first, arrival order among equals (for contacts, say). It is called
	// with the engine's lock held and must return at once.
	UploadPriority func(identity.NodeID) int
	// UpLimit and DownLimit cap the bytes per second of piece data this
	// engine sends and receives, all sessions together (a home user's
	// --up-limit and --down-limit). Zero or less means no limit.
	UpLimit, DownLimit float64
	// Logger receives the engine's logs. Nil means no logging.
	Logger *zap.Logger
}

// DefaultConfig returns a Config with every default set. Identity, API
// and Signal, which have no default, must still be set; WebRTC,
// ICEServers and Source are optional.
func DefaultConfig() Config {
	return Config{
		MaxUploads:            DefaultMaxUploads,
		MaxBrowses:            DefaultMaxBrowses,
		MaxUploadsPerPeer:     DefaultMaxUploadsPerPeer,
		MaxQueue:              DefaultMaxQueue,
		QueueReask:            DefaultQueueReask,
		MaxSourcesPerDownload: DefaultMaxSourcesPerDownload,
		Window:                DefaultWindow,
		ConnectTimeout:        DefaultConnectTimeout,
		OfferWindow:           DefaultOfferWindow,
		MaxPendingPerPeer:     DefaultMaxPendingPerPeer,
		MaxPending:            DefaultPendingPerUpload * DefaultMaxUploads,
		MaxOffersPerPeer:      DefaultMaxOffersPerPeer,
		MaxOfferCache:         DefaultMaxOfferCache,
	}
}

// withDefaults returns c with its zero fields set to their defaults and a
// nil Logger replaced by one that discards.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.MaxUploads == 0 {
		c.MaxUploads = d.MaxUploads
	}
	if c.MaxBrowses <= 0 {
		c.MaxBrowses = d.MaxBrowses
	}
	if c.MaxUploadsPerPeer <= 0 {
		c.MaxUploadsPerPeer = d.MaxUploadsPerPeer
	}
	if c.MaxQueue == 0 {
		c.MaxQueue = d.MaxQueue
	}
	if c.QueueReask <= 0 {
		c.QueueReask = d.QueueReask
	}
	if c.MaxSourcesPerDownload <= 0 {
		c.MaxSourcesPerDownload = d.MaxSourcesPerDownload
	}
	if c.Window <= 0 {
		c.Window = d.Window
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = d.ConnectTimeout
	}
	if c.OfferWindow <= 0 {
		c.OfferWindow = d.OfferWindow
	}
	if c.MaxPendingPerPeer <= 0 {
		c.MaxPendingPerPeer = d.MaxPendingPerPeer
	}
	if c.MaxPending <= 0 {
		c.MaxPending = DefaultPendingPerUpload * max(c.MaxUploads, 0)
	}
	if c.MaxOffersPerPeer <= 0 {
		c.MaxOffersPerPeer = d.MaxOffersPerPeer
	}
	if c.MaxOfferCache <= 0 {
		c.MaxOfferCache = d.MaxOfferCache
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

// Validate reports every field of c (after withDefaults) that the engine
// cannot run with, joined, each wrapping ErrConfig.
func (c Config) Validate() error {
	var errs []error
	if c.Identity == nil {
		errs = append(errs, fmt.Errorf("%w: Identity must be set", ErrConfig))
	}
	if c.API == nil {
		errs = append(errs, fmt.Errorf("%w: API must be set", ErrConfig))
	}
	if c.Signal == nil {
		errs = append(errs, fmt.Errorf("%w: Signal must be set", ErrConfig))
	}
	return errors.Join(errs...)
}

// Request describes one download.
type Request struct {
	// Content is the file to fetch. Must not be zero.
	Content content.ID
	// Name is the file name to save as, usually from the search hit the
	// user picked: the caller's choice is kept. It is sanitized (no
	// directories, no "..", no control or bidi-override characters). An
	// empty result means the first-hand name (see firstHandName) of the
	// source that delivered the most, or the content ID in hex if no source
	// named the file.
	Name string
	// Size is the size the hit announced. It is a hint only: the verified
	// manifest decides.
	Size int64
	// Sources are the leaves that share the file, with the supernodes through
	// which each can be signalled. The first MaxSourcesPerDownload are
	// connected at once, the rest replace those that drop.
	Sources []wire.Source
	// OutDir is the directory the file is written to. Must exist.
	OutDir string
	// Progress, if not nil, is called from the goroutine that called
	// Download, at most a few times per second and once at the end. It must
	// not block for long: the download's bookkeeping waits for it.
	Progress func(Progress)
	// Resume, if not nil, makes the download resumable: its part file is
	// the caller's, survives a failure, and its verified pieces are
	// reported once durable. See Resume.
	Resume *Resume
}

// Resume is what a resumable download (Request.Resume) shares with its
// caller, which keeps the record of verified pieces between runs (package
// downloads). The engine's part in the record's invariant is the order of
// things: a piece reported to Synced is verified, written and fsynced, so a
// record that follows Synced may lag the part file but never lead it.
type Resume struct {
	// Part is the part file. It is created if missing and never truncated
	// below the manifest's size; it is kept when the download fails or is
	// cancelled, and left in place when it completes: the caller places it
	// (Result.Path is Part, Result.Name the name to place it under).
	Part string
	// Manifest is the verified manifest from an earlier run, or nil: then
	// the first source delivers it and Manifest is called with it.
	Manifest *content.Manifest
	// Held marks the pieces the part file holds already, verified by the
	// caller against Manifest; they are not fetched. It is used only with
	// Manifest, and must have its piece count (or be nil).
	Held []bool
	// OnManifest, if not nil, is called once with the manifest a source
	// delivered, verified against the content ID, before any piece is
	// fetched. An error ends the download as a local failure.
	OnManifest func(content.Manifest) error
	// Synced, if not nil, is called with the pieces written since the last
	// call, after the part file was fsynced: every SyncInterval while
	// pieces arrive, and once at the end, success or not. It is called
	// from the goroutine that called Download. An error ends the download
	// as a local failure.
	Synced func(pieces []int) error
	// SyncInterval is the least time between two syncs of the part file;
	// zero means DefaultSyncInterval. The pieces written in it are what a
	// power cut can cost; a killed process loses none of them (the caller
	// finds them again by verifying the part file).
	SyncInterval time.Duration
}

// DefaultSyncInterval is how often a resumable download makes its written
// pieces durable (Resume.SyncInterval). An fsync costs a few milliseconds
// on a disk; one every half second is noise next to the transfer, and a
// power cut then costs at most half a second of download.
const DefaultSyncInterval = 500 * time.Millisecond

// Progress is a snapshot of a running download.
type Progress struct {
	// Have and Total are the verified bytes written and the file size (0
	// until a manifest is known).
	Have, Total int64
	// Pieces and PieceCount count verified pieces and all pieces.
	Pieces, PieceCount int
	// Sources is the number of sources currently connected or connecting.
	Sources int
	// Rate is the average download rate since Download started, in bytes
	// per second; pieces held from an earlier run (Resume.Held) do not
	// count.
	Rate float64
	// Reports has one entry per source tried so far, in the order they
	// were started: what each delivered until now, how it is reached
	// (Conn, zero until its data channel opened), and for a source that
	// ended, why (Err). Held pieces count in Have, not here.
	Reports []SourceReport
}

// Result describes a finished download.
type Result struct {
	// Path is where the file was saved (for a resumable download, the
	// complete part file, which the caller places).
	Path string
	// Name is the file name the download chose: the request's, sanitized,
	// or the first-hand name of the source that delivered the most.
	Name string
	// Size is its size in bytes.
	Size int64
	// Duration is the time from the call to Download to the rename.
	Duration time.Duration
	// Sources reports what each source that was tried contributed.
	Sources []SourceReport
}

// SourceReport is what one source contributed to a download.
type SourceReport struct {
	// Node is the source.
	Node identity.NodeID
	// Bytes and Pieces count the verified data it delivered.
	Bytes  int64
	Pieces int
	// Err says why the source was dropped; empty if it served to the end.
	Err string
	// Bad is set when the source sent data that failed verification (a bad
	// piece, a manifest that does not match the ID) or broke the protocol.
	Bad bool
	// Name is the source's own name for the file, from its signed answer
	// (bounded and cleaned of control and bidi characters, not yet made a
	// file name); empty if it never answered.
	Name string
	// Queued is the request's place in the source's upload queue (1 first)
	// while the download waits to ask it again; 0 when it is not queued.
	Queued int
	// Conn says how the source was reached: the candidate pair in use when
	// the session ended (the pair selected when the data channel opened,
	// or a later one if ICE switched) and the time to connect. It is zero
	// if the data channel never opened.
	Conn ConnInfo
}
