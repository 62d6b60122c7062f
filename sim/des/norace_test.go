//go:build !race

package des

// raceEnabled: see race_test.go.
const raceEnabled = false
