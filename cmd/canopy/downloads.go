package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/canopy-p2p/canopy/api"
)

// runGet asks the node to download a file, as a job of the node's, and
// follows it until it is done. Ctrl-C detaches: the job goes on.
func runGet(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("get", flag.ContinueOnError)
	af := addAPIFlags(fs)
	out := fs.String("out", "", "directory to save the file in, created if missing (default: the node's downloads directory, canopy up --downloads)")
	name := fs.String("name", "", "file name to save as (default: the search hit's)")
	asJSON := fs.Bool("json", false, "print the job as JSON lines, one per change")
	detach := fs.Bool("detach", false, "queue the download and return at once")
	if err := parseFlags(ctx, fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErrorf("usage: canopy get [--out DIR] CONTENT-ID")
	}
	dir, err := absOut(*out)
	if err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	job, err := c.Enqueue(ctx, api.DownloadRequest{ID: fs.Arg(0), Name: *name, Out: dir})
	if err != nil {
		return af.explain(err)
	}
	if *asJSON {
		if err := printJSONLine(job); err != nil {
			return err
		}
	} else if job.Existing {
		fmt.Fprintf(os.Stderr, "download %d of this file is already %s; following it\n", job.ID, job.State)
	} else {
		fmt.Fprintf(os.Stderr, "download %d queued: %s\n", job.ID, shown(job.Name))
	}
	if *detach {
		if !*asJSON {
			fmt.Printf("download %d goes on in the node; follow it with: canopy downloads follow %d\n", job.ID, job.ID)
		}
		return nil
	}
	return follow(ctx, af, c, job.ID, *asJSON)
}

// follow shows a job's progress until it is done (nil), failed or paused
// (an error), or the user presses Ctrl-C (an error that says how to follow
// again; the job goes on in the node).
func follow(ctx context.Context, af *apiFlags, c *api.Client, id int64, asJSON bool) error {
	tty := !asJSON && term.IsTerminal(int(os.Stdout.Fd()))
	var bar *progressbar.ProgressBar
	var last api.Download
	lastLine := time.Time{}
	err := c.FollowDownloads(ctx, id, func(d api.Download) bool {
		last = d
		if asJSON {
			_ = printJSONLine(d)
		} else if tty && d.Size > 0 && (d.State == api.DownloadDownloading || d.State == api.DownloadVerifying) {
			if bar == nil {
				bar = progressbar.DefaultBytes(d.Size, shown(d.Name))
			}
			_ = bar.Set64(d.Have)
		} else if !tty && time.Since(lastLine) >= time.Second && d.State == api.DownloadDownloading && d.Size > 0 {
			lastLine = time.Now()
			fmt.Printf("%s: %s of %s (%.0f%%), %s/s from %d source(s)\n", shown(d.Name), humanBytes(d.Have), humanBytes(d.Size),
				100*float64(d.Have)/float64(d.Size), humanBytes(int64(d.Rate)), connected(d))
		}
		switch d.State {
		case api.DownloadDone, api.DownloadFailed, api.DownloadPaused:
			return false
		}
		return true
	})
	if bar != nil {
		if err == nil && last.State == api.DownloadDone {
			_ = bar.Finish()
		}
		fmt.Println()
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("detached from download %d, which goes on in the node: follow it again with `canopy downloads follow %d`, or see all with `canopy downloads`", id, id)
	}
	if err != nil {
		return af.explain(err)
	}
	switch last.State {
	case api.DownloadFailed:
		return fmt.Errorf("download %d failed: %s", id, shown(last.Reason))
	case api.DownloadPaused:
		return fmt.Errorf("download %d is paused: resume it with `canopy downloads resume %d`", id, id)
	}
	if asJSON {
		return nil
	}
	secs := 0.0
	if last.Finished != nil {
		secs = last.Finished.Sub(last.Created).Seconds()
	}
	rate := 0.0
	if secs > 0 {
		rate = float64(last.Size) / secs
	}
	fmt.Printf("saved %s (%s, verified) in %.1f s, %s/s\n", last.Path, humanBytes(last.Size), secs, humanBytes(int64(rate)))
	if last.Refetched > 0 {
		fmt.Printf("  %s fetched again (lost in a crash, or bad on disk)\n", humanBytes(last.Refetched))
	}
	printSources(last)
	return nil
}

// connected counts a job's sources that are connected and not dropped.
func connected(d api.Download) int {
	n := 0
	for _, s := range d.Sources {
		if s.Path != "" && s.Error == "" {
			n++
		}
	}
	return n
}

func printSources(d api.Download) {
	for _, s := range d.Sources {
		switch {
		case s.Bad:
			fmt.Printf("  warning: source %.10s sent corrupt data and was dropped\n", s.Node)
		case s.Queued > 0:
			fmt.Printf("  from %.10s: every upload slot taken; place %d in its queue, asking again\n", s.Node, s.Queued)
		case s.Path != "":
			fmt.Printf("  from %.10s: %s (%s → %s), connected in %.0f ms, %s\n", s.Node, s.Path, s.Local, s.Remote, s.ConnectMS, humanBytes(s.Bytes))
		case s.Error != "":
			fmt.Printf("  from %.10s: not reached: %s\n", s.Node, shown(s.Error))
		}
	}
}

// runDownloads lists the node's download jobs.
func runDownloads(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("downloads", flag.ContinueOnError)
	af := addAPIFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(ctx, fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageErrorf("downloads takes no arguments, got %q (to act on a job: canopy downloads follow|pause|resume|cancel|retry ID)", fs.Arg(0))
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	list, err := c.Downloads(ctx)
	if err != nil {
		return af.explain(err)
	}
	if *asJSON {
		return printJSON(list)
	}
	printDownloads(list)
	return nil
}

// downloadCommands are canopy downloads follow, pause, resume, cancel and
// retry, each taking a job ID.
func downloadCommands() []*command {
	act := func(name, summary string) *command {
		return &command{name: name, args: "ID", summary: summary, run: func(ctx context.Context, args []string) error {
			return runDownloadAction(ctx, name, args)
		}}
	}
	return []*command{
		act("follow", "follow a job until it is done, as get does"),
		act(api.ActionPause, "stop a queued or running job, keeping what it has"),
		act(api.ActionResume, "queue a paused job again"),
		act(api.ActionCancel, "stop a job and delete its part file"),
		act(api.ActionRetry, "queue a failed job again, from what its part file holds"),
	}
}

func runDownloadAction(ctx context.Context, action string, args []string) error {
	fs := flag.NewFlagSet("downloads "+action, flag.ContinueOnError)
	af := addAPIFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(ctx, fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErrorf("usage: canopy downloads %s ID", action)
	}
	id, err := strconv.ParseInt(fs.Arg(0), 10, 64)
	if err != nil || id <= 0 {
		return usageErrorf("%q is not a download ID (canopy downloads lists them)", fs.Arg(0))
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	if action == "follow" {
		return follow(ctx, af, c, id, *asJSON)
	}
	d, err := c.DownloadAction(ctx, id, action)
	if err != nil {
		return af.explain(err)
	}
	if *asJSON {
		return printJSON(d)
	}
	fmt.Printf("download %d: %s\n", d.ID, d.State)
	return nil
}

func printDownloads(list []api.Download) {
	if len(list) == 0 {
		fmt.Println("no downloads")
		return
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tSTATE\tPROGRESS\tRATE\tSOURCES\tNAME")
	for _, d := range list {
		prog := humanBytes(d.Have)
		if d.Size > 0 {
			prog = fmt.Sprintf("%.0f%% of %s", 100*float64(d.Have)/float64(d.Size), humanBytes(d.Size))
		}
		rate := "-"
		if d.Rate > 0 {
			rate = humanBytes(int64(d.Rate)) + "/s"
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.State, prog, rate, sourcesSummary(d), shown(d.Name))
	}
	w.Flush()
	for _, d := range list {
		if d.State == api.DownloadFailed {
			fmt.Printf("\n%d failed: %s", d.ID, shown(d.Reason))
		}
	}
	fmt.Println()
}

// sourcesSummary says how many sources a job reaches, and how.
func sourcesSummary(d api.Download) string {
	direct, relayed, queued, place := 0, 0, 0, 0
	for _, s := range d.Sources {
		switch {
		case s.Queued > 0:
			queued++
			if place == 0 || s.Queued < place {
				place = s.Queued
			}
		case s.Error != "":
		case s.Path == "direct":
			direct++
		case s.Path == "relayed":
			relayed++
		}
	}
	var parts []string
	if direct+relayed > 0 {
		parts = append(parts, fmt.Sprintf("%d direct, %d relayed", direct, relayed))
	}
	if queued > 0 {
		parts = append(parts, fmt.Sprintf("queued at %d (best place %d)", queued, place))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, "; ")
}

// killAtEnv names a step of placing a downloaded file (see
// downloads.Config.AfterStep) at which the node kills itself with SIGKILL:
// for the crash tests, which must kill a real process at an exact point.
const killAtEnv = "CANOPY_TEST_KILL_AT"

// killHook returns the AfterStep hook $CANOPY_TEST_KILL_AT asks for, or nil.
func killHook() func(string) {
	at := os.Getenv(killAtEnv)
	if at == "" {
		return nil
	}
	return func(step string) {
		if step == at {
			// Process.Kill is SIGKILL on Unix: no deferred code runs.
			if p, err := os.FindProcess(os.Getpid()); err == nil {
				_ = p.Kill()
			}
			select {} // the signal is on its way
		}
	}
}

// absOut makes a directory named on the command line absolute and creates
// it ("": none). The node creates a missing directory only inside its
// downloads directory, so that a request it did not expect cannot make one
// anywhere; a directory named here is the user's own choice, so the
// command makes it, as the user.
func absOut(out string) (string, error) {
	if out == "" {
		return "", nil
	}
	dir, err := filepath.Abs(out)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	return dir, nil
}
