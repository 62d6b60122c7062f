package people

import (
	"testing"
	"time"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/wire"
)

// TestJudgeRecord is the viewer's rule for presence records, case by
// case: validity and skew at their edges, order by sequence number, and a
// held record that has lapsed ordering nothing.
func TestJudgeRecord(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	const skew = 30 * time.Second
	rec := func(seq uint64, issued time.Duration, valid time.Duration) *wire.PresenceRecord {
		return &wire.PresenceRecord{Seq: seq, Time: now.Add(issued).UnixMilli(), Valid: valid.Milliseconds()}
	}
	held := rec(10, -10*time.Second, time.Minute)
	for _, tc := range []struct {
		name string
		rec  *wire.PresenceRecord
		held *wire.PresenceRecord
		want recordVerdict
	}{
		{"first record", rec(1, 0, time.Minute), nil, recordNew},
		{"newer", rec(11, 0, time.Minute), held, recordNew},
		{"same", rec(10, -10*time.Second, time.Minute), held, recordSame},
		{"older, within its validity", rec(9, -20*time.Second, time.Minute), held, recordOlder},
		{"older by seq though issued later", rec(9, 0, time.Minute), held, recordOlder},
		{"expired: validity and skew passed", rec(11, -91*time.Second, time.Minute), nil, recordExpired},
		{"within the skew past its validity", rec(11, -89*time.Second, time.Minute), nil, recordNew},
		{"short validity lapsed", rec(11, -32*time.Second, time.Second), held, recordExpired},
		{"no validity named: the default", rec(11, -(DefaultPresenceValid + skew + time.Second), 0), nil, recordExpired},
		{"no validity named, fresh", rec(11, -DefaultPresenceValid, 0), nil, recordNew},
		{"issued ahead within the skew", rec(11, 29*time.Second, time.Minute), held, recordNew},
		{"issued too far ahead", rec(11, 31*time.Second, time.Minute), nil, recordFuture},
		{"from the future, older too", rec(3, time.Hour, time.Minute), held, recordFuture},
		{"expired and older", rec(3, -time.Hour, time.Minute), held, recordExpired},
		{"held lapsed: a lower number is taken", rec(2, 0, time.Minute), rec(10, -2*time.Minute, time.Minute), recordNew},
	} {
		if got := judgeRecord(tc.rec, tc.held, now, skew); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestReplayedPresence: what a holder can do with records it was given
// before. To a viewer that holds a newer record, an older one changes
// nothing and is counted; to a viewer that holds none (it just started),
// a record past its validity shows offline and is counted, and so does
// one issued in the future; a record the viewer shows lapses into
// offline once its validity has passed though its holder keeps answering.
func TestReplayedPresence(t *testing.T) {
	w, s := newWorld(t, 2)
	a, b := s[0], s[1]
	befriendMem(t, w, a, b)
	holder := identity.NodeID{7}
	now := time.Now()
	rec := func(st wire.Status, text string, seq uint64, issued time.Time) *wire.PresenceRecord {
		r := wire.PresenceRecord{Status: st, Text: text, Seq: seq, Time: issued.UnixMilli(), Valid: b.cfg.PresenceValid.Milliseconds(),
			Supernodes: []identity.NodeID{holder}}
		if err := wire.SignPresence(b.me, &r); err != nil {
			t.Fatal(err)
		}
		return &r
	}
	notify := func(r *wire.PresenceRecord) {
		a.handleNotify(wire.PresenceNotify{Node: b.me.ID, To: a.me.ID, From: holder, Record: r})
	}
	view := func() api.Contact {
		cs, _ := a.Contacts()
		return cs[0]
	}
	old := rec(wire.StatusOnline, "X", 5, now.Add(-20*time.Second)) // captured 20 s ago
	notify(rec(wire.StatusBusy, "Y", 6, now.Add(-time.Second)))
	notify(old)
	if c, st := view(), a.Stats(); c.Status != "busy" || c.Text != "Y" || st.PresenceReplayed != 1 {
		t.Fatalf("after a replayed older record: %s %q, replayed %d", c.Status, c.Text, st.PresenceReplayed)
	}

	// A viewer that starts afresh holds nothing: a record older than its
	// validity is offline.
	a.mu.Lock()
	delete(a.pres, b.me.ID)
	a.mu.Unlock()
	notify(rec(wire.StatusOnline, "X", 5, now.Add(-b.cfg.PresenceValid-a.cfg.ClockSkew-time.Second)))
	if c, st := view(), a.Stats(); c.Status != "offline" || c.Online || st.PresenceExpired != 1 {
		t.Fatalf("after an expired record: %s online %v, expired %d", c.Status, c.Online, st.PresenceExpired)
	}
	notify(rec(wire.StatusOnline, "X", 7, now.Add(a.cfg.ClockSkew+time.Minute)))
	if c, st := view(), a.Stats(); c.Online || st.PresenceExpired != 2 {
		t.Fatalf("after a record from the future: %s online %v, expired %d", c.Status, c.Online, st.PresenceExpired)
	}

	// A valid record shows, then lapses while its holder still answers
	// (a holder that keeps serving a record its owner stopped renewing).
	notify(old)
	if c := view(); c.Status != "online" || c.Text != "X" {
		t.Fatalf("a valid record is not shown: %s %q", c.Status, c.Text)
	}
	later := now.Add(b.cfg.PresenceValid + a.cfg.ClockSkew - 10*time.Second)
	a.mu.Lock()
	hd := a.pres[b.me.ID].holders[holder]
	hd.at = later // the holder answered just now
	a.pres[b.me.ID].holders[holder] = hd
	a.refreshViewLocked(b.me.ID, later)
	a.mu.Unlock()
	if c := view(); c.Status != "offline" || c.Online {
		t.Fatalf("a record past its validity still shows: %s", c.Status)
	}
}

// TestRecordsRenewed: the node signs a new record every third of its
// validity though nothing changed, each valid for PresenceValid and
// numbered higher than the last, so that it never lapses at its viewers.
func TestRecordsRenewed(t *testing.T) {
	_, s := newWorld(t, 1)
	a := s[0]
	now := time.Now()
	a.publish(now)
	first := *a.signed
	a.publish(now.Add(a.cfg.PresenceValid/3 - time.Second))
	if a.signed.Seq != first.Seq {
		t.Fatalf("signed again after %v without a change", a.cfg.PresenceValid/3-time.Second)
	}
	a.publish(now.Add(a.cfg.PresenceValid / 3))
	if a.signed.Seq != first.Seq+1 || a.signed.Issued().Sub(first.Issued()) != a.cfg.PresenceValid/3 ||
		a.signed.Validity() != DefaultPresenceValid || a.signed.Check() != nil {
		t.Fatalf("record after a third of the validity: %+v (first %+v)", a.signed, first)
	}
}
