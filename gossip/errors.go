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

	// ErrAddrMismatch is returned by the alive filter for a member whose
	// gossip address is not the one its signed metadata names.
	ErrAddrMismatch = errors.New("gossip: gossip address does not match signed metadata")

	// ErrStaleMeta is returned by the alive filter for metadata older than
	// the newest accepted for the same node, or as old but different.
	ErrStaleMeta = errors.New("gossip: node metadata older than the newest seen")

	// ErrUnverified is returned when Config.Verify did not confirm that a
	// node is reachable at its control address and holds its key.
	ErrUnverified = errors.New("gossip: node not verified")

	// ErrBadPacket is returned for a gossip packet or stream that does not
	// authenticate.
	ErrBadPacket = errors.New("gossip: unauthenticated gossip")

	// ErrClosed is returned by Ring methods called after Shutdown or Close.
	ErrClosed = errors.New("gossip: ring is shut down")

	// ErrLeft is returned by Ring methods that need ring membership after
	// Leave; a ring that left cannot rejoin and must be shut down.
	ErrLeft = errors.New("gossip: ring has been left")
)
