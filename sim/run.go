package sim

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/canopy-p2p/canopy/promotion"
	"github.com/canopy-p2p/canopy/sim/des"
	"github.com/canopy-p2p/canopy/sim/report"
)

// Summary is a run's result in numbers. It is deterministic: it holds
// nothing measured on the host (wall time and memory are in Perf).
type Summary struct {
	Scenario string  `json:"scenario"`
	Seed     uint64  `json:"seed"`
	Nodes    int     `json:"nodes"`
	Hours    float64 `json:"hours"`
	Events   uint64  `json:"events"`

	// Supernodes at the end of the run, and the mean and peak over samples.
	Supernodes      int     `json:"supernodes"`
	SupernodesMean  float64 `json:"supernodes_mean"`
	SupernodesMax   int     `json:"supernodes_max"`
	SupernodeShare  float64 `json:"supernode_share"` // supernodes / online nodes, mean over samples
	LeavesPerSN     Spread  `json:"leaves_per_supernode"`
	OrphanLeafHours float64 `json:"orphaned_leaf_hours"`
	// OrphanShare is orphaned leaf-time over all leaf-time.
	OrphanShare float64 `json:"orphan_share"`

	Promotions          uint64  `json:"promotions"`
	Demotions           uint64  `json:"demotions"`
	EmergencyPromotions uint64  `json:"emergency_promotions"`
	Flaps               uint64  `json:"flaps"`
	MaxSwitchesPerNode  int     `json:"max_switches_per_node"`
	SwitchesPerNodeDay  float64 `json:"switches_per_node_day"`

	Queries          uint64  `json:"queries"`
	SearchSuccess    float64 `json:"search_success"`
	MeanHops         float64 `json:"mean_hops"`
	LatencyP50MS     float64 `json:"latency_p50_ms"`
	LatencyP95MS     float64 `json:"latency_p95_ms"`
	MessagesPerQuery float64 `json:"messages_per_query"`

	Downloads     uint64  `json:"downloads"`
	RelayedShare  float64 `json:"relayed_share"`
	RelayGB       float64 `json:"relay_gb"`
	SupernodeUpKB float64 `json:"supernode_up_kBps_mean"`

	// Score is the sweep objective (see Objective).
	Score float64 `json:"score"`

	// Script is what followed each scripted event (Scenario.Events).
	Script []EventResult `json:"script,omitempty"`
}

// Spread summarises a distribution.
type Spread struct {
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P95  float64 `json:"p95"`
	Max  float64 `json:"max"`
}

// Objective is the stated goal a sweep ranks policies by: find what people
// search for, keep every leaf attached, switch roles rarely, and do not turn
// more nodes into supernodes than needed:
//
//	score = search_success − 2·orphan_share − 0.05·switches_per_node_day
//	        − 0.5·max(0, supernode_share − 0.02)
//
// The weights make one percent of orphaned leaf-time cost twice one percent
// of search success, and a supernode share above 2% (one per 50 online
// nodes) a half point per unit.
func Objective(s Summary) float64 {
	return s.SearchSuccess - 2*s.OrphanShare - 0.05*s.SwitchesPerNodeDay - 0.5*math.Max(0, s.SupernodeShare-0.02)
}

// Result is a finished run.
type Result struct {
	Summary Summary
	Series  *report.Series
	// LeavesPerSupernode is the histogram of leaves per supernode at the end.
	LeavesPerSupernode *report.Histogram
}

// Options control a run.
type Options struct {
	// Progress, if set, is called with the fraction of simulated time done,
	// from the running goroutine.
	Progress func(done float64)
}

// Run simulates the scenario. The result depends on the scenario alone.
func Run(ctx context.Context, sc Scenario, opt Options) (*Result, error) {
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	policy := sc.Policy
	if sc.PolicyFile != "" {
		p, _, err := promotion.Load(sc.PolicyFile)
		if err != nil {
			return nil, err
		}
		policy = p
	}
	m, err := newModel(sc, policy)
	if err != nil {
		return nil, err
	}
	every := des.FromDuration(sc.SampleEvery.Duration)
	m.series = &seriesRecorder{s: &report.Series{Title: sc.Name, Columns: seriesColumns}, every: every}
	m.sim.At(every, evSample, 0, 0)
	m.scheduleScript()
	end := des.Time(sc.Hours * float64(des.Hour))
	// Run in slices of simulated time so that progress is reported and a
	// cancelled context stops the run; slicing does not change the order of
	// events, so it does not change the result.
	step := max(end/200, des.Minute)
	for t := step; ; t += step {
		t = min(t, end)
		m.sim.Run(t, m.handle)
		if opt.Progress != nil {
			opt.Progress(float64(t) / float64(end))
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if t == end {
			break
		}
	}
	m.integrateOrphans()
	m.finishEvent()
	return m.result()
}

func (m *model) result() (*Result, error) {
	sc := m.sc
	s := Summary{
		Scenario: sc.Name, Seed: sc.Seed, Nodes: sc.Nodes, Hours: sc.Hours,
		Events:              m.sim.Executed(),
		Supernodes:          len(m.sns),
		OrphanLeafHours:     m.st.OrphanLeafTime / 3600,
		Promotions:          m.st.Promotions,
		Demotions:           m.st.Demotions,
		EmergencyPromotions: m.st.EmergencyPromotions,
		Flaps:               m.st.Flaps,
		Queries:             m.st.Queries,
		Downloads:           m.st.Downloads,
		RelayGB:             m.st.RelayBytes / 1e9,
		LatencyP50MS:        m.st.percentile(0.5),
		LatencyP95MS:        m.st.percentile(0.95),
	}
	div := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	s.SearchSuccess = div(float64(m.st.Successes), float64(m.st.Queries))
	s.MeanHops = div(float64(m.st.HitHops), float64(m.st.Successes))
	s.MessagesPerQuery = div(float64(m.st.Messages), float64(m.st.Queries))
	s.RelayedShare = div(float64(m.st.Relayed), float64(m.st.Downloads))

	col := func(name string) int { return slices.Index(seriesColumns, name) }
	var leafHours, snSum, shareSum, upSum float64
	for _, r := range m.series.s.Rows {
		sn, online := r[col("supernodes")], r[col("online")]
		snSum += sn
		shareSum += div(sn, online)
		upSum += r[col("supernode_up_kBps")]
		s.SupernodesMax = max(s.SupernodesMax, int(sn))
		leafHours += r[col("leaves")] * sc.SampleEvery.Hours()
	}
	if n := float64(len(m.series.s.Rows)); n > 0 {
		s.SupernodesMean, s.SupernodeShare, s.SupernodeUpKB = snSum/n, shareSum/n, upSum/n
	}
	s.OrphanShare = div(s.OrphanLeafHours, leafHours)

	var switches uint64
	for i := range m.nodes {
		sw := int(m.nodes[i].switches)
		switches += uint64(sw)
		s.MaxSwitchesPerNode = max(s.MaxSwitchesPerNode, sw)
	}
	s.SwitchesPerNodeDay = div(float64(switches), float64(sc.Nodes)*sc.Hours/24)

	counts := make([]float64, len(m.snData))
	for i, d := range m.snData {
		counts[i] = float64(len(d.leaves))
	}
	s.LeavesPerSN = spread(counts)
	edges := make([]float64, 0, 21)
	for e := 0; e <= sc.Network.LeafSlots; e += max(sc.Network.LeafSlots/20, 1) {
		edges = append(edges, float64(e))
	}
	h, err := report.NewHistogram(edges)
	if err != nil {
		return nil, err
	}
	h.Title, h.XLabel = "Leaves per supernode at the end", "leaves"
	for _, c := range counts {
		h.Add(c)
	}
	s.Score = Objective(s)
	s.Script = m.trk.results
	return &Result{Summary: s, Series: m.series.s, LeavesPerSupernode: h}, nil
}

func spread(v []float64) Spread {
	if len(v) == 0 {
		return Spread{}
	}
	v = slices.Clone(v)
	slices.Sort(v)
	sum := 0.0
	for _, x := range v {
		sum += x
	}
	at := func(p float64) float64 { return v[min(int(p*float64(len(v))), len(v)-1)] }
	return Spread{Mean: sum / float64(len(v)), P50: at(0.5), P95: at(0.95), Max: v[len(v)-1]}
}

// Write puts a run's outputs in dir: summary.json, series.csv and plots.
func (r *Result) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	steps := []func() error{
		func() error { return report.WriteJSON(p("summary.json"), r.Summary) },
		func() error { return report.WriteCSV(p("series.csv"), r.Series) },
		func() error {
			return report.PlotLines(p("supernodes.svg"), r.Series, []string{"supernodes", "orphans"}, "nodes")
		},
		func() error {
			return report.PlotLines(p("online.svg"), r.Series, []string{"online", "leaves"}, "nodes")
		},
		func() error {
			return report.PlotLines(p("search.svg"), r.Series, []string{"search_success", "relay_share"}, "share")
		},
		func() error {
			return report.PlotLines(p("roles.svg"), r.Series, []string{"promotions", "demotions"}, "per sample")
		},
		func() error {
			return report.PlotLines(p("load.svg"), r.Series, []string{"supernode_up_kBps"}, "kB/s per supernode")
		},
		func() error { return report.PlotHistogram(p("leaves-per-supernode.svg"), r.LeavesPerSupernode) },
	}
	for _, f := range steps {
		if err := f(); err != nil {
			return fmt.Errorf("sim: write %s: %w", dir, err)
		}
	}
	return nil
}
