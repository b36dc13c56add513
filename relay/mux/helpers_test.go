package mux

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"
)

// MustPair returns a Client and a Server session over net.Pipe, closed at
// test end.
func MustPair(t testing.TB, ccfg, scfg *Config) (*Session, *Session) {
	t.Helper()
	a, b := net.Pipe()
	c, s := Client(a, ccfg), Server(b, scfg)
	t.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}

// MustTCPPair is MustPair over a loopback TCP connection, for tests that
// need kernel buffering rather than net.Pipe's rendezvous.
func MustTCPPair(t testing.TB, ccfg, scfg *Config) (*Session, *Session) {
	t.Helper()
	a, b := MustTCPConns(t)
	c, s := Client(a, ccfg), Server(b, scfg)
	t.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}

// MustTCPConns returns both ends of one loopback TCP connection.
func MustTCPConns(t testing.TB) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		ch <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-ch
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a.(*net.TCPConn), b.(*net.TCPConn)
}

// MustOpenAccept opens a stream on c and accepts it on s.
func MustOpenAccept(t testing.TB, c, s *Session, meta string) (*Stream, *Stream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a, err := c.Open(ctx, []byte(meta))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	b, err := s.Accept(ctx)
	if err != nil {
		t.Fatalf("Accept: %v", err)
	}
	if string(b.Meta()) != meta || b.ID() != a.ID() {
		t.Fatalf("accepted id %d meta %q, opened id %d meta %q", b.ID(), b.Meta(), a.ID(), meta)
	}
	return a, b
}

// MustWait waits for ch or fails the test after d.
func MustWait(t testing.TB, ch <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(d):
		t.Fatalf("timeout waiting for %s", what)
	}
}

// MustSettleGoroutines waits until the goroutine count is back to at most
// want, failing with a stack dump if it never is.
func MustSettleGoroutines(t testing.TB, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > want {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d > %d\n%s", runtime.NumGoroutine(), want, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// pattern returns n deterministic pseudo-random bytes for seed.
func pattern(seed, n int) []byte {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// hashReader reads r to EOF and returns the SHA-256 and byte count.
func hashReader(r io.Reader) ([32]byte, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, n, err
}

// stallConn wraps a conn whose Reads can be made to block until Close: a
// link that silently stops delivering.
type stallConn struct {
	net.Conn
	mu      sync.Mutex
	stalled bool
	closed  chan struct{}
	once    sync.Once
}

func newStallConn(c net.Conn) *stallConn { return &stallConn{Conn: c, closed: make(chan struct{})} }

func (c *stallConn) Stall() {
	c.mu.Lock()
	c.stalled = true
	c.mu.Unlock()
}

func (c *stallConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	stalled := c.stalled
	c.mu.Unlock()
	if stalled {
		<-c.closed
		return 0, net.ErrClosed
	}
	return c.Conn.Read(p)
}

func (c *stallConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
