package nat

import (
	"errors"
	"math"
	"testing"
)

func TestKindNames(t *testing.T) {
	for _, k := range Kinds() {
		got, err := ParseKind(k.String())
		if err != nil || got != k {
			t.Errorf("ParseKind(%q) = %v, %v; want %v", k.String(), got, err, k)
		}
		text, err := k.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Kind
		if err := back.UnmarshalText(text); err != nil || back != k {
			t.Errorf("UnmarshalText(%q) = %v, %v", text, back, err)
		}
	}
	if k, err := ParseKind("Full-Cone"); err != nil || k != FullCone {
		t.Errorf("ParseKind ignores case: got %v, %v", k, err)
	}
	if _, err := ParseKind("cone"); err == nil {
		t.Error("ParseKind(\"cone\") succeeded")
	}
	if _, err := Kind(0).MarshalText(); err == nil {
		t.Error("the zero Kind marshals")
	}
	if _, err := ParseKind("none"); !errors.Is(err, ErrUnknownKind) {
		t.Errorf("ParseKind(none) = %v, want ErrUnknownKind", err)
	}
	if len(Kinds()) != len(kindNames) {
		t.Errorf("Kinds() has %d kinds, kindNames %d", len(Kinds()), len(kindNames))
	}
}

// TestKindBehaviour checks that each kind's Behaviour classifies under the
// kind's familiar name, so that DirectPossible on kinds means what it says.
func TestKindBehaviour(t *testing.T) {
	want := map[Kind]string{
		Public:             "public/no NAT",
		FullCone:           "full cone",
		RestrictedCone:     "restricted cone",
		PortRestrictedCone: "port-restricted cone",
		Symmetric:          "symmetric",
		CGNAT:              "port-restricted cone",
		UDPBlocked:         "UDP blocked",
	}
	for _, k := range Kinds() {
		if got := k.Behaviour().Classify(); got != want[k] {
			t.Errorf("%s classifies as %q, want %q", k, got, want[k])
		}
	}
}

func TestPopulation(t *testing.T) {
	pop := Population()
	if len(pop) != len(Kinds()) {
		t.Fatalf("%d shares for %d kinds", len(pop), len(Kinds()))
	}
	sum, reachable := 0.0, 0.0
	for i, s := range pop {
		if s.Kind != Kinds()[i] {
			t.Errorf("share %d is for %s, want %s (the order of Kinds)", i, s.Kind, Kinds()[i])
		}
		if s.Share <= 0 || s.Mapped < 0 || s.Mapped > 1 || s.Why == "" {
			t.Errorf("%s: bad share %+v", s.Kind, s)
		}
		sum += s.Share
		if s.Kind == Public {
			reachable += s.Share
		} else {
			reachable += s.Share * s.Mapped
		}
	}
	if math.Abs(sum-1) > 1e-9 {
		t.Errorf("the population adds up to %.4f, want 1", sum)
	}
	if math.Abs(reachable-0.27) > 1e-9 {
		t.Errorf("%.2f of the population is reachable, want 0.27 (~73%% LowID)", reachable)
	}
}
