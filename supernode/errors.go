package supernode

import "errors"

// ErrConfig reports a Config the supernode cannot run with. Every error of
// Config.Validate, and so of Start for a bad Config, wraps it.
var ErrConfig = errors.New("supernode: bad config")
