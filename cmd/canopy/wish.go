package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/canopy-p2p/canopy/api"
)

const wishUsage = `canopy wish [--json]                       your wishes: standing searches whose new matches are downloaded
canopy wish add WORDS... [--min-size S] [--max-size S] [--ext mp3,flac] [--to DIR]
canopy wish remove ID                      forget a wish (its downloads go on)`

func wishCommands() []*command {
	return []*command{
		{name: "add", args: "WORDS...", summary: "add a standing search; its matches are downloaded as they appear", run: runWishAdd},
		{name: "remove", args: "ID", summary: "forget a wish (its downloads go on)", run: runWishRemove},
	}
}

func runWish(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("wish", flag.ContinueOnError)
	af := addAPIFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(ctx, fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageErrorf("wish takes no arguments, got %q (canopy wish add WORDS..., canopy wish remove ID)", fs.Arg(0))
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	l, err := c.Wishes(ctx)
	if err != nil {
		return af.explain(err)
	}
	if *asJSON {
		return printJSON(l)
	}
	if len(l.Wishes) == 0 {
		fmt.Println("no wishes: canopy wish add WORDS...")
	}
	for _, w := range l.Wishes {
		printWish(w)
	}
	fmt.Printf("wishes take turns: one search every %v on average, at most %d back to back\n",
		time.Duration(l.IntervalS*float64(time.Second)), l.Burst)
	return nil
}

func printWish(w api.Wish) {
	var bounds []string
	if w.MinSize > 0 {
		bounds = append(bounds, "≥ "+humanBytes(w.MinSize))
	}
	if w.MaxSize > 0 {
		bounds = append(bounds, "≤ "+humanBytes(w.MaxSize))
	}
	if len(w.Ext) > 0 {
		bounds = append(bounds, strings.Join(w.Ext, ","))
	}
	extra := ""
	if len(bounds) > 0 {
		extra = " (" + strings.Join(bounds, ", ") + ")"
	}
	last := "not run yet"
	if w.LastRun != nil {
		last = fmt.Sprintf("last run %s ago, %d runs", humanDuration(time.Since(*w.LastRun)), w.Runs)
	}
	fmt.Printf("%d  %q%s → %s; %s; %d found\n", w.ID, shown(w.Words), extra, shown(w.To), last, len(w.Found))
	if w.LastError != "" {
		fmt.Printf("   last error: %s\n", shown(w.LastError))
	}
	for _, f := range w.Found {
		fmt.Printf("   %s  %s  %s  download %d\n", f.At.Local().Format("2006-01-02 15:04"), shown(f.Name), humanBytes(f.Size), f.Job)
	}
}

func runWishAdd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("wish add", flag.ContinueOnError)
	af := addAPIFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	ff := addFilterFlags(fs)
	to := fs.String("to", "", "where its downloads go (default: the node's downloads directory)")
	words, err := parseMixed(ctx, fs, args)
	if err != nil {
		return err
	}
	minB, maxB, exts, err := ff.parse()
	if err != nil {
		return err
	}
	if strings.TrimSpace(strings.Join(words, " ")) == "" {
		return usageErrorf("what do you wish for? usage: canopy wish add WORDS...")
	}
	dir, err := absOut(*to)
	if err != nil {
		return fmt.Errorf("--to: %w", err)
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	w, err := c.AddWish(ctx, api.WishAdd{Words: strings.Join(words, " "), MinSize: minB, MaxSize: maxB, Ext: exts, To: dir})
	if err != nil {
		return af.explain(err)
	}
	if *asJSON {
		return printJSON(w)
	}
	fmt.Printf("wish %d added: it searches now and then in turn with your other wishes; canopy wish shows what it found\n", w.ID)
	return nil
}

func runWishRemove(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("wish remove", flag.ContinueOnError)
	af := addAPIFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseMixed(ctx, fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErrorf("usage: canopy wish remove ID")
	}
	id, err := strconv.ParseInt(pos[0], 10, 64)
	if err != nil || id <= 0 {
		return usageErrorf("%q is not a wish ID (canopy wish lists them)", pos[0])
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	if err := c.RemoveWish(ctx, id); err != nil {
		return af.explain(err)
	}
	if *asJSON {
		return printJSON(map[string]int64{"removed": id})
	}
	fmt.Printf("wish %d removed\n", id)
	return nil
}
