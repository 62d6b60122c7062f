package main

import (
	"fmt"
	"strconv"
	"strings"
)

// rateUnits maps a rate unit to bytes per second. Network speeds are quoted
// in bits (what an ISP sells: "100mbit") or bytes ("2MB/s"), decimal.
var rateUnits = []struct {
	suffix string
	bytes  float64
}{
	{"gbit", 1e9 / 8}, {"mbit", 1e6 / 8}, {"kbit", 1e3 / 8}, {"bit", 1.0 / 8},
	{"gb/s", 1e9}, {"mb/s", 1e6}, {"kb/s", 1e3}, {"b/s", 1},
}

// parseRate parses a link capacity such as "20mbit", "2.5MB/s" or "800kbit"
// into bytes per second; "" is 0 (undeclared).
func parseRate(s string) (float64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if t == "" {
		return 0, nil
	}
	for _, u := range rateUnits {
		if num, ok := strings.CutSuffix(t, u.suffix); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
			if err != nil || v < 0 || v > 1e6 {
				return 0, fmt.Errorf("bad rate %q", s)
			}
			return v * u.bytes, nil
		}
	}
	return 0, fmt.Errorf("rate %q needs a unit: kbit, mbit, gbit, kB/s, MB/s or GB/s", s)
}
