package ice

import (
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/canopy-p2p/canopy/internal/leaktest"
)

// TestMain fails the package's tests if they leave goroutines behind.
func TestMain(m *testing.M) { leaktest.Main(m) }

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		min, max uint16
		ok       bool
	}{{0, 0, true}, {40000, 40100, true}, {5000, 5000, true}, {0, 100, false}, {100, 0, false}, {200, 100, false}} {
		err := Config{UDPPortMin: c.min, UDPPortMax: c.max}.Validate()
		if (err == nil) != c.ok {
			t.Errorf("range %d-%d: err = %v", c.min, c.max, err)
		}
	}
}

func TestICEServers(t *testing.T) {
	_, wc := NewAPI(Config{
		STUN: []string{"stun:192.0.2.1:3478", "stun:192.0.2.2:3478"},
		TURN: []TURNServer{{URL: "turn:192.0.2.1:3478?transport=udp", Username: "u", Credential: "p"}},
	})
	if len(wc.ICEServers) != 2 {
		t.Fatalf("ICE servers %+v", wc.ICEServers)
	}
	if s := wc.ICEServers[0]; len(s.URLs) != 2 || s.Username != "" {
		t.Errorf("STUN entry %+v", s)
	}
	if s := wc.ICEServers[1]; len(s.URLs) != 1 || s.Username != "u" || s.Credential != "p" {
		t.Errorf("TURN entry %+v", s)
	}
	if _, wc := NewAPI(DefaultConfig()); len(wc.ICEServers) != 0 {
		t.Errorf("default config has ICE servers %+v", wc.ICEServers)
	}
}

// TestLoopbackOnlyConnects connects two peer connections built from
// LoopbackOnly APIs and checks that they gathered loopback candidates only
// and exchange a message.
func TestLoopbackOnlyConnects(t *testing.T) {
	api, wc := NewAPI(Config{LoopbackOnly: true, UDPPortMin: 0, UDPPortMax: 0})
	a, err := api.NewPeerConnection(wc)
	if err != nil {
		t.Fatal(err)
	}
	defer a.GracefulClose()
	b, err := api.NewPeerConnection(wc)
	if err != nil {
		t.Fatal(err)
	}
	defer b.GracefulClose()

	got := make(chan string, 1)
	b.OnDataChannel(func(dc *webrtc.DataChannel) {
		dc.OnMessage(func(m webrtc.DataChannelMessage) {
			select {
			case got <- string(m.Data):
			default:
			}
		})
	})
	dc, err := a.CreateDataChannel("t", nil)
	if err != nil {
		t.Fatal(err)
	}
	opened := make(chan struct{})
	dc.OnOpen(func() { close(opened) })

	exchange := func(from, to *webrtc.PeerConnection, desc webrtc.SessionDescription) {
		done := webrtc.GatheringCompletePromise(from)
		if err := from.SetLocalDescription(desc); err != nil {
			t.Fatal(err)
		}
		<-done
		if err := to.SetRemoteDescription(*from.LocalDescription()); err != nil {
			t.Fatal(err)
		}
	}
	offer, _ := a.CreateOffer(nil)
	exchange(a, b, offer)
	answer, _ := b.CreateAnswer(nil)
	exchange(b, a, answer)

	seen := 0
	for _, pc := range []*webrtc.PeerConnection{a, b} {
		stats := pc.GetStats()
		for _, s := range stats {
			if c, ok := s.(webrtc.ICECandidateStats); ok && c.Type == webrtc.StatsTypeLocalCandidate {
				seen++
				if c.IP != "127.0.0.1" && c.IP != "::1" {
					t.Errorf("non-loopback local candidate %s", c.IP)
				}
			}
		}
	}

	if seen == 0 {
		t.Error("no local candidates in stats")
	}

	select {
	case <-opened:
	case <-time.After(10 * time.Second):
		t.Fatal("data channel did not open")
	}
	if err := dc.SendText("hello"); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m != "hello" {
			t.Fatalf("got %q", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no message")
	}
}
