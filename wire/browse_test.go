package wire

import (
	"errors"
	"strings"
	"testing"

	"github.com/canopy-p2p/canopy/identity"
)

func listingBytes(t testing.TB, l *Listing) []byte {
	t.Helper()
	e, err := New(TypeListing, l)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDecodeListing: a listing within its bounds decodes as sent; each bound
// crossed, a path that leaves its folder, an entry in no folder, another
// message type and an oversized message are refused, and a TransferError
// comes back as a ListRefusedError with its reason.
func TestDecodeListing(t *testing.T) {
	good := Listing{
		Folders: []ListFolder{{Name: "Music"}, {Name: "Family", Visibility: 1}},
		Entries: []ListEntry{{Folder: 0, Path: "a/b.flac", Size: 10, ID: [32]byte{1}}, {Folder: 1, Path: "c.jpg", Size: 0}},
		Next:    "cursor",
	}
	got, err := DecodeListing(listingBytes(t, &good))
	if err != nil {
		t.Fatalf("a good listing was refused: %v", err)
	}
	if len(got.Entries) != 2 || got.Entries[0].Path != "a/b.flac" || got.Entries[1].Folder != 1 || got.Next != "cursor" || got.Folders[1].Visibility != 1 {
		t.Fatalf("decoded %+v", got)
	}
	bad := map[string]func(l *Listing){
		"entry in no folder": func(l *Listing) { l.Entries[0].Folder = 2 },
		"dot-dot path":       func(l *Listing) { l.Entries[0].Path = "a/../../etc/passwd" },
		"absolute path":      func(l *Listing) { l.Entries[0].Path = "/etc/passwd" },
		"empty path":         func(l *Listing) { l.Entries[0].Path = "" },
		"long path":          func(l *Listing) { l.Entries[0].Path = strings.Repeat("x", MaxListPath+1) },
		"negative size":      func(l *Listing) { l.Entries[0].Size = -1 },
		"empty folder name":  func(l *Listing) { l.Folders[0].Name = "" },
		"bad visibility":     func(l *Listing) { l.Folders[0].Visibility = 3 },
		"long cursor":        func(l *Listing) { l.Next = strings.Repeat("c", MaxListCursor+1) },
		"too many entries": func(l *Listing) {
			l.Entries = make([]ListEntry, MaxListEntries+1)
			for i := range l.Entries {
				l.Entries[i] = ListEntry{Path: "f"}
			}
		},
		"too many folders": func(l *Listing) {
			l.Folders = make([]ListFolder, MaxListFolders+1)
			for i := range l.Folders {
				l.Folders[i] = ListFolder{Name: "f"}
			}
		},
	}
	for name, spoil := range bad {
		l := good
		l.Folders = append([]ListFolder(nil), good.Folders...)
		l.Entries = append([]ListEntry(nil), good.Entries...)
		spoil(&l)
		if _, err := DecodeListing(listingBytes(t, &l)); !errors.Is(err, ErrListing) {
			t.Errorf("%s: got %v, want ErrListing", name, err)
		}
	}

	// Invalid UTF-8 is refused by the CBOR decoder already.
	l := good
	l.Entries = []ListEntry{{Path: "a\xff"}}
	if _, err := DecodeListing(listingBytes(t, &l)); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad utf-8: %v", err)
	}
	// Bigger than a data channel message: refused before it is decoded.
	if _, err := DecodeListing(make([]byte, MaxListingMessage+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized message: %v", err)
	}
	// A compressed body that inflates past the bound is refused too.
	huge := Listing{Folders: []ListFolder{{Name: "x"}}}
	for range MaxListEntries {
		huge.Entries = append(huge.Entries, ListEntry{Path: strings.Repeat("a", MaxListPath)})
	}
	hb := listingBytes(t, &huge)
	if len(hb) > MaxListingMessage {
		t.Fatalf("test listing did not compress: %d bytes", len(hb))
	}
	if _, err := DecodeListing(hb); !errors.Is(err, ErrTooLarge) {
		t.Errorf("listing inflating to %d KiB: %v", 256*MaxListPath>>10, err)
	}

	e, _ := New(TypeTransferError, &TransferError{Reason: "blocked"})
	b, _ := Marshal(e)
	var refused *ListRefusedError
	if _, err := DecodeListing(b); !errors.As(err, &refused) || refused.Reason != "blocked" {
		t.Errorf("transfer error: %v", err)
	}
	e, _ = New(TypePieceData, &PieceData{Data: []byte("x")})
	b, _ = Marshal(e)
	if _, err := DecodeListing(b); !errors.Is(err, ErrMalformed) {
		t.Errorf("piece data as a listing: %v", err)
	}
}

func TestCheckNetworkInfo(t *testing.T) {
	ok := NetworkInfo{Members: []NetworkMember{{ID: identity.NodeID{1}, Control: "127.0.0.1:1", Software: "canopy/1"}}, Supernodes: 1}
	if err := CheckNetworkInfo(&ok); err != nil {
		t.Fatal(err)
	}
	for name, n := range map[string]NetworkInfo{
		"negative": {Supernodes: -1},
		"address":  {Members: []NetworkMember{{Control: strings.Repeat("a", MaxAddrLen+1)}}},
		"software": {Members: []NetworkMember{{Software: strings.Repeat("a", MaxSoftwareLen+1)}}},
		"members":  {Members: make([]NetworkMember, MaxNetworkMembers+1)},
	} {
		if err := CheckNetworkInfo(&n); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// FuzzDecodeListing: any bytes decode to a listing within its bounds or to
// an error, never a panic.
func FuzzDecodeListing(f *testing.F) {
	l := Listing{Folders: []ListFolder{{Name: "Music"}}, Entries: []ListEntry{{Path: "a/b", Size: 3}}, Next: "x"}
	f.Add(listingBytes(f, &l))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := DecodeListing(b)
		if err != nil {
			return
		}
		if CheckListing(&got) != nil {
			t.Fatalf("decoded a listing out of its bounds: %+v", got)
		}
	})
}

// FuzzNetworkInfo: any payload decodes to an answer or an error; what
// passes CheckNetworkInfo keeps its bounds.
func FuzzNetworkInfo(f *testing.F) {
	e, _ := New(TypeNetworkInfo, &NetworkInfo{Members: []NetworkMember{{Control: "127.0.0.1:1", Leaves: 3}}, Supernodes: 1, Files: 4})
	f.Add(e.Payload)
	f.Fuzz(func(t *testing.T, payload []byte) {
		var n NetworkInfo
		if (Envelope{Type: TypeNetworkInfo, Payload: payload}).Decode(&n) != nil || CheckNetworkInfo(&n) != nil {
			return
		}
		if len(n.Members) > MaxNetworkMembers || n.Files < 0 {
			t.Fatalf("passed out of bounds: %d members", len(n.Members))
		}
	})
}
