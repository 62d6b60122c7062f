package promotion

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// FileVersion is the params file format this build reads and writes.
const FileVersion = 1

// maxFileSize bounds what Load reads: a params file is a few kilobytes, and a
// larger one is a mistake (a wrong path), not a policy.
const maxFileSize = 1 << 20

// File is a params file: a policy with its provenance, written by a simulator
// sweep (or by hand) and loaded by the node.
//
//	version = 1
//	source = "sim sweep churn-gnutella seeds 1-8, objective orphan-time"
//	[params]
//	min_uptime = "1h0m0s"
//	...
//
// Keys missing from [params] keep their defaults, so a hand-written file can
// set only what it changes; unknown keys are rejected.
type File struct {
	// Version is the file format, FileVersion; a file without it is rejected.
	Version int `toml:"version"`
	// Source says where the parameters came from, in free text (a sweep's
	// scenario, seeds and objective, or "hand-tuned by ...").
	Source string `toml:"source"`
	// Params is the policy.
	Params Params `toml:"params"`
}

// Load reads and validates the params file at path (see Parse). It returns the
// policy and the whole file, for its provenance.
func Load(path string) (Params, File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return Params{}, File{}, fmt.Errorf("promotion: load params: %w", err)
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, maxFileSize+1))
	if err != nil {
		return Params{}, File{}, fmt.Errorf("promotion: load params %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return Params{}, File{}, fmt.Errorf("promotion: load params %s: %w: larger than %d bytes", path, ErrSyntax, maxFileSize)
	}
	f, err := Parse(data)
	if err != nil {
		return Params{}, File{}, fmt.Errorf("promotion: load params %s: %w", path, err)
	}
	return f.Params, f, nil
}

// Parse decodes a params file from TOML. Parameters it does not set keep
// their defaults. It rejects invalid TOML or types (ErrSyntax), unknown keys
// (ErrUnknownKey), a missing or unsupported version (ErrVersion) and
// parameters out of range (ErrInvalidParams).
func Parse(data []byte) (File, error) {
	f := File{Params: DefaultParams()}
	md, err := toml.Decode(string(data), &f)
	if err != nil {
		return File{}, fmt.Errorf("%w: %w", ErrSyntax, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		slices.Sort(keys)
		return File{}, fmt.Errorf("%w: %s", ErrUnknownKey, strings.Join(keys, ", "))
	}
	if !md.IsDefined("version") {
		return File{}, fmt.Errorf("%w: the file has no version key (want version = %d)", ErrVersion, FileVersion)
	}
	if f.Version != FileVersion {
		return File{}, fmt.Errorf("%w: version %d, this build reads version %d", ErrVersion, f.Version, FileVersion)
	}
	if err := f.Params.Validate(); err != nil {
		return File{}, err
	}
	return f, nil
}

// Encode returns f as TOML, in the form Parse reads. A zero Version is
// written as FileVersion.
func Encode(f File) ([]byte, error) {
	if f.Version == 0 {
		f.Version = FileVersion
	}
	if f.Version != FileVersion {
		return nil, fmt.Errorf("%w: cannot write version %d, this build writes version %d", ErrVersion, f.Version, FileVersion)
	}
	if err := f.Params.Validate(); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.WriteString("# Canopy promotion policy (package promotion). Durations are Go durations,\n")
	buf.WriteString("# bandwidths bytes per second, headrooms and thresholds fractions.\n")
	if err := toml.NewEncoder(&buf).Encode(f); err != nil {
		return nil, fmt.Errorf("promotion: encode params: %w", err)
	}
	return buf.Bytes(), nil
}

// Save writes f to path atomically: to a temporary file in the same
// directory, synced, then renamed over path, so that a crash leaves either the
// old file or the new one. It refuses a policy Load would reject.
func Save(path string, f File) error {
	data, err := Encode(f)
	if err != nil {
		return fmt.Errorf("promotion: save params %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("promotion: save params: %w", err)
	}
	name := tmp.Name()
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(name, path)
	}
	if err != nil {
		return errors.Join(fmt.Errorf("promotion: save params %s: %w", path, err), removeTemp(name))
	}
	// Sync the directory so that the rename itself survives a crash; not every
	// platform can open a directory for this, so failure is not an error.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

func removeTemp(name string) error {
	if err := os.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
