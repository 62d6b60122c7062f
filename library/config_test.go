package library

import (
	"errors"
	"github.com/canopy-p2p/canopy/internal/configtest"
	"testing"
)

// DefaultConfig lacks only DBPath, which has no default.
func TestDefaultConfigValidates(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); !errors.Is(err, ErrConfig) {
		t.Errorf("DefaultConfig without DBPath: Validate() = %v, want an ErrConfig", err)
	}
	c.DBPath = "library.db"
	if err := c.Validate(); err != nil {
		t.Errorf("DefaultConfig with DBPath: Validate() = %v", err)
	}
}

// The zero Config means the defaults (the Logger aside).
func TestZeroConfigWithDefaultsIsDefaultConfig(t *testing.T) {
	configtest.ZeroMeansDefault(t, Config{}.withDefaults(), DefaultConfig())
}
