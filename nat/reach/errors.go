package reach

import "errors"

// ErrConfig is a Config under which a Tracker could never reach a verdict.
// Validate's errors wrap it.
var ErrConfig = errors.New("reach: invalid configuration")
