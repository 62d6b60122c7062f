package loglimit

import (
	"sync"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	l := New[string](10 * time.Second)
	t0 := time.Unix(1000, 0)
	if ok, held := l.Allow("a", t0); !ok || held != 0 {
		t.Fatalf("first line: %v %d", ok, held)
	}
	for i := range 5 {
		if ok, _ := l.Allow("a", t0.Add(time.Duration(i)*time.Second)); ok {
			t.Fatalf("line %d within the interval was let through", i)
		}
	}
	if ok, _ := l.Allow("b", t0.Add(time.Second)); !ok {
		t.Fatal("another key is paced on its own")
	}
	if ok, held := l.Allow("a", t0.Add(10*time.Second)); !ok || held != 5 {
		t.Fatalf("after the interval: %v, held %d, want 5", ok, held)
	}
	if ok, held := l.Allow("a", t0.Add(20*time.Second)); !ok || held != 0 {
		t.Fatalf("the count starts again: %v %d", ok, held)
	}
}

func TestLimiterZeroValueAndConcurrency(t *testing.T) {
	l := &Limiter[int]{Every: time.Hour}
	now := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	let := 0
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, _ := l.Allow(1, now); ok {
				mu.Lock()
				let++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if let != 1 {
		t.Fatalf("%d of 50 concurrent lines let through, want 1", let)
	}
	if ok, held := l.Allow(1, now.Add(time.Hour)); !ok || held != 49 {
		t.Fatalf("held %d, want 49", held)
	}
}
