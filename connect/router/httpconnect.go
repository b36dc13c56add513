package router

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

// MaxConnectResponse bounds the proxy's response to CONNECT (status line
// and header fields, interim 1xx responses included) before the tunnel
// starts. RFC 9112 §2.3 leaves the limit to the recipient; real proxies
// send a few hundred bytes.
const MaxConnectResponse = 16 << 10

// maxInterim bounds the 1xx responses a proxy may send before its final
// one (RFC 9110 §15.2 says a client must accept them; none is expected
// for CONNECT, so a handful is plenty).
const maxInterim = 4

// ErrResponseTooLarge reports a CONNECT response header over
// MaxConnectResponse.
var ErrResponseTooLarge = fmt.Errorf("%w: CONNECT response header over %d bytes", ErrProtocol, MaxConnectResponse)

// HTTPConnect asks the HTTP proxy at the other end of conn to open a
// tunnel to target (host:port) with a CONNECT request (RFC 9110 §9.3.6)
// carrying header, and returns the tunnel. Any bytes the proxy sent after
// its response header are the tunnel's first bytes, and the returned conn
// delivers them. ctx bounds the handshake (its deadline becomes conn's
// until the tunnel is up) but not the tunnel. A refusal is a *ProxyError;
// conn is left for the caller to close on error.
func HTTPConnect(ctx context.Context, conn net.Conn, target string, header http.Header) (net.Conn, error) {
	if err := checkTarget(target); err != nil {
		return nil, err
	}
	req, err := connectRequest(target, header)
	if err != nil {
		return nil, err
	}
	lr := &capReader{r: conn, n: MaxConnectResponse}
	br := bufio.NewReader(lr)
	err = handshake(ctx, conn, func() error {
		if _, err := conn.Write(req); err != nil {
			return err
		}
		for i := 0; ; i++ {
			resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
			if err != nil {
				switch {
				case lr.over:
					return ErrResponseTooLarge
				case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
					return fmt.Errorf("%w: connection closed before the CONNECT response", ErrProtocol)
				case isNetError(err):
					return err
				}
				return fmt.Errorf("%w: %v", ErrProtocol, err)
			}
			code := resp.StatusCode
			switch {
			case code >= 100 && code < 200 && code != http.StatusSwitchingProtocols && i < maxInterim:
				continue // interim response, RFC 9110 §15.2
			case code >= 200 && code < 300:
				// "Any 2xx (Successful) response indicates that the
				// sender (and all inbound proxies) will switch to tunnel
				// mode immediately after the response header section"
				// (RFC 9110 §9.3.6): its Content-Length, if any, is
				// ignored, and what follows is the tunnel.
				return nil
			}
			return &ProxyError{Proxy: conn.RemoteAddr().String(), Status: code, Msg: statusMsg(resp)}
		}
	})
	if err != nil {
		return nil, err
	}
	lr.n = -1 // the header is read: the tunnel is unbounded
	if br.Buffered() == 0 {
		return conn, nil
	}
	return &bufferedConn{Conn: conn, br: br}, nil
}

func statusMsg(resp *http.Response) string {
	if t := http.StatusText(resp.StatusCode); t != "" {
		return strings.ToLower(t) // 407 → "proxy authentication required"
	}
	return "unknown status"
}

func isNetError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne)
}

// checkTarget refuses what would break the request line: CONNECT's target
// is the authority form host:port (RFC 9112 §3.2.3).
func checkTarget(target string) error {
	host, port, err := net.SplitHostPort(target)
	if err != nil || host == "" || port == "" {
		return fmt.Errorf("CONNECT target %q: want host:port", target)
	}
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c == 0x7f {
			return fmt.Errorf("CONNECT target %q: control character or space", target)
		}
	}
	return nil
}

// connectRequest is the request in wire form. The Host field repeats the
// target (RFC 9112 §3.2.3 requires it to match the authority). Field names
// must be tokens and values are written by http.Header.Write, which turns
// line breaks into spaces, so header cannot smuggle a second request.
func connectRequest(target string, header http.Header) ([]byte, error) {
	var b strings.Builder
	b.WriteString("CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n")
	for k := range header {
		if !isToken(k) {
			return nil, fmt.Errorf("CONNECT header field name %q is not a token", k)
		}
	}
	h := header.Clone()
	h.Del("Host")
	if err := h.Write(&b); err != nil {
		return nil, err
	}
	b.WriteString("\r\n")
	return []byte(b.String()), nil
}

// isToken reports whether s is an RFC 9110 §5.6.2 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// capReader passes at most n bytes through, then fails; a negative n
// lifts the cap. It bounds the response header without bounding the
// tunnel that follows.
type capReader struct {
	r    io.Reader
	n    int
	over bool
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.n < 0 {
		return c.r.Read(p)
	}
	if c.n == 0 {
		c.over = true
		return 0, ErrResponseTooLarge
	}
	if len(p) > c.n {
		p = p[:c.n]
	}
	n, err := c.r.Read(p)
	c.n -= n
	return n, err
}

// bufferedConn is a tunnel whose first bytes arrived with the proxy's
// response and wait in br; once they are read, reads go to the conn.
type bufferedConn struct {
	net.Conn
	br *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) {
	if c.br != nil {
		if c.br.Buffered() > 0 {
			return c.br.Read(p)
		}
		c.br = nil
	}
	return c.Conn.Read(p)
}

// CloseWrite half-closes the tunnel when the conn underneath can.
func (c *bufferedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("CloseWrite not supported")
}
