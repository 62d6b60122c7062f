package leaf

import "errors"

// ErrConfig reports a Config the leaf cannot run with. Every error of
// Config.Validate, and so of Start for a bad Config, wraps it.
var ErrConfig = errors.New("leaf: bad config")
