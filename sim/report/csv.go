package report

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
)

// FormatFloat formats v as WriteCSV does: the shortest decimal that parses
// back to exactly v ('g' format, so large and tiny values use an exponent).
// strconv's shortest formatting is exact and platform-independent, so equal
// inputs always give equal bytes, and nothing is lost to rounding. NaN and
// infinities are written as "NaN", "+Inf" and "-Inf".
func FormatFloat(v float64) string {
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// WriteCSV writes s to path as CSV: a header row of column names, then one
// line per row, "\n"-terminated. A row whose width differs from the header
// (possible only if Rows was filled without Add) is an error.
func WriteCSV(path string, s *Series) error {
	if s == nil || len(s.Columns) == 0 {
		return fmt.Errorf("%w: series to write to %s", ErrNoColumns, path)
	}
	for i, row := range s.Rows {
		if len(row) != len(s.Columns) {
			return fmt.Errorf("report: series %q row %d: %d values, want %d", s.Title, i, len(row), len(s.Columns))
		}
	}
	return writeAtomic(path, func(w io.Writer) error {
		cw := csv.NewWriter(w)
		if err := cw.Write(s.Columns); err != nil {
			return err
		}
		record := make([]string, len(s.Columns))
		for _, row := range s.Rows {
			for i, v := range row {
				record[i] = FormatFloat(v)
			}
			if err := cw.Write(record); err != nil {
				return err
			}
		}
		cw.Flush()
		return cw.Error()
	})
}
