package sim

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestDefaultScenarioValidates(t *testing.T) {
	s := DefaultScenario()
	if err := s.Validate(); err != nil {
		t.Fatalf("DefaultScenario().Validate() = %v", err)
	}
}

// Every complaint about a scenario, from Validate or from LoadScenario,
// wraps ErrScenario.
func TestScenarioErrorsWrapErrScenario(t *testing.T) {
	for name, mod := range map[string]func(*Scenario){
		"nodes":  func(s *Scenario) { s.Nodes = 0 },
		"nat":    func(s *Scenario) { s.NAT = append(s.NAT, NATKind{Kind: "moon"}) },
		"dist":   func(s *Scenario) { s.Churn.Session.Kind = "moon" },
		"policy": func(s *Scenario) { s.Policy.BackoffBase = 0 },
		"event":  func(s *Scenario) { s.Events = append(s.Events, Event{Kind: "moon"}) },
	} {
		s := DefaultScenario()
		mod(&s)
		if err := s.Validate(); !errors.Is(err, ErrScenario) {
			t.Errorf("%s: Validate() = %v, want an ErrScenario", name, err)
		}
	}
	dir := t.TempDir()
	for name, body := range map[string]string{
		"unknown": "version = 1\nmoon = 3\n",
		"version": "version = 99\n",
		"syntax":  "version = \n",
	} {
		p := filepath.Join(dir, name+".toml")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadScenario(p); !errors.Is(err, ErrScenario) {
			t.Errorf("%s: LoadScenario = %v, want an ErrScenario", name, err)
		}
	}
}
