package report

import "errors"

// Sentinel errors, wrapped with detail by the functions that return them.
var (
	// ErrNoColumns reports a Series without data columns, or a plot asked
	// for no columns.
	ErrNoColumns = errors.New("report: no columns")

	// ErrUnknownColumn reports a plot of a column name the Series lacks.
	ErrUnknownColumn = errors.New("report: unknown column")

	// ErrNoRows reports a plot of a Series without rows: there is nothing
	// to draw and no axis range to choose.
	ErrNoRows = errors.New("report: no rows")

	// ErrFormat reports an output path whose extension names no format the
	// writer supports.
	ErrFormat = errors.New("report: unsupported file format")

	// ErrBadHistogram reports histogram edges that are not finite and
	// strictly increasing, or counts that do not match them.
	ErrBadHistogram = errors.New("report: bad histogram")
)
