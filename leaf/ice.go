package leaf

import (
	"slices"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/canopy-p2p/canopy/wire"
)

// maxTURNSupernodes is how many supernodes' relays a transfer gathers relay
// candidates from. Each relay candidate is an allocation on that supernode's
// relay, which counts against the leaf's quota there (relay.Quotas), and
// a second relay covers the first one failing during a transfer.
const maxTURNSupernodes = 2

// iceReceived records a supernode's STUN/TURN services for this leaf.
func (l *Leaf) iceReceived(a *attachment, ice wire.ICEServers) {
	a.mu.Lock()
	a.ice = ice
	a.mu.Unlock()
}

// ICEServers is what a new WebRTC connection gathers candidates with: the
// STUN services of every attached supernode (server-reflexive candidates) and
// the TURN relays of the longest-attached ones, with this leaf's credentials
// (relay candidates, the last resort). Expired credentials are left out. It
// is called for every connection, because attachments and credentials change.
func (l *Leaf) ICEServers() []webrtc.ICEServer {
	now := time.Now().Unix()
	l.mu.Lock()
	atts := make([]*attachment, 0, len(l.atts))
	for _, a := range l.atts {
		atts = append(atts, a)
	}
	l.mu.Unlock()
	slices.SortFunc(atts, func(a, b *attachment) int { return a.since.Compare(b.since) })
	var stun []string
	var out []webrtc.ICEServer
	turns := 0
	for _, a := range atts {
		a.mu.Lock()
		ice := a.ice
		a.mu.Unlock()
		relayed := false
		for _, s := range ice.Servers {
			if s.Username == "" {
				for _, u := range s.URLs {
					if !slices.Contains(stun, u) {
						stun = append(stun, u)
					}
				}
				continue
			}
			if turns >= maxTURNSupernodes || (s.Expires != 0 && s.Expires <= now) {
				continue
			}
			out = append(out, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
			relayed = true
		}
		if relayed {
			turns++
		}
	}
	if len(stun) > 0 {
		out = append([]webrtc.ICEServer{{URLs: stun}}, out...)
	}
	return out
}

// DiscoveryServers are the attached supernodes' STUN services for NAT
// behaviour discovery (host:port), longest-attached first.
func (l *Leaf) DiscoveryServers() []string {
	l.mu.Lock()
	atts := make([]*attachment, 0, len(l.atts))
	for _, a := range l.atts {
		atts = append(atts, a)
	}
	l.mu.Unlock()
	slices.SortFunc(atts, func(a, b *attachment) int { return a.since.Compare(b.since) })
	var out []string
	for _, a := range atts {
		a.mu.Lock()
		d := a.ice.Discovery
		a.mu.Unlock()
		if d != "" && !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}
