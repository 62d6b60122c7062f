package gossip

import (
	"errors"
	"reflect"
	"testing"

	"github.com/canopy-p2p/canopy/identity"
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

// The zero Config means the defaults: withDefaults of it is DefaultConfig,
// except for the Logger, which withDefaults sets to one that discards.
func TestZeroConfigWithDefaultsIsDefaultConfig(t *testing.T) {
	got := Config{}.withDefaults()
	if got.Logger == nil {
		t.Error("withDefaults left the Logger nil")
	}
	got.Logger = nil
	if want := DefaultConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("Config{}.withDefaults() = %+v, want DefaultConfig() = %+v", got, want)
	}
}
