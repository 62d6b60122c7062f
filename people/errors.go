package people

import "errors"

var (
	// ErrConfig wraps every configuration error (Config.Validate).
	ErrConfig = errors.New("people: bad configuration")
	// ErrBadLetter wraps a letter refused for its content: malformed,
	// unsigned, badly sealed, over its bounds.
	ErrBadLetter = errors.New("people: bad letter")
	// ErrTooLong is returned for a text over its bound.
	ErrTooLong = errors.New("people: text too long")
	// ErrNotContact is returned for an action that needs a contact.
	ErrNotContact = errors.New("people: not a contact")
	// ErrNoRequest is returned to accept or deny a request that is not
	// there.
	ErrNoRequest = errors.New("people: no such contact request")
	// ErrNotFound is returned by Add when no node with the ID answers.
	ErrNotFound = errors.New("people: no node with this ID is on the network")
	// ErrSelf is returned for an action on this node's own ID.
	ErrSelf = errors.New("people: that is this node's own ID")
	// ErrBlocked is returned for an action on a blocked node.
	ErrBlocked = errors.New("people: that node is blocked")
	// ErrDamaged is returned by Open when people.db is damaged: contacts
	// are the user's, so the node refuses to start rather than discard them.
	ErrDamaged = errors.New("people: database is damaged")
)
