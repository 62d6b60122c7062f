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
	"github.com/canopy-p2p/canopy/downloads"
	"github.com/canopy-p2p/canopy/leaf"
	"github.com/canopy-p2p/canopy/link"
	"github.com/canopy-p2p/canopy/nat/ice"
	"github.com/canopy-p2p/canopy/nat/reach"
	"github.com/canopy-p2p/canopy/nat/relay"
	"github.com/canopy-p2p/canopy/promotion"
)

// Version is the software version reported to peers and users.
const Version = "0.1.0"

// Software is the name and version sent in hellos and gossip.
const Software = "canopy/" + Version

// Defaults for the Config fields left zero. DefaultConfig returns a Config
// with all of them set.
const (
	// DefaultListen is the default control listener: all interfaces, so that
	// a supernode is reachable and a leaf can be reached for reachability
	// checks.
	DefaultListen = "0.0.0.0:7373"
	// DefaultAPI is the default local API address, the one `canopy status`
	// and the other API clients try first.
	DefaultAPI = api.DefaultAddr
	// DefaultTURN is where the supernode role runs its TURN relay unless
	// told otherwise: all interfaces, on the standard STUN/TURN port
	// (nat.DefaultRelayPort, RFC 8489 §18.6), the one clients try without
	// being told.
	DefaultTURN = "0.0.0.0:3478"
	// DefaultSTUN is Off: an RFC 5780 STUN service needs a second public
	// address, which few machines have, so it must be asked for.
	DefaultSTUN = Off
	// DefaultRoleInterval is how often the role loop evaluates the promotion
	// policy: often enough to react to a ring that needs a supernode within
	// a minute, rarely enough that measuring the node costs little.
	DefaultRoleInterval = 30 * time.Second
	// DefaultHandoverTimeout bounds a demotion's handover of its leaves:
	// long enough for every leaf to attach elsewhere on a slow link, short
	// enough that a user who quits does not wait long.
	DefaultHandoverTimeout = 30 * time.Second
	// DefaultRescanInterval is how often shared directories are rescanned: a
	// new file becomes searchable within minutes, and a scan of an unchanged
	// library only stats its files.
	DefaultRescanInterval = 5 * time.Minute
	// DefaultAPIMaxBody bounds a local API request body. The largest
	// request is a GetRequest: a 64-character content ID and a directory,
	// which Linux caps at PATH_MAX (4096 bytes); a search is a few words.
	// 64 KiB is sixteen times that, and what the API has always read.
	DefaultAPIMaxBody = 64 << 10
)

// DownloadsDirName is the downloads directory inside the data directory,
// used when Config.Downloads is empty.
const DownloadsDirName = "downloads"

// Off is the value of an address field (API, TURN, STUN) that turns its
// service off. The CLI flags take it too.
const Off = "off"

// offAlias is the spelling of Off before there was one: "-". It is still
// accepted, so that existing scripts and configs keep working, and
// withDefaults turns it into Off.
const offAlias = "-"

// NoRoleLoop, as Config.RoleInterval, runs no role loop: the role chosen at
// start stays. Any negative interval means the same.
const NoRoleLoop time.Duration = -1

// The roles a node plays, as Role reports them.
const (
	RoleLeaf      = "leaf"
	RoleSupernode = "supernode"
)

// Config configures a node.
type Config struct {
	// DataDir holds the key, the library database and the host cache. Empty:
	// DefaultDataDir().
	DataDir string
	// Shares are the directories the node shares with everyone. May be
	// empty.
	Shares []string
	// ShareContacts and ShareTrusted are directories shared only with
	// contacts (trusted ones included) and only with trusted contacts:
	// never in a supernode's index, served only to nodes of that trust.
	ShareContacts, ShareTrusted []string
	// Listen is the control listener's host:port. Empty: DefaultListen.
	Listen string
	// Advertise is the control address other nodes dial. Default: Listen, with
	// an unspecified host replaced by this machine's first non-loopback address.
	Advertise string
	// Gossip is the memberlist bind address of the supernode role. Default: the
	// listen host and the control port + 1 (port 0 when the control port is 0).
	Gossip string
	// GossipProfile is "lan" (default) or "local" (fast timers for tests).
	GossipProfile string
	// API is the local API's address; it must be a loopback address. Empty:
	// DefaultAPI. Off disables the API. Every request must carry the
	// token the node keeps in DataDir (api.TokenFileName).
	API string
	// APIMaxBody bounds a local API request body, in bytes. Zero or
	// negative: DefaultAPIMaxBody.
	APIMaxBody int64
	// Downloads is where downloads requested through the local API go when
	// the request names no directory, and the one tree in which the API
	// creates missing directories (see resolveOut). Empty: DataDir's
	// DownloadsDirName.
	Downloads string
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
	// UpLimit and DownLimit cap this node's transfers, bytes/s of piece data
	// sent and received, all of them together (--up-limit, --down-limit; 0:
	// no limit). They leave room on the line for everything else the user
	// does; the relay a supernode runs has its own quotas.
	UpLimit, DownLimit float64
	// WishInterval is the average time between two wish searches (0:
	// wishes.DefaultInterval), for tests; the budget's reasoning is in
	// package wishes.
	WishInterval time.Duration
	// RoleInterval is how often the role loop evaluates the promotion
	// policy. Zero: DefaultRoleInterval; NoRoleLoop (or any negative value):
	// no role loop (the role chosen at start stays).
	RoleInterval time.Duration
	// HandoverTimeout bounds a demotion's handover of its leaves. Zero or
	// negative: DefaultHandoverTimeout.
	HandoverTimeout time.Duration
	// GuidanceInterval and DialBackInterval tune the supernode role (0: its
	// defaults; see supernode.Config).
	GuidanceInterval, DialBackInterval time.Duration
	// TURN is where the supernode role runs its TURN relay, UDP and TCP
	// (it also answers STUN binding requests, for server-reflexive
	// candidates and NAT discovery). Off turns it off. Empty: DefaultTURN.
	TURN string
	// RelayQuotas bound what the TURN relay does for leaves (zero fields:
	// relay.DefaultQuotas, except that with a declared UpBandwidth the
	// relay's total rate is half of it, and never below one leaf's rate).
	RelayQuotas relay.Quotas
	// STUN is where the supernode role runs an RFC 5780 STUN service for
	// NAT behaviour discovery; it needs STUNAlternate, a second public
	// address and port (the service listens on both IPs and both ports).
	// Empty: DefaultSTUN, which is Off, and leaves discover mapping (but
	// not filtering) through two supernodes' relays.
	STUN          string
	STUNAlternate netip.AddrPort
	// PortMap asks the home router to forward the control port (NAT-PMP,
	// UPnP-IGD). Off in the zero Config (tests must not talk to the
	// machine's real router); the canopy binary turns it on by default.
	PortMap bool
	// Reach tunes the reachability verdict built from the supernodes'
	// dial-backs (zero fields: reach.DefaultConfig).
	Reach reach.Config
	// Attach is how many supernodes the leaf side keeps. Zero or negative:
	// leaf.DefaultAttach.
	Attach int
	// MaxLeaves is the supernode's leaf slots (0: the supernode default).
	MaxLeaves int
	// ICE configures WebRTC for transfers (zero fields: ice's defaults).
	ICE ice.Config
	// Policy, when set, is the promotion policy, and PolicyFile is ignored.
	// For programs that embed a node (tests, emulations, the demo).
	Policy *promotion.Params
	// PolicyFile is a promotion policy file (as `canopy sim sweep` writes);
	// empty: promotion.DefaultParams.
	PolicyFile string
	// RescanInterval is how often shared directories are rescanned. Zero or
	// negative: DefaultRescanInterval.
	RescanInterval time.Duration
	// Accept bounds the connections the control listener holds before they
	// said hello (zero fields: link.DefaultAcceptLimits).
	Accept link.AcceptLimits
	// Jobs tunes the download jobs (zero fields: package downloads'
	// defaults, such as DefaultMaxActive jobs at once). The node sets
	// DBPath (DataDir's downloads.DBName), Fetcher, Lookup and Logger.
	Jobs downloads.Config
	// Settings, when set, is the effective configuration as the program
	// that starts the node resolved it (canopy up: flags, environment,
	// config file), which the web UI's settings page shows; nil: the node
	// describes its own fields.
	Settings *api.Settings
	// Metrics is the Prometheus registry the node registers its metrics
	// in, served at GET /metrics on the local API. Nil: the node makes a
	// registry of its own, with the Go runtime and process collectors too.
	// Never the global default unless passed here; nodes in one process
	// each need their own.
	Metrics MetricsRegistry
	// PProf serves net/http/pprof's profiles under /debug/pprof/ on the
	// local API (token required like every request). Off by default.
	PProf bool
	// PeopleAfterStep, if not nil, is called at the named steps of taking
	// a letter in (people.Config.AfterStep): the crash tests kill the
	// process there.
	PeopleAfterStep func(step string)
	// Logger may be nil: no logging.
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

// DefaultConfig returns a Config with every default set. The fields whose
// zero value hands the choice to another package (Gossip, Advertise,
// GossipProfile, MaxLeaves, GuidanceInterval, DialBackInterval,
// RelayQuotas, Reach, ICE, Accept) stay zero: their defaults are that
// package's. Downloads stays zero too: its default follows DataDir
// (downloadsDir).
// PortMap is false, as in the zero Config; the canopy binary turns it on.
func DefaultConfig() Config {
	return Config{
		DataDir:         DefaultDataDir(),
		Listen:          DefaultListen,
		API:             DefaultAPI,
		Consent:         promotion.ConsentAuto,
		TURN:            DefaultTURN,
		STUN:            DefaultSTUN,
		RoleInterval:    DefaultRoleInterval,
		HandoverTimeout: DefaultHandoverTimeout,
		Attach:          leaf.DefaultAttach,
		RescanInterval:  DefaultRescanInterval,
		APIMaxBody:      DefaultAPIMaxBody,
	}
}

// withDefaults returns c with its zero fields set to their defaults, the
// old "-" spelling of Off replaced by Off, and a nil Logger replaced by one
// that discards.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.DataDir == "" {
		c.DataDir = d.DataDir
	}
	if c.Listen == "" {
		c.Listen = d.Listen
	}
	if c.API == "" {
		c.API = d.API
	}
	if c.TURN == "" {
		c.TURN = d.TURN
	}
	if c.STUN == "" {
		c.STUN = d.STUN
	}
	for _, a := range []*string{&c.API, &c.TURN, &c.STUN} {
		if *a == offAlias {
			*a = Off
		}
	}
	if c.RoleInterval == 0 {
		c.RoleInterval = d.RoleInterval
	}
	if c.HandoverTimeout <= 0 {
		c.HandoverTimeout = d.HandoverTimeout
	}
	if c.Attach <= 0 {
		c.Attach = d.Attach
	}
	if c.RescanInterval <= 0 {
		c.RescanInterval = d.RescanInterval
	}
	if c.APIMaxBody <= 0 {
		c.APIMaxBody = d.APIMaxBody
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

// Validate reports every field of c (after withDefaults) that the node
// cannot run with, joined, each wrapping ErrConfig.
func (c Config) Validate() error {
	var errs []error
	if _, err := c.Consent.MarshalText(); err != nil {
		errs = append(errs, fmt.Errorf("%w: Consent: %w", ErrConfig, err))
	}
	if c.STUN != Off && !c.STUNAlternate.IsValid() {
		errs = append(errs, fmt.Errorf("%w: STUNAlternate: an RFC 5780 STUN service (STUN) needs a second address", ErrConfig))
	}
	if c.API != Off {
		host, _, err := net.SplitHostPort(c.API)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: API address: %w", ErrConfig, err))
		} else if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			errs = append(errs, fmt.Errorf("%w: API: the local API must listen on a loopback address", ErrConfig))
		}
	}
	// A reachability tracker whose thresholds exceed its window could never
	// reach a verdict: refuse it at start rather than never promote. (A bad
	// ICE port range is not refused: NewAPI degrades it to any port, with a
	// warning, as it always has.)
	if err := c.Reach.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("%w: Reach: %w", ErrConfig, err))
	}
	if err := c.Accept.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("%w: Accept: %w", ErrConfig, err))
	}
	return errors.Join(errs...)
}

// downloadsDir is Downloads, or DataDir's DownloadsDirName when it is
// empty, made absolute: resolveOut compares request paths with it, and a
// relative one would move with the working directory.
func (c *Config) downloadsDir() (string, error) {
	d := c.Downloads
	if d == "" {
		d = filepath.Join(c.DataDir, DownloadsDirName)
	}
	return filepath.Abs(d)
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
