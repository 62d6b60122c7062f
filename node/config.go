// Package node is a running Canopy node: identity, data directory, library,
// the leaf role it always plays, the supernode role it may add, the accept loop
// of its control listener, and the local API.
package node

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/nat/ice"
	"github.com/canopy-p2p/canopy/nat/reach"
	"github.com/canopy-p2p/canopy/nat/relay"
	"github.com/canopy-p2p/canopy/promotion"
)

// Version is the software version reported to peers and users.
const Version = "0.1.0"

// Software is the name and version sent in hellos and gossip.
const Software = "canopy/" + Version

// DefaultListen is the default control listener: all interfaces, so that a
// supernode is reachable and a leaf can be reached for reachability checks.
const DefaultListen = "0.0.0.0:7373"

// The roles a node plays, as Role reports them.
const (
	RoleLeaf      = "leaf"
	RoleSupernode = "supernode"
)

// Config configures a node.
type Config struct {
	// DataDir holds the key, the library database and the host cache. Default:
	// DefaultDataDir().
	DataDir string
	// Shares are the directories the node shares.
	Shares []string
	// Listen is the control listener's host:port. Default DefaultListen.
	Listen string
	// Advertise is the control address other nodes dial. Default: Listen, with
	// an unspecified host replaced by this machine's first non-loopback address.
	Advertise string
	// Gossip is the memberlist bind address of the supernode role. Default: the
	// listen host and the control port + 1 (port 0 when the control port is 0).
	Gossip string
	// GossipProfile is "lan" (default) or "local" (fast timers for tests).
	GossipProfile string
	// API is the local API's address; it must be a loopback address. Default
	// api.DefaultAddr. "-" disables the API.
	API string
	// Join are control addresses of supernodes to join through.
	Join []string
	// Consent is the user's --supernode choice: auto (the default: the
	// promotion policy decides), never (always a leaf) or always (a
	// supernode from the start, for operators of public nodes).
	Consent promotion.Consent
	// UpBandwidth and DownBandwidth are the user's declared link capacity,
	// bytes/s, for the promotion policy's bandwidth check (0: undeclared,
	// which fails it: the node then promotes only by consent always or in an
	// emergency election).
	UpBandwidth, DownBandwidth float64
	// RoleInterval is how often the role loop evaluates the promotion
	// policy. Default 30 s; negative: no role loop (the role chosen at start
	// stays).
	RoleInterval time.Duration
	// HandoverTimeout bounds a demotion's handover of its leaves. Default 30 s.
	HandoverTimeout time.Duration
	// GuidanceInterval and DialBackInterval tune the supernode role (0: its
	// defaults; see supernode.Config).
	GuidanceInterval, DialBackInterval time.Duration
	// TURN is where the supernode role runs its TURN relay, UDP and TCP
	// (it also answers STUN binding requests, for server-reflexive
	// candidates and NAT discovery). "-" turns it off. Default
	// 0.0.0.0:3478, TURN's registered port.
	TURN string
	// RelayQuotas bound what the TURN relay does for leaves (zero fields:
	// relay.DefaultQuotas, except that with a declared UpBandwidth the
	// relay's total rate is half of it, and never below one leaf's rate).
	RelayQuotas relay.Quotas
	// STUN is where the supernode role runs an RFC 5780 STUN service for
	// NAT behaviour discovery; it needs STUNAlternate, a second public
	// address and port (the service listens on both IPs and both ports).
	// Default "-": off, and leaves discover mapping (but not filtering)
	// through two supernodes' relays.
	STUN          string
	STUNAlternate netip.AddrPort
	// PortMap asks the home router to forward the control port (NAT-PMP,
	// UPnP-IGD). Off in the zero Config (tests must not talk to the
	// machine's real router); the canopy binary turns it on by default.
	PortMap bool
	// Reach tunes the reachability verdict built from the supernodes'
	// dial-backs (zero fields: reach.DefaultConfig).
	Reach reach.Config
	// Attach is how many supernodes the leaf side keeps (default 3).
	Attach int
	// MaxLeaves is the supernode's leaf slots (0: the supernode default).
	MaxLeaves int
	// ICE configures WebRTC for transfers.
	ICE ice.Config
	// Policy, when set, is the promotion policy, and PolicyFile is ignored.
	// For programs that embed a node (tests, emulations, the demo).
	Policy *promotion.Params
	// PolicyFile is a promotion policy file (as `canopy sim sweep` writes);
	// empty: promotion.DefaultParams.
	PolicyFile string
	// RescanInterval is how often shared directories are rescanned. Default 5 min.
	RescanInterval time.Duration
	// Logger may be nil.
	Logger *zap.Logger
}

// DefaultDataDir is the per-user data directory: $XDG_DATA_HOME/canopy, or
// ~/.local/share/canopy.
func DefaultDataDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "canopy")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "canopy")
	}
	return ".canopy"
}

func (c *Config) fill() error {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir()
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.API == "" {
		c.API = api.DefaultAddr
	}
	if _, err := c.Consent.MarshalText(); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if c.TURN == "" {
		c.TURN = "0.0.0.0:" + strconv.Itoa(relay.DefaultPort)
	}
	if c.STUN == "" {
		c.STUN = "-"
	}
	if c.STUN != "-" && !c.STUNAlternate.IsValid() {
		return errors.New("node: an RFC 5780 STUN service (STUN) needs a second address (STUNAlternate)")
	}
	if c.RoleInterval == 0 {
		c.RoleInterval = 30 * time.Second
	}
	if c.HandoverTimeout <= 0 {
		c.HandoverTimeout = 30 * time.Second
	}
	if c.RescanInterval <= 0 {
		c.RescanInterval = 5 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.API != "-" {
		host, _, err := net.SplitHostPort(c.API)
		if err != nil {
			return fmt.Errorf("node: API address: %w", err)
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return errors.New("node: the local API must listen on a loopback address")
		}
	}
	return nil
}

// gossipAddr derives the memberlist bind address from the bound control address.
func (c *Config) gossipAddr(control *net.TCPAddr) string {
	if c.Gossip != "" {
		return c.Gossip
	}
	host, _, _ := net.SplitHostPort(c.Listen)
	port := 0
	if _, p, err := net.SplitHostPort(c.Listen); err == nil && p != "0" {
		port = control.Port + 1
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// advertiseAddr is the control address peers should dial.
func (c *Config) advertiseAddr(bound *net.TCPAddr) string {
	if c.Advertise != "" {
		return c.Advertise
	}
	host, _, _ := net.SplitHostPort(c.Listen)
	if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
		return net.JoinHostPort(host, strconv.Itoa(bound.Port))
	}
	return net.JoinHostPort(firstAddress(), strconv.Itoa(bound.Port))
}

// firstAddress returns this machine's first global unicast IPv4 address, or
// loopback when it has none.
func firstAddress() string {
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
				return n.IP.String()
			}
		}
	}
	return "127.0.0.1"
}
