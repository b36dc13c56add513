package mux

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// Stream flags (guarded by Stream.mu).
const (
	fReadClosed   uint16 = 1 << iota // local Close: incoming data is discarded
	fRemoteClosed                    // peer's Close received: EOF after the buffer
	fWriteClosed                     // CloseWrite called: Writes fail
	fCloseSent                       // our Close frame is queued
	fReset                           // dead both ways (either side reset it)
	fRemoved                         // no longer in the session's table
	fConsuming                       // WriteTo is writing chunks[ci] outside the lock
	fDropPending                     // drop the chunks once WriteTo is done with them
)

// Stream is one bidirectional byte stream of a session. It implements
// net.Conn; Read/WriteTo and Write/ReadFrom may run concurrently with each
// other. An idle stream holds no buffer and no goroutine.
type Stream struct {
	s    *Session
	id   uint32
	meta []byte

	readMu  sync.Mutex // one consumer at a time (Read, WriteTo)
	writeMu sync.Mutex // one producer at a time, so one Write's frames stay contiguous

	mu         sync.Mutex
	flags      uint16
	recvWindow uint32    // bytes the peer may still send us
	unacked    uint32    // consumed or discarded bytes not yet granted back
	sendWindow uint32    // bytes we may still send
	head       int       // read offset into chunks[ci]
	ci         int       // index of the first live chunk
	chunks     []*[]byte // received data; every live chunk but the last is full
	resetErr   error
	readCh     chan struct{} // cap 1; allocated on the first wait
	writeCh    chan struct{}
	rd, wd     deadline
}

func newStream(s *Session, id uint32, meta []byte) *Stream {
	return &Stream{
		s:          s,
		id:         id,
		meta:       meta,
		recvWindow: s.cfg.StreamWindow, // our Window frame announcing it is queued with the Open
		sendWindow: InitialStreamWindow,
	}
}

// ID returns the stream ID (odd if the Client side opened it).
func (st *Stream) ID() uint32 { return st.id }

// Meta returns the metadata of the Open frame. Callers must not modify it.
func (st *Stream) Meta() []byte { return st.meta }

// LocalAddr returns the session conn's local address.
func (st *Stream) LocalAddr() net.Addr { return st.s.conn.LocalAddr() }

// RemoteAddr returns the session conn's remote address.
func (st *Stream) RemoteAddr() net.Addr { return st.s.conn.RemoteAddr() }

// SetDeadline sets both the read and the write deadline.
func (st *Stream) SetDeadline(t time.Time) error {
	_ = st.SetReadDeadline(t)
	return st.SetWriteDeadline(t)
}

// SetReadDeadline bounds Read and WriteTo, including calls already blocked.
func (st *Stream) SetReadDeadline(t time.Time) error {
	st.rd.set(t)
	st.mu.Lock()
	ch := st.readCh
	st.mu.Unlock()
	notify(ch) // a blocked reader picks up the new deadline channel
	return nil
}

// SetWriteDeadline bounds Write and ReadFrom, including calls already blocked.
func (st *Stream) SetWriteDeadline(t time.Time) error {
	st.wd.set(t)
	st.mu.Lock()
	ch := st.writeCh
	st.mu.Unlock()
	notify(ch)
	return nil
}

func notify(ch chan struct{}) {
	if ch == nil {
		return
	}
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (st *Stream) readChLocked() chan struct{} {
	if st.readCh == nil {
		st.readCh = make(chan struct{}, 1)
	}
	return st.readCh
}

func (st *Stream) writeChLocked() chan struct{} {
	if st.writeCh == nil {
		st.writeCh = make(chan struct{}, 1)
	}
	return st.writeCh
}

// ---- reading ----

func (st *Stream) readErrLocked() error {
	switch {
	case st.s.dead.Load():
		return st.s.serr
	case st.flags&fReset != 0:
		return st.resetErr
	case st.flags&fReadClosed != 0:
		return ErrStreamClosed
	case st.rd.expired():
		return os.ErrDeadlineExceeded
	}
	return nil
}

// waitLocked releases st.mu and waits for a signal on ch, the deadline or
// session death; the caller re-checks state afterwards.
func (st *Stream) waitLocked(ch chan struct{}, d *deadline) {
	dl := d.wait()
	st.mu.Unlock()
	select {
	case <-ch:
	case <-dl:
	case <-st.s.die:
	}
}

// Read reads received data. After the peer's Close it returns io.EOF once
// the buffer is drained.
func (st *Stream) Read(p []byte) (int, error) {
	st.readMu.Lock()
	defer st.readMu.Unlock()
	for {
		st.mu.Lock()
		if err := st.readErrLocked(); err != nil {
			st.mu.Unlock()
			return 0, err
		}
		if st.ci < len(st.chunks) {
			if len(p) == 0 {
				st.mu.Unlock()
				return 0, nil
			}
			n := 0
			for n < len(p) && st.ci < len(st.chunks) {
				c := *st.chunks[st.ci]
				m := copy(p[n:], c[st.head:])
				n += m
				st.head += m
				if st.head == len(c) {
					st.popLocked()
				}
			}
			inc := st.creditLocked(uint32(n))
			st.mu.Unlock()
			st.s.grant(st.id, inc)
			return n, nil
		}
		if st.flags&fRemoteClosed != 0 {
			st.mu.Unlock()
			return 0, io.EOF
		}
		if len(p) == 0 {
			st.mu.Unlock()
			return 0, nil
		}
		st.waitLocked(st.readChLocked(), &st.rd)
	}
}

// WriteTo writes received chunks straight into w until the peer's Close
// (returning nil) or an error. It holds no buffer of its own: an idle
// io.Copy(conn, stream) costs nothing but its goroutine.
func (st *Stream) WriteTo(w io.Writer) (int64, error) {
	st.readMu.Lock()
	defer st.readMu.Unlock()
	var total int64
	for {
		st.mu.Lock()
		if err := st.readErrLocked(); err != nil {
			st.mu.Unlock()
			return total, err
		}
		if st.ci < len(st.chunks) {
			c := st.chunks[st.ci]
			b := (*c)[st.head:] // the read loop only appends past len: b is stable
			st.flags |= fConsuming
			st.mu.Unlock()

			n, werr := w.Write(b)
			n = max(0, min(n, len(b)))

			st.mu.Lock()
			st.flags &^= fConsuming
			var inc uint32
			if st.flags&fDropPending != 0 {
				st.flags &^= fDropPending
				st.dropChunksLocked()
			} else {
				st.head += n
				if st.head == len(*c) {
					st.popLocked()
				}
				inc = st.creditLocked(uint32(n))
			}
			st.mu.Unlock()
			st.s.grant(st.id, inc)
			total += int64(n)
			if werr != nil {
				return total, werr
			}
			if n < len(b) {
				return total, io.ErrShortWrite
			}
			continue
		}
		if st.flags&fRemoteClosed != 0 {
			st.mu.Unlock()
			return total, nil
		}
		st.waitLocked(st.readChLocked(), &st.rd)
	}
}

func (st *Stream) popLocked() {
	putChunk(st.chunks[st.ci])
	st.chunks[st.ci] = nil
	st.ci++
	st.head = 0
	if st.ci == len(st.chunks) {
		st.chunks, st.ci = st.chunks[:0], 0
	}
}

func (st *Stream) bufferedLocked() int {
	n := -st.head
	for _, c := range st.chunks[st.ci:] {
		n += len(*c)
	}
	return max(n, 0)
}

// dropChunksLocked returns all received data to the pool, or leaves that to
// WriteTo if it is writing a chunk right now.
func (st *Stream) dropChunksLocked() {
	if st.flags&fConsuming != 0 {
		st.flags |= fDropPending
		return
	}
	for _, c := range st.chunks[st.ci:] {
		putChunk(c)
	}
	st.chunks, st.ci, st.head = nil, 0, 0
}

// creditLocked accounts n consumed (or discarded) bytes and returns the
// Window increment to send now, if the batch is large enough to be worth it.
func (st *Stream) creditLocked(n uint32) uint32 {
	st.unacked += n
	if st.unacked < st.s.creditThreshold || st.flags&(fRemoteClosed|fReset) != 0 {
		return 0
	}
	inc := st.unacked
	st.unacked = 0
	st.recvWindow += inc
	return inc
}

func (s *Session) grant(id, inc uint32) {
	if inc > 0 {
		s.sendCtrl(TypeWindow, id, inc)
	}
}

// recvData runs on the read loop: it checks the window, then reads the
// payload either straight into a fresh pooled chunk (payloads of exactly a
// class size with no partly filled chunk pending, i.e. bulk transfers) or
// via the session scratch buffer into the free tail of the last chunk, so
// that buffered memory stays within the window plus one chunk whatever the
// peer's frame sizes. It never waits for the stream's reader.
func (st *Stream) recvData(h header) error {
	s := st.s
	n := h.length
	st.mu.Lock()
	if st.flags&fRemoteClosed != 0 {
		st.mu.Unlock()
		return protoErr(h, "data after Close")
	}
	if n > st.recvWindow {
		w := st.recvWindow
		st.mu.Unlock()
		return protoErr(h, "data beyond the receive window (%d > %d)", n, w)
	}
	st.recvWindow -= n
	if st.flags&(fReset|fReadClosed) != 0 || s.dead.Load() {
		var inc uint32
		if st.flags&fReset == 0 {
			inc = st.creditLocked(n) // keep a writer into a closed stream from wedging
		}
		st.mu.Unlock()
		s.grant(st.id, inc)
		return s.discard(n)
	}
	direct := isClassSize(int(n)) && (st.ci == len(st.chunks) || tailFull(st.chunks[len(st.chunks)-1]))
	st.mu.Unlock()
	if n == 0 {
		return nil
	}

	var p *[]byte
	var src []byte
	if direct {
		p = getChunk(int(n))
		src = *p
	} else {
		if s.scratch == nil {
			s.scratch = make([]byte, MaxFramePayload)
		}
		src = s.scratch[:n]
	}
	if _, err := io.ReadFull(s.br, src); err != nil {
		if p != nil {
			putChunk(p)
		}
		return recvErr(err)
	}

	st.mu.Lock()
	if st.flags&(fReset|fReadClosed) != 0 || s.dead.Load() {
		var inc uint32
		if st.flags&fReset == 0 {
			inc = st.creditLocked(n)
		}
		st.mu.Unlock()
		if p != nil {
			putChunk(p)
		}
		s.grant(st.id, inc)
		return nil
	}
	if direct {
		st.appendChunkLocked(p)
	} else {
		if k := len(st.chunks); k > st.ci {
			t := st.chunks[k-1]
			m := min(cap(*t)-len(*t), len(src))
			*t = append(*t, src[:m]...)
			src = src[m:]
		}
		if len(src) > 0 {
			c := getChunk(len(src))
			copy(*c, src)
			st.appendChunkLocked(c)
		}
	}
	ch := st.readCh
	st.mu.Unlock()
	notify(ch)
	return nil
}

func tailFull(c *[]byte) bool { return len(*c) == cap(*c) }

func (st *Stream) appendChunkLocked(c *[]byte) {
	if st.ci > 0 && len(st.chunks) == cap(st.chunks) {
		// Reuse the consumed front instead of growing the slice.
		k := copy(st.chunks, st.chunks[st.ci:])
		clear(st.chunks[k:])
		st.chunks, st.ci = st.chunks[:k], 0
	}
	st.chunks = append(st.chunks, c)
}

func (st *Stream) recvWindowUpdate(h header) error {
	st.mu.Lock()
	if uint64(st.sendWindow)+uint64(h.length) > MaxWindow {
		st.mu.Unlock()
		return protoErr(h, "window overflow past 2^31-1")
	}
	st.sendWindow += h.length
	ch := st.writeCh
	st.mu.Unlock()
	notify(ch)
	return nil
}

func (st *Stream) recvClose(h header) error {
	st.mu.Lock()
	if st.flags&fRemoteClosed != 0 {
		st.mu.Unlock()
		return protoErr(h, "duplicate Close")
	}
	st.flags |= fRemoteClosed
	done := st.flags&fCloseSent != 0
	ch := st.readCh
	st.mu.Unlock()
	notify(ch)
	if done {
		st.s.forget(st)
	}
	return nil
}

func (st *Stream) recvReset(reason string) {
	st.kill(&ResetError{Reason: reason, Remote: true})
}

// kill marks the stream reset, frees its buffer and wakes its waiters. It
// reports false if it was already reset.
func (st *Stream) kill(err error) bool {
	st.mu.Lock()
	if st.flags&fReset != 0 {
		st.mu.Unlock()
		return false
	}
	st.flags |= fReset
	st.resetErr = err
	st.dropChunksLocked()
	r, w := st.readCh, st.writeCh
	st.mu.Unlock()
	notify(r)
	notify(w)
	st.s.forget(st)
	return true
}

// ---- writing ----

func (st *Stream) writeErrLocked() error {
	switch {
	case st.s.dead.Load():
		return st.s.serr
	case st.flags&fReset != 0:
		return st.resetErr
	case st.flags&fWriteClosed != 0:
		return ErrStreamClosed
	case st.wd.expired():
		return os.ErrDeadlineExceeded
	}
	return nil
}

// reserve waits until the send window is open and takes up to max bytes
// (≤ MaxFramePayload) of it.
func (st *Stream) reserve(max int) (int, error) {
	for {
		st.mu.Lock()
		if err := st.writeErrLocked(); err != nil {
			st.mu.Unlock()
			return 0, err
		}
		if st.sendWindow > 0 {
			n := min(max, int(st.sendWindow), MaxFramePayload)
			st.sendWindow -= uint32(n)
			st.mu.Unlock()
			return n, nil
		}
		st.waitLocked(st.writeChLocked(), &st.wd)
	}
}

// Write sends p as Data frames of at most MaxFramePayload bytes. It returns
// once p is queued (copied), blocking only while this stream's send window
// is exhausted, the session's send queue is full, or until the deadline.
func (st *Stream) Write(p []byte) (int, error) {
	st.writeMu.Lock()
	defer st.writeMu.Unlock()
	return st.writeLocked(p)
}

func (st *Stream) writeLocked(p []byte) (int, error) {
	total := 0
	for len(p) > 0 {
		n, err := st.reserve(len(p))
		if err != nil {
			return total, err
		}
		if err := st.s.sendFrame(TypeData, st.id, p[:n], true, st.wd.wait()); err != nil {
			st.mu.Lock()
			st.sendWindow += uint32(n) // not sent: the window is still ours
			st.mu.Unlock()
			if err == errCanceled {
				err = os.ErrDeadlineExceeded
			}
			return total, err
		}
		total += n
		p = p[n:]
	}
	return total, nil
}

// ReadFrom sends everything read from r until io.EOF (returning nil). When r
// is a socket (implements syscall.Conn, e.g. *net.TCPConn), it first waits
// for readability through the runtime poller without holding any buffer, so
// a device connection that sends nothing costs no buffer; a pooled buffer is
// held only across one Read that has data. Note that io.Copy(stream,
// tcpConn) does not reach this method (it prefers TCPConn.WriteTo, which
// hides ReadFrom): call stream.ReadFrom(tcpConn) directly.
func (st *Stream) ReadFrom(r io.Reader) (int64, error) {
	st.writeMu.Lock()
	defer st.writeMu.Unlock()
	var rc syscall.RawConn
	if sc, ok := r.(syscall.Conn); ok {
		rc, _ = sc.SyscallConn()
	}
	var peek peekBuf
	var total int64
	drained := true // the last Read was short: the socket is probably empty
	for {
		if _, err := st.reserve(0); err != nil { // wait for window before taking a buffer
			return total, err
		}
		if rc != nil && drained {
			waitReadable(rc, &peek) // errors resurface from r.Read below
		}
		bp := getChunk(MaxFramePayload)
		n, rerr := r.Read(*bp)
		if n > 0 {
			_, werr := st.writeLocked((*bp)[:n])
			total += int64(n)
			if werr != nil {
				putChunk(bp)
				return total, werr
			}
		}
		putChunk(bp)
		drained = n < MaxFramePayload
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// ---- closing ----

// CloseWrite half-closes the stream: the peer reads io.EOF after the data
// already written. A Write blocked in another goroutine is woken and fails.
func (st *Stream) CloseWrite() error {
	st.mu.Lock()
	if st.flags&fWriteClosed != 0 {
		st.mu.Unlock()
		return nil
	}
	st.flags |= fWriteClosed
	ch := st.writeCh
	st.mu.Unlock()
	notify(ch)

	st.writeMu.Lock() // after any in-flight Write has queued its last frame
	defer st.writeMu.Unlock()
	st.mu.Lock()
	if st.flags&fReset != 0 || st.s.dead.Load() {
		st.mu.Unlock()
		return nil
	}
	st.mu.Unlock()
	if err := st.s.sendFrameLen(TypeClose, st.id, 0); err != nil {
		return err
	}
	st.mu.Lock()
	st.flags |= fCloseSent
	done := st.flags&fRemoteClosed != 0
	st.mu.Unlock()
	if done {
		st.s.forget(st)
	}
	return nil
}

// Close is CloseWrite plus: stop reading. Buffered and later received data
// is discarded (and credited back, so the peer's writer never wedges). The
// stream is forgotten once the peer has closed its side too.
func (st *Stream) Close() error {
	st.mu.Lock()
	if st.flags&fReadClosed == 0 {
		st.flags |= fReadClosed
		inc := st.creditLocked(uint32(st.bufferedLocked()))
		st.dropChunksLocked()
		ch := st.readCh
		st.mu.Unlock()
		notify(ch)
		st.s.grant(st.id, inc)
	} else {
		st.mu.Unlock()
	}
	return st.CloseWrite()
}

// Reset kills the stream in both directions and tells the peer why (reason
// is truncated to MaxResetReason bytes). Buffered data is discarded.
func (st *Stream) Reset(reason string) error {
	if len(reason) > MaxResetReason {
		reason = reason[:MaxResetReason]
	}
	st.mu.Lock()
	finished := st.flags&fRemoved != 0
	st.mu.Unlock()
	if finished || !st.kill(&ResetError{Reason: reason}) {
		return nil // already over both ways: the peer has forgotten the ID
	}
	return st.s.sendFrame(TypeReset, st.id, []byte(reason), false, nil)
}

var _ net.Conn = (*Stream)(nil)
var _ io.WriterTo = (*Stream)(nil)
var _ io.ReaderFrom = (*Stream)(nil)
