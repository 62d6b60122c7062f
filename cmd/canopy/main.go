// Command canopy is the one Canopy binary: it runs a node (`canopy up`), talks
// to a running node through its local API (status, search, get), starts a demo
// network on loopback, and prints its version. This file only parses flags and
// wires packages together.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/demo"
	"github.com/canopy-p2p/canopy/leaf"
	"github.com/canopy-p2p/canopy/nat/relay"
	"github.com/canopy-p2p/canopy/node"
)

const usage = `canopy — peer-to-peer file sharing for people at home

Usage:
  canopy up      [flags]            run a node until Ctrl-C
  canopy status  [--api A] [--json] show what the running node is doing
  canopy search  [--api A] [--json] [--timeout D] WORDS...
  canopy get     [--api A] [--out DIR] [--json] [--detach] CONTENT-ID
                                    download (a job of the node: Ctrl-C detaches, the job goes on)
  canopy downloads [--api A] [--json]   list download jobs
  canopy downloads follow|pause|resume|cancel|retry ID
  canopy natcheck [--api A] [--json] how this node sits behind its NAT, and who can reach it
                                    (these four send the node's API token: from --data DIR,
                                    default that of canopy up, or --api-token / $CANOPY_API_TOKEN)
  canopy demo    [--once] [--api A]  start a small network on loopback and show it working
  canopy sim     [--scenario F] [--nodes N] [--hours H] [--seed S] [--out DIR]
                                    simulate a network; "canopy sim sweep" tunes the policy
  canopy version

Run "canopy COMMAND -h" for the flags of a command.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd, args := os.Args[1], os.Args[2:]
	var err error
	switch cmd {
	case "up":
		err = runUp(ctx, args)
	case "status":
		err = runStatus(ctx, args)
	case "search":
		err = runSearch(ctx, args)
	case "get":
		err = runGet(ctx, args)
	case "downloads":
		err = runDownloads(ctx, args)
	case "natcheck":
		err = runNATCheck(ctx, args)
	case "demo":
		err = runDemo(ctx, args)
	case "sim":
		err = runSim(ctx, args)
	case "version", "--version", "-v":
		fmt.Printf("canopy %s\n", node.Version)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "canopy: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "canopy %s: %v\n", cmd, err)
		os.Exit(1)
	}
}

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// newLogger builds the zap logger for long-running commands: human-readable
// lines on stderr at the requested level.
func newLogger(level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	cfg := zap.NewDevelopmentConfig()
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.DisableStacktrace = lvl > zapcore.DebugLevel
	cfg.EncoderConfig.EncodeTime = zapcore.TimeEncoderOfLayout(time.TimeOnly + ".000")
	return cfg.Build()
}

func runUp(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	// Every default comes from the node package; cfg keeps only what the
	// flags set, so the node fills the rest itself.
	var cfg node.Config
	def := node.DefaultConfig()
	var shares, joins listFlag
	fs.StringVar(&cfg.DataDir, "data", def.DataDir, "data directory (key, library database, host cache)")
	fs.Var(&shares, "share", "directory to share (repeatable)")
	fs.StringVar(&cfg.Listen, "listen", def.Listen, "control listener host:port")
	fs.StringVar(&cfg.Advertise, "advertise", "", "control address others should dial (default: derived from --listen)")
	fs.StringVar(&cfg.Gossip, "gossip", "", "supernode gossip (memberlist) address, UDP and TCP (default: --listen's port + 1)")
	fs.StringVar(&cfg.API, "api", def.API, "local API address (loopback only; "+node.Off+" to disable); clients need the token the node keeps in --data ("+api.TokenFileName+")")
	fs.StringVar(&cfg.Downloads, "downloads", "", "where downloads go when canopy get names no --out, and the only place the API creates missing directories (default: --data's "+node.DownloadsDirName+")")
	fs.Var(&joins, "join", "control address of a supernode to join through (repeatable)")
	fs.TextVar(&cfg.Consent, "supernode", def.Consent, "may this node become a supernode: auto (when it qualifies and the network needs one), never, or always (from the start: for public nodes you operate)")
	upload := fs.String("upload", "", "your connection's upload capacity, e.g. 20mbit or 2MB/s (for the supernode bandwidth check; undeclared: the node promotes only in an emergency)")
	download := fs.String("download", "", "your connection's download capacity, e.g. 100mbit")
	fs.IntVar(&cfg.Attach, "attach", leaf.DefaultAttach, "supernodes a leaf keeps links to")
	fs.StringVar(&cfg.PolicyFile, "policy", "", "promotion policy `FILE`, as canopy sim sweep writes it")
	fs.StringVar(&cfg.TURN, "turn", def.TURN, "as a supernode, run the TURN relay (and STUN binding service) for leaves here, UDP and TCP ("+node.Off+" for none)")
	fs.StringVar(&cfg.STUN, "stun", def.STUN, "as a supernode, run an RFC 5780 STUN service here for NAT behaviour discovery (needs --stun-alt; "+node.Off+" for none)")
	stunAlt := fs.String("stun-alt", "", "the supernode's second public address and port, IP:PORT, for the RFC 5780 STUN service")
	relayRate := fs.String("relay-rate", "", fmt.Sprintf("as a supernode, the relay bandwidth one leaf may use, e.g. 2mbit (default %d KiB/s; total: half of --upload)", relay.DefaultMaxBytesPerSecondPerLeaf>>10))
	fs.BoolVar(&cfg.PortMap, "portmap", true, "ask the home router (NAT-PMP, UPnP-IGD) to forward the control port")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := newLogger(*logLevel)
	if err != nil {
		return err
	}
	defer log.Sync()
	if r, err := parseRate(*relayRate); err != nil {
		return fmt.Errorf("--relay-rate: %w", err)
	} else if r > 0 {
		cfg.RelayQuotas.MaxBytesPerSecondPerLeaf = int64(r)
	}
	if *stunAlt != "" {
		if cfg.STUNAlternate, err = netip.ParseAddrPort(*stunAlt); err != nil {
			return fmt.Errorf("--stun-alt: %w", err)
		}
	}
	if cfg.UpBandwidth, err = parseRate(*upload); err != nil {
		return fmt.Errorf("--upload: %w", err)
	}
	if cfg.DownBandwidth, err = parseRate(*download); err != nil {
		return fmt.Errorf("--download: %w", err)
	}
	cfg.Shares, cfg.Join, cfg.Logger = shares, joins, log
	cfg.Jobs.AfterStep = killHook()
	n, err := node.Start(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "canopy: node %s is up as a %s (control %s, API %s). Ctrl-C to stop.\n", n.ID().Short(), n.Role(), n.Control(), n.APIAddr())
	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "canopy: leaving the network…")
	return n.Close()
}

func runDemo(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	once := fs.Bool("once", false, "exit after the demonstration instead of keeping the network up")
	apiAddr := fs.String("api", api.DefaultAddr, "local API address of the demo's first leaf, for canopy search and get")
	dir := fs.String("dir", "", "directory for the demo nodes' data and files (default: a temporary directory, removed on exit)")
	logLevel := fs.String("log-level", "error", "log level of the demo nodes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := newLogger(*logLevel)
	if err != nil {
		return err
	}
	defer log.Sync()
	net, err := demo.Run(ctx, demo.Options{Dir: *dir, API: *apiAddr, Out: os.Stdout, Logger: log})
	if err != nil {
		if net != nil {
			net.Close()
		}
		return err
	}
	defer net.Close()
	if *once {
		return nil
	}
	// The demo's first leaf keeps its API token in its own data directory,
	// not in the user's: the hints name it with --data.
	if tf := net.Leaves[0].APITokenFile(); tf != "" {
		self := os.Args[0]
		at := fmt.Sprintf("--api %s --data %s", net.Leaves[0].APIAddr(), filepath.Dir(tf))
		fmt.Printf("\nThe demo network stays up until Ctrl-C. In another terminal try:\n  %s status %s\n  %s search %s ocean\n  %s get %s --out /tmp %s\n",
			self, at, self, at, self, at, net.SampleID)
	} else {
		fmt.Println("\nThe demo network stays up until Ctrl-C.")
	}
	<-ctx.Done()
	fmt.Println("\nstopping the demo network…")
	return nil
}
