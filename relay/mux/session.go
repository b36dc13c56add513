package mux

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Errors returned by sessions and streams. Session-level failures wrap
// ErrSessionClosed together with their cause, so both errors.Is(err,
// ErrSessionClosed) and errors.Is(err, cause) hold.
var (
	ErrSessionClosed    = errors.New("mux: session closed")
	ErrStreamClosed     = fmt.Errorf("mux: stream closed: %w", net.ErrClosed)
	ErrStreamReset      = errors.New("mux: stream reset")
	ErrTooManyStreams   = errors.New("mux: too many streams")
	ErrStreamsExhausted = errors.New("mux: stream IDs exhausted")
	ErrRemoteGoAway     = errors.New("mux: peer sent GoAway: no new streams")
	ErrKeepAliveTimeout = errors.New("mux: keepalive timeout: nothing received from the peer")
	ErrMetaTooLarge     = fmt.Errorf("mux: Open metadata larger than %d bytes", MaxOpenMeta)
)

// ResetError is returned by a stream's operations after it was reset. It
// matches ErrStreamReset with errors.Is.
type ResetError struct {
	Reason string // the reason given to Reset (truncated to MaxResetReason)
	Remote bool   // true if the peer reset the stream
}

func (e *ResetError) Error() string {
	who := "locally"
	if e.Remote {
		who = "by peer"
	}
	if e.Reason == "" {
		return "mux: stream reset " + who
	}
	return fmt.Sprintf("mux: stream reset %s: %q", who, e.Reason)
}

// Is makes errors.Is(err, ErrStreamReset) true.
func (e *ResetError) Is(target error) bool { return target == ErrStreamReset }

// Config tunes a session. The zero value (or nil) gives the defaults.
type Config struct {
	// StreamWindow is the per-stream receive window: the most one stream
	// may have buffered on this side. Default DefaultStreamWindow; values
	// below InitialStreamWindow are raised to it, above MaxWindow lowered.
	StreamWindow uint32
	// MaxStreams bounds concurrent streams per session (default 1<<20): a
	// local Open beyond it fails with ErrTooManyStreams, a peer's Open
	// beyond it is Reset.
	MaxStreams int
	// AcceptBacklog bounds streams opened by the peer and not yet Accepted
	// (default 1024). When it is full, further Opens are Reset: the read
	// loop never waits for Accept.
	AcceptBacklog int
	// KeepAliveInterval: a Ping is sent when nothing was received for this
	// long (default 15s, negative disables).
	KeepAliveInterval time.Duration
	// KeepAliveTimeout: the session dies when nothing at all was received for
	// this long (default 30s, negative disables).
	KeepAliveTimeout time.Duration
	// WriteTimeout: a conn write blocked this long kills the session
	// (default 30s, negative disables).
	WriteTimeout time.Duration
	// Logger receives session events (nil discards). Payloads, Open
	// metadata and Reset reasons are never logged.
	Logger *slog.Logger
}

func (c *Config) withDefaults() Config {
	var out Config
	if c != nil {
		out = *c
	}
	switch {
	case out.StreamWindow == 0:
		out.StreamWindow = DefaultStreamWindow
	case out.StreamWindow < InitialStreamWindow:
		// Windows only grow on the wire; a smaller one cannot be announced.
		out.StreamWindow = InitialStreamWindow
	case out.StreamWindow > MaxWindow:
		out.StreamWindow = MaxWindow
	}
	if out.MaxStreams <= 0 {
		out.MaxStreams = 1 << 20
	}
	if out.AcceptBacklog <= 0 {
		out.AcceptBacklog = 1024
	}
	if out.KeepAliveInterval == 0 {
		out.KeepAliveInterval = 15 * time.Second
	}
	if out.KeepAliveTimeout == 0 {
		out.KeepAliveTimeout = 30 * time.Second
	}
	if out.WriteTimeout == 0 {
		out.WriteTimeout = 30 * time.Second
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	return out
}

// Send-side limits.
const (
	// sendHeadroom is reserved in front of the data batch so pending
	// control frames are prepended in place and leave in the same conn
	// write (one TLS record run) instead of a record of their own.
	sendHeadroom = 2048
	// sendQueueLimit bounds queued data bytes per session; writers wait
	// beyond it, which is how TCP back-pressure reaches Stream.Write.
	sendQueueLimit = 512 << 10
	// ctrlQueueLimit bounds queued control frames. Only a peer that sends
	// Pings or Opens but never reads can fill it; the session dies instead
	// of growing without bound.
	ctrlQueueLimit = 1 << 20
	// recvBufferSize is the read loop's bufio size. Small on purpose: bufio
	// reads straight into the caller's slice only when that slice is at least
	// its size, so with 4 KiB nearly all of a 64 KiB payload bypasses the
	// buffer (one copy instead of two), while headers and small frames
	// still batch.
	recvBufferSize = 4 << 10
)

// creditDivisor: a receiver grants consumed bytes back once they reach
// StreamWindow/creditDivisor. With /4 a sender keeps ≥ 3/4 of the window in
// flight; measured against /2 in BenchmarkRTT50ms.
var creditDivisor uint32 = 4

// Session is one multiplexed connection. All methods are safe for concurrent
// use.
type Session struct {
	conn   net.Conn
	cfg    Config
	client bool
	log    *slog.Logger

	creditThreshold uint32

	// Read loop only.
	br      *bufio.Reader
	scratch []byte

	mu           sync.Mutex
	streams      map[uint32]*Stream
	nextID       uint64 // next local stream ID; > MaxUint32 means exhausted
	lastPeerID   uint32 // highest ID the peer has opened
	localGoAway  bool
	remoteGoAway bool
	pings        map[uint32]chan struct{}
	pingSeq      uint32

	openMu   sync.Mutex // keeps Open frames in ID order on the wire
	acceptCh chan *Stream

	q sendQueue

	recvFrames atomic.Uint64 // read by keepalive

	kaMu     sync.Mutex
	ka       *time.Timer
	kaFrames uint64
	kaLast   time.Time
	kaPinged bool
	kaTick   time.Duration

	dead     atomic.Bool
	die      chan struct{}
	dieOnce  sync.Once
	err      error // cause; written before dead is set
	serr     error // ErrSessionClosed wrapping the cause, for stream calls
	loopDone sync.WaitGroup
}

// sendQueue is the session's single write path. Producers append encoded
// frames under mu; one writer goroutine swaps the buffers out and writes them
// with one conn.Write, so frames queued while it was busy are coalesced and
// a stream's Write never waits for its frame to reach the conn.
type sendQueue struct {
	mu    sync.Mutex
	ctrl  []byte        // Window, Ping, Pong: written before data
	data  []byte        // [0:sendHeadroom] reserved; then ordered frames
	wake  chan struct{} // cap 1
	space chan struct{} // closed when the writer takes the queue; nil if nobody waits
}

// Client returns a session whose locally opened streams have odd IDs.
func Client(conn net.Conn, cfg *Config) *Session { return newSession(conn, cfg, true) }

// Server returns a session whose locally opened streams have even IDs.
func Server(conn net.Conn, cfg *Config) *Session { return newSession(conn, cfg, false) }

func newSession(conn net.Conn, cfg *Config, client bool) *Session {
	c := cfg.withDefaults()
	s := &Session{
		conn:            conn,
		cfg:             c,
		client:          client,
		log:             c.Logger,
		creditThreshold: c.StreamWindow / creditDivisor,
		br:              bufio.NewReaderSize(conn, recvBufferSize),
		streams:         make(map[uint32]*Stream),
		acceptCh:        make(chan *Stream, c.AcceptBacklog),
		die:             make(chan struct{}),
	}
	if client {
		s.nextID = 1
	} else {
		s.nextID = 2
	}
	s.q.wake = make(chan struct{}, 1)
	s.q.data = make([]byte, sendHeadroom, sendHeadroom+4096)
	s.loopDone.Add(2)
	go s.recvLoop()
	go s.sendLoop()
	s.startKeepAlive()
	return s
}

// Open opens a stream carrying meta (≤ MaxOpenMeta bytes, opaque to this
// package). It returns once the Open frame is queued; the peer may still
// refuse the stream with a Reset, which the stream's next Read or Write
// reports. ctx bounds only the wait for queue space.
func (s *Session) Open(ctx context.Context, meta []byte) (*Stream, error) {
	if len(meta) > MaxOpenMeta {
		return nil, ErrMetaTooLarge
	}
	s.openMu.Lock()
	defer s.openMu.Unlock()
	s.mu.Lock()
	switch {
	case s.dead.Load():
		s.mu.Unlock()
		return nil, s.serr
	case s.remoteGoAway:
		s.mu.Unlock()
		return nil, ErrRemoteGoAway
	case len(s.streams) >= s.cfg.MaxStreams:
		s.mu.Unlock()
		return nil, ErrTooManyStreams
	case s.nextID > math.MaxUint32:
		s.mu.Unlock()
		return nil, ErrStreamsExhausted
	}
	id := uint32(s.nextID)
	s.nextID += 2
	st := newStream(s, id, append([]byte(nil), meta...))
	// Registered before the Open is queued, so the peer's first Window for
	// it can never find it missing.
	s.streams[id] = st
	s.mu.Unlock()

	if err := s.sendFrame(TypeOpen, id, meta, true, ctx.Done()); err != nil {
		s.forget(st)
		if err == errCanceled {
			err = ctx.Err()
		}
		return nil, err
	}
	// Raise the peer's view of our receive window. It goes in the ordered
	// queue, after the Open, because the peer must know the stream first.
	if inc := s.cfg.StreamWindow - InitialStreamWindow; inc > 0 {
		if err := s.sendFrameLen(TypeWindow, id, inc); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// Accept returns the next stream opened by the peer.
func (s *Session) Accept(ctx context.Context) (*Stream, error) {
	select {
	case st := <-s.acceptCh:
		return st, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.die:
		return nil, s.serr
	}
}

// NumStreams returns the number of streams not yet finished in both
// directions (0 once the session is dead).
func (s *Session) NumStreams() int {
	if s.dead.Load() {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.streams)
}

// Ping measures one round trip to the peer.
func (s *Session) Ping(ctx context.Context) (time.Duration, error) {
	s.mu.Lock()
	if s.pings == nil {
		s.pings = make(map[uint32]chan struct{})
	}
	s.pingSeq++
	if s.pingSeq == 0 { // nonce 0 is the keepalive's, which nobody waits for
		s.pingSeq++
	}
	nonce := s.pingSeq
	ch := make(chan struct{})
	s.pings[nonce] = ch
	s.mu.Unlock()

	start := time.Now()
	s.sendCtrl(TypePing, 0, nonce)
	select {
	case <-ch:
		return time.Since(start), nil
	case <-ctx.Done():
		s.mu.Lock()
		delete(s.pings, nonce)
		s.mu.Unlock()
		return 0, ctx.Err()
	case <-s.die:
		return 0, s.serr
	}
}

// GoAway tells the peer to open no more streams; Opens it sends anyway are
// Reset. Existing streams and local Opens are unaffected.
func (s *Session) GoAway() error {
	s.mu.Lock()
	if s.localGoAway {
		s.mu.Unlock()
		return nil
	}
	s.localGoAway = true
	s.mu.Unlock()
	return s.sendFrameLen(TypeGoAway, 0, 0)
}

// Close kills the session and all its streams at once: their blocked and
// future Reads and Writes return ErrSessionClosed. Queued data that has not
// reached the conn is dropped; use GoAway and wait for NumStreams to reach
// zero for a graceful end.
func (s *Session) Close() error {
	s.kill(nil)
	return nil
}

// Done is closed when the session dies.
func (s *Session) Done() <-chan struct{} { return s.die }

// Err returns why the session died (ErrSessionClosed after Close), or nil
// while it lives.
func (s *Session) Err() error {
	if !s.dead.Load() {
		return nil
	}
	return s.err
}

func (s *Session) kill(cause error) {
	s.dieOnce.Do(func() {
		if cause == nil {
			s.err, s.serr = ErrSessionClosed, ErrSessionClosed
		} else {
			s.err, s.serr = cause, fmt.Errorf("%w: %w", ErrSessionClosed, cause)
		}
		s.dead.Store(true)
		close(s.die)
		s.kaMu.Lock()
		if s.ka != nil {
			s.ka.Stop()
		}
		s.kaMu.Unlock()
		_ = s.conn.Close()

		var pe *ProtocolError
		switch {
		case cause == nil:
			s.log.Debug("mux session closed")
		case errors.As(cause, &pe):
			s.log.Warn("mux session killed: peer broke the protocol", "reason", pe.Reason, "frame", pe.Type.String(), "stream", pe.StreamID)
		default:
			s.log.Info("mux session ended", "cause", cause)
		}

		// Return received chunks to the pool; streams stay in the map so
		// that late lookups from the read loop stay well-defined.
		s.mu.Lock()
		streams := make([]*Stream, 0, len(s.streams))
		for _, st := range s.streams {
			streams = append(streams, st)
		}
		s.mu.Unlock()
		for _, st := range streams {
			st.mu.Lock()
			st.dropChunksLocked()
			st.mu.Unlock()
		}
	})
}

// forget removes st from the stream table once both directions are done.
func (s *Session) forget(st *Stream) {
	st.mu.Lock()
	already := st.flags&fRemoved != 0
	st.flags |= fRemoved
	st.mu.Unlock()
	if already {
		return
	}
	s.mu.Lock()
	if s.streams[st.id] == st {
		delete(s.streams, st.id)
	}
	s.mu.Unlock()
}

// ---- send path ----

var errCanceled = errors.New("mux: canceled")

func (s *Session) wakeWriter() {
	select {
	case s.q.wake <- struct{}{}:
	default:
	}
}

// sendCtrl queues a payload-less priority frame. It never blocks, so the read
// loop can call it.
func (s *Session) sendCtrl(typ FrameType, id, length uint32) {
	s.q.mu.Lock()
	if s.dead.Load() {
		s.q.mu.Unlock()
		return
	}
	s.q.ctrl = appendHeader(s.q.ctrl, typ, id, length)
	over := len(s.q.ctrl) > ctrlQueueLimit
	s.q.mu.Unlock()
	if over {
		s.kill(errors.New("mux: control queue overflow: peer does not read"))
		return
	}
	s.wakeWriter()
}

// sendFrameLen queues a payload-less frame in order with data, without
// waiting for queue space.
func (s *Session) sendFrameLen(typ FrameType, id, length uint32) error {
	s.q.mu.Lock()
	if s.dead.Load() {
		s.q.mu.Unlock()
		return s.serr
	}
	s.q.data = appendHeader(s.q.data, typ, id, length)
	s.q.mu.Unlock()
	s.wakeWriter()
	return nil
}

// sendFrame queues a frame with payload in order with data. With wait, it
// first waits while the queue holds sendQueueLimit bytes; cancel (may be nil)
// aborts that wait with errCanceled.
func (s *Session) sendFrame(typ FrameType, id uint32, payload []byte, wait bool, cancel <-chan struct{}) error {
	s.q.mu.Lock()
	for wait && len(s.q.data)-sendHeadroom >= sendQueueLimit && !s.dead.Load() {
		if s.q.space == nil {
			s.q.space = make(chan struct{})
		}
		space := s.q.space
		s.q.mu.Unlock()
		select {
		case <-space:
		case <-s.die:
		case <-cancel:
			return errCanceled
		}
		s.q.mu.Lock()
	}
	if s.dead.Load() {
		s.q.mu.Unlock()
		return s.serr
	}
	s.q.data = appendHeader(s.q.data, typ, id, uint32(len(payload)))
	s.q.data = append(s.q.data, payload...)
	s.q.mu.Unlock()
	s.wakeWriter()
	return nil
}

func (s *Session) sendLoop() {
	defer s.loopDone.Done()
	var ctrlSpare []byte
	dataSpare := make([]byte, sendHeadroom, sendHeadroom+4096)
	for {
		select {
		case <-s.q.wake:
		case <-s.die:
			return
		}
		for {
			s.q.mu.Lock()
			ctrl, data := s.q.ctrl, s.q.data
			if len(ctrl) == 0 && len(data) == sendHeadroom {
				s.q.mu.Unlock()
				break
			}
			s.q.ctrl, s.q.data = ctrlSpare[:0], dataSpare[:sendHeadroom]
			if s.q.space != nil {
				close(s.q.space)
				s.q.space = nil
			}
			s.q.mu.Unlock()

			out := data[sendHeadroom:]
			if len(ctrl) > sendHeadroom {
				if err := s.writeConn(ctrl); err != nil {
					return
				}
			} else if len(ctrl) > 0 {
				start := sendHeadroom - len(ctrl)
				copy(data[start:], ctrl)
				out = data[start:]
			}
			if len(out) > 0 {
				if err := s.writeConn(out); err != nil {
					return
				}
			}
			ctrlSpare, dataSpare = ctrl, data
		}
	}
}

func (s *Session) writeConn(b []byte) error {
	if s.cfg.WriteTimeout > 0 {
		_ = s.conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	}
	if _, err := s.conn.Write(b); err != nil {
		s.kill(fmt.Errorf("mux: write: %w", err))
		return err
	}
	return nil
}

// ---- receive path ----

func (s *Session) recvLoop() {
	defer s.loopDone.Done()
	var hb [HeaderSize]byte
	for {
		if _, err := io.ReadFull(s.br, hb[:]); err != nil {
			s.kill(recvErr(err))
			return
		}
		s.recvFrames.Add(1)
		if err := s.handleFrame(decodeHeader(hb[:])); err != nil {
			s.kill(err)
			return
		}
	}
}

func recvErr(err error) error {
	if err == io.EOF {
		return io.EOF
	}
	return fmt.Errorf("mux: read: %w", err)
}

// handleFrame validates one frame against the header alone before touching
// its payload, so a hostile length never causes an allocation.
func (s *Session) handleFrame(h header) error {
	if h.version != Version {
		return protoErr(h, "unsupported version %d", h.version)
	}
	switch h.typ {
	case TypeData:
		if h.length > MaxFramePayload {
			return protoErr(h, "data payload %d > MaxFramePayload", h.length)
		}
		st, err := s.lookup(h)
		if st == nil {
			if err == nil {
				err = s.discard(h.length) // late data for a finished stream
			}
			return err
		}
		return st.recvData(h)
	case TypeOpen:
		return s.handleOpen(h)
	case TypeWindow:
		st, err := s.lookup(h)
		if st == nil {
			return err
		}
		return st.recvWindowUpdate(h)
	case TypeClose:
		if h.length != 0 {
			return protoErr(h, "Close with payload")
		}
		st, err := s.lookup(h)
		if st == nil {
			return err
		}
		return st.recvClose(h)
	case TypeReset:
		if h.length > MaxResetReason {
			return protoErr(h, "reset reason %d > MaxResetReason", h.length)
		}
		st, err := s.lookup(h)
		if err != nil {
			return err
		}
		var buf [MaxResetReason]byte
		if _, err := io.ReadFull(s.br, buf[:h.length]); err != nil {
			return recvErr(err)
		}
		if st != nil {
			st.recvReset(string(buf[:h.length]))
		}
		return nil
	case TypePing:
		if h.streamID != 0 {
			return protoErr(h, "Ping on a stream")
		}
		s.sendCtrl(TypePong, 0, h.length)
		return nil
	case TypePong:
		if h.streamID != 0 {
			return protoErr(h, "Pong on a stream")
		}
		s.mu.Lock()
		ch := s.pings[h.length]
		delete(s.pings, h.length)
		s.mu.Unlock()
		if ch != nil {
			close(ch)
		}
		return nil
	case TypeGoAway:
		if h.streamID != 0 || h.length != 0 {
			return protoErr(h, "GoAway with stream or payload")
		}
		s.mu.Lock()
		s.remoteGoAway = true
		s.mu.Unlock()
		return nil
	default:
		return protoErr(h, "unknown frame type")
	}
}

func (s *Session) isLocalID(id uint32) bool { return (id&1 == 1) == s.client }

// lookup finds the stream a frame names. It returns (nil, nil) for an ID that
// was used before (a late frame for a finished stream, to be ignored) and a
// protocol error for an ID that never existed.
func (s *Session) lookup(h header) (*Stream, error) {
	id := h.streamID
	if id == 0 {
		return nil, protoErr(h, "stream frame on stream 0")
	}
	s.mu.Lock()
	st := s.streams[id]
	used := st != nil
	if !used {
		if s.isLocalID(id) {
			used = uint64(id) < s.nextID
		} else {
			used = id <= s.lastPeerID
		}
	}
	s.mu.Unlock()
	if !used {
		return nil, protoErr(h, "frame for unknown stream")
	}
	return st, nil
}

func (s *Session) discard(n uint32) error {
	if _, err := s.br.Discard(int(n)); err != nil {
		return recvErr(err)
	}
	return nil
}

func (s *Session) handleOpen(h header) error {
	id := h.streamID
	switch {
	case h.length > MaxOpenMeta:
		return protoErr(h, "Open metadata %d > MaxOpenMeta", h.length)
	case id == 0 || s.isLocalID(id):
		return protoErr(h, "Open with an ID of the wrong parity")
	}
	s.mu.Lock()
	reused := id <= s.lastPeerID
	s.mu.Unlock()
	if reused {
		return protoErr(h, "Open for an existing or already used ID")
	}
	var meta []byte
	if h.length > 0 {
		meta = make([]byte, h.length) // ≤ MaxOpenMeta, checked above
		if _, err := io.ReadFull(s.br, meta); err != nil {
			return recvErr(err)
		}
	}
	st := newStream(s, id, meta)
	refuse := ""
	s.mu.Lock()
	s.lastPeerID = id
	switch {
	case s.localGoAway:
		refuse = "going away"
	case len(s.streams) >= s.cfg.MaxStreams:
		refuse = "too many streams"
	default:
		select {
		case s.acceptCh <- st:
			s.streams[id] = st
		default:
			refuse = "accept backlog full"
		}
	}
	s.mu.Unlock()
	if refuse != "" {
		s.log.Debug("mux refused stream", "stream", id, "reason", refuse)
		_ = s.sendFrame(TypeReset, id, []byte(refuse), false, nil)
		return nil
	}
	if inc := s.cfg.StreamWindow - InitialStreamWindow; inc > 0 {
		s.sendCtrl(TypeWindow, id, inc)
	}
	return nil
}

// ---- keepalive ----

func (s *Session) startKeepAlive() {
	iv, to := s.cfg.KeepAliveInterval, s.cfg.KeepAliveTimeout
	var tick time.Duration
	switch {
	case iv > 0 && to > 0:
		tick = min(iv, to) / 4
	case iv > 0:
		tick = iv / 4
	case to > 0:
		tick = to / 4
	default:
		return
	}
	tick = max(tick, time.Millisecond)
	s.kaMu.Lock()
	defer s.kaMu.Unlock()
	s.kaTick = tick
	s.kaLast = time.Now()
	// A timer rather than a goroutine: an idle session costs no stack.
	s.ka = time.AfterFunc(tick, s.keepAlive)
}

func (s *Session) keepAlive() {
	if s.dead.Load() {
		return
	}
	s.kaMu.Lock()
	now := time.Now()
	if n := s.recvFrames.Load(); n != s.kaFrames {
		s.kaFrames, s.kaLast, s.kaPinged = n, now, false
	}
	idle := now.Sub(s.kaLast)
	timedOut := s.cfg.KeepAliveTimeout > 0 && idle >= s.cfg.KeepAliveTimeout
	ping := !timedOut && s.cfg.KeepAliveInterval > 0 && idle >= s.cfg.KeepAliveInterval && !s.kaPinged
	if ping {
		s.kaPinged = true
	}
	if !timedOut {
		s.ka.Reset(s.kaTick)
	}
	s.kaMu.Unlock()
	if timedOut {
		s.kill(ErrKeepAliveTimeout)
		return
	}
	if ping {
		s.sendCtrl(TypePing, 0, 0)
	}
}
