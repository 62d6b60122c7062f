// Package textsafe bounds strings that come from other nodes before they are
// logged or stored. A peer chooses every byte of its hello's software string,
// a goodbye's reason or a refusal's reason; compressed, a 900 KB string costs
// it about 100 bytes on the wire, and logged verbatim 200 such hellos wrote
// 171 MB of log. Bound cuts such a string to a size the receiver chose and
// makes what is left harmless to print.
package textsafe

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Mark ends a string that Bound cut, followed by the original's length in
// bytes, so that a reader of the log knows the value is not whole and how
// large the original was.
const Mark = "…"

// Bound returns s cut to at most max bytes, on a rune boundary, with the cut
// marked ("canopy/0.1…[900000 bytes]"), and with what a terminal or a log
// reader could misread replaced by U+FFFD: invalid UTF-8, control characters
// (newlines forge log lines), and the Unicode format characters that reorder
// or hide text (bidirectional overrides, zero-width characters). A string that
// is clean and fits is returned as it is, without allocating. Only the first
// max bytes or so of s are read, however long s is. max ≤ 0 returns "".
func Bound(s string, max int) string {
	if max <= 0 {
		return ""
	}
	if len(s) <= max && clean(s) {
		return s
	}
	var b strings.Builder
	b.Grow(min(len(s), max))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || !printable(r) {
			r = utf8.RuneError
		}
		if b.Len()+utf8.RuneLen(r) > max {
			// The rest does not fit: mark the cut, making room for the mark.
			return cut(b.String(), len(s), max)
		}
		b.WriteRune(r)
		i += size
	}
	return b.String()
}

// cut ends kept (already clean, at most max bytes) with the mark and the
// original's length, within max bytes, taking runes back from kept to make
// room. When max cannot hold the length, the plain mark is used; when it
// cannot hold even that, kept is cut without one.
func cut(kept string, original, max int) string {
	for _, suffix := range []string{Mark + "[" + strconv.Itoa(original) + " bytes]", Mark} {
		for n := len(kept); ; {
			if n+len(suffix) <= max {
				return kept[:n] + suffix
			}
			if n == 0 {
				break
			}
			// Step back one rune: kept is valid UTF-8, so this stays on a
			// boundary.
			_, size := utf8.DecodeLastRuneInString(kept[:n])
			n -= size
		}
	}
	n := len(kept)
	for n > max {
		_, size := utf8.DecodeLastRuneInString(kept[:n])
		n -= size
	}
	return kept[:n]
}

// clean reports whether s is valid UTF-8 of printable characters only.
func clean(s string) bool {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || !printable(r) {
			return false
		}
		i += size
	}
	return true
}

// printable accepts letters, marks, numbers, punctuation, symbols and the
// plain space; it refuses control characters, other spaces and separators
// (line and paragraph separators break lines too), and format characters
// (Cf: bidirectional overrides, zero-width joiners and the like), which can
// make a log line read as something it is not.
func printable(r rune) bool {
	if r == ' ' {
		return true
	}
	return unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S)
}
