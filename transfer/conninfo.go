package transfer

import (
	"net"
	"strconv"
	"time"

	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"
)

// Values of ConnInfo.Path.
const (
	// PathDirect is a connection leaf to leaf, through NATs if any: neither
	// end of the selected candidate pair is a TURN relay.
	PathDirect = "direct"
	// PathRelayed is a connection through a TURN relay (a supernode's): at
	// least one end of the selected candidate pair is a relay candidate.
	PathRelayed = "relayed"
)

// ConnInfo says how a peer connection reached the peer: the ICE candidate
// pair in use and how long connecting took. The zero value means the
// connection never opened.
type ConnInfo struct {
	// Path is PathDirect or PathRelayed.
	Path string
	// LocalType and RemoteType are the ICE candidate types of the selected
	// pair's two ends (RFC 8445 §5.1.1): "host", "srflx", "prflx" or
	// "relay".
	LocalType, RemoteType string
	// LocalAddr and RemoteAddr are the transport addresses (host:port) of
	// the selected pair. For a relay candidate it is the address allocated
	// on the relay, not the address of this node.
	LocalAddr, RemoteAddr string
	// ConnectTime is the time from the offer being sent (downloads) or
	// received (uploads) to the open data channel: signalling, ICE checks,
	// DTLS and SCTP together. It does not change when the pair changes.
	ConnectTime time.Duration
}

// connInfoFromPair describes the selected pair p.
func connInfoFromPair(p *webrtc.ICECandidatePair) ConnInfo {
	ci := ConnInfo{
		Path:       PathDirect,
		LocalType:  p.Local.Typ.String(),
		RemoteType: p.Remote.Typ.String(),
		LocalAddr:  candidateAddr(p.Local),
		RemoteAddr: candidateAddr(p.Remote),
	}
	if p.Local.Typ == webrtc.ICECandidateTypeRelay || p.Remote.Typ == webrtc.ICECandidateTypeRelay {
		ci.Path = PathRelayed
	}
	return ci
}

func candidateAddr(c *webrtc.ICECandidate) string {
	return net.JoinHostPort(c.Address, strconv.Itoa(int(c.Port)))
}

// samePair reports whether ci and o describe the same candidate pair.
func (ci ConnInfo) samePair(o ConnInfo) bool {
	return ci.LocalType == o.LocalType && ci.RemoteType == o.RemoteType &&
		ci.LocalAddr == o.LocalAddr && ci.RemoteAddr == o.RemoteAddr
}

// logFields renders ci for a log line.
func (ci ConnInfo) logFields() []zap.Field {
	return []zap.Field{
		zap.String("path", ci.Path),
		zap.String("local_type", ci.LocalType), zap.String("local_addr", ci.LocalAddr),
		zap.String("remote_type", ci.RemoteType), zap.String("remote_addr", ci.RemoteAddr),
		zap.Duration("connect_time", ci.ConnectTime),
	}
}
