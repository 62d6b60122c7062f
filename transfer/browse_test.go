package transfer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/canopy-p2p/canopy/content"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/wire"
)

// trustSource is a PeerSource over a mapSource: files are "public" or
// "private"; friends may have both, blocked peers nothing, others the
// public ones. Listings come in pages of pageSize.
type trustSource struct {
	*mapSource
	mu       sync.Mutex
	private  map[content.ID]bool
	names    map[content.ID]string
	friends  map[identity.NodeID]bool
	blocked  map[identity.NodeID]bool
	pageSize int
}

func newTrustSource() *trustSource {
	return &trustSource{mapSource: newMapSource(), private: map[content.ID]bool{}, names: map[content.ID]string{},
		friends: map[identity.NodeID]bool{}, blocked: map[identity.NodeID]bool{}, pageSize: 2}
}

func (s *trustSource) Allowed(peer identity.NodeID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.blocked[peer] {
		return fmt.Errorf("%w: %s", ErrBlocked, peer.Short())
	}
	return nil
}

func (s *trustSource) may(peer identity.NodeID, id content.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.private[id] || s.friends[peer]
}

func (s *trustSource) ManifestFor(peer identity.NodeID, id content.ID) (content.Manifest, string, error) {
	if !s.may(peer, id) {
		return content.Manifest{}, "", errors.New("not for this peer")
	}
	return s.Manifest(id)
}

func (s *trustSource) List(peer identity.NodeID, req wire.ListRequest) (wire.Listing, error) {
	s.mu.Lock()
	var names []string
	byName := map[string]content.ID{}
	for id, n := range s.names {
		names = append(names, n)
		byName[n] = id
	}
	s.mu.Unlock()
	slices.Sort(names)
	out := wire.Listing{Folders: []wire.ListFolder{{Name: "public"}, {Name: "private", Visibility: 1}}}
	for _, n := range names {
		id := byName[n]
		if n <= req.After || !s.may(peer, id) {
			continue
		}
		if len(out.Entries) == min(s.pageSize, int(req.Max)) {
			out.Next = out.Entries[len(out.Entries)-1].Path
			break
		}
		f := uint16(0)
		if s.private[id] {
			f = 1
		}
		m, _, _ := s.Manifest(id)
		out.Entries = append(out.Entries, wire.ListEntry{Folder: f, Path: n, Size: m.Size, ID: id})
	}
	return out, nil
}

func (s *trustSource) add(t *testing.T, dir, name string, private bool) content.ID {
	id := s.share(t, randomFile(t, dir, name, 1000+len(name)))
	s.mu.Lock()
	s.names[id], s.private[id] = name, private
	s.mu.Unlock()
	return id
}

func browsedNames(r BrowseResult) string {
	var n []string
	for _, f := range r.Files {
		n = append(n, f.Folder+"/"+f.Path)
	}
	return strings.Join(n, " ")
}

// TestBrowse: a browse over the data channel lists, page by page, what the
// sharer lets the asker see: a stranger the public files, a friend the
// private ones too; a bound on the entries truncates; a blocked peer's
// browse and download are refused as "blocked"; a stranger's download of a
// private file is refused as "not shared", and a friend's succeeds.
func TestBrowse(t *testing.T) {
	n := newTestNet()
	src := newTrustSource()
	dir := t.TempDir()
	for _, f := range []string{"a.flac", "b.flac", "c.flac"} {
		src.add(t, dir, f, false)
	}
	secret := src.add(t, dir, "d-secret.txt", true)
	up := newTestEngine(t, n, testEngineOpts{source: src})
	stranger := newTestEngine(t, n, testEngineOpts{})
	friend := newTestEngine(t, n, testEngineOpts{})
	src.friends[friend.self] = true
	ctx := context.Background()

	res, err := stranger.Browse(ctx, up.asSource(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := browsedNames(res); got != "public/a.flac public/b.flac public/c.flac" || res.Truncated || res.Pages != 2 {
		t.Fatalf("stranger's browse: %q, truncated %v, %d pages", got, res.Truncated, res.Pages)
	}
	if len(res.Folders) != 2 || res.Conn.ConnectTime <= 0 {
		t.Fatalf("folders %+v, conn %+v", res.Folders, res.Conn)
	}
	res, err = friend.Browse(ctx, up.asSource(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := browsedNames(res); got != "public/a.flac public/b.flac public/c.flac private/d-secret.txt" {
		t.Fatalf("friend's browse: %q", got)
	}
	if res.Files[3].ID != secret || res.Files[3].Size != int64(1000+len("d-secret.txt")) {
		t.Fatalf("friend's entry: %+v", res.Files[3])
	}
	res, err = friend.Browse(ctx, up.asSource(), 3)
	if err != nil || len(res.Files) != 3 || !res.Truncated {
		t.Fatalf("bounded browse: %d files, truncated %v, %v", len(res.Files), res.Truncated, err)
	}

	// The stranger cannot download the private file; the friend can.
	_, err = stranger.Download(ctx, Request{Content: secret, OutDir: t.TempDir(), Sources: []wire.Source{up.asSource()}})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), reasonNotShared) {
		t.Fatalf("stranger's download of a private file: %v", err)
	}
	if _, err := friend.Download(ctx, Request{Content: secret, OutDir: t.TempDir(), Sources: []wire.Source{up.asSource()}}); err != nil {
		t.Fatalf("friend's download: %v", err)
	}

	// Blocked: browse and download refused with the reason.
	src.mu.Lock()
	src.blocked[stranger.self] = true
	src.mu.Unlock()
	if _, err := stranger.Browse(ctx, up.asSource(), 0); !errors.Is(err, ErrBlocked) || !errors.Is(err, ErrRefused) {
		t.Fatalf("blocked browse: %v", err)
	}
	var public content.ID
	for id, name := range src.names {
		if name == "a.flac" {
			public = id
		}
	}
	_, err = stranger.Download(ctx, Request{Content: public, OutDir: t.TempDir(), Sources: []wire.Source{up.asSource()}})
	if !errors.Is(err, ErrBlocked) {
		t.Fatalf("blocked download: %v", err)
	}
	if r := up.Refusals(); r.Blocked != 2 || r.NotShared != 1 {
		t.Fatalf("refusals %+v", r)
	}
	if s := up.Stats(); s.BrowsesServed != 3 {
		t.Fatalf("browses served: %d", s.BrowsesServed)
	}
}

// TestBrowseBadListing: a listing page out of its bounds, or not a listing
// at all, ends that browse with a protocol error; the sharer goes on
// serving the next browse. A sharer that is no PeerSource refuses browsing
// as "not shared".
func TestBrowseBadListing(t *testing.T) {
	n := newTestNet()
	src := newTrustSource()
	src.add(t, t.TempDir(), "a.flac", false)
	up := newTestEngine(t, n, testEngineOpts{source: src})
	down := newTestEngine(t, n, testEngineOpts{})
	ctx := context.Background()

	var mu sync.Mutex
	spoil := func(msg []byte) []byte { return msg }
	up.corruptListing = func(msg []byte) []byte {
		mu.Lock()
		defer mu.Unlock()
		return spoil(msg)
	}
	for name, f := range map[string]func([]byte) []byte{
		// Under 64 KiB on the wire, 256 KiB once decompressed.
		"inflating": func([]byte) []byte {
			l := wire.Listing{Folders: []wire.ListFolder{{Name: "x"}}}
			for range wire.MaxListEntries {
				l.Entries = append(l.Entries, wire.ListEntry{Path: strings.Repeat("a", wire.MaxListPath)})
			}
			e, _ := wire.New(wire.TypeListing, &l)
			b, _ := wire.Marshal(e)
			return b
		},
		"garbage": func([]byte) []byte { return []byte("not an envelope at all, not even close") },
		"escaping path": func([]byte) []byte {
			e, _ := wire.New(wire.TypeListing, &wire.Listing{Folders: []wire.ListFolder{{Name: "x"}}, Entries: []wire.ListEntry{{Path: "../../.ssh/id_ed25519"}}})
			b, _ := wire.Marshal(e)
			return b
		},
	} {
		mu.Lock()
		spoil = f
		mu.Unlock()
		if _, err := down.Browse(ctx, up.asSource(), 0); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s listing: %v", name, err)
		}
	}
	mu.Lock()
	spoil = func(msg []byte) []byte { return msg }
	mu.Unlock()
	if res, err := down.Browse(ctx, up.asSource(), 0); err != nil || len(res.Files) != 1 {
		t.Fatalf("browse after the bad ones: %+v, %v", res, err)
	}

	plain := newTestEngine(t, n, testEngineOpts{source: newMapSource()})
	if _, err := down.Browse(ctx, plain.asSource(), 0); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), reasonNotShared) {
		t.Fatalf("browse of a node that does not browse: %v", err)
	}
}
