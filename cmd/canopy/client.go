package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/internal/textsafe"
	"github.com/canopy-p2p/canopy/leaf"
	"github.com/canopy-p2p/canopy/node"
)

// tokenEnv is the environment variable that may hold the API token, for a
// node whose data directory this user cannot read (another user's node).
const tokenEnv = "CANOPY_API_TOKEN"

// apiFlags are the flags of every command that talks to a node's local API:
// where it is, and where its token comes from.
type apiFlags struct {
	addr, data, token string
	fs                *flag.FlagSet
	config            *string
	// source says where the token came from, for the message of a refusal;
	// missing is set when the token file does not exist.
	source  string
	missing bool
}

func addAPIFlags(fs *flag.FlagSet) *apiFlags {
	f := &apiFlags{fs: fs}
	fs.StringVar(&f.addr, "api", api.DefaultAddr, "local API address of the node (unset: $CANOPY_API, else the config file's api, else the default)")
	fs.StringVar(&f.data, "data", node.DefaultDataDir(), "the node's data directory, which holds its API token (unset: $CANOPY_DATA, else the config file's data, else the default), "+api.TokenFileName)
	fs.StringVar(&f.token, "api-token", "", "the node's API token (default: $"+tokenEnv+", else the token in --data)")
	f.config = addConfigFlag(fs)
	return f
}

// locate settles --api and --data as canopy up settles its own: the flag,
// else $CANOPY_API and $CANOPY_DATA, else the config file, else the
// default; so that a node configured in the file is found without flags.
func (f *apiFlags) locate() error {
	set := map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	if set["api"] && set["data"] {
		return nil
	}
	table := upSettings()
	cf, err := loadConfigFile(*f.config, table)
	if err != nil {
		return err
	}
	where := map[string]string{}
	for _, s := range table {
		dst := map[string]*string{"api": &f.addr, "data": &f.data}[s.key]
		if dst == nil || set[s.flagName()] {
			continue
		}
		if e := os.Getenv(s.envName()); e != "" {
			*dst, where[s.key] = e, "$"+s.envName()
		} else if v, ok := cf.values[s.key]; ok && len(v) == 1 {
			*dst, where[s.key] = v[0], cf.path
		}
	}
	if f.addr == node.Off || f.addr == "-" {
		return fmt.Errorf("the node's local API is off (api = %s from %s): there is no node to talk to", f.addr, where["api"])
	}
	if where["api"] != "" {
		if err := checkHostPort(f.addr, false); err != nil {
			return &configError{where: where["api"], key: "api", err: err}
		}
	}
	return nil
}

// client returns a client that sends the token from --api-token, else
// $CANOPY_API_TOKEN, else the node's token file. A missing token file is not
// an error yet: the node may not need one (it will), and a node that is not
// running deserves that message rather than one about a token. A damaged one
// is: it names the file.
func (f *apiFlags) client() (*api.Client, error) {
	if err := f.locate(); err != nil {
		return nil, err
	}
	var tok string
	var err error
	switch env := os.Getenv(tokenEnv); {
	case f.token != "":
		f.source = "--api-token"
		if tok, err = api.ParseToken([]byte(f.token)); err != nil {
			return nil, fmt.Errorf("--api-token: %w", err)
		}
	case env != "":
		f.source = "$" + tokenEnv
		if tok, err = api.ParseToken([]byte(env)); err != nil {
			return nil, fmt.Errorf("$%s: %w", tokenEnv, err)
		}
	default:
		f.source = api.TokenPath(f.data)
		tok, err = api.ReadTokenFile(f.data)
		if errors.Is(err, os.ErrNotExist) {
			f.missing, err = true, nil
		}
		if err != nil {
			return nil, err
		}
	}
	return api.NewClient(f.addr, tok), nil
}

// explain turns the node's 401 into one line that says where the token
// lives; other errors pass unchanged.
func (f *apiFlags) explain(err error) error {
	if !errors.Is(err, api.ErrUnauthorized) {
		return err
	}
	if f.missing {
		return fmt.Errorf("the node at %s needs its API token and there is none at %s: pass --data with the node's data directory, or --api-token TOKEN (or $%s) for another user's node", f.addr, f.source, tokenEnv)
	}
	return fmt.Errorf("the node at %s refused the API token from %s: its token is %s in the data directory it runs with; pass --data DIR, or --api-token TOKEN (or $%s)", f.addr, f.source, api.TokenFileName, tokenEnv)
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func runStatus(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	af := addAPIFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(ctx, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("status takes no arguments, got %q", fs.Arg(0))
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	st, err := c.Status(ctx)
	if err != nil {
		return af.explain(err)
	}
	if *asJSON {
		return printJSON(st)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "id\t%s\n", st.ID)
	fmt.Fprintf(w, "role\t%s\n", st.Role)
	fmt.Fprintf(w, "version\t%s\n", st.Version)
	fmt.Fprintf(w, "control\t%s\n", st.Control)
	fmt.Fprintf(w, "uptime\t%s\n", st.Uptime)
	fmt.Fprintf(w, "shared\t%d files, %s\n", st.SharedFiles, humanBytes(st.SharedBytes))
	fmt.Fprintf(w, "policy\t%s\n", st.Policy)
	if t := st.Transfers; t != nil {
		fmt.Fprintf(w, "transfers\t%s sent, %s received; %d direct, %d relayed connections; %d uploads refused\n",
			humanBytes(t.BytesSent), humanBytes(t.BytesReceived), t.Direct, t.Relayed, t.UploadsRefused)
		fmt.Fprintf(w, "limits\tup %s, down %s\n", limitText(t.UpLimit), limitText(t.DownLimit))
	}
	if st.Role == "supernode" {
		fmt.Fprintf(w, "leaves\t%d\n", st.Leaves)
		fmt.Fprintf(w, "index\t%d files\n", st.IndexFiles)
	}
	w.Flush()
	fmt.Printf("\nattached to %d supernode(s):\n", len(st.Supernodes))
	for _, a := range st.Supernodes {
		line := fmt.Sprintf("  %s  %s  since %s, holds %d of our files", a.ID[:10], shown(a.Control), a.Since.Format(time.TimeOnly), a.Files)
		if a.IndexError != "" {
			line += " (refused some: " + shown(a.IndexError) + ")"
		}
		fmt.Println(line)
	}
	if p := st.Promotion; p != nil {
		fmt.Printf("\nrole decision (--supernode %s): %s\n", p.Consent, p.Summary)
		for _, c := range p.Checks {
			fmt.Printf("  %s\n", c)
		}
		fmt.Printf("  reachability: %s\n", p.Reachability.Verdict)
		for _, e := range p.Reachability.Evidence {
			fmt.Printf("    %s\n", e)
		}
		for _, s := range p.Switches {
			fmt.Printf("  became a %s at %s: %s\n", s.To, s.At.Format(time.TimeOnly), s.Reason)
		}
	}
	if n := st.NAT; n != nil {
		fmt.Printf("\nNAT: %s", n.Kind)
		if n.Public != "" {
			fmt.Printf(", seen from outside as %s", n.Public)
		}
		fmt.Printf("; port mapping: %s (details: canopy natcheck)\n", n.PortMap)
	}
	if len(st.Ring) > 0 {
		fmt.Printf("\nring (%d supernodes):\n", len(st.Ring))
		for _, m := range st.Ring {
			self := ""
			if m.Self {
				self = "  (this node)"
			}
			fmt.Printf("  %s  %s  %d leaves, %d free slots, load %d%%%s\n", m.ID[:10], shown(m.Control), m.Leaves, m.Slots, m.Load, self)
		}
	}
	printPeopleCounters(os.Stdout, st.People)
	return nil
}

// searchGrace is how long past its --timeout the command waits for the
// node's last line before it gives up on the node.
const searchGrace = 10 * time.Second

func runSearch(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("search", flag.ContinueOnError)
	af := addAPIFlags(fs)
	asJSON := fs.Bool("json", false, "print the hits as one JSON array at the end")
	asNDJSON := fs.Bool("ndjson", false, "print each event as it arrives, one JSON object per line (hit events, then done with the whole result)")
	timeout := fs.Duration("timeout", api.DefaultSearchTimeout, "how long to collect hits")
	limit := fs.Int("limit", 0, fmt.Sprintf("stop after this many files (default %d)", leaf.DefaultSearchLimit))
	ff := addFilterFlags(fs)
	if err := parseFlags(ctx, fs, args); err != nil {
		return err
	}
	minB, maxB, extList, err := ff.parse()
	if err != nil {
		return err
	}
	words := strings.Join(fs.Args(), " ")
	if strings.TrimSpace(words) == "" {
		return usageErrorf("what should I search for? usage: canopy search WORDS...")
	}
	if *asJSON && *asNDJSON {
		return usageErrorf("--json and --ndjson: choose one")
	}
	if *limit < 0 || *timeout < 0 {
		return usageErrorf("--limit and --timeout cannot be negative")
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout+searchGrace)
	defer cancel()
	req := api.SearchRequest{Words: words, TimeoutMS: int(timeout.Milliseconds()), Limit: *limit,
		MinSize: minB, MaxSize: maxB, Ext: extList}
	enc := json.NewEncoder(os.Stdout)
	printed := map[string]bool{}
	res, err := c.SearchStream(ctx, req, func(ev api.SearchEvent) {
		switch {
		case *asNDJSON:
			_ = enc.Encode(ev)
		case *asJSON:
		case !printed[ev.Hit.ID]:
			// A file is printed when it first arrives; more sources
			// for it later show in the count at the end.
			if len(printed) == 0 {
				fmt.Printf("%-64s  %10s  %7s  %s\n", "ID", "SIZE", "SOURCES", "NAME")
			}
			printed[ev.Hit.ID] = true
			src := fmt.Sprint(ev.Hit.Sources)
			if ev.Hit.Local {
				src += "+you"
			}
			fmt.Printf("%-64s  %10s  %7s  %s\n", ev.Hit.ID, humanBytes(ev.Hit.Size), src, shown(ev.Hit.Name))
		}
	})
	if err != nil {
		return af.explain(err)
	}
	switch {
	case *asNDJSON:
		return enc.Encode(api.SearchEvent{Event: api.SearchEventDone, ElapsedMS: res.ElapsedMS, Result: &res})
	case *asJSON:
		return printJSON(res.Hits)
	case len(res.Hits) == 0:
		fmt.Printf("no files found for %q in %.1f s\n", words, res.ElapsedMS/1000)
		return nil
	}
	sources := 0
	for _, h := range res.Hits {
		sources += h.Sources
	}
	fmt.Printf("\n%d file(s) from %d source(s) in all; first hit after %.0f ms, search over after %.0f ms. Download with: canopy get ID\n",
		len(res.Hits), sources, res.FirstHitMS, res.ElapsedMS)
	return nil
}

func runNATCheck(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("natcheck", flag.ContinueOnError)
	af := addAPIFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(ctx, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("natcheck takes no arguments, got %q", fs.Arg(0))
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	n, err := c.NATCheck(ctx)
	if err != nil {
		return af.explain(err)
	}
	if *asJSON {
		return printJSON(n)
	}
	fmt.Printf("NAT:          %s (mapping %s, filtering %s)\n", n.Kind, n.Mapping, n.Filtering)
	if n.Public != "" {
		fmt.Printf("public:       %s (from %s)\n", n.Public, n.Local)
	}
	if n.Error != "" {
		fmt.Printf("note:         %s\n", n.Error)
	}
	fmt.Printf("reachability: %s\n", n.Reachability.Verdict)
	fmt.Printf("port mapping: %s\n", n.PortMap)
	if len(n.Evidence) > 0 || len(n.Reachability.Evidence) > 0 {
		fmt.Println("evidence:")
		for _, e := range append(n.Evidence, n.Reachability.Evidence...) {
			fmt.Printf("  %s\n", e)
		}
	}
	return nil
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// shownMax bounds a string from the network on the terminal: a file name
// (255 bytes at most in the index) or an address.
const shownMax = 255

// shown is a string that came from other nodes (a file name, a supernode's
// address or complaint) as the terminal gets it: bounded, and without control
// characters (escape sequences that move the cursor or retitle the window)
// or bidirectional overrides (U+202E makes "photo\u202Egpj.exe" show as
// "photoexe.jpg").
// The JSON output carries the names as they are: JSON escapes them.
func shown(s string) string { return textsafe.Bound(s, shownMax) }

// limitText shows a bandwidth limit in bytes per second, or "none".
func limitText(bytesPerSecond float64) string {
	if bytesPerSecond <= 0 {
		return "none"
	}
	return humanBytes(int64(bytesPerSecond)) + "/s"
}

// filterFlags are --min-size, --max-size and --ext, of search and wish add.
type filterFlags struct{ minSize, maxSize, exts *string }

func addFilterFlags(fs *flag.FlagSet) filterFlags {
	return filterFlags{
		minSize: fs.String("min-size", "", "only files of at least this size (700k, 4.5MB, 1GiB)"),
		maxSize: fs.String("max-size", "", "only files of at most this size"),
		exts:    fs.String("ext", "", "only files with these extensions, comma-separated (mp3,flac)"),
	}
}

// parse reads the flags into byte bounds and extensions, or a usage error.
func (f filterFlags) parse() (minB, maxB int64, exts []string, err error) {
	if minB, err = parseSize(*f.minSize); err != nil {
		return 0, 0, nil, usageErrorf("--min-size: %v", err)
	}
	if maxB, err = parseSize(*f.maxSize); err != nil {
		return 0, 0, nil, usageErrorf("--max-size: %v", err)
	}
	if maxB > 0 && maxB < minB {
		return 0, 0, nil, usageErrorf("--max-size is below --min-size")
	}
	if exts, err = parseExts(*f.exts); err != nil {
		return 0, 0, nil, usageErrorf("--ext: %v", err)
	}
	return minB, maxB, exts, nil
}
