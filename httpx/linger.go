package httpx

import (
	"io"
	"net"
	"sync"
	"time"
)

// Lingering close bounds: how long, and how much, a closed connection's
// late input is read and dropped.
const (
	LingerTime  = 2 * time.Second
	MaxLingered = 256 << 10
)

// LingerListener wraps ln so that closing one of its TCP connections first
// ends the sending side (FIN) and then, in the background, reads and drops
// what the peer still sends, for at most LingerTime and MaxLingered bytes,
// before the socket is closed. Closing a socket with unread input makes the
// kernel answer with a reset, which can destroy what was sent last: a
// device whose certificate the TLS handshake refused (TLS 1.3 verifies it
// after the client has started sending its request) saw "broken pipe" or
// "connection reset" instead of the "bad certificate" alert, and retried
// instead of stopping. Close itself does not wait, so a server shutting
// down many connections is not held up.
func LingerListener(ln net.Listener) net.Listener { return lingerListener{ln} }

type lingerListener struct{ net.Listener }

func (l lingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		return &lingerConn{TCPConn: tc}, nil
	}
	return c, nil
}

type lingerConn struct {
	*net.TCPConn
	once sync.Once
}

func (c *lingerConn) Close() error {
	var err error
	c.once.Do(func() {
		if err = c.TCPConn.CloseWrite(); err != nil {
			err = c.TCPConn.Close()
			return
		}
		go func() {
			_ = c.TCPConn.SetReadDeadline(time.Now().Add(LingerTime))
			_, _ = io.Copy(io.Discard, io.LimitReader(c.TCPConn, MaxLingered))
			_ = c.TCPConn.Close()
		}()
	})
	return err
}
