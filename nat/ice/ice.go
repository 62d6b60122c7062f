package ice

import (
	"fmt"
	"net"

	"github.com/canopy-p2p/canopy/logbridge"
	pionice "github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"
)

// SCTPReceiveBuffer is the SCTP receive buffer NewAPI gives every data
// channel association. pion's default is 1 MiB, which caps the window of a
// single association and with it the throughput of a bulk transfer; 8 MiB
// measured ~10-30% faster on loopback (see docs/field-numbers.md and
// the transfer package's BenchmarkTransfer64MiB) while costing memory only
// when the reader falls behind.
const SCTPReceiveBuffer = 8 << 20

// TURNServer is a TURN relay and the credentials to use it. Supernodes hand
// out per-leaf, time-limited credentials, so these change over time.
type TURNServer struct {
	// URL is a "turn:" or "turns:" URL, e.g. "turn:198.51.100.7:3478?transport=udp".
	URL string
	// Username is the TURN user name (with time-limited credentials it
	// carries the expiry, RFC 8489 style).
	Username string
	// Credential is the TURN password for Username.
	Credential string
}

// Config says how a node gathers ICE candidates for its WebRTC peer
// connections. The zero value is usable: host candidates only, on every
// non-loopback interface.
type Config struct {
	// STUN lists "stun:" URLs used to learn server-reflexive candidates.
	// Normally the STUN services of the supernodes the leaf is attached to.
	// Nil means no server-reflexive candidates.
	STUN []string
	// TURN lists relays used as the last resort when no direct path exists.
	// Nil means no relay candidates.
	TURN []TURNServer
	// LoopbackOnly restricts gathering to the loopback interface and includes
	// loopback candidates. It is for tests and demos with every peer on one
	// machine: connections then never depend on the host's real network.
	LoopbackOnly bool
	// IncludeLoopback adds loopback candidates to those of the other
	// interfaces (pion leaves them out by default). Implied by LoopbackOnly.
	IncludeLoopback bool
	// UDPPortMin and UDPPortMax bound the local UDP ports ICE uses, for
	// firewalls that open a fixed range. Both zero (the default) means any
	// ephemeral port; otherwise both must be set and Min <= Max.
	UDPPortMin, UDPPortMax uint16
	// Logger receives pion's logs through logbridge (named "pion.<scope>").
	// Nil discards them.
	Logger *zap.Logger
}

// DefaultConfig returns the configuration of a node before it knows any
// supernode: no STUN or TURN servers (they come from the supernodes once the
// leaf is attached, never from a third party), host candidates on every
// non-loopback interface, any UDP port, no logging.
func DefaultConfig() Config {
	return Config{}
}

// Validate reports a configuration NewAPI cannot honour fully.
func (c Config) Validate() error {
	if (c.UDPPortMin == 0) != (c.UDPPortMax == 0) || c.UDPPortMin > c.UDPPortMax {
		return fmt.Errorf("%w: UDPPortMin, UDPPortMax: bad UDP port range %d-%d: set both, min <= max", ErrConfig, c.UDPPortMin, c.UDPPortMax)
	}
	return nil
}

// NewAPI builds a pion API and the peer connection configuration from cfg.
// Every peer connection of the node should be created from the returned API
// and Configuration so that they share one setting engine.
//
// An invalid UDP port range (see Validate) is ignored with a warning on
// cfg.Logger, so that a bad setting degrades to "any port" instead of
// leaving the node unable to transfer anything.
func NewAPI(cfg Config) (*webrtc.API, webrtc.Configuration) {
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	var se webrtc.SettingEngine
	se.LoggerFactory = logbridge.Pion(cfg.Logger)

	// mDNS candidates hide host addresses from web pages; Canopy peers
	// exchange signed SDP through their supernodes and gain nothing from it,
	// while pion's mDNS server costs a multicast socket and goroutines per
	// peer connection.
	se.SetICEMulticastDNSMode(pionice.MulticastDNSModeDisabled)

	// TCP candidates (ICE-TCP, RFC 6544) will be added with the supernode
	// TURN/TCP work; UDP covers hole punching.
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})

	if cfg.LoopbackOnly || cfg.IncludeLoopback {
		se.SetIncludeLoopbackCandidate(true)
	}
	if cfg.LoopbackOnly {
		se.SetInterfaceFilter(isLoopbackInterface)
		se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	}

	if cfg.UDPPortMin != 0 || cfg.UDPPortMax != 0 {
		if err := cfg.Validate(); err != nil {
			log.Warn("ignoring UDP port range", zap.Error(err))
		} else if err := se.SetEphemeralUDPPortRange(cfg.UDPPortMin, cfg.UDPPortMax); err != nil {
			log.Warn("ignoring UDP port range", zap.Error(err))
		}
	}

	se.SetSCTPMaxReceiveBufferSize(SCTPReceiveBuffer)
	// DTLS already authenticates every record, so SCTP's CRC32c adds nothing
	// but CPU time (RFC 9653). The feature is negotiated in the SCTP INIT, so
	// a peer without it still interoperates.
	se.EnableSCTPZeroChecksum(true)

	var wc webrtc.Configuration
	if len(cfg.STUN) > 0 {
		wc.ICEServers = append(wc.ICEServers, webrtc.ICEServer{URLs: append([]string(nil), cfg.STUN...)})
	}
	for _, t := range cfg.TURN {
		wc.ICEServers = append(wc.ICEServers, webrtc.ICEServer{
			URLs:       []string{t.URL},
			Username:   t.Username,
			Credential: t.Credential,
		})
	}
	return webrtc.NewAPI(webrtc.WithSettingEngine(se)), wc
}

// isLoopbackInterface keeps interfaces flagged loopback ("lo" on Linux,
// "lo0" on the BSDs and macOS). Checking the flag rather than the name keeps
// LoopbackOnly portable.
func isLoopbackInterface(name string) bool {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return name == "lo" || name == "lo0"
	}
	return ifi.Flags&net.FlagLoopback != 0
}
