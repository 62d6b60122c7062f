package defaults

import (
	"testing"
	"time"
)

func TestPositive(t *testing.T) {
	if got := Positive(0, 3); got != 3 {
		t.Errorf("Positive(0, 3) = %d", got)
	}
	if got := Positive(-1, 3); got != 3 {
		t.Errorf("Positive(-1, 3) = %d", got)
	}
	if got := Positive(2, 3); got != 2 {
		t.Errorf("Positive(2, 3) = %d", got)
	}
	if got := Positive(time.Duration(0), time.Second); got != time.Second {
		t.Errorf("Positive(0s, 1s) = %v", got)
	}
	if got := Positive(0.5, 2.0); got != 0.5 {
		t.Errorf("Positive(0.5, 2) = %v", got)
	}
}
