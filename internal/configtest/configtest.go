// Package configtest checks, in each component's tests, the promise every
// Canopy config makes: a zero Config means the defaults. A component's
// withDefaults fills the zero fields and DefaultConfig returns them all set,
// so the two must agree — except for the Logger, which DefaultConfig leaves
// nil ("may be nil") and withDefaults replaces with one that discards.
package configtest

import (
	"reflect"
	"testing"
)

// ZeroMeansDefault fails t unless filled (the zero Config after
// withDefaults) equals def (DefaultConfig) field by field, apart from a
// field named Logger, which filled must have set and def may leave nil.
func ZeroMeansDefault[C any](t testing.TB, filled, def C) {
	t.Helper()
	got, want := reflect.ValueOf(&filled).Elem(), reflect.ValueOf(&def).Elem()
	if got.Kind() != reflect.Struct {
		t.Fatalf("configtest: %T is not a struct", filled)
	}
	if lg := got.FieldByName("Logger"); lg.IsValid() {
		if lg.IsNil() {
			t.Errorf("%T: withDefaults left the Logger nil", filled)
		}
		lg.SetZero()
		want.FieldByName("Logger").SetZero()
	}
	if !reflect.DeepEqual(filled, def) {
		t.Errorf("%T{}.withDefaults() = %+v, want DefaultConfig() = %+v", filled, filled, def)
	}
}
