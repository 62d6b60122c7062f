package sim

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/BurntSushi/toml"

	"github.com/canopy-p2p/canopy/promotion"
)

// Sweep is a grid search over promotion policy parameters: every combination
// of the grid's values, each run with every seed, ranked by Objective.
type Sweep struct {
	// Seeds are the seeds each combination runs with.
	Seeds []uint64 `toml:"seeds"`
	// Grid maps a policy parameter's TOML name (as in a policy file) to the
	// values to try, written as TOML values ("1h", 200, 0.7).
	Grid map[string][]any `toml:"grid"`
}

// SweepFile is a scenario plus the sweep over it.
type SweepFile struct {
	Scenario
	Sweep Sweep `toml:"sweep"`
}

// LoadSweep reads a sweep file: a scenario file with a [sweep] table.
func LoadSweep(path string) (Scenario, Sweep, error) {
	f := SweepFile{Scenario: DefaultScenario()}
	b, err := os.ReadFile(path)
	if err != nil {
		return f.Scenario, f.Sweep, err
	}
	md, err := toml.Decode(string(b), &f)
	if err != nil {
		return f.Scenario, f.Sweep, fmt.Errorf("sweep %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		// The grid's values are decoded as any; everything else must be known.
		var unknown []string
		for _, k := range und {
			if len(k) < 2 || k[0] != "sweep" || k[1] != "grid" {
				unknown = append(unknown, k.String())
			}
		}
		if len(unknown) > 0 {
			return f.Scenario, f.Sweep, fmt.Errorf("sweep %s: unknown keys %v", path, unknown)
		}
	}
	if len(f.Sweep.Seeds) == 0 {
		f.Sweep.Seeds = []uint64{1, 2, 3}
	}
	return f.Scenario, f.Sweep, nil
}

// Combination is one point of the grid: parameter name → TOML value.
type Combination map[string]any

func (c Combination) String() string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%v", k, c[k]))
	}
	return strings.Join(parts, " ")
}

// apply sets the combination's values on p through the policy's own TOML
// names, so the sweep accepts exactly what a policy file accepts.
func (c Combination) apply(p promotion.Params) (promotion.Params, error) {
	var b strings.Builder
	enc := toml.NewEncoder(&b)
	if err := enc.Encode(map[string]any(c)); err != nil {
		return p, err
	}
	md, err := toml.Decode(b.String(), &p)
	if err != nil {
		return p, err
	}
	if und := md.Undecoded(); len(und) > 0 {
		return p, fmt.Errorf("unknown policy parameters %v", und)
	}
	return p, p.Validate()
}

// combinations expands the grid in a fixed order (parameters by name).
func (s Sweep) combinations() []Combination {
	names := make([]string, 0, len(s.Grid))
	for k := range s.Grid {
		names = append(names, k)
	}
	sort.Strings(names)
	out := []Combination{{}}
	for _, name := range names {
		var next []Combination
		for _, c := range out {
			for _, v := range s.Grid[name] {
				nc := Combination{}
				for k, x := range c {
					nc[k] = x
				}
				nc[name] = v
				next = append(next, nc)
			}
		}
		out = next
	}
	return out
}

// Ranked is one combination's result over all seeds.
type Ranked struct {
	Combination Combination
	Params      promotion.Params
	Score       float64 // mean over seeds
	ScoreStd    float64
	Runs        []Summary
}

// RunSweep runs every combination with every seed, workers at a time, and
// returns them best first. Each run is deterministic, so the ranking is too.
func RunSweep(ctx context.Context, sc Scenario, sw Sweep, workers int, progress func(done, total int)) ([]Ranked, error) {
	combos := sw.combinations()
	ranked := make([]Ranked, len(combos))
	type job struct{ ci, si int }
	var jobs []job
	for ci, c := range combos {
		p, err := c.apply(sc.Policy)
		if err != nil {
			return nil, fmt.Errorf("sweep %s: %w", c, err)
		}
		ranked[ci] = Ranked{Combination: c, Params: p, Runs: make([]Summary, len(sw.Seeds))}
		for si := range sw.Seeds {
			jobs = append(jobs, job{ci, si})
		}
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		done     int
		firstErr error
	)
	ch := make(chan job)
	for range max(workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range ch {
				run := sc
				run.Seed = sw.Seeds[j.si]
				run.Policy = ranked[j.ci].Params
				run.PolicyFile = ""
				res, err := Run(ctx, run, Options{})
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if err == nil {
					ranked[j.ci].Runs[j.si] = res.Summary
				}
				done++
				if progress != nil {
					progress(done, len(jobs))
				}
				mu.Unlock()
			}
		}()
	}
	for _, j := range jobs {
		if ctx.Err() != nil {
			break
		}
		ch <- j
	}
	close(ch)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for i := range ranked {
		var sum, sq float64
		for _, s := range ranked[i].Runs {
			sum += s.Score
			sq += s.Score * s.Score
		}
		n := float64(len(ranked[i].Runs))
		ranked[i].Score = sum / n
		ranked[i].ScoreStd = math.Sqrt(max(0, sq/n-ranked[i].Score*ranked[i].Score))
	}
	slices.SortStableFunc(ranked, func(a, b Ranked) int { return cmp.Compare(b.Score, a.Score) })
	return ranked, nil
}

// WriteTable prints the ranking.
func WriteTable(w io.Writer, ranked []Ranked) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "rank\tscore\t±\tsuccess\torphan\tswitches/node/day\tsupernodes\tparameters")
	for i, r := range ranked {
		var succ, orph, sw, sn float64
		for _, s := range r.Runs {
			succ += s.SearchSuccess
			orph += s.OrphanShare
			sw += s.SwitchesPerNodeDay
			sn += s.SupernodesMean
		}
		n := float64(len(r.Runs))
		fmt.Fprintf(tw, "%d\t%.4f\t%.4f\t%.3f\t%.4f\t%.3f\t%.0f\t%s\n", i+1, r.Score, r.ScoreStd, succ/n, orph/n, sw/n, sn/n, r.Combination)
	}
	tw.Flush()
}
