package wire

import (
	"path/filepath"
	"unicode/utf8"

	"github.com/canopy-p2p/canopy/internal/textsafe"
)

// Bounds on the strings a peer sends, applied by the receiver before it logs
// or keeps them. The decoder already bounds a whole message (MaxPayload);
// these keep one field from filling a log line or a table entry with what is
// left of that megabyte.
const (
	// MaxSoftwareLen bounds a hello's or welcome's software string: the
	// figure the gossip metadata record allows for the same string
	// (docs/protocol.md, section 8), ample for "canopy/0.1.0".
	MaxSoftwareLen = 64
	// MaxAddrLen bounds an address in a hello or a PeerInfo: the longest DNS
	// name (253) and a bracketed port, as the gossip metadata record's
	// control address.
	MaxAddrLen = 253 + len("[]:65535")
	// MaxReasonLen bounds a refusal's or goodbye's reason: Canopy's own
	// reasons are under 100 bytes; the rest is room for an error message.
	MaxReasonLen = 256
	// MaxHelloEnvelope bounds the first frame on a control link, before the
	// dialler has said who it is, on the wire and once decompressed: a hello
	// is a role, three short strings and the few supernodes a leaf is
	// attached to (about 300 bytes each), so 64 KiB is 200 of them. A
	// compressed 900 KB software string takes about 100 bytes on the wire;
	// this bound refuses it before it is decompressed past 64 KiB.
	MaxHelloEnvelope = 64 << 10
	// MaxIndexName is the longest file name a supernode's index accepts
	// (index.DefaultMaxNameBytes: 255 bytes, NAME_MAX of the common file
	// systems). A leaf cuts longer names to it before it uploads them: NTFS
	// and APFS count characters, so a long non-ASCII name can exceed 255
	// bytes, and one such name must not cost the whole upload.
	MaxIndexName = 255
)

// Bounded returns h with its strings cut to their bounds: the software string
// cut and marked (textsafe.Bound), the addresses dropped when over MaxAddrLen
// (a cut address is a wrong one), and so are the supernodes whose control
// address is.
func (h Hello) Bounded() Hello {
	h.Software = textsafe.Bound(h.Software, MaxSoftwareLen)
	if len(h.Control) > MaxAddrLen {
		h.Control = ""
	}
	if len(h.Gossip) > MaxAddrLen {
		h.Gossip = ""
	}
	h.Supernodes = boundPeers(h.Supernodes)
	h.Successors = boundPeers(h.Successors)
	return h
}

// boundPeers returns peers without those whose control address is over
// MaxAddrLen, copying when it drops one so that the caller's slice is not
// changed under it.
func boundPeers(peers []PeerInfo) []PeerInfo {
	for i, p := range peers {
		if len(p.Control) <= MaxAddrLen {
			continue
		}
		kept := append([]PeerInfo(nil), peers[:i]...)
		for _, q := range peers[i+1:] {
			if len(q.Control) <= MaxAddrLen {
				kept = append(kept, q)
			}
		}
		return kept
	}
	return peers
}

// CutName returns a file name of at most max bytes: name itself when it
// fits, else cut on a character boundary before its extension, which is kept
// when it is short (up to 16 bytes: it says what the file is, and a search
// for "flac" should still find it). It does not clean the name; see
// textsafe.Bound for what is shown or logged.
func CutName(name string, max int) string {
	if len(name) <= max {
		return name
	}
	ext := filepath.Ext(name)
	if len(ext) > 16 || len(ext) >= max || !utf8.ValidString(ext) {
		ext = ""
	}
	stem := name[:max-len(ext)]
	for len(stem) > 0 && !utf8.RuneStart(name[len(stem)]) {
		stem = stem[:len(stem)-1]
	}
	return stem + ext
}
