package router

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
)

// SOCKS5 wire format, RFC 1928. Both sides live in this package: the
// client (dialer.go) and the server (server.go) share the address codec, so
// what one writes the other reads, and the fuzz test covers both.
//
// We hand-write it rather than use a library: the client needs the reply
// code as a typed *ProxyError (golang.org/x/net/proxy only returns a
// string), and the server must answer a policy refusal found at dial time
// with reply 0x02 and cut slow handshakes (github.com/things-go/go-socks5,
// the maintained server, maps dial errors to 0x04/0x05 by matching error
// strings and has no handshake deadline). The protocol is ~150 lines.

const (
	socksVersion = 0x05 // RFC 1928 §3: VER is X'05'

	// MaxMethods is the most authentication methods a greeting may offer:
	// NMETHODS is one octet (RFC 1928 §3).
	MaxMethods = 255
	// MaxDomainLen is the longest host name a request may carry: the
	// domain form of DST.ADDR has a one-octet length (RFC 1928 §5).
	MaxDomainLen = 255

	methodNoAuth       = 0x00 // RFC 1928 §3 X'00' NO AUTHENTICATION REQUIRED
	methodNoAcceptable = 0xFF // RFC 1928 §3 X'FF' NO ACCEPTABLE METHODS

	// Commands, RFC 1928 §4.
	CmdConnect      = 0x01
	CmdBind         = 0x02
	CmdUDPAssociate = 0x03

	// Address types, RFC 1928 §5.
	atypIPv4   = 0x01
	atypDomain = 0x03
	atypIPv6   = 0x04
)

// Reply codes, RFC 1928 §6.
const (
	RepSucceeded            = 0x00
	RepGeneralFailure       = 0x01
	RepNotAllowed           = 0x02
	RepNetworkUnreachable   = 0x03
	RepHostUnreachable      = 0x04
	RepConnectionRefused    = 0x05
	RepTTLExpired           = 0x06
	RepCommandNotSupported  = 0x07
	RepAddrTypeNotSupported = 0x08
)

// ReplyText is the RFC 1928 §6 name of a reply code.
func ReplyText(rep byte) string {
	switch rep {
	case RepSucceeded:
		return "succeeded"
	case RepGeneralFailure:
		return "general SOCKS server failure"
	case RepNotAllowed:
		return "connection not allowed by ruleset"
	case RepNetworkUnreachable:
		return "network unreachable"
	case RepHostUnreachable:
		return "host unreachable"
	case RepConnectionRefused:
		return "connection refused"
	case RepTTLExpired:
		return "TTL expired"
	case RepCommandNotSupported:
		return "command not supported"
	case RepAddrTypeNotSupported:
		return "address type not supported"
	}
	return fmt.Sprintf("unassigned reply code 0x%02x", rep)
}

// errSOCKS reports a message that breaks RFC 1928.
var errSOCKS = errors.New("malformed SOCKS5 message")

// errAddrType is a DST.ADDR of an unknown type: the server answers it with
// X'08' (RFC 1928 §6) since the rest of the message cannot be parsed.
var errAddrType = fmt.Errorf("%w: unknown address type", errSOCKS)

// Addr is a SOCKS5 address: a host name (ATYP X'03', resolved by the
// server) or an IP address (ATYP X'01' or X'04'), and a port.
type Addr struct {
	Name string     // host name; empty when IP is used
	IP   netip.Addr // valid only when Name is empty
	Port uint16
}

// String returns host:port.
func (a Addr) String() string {
	h := a.Name
	if h == "" {
		h = a.IP.String()
	}
	return net.JoinHostPort(h, strconv.Itoa(int(a.Port)))
}

// parseAddr splits a dial target. Host names stay names so the proxy
// resolves them (the point of ATYP X'03': the client may have no DNS of
// the proxy's network).
func parseAddr(target string) (Addr, error) {
	host, port, err := net.SplitHostPort(target)
	if err != nil {
		return Addr{}, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return Addr{}, fmt.Errorf("port %q: not a number from 0 to 65535", port)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return Addr{}, fmt.Errorf("address %q: a zone cannot be sent to a proxy", host)
		}
		return Addr{IP: ip, Port: uint16(p)}, nil
	}
	if host == "" || len(host) > MaxDomainLen {
		return Addr{}, fmt.Errorf("host name of %d bytes: SOCKS5 carries 1 to %d", len(host), MaxDomainLen)
	}
	return Addr{Name: host, Port: uint16(p)}, nil
}

// appendAddr appends ATYP, DST.ADDR and DST.PORT (RFC 1928 §5).
func appendAddr(b []byte, a Addr) []byte {
	switch {
	case a.Name != "":
		b = append(b, atypDomain, byte(len(a.Name)))
		b = append(b, a.Name...)
	case a.IP.Is4():
		b = append(b, atypIPv4)
		b = append(b, a.IP.AsSlice()...)
	default:
		b = append(b, atypIPv6)
		ip16 := a.IP.As16()
		b = append(b, ip16[:]...)
	}
	return binary.BigEndian.AppendUint16(b, a.Port)
}

// readAddr reads ATYP, the address and the port. The domain length is one
// octet, so MaxDomainLen bounds the read buffer before anything is read.
func readAddr(r io.Reader) (Addr, error) {
	var buf [1 + MaxDomainLen + 2]byte
	if _, err := io.ReadFull(r, buf[:1]); err != nil {
		return Addr{}, err
	}
	var a Addr
	switch buf[0] {
	case atypIPv4:
		if _, err := io.ReadFull(r, buf[:4+2]); err != nil {
			return Addr{}, err
		}
		a.IP = netip.AddrFrom4([4]byte(buf[:4]))
		a.Port = binary.BigEndian.Uint16(buf[4:])
	case atypIPv6:
		if _, err := io.ReadFull(r, buf[:16+2]); err != nil {
			return Addr{}, err
		}
		a.IP = netip.AddrFrom16([16]byte(buf[:16]))
		a.Port = binary.BigEndian.Uint16(buf[16:])
	case atypDomain:
		if _, err := io.ReadFull(r, buf[:1]); err != nil {
			return Addr{}, err
		}
		n := int(buf[0]) // ≤ MaxDomainLen by construction
		if n == 0 {
			return Addr{}, fmt.Errorf("%w: empty host name", errSOCKS)
		}
		if _, err := io.ReadFull(r, buf[:n+2]); err != nil {
			return Addr{}, err
		}
		a.Name = string(buf[:n])
		a.Port = binary.BigEndian.Uint16(buf[n:])
	default:
		return Addr{}, errAddrType
	}
	return a, nil
}

// Request is a SOCKS5 request (RFC 1928 §4): a command and its destination.
type Request struct {
	Cmd  byte
	Dest Addr
}

// AppendRequest appends the wire form of req: VER CMD RSV ATYP DST.ADDR
// DST.PORT.
func AppendRequest(b []byte, req Request) []byte {
	return appendAddr(append(b, socksVersion, req.Cmd, 0x00), req.Dest)
}

// ReadRequest reads one request (RFC 1928 §4). RSV is ignored: the RFC
// reserves it without telling the server to check it. Unknown commands
// are returned for the caller to answer X'07'; an unknown ATYP returns an
// error matching errAddrType.
func ReadRequest(r io.Reader) (Request, error) {
	var hdr [3]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return Request{}, err
	}
	if hdr[0] != socksVersion {
		return Request{}, fmt.Errorf("%w: version %d in request", errSOCKS, hdr[0])
	}
	dest, err := readAddr(r)
	if err != nil {
		return Request{}, err
	}
	return Request{Cmd: hdr[1], Dest: dest}, nil
}

// readGreeting reads the method selection message (RFC 1928 §3) and
// reports whether "no authentication required" is among the methods.
func readGreeting(r io.Reader) (noAuth bool, err error) {
	var buf [MaxMethods]byte
	if _, err := io.ReadFull(r, buf[:2]); err != nil {
		return false, err
	}
	if buf[0] != socksVersion {
		return false, fmt.Errorf("%w: version %d in greeting", errSOCKS, buf[0])
	}
	n := int(buf[1]) // ≤ MaxMethods by construction
	if _, err := io.ReadFull(r, buf[:n]); err != nil {
		return false, err
	}
	for _, m := range buf[:n] {
		if m == methodNoAuth {
			return true, nil
		}
	}
	return false, nil
}

// appendReply appends a reply (RFC 1928 §6): VER REP RSV ATYP BND.ADDR
// BND.PORT. A refusal carries 0.0.0.0:0, as the RFC gives no address to
// report.
func appendReply(b []byte, rep byte, bound netip.AddrPort) []byte {
	a := Addr{IP: netip.IPv4Unspecified()}
	if bound.IsValid() {
		a = Addr{IP: bound.Addr().Unmap(), Port: bound.Port()}
	}
	return appendAddr(append(b, socksVersion, rep, 0x00), a)
}

// readReply reads a reply, including BND.ADDR and BND.PORT so that no
// byte of it is left for the caller's stream.
func readReply(r io.Reader) (rep byte, bound Addr, err error) {
	var hdr [3]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, Addr{}, err
	}
	if hdr[0] != socksVersion {
		return 0, Addr{}, fmt.Errorf("%w: version %d in reply", errSOCKS, hdr[0])
	}
	bound, err = readAddr(r)
	if err != nil && hdr[1] != RepSucceeded {
		// A refusal is the answer even when the server closed without
		// a well-formed BND.ADDR: the connection is over either way.
		return hdr[1], Addr{}, nil
	}
	if err != nil {
		return 0, Addr{}, err
	}
	return hdr[1], bound, nil
}
