package promotion

import "fmt"

// Role is the part a node plays in the network.
type Role uint8

const (
	// RoleLeaf is a node attached to supernodes, the role every node starts in.
	RoleLeaf Role = iota
	// RoleSupernode is a node in the gossip ring that serves leaves.
	RoleSupernode
)

// String returns "leaf" or "supernode".
func (r Role) String() string {
	switch r {
	case RoleLeaf:
		return "leaf"
	case RoleSupernode:
		return "supernode"
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// Consent is what the user allows: the --supernode flag.
type Consent uint8

const (
	// ConsentAuto lets the policy decide. It is the zero value and the default.
	ConsentAuto Consent = iota
	// ConsentNever keeps the node a leaf; a supernode demotes at once.
	ConsentNever
	// ConsentAlways makes the node a supernode whenever it is reachable,
	// whatever its uptime, capacity or the ring's need.
	ConsentAlways
)

// String returns "auto", "never" or "always".
func (c Consent) String() string {
	switch c {
	case ConsentAuto:
		return "auto"
	case ConsentNever:
		return "never"
	case ConsentAlways:
		return "always"
	}
	return fmt.Sprintf("consent(%d)", uint8(c))
}

// ParseConsent parses "auto", "never" or "always".
func ParseConsent(s string) (Consent, error) {
	switch s {
	case "auto":
		return ConsentAuto, nil
	case "never":
		return ConsentNever, nil
	case "always":
		return ConsentAlways, nil
	}
	return 0, fmt.Errorf("promotion: consent %q: want auto, never or always", s)
}

// MarshalText implements encoding.TextMarshaler, so that Consent can be a
// flag (flag.TextVar) or a config value.
func (c Consent) MarshalText() ([]byte, error) {
	if c > ConsentAlways {
		return nil, fmt.Errorf("promotion: invalid consent %d", uint8(c))
	}
	return []byte(c.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseConsent.
func (c *Consent) UnmarshalText(b []byte) error {
	v, err := ParseConsent(string(b))
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// Action is what Decide tells the node to do.
type Action uint8

const (
	// Stay keeps the current role.
	Stay Action = iota
	// Promote turns a leaf into a supernode.
	Promote
	// Demote turns a supernode into a leaf (after handing its leaves over).
	Demote
)

// String returns "stay", "promote" or "demote".
func (a Action) String() string {
	switch a {
	case Stay:
		return "stay"
	case Promote:
		return "promote"
	case Demote:
		return "demote"
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}
