package nat

import "errors"

// ErrUnknownKind is a NAT kind name ParseKind does not know, or a Kind value
// outside the named kinds.
var ErrUnknownKind = errors.New("nat: unknown NAT kind")
