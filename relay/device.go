package relay

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/httpx"
	"github.com/custos-uem/custos/relay/mux"
)

// The device port answers these requests and nothing else:
//
//	CONNECT <server-id>:443   a tunnel to that server's Core (RFC 9110 §9.3.6)
//	POST /discovery/v1/lookup {"address": "user@example.com"} → {"server_id", "relays"}
//	GET, POST /EnrollmentServer/Discovery.svc  Windows discovery (relay/windows.go)
//	GET /healthz
//
// It accepts plain HTTP (the usual way to speak to a proxy: the device's
// TLS runs inside the tunnel) and HTTP over TLS on the same port; the
// first byte tells them apart.

// LookupRequest is the body of a discovery lookup.
type LookupRequest struct {
	Address string `json:"address"`
}

// LookupResponse tells a device which server to activate against and
// which relays carry it (host:port, each able to CONNECT to it).
type LookupResponse struct {
	ServerID string   `json:"server_id"`
	Relays   []string `json:"relays"`
}

// Errors devices see on the device port.
var (
	ErrNoRoute     = errs.E(errs.NotFound, "no_route", "no server accepts activations for this address")
	ErrNotLinked   = errs.E(errs.Unavailable, "server_unreachable", "the server is registered but not connected to this relay; try another relay or later")
	ErrBadTarget   = errs.E(errs.Invalid, "bad_connect_target", "CONNECT needs <server-id>:443")
	ErrOpenTimeout = errs.E(errs.Unavailable, "server_busy", "the server did not take the connection in time")
)

// MaxAddress bounds an address in a lookup (RFC 5321 §4.5.3.1.3 path
// limit).
const MaxAddress = 256

// OpenTimeout bounds how long a CONNECT waits for the link to take the
// stream.
const OpenTimeout = 10 * time.Second

func (r *Relay) deviceHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+PathLookup, r.lookup)
	r.windowsRoutes(mux)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, req *http.Request) {
		httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	notFound := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		httpx.WriteError(w, req, errs.E(errs.NotFound, "route_not_found", "no such route"))
	})
	return httpx.Observe(r.log, nil, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodConnect {
			r.serveConnect(w, req)
			return
		}
		if !httpx.Canonical(req) {
			notFound(w, req)
			return
		}
		if h, pattern := mux.Handler(req); pattern != "" {
			h.ServeHTTP(w, req)
			return
		}
		notFound(w, req)
	}))
}

// lookup is activation discovery: the seed's "verifies that the user is
// a valid, registered user; retrieves the server address; sends the
// address". Every address that routes nowhere gets the same 404 after the
// same work (one keyed hash, one query), so the answer does not tell a
// registered user of an unlinked server from an address that never was.
func (r *Relay) lookup(w http.ResponseWriter, req *http.Request) {
	if r.lim != nil && !r.lim.Allow(req.RemoteAddr) {
		w.Header().Set("Retry-After", "1")
		httpx.WriteError(w, req, httpx.ErrRateLimited)
		return
	}
	var in LookupRequest
	if err := httpx.DecodeJSON(w, req, MaxDiscoveryBody, &in); err != nil {
		httpx.WriteError(w, req, err)
		return
	}
	addr := strings.ToLower(strings.TrimSpace(in.Address))
	at := strings.LastIndexByte(addr, '@')
	if len(addr) > MaxAddress || at <= 0 || at == len(addr)-1 {
		httpx.WriteError(w, req, errs.E(errs.Invalid, "invalid_address", "address must be user@domain, at most 256 characters"))
		return
	}
	ctx := req.Context()
	serverID, err := r.cfg.Store.Route(ctx, r.AddressHash(addr), addr[at+1:])
	if errors.Is(err, errs.ErrNotFound) {
		httpx.WriteError(w, req, ErrNoRoute)
		return
	}
	if err != nil {
		httpx.WriteError(w, req, errs.Wrap(errs.Unavailable, "discovery_unavailable", "discovery is unavailable; try again", err))
		return
	}
	links, err := r.cfg.Store.Links(ctx, serverID, r.cfg.Now().Add(-LinkTTL))
	if err != nil {
		httpx.WriteError(w, req, errs.Wrap(errs.Unavailable, "discovery_unavailable", "discovery is unavailable; try again", err))
		return
	}
	out := LookupResponse{ServerID: serverID}
	for _, l := range links {
		out.Relays = append(out.Relays, l.Address)
	}
	if len(out.Relays) == 0 {
		// The server is offline everywhere: send the device here; its
		// CONNECT gets a clear 503 until the Core links again.
		out.Relays = []string{r.cfg.PublicAddress}
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

// serveConnect carries a device's CONNECT to its server's Core as one
// stream.
func (r *Relay) serveConnect(w http.ResponseWriter, req *http.Request) {
	host, port, err := net.SplitHostPort(req.Host)
	if err != nil || port != "443" || ValidServerID(host) != nil {
		r.metrics.streams.WithLabelValues("bad_target").Inc()
		httpx.WriteError(w, req, ErrBadTarget)
		return
	}
	l := r.pick(host)
	if l == nil {
		_, err := r.cfg.Store.Server(req.Context(), host)
		switch {
		case errors.Is(err, errs.ErrNotFound):
			r.metrics.streams.WithLabelValues("unknown_server").Inc()
			httpx.WriteError(w, req, ErrUnknownServer)
			return
		case err != nil:
			httpx.WriteError(w, req, errs.Wrap(errs.Unavailable, "relay_unavailable", "the relay cannot check servers now", err))
			return
		}
		if l = r.waitPick(req.Context(), host); l == nil {
			r.metrics.streams.WithLabelValues("not_linked").Inc()
			httpx.WriteError(w, req, ErrNotLinked)
			return
		}
	}
	meta, _ := json.Marshal(StreamMeta{Kind: KindDevice, Remote: req.RemoteAddr})
	ctx, cancel := context.WithTimeout(req.Context(), OpenTimeout)
	st, err := l.sess.Open(ctx, meta)
	cancel()
	if err != nil {
		r.metrics.streams.WithLabelValues("open_failed").Inc()
		httpx.WriteError(w, req, ErrOpenTimeout)
		return
	}
	// The device port speaks HTTP/1.1 only, so the connection can always
	// be taken over.
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		st.Reset("hijack failed")
		httpx.WriteError(w, req, errs.Wrap(errs.Invalid, "connect_unsupported", "CONNECT needs HTTP/1.1", err))
		return
	}
	conn.SetDeadline(time.Time{}) // the tunnel outlives the request's deadlines
	if _, err := conn.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
		st.Reset("device gone")
		conn.Close()
		return
	}
	r.metrics.streams.WithLabelValues("ok").Inc()
	if pc, ok := conn.(*peekedConn); ok && pc.drained() {
		conn = pc.Conn // hand the bare TCP connection to the stream: it reads without an idle buffer
	}
	// The tunnel runs on fresh goroutines and this handler returns: an
	// idle tunnel then holds two shallow stacks, not the HTTP server's
	// deep one with its request and response state.
	r.wg.Add(1)
	go func(conn net.Conn, br *bufio.Reader, st *mux.Stream) {
		defer r.wg.Done()
		splice(conn, br, st)
	}(conn, brw.Reader, st)
}

// sniffTLS wraps ln so that connections whose first byte is a TLS
// handshake record (0x16, RFC 8446 §5.1) are served over TLS with cfg and
// the others as they are. The first byte is read in a goroutine per
// connection with a deadline, so a silent client never blocks Accept.
func sniffTLS(ln net.Listener, cfg *tls.Config, timeout time.Duration) net.Listener {
	s := &sniffListener{Listener: ln, cfg: cfg, timeout: timeout, ready: make(chan net.Conn), done: make(chan struct{})}
	go s.loop()
	return s
}

type sniffListener struct {
	net.Listener
	cfg     *tls.Config
	timeout time.Duration // for the first byte, as for the rest of the header
	ready   chan net.Conn
	done    chan struct{}
	once    sync.Once
	mu      sync.Mutex // guards err
	err     error
}

func (s *sniffListener) loop() {
	for {
		c, err := s.Listener.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			s.mu.Lock()
			s.err = err
			s.mu.Unlock()
			s.Close()
			return
		}
		go func() {
			c.SetReadDeadline(time.Now().Add(s.timeout))
			var b [1]byte
			if _, err := c.Read(b[:]); err != nil {
				c.Close()
				return
			}
			c.SetReadDeadline(time.Time{})
			pc := &peekedConn{Conn: c, first: b[0], has: true}
			var out net.Conn = pc
			if b[0] == 0x16 {
				out = tls.Server(pc, s.cfg)
			}
			select {
			case s.ready <- out:
			case <-s.done:
				c.Close()
			}
		}()
	}
}

func (s *sniffListener) Accept() (net.Conn, error) {
	select {
	case c := <-s.ready:
		return c, nil
	case <-s.done:
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.err != nil {
			return nil, s.err
		}
		return nil, net.ErrClosed
	}
}

func (s *sniffListener) Close() error {
	s.once.Do(func() { close(s.done) })
	return s.Listener.Close()
}

// peekedConn gives back the one byte sniffTLS read.
type peekedConn struct {
	net.Conn
	mu    sync.Mutex
	first byte
	has   bool
}

func (c *peekedConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	if c.has && len(b) > 0 {
		b[0] = c.first
		c.has = false
		c.mu.Unlock()
		return 1, nil
	}
	c.mu.Unlock()
	return c.Conn.Read(b)
}

func (c *peekedConn) drained() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.has
}
