package stun

import "errors"

var (
	// ErrConfig is a ServerConfig or DiscoverConfig that cannot describe a
	// server or a discovery run. Validate's errors wrap it.
	ErrConfig = errors.New("stun: invalid configuration")
	// ErrNoResponse is the outcome of a STUN transaction that got no answer
	// after all its retransmissions: silence, as opposed to a local error.
	ErrNoResponse = errors.New("stun: no STUN response")
)
