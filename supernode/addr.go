package supernode

import (
	"net"
	"strconv"
)

// splitHostPort splits host:port and parses the port.
func splitHostPort(addr string) (string, int, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.Atoi(ps)
	if err != nil {
		return "", 0, err
	}
	return host, p, nil
}
