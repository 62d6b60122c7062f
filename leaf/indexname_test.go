package leaf

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/canopy-p2p/canopy/index"
	"github.com/canopy-p2p/canopy/wire"
)

// TestIndexName: a name over the index's limit is cut on a character
// boundary, keeping a short extension, so that one long name does not cost
// the leaf its whole upload.
func TestIndexName(t *testing.T) {
	if wire.MaxIndexName != index.DefaultMaxNameBytes {
		t.Fatalf("wire.MaxIndexName %d, index.DefaultMaxNameBytes %d: the leaf cuts names to what the index accepts", wire.MaxIndexName, index.DefaultMaxNameBytes)
	}
	for _, tc := range []struct {
		name, ext string
	}{
		{"short.mp3", ".mp3"},
		{strings.Repeat("a", 255), ""},
		{strings.Repeat("a", 300) + ".flac", ".flac"},
		{strings.Repeat("日本語", 40) + ".txt", ".txt"}, // 360 bytes: NTFS counts 120 characters
		{strings.Repeat("é", 200), ""},
		{"x." + strings.Repeat("y", 300), ""}, // an "extension" too long to keep
	} {
		got := indexName(tc.name)
		if len(got) > wire.MaxIndexName || !utf8.ValidString(got) || !strings.HasSuffix(got, tc.ext) {
			t.Errorf("indexName(%d bytes) = %d bytes %q", len(tc.name), len(got), got)
		}
		if len(tc.name) <= wire.MaxIndexName && got != tc.name {
			t.Errorf("a name within the limit was changed: %q", got)
		}
		if len(tc.name) > wire.MaxIndexName && len(got) < wire.MaxIndexName-3 {
			t.Errorf("cut to %d bytes, more than a character short of the limit", len(got))
		}
	}
}
