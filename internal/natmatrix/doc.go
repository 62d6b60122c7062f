// Package natmatrix holds the NAT matrix test of issue 3: whole canopy
// nodes, the real binary, downloading from each other across every pair of
// the NAT kinds the lab builds (internal/natlab), directly where the two NATs
// allow it and through a supernode's TURN relay otherwise.
//
// The package has no code of its own; everything is in matrix_test.go and
// the files next to it. Run it as root (the lab needs network namespaces and
// nftables):
//
//	go test ./internal/natmatrix -run TestMatrix -v
//
// # What the test builds
//
//	[sn1]--\                                  two public supernodes (sn2 joins sn1),
//	[sn2]---[internet]--[router kind X]--[leaf X-a]   each serving TURN, UDP and TCP
//	        |          \-[router kind X]--[leaf X-b]  3478 (also plain STUN), and
//	        ...          for every kind X of nat.Kinds()  RFC 5780 STUN on 3479/3480
//
// Two leaves per kind (14 leaves), each sharing one 8 MiB file of random
// bytes under a name with a unique word. For every unordered pair of kinds,
// the same-kind pairs included (7 kinds, 28 pairs), one leaf searches for
// the other's word and downloads the file; the test checks the SHA-256 of
// what arrived, and that the path the download reports ("direct" or
// "relayed") is the one nat.DirectPossible predicts from the behaviours the
// lab built (nat.Kind.Mapping and Filtering). Downloads run one at a
// time: the machines this runs on have two cores.
//
// The test logs the matrix (pair, expected and actual path, the ICE
// candidate types of the selected pair, time to connect, throughput) and the
// direct-connection share it implies for the population mix of package nat
// (nat.Population, which says where each figure comes from); the weighing
// is in population_test.go.
//
// The test is skipped under -short, and skipped or failed exactly as
// natlab.New decides when the lab cannot run (CANOPY_NATLAB=require, set by
// CI, makes that a failure).
package natmatrix
