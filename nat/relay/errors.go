package relay

import "errors"

// Errors of the relay.
var (
	// ErrConfig is a Config New refuses. Validate's errors wrap it.
	ErrConfig = errors.New("relay: invalid configuration")
	// ErrQuota is an allocation refused because the leaf or the relay
	// holds as many allocations as its quota allows. A client sees TURN
	// error 486 (Allocation Quota Reached).
	ErrQuota = errors.New("relay: allocation quota reached")
	// ErrDetached is an allocation refused because its leaf is not
	// attached to this supernode (Relay.Attach) now. A client sees 486 too.
	ErrDetached = errors.New("relay: leaf not attached")
	// ErrClosed is returned for work asked of a closed relay.
	ErrClosed = errors.New("relay: closed")
	// errRelayUnsupported covers allocation kinds the relay does not offer:
	// RFC 6062 TCP relaying (WebRTC data channels run over UDP and only need
	// TURN over TCP to the server) and EVEN-PORT pairs (for RTP media).
	errRelayUnsupported = errors.New("relay: only UDP relaying is offered, without EVEN-PORT")
)

// Errors from Creds.Check. Both mean the request is refused; they are
// distinct so that the relay can log and count why.
var (
	// ErrCredsMalformed is a user name that is not
	// "<unix expiry>:<leaf node ID>" in canonical form, or is too long.
	ErrCredsMalformed = errors.New("relay: malformed TURN user name")
	// ErrCredsExpired is a well-formed user name whose expiry has passed.
	ErrCredsExpired = errors.New("relay: TURN credential expired")
	// ErrCredsRetired is a credential signed with a secret that has been
	// rotated out (two rotations ago), so its key can no longer be derived.
	ErrCredsRetired = errors.New("relay: TURN credential signed with a retired secret")
)
