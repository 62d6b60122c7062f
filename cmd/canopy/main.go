// Command canopy is the one Canopy binary: it runs a node (`canopy up`), talks
// to a running node through its local API (status, search, get), starts a demo
// network on loopback, and prints its version. This file only parses flags and
// wires packages together.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
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
	"github.com/canopy-p2p/canopy/node"
)

// commandTable is every command of the binary. The dispatcher, `canopy
// -h`, each command's -h and `canopy completion` read it; a new command is
// one entry here (its run parses flags with parseFlags).
func commandTable() []*command {
	return []*command{
		{name: "up", summary: "run a node until Ctrl-C", run: runUp},
		{name: "status", summary: "show what the running node is doing", run: runStatus},
		{name: "search", args: "WORDS...", summary: "search the network; hits are printed as they arrive", run: runSearch},
		{name: "get", args: "CONTENT-ID", summary: "download a file, verified piece by piece, as a job of the node (Ctrl-C detaches; the job goes on)", run: runGet},
		{name: "downloads", summary: "the node's download jobs: state, progress, sources; follow or act on one", run: runDownloads, subs: downloadCommands()},
		{name: "uploads", summary: "what you serve now, and who waits for an upload slot", help: uploadsUsage, run: runUploads},
		{name: "wish", summary: "standing searches whose new matches are downloaded as they appear", help: wishUsage, run: runWish, subs: wishCommands()},
		{name: "browse", args: "NODE-ID|CONTACT", summary: "list what a peer shares with you (fetch any file with get)", help: browseUsage, run: runBrowse},
		{name: "library", summary: "your shares: visibility, file counts, hashing; share a folder now", help: libraryUsage, run: runLibrary},
		{name: "network", summary: "the supernodes, network totals and your contacts online", help: networkUsage, run: runNetwork},
		{name: "natcheck", summary: "how this node sits behind its NAT, and who can reach it", run: runNATCheck},
		{name: "ui", summary: "open the node's web UI in a browser (prints a one-time login link)", run: runUI},
		{name: "profile", summary: "your nickname and status", help: profileUsage, run: runProfile},
		{name: "contacts", summary: "your contacts, their presence and your requests", help: contactsUsage, run: runContacts},
		{name: "msg", summary: "messages, delivered even when the contact is offline", help: msgUsage, run: runMsg},
		{name: "demo", summary: "start a small network on loopback and show it working", run: runDemo},
		{name: "sim", summary: "simulate a network with the node's own decision code", help: simUsage, run: runSim,
			subs: []*command{{name: "sweep", summary: "grid-search the promotion policy over simulated runs", help: simUsage, run: runSweep}}},
		{name: "config", summary: "the config file",
			subs: []*command{{name: "show", summary: "print every canopy up setting's effective value and where it came from", run: runConfigShow}}},
		{name: "completion", args: "bash|zsh|fish", summary: "print a shell completion script", help: completionHelp,
			argChoices: completionShells, run: runCompletion},
		{name: "version", summary: "print the version", run: runVersion},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := dispatch(ctx, commandTable(), os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

func runVersion(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(ctx, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("version takes no arguments")
	}
	if *asJSON {
		return printJSON(struct {
			Version  string `json:"version"`
			Software string `json:"software"`
		}{node.Version, node.Software})
	}
	fmt.Printf("canopy %s\n", node.Version)
	return nil
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

func runDemo(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	once := fs.Bool("once", false, "exit after the demonstration instead of keeping the network up")
	apiAddr := fs.String("api", api.DefaultAddr, "local API address of the demo's first leaf, for canopy search and get")
	dir := fs.String("dir", "", "directory for the demo nodes' data and files (default: a temporary directory, removed on exit)")
	logLevel := fs.String("log-level", "error", "log level of the demo nodes")
	asJSON := fs.Bool("json", false, "narrate on stderr, and print on stdout, once the network is up, one JSON object with the first leaf's API address, its data directory and the sample file's ID")
	if err := parseFlags(ctx, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("demo takes no arguments")
	}
	log, err := newLogger(*logLevel)
	if err != nil {
		return err
	}
	defer log.Sync()
	narration := io.Writer(os.Stdout)
	if *asJSON {
		narration = os.Stderr
	}
	net, err := demo.Run(ctx, demo.Options{Dir: *dir, API: *apiAddr, Out: narration, Logger: log})
	if err != nil {
		if net != nil {
			net.Close()
		}
		return err
	}
	defer net.Close()
	if *asJSON {
		out := struct {
			API      string `json:"api"`
			Data     string `json:"data,omitempty"`
			SampleID string `json:"sample_id"`
		}{API: net.Leaves[0].APIAddr(), SampleID: net.SampleID.String()}
		if tf := net.Leaves[0].APITokenFile(); tf != "" {
			out.Data = filepath.Dir(tf)
		}
		if err := printJSON(out); err != nil {
			return err
		}
	}
	if *once {
		return nil
	}
	// The demo's first leaf keeps its API token in its own data directory,
	// not in the user's: the hints name it with --data.
	if tf := net.Leaves[0].APITokenFile(); tf != "" {
		self := os.Args[0]
		at := fmt.Sprintf("--api %s --data %s", net.Leaves[0].APIAddr(), filepath.Dir(tf))
		fmt.Fprintf(narration, "\nThe demo network stays up until Ctrl-C. In another terminal try:\n  %s status %s\n  %s search %s ocean\n  %s get %s --out /tmp %s\n  %s ui %s   (leaf 1's web UI in your browser)\n",
			self, at, self, at, self, at, net.SampleID, self, at)
	} else {
		fmt.Fprintln(narration, "\nThe demo network stays up until Ctrl-C.")
	}
	<-ctx.Done()
	fmt.Fprintln(narration, "\nstopping the demo network…")
	return nil
}
