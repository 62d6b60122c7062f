// Package people is a node's person on the network: its profile, its
// contacts with their trust, presence through the supernodes, and messages
// that reach contacts who are offline (stored, end-to-end encrypted, at
// their supernodes). The protocol is in docs/protocol.md ("People"); the
// supernode's side is in package supernode (people.go).
package people

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/internal/loglimit"
	"github.com/canopy-p2p/canopy/internal/textsafe"
	"github.com/canopy-p2p/canopy/wire"
)

// Trust is what the node grants another: contact (sees presence, may
// message), trusted (also, later, browsing and auto-accept) or blocked
// (nothing; its letters are dropped).
type Trust string

// Trust levels.
const (
	TrustContact Trust = "contact"
	TrustTrusted Trust = "trusted"
	TrustBlocked Trust = "blocked"
)

// ParseTrust parses a trust level.
func ParseTrust(s string) (Trust, error) {
	switch t := Trust(s); t {
	case TrustContact, TrustTrusted, TrustBlocked:
		return t, nil
	}
	return "", fmt.Errorf("people: trust %q is not contact, trusted or blocked", s)
}

// Contact states.
const (
	stateRequested = "requested"
	stateContact   = "contact"
	stateBlocked   = "blocked"
	// stateRemoving: removed by the user; the row stays until the remove
	// letter is placed, for its key and supernodes.
	stateRemoving = "removing"
)

// Message and outbox states.
const (
	msgQueued    = "queued"
	msgStored    = "stored"
	msgDelivered = "delivered"
	msgFailed    = "failed"
	msgReceived  = "received"
)

// Defaults. Config fields left zero take them.
const (
	// DefaultPublishInterval is how often the node gives its supernodes its
	// presence again (a heartbeat; changes go out at once). The holders'
	// supernode.DefaultPresenceTTL is three of them.
	DefaultPublishInterval = 5 * time.Second
	// DefaultSubscribeInterval is how often subscriptions to contacts'
	// presence are renewed (holders keep them 30 s).
	DefaultSubscribeInterval = 10 * time.Second
	// DefaultPresenceStale is how long a holder's word stays good without
	// a renewal answered: two renewals and a half. A contact whose holders
	// all went silent (their supernodes crashed, the path broke) shows
	// offline within it.
	DefaultPresenceStale = 25 * time.Second
	// DefaultAckTimeout is how long a message sent to a contact who is
	// online waits for the receipt before it is stored at the contact's
	// supernodes instead. On loopback a receipt takes milliseconds.
	DefaultAckTimeout = 3 * time.Second
	// DefaultRetryInterval is how often a letter that could not be placed
	// (no supernode of the contact known, every attempt unanswered) is
	// tried again, and a stored one re-sent when the contact shows online.
	DefaultRetryInterval = 30 * time.Second
	// DefaultMailFetchInterval is how often the node asks the supernodes
	// it was attached to before (in the last 9 days) for mail, besides
	// when its attachments change: a contact that does not know where
	// this node went (it moved while the contact was away, and is
	// invisible, so it cannot be located) stores its messages there.
	// Nothing is sent while the node has no former supernodes.
	DefaultMailFetchInterval = time.Minute
	// DefaultMessageExpiry is how long a message is tried before it fails
	// as "expired": the supernodes' mail expiry (7 days), and a day more.
	DefaultMessageExpiry = 8 * 24 * time.Hour
	// DefaultMaxRequests bounds the contact requests waiting at once;
	// DefaultRequestRate and DefaultRequestBurst the new ones taken in all
	// (a flood from many made-up IDs), and DefaultRequestRepeat how often
	// one node's request may update its waiting one (repeats collapse
	// into it regardless, counted).
	DefaultMaxRequests   = 200
	DefaultRequestRate   = rate.Limit(1)
	DefaultRequestBurst  = 20
	DefaultRequestRepeat = time.Minute
	// DefaultHistory is how many messages Messages returns when asked for
	// no number.
	DefaultHistory = 200
	// maxLocates bounds the locates in flight, each up to locateTimeout.
	maxLocates    = 4
	locateTimeout = 2 * time.Second
	// inboxSize bounds the link events waiting for the run goroutine;
	// eventBuffer the events waiting for one API subscriber (a slow one
	// loses events, never blocks the node).
	inboxSize = 1024
	// publishRate and subscribeRate keep a leaf within its supernodes'
	// per-leaf limits (supernode: publishes 2/s burst 10, subscriptions
	// with locates and fetches 2/s burst 20).
	publishRate, publishBurst     = rate.Limit(2), 5
	subscribeRate, subscribeBurst = rate.Limit(1), 5
	eventBuffer                   = 256
	// seenKeep is how long a handled letter's ID is remembered, past the
	// mailbox expiry, for de-duplication; older letters are refused.
	seenKeep = 9 * 24 * time.Hour
	// defaultLogEvery paces the log lines peers can cause.
	defaultLogEvery            = 10 * time.Second
	maxContactsExceededMessage = "too many contacts: at most 1000"
)

// Network is what the service needs of the node's leaf side (leaf.Leaf).
type Network interface {
	SendParcel(ctx context.Context, p wire.Parcel) error
	PublishPresence(p wire.PresencePublish) error
	SubscribePresence(targets []wire.PresenceTarget) error
	AckMail(via []identity.NodeID, ids []wire.MsgID) error
	FetchMail(via []identity.NodeID) error
	LocateNode(ctx context.Context, node identity.NodeID) ([]identity.NodeID, error)
	Supernodes() []identity.NodeID
}

// Config configures a Service.
type Config struct {
	// Identity is the node's key. Required.
	Identity *identity.Identity
	// DBPath is people.db. Required.
	DBPath string
	Logger *zap.Logger
	// Intervals; zero: the defaults above.
	PublishInterval   time.Duration
	SubscribeInterval time.Duration
	PresenceStale     time.Duration
	AckTimeout        time.Duration
	RetryInterval     time.Duration
	MessageExpiry     time.Duration
	MailFetchInterval time.Duration
	// PresenceValid is the validity signed into the node's presence
	// records (zero: DefaultPresenceValid, at most
	// wire.MaxPresenceValid); a new record is signed every third of it.
	PresenceValid time.Duration
	// ClockSkew is how far apart the clocks of a contact and this node
	// may be when this node judges the contact's records (zero:
	// DefaultClockSkew).
	ClockSkew time.Duration
	// AfterStep, if not nil, is called at the named steps of taking a
	// letter in (stepLetterOpened, stepLetterKept): the crash tests kill
	// the process there.
	AfterStep func(step string)
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.PublishInterval, DefaultPublishInterval)
	def(&c.SubscribeInterval, DefaultSubscribeInterval)
	def(&c.PresenceStale, DefaultPresenceStale)
	def(&c.AckTimeout, DefaultAckTimeout)
	def(&c.RetryInterval, DefaultRetryInterval)
	def(&c.MessageExpiry, DefaultMessageExpiry)
	def(&c.MailFetchInterval, DefaultMailFetchInterval)
	def(&c.PresenceValid, DefaultPresenceValid)
	def(&c.ClockSkew, DefaultClockSkew)
	return c
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.Identity == nil || c.DBPath == "" {
		return fmt.Errorf("%w: Identity and DBPath are required", ErrConfig)
	}
	if c.PresenceValid > wire.MaxPresenceValid || c.PresenceValid < time.Second {
		return fmt.Errorf("%w: PresenceValid %v is not between 1s and %v", ErrConfig, c.PresenceValid, wire.MaxPresenceValid)
	}
	return nil
}

// Steps of taking a letter in, for Config.AfterStep.
const (
	// stepLetterOpened: a parcel was opened and its letter checked;
	// nothing is kept yet.
	stepLetterOpened = "people-letter-opened"
	// stepLetterKept: a fresh letter's effect (a message, with its
	// receipt in the outbox) is committed; the mailbox has not been told.
	stepLetterKept = "people-letter-kept"
)

func (s *Service) step(name string) {
	if s.cfg.AfterStep != nil {
		s.cfg.AfterStep(name)
	}
}

// Stats counts what the service refused and did.
type Stats struct {
	LettersIn, LettersOut uint64
	// Refused counts letters refused for their content (malformed,
	// unsigned, badly sealed, not for this node, from another sender than
	// the supernodes vouch for), Duplicates those already handled, Blocked
	// those from blocked nodes, RequestsLimited strangers' requests over
	// the bounds, Unsolicited accepts and receipts nobody asked for.
	Refused, Duplicates, Blocked, RequestsLimited, Unsolicited uint64
	// PresenceRefused counts presence records refused for their content
	// (bounds, signature); PresenceReplayed those older than a record
	// held (a holder replaying an old one, or one a moment behind
	// another holder), PresenceExpired those past their validity or
	// issued in the future: each shown as offline.
	PresenceRefused, PresenceReplayed, PresenceExpired uint64
	// NotContactNotifies counts presence answers about nodes that are no
	// contact of this one, and StrangerRecords those of them that carried
	// a record: a holder showed this node a presence it was not allowed.
	NotContactNotifies, StrangerRecords uint64
	// AnswersHeld counts receipts (and accepts) kept back from contacts
	// this node hid from when their letter came; they go out when it
	// stops hiding. AnswersWaiting is how many wait now (in the
	// database, across restarts).
	AnswersHeld    uint64
	AnswersWaiting int
}

// Service is the node's person. Its run goroutine owns the outbox
// attempts, the locates and the heartbeats; the API and the links call in
// under mu.
type Service struct {
	cfg  Config
	me   *identity.Identity
	keys BoxKeys
	log  *zap.Logger
	st   *store
	net  Network

	inbox chan func()
	kick  chan struct{}
	ctx   context.Context
	stop  context.CancelFunc
	wg    sync.WaitGroup

	mu       sync.Mutex
	profile  wire.PresenceRecord // the fields the user sets, and Seq
	signed   *wire.PresenceRecord
	allowed  []identity.NodeID
	pres     map[identity.NodeID]*view
	attempts map[wire.MsgID]*attempt
	locating map[identity.NodeID]locateState
	// found is where locates found nodes lately (foundKeep), for nodes
	// without a contact row to keep it in (a request withdrawn and sent
	// again) and as a fallback for contacts.
	found   map[identity.NodeID]foundAt
	lastSub time.Time
	lastPub time.Time
	// pubDirty and subDirty ask for a publish or a subscription renewal
	// as soon as minGap allows: what is published changed, or where a
	// contact is.
	pubDirty, subDirty bool
	// heldDirty asks the run goroutine to look at the answers held back
	// (flushHeld): the node may have stopped hiding from someone.
	heldDirty bool
	// noted are the supernodes last written to mailboxes, at notedAt.
	noted    []identity.NodeID
	notedAt  time.Time
	requests *rate.Limiter
	// pubLim and subLim pace publishes and subscription renewals (run
	// goroutine and nextWake, under mu).
	pubLim, subLim *rate.Limiter
	subs           map[chan api.Event]bool
	stats          Stats
	lines          loglimit.Limiter[string]
}

// view is what the node knows of one contact's presence: each holder's
// last word.
type view struct {
	holders map[identity.NodeID]heard
	// newest is the newest record taken from any holder: no holder may
	// take the view back to an older one while it is valid.
	newest *wire.PresenceRecord
	shown  api.Contact // the presence part last shown (Status, Text, Online, Where)
	known  bool
}

type heard struct {
	rec *wire.PresenceRecord
	at  time.Time
}

// locateState is when a node was last looked for, how often in a row,
// and when it may be looked for again.
type locateState struct {
	at, next time.Time
	n        int
}

// noAnswerRetry is how soon a store nobody answered is sent again.
const noAnswerRetry = 5 * time.Second

// locateFirstRetry is how soon a node not found is looked for again, the
// wait doubling with every miss up to maxLocateBackoff (5 s, 10 s, 20 s,
// ... 10 min): a contact that restarted on other supernodes is found
// again within seconds, one away for weeks costs a locate every 10 min.
const locateFirstRetry = 5 * time.Second

// maxLocateBackoff bounds the wait between two locates of one node.
const maxLocateBackoff = 10 * time.Minute

type foundAt struct {
	via []identity.NodeID
	at  time.Time
}

// foundKeep is how long a locate's answer is used.
const foundKeep = 10 * time.Minute

// attempt is one try at placing an outbox letter.
type attempt struct {
	peer    identity.NodeID
	store   bool
	sent    time.Time
	via     []identity.NodeID
	results map[identity.NodeID]wire.ParcelResult
}

// Open opens the database and prepares the service; Start connects it to
// the network.
func Open(cfg Config) (*Service, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	st, err := openStore(cfg.DBPath)
	if err != nil {
		return nil, err
	}
	keys, err := DeriveBoxKeys(cfg.Identity)
	if err != nil {
		st.close()
		return nil, err
	}
	s := &Service{
		cfg: cfg, me: cfg.Identity, keys: keys, log: cfg.Logger.Named("people"), st: st,
		inbox: make(chan func(), inboxSize), kick: make(chan struct{}, 1),
		pres: make(map[identity.NodeID]*view), attempts: make(map[wire.MsgID]*attempt),
		locating: make(map[identity.NodeID]locateState),
		found:    make(map[identity.NodeID]foundAt),
		requests: rate.NewLimiter(DefaultRequestRate, DefaultRequestBurst),
		pubLim:   rate.NewLimiter(publishRate, publishBurst),
		subLim:   rate.NewLimiter(subscribeRate, subscribeBurst),
		subs:     make(map[chan api.Event]bool),
		lines:    loglimit.Limiter[string]{Every: defaultLogEvery},
	}
	s.profile = wire.PresenceRecord{Status: wire.StatusOnline}
	// Answers held back before a crash go out at the first turn if the
	// node no longer hides from their contacts.
	s.heldDirty = true
	if v, ok, _ := st.meta("nick"); ok {
		s.profile.Nick = v
	}
	if v, ok, _ := st.meta("status"); ok {
		if stt, err := wire.ParseStatus(v); err == nil {
			s.profile.Status = stt
		}
	}
	if v, ok, _ := st.meta("text"); ok {
		s.profile.Text = v
	}
	if v, ok, _ := st.meta("seq"); ok {
		fmt.Sscan(v, &s.profile.Seq)
	}
	return s, nil
}

// Start connects the service to the network and starts its goroutine.
func (s *Service) Start(net Network) {
	s.net = net
	s.ctx, s.stop = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.run()
}

// Close stops the service and closes the database. Letters not yet placed
// stay in the outbox for the next start.
func (s *Service) Close() error {
	if s.stop != nil {
		s.stop()
	}
	s.wg.Wait()
	s.mu.Lock()
	// Contacts online until now were last seen now.
	now := time.Now()
	for id, v := range s.pres {
		if v.shown.Online {
			if c, ok, err := s.st.contact(id); err == nil && ok {
				c.LastSeen = now
				_ = putContact(s.st.db, c)
			}
		}
	}
	for ch := range s.subs {
		close(ch)
		delete(s.subs, ch)
	}
	s.mu.Unlock()
	return s.st.close()
}

// Stats returns a copy of the counters.
func (s *Service) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	if err := s.st.db.QueryRow(`SELECT count(*) FROM held`).Scan(&st.AnswersWaiting); err != nil {
		st.AnswersWaiting = -1
	}
	return st
}

func (s *Service) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// post hands f to the run goroutine; when its inbox is full the event is
// dropped (a stored parcel comes again at the next fetch, an online one is
// stored by its sender when no receipt comes).
func (s *Service) post(f func()) {
	select {
	case s.inbox <- f:
	default:
		s.logOnce("inbox full", "people: inbox full, an event was dropped")
	}
}

func (s *Service) logOnce(key, msg string, fields ...zap.Field) {
	if ok, held := s.lines.Allow(key, time.Now()); ok {
		s.log.Warn(msg, append(fields, zap.Uint64("lines_held_back", held))...)
	}
}

// The leaf.People side: called from link readers, must not block.

// Parcel takes a parcel for this node.
func (s *Service) Parcel(via identity.NodeID, p wire.Parcel) {
	s.post(func() { s.handleParcel(via, p) })
}

// ParcelResult takes a supernode's word on a parcel this node sent.
func (s *Service) ParcelResult(r wire.ParcelResult) {
	s.post(func() { s.handleResult(r) })
}

// PresenceNotify takes a holder's word on a contact's presence.
func (s *Service) PresenceNotify(n wire.PresenceNotify) {
	s.post(func() { s.handleNotify(n) })
}

// Attachments hears that the node's supernodes changed.
func (s *Service) Attachments() {
	s.post(func() {
		s.mu.Lock()
		s.pubDirty, s.subDirty = true, true
		s.mu.Unlock()
		s.fetchMail()
	})
}

func (s *Service) run() {
	defer s.wg.Done()
	wake := time.NewTimer(tickEvery)
	defer wake.Stop()
	s.fetchMail()
	lastFetch, lastPrune := time.Now(), time.Time{}
	for {
		select {
		case <-s.ctx.Done():
			return
		case f := <-s.inbox:
			f()
		case <-s.kick:
		case <-wake.C:
		}
		now := time.Now()
		s.heartbeat(now)
		s.flushHeld(now)
		s.pump(now)
		if now.Sub(lastFetch) >= s.cfg.MailFetchInterval {
			lastFetch = now
			s.fetchMail()
		}
		if now.Sub(lastPrune) > time.Hour {
			lastPrune = now
			if err := s.st.prune(now, seenKeep); err != nil && !isClosed(err) {
				s.log.Warn("prune", zap.Error(err))
			}
			s.mu.Lock()
			for id, f := range s.found {
				if now.Sub(f.at) > foundKeep {
					delete(s.found, id)
				}
			}
			for id, l := range s.locating {
				if now.Sub(l.next) > maxLocateBackoff {
					delete(s.locating, id)
				}
			}
			s.mu.Unlock()
		}
		wake.Reset(s.nextWake(time.Now()))
	}
}

// tickEvery is how often the run goroutine looks at the outbox and the
// views when nothing wakes it sooner.
const tickEvery = time.Second / 2

// nextWake is how long the run goroutine may sleep: until the next tick,
// or sooner when a publish or renewal waits for its limiter.
func (s *Service) nextWake(now time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := tickEvery
	delay := func(l *rate.Limiter) time.Duration {
		r := l.ReserveN(now, 1)
		defer r.CancelAt(now)
		return r.DelayFrom(now)
	}
	if s.pubDirty {
		d = min(d, delay(s.pubLim))
	}
	if s.subDirty {
		d = min(d, delay(s.subLim))
	}
	return max(d, 10*time.Millisecond)
}

// heartbeat publishes presence and renews subscriptions when due, and
// lets views go stale.
func (s *Service) heartbeat(now time.Time) {
	s.mu.Lock()
	// A change goes out at once while the leaf stays within what its
	// supernodes take (publishes 2 a second, burst 10; subscriptions,
	// locates and fetches together 2 a second, burst 20); one over it
	// waits for a token and goes then, never dropped.
	pub := (now.Sub(s.lastPub) >= s.cfg.PublishInterval || s.pubDirty) && s.pubLim.AllowN(now, 1)
	sub := (now.Sub(s.lastSub) >= s.cfg.SubscribeInterval || s.subDirty) && s.subLim.AllowN(now, 1)
	s.mu.Unlock()
	if pub {
		s.publish(now)
	}
	if sub {
		s.subscribe(now)
	}
	s.mu.Lock()
	var changed []api.Contact
	for id := range s.pres {
		if c, ok := s.refreshViewLocked(id, now); ok {
			changed = append(changed, c)
		}
	}
	s.mu.Unlock()
	for i := range changed {
		s.emit(api.Event{Kind: "presence", Contact: &changed[i]})
	}
}

// publish gives the supernodes the node's record: re-signed when what it
// says changed.
func (s *Service) publish(now time.Time) {
	sns := s.net.Supernodes()
	s.mu.Lock()
	allowed := s.allowedLocked()
	// A new record when what it says changed, and every third of its
	// validity: viewers show a record only while it is valid, so a
	// holder that replays it later shows it briefly at most.
	if s.signed == nil || s.signed.Status != s.profile.Status || s.signed.Text != s.profile.Text ||
		s.signed.Nick != s.profile.Nick || !slices.Equal(s.signed.Supernodes, sns) ||
		now.Sub(s.signed.Issued()) >= s.cfg.PresenceValid/3 {
		s.profile.Seq++
		rec := wire.PresenceRecord{Status: s.profile.Status, Text: s.profile.Text, Nick: s.profile.Nick,
			Seq: s.profile.Seq, Time: now.UnixMilli(), Supernodes: sns, Valid: s.cfg.PresenceValid.Milliseconds()}
		if err := wire.SignPresence(s.me, &rec); err != nil {
			s.mu.Unlock()
			s.log.Error("sign presence", zap.Error(err))
			return
		}
		if err := setMeta(s.st.db, "seq", fmt.Sprint(s.profile.Seq)); err != nil && !isClosed(err) {
			s.log.Warn("persist presence sequence", zap.Error(err))
		}
		s.signed = &rec
	}
	p := wire.PresencePublish{Record: *s.signed, Allowed: allowed, Discoverable: s.profile.Status != wire.StatusInvisible}
	// The flag is cleared with the record made, under the same lock: a
	// change made while this one is on its way (SetProfile, a new
	// contact) sets it again and goes at the next turn, not at the next
	// heartbeat.
	if len(sns) == 0 {
		s.mu.Unlock()
		return
	}
	s.pubDirty = false
	s.mu.Unlock()
	err := s.net.PublishPresence(p)
	s.mu.Lock()
	if err == nil {
		s.lastPub = now
	} else {
		s.pubDirty = true
	}
	s.mu.Unlock()
	// Where this node is attached may hold its mail later: noted when it
	// changes, and hourly (the note's age bounds how long it is asked).
	s.mu.Lock()
	note := !slices.Equal(s.noted, sns) || now.Sub(s.notedAt) > time.Hour
	if note {
		s.noted, s.notedAt = slices.Clone(sns), now
	}
	s.mu.Unlock()
	if !note {
		return
	}
	_ = s.st.tx(func(tx *sql.Tx) error {
		for _, id := range sns {
			if _, err := tx.Exec(`INSERT INTO mailboxes(id, at) VALUES(?, ?) ON CONFLICT(id) DO UPDATE SET at = excluded.at`, id[:], now.UnixMilli()); err != nil {
				return err
			}
		}
		return nil
	})
}

// allowedLocked lists who may see this node's presence: its contacts,
// minus the blocked and those it appears offline to; nobody when
// invisible.
func (s *Service) allowedLocked() []identity.NodeID {
	if s.profile.Status == wire.StatusInvisible {
		return nil
	}
	cs, err := s.st.contacts()
	if err != nil {
		return nil
	}
	var out []identity.NodeID
	for _, c := range cs {
		if c.State == stateContact && c.Trust != TrustBlocked && !c.AppearOffline && len(out) < wire.MaxAllowed {
			out = append(out, c.ID)
		}
	}
	return out
}

// subscribe renews the subscriptions to every contact's presence, and
// locates the contacts whose supernodes are not known.
func (s *Service) subscribe(now time.Time) {
	var targets []wire.PresenceTarget
	var locate []identity.NodeID
	s.mu.Lock()
	cs, err := s.st.contacts()
	if err != nil {
		s.mu.Unlock()
		return
	}
	// Cleared as the targets are read, as publish does: a contact added,
	// or found elsewhere, while the renewal is on its way sets it again.
	s.subDirty = false
	for _, c := range cs {
		if c.State != stateContact || c.Trust == TrustBlocked {
			continue
		}
		via := s.viaLocked(c, now)
		if len(via) == 0 {
			locate = append(locate, c.ID)
			continue
		}
		targets = append(targets, wire.PresenceTarget{Node: c.ID, Via: via})
		if v := s.pres[c.ID]; v == nil || !v.shown.Online {
			// Offline, or invisible to us: it may have moved. Look again
			// now and then.
			locate = append(locate, c.ID)
		}
	}
	s.mu.Unlock()
	err = nil
	if len(targets) > 0 {
		err = s.net.SubscribePresence(targets)
	}
	s.mu.Lock()
	if err == nil {
		s.lastSub = now
	} else {
		s.subDirty = true
	}
	s.mu.Unlock()
	for _, id := range locate {
		s.startLocate(id, now)
	}
}

// viaLocked is where contact c is reached: the supernodes its freshest
// record names, the holders that answered lately, then those it last
// named in a letter or a locate found.
func (s *Service) viaLocked(c contact, now time.Time) []identity.NodeID {
	var out []identity.NodeID
	add := func(ids ...identity.NodeID) {
		for _, id := range ids {
			if !id.IsZero() && !slices.Contains(out, id) && len(out) < wire.MaxVia {
				out = append(out, id)
			}
		}
	}
	if v := s.pres[c.ID]; v != nil {
		if best := s.bestLocked(v, now); best != nil {
			add(best.Supernodes...)
		}
		for h, hd := range v.holders {
			if now.Sub(hd.at) <= s.cfg.PresenceStale {
				add(h)
			}
		}
	}
	add(c.Via...)
	if f, ok := s.found[c.ID]; ok && now.Sub(f.at) < foundKeep {
		add(f.via...)
	}
	return out
}

// bestLocked is the record the node shows of a contact: the newest that
// a holder which answered lately gave, while it is valid.
func (s *Service) bestLocked(v *view, now time.Time) *wire.PresenceRecord {
	var best *wire.PresenceRecord
	for _, hd := range v.holders {
		if hd.rec != nil && now.Sub(hd.at) <= s.cfg.PresenceStale && !recordExpiredAt(hd.rec, now, s.cfg.ClockSkew) &&
			(best == nil || hd.rec.Seq > best.Seq) {
			best = hd.rec
		}
	}
	return best
}

// startLocate looks for id's supernodes in the background, backing off
// from locateFirstRetry per node, and at most maxLocates at once.
func (s *Service) startLocate(id identity.NodeID, now time.Time) {
	s.mu.Lock()
	st, ok := s.locating[id]
	if (ok && now.Before(st.next)) || s.inFlightLocatesLocked(now) >= maxLocates {
		s.mu.Unlock()
		return
	}
	// A node that stays unfound is looked for less and less often: a
	// locate travels the ring, and a roster of contacts who are away
	// for weeks must not flood it.
	s.locating[id] = locateState{at: now, n: st.n + 1, next: now.Add(min(locateFirstRetry<<min(st.n, 7), maxLocateBackoff))}
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(s.ctx, locateTimeout)
		defer cancel()
		via, err := s.net.LocateNode(ctx, id)
		if err != nil || len(via) == 0 {
			return
		}
		s.post(func() { s.located(id, via) })
	}()
}

func (s *Service) inFlightLocatesLocked(now time.Time) int {
	n := 0
	for _, st := range s.locating {
		if now.Sub(st.at) < locateTimeout {
			n++
		}
	}
	return n
}

// located records where a locate found id, and retries what waits for it.
func (s *Service) located(id identity.NodeID, via []identity.NodeID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.found[id] = foundAt{via: via, at: time.Now()}
	s.poke()
	c, ok, err := s.st.contact(id)
	if err != nil || !ok {
		return
	}
	c.Via = via
	if err := putContact(s.st.db, c); err != nil {
		return
	}
	s.subDirty = true
	s.poke()
}

// refreshViewLocked recomputes what the node shows of contact id and
// reports the contact when that changed.
func (s *Service) refreshViewLocked(id identity.NodeID, now time.Time) (api.Contact, bool) {
	v := s.pres[id]
	if v == nil {
		return api.Contact{}, false
	}
	shown := api.Contact{Status: wire.StatusOffline.String()}
	if best := s.bestLocked(v, now); best != nil {
		shown.Status, shown.Text, shown.Online = best.Status.String(), best.Text, true
		for _, sn := range best.Supernodes {
			shown.Where = append(shown.Where, sn.String())
		}
	}
	if v.known && shown.Status == v.shown.Status && shown.Text == v.shown.Text && shown.Online == v.shown.Online &&
		slices.Equal(shown.Where, v.shown.Where) {
		return api.Contact{}, false
	}
	wasOnline := v.shown.Online
	v.shown, v.known = shown, true
	c, ok, err := s.st.contact(id)
	if err != nil || !ok {
		return api.Contact{}, false
	}
	if wasOnline || shown.Online {
		c.LastSeen = now
	}
	if best := s.bestLocked(v, now); best != nil {
		if best.Nick != "" {
			c.Nick = textsafe.Bound(best.Nick, wire.MaxNickname)
		}
		c.Via = best.Supernodes
	}
	_ = putContact(s.st.db, c)
	if shown.Online {
		// A contact that shows online may take what waits for it (what
		// was stored goes again at once: it may have moved away from
		// its mailbox, or the mailbox may be gone), and is looked for at
		// the first interval when it goes again.
		if !wasOnline {
			for mid, a := range s.attempts {
				if a.peer == id && a.store {
					delete(s.attempts, mid)
				}
			}
		}
		delete(s.locating, id)
		s.poke()
	}
	return s.contactViewLocked(c, now), true
}

func (s *Service) handleNotify(n wire.PresenceNotify) {
	now := time.Now()
	if n.Record != nil {
		if err := n.Record.Check(); err != nil || n.Record.Node != n.Node {
			s.mu.Lock()
			s.stats.PresenceRefused++
			s.mu.Unlock()
			s.logOnce("presence", "presence record refused", zap.String("node", n.Node.Short()), zap.Error(err))
			return
		}
	}
	s.mu.Lock()
	c, ok, err := s.st.contact(n.Node)
	if err != nil || !ok || c.State != stateContact || c.Trust == TrustBlocked {
		// Counted: a holder must never show a record to a node its owner
		// did not allow (StrangerRecords stays 0 unless one misbehaves).
		s.stats.NotContactNotifies++
		if n.Record != nil {
			s.stats.StrangerRecords++
		}
		s.mu.Unlock()
		return
	}
	v := s.pres[n.Node]
	if v == nil {
		v = &view{holders: make(map[identity.NodeID]heard)}
		s.pres[n.Node] = v
	}
	rec := n.Record
	if rec != nil {
		switch verdict := judgeRecord(rec, v.newest, now, s.cfg.ClockSkew); verdict {
		case recordNew:
			v.newest = rec
			// A new record naming supernodes not subscribed at yet (the
			// contact moved, or attached to another): subscribe there
			// now. Only for a new record, so that a holder that never
			// answers does not make every renewal answer a
			// resubscription.
			for _, sn := range rec.Supernodes {
				if _, ok := v.holders[sn]; !ok {
					s.subDirty = true
				}
			}
		case recordOlder, recordExpired, recordFuture:
			// Refused: the view keeps what it holds. An older record
			// leaves this holder's last word as it was (the newer record
			// it gave, which shows while valid); a dead one makes its
			// word "offline".
			if verdict == recordOlder {
				s.stats.PresenceReplayed++
			} else {
				s.stats.PresenceExpired++
			}
			s.logOnce("presence "+verdict.String(), "presence record refused", zap.String("node", n.Node.Short()),
				zap.String("holder", n.From.Short()), zap.String("verdict", verdict.String()), zap.Uint64("seq", rec.Seq),
				zap.Time("issued", rec.Issued()))
			rec = nil
			if old, ok := v.holders[n.From]; ok && verdict == recordOlder && old.rec != nil && old.rec.Seq > n.Record.Seq {
				rec = old.rec
			}
		}
	}
	v.holders[n.From] = heard{rec: rec, at: now}
	ch, changed := s.refreshViewLocked(n.Node, now)
	s.mu.Unlock()
	if changed {
		s.emit(api.Event{Kind: "presence", Contact: &ch})
	}
}

// ---- letters in

func (s *Service) refuse(from identity.NodeID, err error) {
	s.mu.Lock()
	s.stats.Refused++
	s.mu.Unlock()
	s.logOnce("letter", "letter refused", zap.String("from", from.Short()), zap.Error(err))
}

func (s *Service) handleParcel(via identity.NodeID, p wire.Parcel) {
	l, _, senderKey, err := openLetter(p.Sealed, s.keys)
	if err != nil {
		s.refuse(p.From, err)
		s.ackMail(p)
		return
	}
	if age := time.Since(time.UnixMilli(l.Time)); age > seenKeep-24*time.Hour {
		// Older than what the seen table remembers: a replay, or a
		// supernode handing out what it should have expired.
		s.refuse(p.From, fmt.Errorf("%w: letter written %s ago", ErrBadLetter, age.Round(time.Hour)))
		s.ackMail(p)
		return
	}
	if l.To != s.me.ID || l.From != p.From || l.ID != p.ID {
		s.refuse(p.From, fmt.Errorf("%w: letter from %s to %s in a parcel from %s", ErrBadLetter, l.From.Short(), l.To.Short(), p.From.Short()))
		s.ackMail(p)
		return
	}
	s.step(stepLetterOpened)
	// Where this node is, for the receipts it signs below (read before
	// s.mu, as flushHeld does).
	sns := s.net.Supernodes()
	if len(sns) > wire.MaxVia {
		sns = sns[:wire.MaxVia]
	}
	now := time.Now()
	var events []api.Event
	var reply func()
	kept := false // a fresh letter, not a duplicate
	// s.mu before the transaction, as everywhere: the database has one
	// connection, and whoever holds mu may be waiting for it.
	s.mu.Lock()
	err = s.st.tx(func(tx *sql.Tx) error {
		fresh, err := markSeen(tx, l.ID, now)
		if err != nil || !fresh {
			if err == nil {
				s.stats.Duplicates++
				// A duplicate message is acknowledged again: its sender
				// may have missed the first receipt.
				if l.Kind == wire.LetterMessage {
					if c, ok, _ := s.contactTx(tx, l.From); ok && c.State == stateContact && c.Trust != TrustBlocked {
						if s.hidingLocked(c) {
							return s.holdLocked(tx, l.From, wire.LetterReceipt, l.ID, now)
						}
						return s.receiptTx(tx, l.From, l.ID, sns, now)
					}
				}
			}
			return err
		}
		s.stats.LettersIn++
		kept = true
		events, reply, err = s.letterLocked(tx, l, senderKey, sns, now)
		return err
	})
	s.mu.Unlock()
	if err != nil && !isClosed(err) {
		s.log.Warn("letter not kept", zap.String("from", l.From.Short()), zap.Error(err))
		return // not acknowledged: it comes again
	}
	// Kept, with its receipt in the outbox: a crash from here on costs
	// at most a duplicate (the mailbox, not yet told, hands the parcel
	// over again; it is dropped by ID and acknowledged again).
	if kept {
		s.step(stepLetterKept)
	}
	s.ackMail(p)
	s.poke()
	for i := range events {
		s.emit(events[i])
	}
	if reply != nil {
		reply()
	}
}

// hidingLocked reports whether the node hides from contact c: it is
// invisible, or appears offline to c.
func (s *Service) hidingLocked(c contact) bool {
	return s.profile.Status == wire.StatusInvisible || c.AppearOffline
}

// holdLocked keeps an answer to peer back until the node stops hiding
// from it (flushHeld).
func (s *Service) holdLocked(tx execer, peer identity.NodeID, kind wire.LetterKind, id wire.MsgID, now time.Time) error {
	if err := hold(tx, peer, kind, id, now); err != nil {
		return err
	}
	s.stats.AnswersHeld++
	return nil
}

// flushHeld sends the answers held back from contacts the node no longer
// hides from, and forgets those of nodes that are no contact any more.
// The letters are made now: a receipt signed when the message came would
// tell the contact, later, that this node was online then.
func (s *Service) flushHeld(now time.Time) {
	s.mu.Lock()
	dirty := s.heldDirty
	s.heldDirty = false
	s.mu.Unlock()
	if !dirty || s.net == nil {
		return
	}
	sns := s.net.Supernodes()
	if len(sns) > wire.MaxVia {
		sns = sns[:wire.MaxVia]
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	items, err := s.st.held()
	if err != nil {
		if !isClosed(err) {
			s.heldDirty = true
			s.log.Warn("held answers", zap.Error(err))
		}
		return
	}
	byPeer := make(map[identity.NodeID][]heldItem)
	var peers []identity.NodeID
	for _, h := range items {
		if _, ok := byPeer[h.Peer]; !ok {
			peers = append(peers, h.Peer)
		}
		byPeer[h.Peer] = append(byPeer[h.Peer], h)
	}
	sent := false
	for _, peer := range peers {
		c, ok, err := s.st.contact(peer)
		if err != nil {
			s.heldDirty = true
			continue
		}
		gone := !ok || c.State != stateContact || c.Trust == TrustBlocked
		if !gone && s.hidingLocked(c) {
			continue
		}
		var letters []wire.Letter
		if !gone {
			var refs []wire.MsgID
			accept := false
			for _, h := range byPeer[peer] {
				switch h.Kind {
				case wire.LetterReceipt:
					refs = append(refs, h.ID)
				case wire.LetterAccept:
					accept = true
				}
			}
			mk := func(kind wire.LetterKind, fill func(*wire.Letter)) error {
				l := wire.Letter{Kind: kind, To: peer, ID: wire.NewMsgID(), Time: now.UnixMilli(), Supernodes: sns}
				fill(&l)
				if err := wire.SignLetter(s.me, &l); err != nil {
					return err
				}
				letters = append(letters, l)
				return nil
			}
			if accept {
				err = mk(wire.LetterAccept, func(l *wire.Letter) { l.BoxKey, l.Nick = s.keys.Public[:], s.profile.Nick })
			}
			for len(refs) > 0 && err == nil {
				n := min(len(refs), wire.MaxMailAck)
				batch := refs[:n:n]
				err = mk(wire.LetterReceipt, func(l *wire.Letter) { l.Refs = batch })
				refs = refs[n:]
			}
			if err != nil {
				s.log.Warn("held answers", zap.Error(err))
				s.heldDirty = true
				continue
			}
		}
		err = s.st.tx(func(tx *sql.Tx) error {
			for i := range letters {
				if err := enqueue(tx, letters[i], now); err != nil {
					return err
				}
			}
			_, err := tx.Exec(`DELETE FROM held WHERE peer = ?`, peer[:])
			return err
		})
		if err != nil {
			if !isClosed(err) {
				s.heldDirty = true
				s.log.Warn("held answers", zap.Error(err))
			}
			continue
		}
		sent = sent || len(letters) > 0
	}
	if sent {
		s.poke()
	}
}

// ackMail tells the mailbox supernodes that a stored parcel was taken.
func (s *Service) ackMail(p wire.Parcel) {
	if p.Store {
		_ = s.net.AckMail(p.Via, []wire.MsgID{p.ID})
	}
}

// letterLocked applies one fresh, checked letter. It returns the events to
// emit and a reply to send once the transaction is committed.
func (s *Service) letterLocked(tx *sql.Tx, l wire.Letter, senderKey []byte, sns []identity.NodeID, now time.Time) ([]api.Event, func(), error) {
	c, isKnown, err := s.contactTx(tx, l.From)
	if err != nil {
		return nil, nil, err
	}
	if isKnown && c.Trust == TrustBlocked {
		s.stats.Blocked++
		return nil, nil, nil
	}
	isContact := isKnown && c.State == stateContact
	if isContact && len(c.BoxKey) == 32 && senderKey != nil && !bytes.Equal(senderKey, c.BoxKey) {
		// Signed by the contact but sealed with another key than the one
		// its accept or request named (keys are derived from the node
		// key and never change): someone re-sealed what it signed.
		s.stats.Refused++
		return nil, nil, nil
	}
	if isContact && len(l.Supernodes) > 0 && !slices.Equal(c.Via, l.Supernodes) {
		// Where the contact is now, as it signed it.
		c.Via = l.Supernodes
		if err := putContact(tx, c); err != nil {
			return nil, nil, err
		}
		s.subDirty = true
	}
	switch l.Kind {
	case wire.LetterRequest, wire.LetterMessage:
		if l.Kind == wire.LetterMessage && isContact {
			m := message{ID: l.ID, Peer: l.From, Seq: l.Seq, Time: time.UnixMilli(l.Time), Text: l.Text,
				State: msgReceived, Updated: now}
			if err := putMessage(tx, m); err != nil {
				return nil, nil, err
			}
			mv := messageView(m)
			events := []api.Event{{Kind: "message", Message: &mv}}
			if s.hidingLocked(c) {
				// An immediate receipt would tell the sender this node is
				// online: it waits until the node stops hiding.
				return events, nil, s.holdLocked(tx, l.From, wire.LetterReceipt, l.ID, now)
			}
			// The receipt goes in the outbox in the same transaction as
			// the message: a crash right after cannot leave a message
			// kept here and never acknowledged.
			return events, nil, s.receiptTx(tx, l.From, l.ID, sns, now)
		}
		if isKnown && c.State == stateRequested && l.Kind == wire.LetterRequest {
			// Both asked: that is both accepting.
			return s.becomeContactLocked(tx, c, l, now, true)
		}
		if isContact && l.Kind == wire.LetterRequest {
			// A contact asking again lost its state: answer as if accepting.
			c.BoxKey, c.Via = l.BoxKey, l.Supernodes
			if err := putContact(tx, c); err != nil {
				return nil, nil, err
			}
			if s.hidingLocked(c) {
				return nil, nil, s.holdLocked(tx, c.ID, wire.LetterAccept, wire.MsgID{}, now)
			}
			return nil, func() { s.sendAccept(c.ID) }, nil
		}
		return s.strangerLocked(tx, l, now)
	case wire.LetterAccept:
		if !isKnown || c.State != stateRequested {
			s.stats.Unsolicited++
			return nil, nil, nil
		}
		return s.becomeContactLocked(tx, c, l, now, false)
	case wire.LetterRemove:
		if !isContact {
			return nil, nil, nil
		}
		if _, err := tx.Exec(`DELETE FROM contacts WHERE id = ?`, c.ID[:]); err != nil {
			return nil, nil, err
		}
		delete(s.pres, c.ID)
		s.pubDirty, s.heldDirty = true, true
		cv := s.contactViewLocked(c, now)
		cv.State = "removed"
		return []api.Event{{Kind: "contact", Contact: &cv}}, nil, nil
	case wire.LetterReceipt:
		var events []api.Event
		for _, ref := range l.Refs {
			m, ok, err := s.messageTx(tx, ref)
			if err != nil {
				return nil, nil, err
			}
			if err := dropOut(tx, ref); err != nil {
				return nil, nil, err
			}
			delete(s.attempts, ref)
			if !ok || !m.Out || m.Peer != l.From || m.State == msgDelivered {
				continue
			}
			m.State, m.Reason, m.Updated = msgDelivered, "", now
			if err := putMessage(tx, m); err != nil {
				return nil, nil, err
			}
			mv := messageView(m)
			events = append(events, api.Event{Kind: "message-state", Message: &mv})
		}
		return events, nil, nil
	}
	return nil, nil, nil
}

// strangerLocked files a request (or a stranger's message, which waits as
// one): repeats collapse, and the bounds hold.
func (s *Service) strangerLocked(tx *sql.Tx, l wire.Letter, now time.Time) ([]api.Event, func(), error) {
	r, ok, err := s.requestTx(tx, l.From)
	if err != nil {
		return nil, nil, err
	}
	if ok {
		r.Count++
		if now.Sub(r.Last) >= DefaultRequestRepeat {
			r.Last = now
			if l.Nick != "" {
				r.Nick = l.Nick
			}
			if l.Text != "" {
				r.Text = cut(l.Text, wire.MaxRequestText)
			}
			if len(l.BoxKey) == 32 {
				r.BoxKey = l.BoxKey
			}
			if len(l.Supernodes) > 0 {
				r.Via = l.Supernodes
			}
		} else {
			s.stats.RequestsLimited++
		}
		return nil, nil, putRequest(tx, r)
	}
	var n int
	if err := tx.QueryRow(`SELECT count(*) FROM requests`).Scan(&n); err != nil {
		return nil, nil, err
	}
	if n >= DefaultMaxRequests || !s.requests.Allow() {
		s.stats.RequestsLimited++
		s.logOnce("requests", "contact request dropped: too many waiting or arriving", zap.String("from", l.From.Short()))
		return nil, nil, nil
	}
	r = request{ID: l.From, Nick: l.Nick, Text: cut(l.Text, wire.MaxRequestText), BoxKey: l.BoxKey, Via: l.Supernodes,
		First: now, Last: now, Count: 1}
	if err := putRequest(tx, r); err != nil {
		return nil, nil, err
	}
	rv := requestView(r)
	return []api.Event{{Kind: "request", Request: &rv}}, nil, nil
}

// becomeContactLocked makes c a contact on an accept (or a crossing
// request), answering a crossing request with an accept.
func (s *Service) becomeContactLocked(tx *sql.Tx, c contact, l wire.Letter, now time.Time, answer bool) ([]api.Event, func(), error) {
	c.State, c.BoxKey, c.Since = stateContact, l.BoxKey, now
	if l.Nick != "" {
		c.Nick = l.Nick
	}
	if len(l.Supernodes) > 0 {
		c.Via = l.Supernodes
	}
	if err := putContact(tx, c); err != nil {
		return nil, nil, err
	}
	if _, err := tx.Exec(`DELETE FROM requests WHERE id = ?`, c.ID[:]); err != nil {
		return nil, nil, err
	}
	s.pubDirty, s.subDirty = true, true
	cv := s.contactViewLocked(c, now)
	var reply func()
	if answer {
		reply = func() { s.sendAccept(c.ID) }
	}
	return []api.Event{{Kind: "contact", Contact: &cv}}, reply, nil
}

func (s *Service) contactTx(tx *sql.Tx, id identity.NodeID) (contact, bool, error) {
	c, err := scanContact(tx.QueryRow(`SELECT `+contactCols+` FROM contacts WHERE id = ?`, id[:]))
	if err == sql.ErrNoRows {
		return c, false, nil
	}
	return c, err == nil, err
}

func (s *Service) requestTx(tx *sql.Tx, id identity.NodeID) (request, bool, error) {
	var r request
	var rid, via []byte
	var first, last int64
	err := tx.QueryRow(`SELECT id, nick, text, box_key, via, first, last, count FROM requests WHERE id = ?`, id[:]).
		Scan(&rid, &r.Nick, &r.Text, &r.BoxKey, &via, &first, &last, &r.Count)
	if err == sql.ErrNoRows {
		return r, false, nil
	}
	if err != nil {
		return r, false, err
	}
	r.ID, r.Via, r.First, r.Last = id, decodeIDs(via), time.UnixMilli(first), time.UnixMilli(last)
	return r, true, nil
}

func (s *Service) messageTx(tx *sql.Tx, id wire.MsgID) (message, bool, error) {
	m, err := scanMessage(tx.QueryRow(`SELECT `+messageCols+` FROM messages WHERE id = ?`, id[:]))
	if err == sql.ErrNoRows {
		return m, false, nil
	}
	return m, err == nil, err
}

// ---- letters out

// newLetter signs a letter of kind to peer.
func (s *Service) newLetter(kind wire.LetterKind, to identity.NodeID, now time.Time, fill func(*wire.Letter)) (wire.Letter, error) {
	l := wire.Letter{Kind: kind, To: to, ID: wire.NewMsgID(), Time: now.UnixMilli(), Supernodes: s.net.Supernodes()}
	if len(l.Supernodes) > wire.MaxVia {
		l.Supernodes = l.Supernodes[:wire.MaxVia]
	}
	if fill != nil {
		fill(&l)
	}
	err := wire.SignLetter(s.me, &l)
	return l, err
}

// enqueueLocked puts a signed letter in the outbox (tx) for the run
// goroutine to place.
func enqueue(tx execer, l wire.Letter, now time.Time) error {
	b, err := wire.EncodeLetter(&l)
	if err != nil {
		return err
	}
	return addOut(tx, outItem{ID: l.ID, Peer: l.To, Kind: l.Kind, Letter: b, Created: now, State: msgQueued})
}

// receiptTx puts a receipt for message id to peer in the outbox (tx),
// naming the supernodes sns this node is attached to.
func (s *Service) receiptTx(tx execer, to identity.NodeID, id wire.MsgID, sns []identity.NodeID, now time.Time) error {
	l := wire.Letter{Kind: wire.LetterReceipt, To: to, ID: wire.NewMsgID(), Time: now.UnixMilli(), Supernodes: sns,
		Refs: []wire.MsgID{id}}
	if err := wire.SignLetter(s.me, &l); err != nil {
		return err
	}
	return enqueue(tx, l, now)
}

func (s *Service) sendAccept(to identity.NodeID) {
	now := time.Now()
	l, err := s.newLetter(wire.LetterAccept, to, now, func(l *wire.Letter) {
		l.BoxKey = s.keys.Public[:]
		s.mu.Lock()
		l.Nick = s.profile.Nick
		s.mu.Unlock()
	})
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = enqueue(s.st.db, l, now)
	s.poke()
}

// pump places the outbox: new letters, letters whose attempt timed out,
// stored letters for a contact who shows online again.
func (s *Service) pump(now time.Time) {
	items, err := s.st.outbox()
	if err != nil {
		return
	}
	type send struct {
		p    wire.Parcel
		item outItem
	}
	var sends []send
	var events []api.Event
	var locate []identity.NodeID
	s.mu.Lock()
	for _, it := range items {
		if it.State == msgFailed {
			continue
		}
		if now.Sub(it.Created) > s.cfg.MessageExpiry {
			events = append(events, s.failLocked(it, "expired: not delivered within "+s.cfg.MessageExpiry.String(), now)...)
			continue
		}
		a := s.attempts[it.ID]
		if a != nil {
			// An online attempt waits for the receipt, a store for the
			// retry interval (a stored letter is in the network; one that
			// nobody answered is tried again then).
			wait := s.cfg.RetryInterval
			switch {
			case !a.store:
				wait = s.cfg.AckTimeout
			case len(a.results) == 0:
				// Nobody answered (the link went before the parcel was
				// read): try again soon; stores are idempotent.
				wait = noAnswerRetry
			}
			if now.Sub(a.sent) < wait {
				continue
			}
		}
		c, ok, err := s.st.contact(it.Peer)
		if err != nil {
			continue
		}
		sendable := ok && c.Trust != TrustBlocked && (c.State == stateContact ||
			(c.State == stateRequested && it.Kind == wire.LetterRequest) ||
			(c.State == stateRemoving && it.Kind == wire.LetterRemove))
		if !sendable {
			if it.Kind == wire.LetterMessage {
				events = append(events, s.failLocked(it, "not a contact", now)...)
			} else {
				s.doneLocked(it)
			}
			continue
		}
		online := false
		if v := s.pres[it.Peer]; v != nil && s.bestLocked(v, now) != nil {
			online = true
		}
		via := s.viaLocked(c, now)
		if len(via) == 0 {
			locate = append(locate, it.Peer)
			continue
		}
		// A stored letter is re-sent only when the contact shows online
		// (it may have moved away from the mailbox).
		if it.State == msgStored && !online {
			continue
		}
		store := !online || (a != nil && !a.store)
		var key []byte
		if it.Kind != wire.LetterRequest {
			key = c.BoxKey
		}
		l, err := wire.DecodeLetter(it.Letter)
		if err != nil {
			_ = dropOut(s.st.db, it.ID)
			continue
		}
		sealed, err := sealLetter(&l, s.keys, key)
		if err != nil {
			events = append(events, s.failLocked(it, err.Error(), now)...)
			continue
		}
		if !store {
			// Online, one supernode the contact is attached to hands it
			// over; all of them would hand over a copy each (dropped as
			// duplicates, but each answered with a receipt).
			via = via[:1]
		}
		s.attempts[it.ID] = &attempt{peer: it.Peer, store: store, sent: now, via: via, results: make(map[identity.NodeID]wire.ParcelResult)}
		sends = append(sends, send{p: wire.Parcel{ID: it.ID, To: it.Peer, Via: via, Store: store, Sealed: sealed}, item: it})
	}
	s.mu.Unlock()
	for i := range events {
		s.emit(events[i])
	}
	for _, sd := range sends {
		ctx, cancel := context.WithTimeout(s.ctx, 2*time.Second)
		err := s.net.SendParcel(ctx, sd.p)
		cancel()
		if err != nil {
			s.mu.Lock()
			delete(s.attempts, sd.p.ID)
			s.mu.Unlock()
			continue
		}
		s.mu.Lock()
		s.stats.LettersOut++
		s.mu.Unlock()
	}
	for _, id := range locate {
		s.startLocate(id, now)
	}
}

// doneLocked takes a letter that needs no receipt out of the outbox once
// a supernode has it (or it cannot be sent): a contact being removed goes
// with its remove letter.
func (s *Service) doneLocked(it outItem) {
	delete(s.attempts, it.ID)
	err := s.st.tx(func(tx *sql.Tx) error {
		if err := dropOut(tx, it.ID); err != nil || it.Kind != wire.LetterRemove {
			return err
		}
		_, err := tx.Exec(`DELETE FROM contacts WHERE id = ? AND state = ?`, it.Peer[:], stateRemoving)
		return err
	})
	if err != nil && !isClosed(err) {
		s.log.Warn("outbox", zap.Error(err))
	}
}

// failLocked marks an outbox letter failed with the reason.
func (s *Service) failLocked(it outItem, reason string, now time.Time) []api.Event {
	if it.Kind != wire.LetterMessage {
		s.doneLocked(it)
		return nil
	}
	delete(s.attempts, it.ID)
	return s.messageStateLocked(it.ID, msgFailed, reason, now)
}

// handleResult applies a supernode's word on a parcel this node sent.
func (s *Service) handleResult(r wire.ParcelResult) {
	now := time.Now()
	var events []api.Event
	s.mu.Lock()
	a := s.attempts[r.ID]
	if a == nil {
		s.mu.Unlock()
		return
	}
	a.results[r.From] = r
	items, err := s.st.outbox()
	var it *outItem
	for i := range items {
		if items[i].ID == r.ID {
			it = &items[i]
		}
	}
	if err != nil || it == nil {
		delete(s.attempts, r.ID)
		s.mu.Unlock()
		return
	}
	// Letters that get no receipt are done once a supernode holds or
	// handed them.
	noReceipt := it.Kind != wire.LetterMessage
	switch r.State {
	case wire.ParcelHanded:
		if noReceipt {
			s.doneLocked(*it)
		}
	case wire.ParcelStored:
		if noReceipt {
			s.doneLocked(*it)
			break
		}
		if it.State == msgQueued {
			events = append(events, s.messageStateLocked(it.ID, msgStored, "", now)...)
		}
	case wire.ParcelNotHere, wire.ParcelRefused:
		answered, refused, firstReason := 0, 0, ""
		for _, v := range a.via {
			if res, ok := a.results[v]; ok {
				answered++
				if res.State == wire.ParcelRefused || res.State == wire.ParcelNotHere {
					refused++
					if firstReason == "" && res.Reason != "" {
						firstReason = res.Reason
					}
				}
			}
		}
		if refused < len(a.via) || answered < len(a.via) {
			break
		}
		if !a.store {
			// Not where its presence said: store it instead, now.
			a.sent = time.Time{}
			s.poke()
			break
		}
		if it.State == msgQueued && r.State == wire.ParcelRefused {
			events = append(events, s.failLocked(*it, firstReason, now)...)
		}
	}
	s.mu.Unlock()
	for i := range events {
		s.emit(events[i])
	}
}

// messageStateLocked sets an outbox message's state, in the outbox and in
// the conversation in one transaction, so that a crash between them cannot
// leave the two disagreeing.
func (s *Service) messageStateLocked(id wire.MsgID, state, reason string, now time.Time) []api.Event {
	var mv api.Message
	changed := false
	err := s.st.tx(func(tx *sql.Tx) error {
		// A failed message leaves the outbox: it is not tried again (the
		// conversation keeps it, with the reason).
		change := func() error { return setOutState(tx, id, state, reason) }
		if state == msgFailed {
			change = func() error { return dropOut(tx, id) }
		}
		if err := change(); err != nil {
			return err
		}
		m, ok, err := s.messageTx(tx, id)
		if err != nil || !ok || m.State == msgDelivered {
			return err
		}
		m.State, m.Reason, m.Updated = state, reason, now
		changed = true
		mv = messageView(m)
		return putMessage(tx, m)
	})
	if err != nil || !changed {
		if err != nil && !isClosed(err) {
			s.log.Warn("message state not kept", zap.Error(err))
		}
		return nil
	}
	return []api.Event{{Kind: "message-state", Message: &mv}}
}

// fetchMail asks the supernodes this node was attached to before for its
// mail (those it is attached to push it by themselves).
func (s *Service) fetchMail() {
	if s.net == nil {
		return
	}
	boxes, err := s.st.mailboxes()
	if err != nil {
		return
	}
	cur := s.net.Supernodes()
	var old []identity.NodeID
	for _, b := range boxes {
		if !slices.Contains(cur, b) {
			old = append(old, b)
		}
	}
	for len(old) > 0 {
		n := min(len(old), wire.MaxVia)
		_ = s.net.FetchMail(old[:n])
		old = old[n:]
	}
}

// ---- events

// Subscribe returns a stream of events and a function that ends it. A
// subscriber that does not keep up loses events (the stream says what
// changed; the lists are the truth).
func (s *Service) Subscribe() (<-chan api.Event, func()) {
	ch := make(chan api.Event, eventBuffer)
	s.mu.Lock()
	s.subs[ch] = true
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		if s.subs[ch] {
			delete(s.subs, ch)
			close(ch)
		}
		s.mu.Unlock()
	}
}

func (s *Service) emit(e api.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch := range s.subs {
		select {
		case ch <- e:
		default:
		}
	}
}

// ---- views

func (s *Service) contactViewLocked(c contact, now time.Time) api.Contact {
	v := api.Contact{ID: c.ID.String(), Short: c.ID.Short(), Name: c.Name, Nick: textsafe.Bound(c.Nick, wire.MaxNickname),
		Trust: string(c.Trust), State: c.State, Status: wire.StatusOffline.String(), AppearOffline: c.AppearOffline, Since: c.Since}
	if p := s.pres[c.ID]; p != nil && p.known && c.State == stateContact {
		v.Status, v.Text, v.Online, v.Where = p.shown.Status, textsafe.Bound(p.shown.Text, wire.MaxStatusText), p.shown.Online, p.shown.Where
	}
	if !c.LastSeen.IsZero() {
		t := c.LastSeen
		v.LastSeen = &t
	}
	return v
}

func messageView(m message) api.Message {
	dir := "in"
	if m.Out {
		dir = "out"
	}
	return api.Message{ID: m.ID.String(), Contact: m.Peer.String(), Dir: dir, Time: m.Time,
		Text: m.Text, State: m.State, Reason: m.Reason, Updated: m.Updated}
}

func requestView(r request) api.Request {
	return api.Request{ID: r.ID.String(), Short: r.ID.Short(), Nick: textsafe.Bound(r.Nick, wire.MaxNickname),
		Text: textsafe.Bound(r.Text, wire.MaxRequestText), First: r.First, Last: r.Last, Count: r.Count}
}

// cut bounds s to max bytes on a character boundary.
func cut(s string, max int) string {
	if len(s) <= max {
		return s
	}
	s = s[:max]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// checkText refuses text over max bytes or not UTF-8.
func checkText(what, t string, max int) error {
	if len(t) > max {
		return fmt.Errorf("%w: %s is %d bytes, the limit is %d", ErrTooLong, what, len(t), max)
	}
	if !utf8.ValidString(t) {
		return fmt.Errorf("people: %s is not UTF-8", what)
	}
	if strings.ContainsRune(t, 0) {
		return fmt.Errorf("people: %s holds a NUL character", what)
	}
	return nil
}
