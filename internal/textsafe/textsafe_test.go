package textsafe

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestBound(t *testing.T) {
	cases := []struct {
		name, in string
		max      int
		want     string
	}{
		{"fits", "canopy/0.1.0", 64, "canopy/0.1.0"},
		{"exactly fits", "abcd", 4, "abcd"},
		{"cut with length", strings.Repeat("a", 100), 20, "aaaaaa…[100 bytes]"},
		{"cut on a rune boundary", "ééééé", 7, "éé…"}, // 10 bytes; "[10 bytes]" does not fit in 7
		{"too small for the mark", "abcdef", 2, "ab"},
		{"newline forges no log line", "ok\nlevel=error msg=forged", 64, "ok\ufffdlevel=error msg=forged"},
		{"bidi override", "abc\u202edef", 64, "abc\ufffddef"},
		{"invalid utf-8", "a\xffb", 64, "a\ufffdb"},
		{"genuine replacement character kept", "a\ufffdb", 64, "a\ufffdb"},
		{"zero max", "abc", 0, ""},
		{"empty", "", 10, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Bound(c.in, c.max); got != c.want {
				t.Errorf("Bound(%q, %d) = %q, want %q", c.in, c.max, got, c.want)
			}
		})
	}
}

// A 900 KB software string, as an attacker's hello carried it, comes out at
// the bound, and Bound reads only the start of it.
func TestBoundHugeString(t *testing.T) {
	huge := strings.Repeat("x", 900_000)
	got := Bound(huge, 64)
	if len(got) > 64 || !strings.HasSuffix(got, Mark+"[900000 bytes]") {
		t.Fatalf("Bound of 900 KB = %q (%d bytes)", got, len(got))
	}
	allocs := testing.AllocsPerRun(100, func() { _ = Bound(huge, 64) })
	if allocs > 3 {
		t.Errorf("Bound allocated %v times per call", allocs)
	}
	if a := testing.AllocsPerRun(100, func() { _ = Bound("canopy/0.1.0", 64) }); a != 0 {
		t.Errorf("a clean string that fits allocated %v times", a)
	}
}

func FuzzBound(f *testing.F) {
	for _, s := range []string{"", "canopy/0.1.0", "ééé", "a\nb", "\xff\xfe", "abc\u202edef", strings.Repeat("ab", 300)} {
		f.Add(s, 16)
		f.Add(s, 3)
		f.Add(s, 0)
	}
	f.Fuzz(func(t *testing.T, s string, max int) {
		max %= 1 << 12
		got := Bound(s, max)
		if len(got) > max && !(max <= 0 && got == "") {
			t.Fatalf("Bound(%q, %d) = %q: %d bytes", s, max, got, len(got))
		}
		if !utf8.ValidString(got) || !clean(got) {
			t.Fatalf("Bound(%q, %d) = %q: not clean", s, max, got)
		}
		if max > 0 && len(s) <= max && clean(s) && got != s {
			t.Fatalf("Bound(%q, %d) = %q changed a clean string that fits", s, max, got)
		}
		if Bound(got, max) != got {
			t.Fatalf("Bound is not idempotent on %q", got)
		}
	})
}
