package identity

import (
	"crypto/ed25519"
	"fmt"
)

// SignContext signs msg with the node's key under Ed25519ctx (RFC 8032
// §5.1) with the given context string. A signature made for one context
// never verifies under another, nor as a plain Ed25519 signature (Sign,
// TLS certificates), so a signed gossip packet can never pass for a signed
// metadata record or a transfer offer, whatever its bytes. context must be
// 1 to 255 bytes: an empty one would make a plain Ed25519 signature.
func (id *Identity) SignContext(context string, msg []byte) ([]byte, error) {
	if context == "" || len(context) > 255 {
		return nil, fmt.Errorf("identity: sign: context is %d bytes, want 1 to 255", len(context))
	}
	sig, err := id.Private.Sign(nil, msg, &ed25519.Options{Context: context})
	if err != nil {
		return nil, fmt.Errorf("identity: sign: %w", err)
	}
	return sig, nil
}

// VerifyContext checks that sig is pub's Ed25519ctx signature of msg under
// context and that pub belongs to want. Any failure wraps ErrBadSignature.
func VerifyContext(want NodeID, pub ed25519.PublicKey, context string, msg, sig []byte) error {
	if context == "" || len(context) > 255 {
		return fmt.Errorf("%w: context is %d bytes, want 1 to 255", ErrBadSignature, len(context))
	}
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: public key is %d bytes", ErrBadSignature, len(pub))
	}
	if IDFromPublicKey(pub) != want {
		return fmt.Errorf("%w: key does not belong to %s", ErrBadSignature, want.Short())
	}
	if err := ed25519.VerifyWithOptions(pub, msg, sig, &ed25519.Options{Context: context}); err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	return nil
}
