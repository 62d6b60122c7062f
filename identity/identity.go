// Package identity holds who a node is: its Ed25519 key pair, the node ID derived
// from the public key, and the self-signed TLS certificate that proves the key on
// control links.
package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
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

// The key file is PEM. Format 2, written since key files are checked, holds
// the Ed25519 seed and, in headers, the format and the node ID the seed
// gives:
//
//	-----BEGIN CANOPY NODE KEY-----
//	Format: 2
//	Node-ID: <52 characters>
//
//	<base64 of the 32-byte seed>
//	-----END CANOPY NODE KEY-----
//
// The node ID is a SHA-256 of the public key, so it checks the seed: a seed
// changed anywhere gives another ID. And the file must be byte for byte the
// one Canopy writes for that seed, so that a change the decoder would
// tolerate (the spare low bits of base64's last character, the case of the
// ID, trailing bytes) is found too: any change of a character is refused.
//
// Format 1, written before, holds the seed alone under another PEM type; it
// has nothing to check the seed against. LoadOrCreate still reads it and
// rewrites it in format 2 at once, so that from then on damage is found.
const (
	keyPEMType    = "CANOPY NODE KEY"
	legacyPEMType = "CANOPY ED25519 PRIVATE KEY"
	headerFormat  = "Format"
	headerNodeID  = "Node-ID"
	// KeyFileFormat is the key file format LoadOrCreate writes.
	KeyFileFormat = 2
)

// maxKeyFileSize bounds what LoadOrCreate reads of a key file: one in format
// 2 is 180 bytes, so anything near this is some other file in its place.
const maxKeyFileSize = 4 << 10

// ErrKeyFileDamaged reports a key file that cannot be read as the node's
// key. LoadOrCreate never replaces such a file: it is the user's identity,
// which no other file or peer can give back.
var ErrKeyFileDamaged = errors.New("identity: key file is damaged")

// LoadOrCreate reads the key in dir/node.key, or creates it (mode 0600,
// written to a temporary file and renamed so that a crash never leaves half a
// key behind).
//
// A key file that does not check out (see KeyFileFormat) is refused with an
// error wrapping ErrKeyFileDamaged that names the file, and the file is left
// as it is: it is not recomputable, so the node must not start as somebody
// else, nor replace it. A format 1 file is rewritten in format 2, atomically,
// after checking that the new file reads back as the same identity; if that
// write fails, LoadOrCreate fails and the old file stays.
func LoadOrCreate(dir string) (*Identity, error) {
	path := filepath.Join(dir, KeyFileName)
	b, err := readKeyFile(path)
	if err == nil {
		return loadKeyFile(path, b)
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
	if err := writeFile(path, encodeKeyFile(id), 0o600); err != nil {
		return nil, fmt.Errorf("identity: write %s: %w", path, err)
	}
	return id, nil
}

// writeFile writes a key file; a test replaces it to make a write fail,
// which permissions cannot do for root.
var writeFile = atomicfile.Write

// readKeyFile reads at most maxKeyFileSize+1 bytes of the file at path.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
}

// loadKeyFile decodes the key file read from path, and upgrades a format 1
// file to the current format.
func loadKeyFile(path string, b []byte) (*Identity, error) {
	id, format, err := decodeKeyFile(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v. It holds this node's identity, so Canopy does not replace it: "+
			"restore it from a backup, or move it away to start as a new node with a new ID", ErrKeyFileDamaged, path, err)
	}
	if format == KeyFileFormat {
		return id, nil
	}
	data := encodeKeyFile(id)
	if again, f, err := decodeKeyFile(data); err != nil || f != KeyFileFormat || again.ID != id.ID {
		// Cannot happen; checked so that an upgrade can never change who
		// the node is.
		return nil, fmt.Errorf("identity: upgrading %s to format %d would not keep its identity (%v); left as it is", path, KeyFileFormat, err)
	}
	if err := writeFile(path, data, 0o600); err != nil {
		return nil, fmt.Errorf("identity: upgrade %s to format %d: %w", path, KeyFileFormat, err)
	}
	return id, nil
}

// encodeKeyFile returns id's key file in the current format.
func encodeKeyFile(id *Identity) []byte {
	return pem.EncodeToMemory(&pem.Block{
		Type:    keyPEMType,
		Headers: map[string]string{headerFormat: strconv.Itoa(KeyFileFormat), headerNodeID: id.ID.String()},
		Bytes:   id.Private.Seed(),
	})
}

// decodeKeyFile decodes a key file of either format and returns the identity
// and the format; an error says what is wrong, for a message that names the
// file.
func decodeKeyFile(b []byte) (*Identity, int, error) {
	if len(b) > maxKeyFileSize {
		return nil, 0, fmt.Errorf("it is larger than %d bytes, so not a key file", maxKeyFileSize)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, 0, errors.New("it holds no readable PEM block")
	}
	switch blk.Type {
	case legacyPEMType:
		// Format 1 is read as leniently as the program that wrote it read
		// it: its seed cannot be checked anyway. A header, which it never
		// had, is refused.
		if len(blk.Headers) != 0 {
			return nil, 0, errors.New("a format 1 key file with headers")
		}
		id, err := fromSeed(blk.Bytes)
		if err != nil {
			return nil, 0, err
		}
		return id, 1, nil
	case keyPEMType:
	default:
		return nil, 0, fmt.Errorf("it holds a %q PEM block, not a Canopy node key", blk.Type)
	}
	if f := blk.Headers[headerFormat]; f != strconv.Itoa(KeyFileFormat) {
		return nil, 0, fmt.Errorf("key file format %q, want %d", f, KeyFileFormat)
	}
	want, err := ParseNodeID(blk.Headers[headerNodeID])
	if err != nil {
		return nil, 0, fmt.Errorf("the node ID stored with the key: %v", err)
	}
	id, err := fromSeed(blk.Bytes)
	if err != nil {
		return nil, 0, err
	}
	if id.ID != want {
		return nil, 0, fmt.Errorf("the key gives node ID %s, but the file says %s: the key or the ID was changed", id.ID.Short(), want.Short())
	}
	if !bytes.Equal(b, encodeKeyFile(id)) {
		return nil, 0, fmt.Errorf("the key matches its node ID %s, but the file is not as Canopy wrote it: it was changed", id.ID.Short())
	}
	return id, KeyFileFormat, nil
}

// fromSeed returns the identity of an Ed25519 seed.
func fromSeed(seed []byte) (*Identity, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("the key is %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	priv := ed25519.NewKeyFromSeed(seed)
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
