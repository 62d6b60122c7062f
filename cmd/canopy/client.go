package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/leaf"
)

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func runStatus(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	addr := fs.String("api", api.DefaultAddr, "local API address of the node")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	st, err := api.NewClient(*addr).Status(ctx)
	if err != nil {
		return err
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
	if st.Role == "supernode" {
		fmt.Fprintf(w, "leaves\t%d\n", st.Leaves)
		fmt.Fprintf(w, "index\t%d files\n", st.IndexFiles)
	}
	w.Flush()
	fmt.Printf("\nattached to %d supernode(s):\n", len(st.Supernodes))
	for _, a := range st.Supernodes {
		line := fmt.Sprintf("  %s  %s  since %s, holds %d of our files", a.ID[:10], a.Control, a.Since.Format(time.TimeOnly), a.Files)
		if a.IndexError != "" {
			line += " (refused some: " + a.IndexError + ")"
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
			fmt.Printf("  %s  %s  %d leaves, %d free slots, load %d%%%s\n", m.ID[:10], m.Control, m.Leaves, m.Slots, m.Load, self)
		}
	}
	return nil
}

func runSearch(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("search", flag.ContinueOnError)
	addr := fs.String("api", api.DefaultAddr, "local API address of the node")
	asJSON := fs.Bool("json", false, "print JSON")
	timeout := fs.Duration("timeout", api.DefaultSearchTimeout, "how long to collect hits")
	limit := fs.Int("limit", 0, fmt.Sprintf("stop after this many files (default %d)", leaf.DefaultSearchLimit))
	if err := fs.Parse(args); err != nil {
		return err
	}
	words := strings.Join(fs.Args(), " ")
	if strings.TrimSpace(words) == "" {
		return errors.New("what should I search for? usage: canopy search WORDS...")
	}
	res, err := api.NewClient(*addr).Search(ctx, api.SearchRequest{Words: words, TimeoutMS: int(timeout.Milliseconds()), Limit: *limit})
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(res.Hits)
	}
	if len(res.Hits) == 0 {
		fmt.Printf("no files found for %q in %.1f s\n", words, res.ElapsedMS/1000)
		return nil
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tSIZE\tSOURCES\tNAME")
	for _, h := range res.Hits {
		src := fmt.Sprint(h.Sources)
		if h.Local {
			src += " + you"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", h.ID, humanBytes(h.Size), src, h.Name)
	}
	w.Flush()
	fmt.Printf("\n%d file(s); first hit after %.0f ms. Download with: canopy get ID\n", len(res.Hits), res.FirstHitMS)
	return nil
}

func runGet(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("get", flag.ContinueOnError)
	addr := fs.String("api", api.DefaultAddr, "local API address of the node")
	out := fs.String("out", ".", "directory to save the file in")
	asJSON := fs.Bool("json", false, "print the progress events as JSON lines")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: canopy get [--out DIR] CONTENT-ID")
	}
	dir, err := filepath.Abs(*out)
	if err != nil {
		return err
	}
	tty := term.IsTerminal(int(os.Stdout.Fd()))
	var bar *progressbar.ProgressBar
	lastLine := time.Time{}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		done, err := api.NewClient(*addr).Get(ctx, api.GetRequest{ID: fs.Arg(0), Out: dir}, func(ev api.GetEvent) { _ = enc.Encode(ev) })
		if err != nil {
			return err
		}
		return enc.Encode(done) // Get returns the final event rather than passing it on
	}
	done, err := api.NewClient(*addr).Get(ctx, api.GetRequest{ID: fs.Arg(0), Out: dir}, func(ev api.GetEvent) {
		if ev.Total == 0 {
			return
		}
		if tty {
			if bar == nil {
				bar = progressbar.DefaultBytes(ev.Total, ev.Name)
			}
			_ = bar.Set64(ev.Have)
			return
		}
		if time.Since(lastLine) >= time.Second {
			lastLine = time.Now()
			fmt.Printf("%s: %s of %s (%.0f%%), %s/s from %d source(s)\n", ev.Name, humanBytes(ev.Have), humanBytes(ev.Total),
				100*float64(ev.Have)/float64(ev.Total), humanBytes(int64(ev.Rate)), ev.Sources)
		}
	})
	if bar != nil {
		if err == nil {
			_ = bar.Finish()
		}
		fmt.Println()
	}
	if err != nil {
		return err
	}
	rate := 0.0
	if done.Seconds > 0 {
		rate = float64(done.Total) / done.Seconds
	}
	fmt.Printf("saved %s (%s, verified) in %.1f s, %s/s\n", done.Path, humanBytes(done.Total), done.Seconds, humanBytes(int64(rate)))
	for _, b := range done.BadSources {
		fmt.Printf("warning: source %s sent corrupt data and was dropped\n", b[:10])
	}
	for _, c := range done.Connections {
		fmt.Printf("  from %.10s: %s (%s → %s), connected in %.0f ms, %s\n", c.Source, c.Path, c.Local, c.Remote, c.ConnectMS, humanBytes(c.Bytes))
	}
	return nil
}

func runNATCheck(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("natcheck", flag.ContinueOnError)
	addr := fs.String("api", api.DefaultAddr, "local API address of the node")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	n, err := api.NewClient(*addr).NATCheck(ctx)
	if err != nil {
		return err
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
