package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/canopy-p2p/canopy/api"
)

// The sharing and browsing commands: browse, library, network (README.md,
// "Sharing by trust and browsing").

const browseUsage = `canopy browse NODE-ID|CONTACT [--json] [--limit N]
(CONTACT: your name for a contact, their nickname or an ID prefix; any
listed file can be fetched with canopy get ID)`

const libraryUsage = `canopy library [--json]                       your shares: visibility, files, hashing
canopy library share DIR everyone|contacts|trusted|none
    share DIR (or stop, with none) from now until the node stops; the
    config file's share, share_contacts and share_trusted are what a
    restart shares`

const networkUsage = `canopy network [--json]     the supernodes, totals, and your contacts online`

func runBrowse(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("browse", flag.ContinueOnError)
	af := addAPIFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	limit := fs.Int("limit", 0, "list at most this many files (default 20000)")
	pos, err := parseMixed(ctx, fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErrorf("usage: %s", browseUsage)
	}
	if *limit < 0 {
		return usageErrorf("--limit cannot be negative")
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	id, err := resolveContact(ctx, c, pos[0])
	if err != nil {
		return af.explain(err)
	}
	res, err := c.Browse(ctx, id, *limit)
	if err != nil {
		return af.explain(err)
	}
	if *asJSON {
		return printJSON(res)
	}
	if len(res.Files) == 0 {
		fmt.Printf("%s shares nothing with you (%d folders visible)\n", id[:10], len(res.Folders))
		return nil
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tSIZE\tHAVE\tFILE")
	var total int64
	for _, f := range res.Files {
		have := ""
		if f.Have {
			have = "yes"
		}
		total += f.Size
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", f.ID, humanBytes(f.Size), have, shown(f.Folder+"/"+f.Path))
	}
	w.Flush()
	more := ""
	if res.Truncated {
		more = " (more not listed: --limit)"
	}
	var folders []string
	for _, f := range res.Folders {
		folders = append(folders, shown(f.Name)+" ("+f.Visibility+")")
	}
	fmt.Printf("%d files, %s, in %s%s; fetch one with canopy get ID\n", len(res.Files), humanBytes(total), strings.Join(folders, ", "), more)
	return nil
}

func runLibrary(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("library", flag.ContinueOnError)
	af := addAPIFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseMixed(ctx, fs, args)
	if err != nil {
		return err
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	var lib api.Library
	switch {
	case len(pos) == 0:
		lib, err = c.Library(ctx)
	case len(pos) == 3 && pos[0] == "share":
		dir, aerr := filepath.Abs(pos[1])
		if aerr != nil {
			return usageErrorf("%s: %v", pos[1], aerr)
		}
		switch pos[2] {
		case "everyone", "contacts", "trusted", "none":
		default:
			return usageErrorf("visibility %q is not everyone, contacts, trusted or none", pos[2])
		}
		lib, err = c.SetShare(ctx, api.ShareSet{Dir: dir, Visibility: pos[2]})
	default:
		return usageErrorf("usage:\n%s", libraryUsage)
	}
	if err != nil {
		return af.explain(err)
	}
	if *asJSON {
		return printJSON(lib)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SHARE\tVISIBILITY\tFILES\tSIZE\tDIR")
	for _, s := range lib.Shares {
		dir := shown(s.Dir)
		if !s.Available {
			dir += " (cannot be read now)"
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\n", shown(s.Name), s.Visibility, s.Files, humanBytes(s.Bytes), dir)
	}
	w.Flush()
	state := "idle"
	switch {
	case lib.Scanning && lib.Hashing != "":
		state = "hashing " + shown(lib.Hashing)
	case lib.Scanning:
		state = "scanning"
	}
	fmt.Printf("%d files, %s; %d shared with everyone (in the supernodes' index); %s", lib.Files, humanBytes(lib.Bytes), lib.Public, state)
	if lib.LastScan != nil {
		fmt.Printf("; last scan %s: %d added, %d changed, %d removed", lib.LastScan.At, lib.LastScan.Added, lib.LastScan.Changed, lib.LastScan.Removed)
	}
	if lib.ScanError != "" {
		fmt.Printf("; scan error: %s", shown(lib.ScanError))
	}
	fmt.Println()
	return nil
}

func runNetwork(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("network", flag.ContinueOnError)
	af := addAPIFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(ctx, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("network takes no arguments")
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	n, err := c.Network(ctx)
	if err != nil {
		return af.explain(err)
	}
	if *asJSON {
		return printJSON(n)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SUPERNODE\tLOAD\tLEAVES\tFREE\tFILES\tUP\tVERSION\tCONTROL")
	for _, s := range n.Supernodes {
		mark := ""
		switch {
		case s.Self:
			mark = " (you)"
		case s.Attached:
			mark = " (yours)"
		}
		fmt.Fprintf(w, "%s%s\t%d%%\t%d\t%d\t%d\t%s\t%s\t%s\n", s.ID[:10], mark, s.Load, s.Leaves, s.Slots, s.Files,
			humanDuration(time.Duration(s.UptimeS)*time.Second), shown(s.Version), shown(s.Control))
	}
	w.Flush()
	fmt.Printf("%d supernodes, %d leaves, %d files indexed (as %s sees the ring)\n", n.Totals.Supernodes, n.Totals.Leaves, n.Totals.Files, short(n.From))
	if len(n.Contacts) == 0 {
		fmt.Println("no contact online")
		return nil
	}
	for _, k := range n.Contacts {
		where := make([]string, len(k.Where))
		for i, s := range k.Where {
			where[i] = short(s)
		}
		fmt.Printf("online: %s  %s  at %s\n", personName(firstOf(k.Name, k.Nick), short(k.ID)), k.Trust, strings.Join(where, ", "))
	}
	return nil
}

func short(id string) string {
	if len(id) > 10 {
		return id[:10]
	}
	return id
}

func firstOf(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// humanDuration prints a duration in its largest whole units: 3d4h, 2h5m, 40s.
func humanDuration(d time.Duration) string {
	switch {
	case d >= 24*time.Hour:
		return fmt.Sprintf("%dd%dh", d/(24*time.Hour), d%(24*time.Hour)/time.Hour)
	case d >= time.Hour:
		return fmt.Sprintf("%dh%dm", d/time.Hour, d%time.Hour/time.Minute)
	case d >= time.Minute:
		return fmt.Sprintf("%dm%ds", d/time.Minute, d%time.Minute/time.Second)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

// sizeUnits are the size suffixes --min-size and --max-size take: decimal
// (k, M, G, T) and binary (KiB, MiB, GiB, TiB), case-insensitive, with or
// without a B.
var sizeUnits = []struct {
	suffix string
	mult   float64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"k", 1e3}, {"m", 1e6}, {"g", 1e9}, {"t", 1e12}, {"b", 1},
}

// parseSize reads a file size such as 700k, 4.5MB, 1GiB or 1234; "" is 0.
func parseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if t == "" {
		return 0, nil
	}
	mult := 1.0
	for _, u := range sizeUnits {
		if num, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(num), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) || v*mult > 1<<62 {
		return 0, fmt.Errorf("bad size %q (e.g. 700k, 4.5MB, 1GiB)", s)
	}
	return int64(v * mult), nil
}

// parseExts reads --ext mp3,flac,.ogg into lower-case extensions without
// dots.
func parseExts(s string) ([]string, error) {
	var out []string
	for _, e := range strings.Split(s, ",") {
		e = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(e), "."))
		if e == "" {
			continue
		}
		if len(e) > 16 || strings.ContainsAny(e, "./\\ ") {
			return nil, fmt.Errorf("bad extension %q", e)
		}
		out = append(out, e)
	}
	return out, nil
}
