package apns

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
)

// pool holds at most max HTTP/2 connections to one APNs host, opened lazily,
// and hands out a connection with a free stream.
//
// Why our own pool rather than http.Transport's (or sideshow/apns2, which
// uses one): the Transport either opens a new connection whenever all
// streams are busy (unbounded connections — Apple treats bursts of
// connections as abuse: "Keep your connections with APNs open across
// multiple notifications; don't repeatedly open and close connections",
// https://developer.apple.com/documentation/usernotifications/sending-notification-requests-to-apns)
// or, with StrictMaxConcurrentRequests, queues everything on one connection.
// Go 1.26's http.ClientConn (one connection, Available/Reserve, RoundTrip
// waiting for a free stream) lets us do what Apple asks: a few connections,
// each used up to the server's SETTINGS_MAX_CONCURRENT_STREAMS and never
// beyond it.
type pool struct {
	t    *http.Transport
	addr string // host:port
	max  int

	mu      sync.Mutex
	conns   []*pconn
	dialing int
	// changed is closed (and replaced) whenever a dial ends, so that a
	// caller waiting for a connection looks again.
	changed chan struct{}
	closed  bool

	snap atomic.Pointer[[]*pconn] // copy of conns for the lock-free fast path
	next atomic.Uint32            // rotates the fast path's first choice
}

// pconn is one pooled connection.
//
// A new connection is "cold" until its first response: the client assumes
// 100 concurrent streams until the server's SETTINGS frame is read
// (RFC 9113 §6.5.2 leaves the initial value unlimited; Go uses 100), so a
// server that advertises fewer could see streams refused in that window.
// The server sends SETTINGS first (RFC 9113 §3.4) and the client reads
// frames in order, so once one response arrived the real limit is known.
// While cold, a connection carries a single request.
type pconn struct {
	cc      *http.ClientConn
	warm    atomic.Bool
	probing atomic.Bool
	once    sync.Once
	warmed  chan struct{}
}

func (pc *pconn) markWarm() {
	pc.warm.Store(true)
	pc.once.Do(func() { close(pc.warmed) })
}

// lease is a connection handed to one request. reserved says a stream slot
// was reserved on it (RoundTrip consumes it; release must Release it if the
// request is not sent); probe says this is a cold connection's one request.
type lease struct {
	pc       *pconn
	reserved bool
	probe    bool
}

func newPool(t *http.Transport, addr string, max int) *pool {
	return &pool{t: t, addr: addr, max: max, changed: make(chan struct{})}
}

// get returns a connection to send one request on, dialing one if all are
// busy and fewer than max exist. When all max connections are busy it
// returns the least loaded one unreserved: its RoundTrip then waits for a
// stream to free up (the server's limit is never exceeded).
//
// The fast path takes no pool lock: it tries to reserve a stream on the
// connections in turn, starting at a rotating index so that load spreads
// over the open connections (each has its own reader and writer, on both
// ends; one connection would serialise them).
func (p *pool) get(ctx context.Context) (lease, error) {
	if conns := p.snap.Load(); conns != nil {
		n := len(*conns)
		start := int(p.next.Add(1))
		for i := range n {
			pc := (*conns)[(start+i)%n]
			if !pc.warm.Load() {
				continue
			}
			if pc.cc.Reserve() == nil {
				return lease{pc: pc, reserved: true}, nil
			}
		}
	}
	return p.getSlow(ctx)
}

func (p *pool) getSlow(ctx context.Context) (lease, error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return lease{}, errPoolClosed
		}
		p.pruneLocked()
		var leastLoaded *pconn
		leastInFlight := int(^uint(0) >> 1)
		var cold []*pconn
		for _, pc := range p.conns {
			if !pc.warm.Load() {
				if pc.probing.CompareAndSwap(false, true) {
					p.mu.Unlock()
					return lease{pc: pc, probe: true}, nil
				}
				cold = append(cold, pc)
				continue
			}
			if pc.cc.Reserve() == nil {
				p.mu.Unlock()
				return lease{pc: pc, reserved: true}, nil
			}
			if n := pc.cc.InFlight(); n < leastInFlight {
				leastLoaded, leastInFlight = pc, n
			}
		}
		if len(p.conns)+p.dialing < p.max {
			p.dialing++
			p.mu.Unlock()
			pc, err := p.dial(ctx)
			p.mu.Lock()
			p.dialing--
			close(p.changed)
			p.changed = make(chan struct{})
			if err != nil {
				p.mu.Unlock()
				return lease{}, err
			}
			if p.closed {
				p.mu.Unlock()
				pc.cc.Close()
				return lease{}, errPoolClosed
			}
			pc.probing.Store(true)
			p.conns = append(p.conns, pc)
			p.publishLocked()
			p.mu.Unlock()
			return lease{pc: pc, probe: true}, nil
		}
		if leastLoaded != nil {
			p.mu.Unlock()
			return lease{pc: leastLoaded}, nil
		}
		// Only cold connections, each busy with its first request, or
		// dials in flight: wait for one of them to settle.
		changed := p.changed
		p.mu.Unlock()
		var warmed <-chan struct{}
		if len(cold) > 0 {
			warmed = cold[0].warmed
		}
		select {
		case <-ctx.Done():
			return lease{}, ctx.Err()
		case <-changed:
		case <-warmed:
		}
	}
}

// publishLocked makes the current connection list visible to the fast path.
func (p *pool) publishLocked() {
	conns := append([]*pconn(nil), p.conns...)
	p.snap.Store(&conns)
}

// done ends a lease: ok says a response was received on the connection.
func (p *pool) done(l lease, sent, ok bool) {
	if l.reserved && !sent {
		l.pc.cc.Release()
	}
	if l.probe {
		if ok {
			l.pc.markWarm()
		}
		l.pc.probing.Store(false)
		if !ok {
			p.mu.Lock()
			close(p.changed)
			p.changed = make(chan struct{})
			p.mu.Unlock()
		}
	}
}

// pruneLocked drops connections that are closed, or that can take no new
// request while having none in flight (GOAWAY received, or idle-closed).
func (p *pool) pruneLocked() {
	kept := p.conns[:0]
	for _, pc := range p.conns {
		dead := pc.cc.Err() != nil
		if !dead && pc.warm.Load() && pc.cc.Available() == 0 && pc.cc.InFlight() == 0 {
			dead = true
		}
		if dead {
			pc.cc.Close()
			continue
		}
		kept = append(kept, pc)
	}
	if len(kept) == len(p.conns) {
		return
	}
	for i := len(kept); i < len(p.conns); i++ {
		p.conns[i] = nil
	}
	p.conns = kept
	p.publishLocked()
}

func (p *pool) dial(ctx context.Context) (*pconn, error) {
	cc, err := p.t.NewClientConn(ctx, "https", p.addr)
	if err != nil {
		return nil, err
	}
	return &pconn{cc: cc, warmed: make(chan struct{})}, nil
}

// size returns the number of open connections.
func (p *pool) size() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

func (p *pool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, pc := range p.conns {
		pc.cc.Close()
	}
	p.conns = nil
	p.publishLocked()
}
