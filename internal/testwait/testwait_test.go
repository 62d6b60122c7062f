package testwait

import (
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestForReturnsOnceTheConditionHolds(t *testing.T) {
	var calls atomic.Int32
	start := time.Now()
	if err := For(10*time.Second, func() bool { return calls.Add(1) == 5 }); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 5 {
		t.Fatalf("cond called %d times, want 5", n)
	}
	// Four sleeps of 1, 2, 4 and 8 ms: far from the 10 s allowed.
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v", d)
	}
}

func TestForTimesOut(t *testing.T) {
	start := time.Now()
	err := For(100*time.Millisecond, func() bool { return false })
	if err == nil || !strings.Contains(err.Error(), "100ms") {
		t.Fatalf("err = %v, want a timeout naming 100ms", err)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("gave up after %v, before the timeout", d)
	}
}

func TestForChecksOnceMoreAtTheDeadline(t *testing.T) {
	start := time.Now()
	err := For(50*time.Millisecond, func() bool { return time.Since(start) >= 50*time.Millisecond })
	if err != nil {
		t.Fatalf("a condition that holds at the deadline failed: %v", err)
	}
}

// fatalRecorder stands in for the test, so that a failing Until can be
// checked without failing this test.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit() // like testing.T.Fatalf, Until must not return
}

func TestUntilFailsWithTheMessage(t *testing.T) {
	f := &fatalRecorder{TB: t}
	returned := false
	done := make(chan struct{})
	go func() {
		defer close(done)
		Until(f, 20*time.Millisecond, func() bool { return false }, "the %s never came", "bus")
		returned = true
	}()
	<-done
	if returned {
		t.Fatal("Until returned after the timeout instead of failing")
	}
	if !strings.Contains(f.msg, "the bus never came") || !strings.Contains(f.msg, "20ms") {
		t.Fatalf("message %q: want the caller's message and the timeout", f.msg)
	}
}

func TestUntilPassesWhenTheConditionHolds(t *testing.T) {
	f := &fatalRecorder{TB: t}
	Until(f, time.Second, func() bool { return true }, "unused")
	if f.msg != "" {
		t.Fatalf("failed with %q", f.msg)
	}
}
