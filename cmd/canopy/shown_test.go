package main

import (
	"strings"
	"testing"
)

// TestShown: names from the network reach the terminal without escape
// sequences or bidirectional overrides, and bounded.
func TestShown(t *testing.T) {
	for _, in := range []string{
		"photo\u202Egpj.exe",
		"\x1b]0;owned\x07song.mp3",
		"two\nlines.txt",
		"tab\tin.txt",
		strings.Repeat("a", 10000),
	} {
		got := shown(in)
		if strings.ContainsAny(got, "\u202E\x1b\x07\n\t") || len(got) > shownMax+32 {
			t.Errorf("shown(%.40q) = %.80q", in, got)
		}
	}
	if got := shown("Ordinary name (2024) – ünïcode.flac"); got != "Ordinary name (2024) – ünïcode.flac" {
		t.Errorf("a clean name was changed: %q", got)
	}
}
