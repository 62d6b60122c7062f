package transfer

import "errors"

var (
	// ErrClosed is returned by Download after the engine was closed.
	ErrClosed = errors.New("transfer: engine closed")

	// ErrConfig reports a Config the engine cannot run with. Every error of
	// Config.Validate, and so of New for a bad Config, wraps it.
	ErrConfig = errors.New("transfer: bad config")

	// ErrBadRequest reports a download request that cannot be started: a
	// zero content ID, no output directory, or a bad file name.
	ErrBadRequest = errors.New("transfer: bad request")
	// ErrInProgress reports a download into a file that another download of
	// this engine is already writing.
	ErrInProgress = errors.New("transfer: download already in progress")
	// ErrNoSources is returned by Download when the file cannot be completed
	// because every source failed or none was given. The error wraps the
	// reason of each source.
	ErrNoSources = errors.New("transfer: no source could deliver the file")

	// ErrRefused reports a source that declined the session (it does not
	// share the file, or all its upload slots are taken).
	ErrRefused = errors.New("transfer: refused by source")
	// ErrConnect reports a source that could not be reached within the
	// connect timeout.
	ErrConnect = errors.New("transfer: connect failed")
	// ErrProtocol reports a peer that broke the transfer protocol: a message
	// it should not send, data that was not asked for, a malformed envelope.
	ErrProtocol = errors.New("transfer: protocol violation")
	// ErrBadManifest reports a source whose manifest does not match the
	// content ID.
	ErrBadManifest = errors.New("transfer: manifest does not match content id")
	// ErrBadPiece reports a source that sent a piece that failed verification.
	ErrBadPiece = errors.New("transfer: piece failed verification")
	// ErrSourceFailed reports a source that reported an error of its own
	// (TransferError), e.g. "stale" when its file changed on disk.
	ErrSourceFailed = errors.New("transfer: source reported an error")
	// ErrPeerClosed reports a peer connection that closed or failed midway.
	ErrPeerClosed = errors.New("transfer: peer connection closed")
)
