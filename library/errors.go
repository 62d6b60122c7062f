package library

import "errors"

var (
	// ErrNotFound reports a content ID the library does not share.
	ErrNotFound = errors.New("library: not found")

	// ErrStale reports a shared file that changed on disk since it was
	// hashed, so its manifest no longer describes it. The next scan rehashes
	// it. errors.Is(ErrStale, ErrNotFound) holds, so a caller that only
	// cares whether it can serve the file checks ErrNotFound.
	ErrStale error = staleError{}

	// ErrRevisionTooOld reports a Changes request that the change log cannot
	// answer: the log has been pruned past the requested revision, or the
	// revision was never issued by this database. The caller does a full
	// upload from Snapshot (or Entries) instead.
	ErrRevisionTooOld = errors.New("library: revision too old")

	// ErrClosed reports use of a closed library.
	ErrClosed = errors.New("library: closed")

	// ErrConfig reports an unusable Config.
	ErrConfig = errors.New("library: bad config")

	// ErrSchemaTooNew reports a database written by a newer version of
	// Canopy, which this version must not modify.
	ErrSchemaTooNew = errors.New("library: database schema is newer than this program")
)

type staleError struct{}

func (staleError) Error() string { return "library: file changed since it was hashed" }

// Is makes ErrStale match ErrNotFound as well as itself.
func (staleError) Is(target error) bool { return target == ErrNotFound }
