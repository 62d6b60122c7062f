package link

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/canopy-p2p/canopy/internal/textsafe"
	"github.com/canopy-p2p/canopy/wire"
)

// Reason is why a connection or link was refused: a fixed vocabulary, so
// that the counters and the log lines carry nothing a peer chose.
type Reason uint8

// Reasons for refusing a connection or a link.
const (
	// ReasonPendingFull: the listener holds AcceptLimits.MaxPending
	// connections that have not said hello.
	ReasonPendingFull Reason = iota + 1
	// ReasonPendingAddr: it holds MaxPendingPerAddr of them from this
	// address.
	ReasonPendingAddr
	// ReasonHandshake: the TLS handshake failed or timed out.
	ReasonHandshake
	// ReasonNoHello: no hello came within HelloTimeout, or the first frame
	// was not one (or too large for one).
	ReasonNoHello
	// ReasonUnknownRole: the hello named a role this node does not know.
	ReasonUnknownRole
	// ReasonNotSupernode: a leaf or supernode hello to a node that is not a
	// supernode (it answers with the supernodes it knows).
	ReasonNotSupernode
	// ReasonStranger: a supernode hello from a key that is not a ring
	// member (it is told the gossip address to join by, nothing more).
	ReasonStranger
	// ReasonPeerLinks: a ring member holds as many links to this
	// supernode as one member may.
	ReasonPeerLinks
	// ReasonInbound: the supernode holds as many links dialled by ring
	// members as its view allows.
	ReasonInbound
	// ReasonLeafSlots: every leaf slot is taken.
	ReasonLeafSlots
	// ReasonDemoting: the supernode is handing its leaves over.
	ReasonDemoting
	reasonEnd
)

var reasonText = [reasonEnd]string{
	ReasonPendingFull:  "too many connections that have not said hello",
	ReasonPendingAddr:  "too many connections from one address that have not said hello",
	ReasonHandshake:    "TLS handshake failed",
	ReasonNoHello:      "no hello",
	ReasonUnknownRole:  "unknown role",
	ReasonNotSupernode: "not a supernode",
	ReasonStranger:     "not a ring member",
	ReasonPeerLinks:    "too many links from one ring member",
	ReasonInbound:      "too many links dialled by ring members",
	ReasonLeafSlots:    "no free leaf slot",
	ReasonDemoting:     "supernode is demoting",
}

// String is the reason as logs and refusals give it.
func (r Reason) String() string {
	if r == 0 || r >= reasonEnd {
		return "refused"
	}
	return reasonText[r]
}

// level is how loud a refusal is logged. Scanners and broken peers knock on
// every open port (Debug); running out of leaf slots or being asked by a
// leaf is the job (Debug); a full listener or a flood from one address is
// news for the operator (Warn); the rest are peers that may be hostile or
// misconfigured (Info).
func (r Reason) level() zapcore.Level {
	switch r {
	case ReasonPendingFull, ReasonPendingAddr:
		return zapcore.WarnLevel
	case ReasonHandshake, ReasonNoHello, ReasonNotSupernode, ReasonLeafSlots, ReasonDemoting:
		return zapcore.DebugLevel
	}
	return zapcore.InfoLevel
}

// RefusalCounts is a snapshot of Refusals: how many connections or links
// were refused for each reason since the node started, and how many links
// were closed because their node opened a newer one of the same role.
type RefusalCounts struct {
	PendingFull  uint64 `json:"pending_full"`
	PendingAddr  uint64 `json:"pending_addr"`
	Handshake    uint64 `json:"handshake"`
	NoHello      uint64 `json:"no_hello"`
	UnknownRole  uint64 `json:"unknown_role"`
	NotSupernode uint64 `json:"not_supernode"`
	Stranger     uint64 `json:"stranger"`
	PeerLinks    uint64 `json:"peer_links"`
	Inbound      uint64 `json:"inbound"`
	LeafSlots    uint64 `json:"leaf_slots"`
	Demoting     uint64 `json:"demoting"`
	// Replaced counts links closed for a newer link from the same node and
	// role (a leaf that restarted, say): not refusals, but what a node that
	// reconnects in a loop shows up as.
	Replaced uint64 `json:"replaced"`
}

// Defaults for the refusal log.
const (
	// DefaultRefusalLogInterval is how often one kind of refusal of one
	// address is logged: once a minute, with the count of those not logged
	// since. 200 refused hellos a second would otherwise be 200 lines.
	DefaultRefusalLogInterval = time.Minute
	// DefaultRefusalLogKeys bounds the (reason, address) pairs the log
	// remembers: 1,024 pairs of about 100 bytes. Past it, refusals from
	// addresses it does not know share one line per reason, so a flood from
	// many addresses writes at most one line a minute more per reason.
	DefaultRefusalLogKeys = 1024
	// refusalDetailLen bounds the detail (an error message, which can quote
	// a peer) on a refusal's log line.
	refusalDetailLen = wire.MaxReasonLen
)

// Refusals counts refused connections and links by reason, and logs them,
// at most once per DefaultRefusalLogInterval for each reason and address.
// Safe for concurrent use; one serves a node's listener and its supernode
// role, so the counts outlive a demotion.
type Refusals struct {
	counts   [reasonEnd]atomic.Uint64
	replaced atomic.Uint64

	log *zap.Logger
	now func() time.Time

	mu    sync.Mutex // guards lines
	lines map[lineKey]*lineState
}

type lineKey struct {
	why  Reason
	addr string // the peer's address key ("" for the overflow line)
}

type lineState struct {
	logged     time.Time
	suppressed uint64
}

// NewRefusals returns counters that log to log (nil: no logging) with the
// clock now (nil: time.Now).
func NewRefusals(log *zap.Logger, now func() time.Time) *Refusals {
	if log == nil {
		log = zap.NewNop()
	}
	if now == nil {
		now = time.Now
	}
	return &Refusals{log: log, now: now, lines: make(map[lineKey]*lineState)}
}

// Refuse counts a refusal of the connection from remote (nil when unknown)
// and logs it unless this reason and address were logged within the
// interval. detail (an error, say) is bounded before it is logged.
func (r *Refusals) Refuse(why Reason, remote net.Addr, detail string) {
	if why == 0 || why >= reasonEnd {
		why = ReasonNoHello
	}
	r.counts[why].Add(1)
	if !r.log.Core().Enabled(why.level()) {
		return
	}
	addr := ""
	if remote != nil {
		if k, _ := addrKey(remote); k.IsValid() {
			addr = k.String()
		} else {
			addr = remote.String()
		}
	}
	k, suppressed, ok := r.due(lineKey{why, addr})
	if !ok {
		return
	}
	from := k.addr
	if from == "" {
		from = "many addresses"
	}
	fields := []zap.Field{zap.String("reason", why.String()), zap.String("from", from)}
	if detail != "" {
		fields = append(fields, zap.String("detail", textsafe.Bound(detail, refusalDetailLen)))
	}
	if suppressed > 0 {
		fields = append(fields, zap.Uint64("suppressed", suppressed))
	}
	if ce := r.log.Check(why.level(), "refused"); ce != nil {
		ce.Write(fields...)
	}
}

// due reports whether a line for k is due now, under which key (k, or the
// reason's overflow line when the table is full), and how many lines under
// that key were suppressed since the last one.
func (r *Refusals) due(k lineKey) (_ lineKey, suppressed uint64, ok bool) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.lines[k]
	if st == nil && len(r.lines) >= DefaultRefusalLogKeys {
		r.sweepLocked(now)
	}
	if st == nil && len(r.lines) >= DefaultRefusalLogKeys {
		// Still full: the reason's overflow line, one per reason beyond
		// the bound.
		k.addr = ""
		st = r.lines[k]
	}
	if st == nil {
		r.lines[k] = &lineState{logged: now}
		return k, 0, true
	}
	if now.Sub(st.logged) < DefaultRefusalLogInterval {
		st.suppressed++
		return k, 0, false
	}
	suppressed, st.logged, st.suppressed = st.suppressed, now, 0
	return k, suppressed, true
}

// sweepLocked forgets the lines whose interval has passed. r.mu must be
// held.
func (r *Refusals) sweepLocked(now time.Time) {
	for k, st := range r.lines {
		if now.Sub(st.logged) >= DefaultRefusalLogInterval {
			delete(r.lines, k)
		}
	}
}

// Replaced counts a link closed for a newer one from the same node and role.
func (r *Refusals) Replaced() { r.replaced.Add(1) }

// Snapshot returns the counts so far.
func (r *Refusals) Snapshot() RefusalCounts {
	c := func(why Reason) uint64 { return r.counts[why].Load() }
	return RefusalCounts{
		PendingFull:  c(ReasonPendingFull),
		PendingAddr:  c(ReasonPendingAddr),
		Handshake:    c(ReasonHandshake),
		NoHello:      c(ReasonNoHello),
		UnknownRole:  c(ReasonUnknownRole),
		NotSupernode: c(ReasonNotSupernode),
		Stranger:     c(ReasonStranger),
		PeerLinks:    c(ReasonPeerLinks),
		Inbound:      c(ReasonInbound),
		LeafSlots:    c(ReasonLeafSlots),
		Demoting:     c(ReasonDemoting),
		Replaced:     r.replaced.Load(),
	}
}
