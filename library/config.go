package library

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"go.uber.org/zap"

	"github.com/canopy-p2p/canopy/content"
)

// DefaultChangeLogLimit is how many change log entries are kept. An uploader
// further behind than that does a full upload, which for a library of this
// many changes costs about as much as replaying them.
const DefaultChangeLogLimit = 10000

// Config configures a Library.
type Config struct {
	// Dirs are the directories whose files are shared, recursively. Relative
	// paths are made absolute at Open; a directory given as a symbolic link
	// is followed. A directory that is missing at scan time shares nothing,
	// and the files it shared before are removed. May be empty.
	Dirs []string

	// Shares are more directories to share, each with its visibility (Dirs
	// are shared with everyone). A directory in both, or twice, is shared
	// once, with the narrowest visibility given; a directory inside
	// another share belongs to its own share, whatever the outer one's
	// visibility. SetShares replaces Dirs and Shares while the library
	// runs.
	Shares []Share

	// DBPath is the SQLite database file. Required; its directory is created
	// if missing. The database and its -wal and -shm companions are never
	// shared, even when they sit inside one of Dirs.
	DBPath string

	// PieceSize is the piece size for new hashes; 0 means
	// content.DefaultPieceSize, otherwise it must satisfy
	// content.ValidPieceSize. Content IDs depend on it, so leaves that want
	// to share sources for the same file must use the same value: leave it
	// at the default unless there is a network-wide reason. A file too large
	// for content.MaxPieces pieces of this size is hashed with the smallest
	// larger power of two that fits. Changing it rehashes every file.
	PieceSize uint32

	// ChangeLogLimit is how many change log entries to keep; 0 means
	// DefaultChangeLogLimit.
	ChangeLogLimit int

	// Logger receives warnings about files that cannot be shared. May be
	// nil, which means no logging.
	Logger *zap.Logger
}

// DefaultConfig returns a Config with every default set. DBPath, which has
// no default, must still be set; Dirs may stay empty.
func DefaultConfig() Config {
	return Config{
		PieceSize:      content.DefaultPieceSize,
		ChangeLogLimit: DefaultChangeLogLimit,
	}
}

// withDefaults returns c with its zero fields set to their defaults and a
// nil Logger replaced by one that discards.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.PieceSize == 0 {
		c.PieceSize = d.PieceSize
	}
	if c.ChangeLogLimit == 0 {
		c.ChangeLogLimit = d.ChangeLogLimit
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

// Validate reports every field of c (after withDefaults) that the library
// cannot run with, joined, each wrapping ErrConfig.
func (c Config) Validate() error {
	var errs []error
	if c.DBPath == "" {
		errs = append(errs, fmt.Errorf("%w: DBPath is empty", ErrConfig))
	}
	// The SQLite driver cuts a file name at '?' to find its parameters.
	if strings.Contains(c.DBPath, "?") {
		errs = append(errs, fmt.Errorf("%w: DBPath %q contains '?'", ErrConfig, c.DBPath))
	}
	if !content.ValidPieceSize(c.PieceSize) {
		errs = append(errs, fmt.Errorf("%w: piece size %d", ErrConfig, c.PieceSize))
	}
	if c.ChangeLogLimit < 0 {
		errs = append(errs, fmt.Errorf("%w: negative ChangeLogLimit", ErrConfig))
	}
	return errors.Join(errs...)
}

// absolute returns c with DBPath and Dirs made absolute, so that the
// library does not depend on the working directory after Open.
func (c Config) absolute() (Config, error) {
	db, err := filepath.Abs(c.DBPath)
	if err != nil {
		return c, fmt.Errorf("%w: DBPath: %v", ErrConfig, err)
	}
	c.DBPath = db
	dirs := make([]string, 0, len(c.Dirs))
	for _, d := range c.Dirs {
		abs, err := filepath.Abs(d)
		if err != nil {
			return c, fmt.Errorf("%w: dir %q: %v", ErrConfig, d, err)
		}
		dirs = append(dirs, abs)
	}
	c.Dirs = dirs
	shares := make([]Share, 0, len(dirs)+len(c.Shares))
	for _, d := range dirs {
		shares = append(shares, Share{Dir: d})
	}
	more, err := validShares(c.Shares)
	if err != nil {
		return c, err
	}
	c.Shares = append(shares, more...)
	return c, nil
}

// pieceSizeFor returns the piece size for a file of the given size: the
// configured one, doubled until the piece count fits content.MaxPieces. It
// returns 0 when no valid piece size fits.
func (c Config) pieceSizeFor(size int64) uint32 {
	for ps := c.PieceSize; ps <= content.MaxPieceSize; ps *= 2 {
		if size <= int64(content.MaxPieces)*int64(ps) {
			return ps
		}
	}
	return 0
}
