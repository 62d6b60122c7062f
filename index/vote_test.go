package index

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/canopy-p2p/canopy/identity"
)

// onlyHit searches x for q and returns its only hit.
func onlyHit(t *testing.T, x *Index, q string) Hit {
	t.Helper()
	hits := x.Search(Query{Words: q})
	if len(hits) != 1 {
		t.Fatalf("Search(%q) = %d hits, want 1: %+v", q, len(hits), hits)
	}
	return hits[0]
}

func mustAdd(t *testing.T, x *Index, who identity.NodeID, files ...File) {
	t.Helper()
	if err := x.Add(who, files...); err != nil {
		t.Fatal(err)
	}
}

// A sybil sharing one content under ten names has one vote, and two honest
// owners outvote it, even though it has been in the index longest, its
// names sort first and it lies about the size.
func TestVoteOneVotePerOwner(t *testing.T) {
	x := New(Limits{})
	id := cid(1)
	var spam []File
	for i := range 10 {
		spam = append(spam, File{ID: id, Name: fmt.Sprintf("AAAA song %d.exe", i), Size: 666})
	}
	mustAdd(t, x, node(9), spam...)
	mustAdd(t, x, node(1), File{ID: id, Name: "Song.mp3", Size: 4000})
	mustAdd(t, x, node(2), File{ID: id, Name: "Song.mp3", Size: 4000})

	h := onlyHit(t, x, "song")
	if h.Name != "Song.mp3" || h.Size != 4000 || h.OwnerCount != 3 || len(h.Owners) != 3 {
		t.Fatalf("hit = %+v, want the honest name and size from 3 owners", h)
	}
}

// A tie between single votes goes to the owner that has been in the index
// longer, not to the name that sorts first; an owner that leaves and comes
// back is young again, and a full re-upload does not make it young.
func TestVoteTieGoesToOlderOwner(t *testing.T) {
	id := cid(1)
	honest := File{ID: id, Name: "Zebra song.mp3", Size: 4000}
	sybil := File{ID: id, Name: "AAAA song.exe", Size: 666}
	check := func(t *testing.T, x *Index, want File) {
		t.Helper()
		h := onlyHit(t, x, "song")
		if h.Name != want.Name || h.Size != want.Size || h.OwnerCount != 2 {
			t.Fatalf("hit = %+v, want %q of size %d from 2 owners", h, want.Name, want.Size)
		}
	}

	t.Run("older honest owner", func(t *testing.T) {
		x := New(Limits{})
		mustAdd(t, x, node(1), honest)
		mustAdd(t, x, node(9), sybil)
		check(t, x, honest)
	})
	t.Run("older sybil", func(t *testing.T) {
		// The rule is age, not the honest name: the same two names with
		// the ages swapped give the other answer.
		x := New(Limits{})
		mustAdd(t, x, node(9), sybil)
		mustAdd(t, x, node(1), honest)
		check(t, x, sybil)
	})
	t.Run("dropped and back", func(t *testing.T) {
		x := New(Limits{})
		mustAdd(t, x, node(1), honest)
		mustAdd(t, x, node(9), sybil)
		x.DropOwner(node(1))
		mustAdd(t, x, node(1), honest)
		check(t, x, sybil)
	})
	t.Run("last file removed and back", func(t *testing.T) {
		x := New(Limits{})
		mustAdd(t, x, node(1), honest)
		mustAdd(t, x, node(9), sybil)
		x.Remove(node(1), id, "")
		mustAdd(t, x, node(1), honest)
		check(t, x, sybil)
	})
	t.Run("empty replace and back", func(t *testing.T) {
		x := New(Limits{})
		mustAdd(t, x, node(1), honest)
		mustAdd(t, x, node(9), sybil)
		if err := x.Replace(node(1), nil); err != nil {
			t.Fatal(err)
		}
		mustAdd(t, x, node(1), honest)
		check(t, x, sybil)
	})
	t.Run("large replace keeps the age", func(t *testing.T) {
		// More than inPlaceMax files: Replace swaps the owner for a new
		// slot rather than editing it in place.
		x := New(Limits{})
		big := []File{honest}
		for i := range inPlaceMax + 10 {
			big = append(big, File{ID: cid(2), Name: fmt.Sprintf("other %d", i)})
		}
		if err := x.Replace(node(1), big); err != nil {
			t.Fatal(err)
		}
		mustAdd(t, x, node(9), sybil)
		big[1].Name = "renamed"
		if err := x.Replace(node(1), big); err != nil {
			t.Fatal(err)
		}
		check(t, x, honest)
	})
	t.Run("small replace keeps the age", func(t *testing.T) {
		x := New(Limits{})
		mustAdd(t, x, node(1), honest, File{ID: cid(2), Name: "other"})
		mustAdd(t, x, node(9), sybil)
		if err := x.Replace(node(1), []File{honest}); err != nil {
			t.Fatal(err)
		}
		check(t, x, honest)
	})
}

// The hits do not depend on the order in which entries were added, so on
// the order of postings and of the visits of a search, as long as the
// owners joined in the same order.
func TestVoteDeterministicAcrossInsertionOrders(t *testing.T) {
	type owned struct {
		who identity.NodeID
		f   File
	}
	var all []owned
	// Three contents; owners share them under several names and sizes, so
	// that each vote has rivals, and owner 1 also shares names that sort
	// before its others.
	spellings := []string{"Night Song.mp3", "night_song.mp3", "AAA night song.exe", "Night Song (live).mp3", "song night.ogg"}
	for o := range 6 {
		who := node(byte(o + 1))
		for c := range 3 {
			for s := range 1 + (o+c)%3 {
				name := spellings[(o*2+c+s)%len(spellings)]
				all = append(all, owned{who, File{ID: cid(byte(c)), Name: name, Size: int64(100*c + (o+s)%2)}})
			}
		}
	}
	queries := []string{"night song", "song", "night", "nigh", "song night ogg"}

	build := func(r *rand.Rand) *Index {
		x := New(Limits{})
		// The owners join in a fixed order, each with a file of its own
		// that no query matches; the rest comes in any order, one file or
		// several per call.
		for o := range 6 {
			mustAdd(t, x, node(byte(o+1)), File{ID: cid(99), Name: "placeholder"})
		}
		order := slices.Clone(all)
		r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for len(order) > 0 {
			n := 1 + r.IntN(3)
			who := order[0].who
			var batch []File
			for len(order) > 0 && len(batch) < n && order[0].who == who {
				batch = append(batch, order[0].f)
				order = order[1:]
			}
			mustAdd(t, x, who, batch...)
		}
		// A few removals and re-adds move entries within postings.
		for range 5 {
			o := all[r.IntN(len(all))]
			x.Remove(o.who, o.f.ID, o.f.Name)
			mustAdd(t, x, o.who, o.f)
		}
		return x
	}

	want := map[string][]Hit{}
	ref := build(rand.New(rand.NewPCG(0, 0)))
	for _, q := range queries {
		want[q] = ref.Search(Query{Words: q})
		if len(want[q]) == 0 {
			t.Fatalf("Search(%q) has no hits", q)
		}
	}
	for seed := range uint64(30) {
		x := build(rand.New(rand.NewPCG(seed, 7)))
		checkInvariants(t, x)
		for _, q := range queries {
			if got := x.Search(Query{Words: q}); !sameHits(got, want[q]) {
				t.Fatalf("seed %d: Search(%q)\n got %+v\nwant %+v", seed, q, got, want[q])
			}
		}
	}
}

// Sybils win the vote (Hit.Name) by number, but not what the index says of
// another owner: every listed owner comes with its own name, the sybils'
// votes change nothing of the honest owner's, an owner with several
// matching names is listed once with the one that sorts first, and a
// by-content look-up says the same.
func TestHitNamesPerOwner(t *testing.T) {
	x := New(Limits{})
	id := cid(7)
	honest := node(1)
	mustAdd(t, x, honest, File{ID: id, Name: "holiday song.mp3", Size: 4000})
	for i := range 5 {
		mustAdd(t, x, node(byte(10+i)), File{ID: id, Name: "song invoice.exe", Size: 4000})
	}
	two := node(30)
	mustAdd(t, x, two, File{ID: id, Name: "song b.mp3", Size: 4000}, File{ID: id, Name: "song a.mp3", Size: 4000})

	check := func(what string, h Hit) {
		t.Helper()
		if h.Name != "song invoice.exe" {
			t.Fatalf("%s: the vote went to %q; with 5 sybils it is theirs, which is why it is not what a leaf shows", what, h.Name)
		}
		if len(h.Names) != len(h.Owners) || len(h.Owners) != 7 {
			t.Fatalf("%s: %d owners, %d names, want 7 of each: %+v", what, len(h.Owners), len(h.Names), h)
		}
		for i, o := range h.Owners {
			want := "song invoice.exe"
			switch o {
			case honest:
				want = "holiday song.mp3"
			case two:
				want = "song a.mp3"
			}
			if h.Names[i] != want {
				t.Errorf("%s: owner %s listed with %q, want its own %q", what, o.Short(), h.Names[i], want)
			}
		}
	}
	check("search", onlyHit(t, x, "song"))
	h, ok := x.Lookup(id)
	if !ok {
		t.Fatal("look-up found nothing")
	}
	check("look-up", h)
	// A search that matches only one of an owner's names lists that one.
	h = onlyHit(t, x, "holiday")
	if len(h.Owners) != 1 || h.Owners[0] != honest || h.Names[0] != "holiday song.mp3" {
		t.Fatalf("search for the honest name: %+v", h)
	}
	h = onlyHit(t, x, "b")
	if len(h.Owners) != 1 || h.Owners[0] != two || h.Names[0] != "song b.mp3" {
		t.Fatalf("search for one of two names: %+v", h)
	}
}
