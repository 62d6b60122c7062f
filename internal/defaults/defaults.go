// Package defaults holds what every component's withDefaults shares: the
// rule that a setting at or below zero means "the default". (A setting whose
// zero alone means the default, and whose negative values mean something,
// uses cmp.Or instead.)
package defaults

import "cmp"

// Positive returns v when it is above zero, otherwise def.
func Positive[T cmp.Ordered](v, def T) T {
	var zero T
	if v > zero {
		return v
	}
	return def
}
