package gossip

import (
	"errors"
	"testing"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/internal/configtest"
)

// DefaultConfig lacks only NodeID and Meta, which have no default.
func TestDefaultConfigValidates(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); !errors.Is(err, ErrConfig) {
		t.Errorf("DefaultConfig without NodeID and Meta: Validate() = %v, want an ErrConfig", err)
	}
	c.NodeID = identity.NodeID{1}
	c.Meta = func() Meta { return Meta{} }
	if err := c.Validate(); err != nil {
		t.Errorf("DefaultConfig with NodeID and Meta: Validate() = %v", err)
	}
}

// The zero Config means the defaults (the Logger aside).
func TestZeroConfigWithDefaultsIsDefaultConfig(t *testing.T) {
	configtest.ZeroMeansDefault(t, Config{}.withDefaults(), DefaultConfig())
}
