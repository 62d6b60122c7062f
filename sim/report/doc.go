// Package report writes what a simulation produces: time series as CSV,
// summaries as JSON, and line charts and histograms as SVG or PNG.
//
// Every writer is deterministic, because the simulator's promise is that the
// same scenario and seed give byte-identical outputs and CI checks it by
// comparing two runs: CSV numbers use a fixed formatting, JSON relies on
// encoding/json's sorted map keys, and the plots are drawn by gonum/plot,
// whose SVG and PNG encoders carry no timestamps or random identifiers.
// CSV and JSON bytes depend only on the values written. Plot geometry and PNG
// rasterisation go through floating-point arithmetic that the Go compiler
// may fuse into FMA instructions on some targets (arm64, GOAMD64=v3), so
// plots are byte-identical for one binary, not across architectures.
//
// Every writer replaces its file atomically (a temporary file in the same
// directory, then a rename), so a reader, or a sweep interrupted half-way,
// never sees a truncated file.
package report
