package supernode

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/internal/testwait"
	"github.com/canopy-p2p/canopy/link"
	"github.com/canopy-p2p/canopy/wire"
)

// answerProbes listens on a second loopback port with creds and answers
// dial-back probes as a node's accept loop does: the same node, reachable
// at another address.
func answerProbes(t *testing.T, creds *link.Credentials) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go serveHellos(ln, creds, func(c *link.Conn, h wire.Hello) {
		if h.Role != wire.RoleProbe {
			c.Close("not a probe")
			return
		}
		answerProbe(c)
	})
	return ln.Addr().String()
}

// memberControl is the control address a's ring view holds for id, "" when
// it does not list id.
func memberControl(a *Supernode, id identity.NodeID) string {
	for _, m := range a.Members() {
		if m.Meta.NodeID == id {
			return m.Meta.Control
		}
	}
	return ""
}

// A supernode whose advertised control address changes republishes its
// metadata, and the other members list it at the new address once it
// answers there.
func TestSetControlRepublishes(t *testing.T) {
	a, addrA := testSupernode(t, Config{})
	b, addrB := testSupernode(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := b.Join(ctx, []string{addrA}); err != nil {
		t.Fatal(err)
	}
	if err := testwait.For(5*time.Second, func() bool { return memberControl(a, b.ID()) == addrB }); err != nil {
		t.Fatalf("a never listed b at %s: %q", addrB, memberControl(a, b.ID()))
	}
	moved := answerProbes(t, b.cfg.Creds)
	if err := b.SetControl(moved); err != nil {
		t.Fatalf("SetControl(%s): %v", moved, err)
	}
	if got := b.Control(); got != moved {
		t.Errorf("Control() = %s after SetControl(%s)", got, moved)
	}
	if err := testwait.For(5*time.Second, func() bool { return memberControl(a, b.ID()) == moved }); err != nil {
		t.Fatalf("a still lists b at %q, want the new address %s", memberControl(a, b.ID()), moved)
	}
	// The same address again changes nothing and is no error.
	if err := b.SetControl(moved); err != nil {
		t.Errorf("SetControl with the current address: %v", err)
	}
}

func TestSetControlRefusesBadAddress(t *testing.T) {
	sn, addr := testSupernode(t, Config{})
	for _, bad := range []string{"", "no-port", "127.0.0.1:0", "127.0.0.1:70000", "127.0.0.1:x"} {
		if err := sn.SetControl(bad); !errors.Is(err, ErrConfig) {
			t.Errorf("SetControl(%q) = %v, want an ErrConfig", bad, err)
		}
	}
	if got := sn.Control(); got != addr {
		t.Errorf("Control() = %s after refused changes, want %s", got, addr)
	}
}

// GossipAdvertise is the gossip address the supernode tells others (a
// router's mapping of the gossip port), not the bound one.
func TestGossipAdvertise(t *testing.T) {
	// The supernode binds a free port; 9 (discard) is never it.
	adv := "127.0.0.1:9"
	sn, _ := testSupernode(t, Config{GossipAdvertise: adv})
	if got := sn.GossipAddr(); got != adv {
		t.Errorf("GossipAddr() = %s, want the advertised %s", got, adv)
	}
	for _, m := range sn.Members() {
		if m.Self && m.Meta.Gossip.String() != adv {
			t.Errorf("own metadata says gossip %s, want %s", m.Meta.Gossip, adv)
		}
	}
}

func TestGossipAdvertiseValidated(t *testing.T) {
	c := DefaultConfig()
	c.Control = "127.0.0.1:7373"
	for _, bad := range []string{"nothing", "1.2.3.4:0", "1.2.3.4:99999"} {
		c.GossipAdvertise = bad
		if err := c.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("GossipAdvertise %q: Validate() = %v, want an ErrConfig", bad, err)
		}
	}
}
