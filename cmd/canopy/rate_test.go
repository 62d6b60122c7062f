package main

import "testing"

func TestParseRate(t *testing.T) {
	for _, c := range []struct {
		in   string
		want float64
		ok   bool
	}{
		{"", 0, true},
		{"20mbit", 2.5e6, true},
		{"2.5MB/s", 2.5e6, true},
		{"800 kbit", 1e5, true},
		{"1Gbit", 1.25e8, true},
		{"20", 0, false},
		{"-1mbit", 0, false},
		{"fastmbit", 0, false},
		{"1e9mbit", 0, false},
	} {
		got, err := parseRate(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("parseRate(%q) = %v, %v; want %v, ok %v", c.in, got, err, c.want, c.ok)
		}
	}
}
