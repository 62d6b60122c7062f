package gossip

import (
	"testing"

	"go.uber.org/zap"
)

// TestEventQueueDropsWhenFull checks the stated policy: a blocked callback
// makes the queue fill, newer events are dropped and counted, and close still
// delivers what was queued.
func TestEventQueueDropsWhenFull(t *testing.T) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	var got []string
	q := newEventQueue(1, func(ev Event) {
		entered <- struct{}{}
		<-release
		got = append(got, ev.Member.Name)
	}, zap.NewNop())

	q.push(Event{Kind: EventJoin, Member: Member{Name: "1"}})
	<-entered // the dispatcher holds event 1, the queue is empty
	q.push(Event{Kind: EventJoin, Member: Member{Name: "2"}})
	q.push(Event{Kind: EventJoin, Member: Member{Name: "3"}})
	q.push(Event{Kind: EventJoin, Member: Member{Name: "4"}})
	if n := q.dropped.Load(); n != 2 {
		t.Fatalf("dropped %d, want 2", n)
	}
	close(release)
	q.close()
	if len(got) != 2 || got[0] != "1" || got[1] != "2" {
		t.Fatalf("delivered %v, want [1 2]", got)
	}
	// A push after close is ignored, not a panic.
	q.push(Event{Kind: EventLeave, Member: Member{Name: "5"}})
	q.close()
}

func TestEventKindString(t *testing.T) {
	for k, want := range map[EventKind]string{EventJoin: "join", EventLeave: "leave", EventUpdate: "update", 0: "unknown"} {
		if got := k.String(); got != want {
			t.Errorf("%d: got %q, want %q", k, got, want)
		}
	}
}
