package mux

import (
	"io"
	"net"
	"sync"
	"time"
)

// newDelayPipe returns the two ends of an in-memory connection where every
// byte becomes readable oneWay after it was written: a long fat network
// without loss. Each direction buffers up to bufLimit bytes (writers block
// beyond), so with bufLimit ≥ bandwidth × delay the pipe is not the
// bottleneck. Ends support CloseWrite (the peer reads io.EOF while writing
// still works), which net.Pipe lacks. Deadlines are accepted and ignored.
func newDelayPipe(oneWay time.Duration, bufLimit int) (*delayConn, *delayConn) {
	ab, ba := newPipeDir(bufLimit), newPipeDir(bufLimit)
	a := &delayConn{r: ba, w: ab, delay: oneWay, local: pipeAddr("a"), remote: pipeAddr("b")}
	b := &delayConn{r: ab, w: ba, delay: oneWay, local: pipeAddr("b"), remote: pipeAddr("a")}
	return a, b
}

type pipeAddr string

func (a pipeAddr) Network() string { return "delaypipe" }
func (a pipeAddr) String() string  { return string(a) }

type pipeChunk struct {
	at time.Time
	b  []byte
}

type pipeDir struct {
	mu       sync.Mutex
	q        []pipeChunk
	bytes    int
	limit    int
	wclosed  bool // writer done: EOF after the queue
	rclosed  bool // reader gone: writes fail
	readable chan struct{}
	writable chan struct{}
	closed   chan struct{} // closed when either end closes the direction
}

func newPipeDir(limit int) *pipeDir {
	return &pipeDir{limit: limit, readable: make(chan struct{}, 1), writable: make(chan struct{}, 1), closed: make(chan struct{})}
}

func (d *pipeDir) shut(reader bool) {
	d.mu.Lock()
	if reader {
		d.rclosed = true
	} else {
		d.wclosed = true
	}
	d.mu.Unlock()
	notify(d.readable)
	notify(d.writable)
}

type delayConn struct {
	r, w          *pipeDir
	delay         time.Duration
	local, remote net.Addr
	once          sync.Once
}

func (c *delayConn) Write(p []byte) (int, error) {
	d := c.w
	total := 0
	for len(p) > 0 {
		d.mu.Lock()
		if d.rclosed || d.wclosed {
			d.mu.Unlock()
			return total, io.ErrClosedPipe
		}
		if d.bytes >= d.limit {
			d.mu.Unlock()
			<-d.writable
			continue
		}
		n := min(len(p), d.limit-d.bytes)
		d.q = append(d.q, pipeChunk{at: time.Now().Add(c.delay), b: append([]byte(nil), p[:n]...)})
		d.bytes += n
		d.mu.Unlock()
		notify(d.readable)
		total += n
		p = p[n:]
	}
	return total, nil
}

func (c *delayConn) Read(p []byte) (int, error) {
	d := c.r
	for {
		d.mu.Lock()
		if d.rclosed {
			d.mu.Unlock()
			return 0, io.ErrClosedPipe
		}
		if len(d.q) > 0 {
			ch := &d.q[0]
			if wait := time.Until(ch.at); wait > 0 {
				d.mu.Unlock()
				t := time.NewTimer(wait)
				select {
				case <-t.C:
				case <-d.readable: // maybe closed; re-check
					t.Stop()
				}
				continue
			}
			n := copy(p, ch.b)
			ch.b = ch.b[n:]
			if len(ch.b) == 0 {
				d.q[0] = pipeChunk{}
				d.q = d.q[1:]
			}
			d.bytes -= n
			d.mu.Unlock()
			notify(d.writable)
			return n, nil
		}
		if d.wclosed {
			d.mu.Unlock()
			return 0, io.EOF
		}
		d.mu.Unlock()
		<-d.readable
	}
}

// CloseWrite makes the peer read io.EOF after the data already written.
func (c *delayConn) CloseWrite() error {
	c.w.shut(false)
	return nil
}

func (c *delayConn) Close() error {
	c.once.Do(func() {
		c.w.shut(false)
		c.r.shut(true)
	})
	return nil
}

func (c *delayConn) LocalAddr() net.Addr                { return c.local }
func (c *delayConn) RemoteAddr() net.Addr               { return c.remote }
func (c *delayConn) SetDeadline(t time.Time) error      { return nil }
func (c *delayConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *delayConn) SetWriteDeadline(t time.Time) error { return nil }
