package node_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/content"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/internal/testwait"
	"github.com/canopy-p2p/canopy/leaf"
	"github.com/canopy-p2p/canopy/node"
	"github.com/canopy-p2p/canopy/people"
	"github.com/canopy-p2p/canopy/supernode"
	"github.com/canopy-p2p/canopy/transfer"
	"github.com/canopy-p2p/canopy/wire"
)

func writeShared(t *testing.T, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func browsed(t *testing.T, n *node.Node, of identity.NodeID) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := n.Browse(ctx, of, 0)
	if err != nil {
		t.Fatalf("browse: %v", err)
	}
	var out []string
	for _, f := range res.Files {
		s := f.Folder + "/" + f.Path
		if f.Have {
			s += " (have)"
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func searchNames(n *node.Node, req api.SearchRequest) []string {
	if req.TimeoutMS == 0 {
		req.TimeoutMS = 1500
	}
	res, err := n.Search(context.Background(), req)
	if err != nil {
		return []string{"error: " + err.Error()}
	}
	var out []string
	for _, h := range res.Hits {
		out = append(out, h.Name)
	}
	slices.Sort(out)
	return out
}

func sharedID(t *testing.T, n *node.Node, name string) content.ID {
	t.Helper()
	es, err := n.Library().Entries()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.Name == name {
			return e.ID
		}
	}
	t.Fatalf("%s shares no %s", n.ID().Short(), name)
	return content.ID{}
}

// TestShareByTrust is issue 12's browse scenario on loopback, two
// supernodes, default timers: A shares a public folder, a folder for
// contacts and one for trusted contacts. B (on the other supernode)
// browses A and sees the public files, and the contacts' folder only once
// A and B are contacts; the trusted folder never. A stranger C sees
// neither private folder, in a browse or a search, and A refuses C's
// download of a contacts-only file; once A blocks C, C's browse and
// download are refused as blocked. B fetches a browsed contacts-only file
// by its content ID alone. Blocked nodes' hits are hidden from searches,
// and searches filter by size and extension. A folder made contacts-only
// while A runs leaves the supernodes' index. canopy network from a leaf
// lists both supernodes and A online.
func TestShareByTrust(t *testing.T) {
	pn := newPeopleNet(t)
	pn.supernode("sn1")
	pn.supernode("sn2", "sn1")
	testwait.Until(t, 15*time.Second, func() bool {
		return len(pn.nodes["sn1"].Supernode().Members()) == 2 && len(pn.nodes["sn2"].Supernode().Members()) == 2
	}, "a ring of two")

	root := t.TempDir()
	pub, fam, sec := filepath.Join(root, "Public"), filepath.Join(root, "Family"), filepath.Join(root, "Secret")
	writeShared(t, pub, "ocean song.flac", strings.Repeat("waves ", 1000))
	writeShared(t, pub, "albums/ocean live.flac", strings.Repeat("live ", 100))
	writeShared(t, fam, "ocean family picnic.jpg", strings.Repeat("picnic ", 2000))
	writeShared(t, sec, "ocean secret plans.txt", "plans")
	cfg := pn.leafConfig("a", "sn1")
	cfg.Shares, cfg.ShareContacts, cfg.ShareTrusted = []string{pub}, []string{fam}, []string{sec}
	a := pn.start("a", cfg)
	pn.published("a", "sn1")

	// B shares a copy of one public file, so its browse marks it as had.
	bShare := filepath.Join(root, "b")
	writeShared(t, bShare, "copy.flac", strings.Repeat("live ", 100))
	cfg = pn.leafConfig("b", "sn2")
	cfg.Shares = []string{bShare}
	b := pn.start("b", cfg)
	pn.published("b", "sn2")

	cShare := filepath.Join(root, "c")
	writeShared(t, cShare, "ocean tide.mp3", strings.Repeat("tide ", 3000))
	cfg = pn.leafConfig("c", "sn2")
	cfg.Shares = []string{cShare}
	c := pn.start("c", cfg)
	pn.published("c", "sn2")

	// Only A's public files reach the index: C finds them, and nothing of
	// the private folders.
	testwait.Until(t, 15*time.Second, func() bool {
		return slices.Equal(searchNames(c, api.SearchRequest{Words: "ocean"}), []string{"ocean live.flac", "ocean song.flac", "ocean tide.mp3"})
	}, "C finds A's two public files and its own")
	if got := searchNames(c, api.SearchRequest{Words: "picnic"}); len(got) != 0 {
		t.Fatalf("a stranger found a contacts-only file: %v", got)
	}
	if got := searchNames(c, api.SearchRequest{Words: "secret"}); len(got) != 0 {
		t.Fatalf("a stranger found a trusted-only file: %v", got)
	}
	if got := pn.nodes["sn1"].Supernode().IndexStats().Files; got != 2 {
		t.Fatalf("A's supernode indexes %d files, want A's 2 public ones", got)
	}

	public := []string{"Public/albums/ocean live.flac (have)", "Public/ocean song.flac"}
	if got := browsed(t, b, a.ID()); !slices.Equal(got, public) {
		t.Fatalf("B (a stranger still) browses A: %v", got)
	}
	befriend(t, a, b, "hi, it's a")
	withFamily := append(slices.Clone(public), "Family/ocean family picnic.jpg")
	slices.Sort(withFamily)
	if got := browsed(t, b, a.ID()); !slices.Equal(got, withFamily) {
		t.Fatalf("B (a contact) browses A: %v", got)
	}
	if got := browsed(t, c, a.ID()); !slices.Equal(got, []string{"Public/albums/ocean live.flac", "Public/ocean song.flac"}) {
		t.Fatalf("C browses A: %v", got)
	}

	// The contacts-only file: B fetches it by its content ID (the browse
	// left the source); A refuses C.
	picnic := sharedID(t, a, "ocean family picnic.jpg")
	ctx := context.Background()
	r, err := b.Sources(ctx, picnic)
	if err != nil {
		t.Fatalf("B's sources of the browsed picnic: %v", err)
	}
	got, err := b.Get(ctx, r, t.TempDir(), nil)
	if err != nil || got.Size != int64(len(strings.Repeat("picnic ", 2000))) || got.Name != "ocean family picnic.jpg" {
		t.Fatalf("B gets the picnic: %+v, %v", got, err)
	}
	aSrc := wire.Source{Node: a.ID(), Via: []identity.NodeID{pn.nodes["sn1"].ID()}}
	_, err = c.Leaf().Download(ctx, transfer.Request{Content: picnic, OutDir: t.TempDir(), Sources: []wire.Source{aSrc}})
	if !errors.Is(err, transfer.ErrRefused) || !strings.Contains(err.Error(), "not shared") {
		t.Fatalf("C's download of the contacts-only picnic: %v", err)
	}

	// Network from a leaf.
	nw, err := b.Network(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if nw.Totals.Supernodes != 2 || len(nw.Supernodes) != 2 || nw.From != pn.nodes["sn2"].ID().String() || nw.Totals.Leaves < 3 {
		t.Fatalf("network from B: %+v", nw)
	}
	ids := []string{nw.Supernodes[0].ID, nw.Supernodes[1].ID}
	slices.Sort(ids)
	want := []string{pn.nodes["sn1"].ID().String(), pn.nodes["sn2"].ID().String()}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("network lists %v, want %v", ids, want)
	}
	testwait.Until(t, 15*time.Second, func() bool {
		nw, err := b.Network(ctx)
		return err == nil && len(nw.Contacts) == 1 && nw.Contacts[0].ID == a.ID().String() && len(nw.Contacts[0].Where) > 0
	}, "B's network view shows A online")

	// Asked too often, the supernode answers "slow down" and the link
	// stays: the next request in time is answered.
	var slow *leaf.SlowDownError
	for range 2 * supernode.DefaultNetworkBurst {
		if _, err := b.Network(ctx); errors.As(err, &slow) {
			break
		}
	}
	if slow == nil || slow.RetryAfter <= 0 {
		t.Fatalf("%d network requests at once were all answered", 2*supernode.DefaultNetworkBurst)
	}
	testwait.Until(t, 5*time.Second, func() bool { _, err := b.Network(ctx); return err == nil }, "B's network request answered again after the slow-down")

	// Filters: by extension and size; blocked nodes' hits hidden.
	if got := searchNames(b, api.SearchRequest{Words: "ocean", Ext: []string{"mp3"}}); !slices.Equal(got, []string{"ocean tide.mp3"}) {
		t.Fatalf("mp3 only: %v", got)
	}
	if got := searchNames(b, api.SearchRequest{Words: "ocean", MinSize: 1000, MaxSize: 10000}); !slices.Equal(got, []string{"ocean song.flac"}) {
		t.Fatalf("1000 to 10000 bytes: %v", got)
	}
	if _, err := b.Search(ctx, api.SearchRequest{Words: "ocean", MinSize: 10, MaxSize: 5}); err == nil {
		t.Fatal("max size below min size was accepted")
	}
	if _, err := b.People().SetTrust(c.ID(), people.TrustBlocked); err != nil {
		t.Fatal(err)
	}
	if got := searchNames(b, api.SearchRequest{Words: "ocean"}); !slices.Equal(got, []string{"ocean live.flac", "ocean song.flac"}) {
		t.Fatalf("B's search with C blocked: %v", got)
	}

	// A blocks C: browse and download refused, with the reason.
	if _, err := a.People().SetTrust(c.ID(), people.TrustBlocked); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Browse(ctx, a.ID(), 0); !errors.Is(err, transfer.ErrBlocked) {
		t.Fatalf("blocked C's browse: %v", err)
	}
	song := sharedID(t, a, "ocean song.flac")
	_, err = c.Leaf().Download(ctx, transfer.Request{Content: song, OutDir: t.TempDir(), Sources: []wire.Source{aSrc}})
	if !errors.Is(err, transfer.ErrBlocked) {
		t.Fatalf("blocked C's download: %v", err)
	}
	if st := a.Leaf().TransferStats().Refusals; st.Blocked != 2 || st.NotShared < 1 {
		t.Fatalf("A's refusals: %+v", st)
	}

	// A makes Public contacts-only while it runs: it leaves the index, B
	// (a contact) still browses it.
	if err := a.SetShare(pub, "contacts"); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 15*time.Second, func() bool {
		return pn.nodes["sn1"].Supernode().IndexStats().Files == 0
	}, "A's public folder, made contacts-only, leaves its supernode's index")
	if got := searchNames(b, api.SearchRequest{Words: "song"}); len(got) != 0 {
		t.Fatalf("the folder made private is still found: %v", got)
	}
	if got := browsed(t, b, a.ID()); !slices.Equal(got, withFamily) {
		t.Fatalf("B browses A after the change: %v", got)
	}
	lib, err := a.LibraryStatus()
	if err != nil {
		t.Fatal(err)
	}
	if lib.Files != 4 || lib.Public != 0 || len(lib.Shares) != 3 || lib.Shares[0].Visibility != "contacts" || lib.LastScan == nil {
		t.Fatalf("A's library: %+v", lib)
	}
}
