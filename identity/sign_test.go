package identity

import (
	"errors"
	"testing"
)

func TestSignContext(t *testing.T) {
	id, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	other, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("alive, 88 free slots")
	sig, err := id.SignContext("ctx a", msg)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyContext(id.ID, id.Public, "ctx a", msg, sig); err != nil {
		t.Fatalf("good signature: %v", err)
	}
	bad := map[string]error{
		"other context":   VerifyContext(id.ID, id.Public, "ctx b", msg, sig),
		"plain ed25519":   Verify(id.ID, id.Public, msg, sig),
		"changed message": VerifyContext(id.ID, id.Public, "ctx a", []byte("alive, 89 free slots"), sig),
		"wrong node":      VerifyContext(other.ID, id.Public, "ctx a", msg, sig),
		"other key":       VerifyContext(id.ID, other.Public, "ctx a", msg, sig),
		"short key":       VerifyContext(id.ID, id.Public[:31], "ctx a", msg, sig),
		"short signature": VerifyContext(id.ID, id.Public, "ctx a", msg, sig[:63]),
	}
	for name, err := range bad {
		if !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: %v, want ErrBadSignature", name, err)
		}
	}
	if _, err := id.SignContext("", msg); err == nil {
		t.Error("an empty context (plain Ed25519) was accepted for signing")
	}
	if err := VerifyContext(id.ID, id.Public, "", msg, id.Sign(msg)); !errors.Is(err, ErrBadSignature) {
		t.Errorf("empty context on verify: %v, want ErrBadSignature", err)
	}
}
