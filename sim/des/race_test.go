//go:build race

package des

// raceEnabled scales the statistical tests down under the race detector,
// which slows the engine about tenfold; their tolerances follow the sample
// size, so they stay as strict in standard deviations.
const raceEnabled = true
