package node

import (
	"errors"
	"net/netip"
	"strconv"
	"testing"

	"github.com/canopy-p2p/canopy/internal/configtest"
	"github.com/canopy-p2p/canopy/link"
	"github.com/canopy-p2p/canopy/nat/reach"
	"github.com/canopy-p2p/canopy/nat/relay"
	"github.com/canopy-p2p/canopy/promotion"
)

func TestDefaultConfigValidates(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
}

// The zero Config means the defaults (the Logger aside).
func TestZeroConfigWithDefaultsIsDefaultConfig(t *testing.T) {
	configtest.ZeroMeansDefault(t, Config{}.withDefaults(), DefaultConfig())
}

// DefaultTURN is a constant, so it spells the relay's port out; it must
// stay the relay package's default port.
func TestDefaultTURNIsTheRelayPort(t *testing.T) {
	if want := "0.0.0.0:" + strconv.Itoa(relay.DefaultPort); DefaultTURN != want {
		t.Errorf("DefaultTURN = %q, want %q", DefaultTURN, want)
	}
}

// The old spelling "-" of Off still turns a service off.
func TestOffAlias(t *testing.T) {
	c := Config{API: "-", TURN: "-", STUN: "-"}.withDefaults()
	if c.API != Off || c.TURN != Off || c.STUN != Off {
		t.Errorf("withDefaults kept the old spelling: API %q, TURN %q, STUN %q", c.API, c.TURN, c.STUN)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate() = %v", err)
	}
}

// Negative role intervals are kept: they mean no role loop.
func TestNoRoleLoopKept(t *testing.T) {
	if got := (Config{RoleInterval: NoRoleLoop}).withDefaults().RoleInterval; got != NoRoleLoop {
		t.Errorf("RoleInterval = %v, want NoRoleLoop", got)
	}
}

func TestValidateWrapsErrConfig(t *testing.T) {
	for name, mod := range map[string]func(*Config){
		"bad consent":          func(c *Config) { c.Consent = promotion.Consent(99) },
		"stun without alt":     func(c *Config) { c.STUN = "0.0.0.0:3479" },
		"api not host:port":    func(c *Config) { c.API = "localhost" },
		"api not loopback":     func(c *Config) { c.API = "0.0.0.0:7375" },
		"reach never confirms": func(c *Config) { c.Reach.Window, c.Reach.MinConfidence = 3, 4 },
		"negative accept cap":  func(c *Config) { c.Accept.MaxPending = -1 },
	} {
		c := DefaultConfig()
		mod(&c)
		err := c.withDefaults().Validate()
		if !errors.Is(err, ErrConfig) {
			t.Errorf("%s: Validate() = %v, want an ErrConfig", name, err)
		}
		if name == "reach never confirms" && !errors.Is(err, reach.ErrConfig) {
			t.Errorf("%s: Validate() = %v, want it to wrap reach.ErrConfig too", name, err)
		}
		if name == "negative accept cap" && !errors.Is(err, link.ErrConfig) {
			t.Errorf("%s: Validate() = %v, want it to wrap link.ErrConfig too", name, err)
		}
	}
	c := DefaultConfig()
	c.STUN, c.STUNAlternate = "0.0.0.0:3479", netip.MustParseAddrPort("192.0.2.1:3480")
	if err := c.Validate(); err != nil {
		t.Errorf("STUN with STUNAlternate: Validate() = %v", err)
	}
}
