// Package router is the seed's "router / TCP proxy": every outbound link of
// the Core can go through a SOCKS5 proxy (RFC 1928) or an HTTP proxy's
// CONNECT method (RFC 9110 §9.3.6), and `custos router` is a SOCKS5 server
// for the company network that refuses loopback, link-local and metadata
// destinations.
package router

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// ContextDialer is what every outbound link of the Core uses.
type ContextDialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// Default proxy ports when the URL names none: 1080 is SOCKS's IANA port
// (RFC 1928 §3), 80 the http scheme's (RFC 9110 §4.2.1).
const (
	defaultSOCKSPort = "1080"
	defaultHTTPPort  = "80"
)

// ErrProtocol reports a proxy that answered outside its protocol
// (garbage, a wrong version, a truncated message).
var ErrProtocol = errors.New("proxy answered outside the protocol")

// ProxyError is a proxy's refusal to open the connection: an HTTP status
// other than 2xx, or a SOCKS5 reply code other than X'00' (X'FF' when it
// accepted none of our authentication methods).
type ProxyError struct {
	Proxy  string // the proxy, without credentials
	Status int    // HTTP status code or SOCKS5 reply code
	Msg    string // the status's RFC name, e.g. "connection not allowed by ruleset"
}

func (e *ProxyError) Error() string {
	if strings.HasPrefix(e.Proxy, "socks5://") {
		return fmt.Sprintf("proxy %s refused: %s (SOCKS5 reply 0x%02x)", e.Proxy, e.Msg, e.Status)
	}
	return fmt.Sprintf("proxy %s refused CONNECT: %d %s", e.Proxy, e.Status, e.Msg)
}

// New returns a dialer for proxyURL: "" or "direct" → net.Dialer;
// "socks5://host:port" → SOCKS5 without authentication (RFC 1928), sending
// host names to the proxy unresolved (ATYP domain name) so the proxy
// resolves them; "http://[user:pass@]host:port" → HTTP CONNECT (RFC 9110
// §9.3.6) with optional Basic auth. Anything else: a clear error naming the
// accepted schemes. base may be nil.
func New(proxyURL string, base *net.Dialer) (ContextDialer, error) {
	if base == nil {
		base = &net.Dialer{}
	}
	proxyURL = strings.TrimSpace(proxyURL)
	if proxyURL == "" || proxyURL == "direct" {
		return base, nil
	}
	const accepted = `accepted: "direct", socks5://host:port, http://[user:pass@]host:port`
	u, err := url.Parse(proxyURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the url.Error would repeat the URL and its password
		}
		return nil, fmt.Errorf("proxy URL: %w (%s)", err, accepted)
	}
	if u.Hostname() == "" || u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("proxy URL %q: want scheme://host:port only (%s)", u.Redacted(), accepted)
	}
	switch u.Scheme {
	case "socks5", "socks5h": // socks5h is curl's spelling of the same: names resolved by the proxy
		if u.User != nil {
			// RFC 1929 username/password is not implemented: refuse
			// rather than silently drop the credentials.
			return nil, fmt.Errorf("proxy URL %q: SOCKS5 authentication is not supported (%s)", u.Redacted(), accepted)
		}
		addr := hostPortDefault(u, defaultSOCKSPort)
		return &socksDialer{base: base, addr: addr, name: "socks5://" + addr}, nil
	case "http":
		addr := hostPortDefault(u, defaultHTTPPort)
		d := &httpDialer{base: base, addr: addr, name: "http://" + addr}
		if u.User != nil {
			pass, _ := u.User.Password()
			// Basic credentials, RFC 7617 §2, in Proxy-Authorization
			// (RFC 9110 §11.7.2).
			d.header = http.Header{"Proxy-Authorization": {"Basic " +
				base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+pass))}}
		}
		return d, nil
	}
	return nil, fmt.Errorf("proxy URL %q: scheme %q is not supported (%s)", u.Redacted(), u.Scheme, accepted)
}

func hostPortDefault(u *url.URL, port string) string {
	if p := u.Port(); p != "" {
		port = p
	}
	return net.JoinHostPort(u.Hostname(), port)
}

func checkNetwork(network string) error {
	switch network {
	case "tcp", "tcp4", "tcp6":
		return nil
	}
	return fmt.Errorf("proxy dialer: network %q is not supported (tcp only)", network)
}

// socksDialer dials through a SOCKS5 proxy without authentication.
type socksDialer struct {
	base *net.Dialer
	addr string // proxy host:port
	name string // socks5://host:port, for errors
}

func (d *socksDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if err := checkNetwork(network); err != nil {
		return nil, err
	}
	dest, err := parseAddr(addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s via %s: %w", addr, d.name, err)
	}
	conn, err := d.base.DialContext(ctx, "tcp", d.addr)
	if err != nil {
		return nil, fmt.Errorf("dial proxy %s: %w", d.name, err)
	}
	err = handshake(ctx, conn, func() error { return socksConnect(conn, dest, d.name) })
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("dial %s via %s: %w", addr, d.name, err)
	}
	return conn, nil
}

// socksConnect runs the client side of RFC 1928: method selection (§3),
// then a CONNECT request (§4) and its reply (§6). The reply is read to
// its last byte, so the connection carries only the tunnelled stream.
func socksConnect(conn net.Conn, dest Addr, name string) error {
	if _, err := conn.Write([]byte{socksVersion, 1, methodNoAuth}); err != nil {
		return err
	}
	var sel [2]byte
	if _, err := io.ReadFull(conn, sel[:]); err != nil {
		return unexpectedEOF(err)
	}
	if sel[0] != socksVersion {
		return fmt.Errorf("%w: version %d in method selection", ErrProtocol, sel[0])
	}
	switch sel[1] {
	case methodNoAuth:
	case methodNoAcceptable:
		return &ProxyError{Proxy: name, Status: methodNoAcceptable, Msg: "no acceptable authentication methods"}
	default:
		return fmt.Errorf("%w: method 0x%02x was not offered", ErrProtocol, sel[1])
	}
	if _, err := conn.Write(AppendRequest(nil, Request{Cmd: CmdConnect, Dest: dest})); err != nil {
		return err
	}
	rep, _, err := readReply(conn)
	if err != nil {
		if errors.Is(err, errSOCKS) {
			return fmt.Errorf("%w: %v", ErrProtocol, err)
		}
		return unexpectedEOF(err)
	}
	if rep != RepSucceeded {
		return &ProxyError{Proxy: name, Status: int(rep), Msg: ReplyText(rep)}
	}
	return nil
}

// unexpectedEOF says that the proxy hung up mid-handshake, which plain EOF
// would not.
func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: connection closed during the handshake", ErrProtocol)
	}
	return err
}

// httpDialer dials through an HTTP proxy's CONNECT method.
type httpDialer struct {
	base   *net.Dialer
	addr   string      // proxy host:port
	name   string      // http://host:port, for errors (never the password)
	header http.Header // Proxy-Authorization, when the URL had credentials
}

func (d *httpDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if err := checkNetwork(network); err != nil {
		return nil, err
	}
	conn, err := d.base.DialContext(ctx, "tcp", d.addr)
	if err != nil {
		return nil, fmt.Errorf("dial proxy %s: %w", d.name, err)
	}
	tc, err := HTTPConnect(ctx, conn, addr, d.header)
	if err != nil {
		conn.Close()
		var pe *ProxyError
		if errors.As(err, &pe) {
			pe.Proxy = d.name
		}
		return nil, fmt.Errorf("dial %s via %s: %w", addr, d.name, err)
	}
	return tc, nil
}

// aLongTimeAgo is a deadline in the past: setting it interrupts any read
// or write in progress.
var aLongTimeAgo = time.Unix(1, 0)

// handshake runs fn with conn's deadline taken from ctx, and interrupts it
// when ctx is cancelled. On success the deadline is cleared again: the
// tunnel that follows has its own idea of idleness.
func handshake(ctx context.Context, conn net.Conn, fn func() error) error {
	deadline, hasDeadline := ctx.Deadline()
	if hasDeadline {
		if err := conn.SetDeadline(deadline); err != nil {
			return err
		}
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(aLongTimeAgo) })
	err := fn()
	if !stop() {
		// ctx ended during the handshake; its error says why the read or
		// write failed (or spoils a handshake that just finished).
		return fmt.Errorf("proxy handshake: %w", context.Cause(ctx))
	}
	if err != nil {
		if hasDeadline && errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(deadline) {
			// The conn's deadline (ctx's) fired a moment before ctx's
			// own timer: report it as ctx's.
			return fmt.Errorf("proxy handshake: %w", context.DeadlineExceeded)
		}
		return err
	}
	return conn.SetDeadline(time.Time{})
}
