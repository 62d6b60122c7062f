// Package sqlitecheck tells an SQLite database that is damaged, and may be
// moved aside and rebuilt or salvaged, from one that its surroundings keep
// from opening (a lock, a full or read-only disk, permissions), which moving
// it would not cure and would throw away. The node's recomputable library
// database and its download jobs both decide by it.
package sqlitecheck

import (
	"errors"
	"fmt"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// MaxReasonLen bounds the reason a DamagedError carries, and so the log
// line that reports it.
const MaxReasonLen = 300

// DamagedError reports a database damaged beyond use.
type DamagedError struct{ Reason string }

func (e *DamagedError) Error() string { return "database is damaged: " + e.Reason }

// Damaged returns a DamagedError whose reason is the formatted text on one
// line (quick_check's report spans several), cut at MaxReasonLen.
func Damaged(format string, args ...any) error {
	r := strings.Join(strings.Fields(fmt.Sprintf(format, args...)), " ")
	if len(r) > MaxReasonLen {
		r = r[:MaxReasonLen] + "…"
	}
	return &DamagedError{Reason: r}
}

// Code returns the primary result code of an SQLite error, or 0.
func Code(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() & 0xff
	}
	return 0
}

// IsDamage reports whether err is SQLite's own word that the file is
// damaged: not a database at all, or a malformed one.
func IsDamage(err error) bool {
	c := Code(err)
	return c == sqlite3.SQLITE_CORRUPT || c == sqlite3.SQLITE_NOTADB
}

// IsEnvironment reports whether err comes from the file's surroundings, not
// its content: a lock held by another process, an I/O error, a read-only or
// full disk, permissions.
func IsEnvironment(err error) bool {
	switch Code(err) {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN,
		sqlite3.SQLITE_PERM, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_FULL, sqlite3.SQLITE_NOMEM,
		sqlite3.SQLITE_INTERRUPT, sqlite3.SQLITE_NOLFS, sqlite3.SQLITE_AUTH, sqlite3.SQLITE_ABORT:
		return true
	}
	return false
}
