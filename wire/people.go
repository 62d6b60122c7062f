package wire

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/canopy-p2p/canopy/identity"
)

// People on the network: the messages that carry contact requests, presence
// and person-to-person messages between leaves, through their supernodes
// (docs/protocol.md, section "People"). Supernodes route and hold them but
// read only the routing fields: what a person says travels sealed in a
// Parcel.

// Message types of the people protocol, on control links.
const (
	TypeParcel            Type = 18 // Parcel: a sealed letter from one leaf to another, relayed or stored by supernodes
	TypeParcelResult      Type = 19 // ParcelResult: what a supernode did with a parcel, back to its sender
	TypeMailAck           Type = 20 // MailAck: the recipient took these stored parcels; forget them
	TypeMailFetch         Type = 21 // MailFetch: a leaf asks a supernode it was attached to for the parcels it holds for it
	TypePresencePublish   Type = 22 // PresencePublish: a leaf's signed presence record and who may see it, to its supernodes
	TypePresenceSubscribe Type = 23 // PresenceSubscribe: a leaf asks for the presence of its contacts
	TypePresenceNotify    Type = 24 // PresenceNotify: a holder's answer: a presence record, or "offline"
	TypeLocate            Type = 25 // Locate: which supernodes is a node attached to? Answered with QueryHit
)

func init() {
	for t, n := range map[Type]string{
		TypeParcel: "parcel", TypeParcelResult: "parcel-result", TypeMailAck: "mail-ack",
		TypeMailFetch: "mail-fetch", TypePresencePublish: "presence-publish",
		TypePresenceSubscribe: "presence-subscribe", TypePresenceNotify: "presence-notify",
		TypeLocate: "locate",
	} {
		typeNames[t] = n
	}
}

// Bounds of the people protocol. A receiver refuses what exceeds them
// (CheckParcel, Letter.Check, PresenceRecord.Check).
const (
	// MaxMessageText bounds a message's text in bytes (UTF-8): 8 KiB,
	// between Tox's 1,372 bytes (clients split longer ones) and
	// RetroShare's 31,000 (docs/field-numbers.md, section 7). A page of
	// prose fits; a client splits longer text into several messages.
	MaxMessageText = 8 << 10
	// MaxRequestText bounds the note of a contact request.
	MaxRequestText = 512
	// MaxNickname bounds a nickname in bytes.
	MaxNickname = 64
	// MaxStatusText bounds a presence record's free text in bytes.
	MaxStatusText = 256
	// MaxSealed bounds a parcel's sealed letter: the largest letter (a
	// message of MaxMessageText bytes with its signature, keys and a few
	// supernode IDs, about 8.7 KiB of CBOR) with the box's overhead, and
	// room to spare.
	MaxSealed = 12 << 10
	// MaxVia bounds the supernodes a people message names for one node: a
	// leaf attaches to 3, and one more covers a move in progress.
	MaxVia = 4
	// MaxAllowed bounds the contacts one presence record may be shown to,
	// and so a leaf's contacts: 1,000, past Skype's and Soulseek's typical
	// lists (a few hundred at most).
	MaxAllowed = 1000
	// MaxMailAck bounds the parcel IDs one MailAck names.
	MaxMailAck = 256
	// MaxSubscribe bounds the contacts one PresenceSubscribe names.
	MaxSubscribe = 256
	// DefaultPresenceValid is how long a presence record holds from its
	// issue time when it names no validity (PresenceRecord.Valid): 60 s.
	// Its owner signs a new one every third of it, so that a record that
	// stopped being renewed, or that a supernode replays later, shows as
	// offline soon (people.judgeRecord).
	DefaultPresenceValid = 60 * time.Second
	// MaxPresenceValid bounds the validity a record may claim: a longer
	// one would let a replay show a status that long.
	MaxPresenceValid = 10 * time.Minute
)

// ErrPeople wraps every refusal of a people message's content (bounds,
// signatures, fields that do not agree).
var ErrPeople = errors.New("wire: bad people message")

// Parcel carries one sealed letter from a leaf to another leaf. The
// sender's supernode overwrites From and FromVia with the authenticated
// sender and itself, as it does for Signal. A supernode delivers a parcel to
// To when To is attached to it and otherwise relays it to the supernodes in
// Via; with Store set, a supernode named in Via keeps it for To (the
// recipient's mailbox) and hands it over when To attaches or fetches.
// Every supernode that handles a parcel answers the sender with a
// ParcelResult.
type Parcel struct {
	ID      MsgID             `cbor:"1,keyasint"`
	From    identity.NodeID   `cbor:"2,keyasint"`
	FromVia []identity.NodeID `cbor:"3,keyasint,omitempty"`
	To      identity.NodeID   `cbor:"4,keyasint"`
	Via     []identity.NodeID `cbor:"5,keyasint,omitempty"`
	Store   bool              `cbor:"6,keyasint,omitempty"`
	// Sealed is the letter: SealPlain or SealBox (people.Seal), at most
	// MaxSealed bytes.
	Sealed []byte `cbor:"7,keyasint"`
}

// CheckParcel checks a parcel's bounds: a recipient, at most MaxVia
// supernodes each way, a sealed letter of 1 to MaxSealed bytes.
func CheckParcel(p *Parcel) error {
	switch {
	case p.To.IsZero():
		return fmt.Errorf("%w: parcel without a recipient", ErrPeople)
	case len(p.Via) > MaxVia || len(p.FromVia) > MaxVia:
		return fmt.Errorf("%w: parcel names more than %d supernodes", ErrPeople, MaxVia)
	case len(p.Sealed) == 0:
		return fmt.Errorf("%w: empty parcel", ErrPeople)
	case len(p.Sealed) > MaxSealed:
		return fmt.Errorf("%w: parcel of %d bytes exceeds %d", ErrPeople, len(p.Sealed), MaxSealed)
	}
	return nil
}

// ParcelState is what a supernode did with a parcel.
type ParcelState uint8

// Parcel states.
const (
	// ParcelHanded: the recipient is attached here and the parcel was queued
	// on its link. Not yet "delivered": the recipient's receipt says that.
	ParcelHanded ParcelState = 1
	// ParcelStored: kept in the recipient's mailbox here.
	ParcelStored ParcelState = 2
	// ParcelNotHere: the recipient is not attached here (and Store was not
	// set).
	ParcelNotHere ParcelState = 3
	// ParcelRefused: refused, with the reason (a full store, a quota, a
	// rate limit, no route).
	ParcelRefused ParcelState = 4
)

func (s ParcelState) String() string {
	switch s {
	case ParcelHanded:
		return "handed"
	case ParcelStored:
		return "stored"
	case ParcelNotHere:
		return "not-here"
	case ParcelRefused:
		return "refused"
	}
	return fmt.Sprintf("parcel-state-%d", uint8(s))
}

// ParcelResult tells a parcel's sender what one supernode did with it. It
// travels back to To (the sender) through Via (the sender's supernode, the
// parcel's FromVia).
type ParcelResult struct {
	ID     MsgID           `cbor:"1,keyasint"`
	To     identity.NodeID `cbor:"2,keyasint"`
	Via    identity.NodeID `cbor:"3,keyasint,omitempty"`
	From   identity.NodeID `cbor:"4,keyasint"` // the supernode that answers
	State  ParcelState     `cbor:"5,keyasint"`
	Reason string          `cbor:"6,keyasint,omitempty"`
}

// MailAck tells the supernodes in Via that From (stamped by its own
// supernode) has taken the stored parcels IDs: they forget them.
type MailAck struct {
	From identity.NodeID   `cbor:"1,keyasint"`
	Via  []identity.NodeID `cbor:"2,keyasint,omitempty"`
	IDs  []MsgID           `cbor:"3,keyasint"`
}

// MailFetch asks the supernodes in Via for the parcels they hold for From,
// to be sent as parcels through FromVia (both stamped by From's own
// supernode). A supernode pushes a leaf's mail by itself when the leaf
// attaches; MailFetch reaches the supernodes a leaf was attached to before.
type MailFetch struct {
	From    identity.NodeID   `cbor:"1,keyasint"`
	FromVia []identity.NodeID `cbor:"2,keyasint,omitempty"`
	Via     []identity.NodeID `cbor:"3,keyasint"`
}

// Status is what a person says about themselves.
type Status uint8

// Statuses. StatusOffline is never published: it is what a viewer sees of
// a person who is not online, invisible, or appearing offline to it.
const (
	StatusOffline   Status = 0
	StatusOnline    Status = 1
	StatusAway      Status = 2
	StatusBusy      Status = 3
	StatusInvisible Status = 4
)

// String names the status as the CLI and API spell it.
func (s Status) String() string {
	switch s {
	case StatusOffline:
		return "offline"
	case StatusOnline:
		return "online"
	case StatusAway:
		return "away"
	case StatusBusy:
		return "busy"
	case StatusInvisible:
		return "invisible"
	}
	return fmt.Sprintf("status-%d", uint8(s))
}

// ParseStatus parses a status a user may set: online, away, busy or
// invisible.
func ParseStatus(s string) (Status, error) {
	for _, st := range []Status{StatusOnline, StatusAway, StatusBusy, StatusInvisible} {
		if st.String() == s {
			return st, nil
		}
	}
	return 0, fmt.Errorf("%w: status %q is not online, away, busy or invisible", ErrPeople, s)
}

// PresenceRecord is a leaf's presence, signed by the leaf, held by its
// supernodes and shown to the contacts it allows. Seq grows with every
// record the leaf makes (across restarts: it is kept in its database), so
// that a viewer keeps the newest and a replayed older record changes
// nothing. Time and Valid bound how long the record may be shown at all:
// a record that nobody renewed, or that a holder replays to a viewer who
// never saw a newer one, is offline once Valid has passed since Time.
type PresenceRecord struct {
	Node   identity.NodeID `cbor:"1,keyasint"`
	Status Status          `cbor:"2,keyasint"`
	Text   string          `cbor:"3,keyasint,omitempty"`
	Nick   string          `cbor:"4,keyasint,omitempty"`
	Seq    uint64          `cbor:"5,keyasint"`
	Time   int64           `cbor:"6,keyasint"` // Unix milliseconds
	// Supernodes are those the leaf is attached to: where the record is
	// held, and where a parcel reaches it.
	Supernodes []identity.NodeID `cbor:"7,keyasint,omitempty"`
	PubKey     []byte            `cbor:"8,keyasint"`
	Sig        []byte            `cbor:"9,keyasint,omitempty"`
	// Valid is how long the record holds from Time, in milliseconds, at
	// most MaxPresenceValid (0: DefaultPresenceValid).
	Valid int64 `cbor:"10,keyasint,omitempty"`
}

// Validity is how long the record holds from its issue time.
func (r *PresenceRecord) Validity() time.Duration {
	if r.Valid == 0 {
		return DefaultPresenceValid
	}
	return time.Duration(r.Valid) * time.Millisecond
}

// Issued is the record's issue time, by its owner's clock.
func (r *PresenceRecord) Issued() time.Time { return time.UnixMilli(r.Time) }

// presenceContext is the Ed25519ctx context of presence signatures.
const presenceContext = "canopy presence v1"

// SignedBytes is what the record's signature covers: the deterministic
// encoding of the record without its signature.
func (r *PresenceRecord) SignedBytes() []byte {
	c := *r
	c.Sig = nil
	b, err := encMode.Marshal(&c)
	if err != nil {
		panic(fmt.Sprintf("wire: encode presence: %v", err)) // a fixed struct always encodes
	}
	return b
}

// SignPresence signs r as id (setting Node and PubKey).
func SignPresence(id *identity.Identity, r *PresenceRecord) error {
	r.Node, r.PubKey = id.ID, append([]byte(nil), id.Public...)
	sig, err := id.SignContext(presenceContext, r.SignedBytes())
	if err != nil {
		return err
	}
	r.Sig = sig
	return nil
}

// Check checks a record's bounds and signature: it is Node's, unaltered.
func (r *PresenceRecord) Check() error {
	switch {
	case r.Status == StatusOffline || r.Status > StatusInvisible:
		return fmt.Errorf("%w: presence status %d", ErrPeople, r.Status)
	case len(r.Text) > MaxStatusText || !utf8.ValidString(r.Text):
		return fmt.Errorf("%w: presence text of %d bytes (limit %d, UTF-8)", ErrPeople, len(r.Text), MaxStatusText)
	case len(r.Nick) > MaxNickname || !utf8.ValidString(r.Nick):
		return fmt.Errorf("%w: nickname of %d bytes (limit %d, UTF-8)", ErrPeople, len(r.Nick), MaxNickname)
	case len(r.Supernodes) > MaxVia:
		return fmt.Errorf("%w: presence names %d supernodes (limit %d)", ErrPeople, len(r.Supernodes), MaxVia)
	case r.Valid < 0 || r.Valid > MaxPresenceValid.Milliseconds():
		return fmt.Errorf("%w: presence valid for %d ms (limit %v)", ErrPeople, r.Valid, MaxPresenceValid)
	}
	if err := identity.VerifyContext(r.Node, r.PubKey, presenceContext, r.SignedBytes(), r.Sig); err != nil {
		return fmt.Errorf("%w: presence: %w", ErrPeople, err)
	}
	return nil
}

// PresencePublish gives a leaf's supernode its current record and the
// contacts allowed to see it. Only they get the record; everyone else who
// subscribes is told "offline", the same answer as for a node that is not
// online, so a stranger learns nothing. A leaf that is invisible, or
// appears offline to a contact, leaves them out of Allowed. The leaf sends
// it again every few seconds (people.DefaultPublishInterval): a holder that
// hears nothing for people.DefaultPresenceTTL reports the leaf offline.
type PresencePublish struct {
	Record  PresenceRecord    `cbor:"1,keyasint"`
	Allowed []identity.NodeID `cbor:"2,keyasint,omitempty"`
	// Discoverable lets a holder answer a Locate for the leaf from anyone
	// (which a stranger's contact request needs), not only from the
	// Allowed: a stranger then learns that the leaf is attached and where,
	// never its status, text or nickname. An invisible leaf is not
	// discoverable.
	Discoverable bool `cbor:"3,keyasint,omitempty"`
}

// CheckPublish checks a publish: a valid record of the publishing node and
// a bounded list of viewers.
func CheckPublish(p *PresencePublish, from identity.NodeID) error {
	if p.Record.Node != from {
		return fmt.Errorf("%w: presence of %s published by %s", ErrPeople, p.Record.Node.Short(), from.Short())
	}
	if len(p.Allowed) > MaxAllowed {
		return fmt.Errorf("%w: %d viewers exceed %d", ErrPeople, len(p.Allowed), MaxAllowed)
	}
	return p.Record.Check()
}

// PresenceTarget names a node whose presence a leaf wants, and the
// supernodes it was last seen at.
type PresenceTarget struct {
	Node identity.NodeID   `cbor:"1,keyasint"`
	Via  []identity.NodeID `cbor:"2,keyasint,omitempty"`
}

// PresenceSubscribe asks for the presence of Targets. From a leaf to its
// supernode it may name up to MaxSubscribe targets; the supernode stamps
// From and FromVia and sends each holder the targets it holds. A holder
// answers at once and on every change until the subscription lapses
// (people.DefaultSubscriptionTTL; the leaf renews it before).
type PresenceSubscribe struct {
	From    identity.NodeID   `cbor:"1,keyasint"`
	FromVia []identity.NodeID `cbor:"2,keyasint,omitempty"`
	Targets []PresenceTarget  `cbor:"3,keyasint"`
}

// CheckSubscribe checks a subscription's bounds.
func CheckSubscribe(s *PresenceSubscribe) error {
	if len(s.Targets) > MaxSubscribe || len(s.FromVia) > MaxVia {
		return fmt.Errorf("%w: subscription of %d targets (limit %d)", ErrPeople, len(s.Targets), MaxSubscribe)
	}
	for _, t := range s.Targets {
		if len(t.Via) > MaxVia {
			return fmt.Errorf("%w: target with %d supernodes (limit %d)", ErrPeople, len(t.Via), MaxVia)
		}
	}
	return nil
}

// PresenceNotify is a holder's word on Node's presence for the subscriber
// To, through To's supernode Via: the record when To may see it, else no
// record ("offline").
type PresenceNotify struct {
	Node   identity.NodeID `cbor:"1,keyasint"`
	To     identity.NodeID `cbor:"2,keyasint"`
	Via    identity.NodeID `cbor:"3,keyasint,omitempty"`
	From   identity.NodeID `cbor:"4,keyasint"` // the holder
	Record *PresenceRecord `cbor:"5,keyasint,omitempty"`
}

// Locate asks which supernodes Node is attached to. It travels like a
// Query (same TTL, routing and seen table); a supernode Node is attached to
// answers with a QueryHit of one Hit (zero ID) whose Source is Node via
// itself.
type Locate struct {
	Node identity.NodeID `cbor:"1,keyasint"`
	// From is the asking leaf, stamped by its supernode: a holder answers
	// only when its leaf is discoverable or allows From.
	From identity.NodeID `cbor:"2,keyasint,omitempty"`
}

// LetterKind says what a letter is.
type LetterKind uint8

// Letter kinds.
const (
	LetterRequest LetterKind = 1 // a contact request: Nick, Text, BoxKey
	LetterAccept  LetterKind = 2 // the request is accepted: Nick, BoxKey
	LetterRemove  LetterKind = 3 // the sender ended the contact
	LetterMessage LetterKind = 4 // a message: Text, Seq
	LetterReceipt LetterKind = 5 // the sender's node has these messages (Refs)
)

// Letter is what one person's node says to another's, signed by the sender
// and sealed in a Parcel (in a box to the recipient's key, except a contact
// request, whose recipient's key the sender does not know yet).
type Letter struct {
	Kind LetterKind      `cbor:"1,keyasint"`
	From identity.NodeID `cbor:"2,keyasint"`
	To   identity.NodeID `cbor:"3,keyasint"`
	// ID is the letter's own ID (a message's, for receipts and dedupe).
	ID   MsgID  `cbor:"4,keyasint"`
	Time int64  `cbor:"5,keyasint"` // Unix milliseconds, at the sender
	Nick string `cbor:"6,keyasint,omitempty"`
	Text string `cbor:"7,keyasint,omitempty"`
	// Seq orders a sender's messages to one recipient.
	Seq  uint64  `cbor:"8,keyasint,omitempty"`
	Refs []MsgID `cbor:"9,keyasint,omitempty"`
	// BoxKey is the sender's X25519 public key, in requests and accepts.
	BoxKey []byte `cbor:"10,keyasint,omitempty"`
	// Supernodes are the sender's supernodes now, for the answer.
	Supernodes []identity.NodeID `cbor:"11,keyasint,omitempty"`
	PubKey     []byte            `cbor:"12,keyasint"`
	Sig        []byte            `cbor:"13,keyasint,omitempty"`
}

const letterContext = "canopy letter v1"

// SignedBytes is what the letter's signature covers.
func (l *Letter) SignedBytes() []byte {
	c := *l
	c.Sig = nil
	b, err := encMode.Marshal(&c)
	if err != nil {
		panic(fmt.Sprintf("wire: encode letter: %v", err))
	}
	return b
}

// SignLetter signs l as id (setting From and PubKey).
func SignLetter(id *identity.Identity, l *Letter) error {
	l.From, l.PubKey = id.ID, append([]byte(nil), id.Public...)
	sig, err := id.SignContext(letterContext, l.SignedBytes())
	if err != nil {
		return err
	}
	l.Sig = sig
	return nil
}

// Check checks a letter's bounds and signature.
func (l *Letter) Check() error {
	text := MaxMessageText
	if l.Kind == LetterRequest {
		text = MaxRequestText
	}
	switch {
	case l.Kind < LetterRequest || l.Kind > LetterReceipt:
		return fmt.Errorf("%w: letter kind %d", ErrPeople, l.Kind)
	case len(l.Text) > text || !utf8.ValidString(l.Text):
		return fmt.Errorf("%w: %d bytes of text (limit %d, UTF-8)", ErrPeople, len(l.Text), text)
	case len(l.Nick) > MaxNickname || !utf8.ValidString(l.Nick):
		return fmt.Errorf("%w: nickname of %d bytes (limit %d)", ErrPeople, len(l.Nick), MaxNickname)
	case len(l.Refs) > MaxMailAck:
		return fmt.Errorf("%w: receipt for %d messages (limit %d)", ErrPeople, len(l.Refs), MaxMailAck)
	case len(l.Supernodes) > MaxVia:
		return fmt.Errorf("%w: letter names %d supernodes", ErrPeople, len(l.Supernodes))
	case len(l.BoxKey) != 0 && len(l.BoxKey) != 32:
		return fmt.Errorf("%w: box key of %d bytes", ErrPeople, len(l.BoxKey))
	case (l.Kind == LetterRequest || l.Kind == LetterAccept) && len(l.BoxKey) != 32:
		return fmt.Errorf("%w: %s without a box key", ErrPeople, l.Kind)
	}
	if err := identity.VerifyContext(l.From, l.PubKey, letterContext, l.SignedBytes(), l.Sig); err != nil {
		return fmt.Errorf("%w: letter: %w", ErrPeople, err)
	}
	return nil
}

func (k LetterKind) String() string {
	switch k {
	case LetterRequest:
		return "request"
	case LetterAccept:
		return "accept"
	case LetterRemove:
		return "remove"
	case LetterMessage:
		return "message"
	case LetterReceipt:
		return "receipt"
	}
	return fmt.Sprintf("letter-%d", uint8(k))
}

// EncodeLetter encodes a letter deterministically, for sealing.
func EncodeLetter(l *Letter) ([]byte, error) { return encMode.Marshal(l) }

// DecodeLetter decodes a letter with the bounded decoder; it does not
// check it (Letter.Check).
func DecodeLetter(b []byte) (Letter, error) {
	var l Letter
	if len(b) > MaxSealed {
		return l, fmt.Errorf("%w: letter of %d bytes", ErrTooLarge, len(b))
	}
	if err := decMode.Unmarshal(b, &l); err != nil {
		return l, fmt.Errorf("%w: letter: %v", ErrMalformed, err)
	}
	return l, nil
}
