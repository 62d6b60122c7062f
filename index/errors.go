package index

import "errors"

// Errors returned by Index methods. They are wrapped with the owner, the file
// and the counts involved; test for them with errors.Is.
var (
	// ErrBadFile is returned for a file whose name is empty, longer than
	// Limits.MaxNameBytes or not valid UTF-8, or whose size is negative.
	ErrBadFile = errors.New("index: bad file")

	// ErrOwnerFull is returned when a call would leave one owner with more
	// than Limits.MaxFilesPerOwner files or Limits.MaxBytesPerOwner bytes.
	ErrOwnerFull = errors.New("index: owner's file limit reached")

	// ErrTooManyOwners is returned when a call would add an owner to an index
	// that already holds Limits.MaxOwners owners.
	ErrTooManyOwners = errors.New("index: owner limit reached")

	// ErrIndexFull is returned when a call would take the index past
	// Limits.MaxFiles files or Limits.MaxBytes bytes in all.
	ErrIndexFull = errors.New("index: file limit reached")
)
