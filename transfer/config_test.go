package transfer

import (
	"context"
	"errors"
	"testing"

	"github.com/pion/webrtc/v4"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/internal/configtest"
	"github.com/canopy-p2p/canopy/wire"
)

// DefaultConfig lacks only Identity, API and Signal, which have no default.
func TestDefaultConfigValidates(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); !errors.Is(err, ErrConfig) {
		t.Errorf("DefaultConfig without Identity, API and Signal: Validate() = %v, want an ErrConfig", err)
	}
	id, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	c.Identity, c.API = id, webrtc.NewAPI()
	c.Signal = func(context.Context, wire.Signal) error { return nil }
	if err := c.Validate(); err != nil {
		t.Errorf("DefaultConfig with Identity, API and Signal: Validate() = %v", err)
	}
	if _, err := New(Config{}); !errors.Is(err, ErrConfig) {
		t.Errorf("New(Config{}) = %v, want an ErrConfig", err)
	}
}

// The zero Config means the defaults (the Logger aside).
func TestZeroConfigWithDefaultsIsDefaultConfig(t *testing.T) {
	configtest.ZeroMeansDefault(t, Config{}.withDefaults(), DefaultConfig())
	if got := (Config{MaxUploads: NoUploads}).withDefaults().MaxUploads; got != NoUploads {
		t.Errorf("MaxUploads NoUploads became %d", got)
	}
}
