package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/canopy-p2p/canopy/promotion"
	"github.com/canopy-p2p/canopy/sim"
)

const simUsage = `canopy sim — simulate a Canopy network with the node's own decision code

  canopy sim [--scenario FILE] [--nodes N] [--hours H] [--seed S] [--out DIR]
  canopy sim sweep --sweep FILE [--nodes N] [--hours H] [--out DIR] [--workers W]

Flags override the scenario file; with no file the default scenario runs.
`

func runSim(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	scenario := fs.String("scenario", "", "scenario file (TOML); default: the built-in scenario")
	nodes := fs.Int("nodes", 0, "population (overrides the scenario)")
	hours := fs.Float64("hours", 0, "simulated hours (overrides the scenario)")
	seed := fs.Uint64("seed", 0, "random seed (overrides the scenario)")
	out := fs.String("out", "sim-out", "directory for summary.json, series.csv and plots")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file")
	asJSON := fs.Bool("json", false, "print the run's summary (as in summary.json) as JSON instead of in words")
	if err := parseFlags(ctx, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("unexpected argument %q", fs.Arg(0))
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	sc, err := loadScenario(*scenario, *nodes, *hours)
	if err != nil {
		return err
	}
	if *seed != 0 {
		sc.Seed = *seed
	}
	if !*asJSON {
		fmt.Printf("simulating %s: %d nodes, %.0f h, seed %d\n", sc.Name, sc.Nodes, sc.Hours, sc.Seed)
	}
	bar := newBar(1000, "simulating")
	start := time.Now()
	res, err := sim.Run(ctx, sc, sim.Options{Progress: func(f float64) { bar(int(f * 1000)) }})
	if err != nil {
		return err
	}
	wall := time.Since(start)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if err := res.Write(*out); err != nil {
		return err
	}
	s := res.Summary
	if *asJSON {
		fmt.Fprintln(os.Stderr)
		return printJSON(s)
	}
	fmt.Printf("\n%d events in %.1f s (%.2f M events/s); heap %.0f MiB at the end (%.0f bytes/node; peak system memory %.0f MiB)\n",
		s.Events, wall.Seconds(), float64(s.Events)/wall.Seconds()/1e6, float64(ms.HeapAlloc)/(1<<20),
		float64(ms.HeapAlloc)/float64(sc.Nodes), float64(ms.Sys)/(1<<20))
	fmt.Printf("supernodes: %d at the end (mean %.0f, peak %d, %.2f%% of online nodes), leaves per supernode mean %.0f p95 %.0f max %.0f\n",
		s.Supernodes, s.SupernodesMean, s.SupernodesMax, 100*s.SupernodeShare, s.LeavesPerSN.Mean, s.LeavesPerSN.P95, s.LeavesPerSN.Max)
	fmt.Printf("roles: %d promotions (%d emergency), %d demotions, %d flaps, at most %d switches per node, %.3f switches per node-day\n",
		s.Promotions, s.EmergencyPromotions, s.Demotions, s.Flaps, s.MaxSwitchesPerNode, s.SwitchesPerNodeDay)
	fmt.Printf("orphaned leaf-time: %.1f leaf-hours (%.3f%% of leaf-time)\n", s.OrphanLeafHours, 100*s.OrphanShare)
	fmt.Printf("search: %d queries, %.1f%% found, %.2f hops, first hit p50 %.0f ms p95 %.0f ms, %.1f messages per query\n",
		s.Queries, 100*s.SearchSuccess, s.MeanHops, s.LatencyP50MS, s.LatencyP95MS, s.MessagesPerQuery)
	fmt.Printf("downloads: %d, %.1f%% relayed (%.1f GB through supernodes); supernode upstream %.1f kB/s mean\n",
		s.Downloads, 100*s.RelayedShare, s.RelayGB, s.SupernodeUpKB)
	fmt.Printf("score %.4f (see sim.Objective)\noutputs in %s\n", s.Score, *out)
	return nil
}

func runSweep(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("sim sweep", flag.ContinueOnError)
	file := fs.String("sweep", "", "sweep file: a scenario with a [sweep] table (required)")
	nodes := fs.Int("nodes", 0, "population (overrides the file)")
	hours := fs.Float64("hours", 0, "simulated hours (overrides the file)")
	out := fs.String("out", "sweep-out", "directory for ranking.txt and policy.toml")
	workers := fs.Int("workers", runtime.GOMAXPROCS(0), "runs at once")
	asJSON := fs.Bool("json", false, "print the ranking as JSON (best first: combination, parameters, score) instead of a table")
	if err := parseFlags(ctx, fs, args); err != nil {
		return err
	}
	if *file == "" {
		return usageErrorf("--sweep FILE is required")
	}
	if fs.NArg() > 0 {
		return usageErrorf("unexpected argument %q", fs.Arg(0))
	}
	sc, sw, err := sim.LoadSweep(*file)
	if err != nil {
		return err
	}
	if *nodes > 0 {
		sc.Nodes = *nodes
	}
	if *hours > 0 {
		sc.Hours = *hours
	}
	var bar func(int)
	ranked, err := sim.RunSweep(ctx, sc, sw, *workers, func(done, total int) {
		if bar == nil {
			bar = newBar(total, "sweeping")
		}
		bar(done)
	})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	if !*asJSON {
		fmt.Println()
		sim.WriteTable(os.Stdout, ranked)
	}
	f, err := os.Create(filepath.Join(*out, "ranking.txt"))
	if err != nil {
		return err
	}
	sim.WriteTable(f, ranked)
	if err := f.Close(); err != nil {
		return err
	}
	best := ranked[0]
	path := filepath.Join(*out, "policy.toml")
	err = promotion.Save(path, promotion.File{
		Version: promotion.FileVersion,
		Source:  fmt.Sprintf("canopy sim sweep %s: best of %d combinations × %d seeds, %d nodes, %.0f h; %s", filepath.Base(*file), len(ranked), len(sw.Seeds), sc.Nodes, sc.Hours, best.Combination),
		Params:  best.Params,
	})
	if err != nil {
		return err
	}
	if *asJSON {
		type rankedJSON struct {
			Combination sim.Combination `json:"combination"`
			Score       float64         `json:"score"`
			ScoreStd    float64         `json:"score_std"`
			Runs        []sim.Summary   `json:"runs"`
		}
		out := struct {
			Policy  string       `json:"policy_file"`
			Ranking []rankedJSON `json:"ranking"`
		}{Policy: path}
		for _, r := range ranked {
			out.Ranking = append(out.Ranking, rankedJSON{r.Combination, r.Score, r.ScoreStd, r.Runs})
		}
		fmt.Fprintln(os.Stderr)
		return printJSON(out)
	}
	fmt.Printf("\nbest: %s (score %.4f ± %.4f)\npolicy written to %s (load it with `canopy up --policy %s`)\n", best.Combination, best.Score, best.ScoreStd, path, path)
	return nil
}

func loadScenario(path string, nodes int, hours float64) (sim.Scenario, error) {
	sc := sim.DefaultScenario()
	if path != "" {
		var err error
		if sc, err = sim.LoadScenario(path); err != nil {
			return sc, err
		}
	}
	if nodes > 0 {
		sc.Nodes = nodes
	}
	if hours > 0 {
		sc.Hours = hours
	}
	return sc, sc.Validate()
}

// newBar returns a progress reporter: a bar on a terminal, a line every 10%
// otherwise.
func newBar(total int, what string) func(int) {
	if term.IsTerminal(int(os.Stderr.Fd())) {
		b := progressbar.NewOptions(total, progressbar.OptionSetWriter(os.Stderr), progressbar.OptionSetDescription(what),
			progressbar.OptionShowElapsedTimeOnFinish(), progressbar.OptionSetPredictTime(true))
		return func(n int) { _ = b.Set(n) }
	}
	last := -1
	return func(n int) {
		if pct := n * 100 / max(total, 1); pct/10 != last/10 {
			last = pct
			fmt.Fprintf(os.Stderr, "%s: %d%%\n", what, pct)
		}
	}
}
