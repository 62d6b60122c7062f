package portmap

import "errors"

// Errors of port mapping.
var (
	// ErrConfig is a Config Map cannot run with. Validate's errors wrap
	// it.
	ErrConfig = errors.New("portmap: invalid configuration")
	// ErrNoGateway means the default gateway could not be found.
	ErrNoGateway = errors.New("portmap: no default gateway")
	// ErrNoIGD means no UPnP Internet Gateway Device answered at the gateway.
	ErrNoIGD = errors.New("portmap: no UPnP IGD at the gateway")
)
