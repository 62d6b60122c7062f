package ice

import "errors"

// ErrConfig is a Config NewAPI cannot honour fully. Validate's errors wrap
// it.
var ErrConfig = errors.New("ice: invalid configuration")
