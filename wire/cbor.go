package wire

import (
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// encMode encodes deterministically (RFC 8949 core deterministic encoding), so
// that signed bodies have one encoding.
// decMode bounds every structure a peer can send: nesting, element counts and
// string lengths, and it rejects duplicate map keys.
var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	var err error
	encMode, err = cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(fmt.Sprintf("wire: cbor enc mode: %v", err))
	}
	decMode, err = cbor.DecOptions{
		MaxNestedLevels:  8,
		MaxArrayElements: MaxListLen,
		MaxMapPairs:      64,
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsForbidden,
	}.DecMode()
	if err != nil {
		panic(fmt.Sprintf("wire: cbor dec mode: %v", err))
	}
}
