package dist

import "errors"

// Sentinel errors, wrapped with the offending value by the functions that
// return them so callers can test with errors.Is and readers see the cause.
var (
	// ErrInvalidParameter reports a distribution parameter outside its
	// domain, such as a non-positive Weibull shape or a NaN rate.
	ErrInvalidParameter = errors.New("dist: invalid parameter")

	// ErrUnknownKind reports a Spec whose Kind names no distribution.
	ErrUnknownKind = errors.New("dist: unknown distribution kind")

	// ErrNoWeights reports a Discrete built from no weights, or from weights
	// that are all zero, so no category could ever be drawn.
	ErrNoWeights = errors.New("dist: no positive weights")
)
