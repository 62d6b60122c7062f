package report

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// daySeries returns a day of synthetic supernode metrics sampled every 10
// minutes, shaped like a churning network warming up.
func daySeries() *Series {
	s := NewSeries("Supernodes over a simulated day", "hours", "supernodes", "leaves per supernode", "orphaned leaves")
	for i := 0; i <= 24*6; i++ {
		h := float64(i) / 6
		warm := 1 - math.Exp(-h/2)
		s.Add(h,
			520*warm+15*math.Sin(h*1.3),
			38*warm+3*math.Cos(h*0.7),
			60*math.Exp(-h/1.5)+8+4*math.Sin(h*2.1),
		)
	}
	return s
}

func TestSeriesAddPanicsOnWidth(t *testing.T) {
	s := NewSeries("t", "hours", "a")
	s.Add(0, 1)
	defer func() {
		if recover() == nil {
			t.Error("Add with a wrong width did not panic")
		}
	}()
	s.Add(1, 2, 3)
}

func TestSeriesAddCopies(t *testing.T) {
	s := NewSeries("t", "hours", "a")
	row := []float64{0, 1}
	s.Add(row...)
	row[1] = 99
	if s.Rows[0][1] != 1 {
		t.Error("Add kept a reference to the caller's slice")
	}
}

func TestWriteCSV(t *testing.T) {
	s := NewSeries("t", "hours", "count", "ratio, with comma")
	s.Add(0, 0, 0.1)
	s.Add(0.5, 1e6, 1.0/3)
	s.Add(1, 123456789012, math.NaN())
	path := filepath.Join(t.TempDir(), "series.csv")
	if err := WriteCSV(path, s); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "hours,count,\"ratio, with comma\"\n" +
		"0,0,0.1\n" +
		"0.5,1e+06,0.3333333333333333\n" +
		"1,1.23456789012e+11,NaN\n"
	if string(got) != want {
		t.Errorf("CSV =\n%s\nwant\n%s", got, want)
	}
	assertRepeatable(t, path, got, func() error { return WriteCSV(path, s) })
	assertNoTempFiles(t, filepath.Dir(path))
}

func TestWriteCSVErrors(t *testing.T) {
	dir := t.TempDir()
	if err := WriteCSV(filepath.Join(dir, "a.csv"), &Series{}); !errors.Is(err, ErrNoColumns) {
		t.Errorf("no columns: error = %v, want ErrNoColumns", err)
	}
	ragged := &Series{Columns: []string{"hours", "a"}, Rows: [][]float64{{0}}}
	if err := WriteCSV(filepath.Join(dir, "b.csv"), ragged); err == nil {
		t.Error("ragged rows: no error")
	}
	if err := WriteCSV(filepath.Join(dir, "missing", "c.csv"), daySeries()); err == nil {
		t.Error("missing directory: no error")
	}
	assertNoTempFiles(t, dir)
}

func TestWriteJSON(t *testing.T) {
	type summary struct {
		Nodes  int                `json:"nodes"`
		Ratio  float64            `json:"ratio"`
		ByKind map[string]int     `json:"by_kind"`
		Policy map[string]float64 `json:"policy"`
		Note   string             `json:"note"`
	}
	v := summary{
		Nodes:  1_000_000,
		Ratio:  0.0125,
		ByKind: map[string]int{"symmetric": 3, "full-cone": 1, "none": 7, "cgnat": 2},
		Policy: map[string]float64{"min_uptime_h": 1, "leaf_slots": 45},
		Note:   "leaves <-> supernodes & relays",
	}
	path := filepath.Join(t.TempDir(), "summary.json")
	if err := WriteJSON(path, v); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "nodes": 1000000,
  "ratio": 0.0125,
  "by_kind": {
    "cgnat": 2,
    "full-cone": 1,
    "none": 7,
    "symmetric": 3
  },
  "policy": {
    "leaf_slots": 45,
    "min_uptime_h": 1
  },
  "note": "leaves <-> supernodes & relays"
}
`
	if string(got) != want {
		t.Errorf("JSON =\n%s\nwant\n%s", got, want)
	}
	// Map iteration order is randomised per run, so repeating the write
	// many times would expose any dependence on it.
	for range 20 {
		assertRepeatable(t, path, got, func() error { return WriteJSON(path, v) })
	}
}

func TestWriteJSONUnencodable(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.json")
	if err := WriteJSON(path, map[string]float64{"x": math.NaN()}); err == nil {
		t.Error("NaN: no error")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("failed write left %s (stat error %v)", path, err)
	}
	assertNoTempFiles(t, dir)
}

func TestPlotLines(t *testing.T) {
	s := daySeries()
	for _, ext := range []string{".svg", ".png", ".PNG"} {
		t.Run(ext, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "lines"+ext)
			if err := PlotLines(path, s, s.Columns[1:], "count"); err != nil {
				t.Fatal(err)
			}
			got := readNonEmpty(t, path)
			assertRepeatable(t, path, got, func() error { return PlotLines(path, s, s.Columns[1:], "count") })
			if strings.EqualFold(ext, ".svg") && !bytes.Contains(got, []byte("<svg")) {
				t.Error("SVG output has no <svg element")
			}
			if strings.EqualFold(ext, ".png") && !bytes.HasPrefix(got, []byte("\x89PNG")) {
				t.Error("PNG output lacks the PNG signature")
			}
		})
	}
}

func TestPlotLinesEdgeData(t *testing.T) {
	dir := t.TempDir()
	// One row, a constant, many columns (colours wrap onto dashes), and
	// non-finite values must all still plot.
	s := NewSeries("edge", "hours", "a", "b", "c", "d", "e", "f", "g", "h", "i")
	s.Add(0, 5, 5, 5, 5, 5, 5, 5, 5, math.NaN())
	s.Add(1, 5, 4, 3, 2, 1, 0, -1, math.Inf(1), 2)
	if err := PlotLines(filepath.Join(dir, "edge.svg"), s, s.Columns[1:], "v"); err != nil {
		t.Fatal(err)
	}
	one := NewSeries("one", "hours", "x")
	one.Add(3, 7)
	if err := PlotLines(filepath.Join(dir, "one.png"), one, []string{"x"}, "v"); err != nil {
		t.Fatal(err)
	}
	// A long run switches the time axis to day steps.
	long := NewSeries("week", "hours", "x")
	for h := 0; h <= 24*7; h++ {
		long.Add(float64(h), float64(h%24))
	}
	if err := PlotLines(filepath.Join(dir, "week.svg"), long, []string{"x"}, "v"); err != nil {
		t.Fatal(err)
	}
}

func TestPlotLinesErrors(t *testing.T) {
	dir := t.TempDir()
	s := daySeries()
	empty := NewSeries("empty", "hours", "a")
	allNaN := NewSeries("nan", "hours", "a")
	allNaN.Add(0, math.NaN())
	for _, tc := range []struct {
		name   string
		path   string
		series *Series
		cols   []string
		want   error
	}{
		{"nil series", "a.svg", nil, []string{"a"}, ErrNoColumns},
		{"series without columns", "a.svg", &Series{}, []string{"a"}, ErrNoColumns},
		{"time column only", "a.svg", NewSeries("t", "hours"), []string{"hours"}, ErrNoColumns},
		{"no columns asked", "a.svg", s, nil, ErrNoColumns},
		{"unknown column", "a.svg", s, []string{"supernodes", "superpeers"}, ErrUnknownColumn},
		{"time column as value", "a.svg", s, []string{"hours"}, ErrUnknownColumn},
		{"no rows", "a.svg", empty, []string{"a"}, ErrNoRows},
		{"no finite values", "a.svg", allNaN, []string{"a"}, ErrNoRows},
		{"unknown format", "a.pdf", s, []string{"supernodes"}, ErrFormat},
		{"no extension", "plot", s, []string{"supernodes"}, ErrFormat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.path)
			if err := PlotLines(path, tc.series, tc.cols, "y"); !errors.Is(err, tc.want) {
				t.Errorf("error = %v, want %v", err, tc.want)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Errorf("failed plot left %s", path)
			}
		})
	}
	assertNoTempFiles(t, dir)
}

func TestHistogram(t *testing.T) {
	h, err := NewHistogram([]float64{0, 10, 20, 50})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []float64{-1, 0, 9.99, 10, 19, 20, 49, 50, 50.1, math.NaN()} {
		h.Add(v)
	}
	want := []uint64{2, 2, 3}
	for i, c := range h.Counts {
		if c != want[i] {
			t.Errorf("Counts = %v, want %v", h.Counts, want)
			break
		}
	}
	if h.Under != 1 || h.Over != 1 || h.Total() != 9 {
		t.Errorf("Under, Over, Total = %d, %d, %d; want 1, 1, 9", h.Under, h.Over, h.Total())
	}

	edges := LinearEdges(0, 1, 3)
	if len(edges) != 4 || edges[3] != 1 {
		t.Errorf("LinearEdges(0, 1, 3) = %v", edges)
	}
}

func TestNewHistogramErrors(t *testing.T) {
	for _, edges := range [][]float64{nil, {1}, {0, 0}, {1, 0}, {0, math.NaN()}, {0, math.Inf(1)}} {
		if _, err := NewHistogram(edges); !errors.Is(err, ErrBadHistogram) {
			t.Errorf("NewHistogram(%v) error = %v, want ErrBadHistogram", edges, err)
		}
	}
}

func TestPlotHistogram(t *testing.T) {
	h := leavesHistogram()
	for _, ext := range []string{".svg", ".png"} {
		t.Run(ext, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "hist"+ext)
			if err := PlotHistogram(path, h); err != nil {
				t.Fatal(err)
			}
			got := readNonEmpty(t, path)
			assertRepeatable(t, path, got, func() error { return PlotHistogram(path, h) })
		})
	}
	empty, _ := NewHistogram([]float64{0, 1, 2})
	if err := PlotHistogram(filepath.Join(t.TempDir(), "empty.svg"), empty); err != nil {
		t.Errorf("empty histogram: %v", err)
	}
}

func TestPlotHistogramErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		path string
		h    *Histogram
		want error
	}{
		{"nil", "h.svg", nil, ErrBadHistogram},
		{"counts mismatch", "h.svg", &Histogram{Edges: []float64{0, 1, 2}, Counts: []uint64{1}}, ErrBadHistogram},
		{"bad edges", "h.svg", &Histogram{Edges: []float64{2, 1}, Counts: []uint64{1}}, ErrBadHistogram},
		{"unknown format", "h.jpg", leavesHistogram(), ErrFormat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := PlotHistogram(filepath.Join(dir, tc.path), tc.h); !errors.Is(err, tc.want) {
				t.Errorf("error = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestTicks(t *testing.T) {
	labels := func(lo, hi float64) []string {
		var out []string
		for _, tk := range (hourTicks{}).Ticks(lo, hi) {
			if tk.Label != "" {
				out = append(out, tk.Label)
			}
		}
		return out
	}
	for _, tc := range []struct {
		lo, hi float64
		want   string
	}{
		{0, 24, "0 3 6 9 12 15 18 21 24"},
		{0, 48, "0 6 12 18 24 30 36 42 48"},
		{0, 168, "0 24 48 72 96 120 144 168"},
		{0, 2, "0 0.25 0.5 0.75 1 1.25 1.5 1.75 2"},
	} {
		if got := strings.Join(labels(tc.lo, tc.hi), " "); got != tc.want {
			t.Errorf("hour ticks %v..%v = %q, want %q", tc.lo, tc.hi, got, tc.want)
		}
	}
	for v, want := range map[float64]string{
		1.2e6: "1.2M", 250000: "250k", 10000: "10k", 9000: "9000", -2e9: "-2G",
		0.1 + 0.2: "0.3", 500: "500", math.Copysign(0, -1): "0",
	} {
		if got := valueLabel(v); got != want {
			t.Errorf("valueLabel(%v) = %q, want %q", v, got, want)
		}
	}
	valueLabels := func(lo, hi float64) string {
		var out []string
		for _, tk := range (compactTicks{}).Ticks(lo, hi) {
			if tk.Label != "" {
				out = append(out, tk.Label)
			}
		}
		return strings.Join(out, " ")
	}
	for _, tc := range []struct {
		lo, hi float64
		want   string
	}{
		{0, 535, "0 100 200 300 400 500"},
		{0, 60, "0 10 20 30 40 50 60"},
		{0, 690000, "0 100k 200k 300k 400k 500k 600k"},
		{0.1, 0.7, "0.1 0.2 0.3 0.4 0.5 0.6 0.7"},
		{-3, 3, "-3 -2 -1 0 1 2 3"},
		{5, 5, "5"},
	} {
		if got := valueLabels(tc.lo, tc.hi); got != tc.want {
			t.Errorf("value ticks %v..%v = %q, want %q", tc.lo, tc.hi, got, tc.want)
		}
	}
}

// leavesHistogram returns a heavy-tailed leaves-per-supernode histogram with
// values beyond the last edge.
func leavesHistogram() *Histogram {
	h, err := NewHistogram(LinearEdges(0, 60, 30))
	if err != nil {
		panic(err)
	}
	h.Title = "Leaves per supernode at 24 h"
	h.XLabel = "leaves"
	for i := range 20000 {
		// A deterministic, skewed spread of values.
		u := float64(i%997) / 997
		h.Add(math.Floor(38 + 9*math.Tan(math.Pi*(u-0.5)*0.9)))
	}
	return h
}

func readNonEmpty(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 {
		t.Fatalf("%s is empty", path)
	}
	return b
}

// assertRepeatable rewrites path with write and checks the bytes are
// unchanged.
func assertRepeatable(t *testing.T, path string, first []byte, write func() error) {
	t.Helper()
	if err := write(); err != nil {
		t.Fatal(err)
	}
	again, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, again) {
		t.Errorf("%s differs between two writes of the same input", filepath.Base(path))
	}
}

func assertNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	matches, _ := filepath.Glob(filepath.Join(dir, ".*.tmp*"))
	if len(matches) > 0 {
		t.Errorf("temporary files left behind: %v", matches)
	}
}
