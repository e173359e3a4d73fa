package gateway

// allow.go holds the FastCGI front's allow-list of client networks, like
// FPM's listen.allowed_clients.

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// allowList is the networks whose clients the FastCGI front serves.
type allowList []netip.Prefix

// parseAllowList parses networks in CIDR notation ("10.0.0.0/8") and single
// addresses ("::1", "10.0.0.7"). An IPv4 network also admits the same
// addresses written as IPv4-mapped IPv6 ones, which a dual-stack listener
// reports.
func parseAllowList(entries []string) (allowList, error) {
	list := make(allowList, 0, len(entries))
	for _, e := range entries {
		e = strings.TrimSpace(e)
		var p netip.Prefix
		if strings.Contains(e, "/") {
			var err error
			if p, err = netip.ParsePrefix(e); err != nil {
				return nil, fmt.Errorf("%q is not an IP address or CIDR network", e)
			}
			p = p.Masked()
		} else {
			a, err := netip.ParseAddr(e)
			if err != nil || a.Zone() != "" {
				return nil, fmt.Errorf("%q is not an IP address or CIDR network", e)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		list = append(list, p)
	}
	return list, nil
}

// allows reports whether a client at addr may connect. Clients of a Unix
// socket have no IP address; the socket's file mode decides who reaches
// it, so they are allowed.
func (l allowList) allows(addr net.Addr) bool {
	var ip netip.Addr
	switch a := addr.(type) {
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	case *net.UnixAddr:
		return true
	default:
		ap, err := netip.ParseAddrPort(addr.String())
		if err != nil {
			return false
		}
		ip = ap.Addr()
	}
	ip = ip.Unmap()
	for _, p := range l {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
