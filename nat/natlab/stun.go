package natlab

import (
	"errors"
	"net"
	"net/netip"
	"sync"

	"github.com/pion/stun/v4"
)

// stunPorts are the two ports of the lab's STUN server, on each of its two
// addresses: 3478 is STUN's registered port (RFC 8489 section 18.6).
var stunPorts = [2]uint16{3478, 3479}

// stunServer is a minimal RFC 5780 STUN server: it answers Binding requests
// on two addresses times two ports and honours CHANGE-REQUEST by answering
// from the other address and/or port. It exists for miniupnpd, whose STUN
// check (ext_perform_stun) sends four requests, without and with each
// change flag, and enables port forwarding only if all four answers arrive
// with the router's own address and port: proof that its WAN is reachable
// from outside, i.e. not behind a filtering NAT.
type stunServer struct {
	host  *Host
	conns [2][2]*net.UDPConn // [address][port]
	wg    sync.WaitGroup
}

// startSTUN serves STUN on the first two addresses of h.
func startSTUN(h *Host) (*stunServer, error) {
	s := &stunServer{host: h}
	for i := range 2 {
		for j, port := range stunPorts {
			c, err := h.ListenPacket("udp4", netip.AddrPortFrom(h.Addrs[i], port).String())
			if err != nil {
				s.close()
				return nil, err
			}
			s.conns[i][j] = c.(*net.UDPConn)
		}
	}
	for i := range 2 {
		for j := range 2 {
			s.wg.Go(func() { s.serve(i, j) })
		}
	}
	return s, nil
}

// addr is the server's primary transport address, the one clients use.
func (s *stunServer) addr() netip.AddrPort {
	return netip.AddrPortFrom(s.host.Addrs[0], stunPorts[0])
}

func (s *stunServer) close() {
	for i := range 2 {
		for j := range 2 {
			if c := s.conns[i][j]; c != nil {
				c.Close()
			}
		}
	}
	s.wg.Wait()
}

// serve answers the requests that arrive on conns[i][j].
func (s *stunServer) serve(i, j int) {
	buf := make([]byte, 1500)
	for {
		n, from, err := s.conns[i][j].ReadFromUDPAddrPort(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		req := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
		if req.Decode() != nil || req.Type != stun.BindingRequest {
			continue
		}
		// CHANGE-REQUEST (RFC 5780 section 7.2): flag 0x4 is "change IP",
		// 0x2 "change port".
		ai, pj := i, j
		if v, err := req.Get(stun.AttrChangeRequest); err == nil && len(v) == 4 {
			if v[3]&0x4 != 0 {
				ai = 1 - i
			}
			if v[3]&0x2 != 0 {
				pj = 1 - j
			}
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		origin := netip.AddrPortFrom(s.host.Addrs[ai], stunPorts[pj])
		other := netip.AddrPortFrom(s.host.Addrs[1-i], stunPorts[1-j])
		resp, err := stun.Build(
			stun.NewTransactionIDSetter(req.TransactionID),
			stun.BindingSuccess,
			&stun.XORMappedAddress{IP: from.Addr().AsSlice(), Port: int(from.Port())},
			// For RFC 3489 clients.
			&stun.MappedAddress{IP: from.Addr().AsSlice(), Port: int(from.Port())},
			&stun.ResponseOrigin{IP: origin.Addr().AsSlice(), Port: int(origin.Port())},
			&stun.OtherAddress{IP: other.Addr().AsSlice(), Port: int(other.Port())},
		)
		if err != nil {
			continue
		}
		_, _ = s.conns[ai][pj].WriteToUDPAddrPort(resp.Raw, from)
	}
}
