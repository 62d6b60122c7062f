package report_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/canopy-p2p/canopy/sim/report"
)

// A simulation records one row per sample time and writes the series as CSV
// and as a chart.
func ExamplePlotLines() {
	dir, err := os.MkdirTemp("", "report-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	s := report.NewSeries("Supernodes", "hours", "supernodes", "orphaned leaves")
	for h := 0.0; h <= 24; h += 0.5 {
		s.Add(h, 40*h/(1+h), 100/(1+h))
	}
	if err := report.WriteCSV(filepath.Join(dir, "supernodes.csv"), s); err != nil {
		log.Fatal(err)
	}
	if err := report.PlotLines(filepath.Join(dir, "supernodes.svg"), s, []string{"supernodes", "orphaned leaves"}, "nodes"); err != nil {
		log.Fatal(err)
	}
	csv, _ := os.ReadFile(filepath.Join(dir, "supernodes.csv"))
	for _, line := range strings.SplitN(string(csv), "\n", 4)[:3] {
		fmt.Println(line)
	}
	// Output:
	// hours,supernodes,orphaned leaves
	// 0,0,100
	// 0.5,13.333333333333334,66.66666666666667
}
