package api

import "time"

// People on the network: the local API's profile, contacts, requests,
// messages and event stream (docs/architecture.md, "People").
//
//	GET  /v1/profile                      Profile
//	POST /v1/profile                      ProfileSet → Profile
//	GET  /v1/contacts                     []Contact
//	POST /v1/contacts                     ContactAdd → Contact (a request is sent)
//	GET  /v1/contacts/requests            []Request
//	POST /v1/contacts/{id}/accept         → Contact
//	POST /v1/contacts/{id}/deny           → {} (nothing is sent)
//	POST /v1/contacts/{id}/remove         → {}
//	POST /v1/contacts/{id}/trust          TrustSet → Contact
//	POST /v1/contacts/{id}/appear-offline AppearOffline → Contact
//	GET  /v1/messages[?contact=ID&limit=N] []Message
//	POST /v1/messages                     MessageSend → Message
//	GET  /v1/events                       text/event-stream of Event

// Profile is the node's person: nickname and status.
type Profile struct {
	ID string `json:"id"`
	// Nick is unique only in context: it is always shown with Short.
	Nick  string `json:"nick"`
	Short string `json:"short"`
	// Status is online, away, busy or invisible.
	Status string `json:"status"`
	Text   string `json:"text,omitempty"`
}

// ProfileSet changes the fields it sets.
type ProfileSet struct {
	Nick   *string `json:"nick,omitempty"`
	Status *string `json:"status,omitempty"`
	Text   *string `json:"text,omitempty"`
}

// Contact is one entry of the roster, with its presence.
type Contact struct {
	ID    string `json:"id"`
	Short string `json:"short"`
	// Name is the user's own name for the contact; Nick the contact's.
	Name string `json:"name,omitempty"`
	Nick string `json:"nick,omitempty"`
	// Trust is contact, trusted or blocked.
	Trust string `json:"trust"`
	// State is contact (both accepted), requested (waiting for their
	// answer) or blocked.
	State string `json:"state"`
	// Status is what the contact shows this node: online, away, busy, or
	// offline (also when invisible or appearing offline to this node).
	Status   string     `json:"status"`
	Text     string     `json:"text,omitempty"`
	Online   bool       `json:"online"`
	LastSeen *time.Time `json:"last_seen,omitempty"`
	// Where are the supernodes holding the contact's presence.
	Where []string `json:"where,omitempty"`
	// AppearOffline is set when this node appears offline to the contact.
	AppearOffline bool      `json:"appear_offline,omitempty"`
	Since         time.Time `json:"since"`
}

// ContactAdd asks for a contact: a request goes to ID.
type ContactAdd struct {
	ID      string `json:"id"`
	Name    string `json:"name,omitempty"`
	Message string `json:"message,omitempty"`
}

// Request is a contact request waiting for the user's answer. Repeated
// requests from one node collapse into one (Count).
type Request struct {
	ID    string    `json:"id"`
	Short string    `json:"short"`
	Nick  string    `json:"nick,omitempty"`
	Text  string    `json:"text,omitempty"`
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
	Count int       `json:"count"`
}

// TrustSet sets a contact's (or any node's) trust: contact, trusted or
// blocked.
type TrustSet struct {
	Trust string `json:"trust"`
}

// AppearOffline makes this node appear offline to one contact (or not).
type AppearOffline struct {
	On bool `json:"on"`
}

// Message is one message of a conversation.
type Message struct {
	ID      string `json:"id"`
	Contact string `json:"contact"`
	// Dir is in or out.
	Dir  string    `json:"dir"`
	Time time.Time `json:"time"`
	Text string    `json:"text"`
	// State, for a message out: queued (held by this node), stored (held
	// by the network for an offline contact), delivered (the contact's
	// node acknowledged it) or failed (Reason says why). For a message
	// in: received.
	State   string    `json:"state"`
	Reason  string    `json:"reason,omitempty"`
	Updated time.Time `json:"updated"`
}

// MessageSend sends a message to a contact (by ID).
type MessageSend struct {
	To   string `json:"to"`
	Text string `json:"text"`
}

// Event is one entry of the event stream: Kind presence (Contact set),
// message (a message in, Message set), message-state (a message out
// changed state), request (Request set) or contact (Contact set: a
// contact was added, changed or, with State "removed", removed).
type Event struct {
	Kind    string   `json:"kind"`
	Contact *Contact `json:"contact,omitempty"`
	Message *Message `json:"message,omitempty"`
	Request *Request `json:"request,omitempty"`
}

// PeopleCounters is what the node's people protocol did and refused since
// it started, in Status (and `canopy status`). Refusals are also logged,
// at most once per 10 s per kind.
type PeopleCounters struct {
	LettersIn  uint64 `json:"letters_in"`
	LettersOut uint64 `json:"letters_out"`
	// RefusedLetters: malformed, unsigned, badly sealed, not for this
	// node, too old, or from another sender than the supernode vouches
	// for.
	RefusedLetters uint64 `json:"refused_letters"`
	// Duplicates: letters already handled (dropped by ID; a message's is
	// acknowledged again).
	Duplicates uint64 `json:"duplicates"`
	// FromBlocked: letters from blocked nodes, dropped.
	FromBlocked uint64 `json:"from_blocked"`
	// RequestsLimited: contact requests over the bounds (too many
	// waiting, arriving too fast, or one node repeating within a minute).
	RequestsLimited uint64 `json:"requests_limited"`
	// Unsolicited: accepts and receipts nobody asked for.
	Unsolicited uint64 `json:"unsolicited"`
	// PresenceRefused: contacts' presence records with a bad signature or
	// bounds; PresenceReplayed: older than one held; PresenceExpired:
	// past their validity or issued in the future. Each shows offline.
	PresenceRefused  uint64 `json:"presence_refused"`
	PresenceReplayed uint64 `json:"presence_replayed"`
	PresenceExpired  uint64 `json:"presence_expired"`
	// StrangerRecords: records of nodes that are no contact of this one
	// (a holder showed what it should not).
	StrangerRecords uint64 `json:"stranger_records"`
	// AnswersHeld: receipts (and accepts) held back from contacts this
	// node hid from; AnswersWaiting: how many wait now.
	AnswersHeld    uint64 `json:"answers_held"`
	AnswersWaiting int    `json:"answers_waiting"`
	// Supernode is the supernode side: other leaves' parcels and records
	// (supernode role only).
	Supernode *PeopleSupernodeCounters `json:"supernode,omitempty"`
}

// PeopleSupernodeCounters is what a supernode did with other leaves'
// people messages: parcels relayed and stored, and refused by reason.
type PeopleSupernodeCounters struct {
	ParcelsRelayed uint64 `json:"parcels_relayed"`
	ParcelsStored  uint64 `json:"parcels_stored"`
	MailHeld       int    `json:"mail_held"`
	MailBytes      int    `json:"mail_bytes"`
	// Parcels refused: the recipient's mailbox full (parcels or bytes),
	// the sender's quota here full, the whole store full, a sender over
	// its rate, a supernode named that is not in the ring.
	RefusedRecipientFull uint64 `json:"refused_recipient_full"`
	RefusedSenderQuota   uint64 `json:"refused_sender_quota"`
	RefusedStoreFull     uint64 `json:"refused_store_full"`
	RefusedRateLimit     uint64 `json:"refused_rate_limit"`
	RefusedNoRoute       uint64 `json:"refused_no_route"`
	// Malformed: people messages refused for their content; of them,
	// PublishesRefused were presence records.
	Malformed        uint64 `json:"malformed"`
	PublishesRefused uint64 `json:"publishes_refused"`
}
