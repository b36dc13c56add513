package router

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Policy decides which destinations the SOCKS5 server may connect to. It
// is checked on the address actually connected to, after DNS resolution
// (net.Dialer.ControlContext), so a name that resolves to a refused
// address once and to an allowed one the next time (DNS rebinding) gains
// nothing.
//
// By default every address is allowed except loopback, link-local (with
// the cloud metadata service 169.254.169.254), unspecified, broadcast and
// multicast ones, and the few metadata addresses outside those ranges.
// RFC 1918 private ranges are allowed: the router sits inside the company
// network to reach the company's own relay. The zero Policy is the default.
type Policy struct {
	prefixes []netip.Prefix
	hosts    []hostPattern
}

// hostPattern is one host:port entry of --allow.
type hostPattern struct {
	ip       netip.Addr // set when the host is an IP address
	name     string     // lower case, no trailing dot; "" when ip is set
	wildcard bool       // name is "*.suffix": any subdomain of suffix
	port     int        // -1: any port
}

// ParsePolicy returns the default policy plus exceptions: each entry of
// allow is a CIDR ("10.1.0.0/16", "127.0.0.1/32"), an IP address, or a
// host:port pattern ("relay.corp.example:3101", "*.corp.example:443",
// "127.0.0.1:8443", "[::1]:*") whose destinations are allowed even when
// the default refuses them. A name pattern matches the name the client
// asked for, whatever it resolves to.
func ParsePolicy(allow []string) (Policy, error) {
	var p Policy
	for _, s := range allow {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if pfx, err := netip.ParsePrefix(s); err == nil {
			p.prefixes = append(p.prefixes, pfx.Masked())
			continue
		}
		if ip, err := netip.ParseAddr(s); err == nil {
			p.prefixes = append(p.prefixes, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
			continue
		}
		host, port, err := net.SplitHostPort(s)
		if err != nil || host == "" {
			return Policy{}, fmt.Errorf("allow %q: want a CIDR, an IP address or host:port (port may be *)", s)
		}
		hp := hostPattern{port: -1}
		if port != "*" {
			n, err := strconv.ParseUint(port, 10, 16)
			if err != nil {
				return Policy{}, fmt.Errorf("allow %q: port %q is neither a number nor *", s, port)
			}
			hp.port = int(n)
		}
		if ip, err := netip.ParseAddr(host); err == nil {
			hp.ip = ip.Unmap()
		} else {
			hp.name = normName(host)
			if rest, ok := strings.CutPrefix(hp.name, "*."); ok {
				hp.name, hp.wildcard = rest, true
			}
			if hp.name == "" || strings.Contains(hp.name, "*") {
				return Policy{}, fmt.Errorf("allow %q: a wildcard is allowed only as the first label (*.example.com)", s)
			}
		}
		p.hosts = append(p.hosts, hp)
	}
	return p, nil
}

func normName(s string) string { return strings.TrimSuffix(strings.ToLower(s), ".") }

// metadataAddrs are cloud metadata services outside the refused ranges:
// AWS's IPv6 endpoint (in fc00::/7, which we allow like RFC 1918) and
// Alibaba Cloud's (in 100.64.0.0/10, RFC 6598 shared address space).
// 169.254.169.254 is link-local and refused with its range.
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("fd00:ec2::254"),
	netip.MustParseAddr("100.100.100.200"),
}

// thisNetwork is 0.0.0.0/8, "this host on this network" (RFC 791 §3.2,
// RFC 6890 §2.2.2): Linux connects 0.0.0.0 to the local host.
var thisNetwork = netip.MustParsePrefix("0.0.0.0/8")

// dangerClass names why the default refuses ip, or "" if it does not.
func dangerClass(ip netip.Addr) string {
	ip = ip.Unmap() // ::ffff:127.0.0.1 is 127.0.0.1
	switch {
	case ip.IsLoopback():
		return "loopback"
	case ip.IsLinkLocalUnicast():
		return "link-local"
	case ip.IsUnspecified() || thisNetwork.Contains(ip):
		return "unspecified"
	case ip.IsMulticast():
		return "multicast"
	case ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "broadcast"
	}
	for _, m := range metadataAddrs {
		if ip == m {
			return "cloud metadata"
		}
	}
	return ""
}

// DeniedError is a destination the policy refuses.
type DeniedError struct {
	Dest  netip.AddrPort // the resolved address
	Name  string         // the name the client asked for, if any
	Class string         // "loopback", "link-local", …
}

func (e *DeniedError) Error() string {
	what := e.Dest.String()
	if e.Name != "" {
		what = e.Name + " (" + what + ")"
	}
	return fmt.Sprintf("destination %s is %s: refused by policy (see --allow)", what, e.Class)
}

// Check returns a *DeniedError if the policy refuses dest, the address
// about to be connected to; name is the host name the client asked for
// ("" if it sent an address).
func (p Policy) Check(name string, dest netip.AddrPort) error {
	ip := dest.Addr().Unmap()
	class := dangerClass(ip)
	if class == "" {
		return nil
	}
	for _, pfx := range p.prefixes {
		if pfx.Contains(ip) {
			return nil
		}
	}
	name = normName(name)
	for _, h := range p.hosts {
		if h.port >= 0 && h.port != int(dest.Port()) {
			continue
		}
		switch {
		case h.ip.IsValid():
			if h.ip == ip {
				return nil
			}
		case h.wildcard:
			if strings.HasSuffix(name, "."+h.name) {
				return nil
			}
		case name != "" && name == h.name:
			return nil
		}
	}
	return &DeniedError{Dest: netip.AddrPortFrom(ip, dest.Port()), Name: name, Class: class}
}
