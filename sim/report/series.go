package report

import "fmt"

// Series is a time series: one row per sample time, column 0 the simulated
// time in hours and the other columns the measured values, for example
//
//	Columns: ["hours", "supernodes", "leaves"]
//	Rows:    [[0, 0, 12], [0.5, 3, 240], ...]
type Series struct {
	// Title names the series; plots use it as their title.
	Title string
	// Columns names each column; Columns[0] is the time in hours.
	Columns []string
	// Rows holds the samples, each exactly len(Columns) wide.
	Rows [][]float64
}

// NewSeries returns an empty Series with the given title and column names,
// the first of which is the time column.
func NewSeries(title string, columns ...string) *Series {
	return &Series{Title: title, Columns: columns}
}

// Add appends a row. It panics if the row's width differs from the number of
// columns: the simulator builds rows in code, so a mismatch is a programming
// error that must not turn into a silently shifted CSV.
func (s *Series) Add(row ...float64) {
	if len(row) != len(s.Columns) {
		panic(fmt.Sprintf("report: series %q: row of %d values, want %d (%v)", s.Title, len(row), len(s.Columns), s.Columns))
	}
	// Copy so that a caller reusing its buffer does not rewrite history.
	s.Rows = append(s.Rows, append([]float64(nil), row...))
}

// Column returns the index of the column with the given name, or -1.
func (s *Series) Column(name string) int {
	for i, c := range s.Columns {
		if c == name {
			return i
		}
	}
	return -1
}
