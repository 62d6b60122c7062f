package gossip

import (
	"crypto/ed25519"
	"fmt"
	"math"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/fxamacker/cbor/v2"
	"github.com/hashicorp/memberlist"
)

// MetaVersion is the version of the Meta encoding this package writes. Version
// 2 is the first signed one; DecodeMeta refuses version 1, which anyone could
// forge.
const MetaVersion uint8 = 2

// MaxMetaSize is the largest encoded Meta accepted: memberlist's limit on
// node metadata, which travels in every alive message.
const MaxMetaSize = memberlist.MetaMaxSize

// Limits on Meta's strings. They keep the worst-case encoding under
// MaxMetaSize (TestMetaWorstCaseSize measures it), so that EncodeMeta cannot
// fail on size for a valid Meta.
const (
	maxControlLen  = 253 + len("[]:65535") // longest DNS name, or an IPv6 literal, plus a port
	maxSoftwareLen = 64
)

// metaContext is the Ed25519ctx context of metadata signatures (see
// identity.SignContext): no other signature the node key makes can pass for
// one.
const metaContext = "canopy gossip meta v2"

// Meta is the record each ring member publishes about itself in its
// memberlist node metadata. It is signed by the member's key: DecodeMeta
// refuses a record whose signature does not verify, so every field is what
// the holder of Key said, as of Issued. Whether the member can actually be
// reached at Control is a separate question, which the ring answers with
// Config.Verify before it lists the member.
type Meta struct {
	// Version is the Meta encoding version; EncodeMeta writes MetaVersion
	// when it is zero. Decoding accepts any version from MetaVersion up and
	// ignores fields it does not know, so later versions can add fields.
	Version uint8
	// NodeID is the member's node ID, derived from Key (EncodeMeta sets
	// both from the signing identity). It must equal the member's
	// memberlist name, or the ring refuses the member.
	NodeID identity.NodeID
	// Key is the member's Ed25519 public key, which signed the record.
	Key [ed25519.PublicKeySize]byte
	// Gossip is the member's memberlist address. It must equal the
	// address in the alive message that carries the record, so that a
	// member relaying someone else's record cannot point it elsewhere.
	Gossip netip.AddrPort
	// Issued is when the record was signed, to the millisecond. A member
	// refuses a record older than the newest it has accepted for that
	// node, so an old record cannot be replayed to roll back Slots or
	// Control.
	Issued time.Time
	// Control is the host:port of the member's TLS control listener.
	Control string
	// Software names the implementation and its version, such as
	// "canopy/0.1.0": at most 64 printable ASCII characters.
	Software string
	// Proto is the wire protocol version the member speaks on control links.
	Proto uint8
	// Leaves is the number of leaves attached to the member.
	Leaves uint16
	// Slots is the number of free leaf slots the member offers.
	Slots uint16
	// Load is the member's load in percent, 0 to 100.
	Load uint8
	// Uptime is how long the member has been a supernode, in seconds.
	Uptime uint32
	// Files is how many files the member's index holds (a figure for
	// people looking at the network, republished at most every
	// supernode.DefaultFilesPublish when only it changed).
	Files uint32
}

// signedWire is the outer form: the encoded body and the signature over it.
// Signing the body's bytes, rather than a re-encoding of decoded fields, keeps
// fields a later version adds covered by the signature even for a decoder
// that does not know them.
type signedWire struct {
	Body []byte `cbor:"1,keyasint"`
	Sig  []byte `cbor:"2,keyasint"`
}

// metaWire is Meta's CBOR body. Integer keys keep the encoding small, since it
// rides in every alive message; byte strings carry fixed-size values so that
// their length can be checked (CBOR would silently pad a short string into a
// fixed-size array). Key numbers are part of the format: never reuse one.
// Key 1 held the unsigned node ID of version 1 and is retired; the ID is now
// derived from the key.
type metaWire struct {
	Version  uint8  `cbor:"0,keyasint"`
	Control  string `cbor:"2,keyasint"`
	Software string `cbor:"3,keyasint,omitempty"`
	Proto    uint8  `cbor:"4,keyasint,omitempty"`
	Leaves   uint16 `cbor:"5,keyasint,omitempty"`
	Slots    uint16 `cbor:"6,keyasint,omitempty"`
	Load     uint8  `cbor:"7,keyasint,omitempty"`
	Uptime   uint32 `cbor:"8,keyasint,omitempty"`
	Key      []byte `cbor:"9,keyasint"`
	Gossip   []byte `cbor:"10,keyasint"` // netip.AddrPort.MarshalBinary: 4 or 16 address bytes, 2 port bytes
	Issued   uint64 `cbor:"11,keyasint"` // Unix milliseconds
	Files    uint32 `cbor:"12,keyasint,omitempty"`
}

// metaEnc encodes deterministically (RFC 8949 §4.2.1 core deterministic
// encoding). memberlist reports an update only when the metadata bytes change,
// and Ed25519 is deterministic, so the same Meta signed by the same key always
// gives the same bytes.
var metaEnc = func() cbor.EncMode {
	em, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	return em
}()

// metaDec decodes metadata from any ring member, so it is strict: tight
// nesting and size limits, no indefinite lengths, no tags, no duplicate keys.
// Unknown keys are ignored (the default) so that later versions can add fields.
var metaDec = func() cbor.DecMode {
	dm, err := cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsForbidden,
		MaxNestedLevels:  4,
		MaxArrayElements: 16,
		MaxMapPairs:      32,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return dm
}()

// EncodeMeta validates m, signs it with id and encodes it for memberlist's
// node metadata. It sets m.NodeID and m.Key from id; a zero m.Version is
// written as MetaVersion. It fails with ErrBadMeta for a Meta that DecodeMeta
// would refuse, and with ErrMetaTooLarge if the encoding exceeds MaxMetaSize,
// because memberlist panics on oversized metadata.
func EncodeMeta(m Meta, id *identity.Identity) ([]byte, error) {
	if id == nil || len(id.Public) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: no signing key", ErrBadMeta)
	}
	if m.Version == 0 {
		m.Version = MetaVersion
	}
	m.NodeID = id.ID
	m.Key = [ed25519.PublicKeySize]byte(id.Public)
	if err := m.validate(); err != nil {
		return nil, err
	}
	gossip, err := m.Gossip.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("%w: gossip address: %v", ErrBadMeta, err)
	}
	body, err := metaEnc.Marshal(metaWire{
		Version:  m.Version,
		Control:  m.Control,
		Software: m.Software,
		Proto:    m.Proto,
		Leaves:   m.Leaves,
		Slots:    m.Slots,
		Load:     m.Load,
		Uptime:   m.Uptime,
		Files:    m.Files,
		Key:      m.Key[:],
		Gossip:   gossip,
		Issued:   uint64(m.Issued.UnixMilli()),
	})
	if err != nil {
		return nil, fmt.Errorf("gossip: encode meta: %w", err)
	}
	sig, err := id.SignContext(metaContext, body)
	if err != nil {
		return nil, fmt.Errorf("gossip: encode meta: %w", err)
	}
	b, err := metaEnc.Marshal(signedWire{Body: body, Sig: sig})
	if err != nil {
		return nil, fmt.Errorf("gossip: encode meta: %w", err)
	}
	if len(b) > MaxMetaSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMetaTooLarge, len(b), MaxMetaSize)
	}
	return b, nil
}

// DecodeMeta decodes node metadata received from the ring, checks its
// signature and validates it. Any failure wraps ErrBadMeta; a signature that
// does not verify also wraps identity.ErrBadSignature.
func DecodeMeta(b []byte) (Meta, error) {
	if len(b) > MaxMetaSize {
		return Meta{}, fmt.Errorf("%w: %d bytes, limit %d", ErrBadMeta, len(b), MaxMetaSize)
	}
	var s signedWire
	if err := metaDec.Unmarshal(b, &s); err != nil {
		return Meta{}, fmt.Errorf("%w: %v", ErrBadMeta, err)
	}
	var w metaWire
	if err := metaDec.Unmarshal(s.Body, &w); err != nil {
		return Meta{}, fmt.Errorf("%w: body: %v", ErrBadMeta, err)
	}
	if w.Version < MetaVersion {
		return Meta{}, fmt.Errorf("%w: version %d is unsigned, want %d or later", ErrBadMeta, w.Version, MetaVersion)
	}
	if len(w.Key) != ed25519.PublicKeySize {
		return Meta{}, fmt.Errorf("%w: key is %d bytes, want %d", ErrBadMeta, len(w.Key), ed25519.PublicKeySize)
	}
	var gossip netip.AddrPort
	if err := gossip.UnmarshalBinary(w.Gossip); err != nil {
		return Meta{}, fmt.Errorf("%w: gossip address: %v", ErrBadMeta, err)
	}
	if w.Issued > math.MaxInt64 {
		return Meta{}, fmt.Errorf("%w: issue time %d out of range", ErrBadMeta, w.Issued)
	}
	pub := ed25519.PublicKey(w.Key)
	m := Meta{
		Version:  w.Version,
		NodeID:   identity.IDFromPublicKey(pub),
		Key:      [ed25519.PublicKeySize]byte(w.Key),
		Gossip:   gossip,
		Issued:   time.UnixMilli(int64(w.Issued)).UTC(),
		Control:  w.Control,
		Software: w.Software,
		Proto:    w.Proto,
		Leaves:   w.Leaves,
		Slots:    w.Slots,
		Load:     w.Load,
		Uptime:   w.Uptime,
		Files:    w.Files,
	}
	if err := m.validate(); err != nil {
		return Meta{}, err
	}
	// Checked last, after the cheap checks: a flood of malformed records
	// costs no signature verification.
	if err := identity.VerifyContext(m.NodeID, pub, metaContext, s.Body, s.Sig); err != nil {
		return Meta{}, fmt.Errorf("%w: %w", ErrBadMeta, err)
	}
	return m, nil
}

// validate checks the rules both EncodeMeta and DecodeMeta enforce, so that a
// member never publishes metadata its peers would refuse.
func (m Meta) validate() error {
	switch {
	case m.Version == 0:
		return fmt.Errorf("%w: version 0", ErrBadMeta)
	case m.NodeID.IsZero():
		return fmt.Errorf("%w: zero node ID", ErrBadMeta)
	case !m.Gossip.IsValid() || m.Gossip.Port() == 0 || m.Gossip.Addr().IsUnspecified() || m.Gossip.Addr().Zone() != "" || m.Gossip.Addr().Is4In6():
		return fmt.Errorf("%w: gossip address %v is not a specific address and port", ErrBadMeta, m.Gossip)
	case m.Issued.UnixMilli() <= 0:
		return fmt.Errorf("%w: no issue time", ErrBadMeta)
	case m.Load > 100:
		return fmt.Errorf("%w: load %d%% over 100%%", ErrBadMeta, m.Load)
	case len(m.Software) > maxSoftwareLen:
		return fmt.Errorf("%w: software name is %d bytes, limit %d", ErrBadMeta, len(m.Software), maxSoftwareLen)
	case !printableASCII(m.Software):
		// The name ends up in logs and on the user's screen.
		return fmt.Errorf("%w: software name %q is not printable ASCII", ErrBadMeta, m.Software)
	}
	if err := checkHostPort(m.Control); err != nil {
		return fmt.Errorf("%w: control address: %v", ErrBadMeta, err)
	}
	return nil
}

// checkHostPort accepts "host:port" where host is an IP address or a DNS name
// and port is 1 to 65535.
func checkHostPort(s string) error {
	if len(s) > maxControlLen {
		return fmt.Errorf("%d bytes, limit %d", len(s), maxControlLen)
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return err
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return fmt.Errorf("bad port %q", port)
	}
	if net.ParseIP(host) != nil {
		return nil
	}
	if !isDNSName(host) {
		return fmt.Errorf("bad host %q", host)
	}
	return nil
}

// isDNSName reports whether s is a plausible DNS host name: labels of 1 to 63
// letters, digits and hyphens, no label starting or ending with a hyphen.
func isDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	label := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			if label == 0 || s[i-1] == '-' {
				return false
			}
			label = 0
			continue
		case c == '-':
			if label == 0 {
				return false
			}
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		default:
			return false
		}
		label++
		if label > 63 {
			return false
		}
	}
	return s[len(s)-1] != '-'
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
