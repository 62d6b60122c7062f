package gossip

import (
	"context"
	"errors"
	"testing"

	"github.com/canopy-p2p/canopy/internal/configtest"
)

// DefaultConfig lacks only Creds, Meta and Verify, which have no default.
func TestDefaultConfigValidates(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); !errors.Is(err, ErrConfig) {
		t.Errorf("DefaultConfig without Creds, Meta and Verify: Validate() = %v, want an ErrConfig", err)
	}
	c.Creds = newCreds(t)
	c.Meta = func() Meta { return Meta{} }
	c.Verify = func(context.Context, Meta) error { return nil }
	if err := c.Validate(); err != nil {
		t.Errorf("DefaultConfig with Creds, Meta and Verify: Validate() = %v", err)
	}
}

// The zero Config means the defaults (the Logger aside).
func TestZeroConfigWithDefaultsIsDefaultConfig(t *testing.T) {
	configtest.ZeroMeansDefault(t, Config{}.withDefaults(), DefaultConfig())
}
