package supernode

import (
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/link"
	"github.com/canopy-p2p/canopy/routing"
	"github.com/canopy-p2p/canopy/wire"
)

// The people protocol on the supernode (docs/protocol.md, "People"): it
// relays parcels between leaves, keeps the parcels of leaves that are
// offline (the mailbox), holds its leaves' presence records and tells the
// subscribers each leaf allows, and answers Locate. None of it reads what
// people say: letters travel sealed.
//
// All of it lives in memory and goes with the supernode. That is safe
// because a sender keeps every message it sent until the recipient's
// receipt arrives (people.Service): a mailbox lost with its supernode is
// filled again when the sender next finds the recipient's supernodes.

// Defaults of the people protocol on a supernode.
const (
	// DefaultPresenceTTL is how long a held presence record stays without
	// the leaf publishing it again (leaves republish every 5 s,
	// people.DefaultPublishInterval): a leaf that vanished without its link
	// closing (a network cut) shows offline within it, not after the link's
	// 60 s idle timeout.
	DefaultPresenceTTL = 15 * time.Second
	// DefaultSubscriptionTTL is how long a subscription lasts unless the
	// subscriber renews it (leaves renew every 10 s).
	DefaultSubscriptionTTL = 30 * time.Second
	// DefaultMailExpiry is how long a stored parcel is kept for its
	// recipient: 7 days (RetroShare keeps distant mail 48 h; a person who
	// is away for a long weekend still gets their messages). The sender
	// keeps its copy longer and re-stores it if it is lost.
	DefaultMailExpiry = 7 * 24 * time.Hour
	// DefaultMailPerRecipient and DefaultMailBytesPerRecipient bound one
	// recipient's mailbox; DefaultMailPerSender the parcels one sender has
	// in all the mailboxes here; DefaultMailBytes the whole store. A full
	// store refuses new parcels ("recipient's store is full") and never
	// drops old ones.
	DefaultMailPerRecipient      = 500
	DefaultMailBytesPerRecipient = 2 << 20
	DefaultMailPerSender         = 200
	DefaultMailBytes             = 64 << 20
	// maxSubsPerTarget and maxSubs bound the subscriptions held.
	maxSubsPerTarget = 2 * wire.MaxAllowed
	maxSubs          = 200_000
	// maxPeoplePending bounds the people messages waiting for a link to one
	// member being dialled.
	maxPeoplePending = 64
	// Per leaf: parcels (messages, receipts, requests) 20/s, burst 100 (a
	// client catching up after a restart); subscriptions and locates 2/s,
	// burst 20; publishes 2/s, burst 10.
	parcelRate, parcelBurst       rate.Limit = 20, 100
	subscribeRate, subscribeBurst rate.Limit = 2, 20
	publishRate, publishBurst     rate.Limit = 2, 10
)

// PeopleStats counts what the people protocol did on this supernode.
type PeopleStats struct {
	ParcelsRelayed, ParcelsStored, ParcelsRefused, ParcelsLimited uint64
	MailHeld, MailBytes                                           int
	MailAcked, MailExpired                                        uint64
	PresenceHeld, Subscriptions                                   int
	NotifiesSent, PublishesRefused, LocatesAnswered               uint64
	// Malformed counts people messages refused for their content (bounds,
	// signatures), each logged at most once per 10 s.
	Malformed uint64
	// ParcelsRefused by reason: the recipient's mailbox full, the
	// sender's quota full, the whole store full (the quotas), a supernode
	// named that is not in the ring. ParcelsLimited are those refused for
	// the sender's rate.
	RefusedRecipientFull, RefusedSenderQuota, RefusedStoreFull, RefusedNoRoute uint64
}

type heldPresence struct {
	rec          wire.PresenceRecord
	allowed      map[identity.NodeID]bool
	discoverable bool
	heard        time.Time
}

type subscription struct {
	via     identity.NodeID // the subscriber's supernode
	expires time.Time
	// shown is whether the last notify carried the record, and last
	// which.
	shown bool
	last  wire.PresenceRecord
}

type storedParcel struct {
	p      wire.Parcel
	size   int
	stored time.Time
}

type peopleLimits struct {
	parcels, subscribes, publishes *rate.Limiter
}

type peopleState struct {
	mu       sync.Mutex
	presence map[identity.NodeID]*heldPresence
	subs     map[identity.NodeID]map[identity.NodeID]*subscription // target → subscriber
	nsubs    int
	mail     map[identity.NodeID][]*storedParcel // recipient → parcels, oldest first
	mailB    map[identity.NodeID]int
	bySender map[identity.NodeID]int
	total    int
	limits   map[identity.NodeID]*peopleLimits
	dialing  map[identity.NodeID][]wire.Envelope
	stats    PeopleStats
}

func newPeopleState() *peopleState {
	return &peopleState{
		presence: make(map[identity.NodeID]*heldPresence),
		subs:     make(map[identity.NodeID]map[identity.NodeID]*subscription),
		mail:     make(map[identity.NodeID][]*storedParcel),
		mailB:    make(map[identity.NodeID]int),
		bySender: make(map[identity.NodeID]int),
		limits:   make(map[identity.NodeID]*peopleLimits),
		dialing:  make(map[identity.NodeID][]wire.Envelope),
	}
}

// PeopleStats returns a copy of the people counters.
func (s *Supernode) PeopleStats() PeopleStats {
	p := s.people
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.stats
	st.MailBytes = p.total
	st.PresenceHeld = len(p.presence)
	st.Subscriptions = p.nsubs
	n := 0
	for _, m := range p.mail {
		n += len(m)
	}
	st.MailHeld = n
	return st
}

// HoldsPresence reports whether the supernode holds id's presence record.
func (s *Supernode) HoldsPresence(id identity.NodeID) bool {
	s.people.mu.Lock()
	defer s.people.mu.Unlock()
	return s.people.presence[id] != nil
}

func (s *Supernode) peopleLimitsFor(leaf identity.NodeID) *peopleLimits {
	p := s.people
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.limits[leaf]
	if l == nil {
		l = &peopleLimits{
			parcels:    rate.NewLimiter(parcelRate, int(parcelBurst)),
			subscribes: rate.NewLimiter(subscribeRate, int(subscribeBurst)),
			publishes:  rate.NewLimiter(publishRate, int(publishBurst)),
		}
		p.limits[leaf] = l
	}
	return l
}

// refusePeople counts and logs (paced) a people message refused for its
// content. The link stays: a bad letter costs only itself.
func (s *Supernode) refusePeople(from identity.NodeID, what string, err error) {
	s.people.mu.Lock()
	s.people.stats.Malformed++
	s.people.mu.Unlock()
	if ok, held := s.lines.Allow("people", time.Now()); ok {
		s.log.Warn("people message refused", zap.String("from", from.Short()), zap.String("what", what),
			zap.Error(err), zap.Uint64("lines_held_back", held))
	}
}

// peopleFromLeaf handles a people message on a leaf's link. It reports
// handled false for a type that is not one.
func (s *Supernode) peopleFromLeaf(l *leafSlot, e wire.Envelope) (handled bool, err error) {
	from := l.conn.Peer()
	switch e.Type {
	case wire.TypeParcel:
		var p wire.Parcel
		if err := e.Decode(&p); err != nil {
			return true, err
		}
		if err := wire.CheckParcel(&p); err != nil {
			s.refusePeople(from, "parcel", err)
			return true, nil
		}
		p.From = from
		p.FromVia = []identity.NodeID{s.id}
		if !s.peopleLimitsFor(from).parcels.Allow() {
			s.people.mu.Lock()
			s.people.stats.ParcelsLimited++
			s.people.mu.Unlock()
			s.parcelResult(p, wire.ParcelRefused, "rate limit: too many parcels, try again in a moment")
			s.paceRefusal(l)
			return true, nil
		}
		s.parcel(p, true)
	case wire.TypeMailAck:
		var a wire.MailAck
		if err := e.Decode(&a); err != nil {
			return true, err
		}
		if len(a.IDs) > wire.MaxMailAck || len(a.Via) > wire.MaxVia {
			s.refusePeople(from, "mail ack", wire.ErrPeople)
			return true, nil
		}
		a.From = from
		s.mailAcked(a.From, a.IDs)
		for _, v := range a.Via {
			if v != s.id {
				s.toMember(v, wire.TypeMailAck, &a)
			}
		}
	case wire.TypeMailFetch:
		var f wire.MailFetch
		if err := e.Decode(&f); err != nil {
			return true, err
		}
		if len(f.Via) > wire.MaxVia {
			s.refusePeople(from, "mail fetch", wire.ErrPeople)
			return true, nil
		}
		if !s.peopleLimitsFor(from).subscribes.Allow() {
			return true, nil
		}
		f.From, f.FromVia = from, []identity.NodeID{s.id}
		for _, v := range f.Via {
			if v == s.id {
				s.pushMail(from, s.id)
			} else {
				s.toMember(v, wire.TypeMailFetch, &f)
			}
		}
	case wire.TypePresencePublish:
		var p wire.PresencePublish
		if err := e.Decode(&p); err != nil {
			return true, err
		}
		if !s.peopleLimitsFor(from).publishes.Allow() {
			return true, nil
		}
		if err := wire.CheckPublish(&p, from); err != nil {
			s.people.mu.Lock()
			s.people.stats.PublishesRefused++
			s.people.mu.Unlock()
			s.refusePeople(from, "presence", err)
			return true, nil
		}
		s.publish(p, time.Now())
	case wire.TypePresenceSubscribe:
		var sub wire.PresenceSubscribe
		if err := e.Decode(&sub); err != nil {
			return true, err
		}
		if err := wire.CheckSubscribe(&sub); err != nil {
			s.refusePeople(from, "subscription", err)
			return true, nil
		}
		if !s.peopleLimitsFor(from).subscribes.Allow() {
			return true, nil
		}
		s.subscribeFromLeaf(from, sub)
	case wire.TypeLocate:
		var q wire.Locate
		if err := e.Decode(&q); err != nil {
			return true, err
		}
		if !s.peopleLimitsFor(from).subscribes.Allow() {
			return true, nil
		}
		q.From = from
		e.TTL, e.Hops = routing.OriginTTL(s.cfg.Routing, s.cfg.View, len(s.ring.Members())), 0
		s.locate(e, q, route{leaf: from})
	default:
		return false, nil
	}
	return true, nil
}

// peopleFromPeer handles a people message a ring member relayed.
func (s *Supernode) peopleFromPeer(c *link.Conn, e wire.Envelope) (handled bool, err error) {
	switch e.Type {
	case wire.TypeParcel:
		var p wire.Parcel
		if err := e.Decode(&p); err != nil {
			return true, err
		}
		if err := wire.CheckParcel(&p); err != nil {
			s.refusePeople(c.Peer(), "parcel", err)
			return true, nil
		}
		s.parcel(p, false)
	case wire.TypeParcelResult:
		var r wire.ParcelResult
		if err := e.Decode(&r); err != nil {
			return true, err
		}
		s.toLeaf(r.To, wire.TypeParcelResult, &r)
	case wire.TypeMailAck:
		var a wire.MailAck
		if err := e.Decode(&a); err != nil {
			return true, err
		}
		if len(a.IDs) <= wire.MaxMailAck {
			s.mailAcked(a.From, a.IDs)
		}
	case wire.TypeMailFetch:
		var f wire.MailFetch
		if err := e.Decode(&f); err != nil {
			return true, err
		}
		if len(f.FromVia) > 0 {
			s.pushMail(f.From, f.FromVia[0])
		}
	case wire.TypePresenceSubscribe:
		var sub wire.PresenceSubscribe
		if err := e.Decode(&sub); err != nil {
			return true, err
		}
		if err := wire.CheckSubscribe(&sub); err != nil || len(sub.FromVia) == 0 {
			s.refusePeople(c.Peer(), "subscription", wire.ErrPeople)
			return true, nil
		}
		s.subscribe(sub.From, sub.FromVia[0], sub.Targets, time.Now())
	case wire.TypePresenceNotify:
		var n wire.PresenceNotify
		if err := e.Decode(&n); err != nil {
			return true, err
		}
		if n.Record != nil {
			if err := n.Record.Check(); err != nil || n.Record.Node != n.Node {
				s.refusePeople(c.Peer(), "presence notify", err)
				return true, nil
			}
		}
		s.toLeaf(n.To, wire.TypePresenceNotify, &n)
	case wire.TypeLocate:
		var q wire.Locate
		if err := e.Decode(&q); err != nil {
			return true, err
		}
		s.locate(e, q, route{peer: c.Peer()})
	default:
		return false, nil
	}
	return true, nil
}

// parcel delivers, stores or relays a parcel. fromLeaf says it came from
// the sender's own link (its supernode relays it on); a parcel from a peer
// is handled here or answered "not here".
func (s *Supernode) parcel(p wire.Parcel, fromLeaf bool) {
	here := s.attached(p.To)
	named := slices.Contains(p.Via, s.id)
	switch {
	case p.Store && (named || (here && fromLeaf)):
		if reason := s.storeParcel(p, time.Now()); reason != "" {
			s.parcelResult(p, wire.ParcelRefused, reason)
			return
		}
		s.parcelResult(p, wire.ParcelStored, "")
		if here {
			s.toLeaf(p.To, wire.TypeParcel, &p)
		}
		if !fromLeaf {
			return
		}
	case here:
		if s.toLeaf(p.To, wire.TypeParcel, &p) {
			s.parcelResult(p, wire.ParcelHanded, "")
		} else {
			s.parcelResult(p, wire.ParcelNotHere, "the recipient's link is closing")
		}
		return
	case !fromLeaf:
		s.parcelResult(p, wire.ParcelNotHere, "")
		return
	}
	sent := 0
	for _, v := range p.Via {
		if v == s.id {
			continue
		}
		if s.toMember(v, wire.TypeParcel, &p) {
			sent++
		} else {
			s.people.mu.Lock()
			s.people.stats.RefusedNoRoute++
			s.people.mu.Unlock()
			s.parcelResult(p, wire.ParcelRefused, "supernode "+v.Short()+" is not in the ring")
		}
	}
	s.people.mu.Lock()
	s.people.stats.ParcelsRelayed += uint64(sent)
	s.people.mu.Unlock()
	switch {
	case named && !p.Store && !here:
		// Named, but the recipient is not attached here (any more).
		s.parcelResult(p, wire.ParcelNotHere, "")
	case sent == 0 && !named && !(p.Store && here):
		s.parcelResult(p, wire.ParcelNotHere, "no supernode of the recipient's is known")
	}
}

// parcelResult tells p's sender what this supernode did with it.
func (s *Supernode) parcelResult(p wire.Parcel, st wire.ParcelState, reason string) {
	r := wire.ParcelResult{ID: p.ID, To: p.From, From: s.id, State: st, Reason: reason}
	if len(p.FromVia) > 0 {
		r.Via = p.FromVia[0]
	}
	if st == wire.ParcelRefused {
		s.people.mu.Lock()
		s.people.stats.ParcelsRefused++
		s.people.mu.Unlock()
	}
	if r.Via == s.id || r.Via.IsZero() {
		s.toLeaf(r.To, wire.TypeParcelResult, &r)
		return
	}
	s.toMember(r.Via, wire.TypeParcelResult, &r)
}

// storeParcel keeps p in its recipient's mailbox, or says why not. A parcel
// already held (same ID and sender) is stored once.
func (s *Supernode) storeParcel(p wire.Parcel, now time.Time) string {
	ps := s.people
	size := len(p.Sealed) + 64*(2+len(p.Via)+len(p.FromVia))
	ps.mu.Lock()
	defer ps.mu.Unlock()
	box := ps.mail[p.To]
	for _, m := range box {
		if m.p.ID == p.ID && m.p.From == p.From {
			return ""
		}
	}
	switch {
	case len(box) >= DefaultMailPerRecipient || ps.mailB[p.To]+size > DefaultMailBytesPerRecipient:
		ps.stats.RefusedRecipientFull++
		return "recipient's store is full"
	case ps.bySender[p.From] >= DefaultMailPerSender:
		ps.stats.RefusedSenderQuota++
		return "sender's quota at the recipient's supernode is full"
	case ps.total+size > DefaultMailBytes:
		ps.stats.RefusedStoreFull++
		return "recipient's store is full (the supernode's store is full)"
	}
	ps.mail[p.To] = append(box, &storedParcel{p: p, size: size, stored: now})
	ps.mailB[p.To] += size
	ps.bySender[p.From]++
	ps.total += size
	ps.stats.ParcelsStored++
	return ""
}

// mailAcked forgets the parcels ids of owner's mailbox.
func (s *Supernode) mailAcked(owner identity.NodeID, ids []wire.MsgID) {
	ps := s.people
	ps.mu.Lock()
	defer ps.mu.Unlock()
	box := ps.mail[owner]
	kept := box[:0]
	for _, m := range box {
		if slices.Contains(ids, m.p.ID) {
			ps.dropMailLocked(owner, m)
			ps.stats.MailAcked++
			continue
		}
		kept = append(kept, m)
	}
	ps.setBoxLocked(owner, kept)
}

func (ps *peopleState) dropMailLocked(owner identity.NodeID, m *storedParcel) {
	ps.mailB[owner] -= m.size
	ps.total -= m.size
	if ps.bySender[m.p.From]--; ps.bySender[m.p.From] <= 0 {
		delete(ps.bySender, m.p.From)
	}
}

func (ps *peopleState) setBoxLocked(owner identity.NodeID, box []*storedParcel) {
	if len(box) == 0 {
		delete(ps.mail, owner)
		delete(ps.mailB, owner)
		return
	}
	ps.mail[owner] = box
}

// pushMail sends owner's stored parcels to it: over its link when it is
// attached here (via is this supernode), else to its supernode via. They
// stay stored until the owner's MailAck.
func (s *Supernode) pushMail(owner, via identity.NodeID) {
	ps := s.people
	ps.mu.Lock()
	box := make([]wire.Parcel, 0, len(ps.mail[owner]))
	for _, m := range ps.mail[owner] {
		box = append(box, m.p)
	}
	ps.mu.Unlock()
	for i := range box {
		if via == s.id {
			s.toLeaf(owner, wire.TypeParcel, &box[i])
		} else {
			s.toMember(via, wire.TypeParcel, &box[i])
		}
	}
}

// publish holds a leaf's presence record and tells its subscribers what
// changed for them.
func (s *Supernode) publish(p wire.PresencePublish, now time.Time) {
	ps := s.people
	allowed := make(map[identity.NodeID]bool, len(p.Allowed))
	for _, id := range p.Allowed {
		allowed[id] = true
	}
	node := p.Record.Node
	ps.mu.Lock()
	if old := ps.presence[node]; old != nil && old.rec.Seq > p.Record.Seq {
		// A replayed or reordered older record changes nothing.
		old.heard = now
		ps.mu.Unlock()
		return
	}
	ps.presence[node] = &heldPresence{rec: p.Record, allowed: allowed, discoverable: p.Discoverable, heard: now}
	ps.mu.Unlock()
	s.notifySubscribers(node, now)
}

// notifySubscribers sends node's subscribers a notify where what they may
// see changed since the last one.
func (s *Supernode) notifySubscribers(node identity.NodeID, now time.Time) {
	ps := s.people
	var out []wire.PresenceNotify
	ps.mu.Lock()
	h := ps.presence[node]
	for sub, st := range ps.subs[node] {
		n, changed := notifyLocked(s.id, node, sub, st, h)
		if changed {
			out = append(out, n)
		}
	}
	ps.stats.NotifiesSent += uint64(len(out))
	ps.mu.Unlock()
	for i := range out {
		s.sendNotify(out[i])
	}
}

// notifyLocked makes the notify subscriber sub should get of node's held
// presence h (nil: none) and reports whether it differs from the last one
// it got.
func notifyLocked(self, node, sub identity.NodeID, st *subscription, h *heldPresence) (wire.PresenceNotify, bool) {
	n := wire.PresenceNotify{Node: node, To: sub, Via: st.via, From: self}
	show := h != nil && h.allowed[sub]
	if show {
		rec := h.rec
		n.Record = &rec
	}
	// A record that says what the last one said (its owner signs a new
	// one every 20 s so that it stays valid) is no change: the
	// subscriber gets it with the answer to its next renewal, within
	// 10 s, well inside the record's validity. Pushing it too would
	// add a notify per contact every 20 s.
	changed := show != st.shown || (show && !sameSaying(&h.rec, &st.last))
	st.shown = show
	if show {
		st.last = h.rec
	}
	return n, changed
}

// sameSaying reports whether two records of one node say the same:
// status, text, nickname and supernodes.
func sameSaying(a, b *wire.PresenceRecord) bool {
	return a.Status == b.Status && a.Text == b.Text && a.Nick == b.Nick && slices.Equal(a.Supernodes, b.Supernodes)
}

func (s *Supernode) sendNotify(n wire.PresenceNotify) {
	if n.Via == s.id {
		s.toLeaf(n.To, wire.TypePresenceNotify, &n)
		return
	}
	s.toMember(n.Via, wire.TypePresenceNotify, &n)
}

// subscribeFromLeaf takes a leaf's subscription: targets held here are
// subscribed here, the others at the supernodes the leaf names for them.
func (s *Supernode) subscribeFromLeaf(from identity.NodeID, sub wire.PresenceSubscribe) {
	now := time.Now()
	byVia := make(map[identity.NodeID][]wire.PresenceTarget)
	var local []wire.PresenceTarget
	for _, t := range sub.Targets {
		if t.Node == from || t.Node.IsZero() {
			continue
		}
		for _, v := range t.Via {
			if v == s.id {
				local = append(local, t)
			} else if len(byVia[v]) < wire.MaxSubscribe {
				byVia[v] = append(byVia[v], wire.PresenceTarget{Node: t.Node})
			}
		}
	}
	if len(local) > 0 {
		s.subscribe(from, s.id, local, now)
	}
	for v, ts := range byVia {
		s.toMember(v, wire.TypePresenceSubscribe, &wire.PresenceSubscribe{From: from, FromVia: []identity.NodeID{s.id}, Targets: ts})
	}
}

// subscribe registers (or renews) sub's subscriptions to targets, answered
// through via, and answers each at once.
func (s *Supernode) subscribe(sub, via identity.NodeID, targets []wire.PresenceTarget, now time.Time) {
	ps := s.people
	var out []wire.PresenceNotify
	ps.mu.Lock()
	for _, t := range targets {
		set := ps.subs[t.Node]
		st := set[sub]
		if st == nil {
			if len(set) >= maxSubsPerTarget || ps.nsubs >= maxSubs {
				continue
			}
			if set == nil {
				set = make(map[identity.NodeID]*subscription)
				ps.subs[t.Node] = set
			}
			st = &subscription{}
			set[sub] = st
			ps.nsubs++
		}
		st.via, st.expires = via, now.Add(DefaultSubscriptionTTL)
		// Every subscription is answered, a renewal too: the subscriber
		// counts a holder that stops answering as gone.
		n, _ := notifyLocked(s.id, t.Node, sub, st, ps.presence[t.Node])
		out = append(out, n)
	}
	ps.stats.NotifiesSent += uint64(len(out))
	ps.mu.Unlock()
	for i := range out {
		s.sendNotify(out[i])
	}
}

// locate answers and forwards a Locate, as query does a Query.
func (s *Supernode) locate(e wire.Envelope, q wire.Locate, from route) {
	if !s.seen.add(e.ID, from, time.Now()) {
		return
	}
	ps := s.people
	ps.mu.Lock()
	h := ps.presence[q.Node]
	answer := h != nil && (h.discoverable || h.allowed[q.From])
	if answer {
		ps.stats.LocatesAnswered++
	}
	ps.mu.Unlock()
	answer = answer && s.attached(q.Node)
	if answer {
		qh, err := wire.New(wire.TypeQueryHit, &wire.QueryHit{From: s.id, Hits: []wire.Hit{{
			Sources: []wire.Source{{Node: q.Node, Via: []identity.NodeID{s.id}}}}}})
		if err == nil {
			qh.ID = e.ID
			s.sendBack(from, qh)
		}
	}
	d := routing.Forward(s.cfg.Routing, routing.Query{TTL: e.TTL, From: from.peer}, s.routingPeers())
	for _, t := range d.Targets {
		if c := s.peerLink(t); c != nil {
			fwd := e
			fwd.TTL, fwd.Hops = d.TTL, e.Hops+1
			_ = c.Send(fwd)
		}
	}
}

// attached reports whether the leaf id is attached here. It takes s.mu;
// the lock order is people.mu, then s.mu, never the other way round.
func (s *Supernode) attached(id identity.NodeID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leaves[id] != nil
}

// toLeaf sends a people message to an attached leaf, reporting whether it
// was queued.
func (s *Supernode) toLeaf(id identity.NodeID, t wire.Type, body any) bool {
	s.mu.Lock()
	l := s.leaves[id]
	s.mu.Unlock()
	if l == nil {
		return false
	}
	return l.conn.SendBody(t, body) == nil
}

// toMember sends a people message to the ring member id over a link to it,
// dialling a signalling link when none is up (as signalLink does for
// signals). It reports false when id is not a ring member or the bounds
// are reached.
func (s *Supernode) toMember(id identity.NodeID, t wire.Type, body any) bool {
	e, err := wire.New(t, body)
	if err != nil {
		return false
	}
	if c := s.peerLink(id); c != nil {
		return c.Send(e) == nil
	}
	addr := ""
	for _, m := range s.ring.Members() {
		if m.Meta.NodeID == id && !m.Self {
			addr = m.Meta.Control
		}
	}
	if addr == "" {
		return false
	}
	ps := s.people
	ps.mu.Lock()
	if q, ok := ps.dialing[id]; ok {
		if len(q) >= maxPeoplePending {
			ps.mu.Unlock()
			return false
		}
		ps.dialing[id] = append(q, e)
		ps.mu.Unlock()
		return true
	}
	ps.dialing[id] = []wire.Envelope{e}
	ps.mu.Unlock()
	s.mu.Lock()
	if s.closed || s.signalLinksLocked() >= maxSignalLinks {
		s.mu.Unlock()
		ps.mu.Lock()
		delete(ps.dialing, id)
		ps.mu.Unlock()
		return false
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go s.dialPeopleLink(id, addr)
	return true
}

// dialPeopleLink dials a signalling link to the member id and sends the
// people messages queued for it.
func (s *Supernode) dialPeopleLink(id identity.NodeID, addr string) {
	defer s.wg.Done()
	c, err := link.Dial(s.ctx, addr, s.cfg.Creds, id, s.log)
	if err == nil {
		if _, err = s.hello(c); err != nil {
			c.Close(err.Error())
		}
	}
	ps := s.people
	ps.mu.Lock()
	queued := ps.dialing[id]
	delete(ps.dialing, id)
	ps.mu.Unlock()
	if err != nil {
		s.log.Debug("people link", zap.String("peer", id.Short()), zap.Error(err))
		return
	}
	now := time.Now()
	s.addLink(c, &peerLink{outbound: true, since: now, signal: true, lastUsed: now})
	for _, e := range queued {
		_ = c.Send(e)
	}
}

// peopleLeafCame pushes a newly attached leaf's mail.
func (s *Supernode) peopleLeafCame(id identity.NodeID) { s.pushMail(id, s.id) }

// peopleLeafGone drops a detached leaf's presence (its subscribers see it
// offline at once) and its limits.
func (s *Supernode) peopleLeafGone(id identity.NodeID) {
	ps := s.people
	ps.mu.Lock()
	_, held := ps.presence[id]
	delete(ps.presence, id)
	delete(ps.limits, id)
	ps.mu.Unlock()
	if held {
		s.notifySubscribers(id, time.Now())
	}
}

// peopleTick expires presence records not republished, lapsed
// subscriptions and old mail. maintain calls it every second.
func (s *Supernode) peopleTick(now time.Time) {
	ps := s.people
	var stale []identity.NodeID
	ps.mu.Lock()
	for id, h := range ps.presence {
		if now.Sub(h.heard) > DefaultPresenceTTL {
			stale = append(stale, id)
			delete(ps.presence, id)
		}
	}
	for node, set := range ps.subs {
		for sub, st := range set {
			if now.After(st.expires) {
				delete(set, sub)
				ps.nsubs--
			}
		}
		if len(set) == 0 {
			delete(ps.subs, node)
		}
	}
	for owner, box := range ps.mail {
		kept := box[:0]
		for _, m := range box {
			if now.Sub(m.stored) > DefaultMailExpiry {
				ps.dropMailLocked(owner, m)
				ps.stats.MailExpired++
				continue
			}
			kept = append(kept, m)
		}
		ps.setBoxLocked(owner, kept)
	}
	ps.mu.Unlock()
	for _, id := range stale {
		s.notifySubscribers(id, now)
	}
}
