package people

import (
	"time"

	"github.com/canopy-p2p/canopy/wire"
)

// A presence record is signed by its owner, so a holder cannot forge one;
// it can only hand out one it was given before. These are the rules that
// bound what such a replay shows (docs/protocol.md, "Presence"): a record
// holds for its validity from its issue time (wire.PresenceRecord.Valid,
// 60 s by default; the owner signs a new one every third of it), so a
// replay shows at most that long after the record was signed, plus the
// clock skew tolerated; and a viewer never goes back from a record it
// holds to an older one.

// DefaultClockSkew is how far a viewer's clock may be from a record
// owner's without the record being misjudged: a record is shown until
// its validity has passed by the viewer's clock plus this, and one issued
// further than this ahead of the viewer's clock is refused. A replayed
// record therefore shows at most DefaultPresenceValid + DefaultClockSkew
// (90 s) after it was signed; an owner whose clock is behind the viewer's
// by up to about a minute, or ahead by up to 30 s, is shown as it is.
const DefaultClockSkew = 30 * time.Second

// DefaultPresenceValid is the validity the node signs into its records;
// it signs a new one every third of it.
const DefaultPresenceValid = wire.DefaultPresenceValid

// recordVerdict is what a viewer makes of a presence record a holder
// gave it.
type recordVerdict int

const (
	// recordNew: newer than the record held; take it.
	recordNew recordVerdict = iota
	// recordSame: the record held (same sequence number); the holder is
	// alive, nothing changed.
	recordSame
	// recordOlder: older than a record held that is still valid: a
	// holder replaying an old record (or one a moment behind another).
	// Refused: the holder's word counts as offline.
	recordOlder
	// recordExpired: its validity has passed. Refused: offline.
	recordExpired
	// recordFuture: issued further ahead of this clock than clocks may
	// differ, which would stretch its validity. Refused: offline.
	recordFuture
)

func (v recordVerdict) String() string {
	return [...]string{"new", "same", "older", "expired", "future"}[v]
}

// judgeRecord is the viewer's rule for a checked record rec of a contact
// of whom it holds held (nil: none), at now, tolerating clocks that
// differ by skew. Records are ordered by their sequence number, which
// the owner keeps across restarts; a held record that has expired orders
// nothing (an owner that lost its database starts its numbers again, and
// its first fresh record is taken once the old one has lapsed).
func judgeRecord(rec, held *wire.PresenceRecord, now time.Time, skew time.Duration) recordVerdict {
	switch {
	case rec.Issued().After(now.Add(skew)):
		return recordFuture
	case recordExpiredAt(rec, now, skew):
		return recordExpired
	case held == nil || recordExpiredAt(held, now, skew):
		return recordNew
	case rec.Seq < held.Seq:
		return recordOlder
	case rec.Seq == held.Seq:
		return recordSame
	}
	return recordNew
}

// recordExpiredAt reports whether rec's validity has passed at now, with
// skew to spare.
func recordExpiredAt(rec *wire.PresenceRecord, now time.Time, skew time.Duration) bool {
	return now.After(rec.Issued().Add(rec.Validity() + skew))
}
