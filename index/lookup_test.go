package index

import "testing"

func TestLookup(t *testing.T) {
	x := New(Limits{})
	var a, b, c ContentID
	a[0], b[0], c[0] = 1, 2, 3
	alice, bob := node(1), node(2)
	if err := x.Add(alice, File{ID: a, Name: "Song.mp3", Size: 10}, File{ID: b, Name: "Other.txt", Size: 5}); err != nil {
		t.Fatal(err)
	}
	if err := x.Add(bob, File{ID: a, Name: "song copy.mp3", Size: 10}, File{ID: a, Name: "again.mp3", Size: 10}); err != nil {
		t.Fatal(err)
	}
	h, ok := x.Lookup(a)
	if !ok || h.ID != a || h.Size != 10 || h.OwnerCount != 2 || len(h.Owners) != 2 {
		t.Fatalf("lookup a: %v %+v", ok, h)
	}
	if _, ok := x.Lookup(c); ok {
		t.Fatal("lookup of an unknown ID found something")
	}
	x.DropOwner(bob)
	if h, ok := x.Lookup(a); !ok || h.OwnerCount != 1 || h.Owners[0] != alice {
		t.Fatalf("after drop: %v %+v", ok, h)
	}
}
