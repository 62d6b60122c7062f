//go:build race

package index

// raceEnabled is set when the race detector is on, which slows the largest
// tests down tenfold: they index less.
const raceEnabled = true
