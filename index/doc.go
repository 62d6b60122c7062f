// Package index is a supernode's inverted keyword index over the files its
// leaves share, in the manner of a Gnutella ultrapeer or a Kazaa supernode:
// each leaf uploads the names, sizes and content IDs of its shared files, and
// the supernode answers keyword searches from memory without touching the
// leaves.
//
// Names are cut into words by Tokenize, which queries go through too, so that
// "Café", "cafe" and "CAFÉ" meet. The index maps every word to the entries
// whose names hold it; a search intersects those postings starting from the
// rarest word and groups the matches by content ID, so that a file shared by
// many leaves comes back once, with its sources, ranked by how many there are.
//
// Everything a peer can make the index hold or do is bounded (see Limits and
// the constants of Tokenize), and every change is all-or-nothing: a call that
// fails leaves the index as it was.
package index
