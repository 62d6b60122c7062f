package report

import (
	"bytes"
	"encoding/json"
	"io"
)

// WriteJSON writes v to path as JSON indented by two spaces, with a trailing
// newline. The output is deterministic for deterministic values: struct
// fields keep their declaration order and encoding/json sorts map keys.
// HTML characters are not escaped, since the file is read by people and
// tools, not embedded in pages. Values JSON cannot represent (NaN, ±Inf,
// channels, functions) are an error and leave path untouched.
func WriteJSON(path string, v any) error {
	// Encode fully before touching the file system so that an unencodable
	// value does not leave a temporary file behind.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil { // Encode appends the newline.
		return err
	}
	return writeAtomic(path, func(w io.Writer) error {
		_, err := buf.WriteTo(w)
		return err
	})
}
