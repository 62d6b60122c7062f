package node

import "errors"

// ErrConfig reports a Config the node cannot run with. Every error of
// Config.Validate, and so of Start for a bad Config, wraps it.
var ErrConfig = errors.New("node: bad config")
