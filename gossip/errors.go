package gossip

import "errors"

var (
	// ErrBadMeta is returned for node metadata that does not decode or that
	// fails validation.
	ErrBadMeta = errors.New("gossip: invalid node metadata")

	// ErrMetaTooLarge is returned by EncodeMeta when the encoding would not
	// fit in memberlist's node metadata (MaxMetaSize bytes).
	ErrMetaTooLarge = errors.New("gossip: node metadata too large")

	// ErrConfig reports a Config the ring cannot run with. Every error of
	// Config.Validate, and so of Start for a bad Config, wraps it.
	ErrConfig = errors.New("gossip: invalid config")

	// ErrNameMismatch is returned by the alive filter for a member whose
	// memberlist name is not the node ID in its metadata.
	ErrNameMismatch = errors.New("gossip: node name does not match node ID in metadata")

	// ErrClosed is returned by Ring methods called after Shutdown or Close.
	ErrClosed = errors.New("gossip: ring is shut down")

	// ErrLeft is returned by Ring methods that need ring membership after
	// Leave; a ring that left cannot rejoin and must be shut down.
	ErrLeft = errors.New("gossip: ring has been left")
)
