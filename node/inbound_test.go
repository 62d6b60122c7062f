package node

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/nat/reach"
)

// TestInboundEvidence: connections other nodes open count as successful
// reachability checks, one per peer per retry interval, from a bounded table
// of peers; two peers are enough for a verdict though no supernode dialled
// back.
func TestInboundEvidence(t *testing.T) {
	r := newReachState(reach.Config{})
	now := time.Unix(1_700_000_000, 0)
	r.inbound(now, "peer-a")
	if known, _ := r.verdict(now); known {
		t.Fatal("one connection from one peer gave a verdict")
	}
	// The same peer re-dialling every second (an orphaned leaf trying a
	// successor) counts once per retry interval.
	for i := 1; i < 30; i++ {
		r.inbound(now.Add(time.Duration(i)*time.Second), "peer-a")
	}
	if st := r.inboundN.Snapshot(); st.Counted != 1 || st.Paced != 29 {
		t.Fatalf("stats %+v, want 1 counted and 29 paced", st)
	}
	if known, _ := r.verdict(now.Add(30 * time.Second)); known {
		t.Fatal("one peer re-dialling gave a verdict within the retry interval")
	}
	r.inbound(now.Add(31*time.Second), "peer-b")
	known, reachable := r.verdict(now.Add(31 * time.Second))
	if !known || !reachable {
		verdict, ev := r.evidence(now.Add(31 * time.Second))
		t.Fatalf("two peers connected: verdict %s, %q; want reachable", verdict, ev)
	}
	verdict, ev := r.evidence(now.Add(31 * time.Second))
	if !strings.Contains(verdict, "reachable") || !strings.Contains(strings.Join(ev, "; "), "2 connections other nodes opened") {
		t.Errorf("evidence %s: %q does not explain the inbound connections", verdict, ev)
	}
}

func TestInboundEvidenceTableIsBounded(t *testing.T) {
	r := newReachState(reach.Config{})
	now := time.Unix(1_700_000_000, 0)
	for i := range DefaultMaxInboundObservers + 10 {
		r.inbound(now, fmt.Sprintf("peer-%d", i))
	}
	if st := r.inboundN.Snapshot(); st.Counted != DefaultMaxInboundObservers || st.TableFull != 10 {
		t.Fatalf("stats %+v, want %d counted and 10 refused for a full table", st, DefaultMaxInboundObservers)
	}
	if len(r.inboundAt) != DefaultMaxInboundObservers {
		t.Fatalf("table holds %d peers", len(r.inboundAt))
	}
	// Once the entries are a retry interval old they make room again.
	r.inbound(now.Add(reach.DefaultRetryInterval), "latecomer")
	if st := r.inboundN.Snapshot(); st.Counted != DefaultMaxInboundObservers+1 {
		t.Fatalf("stats %+v: the latecomer was not counted after the table aged", st)
	}
	if len(r.inboundAt) != 1 {
		t.Fatalf("table holds %d peers after pruning, want the latecomer only", len(r.inboundAt))
	}
}
