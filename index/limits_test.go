package index

import "testing"

// Zero Limits mean the defaults.
func TestZeroLimitsWithDefaultsIsDefaultLimits(t *testing.T) {
	if got, want := (Limits{}).withDefaults(), DefaultLimits(); got != want {
		t.Errorf("Limits{}.withDefaults() = %+v, want DefaultLimits() = %+v", got, want)
	}
	if got, want := (Limits{MaxOwners: -1}).withDefaults().MaxOwners, DefaultMaxOwners; got != want {
		t.Errorf("negative MaxOwners became %d, want %d", got, want)
	}
}
