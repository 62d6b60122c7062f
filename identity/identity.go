// Package identity holds who a node is: its Ed25519 key pair, the node ID derived
// from the public key, and the self-signed TLS certificate that proves the key on
// control links.
package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/canopy-p2p/canopy/internal/atomicfile"
)

// IDLen is the length of a node ID in bytes.
const IDLen = 32

// NodeID names a node. It is SHA-256 over a domain tag and the node's Ed25519
// public key, so that anyone holding the key can check the ID, and an ID never
// collides with a hash of some other kind of data.
type NodeID [IDLen]byte

// idEncoding is lower-case base32 without padding: 52 characters, safe in file
// names, URLs and memberlist node names.
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

const idDomain = "canopy node id v1\x00"

// IDFromPublicKey derives the node ID of an Ed25519 public key.
func IDFromPublicKey(pub ed25519.PublicKey) NodeID {
	h := sha256.New()
	h.Write([]byte(idDomain))
	h.Write(pub)
	var id NodeID
	copy(id[:], h.Sum(nil))
	return id
}

// String returns the 52-character base32 form of the ID.
func (id NodeID) String() string { return idEncoding.EncodeToString(id[:]) }

// Short returns the first 10 characters of the ID, for logs and tables.
func (id NodeID) Short() string { return id.String()[:10] }

// IsZero reports whether the ID is unset.
func (id NodeID) IsZero() bool { return id == NodeID{} }

// MarshalText implements encoding.TextMarshaler.
func (id NodeID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *NodeID) UnmarshalText(b []byte) error {
	p, err := ParseNodeID(string(b))
	if err != nil {
		return err
	}
	*id = p
	return nil
}

// ParseNodeID parses the base32 form produced by String.
func ParseNodeID(s string) (NodeID, error) {
	var id NodeID
	if len(s) != 52 {
		return id, fmt.Errorf("%w: want 52 characters, got %d", ErrBadNodeID, len(s))
	}
	lower := strings.ToLower(s)
	b, err := idEncoding.DecodeString(lower)
	// 52 characters carry 260 bits; the last 4 must be zero, or two strings
	// would name one node.
	if err != nil || len(b) != IDLen || idEncoding.EncodeToString(b) != lower {
		return id, fmt.Errorf("%w: %q", ErrBadNodeID, s)
	}
	copy(id[:], b)
	return id, nil
}

// ErrBadNodeID is returned for a node ID that does not parse.
var ErrBadNodeID = errors.New("identity: malformed node ID")

// Identity is a node's key pair and the ID derived from it.
type Identity struct {
	Private ed25519.PrivateKey
	Public  ed25519.PublicKey
	ID      NodeID
}

// Generate makes a fresh identity from crypto/rand.
func Generate() (*Identity, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("identity: generate key: %w", err)
	}
	return &Identity{Private: priv, Public: pub, ID: IDFromPublicKey(pub)}, nil
}

// KeyFileName is the file in the data directory that holds the private key.
const KeyFileName = "node.key"

const pemType = "CANOPY ED25519 PRIVATE KEY"

// LoadOrCreate reads the key in dir/node.key, or creates it (mode 0600, written to
// a temporary file and renamed so that a crash never leaves half a key behind).
func LoadOrCreate(dir string) (*Identity, error) {
	path := filepath.Join(dir, KeyFileName)
	b, err := os.ReadFile(path)
	if err == nil {
		return parseKeyFile(path, b)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("identity: read %s: %w", path, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("identity: create %s: %w", dir, err)
	}
	id, err := Generate()
	if err != nil {
		return nil, err
	}
	data := pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: id.Private.Seed()})
	if err := atomicfile.Write(path, data, 0o600); err != nil {
		return nil, fmt.Errorf("identity: write %s: %w", path, err)
	}
	return id, nil
}

func parseKeyFile(path string, b []byte) (*Identity, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != pemType || len(blk.Bytes) != ed25519.SeedSize {
		return nil, fmt.Errorf("identity: %s is not a Canopy key file", path)
	}
	priv := ed25519.NewKeyFromSeed(blk.Bytes)
	pub := priv.Public().(ed25519.PublicKey)
	return &Identity{Private: priv, Public: pub, ID: IDFromPublicKey(pub)}, nil
}

// Sign signs msg with the node's private key.
func (id *Identity) Sign(msg []byte) []byte { return ed25519.Sign(id.Private, msg) }

// Verify checks that sig is pub's signature of msg and that pub belongs to want.
func Verify(want NodeID, pub ed25519.PublicKey, msg, sig []byte) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: public key is %d bytes", ErrBadSignature, len(pub))
	}
	if IDFromPublicKey(pub) != want {
		return fmt.Errorf("%w: key does not belong to %s", ErrBadSignature, want.Short())
	}
	if !ed25519.Verify(pub, msg, sig) {
		return ErrBadSignature
	}
	return nil
}

// ErrBadSignature is returned when a signature or its key does not check out.
var ErrBadSignature = errors.New("identity: bad signature")
