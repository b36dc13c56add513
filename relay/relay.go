// Package relay is the seed's "infrastructure": the service that lets a
// Core inside a company network serve devices anywhere while the company
// opens only one outbound connection.
//
// A Core logs in over its link (Client dials out, TLS 1.3, port 3101 by
// default) with its server ID and key; the relay checks the key and the
// Core's licence, and from then on carries every device connection for
// that server as one stream (package relay/mux) over the link. Devices
// reach the relay on its device port with HTTP CONNECT to their server's
// ID and keep TLS, with their client certificate, end to end with the
// Core: the relay sees which server a device talks to, never what it says.
// The same port answers activation discovery ("which server and relays
// serve this address?") and nothing else.
//
// Promises:
//   - Isolation per server ID: a stream for server S is only ever opened on
//     a link that logged in as S with S's key; a key mismatch is refused
//     before any stream exists.
//   - A device request the relay cannot carry fails at once with a clear
//     HTTP answer (404 unknown server, 503 server not linked); one that was
//     carried and whose link died gets its connection closed, never
//     silently rerouted mid-stream.
//   - Discovery answers an address that routes nowhere exactly as it
//     answers a disabled server's: 404 no_route, after the same work.
//   - Payloads are never logged; neither are keys or addresses.
//
// Several relay processes may share one database (PostgreSQL): each
// records which servers it links (Store.TouchLink), and discovery answers
// with every relay that holds a live link of the server.
package relay

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/httpx"
	"github.com/custos-uem/custos/license"
	"github.com/custos-uem/custos/push"
	"github.com/custos-uem/custos/relay/mux"
)

// Defaults of Config.
const (
	// LinkTTL is how long a relay's record of a live link counts for
	// discovery without being refreshed.
	LinkTTL = 90 * time.Second
	// DefaultDiscoveryRate is discovery lookups per client IP per second
	// (burst 4×).
	DefaultDiscoveryRate = 2
	// MaxLinksPerServer bounds the sessions one server may hold on one
	// relay (all its Core processes' pools together).
	MaxLinksPerServer = 64
	// MaxDiscoveryBody bounds a discovery request.
	MaxDiscoveryBody = 4 << 10
	// PathLookup is the discovery endpoint.
	PathLookup = "/discovery/v1/lookup"
)

// Config configures a Relay.
type Config struct {
	Store Store
	// RelayID names this process among relays sharing the database.
	RelayID string
	// PublicAddress is host:port where devices reach this relay's device
	// port, as discovery tells them.
	PublicAddress string
	// Certificate is the relay's TLS certificate on both ports.
	Certificate tls.Certificate
	// LicenseKeys are the public keys licences must be signed with.
	LicenseKeys []ed25519.PublicKey
	// AddressKey keys the HMAC under which users' addresses are stored.
	// It must be the same on every relay sharing the database.
	AddressKey []byte
	// Push sends the notifications Cores hand over; nil refuses them
	// (push_not_configured).
	Push push.Sender
	// DiscoveryRate limits lookups per client IP per second; zero takes
	// DefaultDiscoveryRate, negative disables the limit.
	DiscoveryRate float64
	// ReadHeaderTimeout, when positive, replaces httpx.ReadHeaderTimeout
	// on the device port (tests of slow clients shorten it).
	ReadHeaderTimeout time.Duration
	// Mux tunes the link sessions; nil takes the mux defaults.
	Mux      *mux.Config
	Logger   *slog.Logger
	Now      func() time.Time
	Registry prometheus.Registerer
}

// Relay serves Cores on its link listener and devices on its device
// listener.
type Relay struct {
	cfg Config
	log *slog.Logger
	lim *httpx.IPLimiter

	mu      sync.Mutex
	servers map[string]*serverLinks // live sessions by server ID
	changed chan struct{}           // closed and replaced when a session registers
	closed  bool

	// windows maps a server ID to what Windows discovery answers for it
	// (relay/windows.go).
	windows sync.Map

	dev     *http.Server
	lns     []net.Listener
	wg      sync.WaitGroup
	stop    chan struct{}
	metrics *metrics
}

// serverLinks are the live sessions of one server on this relay.
type serverLinks struct {
	sessions []*link
}

// link is one logged-in Core connection.
type link struct {
	serverID, instance string
	slot               int
	sess               *mux.Session
}

type metrics struct {
	links   prometheus.Gauge
	streams *prometheus.CounterVec
	logins  *prometheus.CounterVec
}

// New returns a Relay for cfg.
func New(cfg Config) (*Relay, error) {
	if cfg.Store == nil {
		return nil, errors.New("relay: no store")
	}
	if len(cfg.AddressKey) < 16 {
		return nil, errors.New("relay: the address key must have at least 16 bytes")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RelayID == "" {
		cfg.RelayID = NewServerID()
	}
	r := &Relay{cfg: cfg, log: cfg.Logger, servers: map[string]*serverLinks{}, changed: make(chan struct{}), stop: make(chan struct{})}
	rate := cfg.DiscoveryRate
	if rate == 0 {
		rate = DefaultDiscoveryRate
	}
	if rate > 0 {
		r.lim = httpx.NewIPLimiter(rate, int(4*rate))
	}
	r.metrics = &metrics{
		links:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "custos_relay_links", Help: "Core link sessions logged in to this relay."}),
		streams: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "custos_relay_device_streams_total", Help: "Device CONNECT requests by outcome."}, []string{"outcome"}),
		logins:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "custos_relay_logins_total", Help: "Core link logins by outcome."}, []string{"outcome"}),
	}
	if cfg.Registry != nil {
		cfg.Registry.MustRegister(r.metrics.links, r.metrics.streams, r.metrics.logins)
	}
	return r, nil
}

// ID is the relay's ID.
func (r *Relay) ID() string { return r.cfg.RelayID }

// Serve starts serving Cores on linkLn and devices on devLn (either may
// be nil) and returns at once; Close stops both.
func (r *Relay) Serve(linkLn, devLn net.Listener) {
	if linkLn != nil {
		r.lns = append(r.lns, linkLn)
		tl := tls.NewListener(linkLn, &tls.Config{
			MinVersion:   tls.VersionTLS13,
			Certificates: []tls.Certificate{r.cfg.Certificate},
		})
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.acceptLinks(tl)
		}()
	}
	if devLn != nil {
		r.lns = append(r.lns, devLn)
		r.dev = httpx.NewServer(r.deviceHandler(), r.log)
		// A CONNECT tunnel lives far beyond one request: the deadlines of
		// the request phase are cleared on hijack (serveConnect).
		if r.cfg.ReadHeaderTimeout > 0 {
			r.dev.ReadHeaderTimeout = r.cfg.ReadHeaderTimeout
		}
		r.dev.MaxHeaderBytes = MaxRequestHeader
		r.dev.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{r.cfg.Certificate}}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			if err := r.dev.Serve(sniffTLS(devLn, r.dev.TLSConfig, r.dev.ReadHeaderTimeout)); err != nil && !errors.Is(err, http.ErrServerClosed) {
				r.log.Error("relay device port stopped", "err", err)
			}
		}()
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.refreshLinks()
	}()
}

// MaxRequestHeader bounds a device's CONNECT or discovery request header.
const MaxRequestHeader = 8 << 10

// Close stops accepting, ends every link and tunnel, and waits.
func (r *Relay) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	var all []*link
	for _, sl := range r.servers {
		all = append(all, sl.sessions...)
	}
	r.mu.Unlock()
	close(r.stop)
	for _, ln := range r.lns {
		ln.Close()
	}
	if r.dev != nil {
		r.dev.Close()
	}
	for _, l := range all {
		l.sess.Close()
	}
	r.wg.Wait()
	return nil
}

// acceptLinks serves Core logins until the listener closes.
func (r *Relay) acceptLinks(ln net.Listener) {
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if r.isClosed() {
				return
			}
			// Out of descriptors and the like: back off instead of
			// spinning (net/http's rule).
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			r.log.Warn("relay: accept link", "err", err)
			time.Sleep(delay)
			continue
		}
		delay = 0
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.serveLink(c)
		}()
	}
}

func (r *Relay) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// serveLink authenticates one Core connection and serves its session.
func (r *Relay) serveLink(c net.Conn) {
	c.SetDeadline(time.Now().Add(HandshakeTimeout))
	var h Hello
	err := readMsg(c, MaxHello, &h)
	if err == nil {
		err = c.(*tls.Conn).Handshake() // already done by the read; makes the version check explicit
	}
	if err != nil {
		r.metrics.logins.WithLabelValues("bad_hello").Inc()
		r.log.Info("relay: link refused", "remote", c.RemoteAddr().String(), "err", err)
		writeMsg(c, Welcome{Error: wireError(err)})
		c.Close()
		return
	}
	welcome, err := r.login(context.Background(), &h)
	if err != nil {
		r.metrics.logins.WithLabelValues(codeOf(err)).Inc()
		r.log.Warn("relay: login refused", "remote", c.RemoteAddr().String(), "server", h.ServerID, "err", err)
		writeMsg(c, Welcome{Error: wireError(err)})
		c.Close()
		return
	}
	if err := writeMsg(c, welcome); err != nil {
		c.Close()
		return
	}
	c.SetDeadline(time.Time{})
	sess := mux.Server(c, r.cfg.Mux)
	l := &link{serverID: h.ServerID, instance: h.Instance, slot: h.Slot, sess: sess}
	if err := r.register(l); err != nil {
		r.metrics.logins.WithLabelValues(codeOf(err)).Inc()
		sess.Close()
		return
	}
	r.metrics.logins.WithLabelValues("ok").Inc()
	r.log.Info("relay: server linked", "server", h.ServerID, "instance", h.Instance, "slot", h.Slot)
	defer func() {
		r.unregister(l)
		sess.Close()
		r.log.Info("relay: server link closed", "server", h.ServerID, "instance", h.Instance, "slot", h.Slot, "err", sess.Err())
	}()
	// Streams the Core opens: route updates and push requests.
	for {
		st, err := sess.Accept(context.Background())
		if err != nil {
			return
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.serveControl(h.ServerID, st)
		}()
	}
}

// login checks a Hello: version, server, key (constant time), and the
// licence.
func (r *Relay) login(ctx context.Context, h *Hello) (*Welcome, error) {
	if h.Version != LinkVersion {
		return nil, ErrVersion
	}
	if err := ValidServerID(h.ServerID); err != nil {
		return nil, ErrUnknownServer
	}
	if h.Slot < 0 || h.Slot >= MaxLinksPerServer || len(h.Instance) > 128 {
		return nil, errs.E(errs.Invalid, "relay_bad_hello", "slot or instance out of range")
	}
	srv, err := r.cfg.Store.Server(ctx, h.ServerID)
	if errors.Is(err, errs.ErrNotFound) {
		return nil, ErrUnknownServer
	}
	if err != nil {
		return nil, errs.Wrap(errs.Unavailable, "relay_unavailable", "the relay cannot check logins now", err)
	}
	got := HashKey(h.Key)
	if got == nil || subtle.ConstantTimeCompare(got, srv.KeyHash) != 1 || srv.Disabled {
		return nil, ErrBadKey
	}
	w := &Welcome{RelayID: r.cfg.RelayID}
	presented := []byte(h.License)
	if len(presented) == 0 {
		presented = srv.License // the licence recorded at an earlier login
	}
	if len(presented) > 0 {
		l, err := license.Verify(presented, r.cfg.LicenseKeys)
		if err == nil {
			err = l.CheckServer(h.ServerID)
		}
		if err != nil {
			w.LicenseError = wireError(err)
		} else {
			w.License = string(presented)
			if !bytesEqual(srv.License, presented) {
				srv.License = presented
				srv.UpdatedAt = r.cfg.Now().UTC()
				if err := r.cfg.Store.UpdateServer(ctx, srv); err != nil {
					r.log.Warn("relay: record licence", "server", h.ServerID, "err", err)
				}
			}
		}
	} else {
		w.LicenseError = wireError(errs.E(errs.Forbidden, "license_missing", "the server presented no licence"))
	}
	return w, nil
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

// register adds l, evicting a stale session of the same server, instance
// and slot.
func (r *Relay) register(l *link) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return errors.New("relay closed")
	}
	sl := r.servers[l.serverID]
	if sl == nil {
		sl = &serverLinks{}
		r.servers[l.serverID] = sl
	}
	var stale *link
	for i, o := range sl.sessions {
		if o.instance == l.instance && o.slot == l.slot {
			stale = o
			sl.sessions = append(sl.sessions[:i], sl.sessions[i+1:]...)
			break
		}
	}
	if len(sl.sessions) >= MaxLinksPerServer {
		r.mu.Unlock()
		return errs.E(errs.RateLimited, "relay_too_many_links", "this server holds too many links on this relay")
	}
	sl.sessions = append(sl.sessions, l)
	first := len(sl.sessions) == 1
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
	r.metrics.links.Inc()
	if stale != nil {
		r.log.Info("relay: evicted a stale session", "server", l.serverID, "instance", l.instance, "slot", l.slot)
		stale.sess.Close()
		r.metrics.links.Dec()
	}
	if first {
		r.touch(l.serverID)
	}
	return nil
}

// unregister removes l if it is still registered.
func (r *Relay) unregister(l *link) {
	r.mu.Lock()
	sl := r.servers[l.serverID]
	found, last := false, false
	if sl != nil {
		for i, o := range sl.sessions {
			if o == l {
				sl.sessions = append(sl.sessions[:i], sl.sessions[i+1:]...)
				found = true
				break
			}
		}
		if len(sl.sessions) == 0 {
			delete(r.servers, l.serverID)
			last = true
		}
	}
	r.mu.Unlock()
	if !found {
		return
	}
	r.metrics.links.Dec()
	if last {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := r.cfg.Store.DropLink(ctx, l.serverID, r.cfg.RelayID); err != nil {
			r.log.Warn("relay: drop link record", "server", l.serverID, "err", err)
		}
	}
}

// touch records that this relay links serverID.
func (r *Relay) touch(serverID string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := r.cfg.Store.TouchLink(ctx, Link{ServerID: serverID, RelayID: r.cfg.RelayID, Address: r.cfg.PublicAddress, SeenAt: r.cfg.Now().UTC()})
	if err != nil {
		r.log.Warn("relay: record link", "server", serverID, "err", err)
	}
}

// refreshLinks keeps the link records of live servers fresh.
func (r *Relay) refreshLinks() {
	t := time.NewTicker(LinkTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		r.mu.Lock()
		ids := make([]string, 0, len(r.servers))
		for id := range r.servers {
			ids = append(ids, id)
		}
		r.mu.Unlock()
		for _, id := range ids {
			r.touch(id)
		}
	}
}

// LinkWait is how long a device's CONNECT waits for its server to link
// when it has no live session here: a Core reconnecting after a relay
// restart or a network blip (its backoff is capped at 1 s) then costs the
// device a short wait, not a failure.
const LinkWait = 2 * time.Second

// waitPick is pick, waiting up to LinkWait (or ctx) for a session of
// serverID to register.
func (r *Relay) waitPick(ctx context.Context, serverID string) *link {
	timer := time.NewTimer(LinkWait)
	defer timer.Stop()
	for {
		r.mu.Lock()
		l, ch := r.pickLocked(serverID), r.changed
		r.mu.Unlock()
		if l != nil {
			return l
		}
		select {
		case <-ch:
		case <-timer.C:
			return nil
		case <-ctx.Done():
			return nil
		case <-r.stop:
			return nil
		}
	}
}

// pick returns the live session of serverID carrying the fewest streams,
// so a Core's streams spread over its pool.
func (r *Relay) pick(serverID string) *link {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pickLocked(serverID)
}

func (r *Relay) pickLocked(serverID string) *link {
	sl := r.servers[serverID]
	if sl == nil {
		return nil
	}
	var best *link
	for _, l := range sl.sessions {
		select {
		case <-l.sess.Done():
			continue
		default:
		}
		if best == nil || l.sess.NumStreams() < best.sess.NumStreams() {
			best = l
		}
	}
	return best
}

// Evict ends every session of serverID on this relay (the Core's pool
// reconnects unless the server was disabled).
func (r *Relay) Evict(serverID string) {
	r.mu.Lock()
	var ls []*link
	if sl := r.servers[serverID]; sl != nil {
		ls = append(ls, sl.sessions...)
	}
	r.mu.Unlock()
	for _, l := range ls {
		l.sess.Close()
	}
}

// Linked returns the IDs of the servers linked to this relay, sorted.
func (r *Relay) Linked() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]string, 0, len(r.servers))
	for id := range r.servers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Sessions returns how many link sessions serverID holds here.
func (r *Relay) Sessions(serverID string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if sl := r.servers[serverID]; sl != nil {
		return len(sl.sessions)
	}
	return 0
}

// AddressHash is how an address is stored: hex HMAC-SHA-256 of the
// lowercased address under the relay's address key.
func (r *Relay) AddressHash(addr string) string {
	m := hmac.New(sha256.New, r.cfg.AddressKey)
	m.Write([]byte(strings.ToLower(strings.TrimSpace(addr))))
	return hex.EncodeToString(m.Sum(nil))
}

func codeOf(err error) string {
	code, _, _ := errs.Public(err)
	return code
}

// splice copies both ways between a device connection and its stream,
// half-closing each direction as it ends, and returns when both are done.
func splice(dev net.Conn, br *bufio.Reader, st *mux.Stream) {
	// Bytes the device sent right behind its CONNECT (a pipelined TLS
	// ClientHello) are in br's buffer: forward them first, here, so that
	// the goroutines below do not keep the buffer: an idle tunnel holds
	// none. They fit the
	// stream's first window, so the write does not wait.
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		if _, err := st.Write(b); err != nil {
			st.Reset("write failed")
			dev.Close()
			return
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := st.ReadFrom(dev); err != nil {
			st.Reset("device read failed")
			return
		}
		st.CloseWrite()
	}()
	if _, err := st.WriteTo(dev); err != nil {
		dev.Close()
	} else if cw, ok := dev.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	<-done
	dev.Close()
	st.Close()
}
