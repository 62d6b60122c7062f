package wire

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/canopy-p2p/canopy/identity"
)

// Browsing a peer (data channel) and asking a supernode about the network
// (control link). docs/protocol.md, section 11.
const (
	// TypeNetworkRequest asks a supernode for its view of the network; the
	// answer is a NetworkInfo with the same envelope ID.
	TypeNetworkRequest Type = 26
	// TypeNetworkInfo is a supernode's answer: the ring members with their
	// load and totals.
	TypeNetworkInfo Type = 27
	// TypeListRequest asks the peer at the other end of a browse session's
	// data channel for the next page of what it shares with the asker.
	TypeListRequest Type = 37
	// TypeListing is one page of a browse listing.
	TypeListing Type = 38
)

func init() {
	for t, n := range map[Type]string{
		TypeNetworkRequest: "network-request", TypeNetworkInfo: "network-info",
		TypeListRequest: "list-request", TypeListing: "listing",
	} {
		typeNames[t] = n
	}
}

// BrowseContent is the content ID an offer carries to open a browse session
// rather than a download: no file has the all-zero ID (every content ID is a
// BLAKE3 digest), and an uploader that does not know browsing refuses it as
// "not shared", which the asker shows as such.
var BrowseContent [32]byte

// Bounds of a browse listing. A page stays far below the 64 KiB a data
// channel message may have (pion's read buffer): the uploader stops adding
// entries once the page's CBOR body reaches MaxListingBody, and compression
// only ever makes an envelope smaller (Marshal keeps the smaller form).
const (
	// MaxListEntries bounds the entries of one page.
	MaxListEntries = 256
	// MaxListFolders bounds the folders named in one page: a node with
	// more shared folders than that is unusual; the rest are not listed.
	MaxListFolders = 64
	// MaxListPath bounds an entry's path inside its folder, in bytes:
	// a few directory levels of 255-byte names.
	MaxListPath = 1024
	// MaxFolderName bounds a folder's name (the base name of the shared
	// directory), as a file name.
	MaxFolderName = 255
	// MaxListCursor bounds a listing's Next cursor and a request's After.
	MaxListCursor = MaxListPath + 16
	// MaxListingBody bounds the CBOR body of one page as the uploader
	// builds it.
	MaxListingBody = 48 << 10
	// MaxListingMessage bounds a listing as a data channel message (on the
	// wire, and once decompressed): what pion delivers whole.
	MaxListingMessage = 64 << 10
)

// ListRequest asks for the page after After (empty: the first page).
type ListRequest struct {
	// After is the Next of the previous page, opaque to the asker.
	After string `cbor:"1,keyasint,omitempty"`
	// Max is the most entries wanted; the uploader caps it at
	// MaxListEntries (zero means MaxListEntries).
	Max uint16 `cbor:"2,keyasint,omitempty"`
}

// ListFolder is one shared folder as the asker may see it.
type ListFolder struct {
	// Name is the folder's base name, never its path on the sharer's disk.
	Name string `cbor:"1,keyasint"`
	// Visibility is who the sharer shares it with: 0 everyone, 1 its
	// contacts, 2 its trusted contacts.
	Visibility uint8 `cbor:"2,keyasint,omitempty"`
}

// ListEntry is one shared file in a listing.
type ListEntry struct {
	// Folder indexes the page's Folders.
	Folder uint16 `cbor:"1,keyasint"`
	// Path is the file's path inside its folder, '/'-separated.
	Path string   `cbor:"2,keyasint"`
	Size int64    `cbor:"3,keyasint"`
	ID   [32]byte `cbor:"4,keyasint"`
}

// Listing is one page of what a node shares with the asker, in path order.
type Listing struct {
	// Folders are the folders the page's entries are in, and on the first
	// page every folder the asker may see (even empty ones).
	Folders []ListFolder `cbor:"1,keyasint,omitempty"`
	Entries []ListEntry  `cbor:"2,keyasint,omitempty"`
	// Next is the cursor of the next page; empty on the last one.
	Next string `cbor:"3,keyasint,omitempty"`
}

// ErrListing reports a listing or list request out of its bounds.
var ErrListing = errors.New("wire: bad listing")

// CheckListRequest checks a list request's bounds.
func CheckListRequest(r *ListRequest) error {
	if len(r.After) > MaxListCursor {
		return fmt.Errorf("%w: cursor of %d bytes exceeds %d", ErrListing, len(r.After), MaxListCursor)
	}
	return nil
}

// CheckListing checks a listing's bounds: at most MaxListFolders folders and
// MaxListEntries entries, names and paths of valid UTF-8 within their
// bounds, no empty path, no path leaving its folder, every entry in a folder
// of the page, no negative size, a cursor within MaxListCursor.
func CheckListing(l *Listing) error {
	switch {
	case len(l.Folders) > MaxListFolders:
		return fmt.Errorf("%w: %d folders exceed %d", ErrListing, len(l.Folders), MaxListFolders)
	case len(l.Entries) > MaxListEntries:
		return fmt.Errorf("%w: %d entries exceed %d", ErrListing, len(l.Entries), MaxListEntries)
	case len(l.Next) > MaxListCursor:
		return fmt.Errorf("%w: cursor of %d bytes exceeds %d", ErrListing, len(l.Next), MaxListCursor)
	}
	for i, f := range l.Folders {
		if f.Name == "" || len(f.Name) > MaxFolderName || !utf8.ValidString(f.Name) {
			return fmt.Errorf("%w: folder %d has a bad name (%d bytes)", ErrListing, i, len(f.Name))
		}
		if f.Visibility > 2 {
			return fmt.Errorf("%w: folder %d has visibility %d", ErrListing, i, f.Visibility)
		}
	}
	for i, e := range l.Entries {
		switch {
		case int(e.Folder) >= len(l.Folders):
			return fmt.Errorf("%w: entry %d is in folder %d of %d", ErrListing, i, e.Folder, len(l.Folders))
		case e.Path == "" || len(e.Path) > MaxListPath || !utf8.ValidString(e.Path):
			return fmt.Errorf("%w: entry %d has a bad path (%d bytes)", ErrListing, i, len(e.Path))
		case e.Size < 0:
			return fmt.Errorf("%w: entry %d has size %d", ErrListing, i, e.Size)
		}
		if !cleanRelPath(e.Path) {
			return fmt.Errorf("%w: entry %d has path %q, which leaves its folder", ErrListing, i, e.Path)
		}
	}
	return nil
}

// cleanRelPath reports whether p is a relative '/'-separated path of names
// that are neither empty, "." nor "..".
func cleanRelPath(p string) bool {
	start := 0
	for i := 0; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			continue
		}
		if seg := p[start:i]; seg == "" || seg == "." || seg == ".." {
			return false
		}
		start = i + 1
	}
	return true
}

// DecodeListing decodes a listing message from a data channel: an envelope
// of at most MaxListingMessage bytes, on the wire and decompressed, of type
// Listing, whose body passes CheckListing. It reports a TransferError as
// such (its reason in the error).
func DecodeListing(b []byte) (Listing, error) {
	var l Listing
	if len(b) > MaxListingMessage {
		return l, fmt.Errorf("%w: listing message of %d bytes exceeds %d", ErrTooLarge, len(b), MaxListingMessage)
	}
	env, err := unmarshal(b, MaxListingMessage, false)
	if err != nil {
		return l, err
	}
	switch env.Type {
	case TypeListing:
	case TypeTransferError:
		var te TransferError
		if err := env.Decode(&te); err != nil {
			return l, err
		}
		return l, &ListRefusedError{Reason: te.Reason}
	default:
		return l, fmt.Errorf("%w: %s where a listing was expected", ErrMalformed, env.Type)
	}
	if err := env.Decode(&l); err != nil {
		return Listing{}, err
	}
	if err := CheckListing(&l); err != nil {
		return Listing{}, err
	}
	return l, nil
}

// ListRefusedError is a TransferError received instead of a listing.
type ListRefusedError struct{ Reason string }

func (e *ListRefusedError) Error() string { return "listing refused: " + e.Reason }

// NetworkRequest asks a supernode for its view of the ring. It has no
// fields yet; the answer carries the request's envelope ID.
type NetworkRequest struct {
	// Max is the most members wanted; zero or more than MaxNetworkMembers
	// means MaxNetworkMembers.
	Max uint16 `cbor:"1,keyasint,omitempty"`
}

// MaxNetworkMembers bounds the members in one NetworkInfo: each is at most
// about 400 bytes, so 1000 are about 400 KB, under MaxPayload. A larger
// ring is summed in the totals and cut in the list.
const MaxNetworkMembers = 1000

// NetworkMember is one ring member as the answering supernode sees it (from
// its signed gossip metadata).
type NetworkMember struct {
	ID       identity.NodeID `cbor:"1,keyasint"`
	Control  string          `cbor:"2,keyasint,omitempty"`
	Load     uint8           `cbor:"3,keyasint,omitempty"`
	Leaves   uint16          `cbor:"4,keyasint,omitempty"`
	Slots    uint16          `cbor:"5,keyasint,omitempty"`
	Software string          `cbor:"6,keyasint,omitempty"`
	// Uptime is how long it has been a supernode, in seconds, as of the
	// answer.
	Uptime uint32 `cbor:"7,keyasint,omitempty"`
	// Files is how many files its index holds, as it last published.
	Files uint32 `cbor:"8,keyasint,omitempty"`
	// Self marks the answering supernode.
	Self bool `cbor:"9,keyasint,omitempty"`
}

// NetworkInfo answers a NetworkRequest.
type NetworkInfo struct {
	// Members are up to MaxNetworkMembers ring members, sorted by node ID.
	Members []NetworkMember `cbor:"1,keyasint,omitempty"`
	// Supernodes, Leaves and Files are totals over the whole ring, listed
	// or not.
	Supernodes int `cbor:"2,keyasint"`
	Leaves     int `cbor:"3,keyasint"`
	Files      int `cbor:"4,keyasint"`
	// RetryAfterMs, when set, says the request was over the leaf's rate
	// and was not answered: ask again after this many milliseconds.
	RetryAfterMs uint32 `cbor:"5,keyasint,omitempty"`
}

// CheckNetworkInfo checks an answer's bounds: at most MaxNetworkMembers
// members with addresses and software strings within their bounds, totals
// that are not negative.
func CheckNetworkInfo(n *NetworkInfo) error {
	if len(n.Members) > MaxNetworkMembers {
		return fmt.Errorf("%w: %d members exceed %d", ErrMalformed, len(n.Members), MaxNetworkMembers)
	}
	if n.Supernodes < 0 || n.Leaves < 0 || n.Files < 0 {
		return fmt.Errorf("%w: negative totals", ErrMalformed)
	}
	for i, m := range n.Members {
		if len(m.Control) > MaxAddrLen || len(m.Software) > MaxSoftwareLen {
			return fmt.Errorf("%w: member %d has an address or software string out of bounds", ErrMalformed, i)
		}
	}
	return nil
}
