package router

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Server defaults.
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultDialTimeout      = 30 * time.Second
)

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("socks5 server closed")

// Server is a SOCKS5 server (RFC 1928): method X'00' "no authentication
// required" and the CONNECT command; BIND and UDP ASSOCIATE are answered
// X'07' "command not supported". Destinations pass Allow at dial time.
// The zero value is ready to Serve.
type Server struct {
	// Allow is the destination policy; the zero Policy refuses loopback,
	// link-local, unspecified and multicast addresses.
	Allow Policy
	// DialTimeout bounds the connection to a destination (resolution
	// included); zero means DefaultDialTimeout.
	DialTimeout time.Duration
	// HandshakeTimeout bounds the client's greeting and request, so a
	// client that never finishes (slowloris) holds no connection longer;
	// zero means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a tunnel when no byte has gone either way for
	// that long; zero means never (TCP keep-alives still find dead peers).
	IdleTimeout time.Duration
	// Logger gets one line per connection (addresses, reply, byte counts;
	// never payload); nil discards.
	Logger *slog.Logger
	// Dial is the template for outbound connections (local address,
	// keep-alive, …); nil means a zero net.Dialer. Its Timeout is replaced
	// by DialTimeout, and the policy check runs before its own Control.
	Dial *net.Dialer

	mu      sync.Mutex
	ctx     context.Context // cancelled by Close
	cancel  context.CancelFunc
	lns     map[net.Listener]struct{}
	conns   map[net.Conn]struct{}
	closed  bool
	handles sync.WaitGroup
}

func (s *Server) init() {
	if s.ctx == nil {
		s.ctx, s.cancel = context.WithCancel(context.Background())
		s.lns = make(map[net.Listener]struct{})
		s.conns = make(map[net.Conn]struct{})
	}
}

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// Serve accepts connections on ln until Close, and returns
// ErrServerClosed then (or the listener's error).
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	s.init()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.lns[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.lns, ln)
		s.mu.Unlock()
	}()

	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of descriptors or a transient error: wait, as
				// net/http does, rather than spin or die.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.logger().Warn("socks5 accept", "err", err, "retry_in", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		if !s.track(conn, true) {
			conn.Close()
			return ErrServerClosed
		}
		go func() {
			defer s.handles.Done()
			defer s.untrack(conn)
			s.handle(conn)
		}()
	}
}

// Close stops every listener, cuts every connection and waits for their
// handlers to return.
func (s *Server) Close() error {
	s.mu.Lock()
	s.init()
	s.closed = true
	s.cancel()
	var err error
	for ln := range s.lns {
		if e := ln.Close(); e != nil && err == nil {
			err = e
		}
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.handles.Wait()
	return err
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// track registers c so Close can cut it, and counts a handler for Close
// to wait for if handler is set (under the lock, so that no handler
// starts once Close waits); false once closed.
func (s *Server) track(c net.Conn, handler bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	if handler {
		s.handles.Add(1)
	}
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.Close()
}

// handle serves one client: method selection (RFC 1928 §3), the request
// (§4), the dial, the reply (§6), then the tunnel.
func (s *Server) handle(conn net.Conn) {
	log := s.logger().With("client", conn.RemoteAddr().String())
	hs := s.HandshakeTimeout
	if hs <= 0 {
		hs = DefaultHandshakeTimeout
	}
	conn.SetDeadline(time.Now().Add(hs))
	noAuth, err := readGreeting(conn)
	if err != nil {
		log.Debug("socks5 greeting", "err", err)
		return
	}
	if !noAuth {
		// RFC 1928 §3: "If the selected METHOD is X'FF', none of the
		// methods listed by the client are acceptable, and the client
		// MUST close the connection."
		conn.Write([]byte{socksVersion, methodNoAcceptable})
		log.Info("socks5 refused: client offers no method we accept")
		return
	}
	if _, err := conn.Write([]byte{socksVersion, methodNoAuth}); err != nil {
		return
	}
	req, err := ReadRequest(conn)
	if err != nil {
		if errors.Is(err, errAddrType) {
			conn.Write(appendReply(nil, RepAddrTypeNotSupported, netip.AddrPort{}))
		}
		log.Debug("socks5 request", "err", err)
		return
	}
	log = log.With("dest", req.Dest.String())
	if req.Cmd != CmdConnect {
		conn.Write(appendReply(nil, RepCommandNotSupported, netip.AddrPort{}))
		log.Info("socks5 refused: command not supported", "cmd", req.Cmd)
		return
	}

	start := time.Now()
	target, err := s.dial(req.Dest)
	if err != nil {
		rep := replyFor(err)
		conn.SetWriteDeadline(time.Now().Add(hs))
		conn.Write(appendReply(nil, rep, netip.AddrPort{}))
		log.Info("socks5 refused", "reply", ReplyText(rep), "err", err)
		return
	}
	if !s.track(target, false) {
		target.Close()
		return
	}
	defer s.untrack(target)
	bound, _ := netip.ParseAddrPort(target.LocalAddr().String())
	conn.SetWriteDeadline(time.Now().Add(hs))
	if _, err := conn.Write(appendReply(nil, RepSucceeded, bound)); err != nil {
		return
	}
	conn.SetDeadline(time.Time{})
	up, down := s.splice(conn, target)
	log.Info("socks5 tunnel closed", "up_bytes", up, "down_bytes", down, "duration", time.Since(start).Round(time.Millisecond))
}

// dial connects to dest with the policy checked on the address the
// socket is about to connect to.
func (s *Server) dial(dest Addr) (net.Conn, error) {
	var d net.Dialer
	if s.Dial != nil {
		d = *s.Dial
	}
	d.Timeout = s.DialTimeout
	if d.Timeout <= 0 {
		d.Timeout = DefaultDialTimeout
	}
	next, nextCtx := d.Control, d.ControlContext
	d.Control = nil // ignored anyway once ControlContext is set
	d.ControlContext = func(ctx context.Context, network, address string, c syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return err
		}
		if err := s.Allow.Check(dest.Name, ap); err != nil {
			return err
		}
		if nextCtx != nil {
			return nextCtx(ctx, network, address, c)
		}
		if next != nil {
			return next(network, address, c)
		}
		return nil
	}
	s.mu.Lock()
	ctx := s.ctx
	s.mu.Unlock()
	return d.DialContext(ctx, "tcp", dest.String())
}

// replyFor maps a dial error to an RFC 1928 §6 reply code.
func replyFor(err error) byte {
	var denied *DeniedError
	var dnsErr *net.DNSError
	var ne net.Error
	switch {
	case errors.As(err, &denied):
		return RepNotAllowed
	case errors.As(err, &dnsErr):
		return RepHostUnreachable
	case errors.Is(err, syscall.ECONNREFUSED):
		return RepConnectionRefused
	case errors.Is(err, syscall.ENETUNREACH):
		return RepNetworkUnreachable
	case errors.Is(err, syscall.EHOSTUNREACH):
		return RepHostUnreachable
	case errors.As(err, &ne) && ne.Timeout():
		// X'06' "TTL expired" is about the IP TTL; a dial that timed
		// out is an unreachable host to the client.
		return RepHostUnreachable
	}
	return RepGeneralFailure
}

// splice copies both ways until both sides are done. An EOF from one side
// becomes a half-close (CloseWrite) of the other, so protocols that
// signal the end of a request by shutting down writing still work; an
// error cuts both. Returns the bytes sent to target (up) and to client.
func (s *Server) splice(client, target net.Conn) (up, down int64) {
	var act *activity
	if s.IdleTimeout > 0 {
		act = newActivity(s.IdleTimeout, func() {
			client.Close()
			target.Close()
		})
		defer act.stop()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		up = copyHalf(target, client, act)
	}()
	down = copyHalf(client, target, act)
	<-done
	return up, down
}

func copyHalf(dst, src net.Conn, act *activity) int64 {
	var r io.Reader = src // a bare *net.TCPConn lets io.Copy use splice(2)
	if act != nil {
		r = &activityReader{r: src, a: act}
	}
	n, err := io.Copy(dst, r)
	if err == nil {
		if cw, ok := dst.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
			return n
		}
	}
	src.Close()
	dst.Close()
	return n
}

// activity closes a tunnel after IdleTimeout without a byte either way.
type activity struct {
	last atomic.Int64 // unix nanoseconds of the last read

	mu      sync.Mutex
	timer   *time.Timer
	stopped bool
}

func newActivity(idle time.Duration, onIdle func()) *activity {
	a := &activity{}
	a.touch()
	var check func()
	check = func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.stopped {
			return
		}
		left := time.Until(time.Unix(0, a.last.Load()).Add(idle))
		if left <= 0 {
			onIdle()
			return
		}
		a.timer.Reset(left)
	}
	a.mu.Lock()
	a.timer = time.AfterFunc(idle, check)
	a.mu.Unlock()
	return a
}

func (a *activity) touch() { a.last.Store(time.Now().UnixNano()) }

func (a *activity) stop() {
	a.mu.Lock()
	a.stopped = true
	a.timer.Stop()
	a.mu.Unlock()
}

type activityReader struct {
	r io.Reader
	a *activity
}

func (r *activityReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.a.touch()
	}
	return n, err
}
