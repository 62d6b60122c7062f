// Package content names files by what they hold.
//
// A file is cut into pieces of a fixed size (the last piece may be shorter),
// each piece is hashed, and the piece hashes are folded into a Merkle root. The
// content ID binds that root to the file size and the piece size, so two
// manifests with the same ID describe exactly the same bytes cut the same way.
// Every downloaded piece can then be checked on its own, before it is written,
// against the manifest that the ID vouches for.
//
// # Format version 1
//
// The hashes below are visible on the wire and in every index; changing any of
// them changes every content ID, so they are fixed as version 1 of the format.
// All hashes are 32-byte BLAKE3 digests. The leading byte of every hash input is
// a domain tag, so a piece can never be passed off as an inner node or an ID
// (the second-preimage attack on untagged Merkle trees, RFC 6962 section 2.1).
//
//	leaf  = BLAKE3(0x00 || piece bytes)
//	inner = BLAKE3(0x01 || left || right)
//	id    = BLAKE3(0x02 || uint64 LE size || uint32 LE piece size || root)
//
// The tree is built bottom up from the leaves in piece order. At each level
// nodes are paired left to right; an odd node at the end of a level is promoted
// to the next level unchanged. A file of zero bytes has no pieces and its root
// is BLAKE3(0x00), the leaf hash of empty input.
//
// A piece size is a power of two between MinPieceSize and MaxPieceSize, and a
// file has at most MaxPieces pieces, so a manifest received from a peer can
// never demand unbounded memory.
package content
