package people

import (
	"crypto/rand"
	"crypto/sha512"
	"fmt"

	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/nacl/box"

	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/wire"
)

// A sealed letter (wire.Parcel.Sealed) begins with one byte saying how it
// is sealed:
//
//	sealPlain (1): the encoded, signed letter follows. Only for contact
//	               requests: the requester does not know the recipient's box
//	               key yet. Relaying supernodes can read a request's nickname
//	               and note; nothing else travels this way.
//	sealBox   (2): a 24-byte nonce, the sender's 32-byte X25519 public key,
//	               then NaCl box (X25519, XSalsa20-Poly1305) of the encoded,
//	               signed letter to the recipient's X25519 key.
const (
	sealPlain byte = 1
	sealBox   byte = 2
)

// BoxKeys are a node's X25519 keys for sealing letters. They are derived
// from the Ed25519 seed as RFC 8032 derives the signing scalar (SHA-512 of
// the seed, first half, clamped), so they need no file of their own and
// are the same after every restart; the public half is published, signed,
// in contact requests and accepts.
type BoxKeys struct {
	Public, private [32]byte
}

// DeriveBoxKeys derives id's box keys.
func DeriveBoxKeys(id *identity.Identity) (BoxKeys, error) {
	h := sha512.Sum512(id.Private.Seed())
	var k BoxKeys
	copy(k.private[:], h[:32])
	k.private[0] &= 248
	k.private[31] &= 127
	k.private[31] |= 64
	pub, err := curve25519.X25519(k.private[:], curve25519.Basepoint)
	if err != nil {
		return k, fmt.Errorf("people: box key: %w", err)
	}
	copy(k.Public[:], pub)
	return k, nil
}

// sealLetter encodes and seals a signed letter: in a box to the recipient's
// key when to is set, plain otherwise.
func sealLetter(l *wire.Letter, mine BoxKeys, to []byte) ([]byte, error) {
	b, err := wire.EncodeLetter(l)
	if err != nil {
		return nil, err
	}
	if len(to) == 0 {
		return append([]byte{sealPlain}, b...), nil
	}
	if len(to) != 32 {
		return nil, fmt.Errorf("people: recipient's box key is %d bytes", len(to))
	}
	var nonce, peer [32]byte
	if _, err := rand.Read(nonce[:24]); err != nil {
		return nil, err
	}
	copy(peer[:], to)
	var n24 [24]byte
	copy(n24[:], nonce[:24])
	out := make([]byte, 0, 1+24+32+len(b)+box.Overhead)
	out = append(out, sealBox)
	out = append(out, n24[:]...)
	out = append(out, mine.Public[:]...)
	out = box.Seal(out, b, &n24, &peer, &mine.private)
	if len(out) > wire.MaxSealed {
		return nil, fmt.Errorf("%w: sealed letter of %d bytes exceeds %d", ErrTooLong, len(out), wire.MaxSealed)
	}
	return out, nil
}

// openLetter opens a sealed letter and checks it (bounds, signature). It
// returns the letter, whether it came in a box, and the sender's box key.
func openLetter(sealed []byte, mine BoxKeys) (wire.Letter, bool, []byte, error) {
	if len(sealed) < 1 {
		return wire.Letter{}, false, nil, fmt.Errorf("%w: empty", ErrBadLetter)
	}
	var plain []byte
	var senderKey []byte
	boxed := false
	switch sealed[0] {
	case sealPlain:
		plain = sealed[1:]
	case sealBox:
		if len(sealed) < 1+24+32+box.Overhead {
			return wire.Letter{}, false, nil, fmt.Errorf("%w: box of %d bytes", ErrBadLetter, len(sealed))
		}
		var n24 [24]byte
		var peer [32]byte
		copy(n24[:], sealed[1:25])
		copy(peer[:], sealed[25:57])
		var ok bool
		plain, ok = box.Open(nil, sealed[57:], &n24, &peer, &mine.private)
		if !ok {
			return wire.Letter{}, false, nil, fmt.Errorf("%w: box does not open with this node's key", ErrBadLetter)
		}
		boxed, senderKey = true, peer[:]
	default:
		return wire.Letter{}, false, nil, fmt.Errorf("%w: sealing %d", ErrBadLetter, sealed[0])
	}
	l, err := wire.DecodeLetter(plain)
	if err != nil {
		return l, false, nil, fmt.Errorf("%w: %w", ErrBadLetter, err)
	}
	if err := l.Check(); err != nil {
		return l, false, nil, fmt.Errorf("%w: %w", ErrBadLetter, err)
	}
	if !boxed && l.Kind != wire.LetterRequest {
		return l, false, nil, fmt.Errorf("%w: a %s must come in a box", ErrBadLetter, l.Kind)
	}
	if boxed && len(l.BoxKey) == 32 && string(l.BoxKey) != string(senderKey) {
		return l, false, nil, fmt.Errorf("%w: the letter's box key is not the one it was sealed with", ErrBadLetter)
	}
	return l, boxed, senderKey, nil
}
