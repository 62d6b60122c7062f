package downloads

import "errors"

var (
	// ErrConfig wraps every error of Config.Validate.
	ErrConfig = errors.New("downloads: bad configuration")
	// ErrNotFound is returned for a job ID the manager does not hold.
	ErrNotFound = errors.New("downloads: no such job")
	// ErrAction is returned when an action does not apply to a job in its
	// state (resume a running job, retry a done one).
	ErrAction = errors.New("downloads: action does not apply")
	// ErrTransition marks a state change the state machine does not allow:
	// a bug.
	ErrTransition = errors.New("downloads: state change not allowed")
	// ErrBadRequest is returned by Enqueue for a request it cannot take.
	ErrBadRequest = errors.New("downloads: bad request")
	// ErrBadRecord is returned when a stored piece record cannot be decoded.
	ErrBadRecord = errors.New("downloads: bad piece record")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("downloads: manager closed")
	// ErrDiskFull is wrapped by a job's failure when its disk is full.
	ErrDiskFull = errors.New("the disk is full")
)
