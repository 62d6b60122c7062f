package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/canopy-p2p/canopy/api"
)

const uploadsUsage = `canopy uploads [--json]     what you serve now, and who waits for an upload slot`

func runUploads(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("uploads", flag.ContinueOnError)
	af := addAPIFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(ctx, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("uploads takes no arguments")
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	u, err := c.Uploads(ctx)
	if err != nil {
		return af.explain(err)
	}
	if *asJSON {
		return printJSON(u)
	}
	printUploads(u, time.Now())
	return nil
}

// printUploads prints the slots in use, each upload and the queue.
func printUploads(u api.Uploads, now time.Time) {
	fmt.Printf("%d of %d upload slots in use (at most %d per peer); %d waiting (at most %d)\n",
		len(u.Active), u.Slots, u.PerPeer, len(u.Queue), u.MaxQueue)
	fmt.Printf("served since start: %s direct, %s relayed\n", humanBytes(u.UploadedDirect), humanBytes(u.UploadedRelayed))
	if len(u.Active) > 0 {
		w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "TO\tFILE\tSENT\tSIZE\tFOR\tPATH")
		for _, a := range u.Active {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", personName(a.Contact, short(a.Peer)), shown(a.Name),
				humanBytes(a.Sent), humanBytes(a.Size), humanDuration(now.Sub(a.Started)), a.Path)
		}
		w.Flush()
	}
	if len(u.Queue) > 0 {
		w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "#\tWAITING\tCONTENT\tFOR")
		for _, q := range u.Queue {
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\n", q.Position, personName(q.Contact, short(q.Peer)), q.Content[:16],
				humanDuration(now.Sub(q.Since)))
		}
		w.Flush()
	}
}
