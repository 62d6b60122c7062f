package promotion

import "errors"

var (
	// ErrInvalidParams is returned by Params.Validate, and by Load and Save,
	// for a parameter out of its range.
	ErrInvalidParams = errors.New("promotion: invalid parameters")

	// ErrUnknownKey is returned by Parse and Load for a key the params file
	// format does not define, which is most often a typo that would otherwise
	// silently leave a default in place.
	ErrUnknownKey = errors.New("promotion: unknown key in params file")

	// ErrVersion is returned by Parse and Load for a params file whose version
	// is missing or not supported by this build.
	ErrVersion = errors.New("promotion: unsupported params file version")

	// ErrSyntax is returned by Parse and Load for a params file that is not
	// valid TOML or whose values have the wrong type.
	ErrSyntax = errors.New("promotion: malformed params file")
)
