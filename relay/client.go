package relay

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/license"
	"github.com/custos-uem/custos/push"
	"github.com/custos-uem/custos/relay/mux"
)

// Defaults of ClientConfig.
const (
	// DefaultPoolSize is the number of link connections per relay
	// address: one TCP connection is one loss domain, and streams spread
	// over the pool.
	DefaultPoolSize = 2
	// MaxPoolSize bounds PoolSize.
	MaxPoolSize = 4
	// DefaultBackoffMin and DefaultBackoffMax bound the jittered,
	// doubling delay between reconnect attempts. The cap is low so that a
	// restarted relay carries devices again within 2 s.
	DefaultBackoffMin = 50 * time.Millisecond
	DefaultBackoffMax = time.Second
	// DefaultRouteSync is how often the Core re-sends its routes.
	DefaultRouteSync = 5 * time.Minute
	// acceptQueue bounds device streams handed to the Core's server and
	// not yet accepted; past it new streams are reset (the device
	// retries) instead of blocking the link.
	acceptQueue = 1024
)

// ClientConfig configures the Core's side of the link.
type ClientConfig struct {
	// Addresses are the relays' link addresses (host:port). Each gets
	// PoolSize connections; discovery sends devices to any of them.
	Addresses []string
	PoolSize  int
	ServerID  string
	Key       string
	// License is the Core's licence document (PEM), nil if none: the
	// relay then reports the one it recorded, if any.
	License []byte
	// Instance names this Core process among those sharing the server ID.
	Instance string
	// TLS is the client TLS configuration (RootCAs that verify the relay);
	// ServerName is taken from each address when empty. TLS 1.3 is
	// always required.
	TLS *tls.Config
	// Dial reaches the relay: direct, through SOCKS5 or HTTP CONNECT
	// (connect/router). Nil dials directly.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Routes computes the activation routes to register; nil registers
	// none.
	Routes    func(ctx context.Context) (*RoutesRequest, error)
	RouteSync time.Duration

	BackoffMin, BackoffMax time.Duration
	Mux                    *mux.Config
	Logger                 *slog.Logger
}

// Client is a Core's link to its relays. Device streams arrive on
// Listener; Push and SyncRoutes use any live session.
type Client struct {
	cfg ClientConfig
	log *slog.Logger
	ln  *streamListener

	mu       sync.Mutex
	sessions []linked
	lic      *license.License
	licErr   error
	changed  chan struct{} // closed and replaced when sessions change

	next   atomic.Uint32
	logins atomic.Int64
	cancel context.CancelFunc
	wg     sync.WaitGroup
	synced chan struct{}
}

// linked is a live session and the relay it reaches.
type linked struct {
	sess    *mux.Session
	relayID string
}

// NewClient returns a Client; Start dials.
func NewClient(cfg ClientConfig) (*Client, error) {
	if len(cfg.Addresses) == 0 {
		return nil, errors.New("relay client: no relay address")
	}
	if err := ValidServerID(cfg.ServerID); err != nil {
		return nil, fmt.Errorf("relay client: %w", err)
	}
	if HashKey(cfg.Key) == nil {
		return nil, errors.New("relay client: the key is not a relay key")
	}
	if cfg.PoolSize <= 0 {
		cfg.PoolSize = DefaultPoolSize
	}
	cfg.PoolSize = min(cfg.PoolSize, MaxPoolSize)
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = DefaultBackoffMin
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = DefaultBackoffMax
	}
	if cfg.RouteSync <= 0 {
		cfg.RouteSync = DefaultRouteSync
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Dial == nil {
		d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 15 * time.Second}
		cfg.Dial = d.DialContext
	}
	return &Client{cfg: cfg, log: cfg.Logger, ln: newStreamListener(), changed: make(chan struct{}), synced: make(chan struct{}, 1)}, nil
}

// Start dials every slot of the pool and keeps it connected until Close.
func (c *Client) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	slot := 0
	for _, addr := range c.cfg.Addresses {
		for i := 0; i < c.cfg.PoolSize; i++ {
			c.wg.Add(1)
			go func(addr string, slot int) {
				defer c.wg.Done()
				c.keep(ctx, addr, slot)
			}(addr, slot)
			slot++
		}
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.syncLoop(ctx)
	}()
}

// Close ends every session and waits for the pool's goroutines.
func (c *Client) Close() error {
	if c.cancel != nil {
		c.cancel()
	}
	c.mu.Lock()
	for _, l := range c.sessions {
		l.sess.Close()
	}
	c.mu.Unlock()
	c.wg.Wait()
	c.ln.Close()
	return nil
}

// Listener yields device streams as connections whose RemoteAddr is the
// device's address as the relay saw it.
func (c *Client) Listener() net.Listener { return c.ln }

// Linked returns the number of live sessions.
func (c *Client) Linked() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sessions)
}

// WaitLinked waits until at least n sessions are live.
func (c *Client) WaitLinked(ctx context.Context, n int) error {
	for {
		c.mu.Lock()
		got, ch := len(c.sessions), c.changed
		c.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("relay link: %d of %d sessions live: %w", got, n, ctx.Err())
		}
	}
}

// Logins counts the successful logins of all slots since Start.
func (c *Client) Logins() int64 { return c.logins.Load() }

// License returns the licence the relay last verified for this server,
// or nil and the reason.
func (c *Client) License() (*license.License, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lic, c.licErr
}

// keep holds one slot connected, reconnecting with capped, jittered
// backoff.
func (c *Client) keep(ctx context.Context, addr string, slot int) {
	failures := 0
	for ctx.Err() == nil {
		sess, w, err := c.dial(ctx, addr, slot)
		if err != nil {
			failures++
			if failures == 1 || failures%50 == 0 {
				c.log.Warn("relay link: connect failed", "relay", addr, "slot", slot, "attempt", failures, "err", err)
			}
			if !sleep(ctx, backoff(failures, c.cfg.BackoffMin, c.cfg.BackoffMax)) {
				return
			}
			continue
		}
		if failures > 0 || slot == 0 {
			c.log.Info("relay link: connected", "relay", addr, "slot", slot, "relay_id", w.RelayID)
		}
		failures = 0
		c.welcome(w)
		c.add(sess, w.RelayID)
		c.logins.Add(1)
		c.serve(ctx, sess)
		c.remove(sess)
		c.log.Info("relay link: session ended", "relay", addr, "slot", slot, "err", sess.Err())
		if !sleep(ctx, backoff(1, c.cfg.BackoffMin, c.cfg.BackoffMax)) {
			return
		}
	}
}

// backoff is the delay before attempt n: doubling from lo, capped at hi,
// with jitter in [d/2, d] so that Cores cut off together do not come
// back together.
func backoff(n int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// dial connects, logs in and returns the session.
func (c *Client) dial(ctx context.Context, addr string, slot int) (*mux.Session, *Welcome, error) {
	dctx, cancel := context.WithTimeout(ctx, HandshakeTimeout)
	defer cancel()
	raw, err := c.cfg.Dial(dctx, "tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	tcfg := &tls.Config{}
	if c.cfg.TLS != nil {
		tcfg = c.cfg.TLS.Clone()
	}
	tcfg.MinVersion = tls.VersionTLS13
	if tcfg.ServerName == "" {
		tcfg.ServerName = hostOnly(addr)
	}
	conn := tls.Client(raw, tcfg)
	if dl, ok := dctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if err := conn.HandshakeContext(dctx); err != nil {
		raw.Close()
		return nil, nil, fmt.Errorf("TLS with the relay: %w", err)
	}
	h := Hello{Version: LinkVersion, ServerID: c.cfg.ServerID, Key: c.cfg.Key, Instance: c.cfg.Instance, Slot: slot, License: string(c.cfg.License)}
	if err := writeMsg(conn, h); err != nil {
		conn.Close()
		return nil, nil, err
	}
	var w Welcome
	if err := readMsg(conn, MaxWelcome, &w); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("relay welcome: %w", err)
	}
	if w.Error != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("the relay refused the login: %w", w.Error)
	}
	conn.SetDeadline(time.Time{})
	return mux.Client(conn, c.cfg.Mux), &w, nil
}

// welcome records the licence state a relay reported.
func (c *Client) welcome(w *Welcome) {
	var lic *license.License
	var licErr error
	if w.License != "" {
		s, err := license.Parse([]byte(w.License))
		if err != nil {
			licErr = err
		} else {
			lic = &s.License
		}
	} else if w.LicenseError != nil {
		licErr = w.LicenseError
	}
	c.mu.Lock()
	c.lic, c.licErr = lic, licErr
	c.mu.Unlock()
	if licErr != nil {
		c.log.Warn("relay link: licence not accepted; new activations are refused", "err", licErr)
	}
}

func (c *Client) add(s *mux.Session, relayID string) {
	c.mu.Lock()
	first := true
	for _, l := range c.sessions {
		first = first && l.relayID != relayID
	}
	c.sessions = append(c.sessions, linked{s, relayID})
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
	if first { // the first link to this relay: tell it the routes
		c.requestSync()
	}
}

func (c *Client) remove(s *mux.Session) {
	c.mu.Lock()
	for i, o := range c.sessions {
		if o.sess == s {
			c.sessions = append(c.sessions[:i], c.sessions[i+1:]...)
			break
		}
	}
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

// serve hands the session's device streams to the listener until the
// session ends.
func (c *Client) serve(ctx context.Context, sess *mux.Session) {
	go func() {
		select {
		case <-ctx.Done():
			sess.Close()
		case <-sess.Done():
		}
	}()
	for {
		st, err := sess.Accept(ctx)
		if err != nil {
			sess.Close()
			return
		}
		var meta StreamMeta
		if json.Unmarshal(st.Meta(), &meta) != nil || meta.Kind != KindDevice {
			st.Reset("unknown stream kind")
			continue
		}
		if !c.ln.offer(&deviceConn{Stream: st, remote: remoteAddr(meta.Remote)}) {
			st.Reset("server busy")
		}
	}
}

// ErrNoLink is the error of a request that needs a relay while no link
// is up.
var ErrNoLink = errs.E(errs.Unavailable, "relay_not_linked", "no link to a relay is up")

// pickSession returns a live session, round robin; relayID, when set,
// limits it to that relay's sessions.
func (c *Client) pickSession(relayID string) (*mux.Session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.sessions)
	start := int(c.next.Add(1))
	for i := range n {
		l := c.sessions[(start+i)%n]
		if relayID != "" && l.relayID != relayID {
			continue
		}
		select {
		case <-l.sess.Done(): // dying: its keeper removes it soon
		default:
			return l.sess, nil
		}
	}
	return nil, ErrNoLink
}

// relayIDs returns the relays with a live session.
func (c *Client) relayIDs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []string
	for _, l := range c.sessions {
		if !slices.Contains(ids, l.relayID) {
			ids = append(ids, l.relayID)
		}
	}
	return ids
}

// exchange opens a control stream of kind on a session (of relayID, if
// set), writes in and reads the result.
func (c *Client) exchange(ctx context.Context, relayID, kind string, in any) (*Result, error) {
	sess, err := c.pickSession(relayID)
	if err != nil {
		return nil, err
	}
	meta, _ := json.Marshal(StreamMeta{Kind: kind})
	st, err := sess.Open(ctx, meta)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	if dl, ok := ctx.Deadline(); ok {
		st.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { st.SetDeadline(time.Now()) })
	defer stop()
	if err := writeMsg(st, in); err != nil {
		return nil, err
	}
	var res Result
	if err := readMsg(st, MaxControl, &res); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return &res, nil
}

// Send hands one notification to the relay, which sends it with its
// provider credentials; the provider's verdict comes back as the push
// package's errors. Client is a push.Sender.
func (c *Client) Send(ctx context.Context, t push.Target) error {
	res, err := c.exchange(ctx, "", KindPush, PushRequest{Provider: t.Provider, Token: t.Token, Topic: t.Topic, PushMagic: t.PushMagic})
	if err != nil {
		return fmt.Errorf("push through the relay: %w", err)
	}
	return pushError(res.Error)
}

// SyncRoutes sends the Core's routes to every relay it is linked to now
// (relays that share a database store them once each, which is
// harmless; relays of separate groups each need them).
func (c *Client) SyncRoutes(ctx context.Context) error {
	if c.cfg.Routes == nil {
		return nil
	}
	in, err := c.cfg.Routes(ctx)
	if err != nil {
		return fmt.Errorf("routes: %w", err)
	}
	ids := c.relayIDs()
	if len(ids) == 0 {
		return ErrNoLink
	}
	var all []error
	for _, id := range ids {
		res, err := c.exchange(ctx, id, KindRoutes, in)
		if err == nil && res.Error != nil {
			err = res.Error
		}
		if err != nil {
			all = append(all, fmt.Errorf("register routes with relay %s: %w", id, err))
		}
	}
	return errors.Join(all...)
}

// requestSync asks the sync loop to send the routes soon.
func (c *Client) requestSync() {
	select {
	case c.synced <- struct{}{}:
	default:
	}
}

// RequestRouteSync asks for the routes to be sent now (the Core calls it
// when users change).
func (c *Client) RequestRouteSync() { c.requestSync() }

func (c *Client) syncLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.RouteSync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.synced:
		}
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := c.SyncRoutes(sctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			c.log.Warn("relay link: route sync failed", "err", err)
		}
	}
}

// deviceConn is a device stream as the Core's server sees it.
type deviceConn struct {
	*mux.Stream
	remote net.Addr
}

func (d *deviceConn) RemoteAddr() net.Addr { return d.remote }

type relayAddr string

func (a relayAddr) Network() string { return "relay" }
func (a relayAddr) String() string  { return string(a) }

func remoteAddr(s string) net.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return net.TCPAddrFromAddrPort(ap)
	}
	return relayAddr(s)
}

// streamListener is a net.Listener fed by the link sessions.
type streamListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newStreamListener() *streamListener {
	return &streamListener{ch: make(chan net.Conn, acceptQueue), done: make(chan struct{})}
}

func (l *streamListener) offer(c net.Conn) bool {
	select {
	case <-l.done:
		return false
	default:
	}
	select {
	case l.ch <- c:
		return true
	default:
		return false
	}
}

func (l *streamListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops Accept and closes the streams no one accepted.
func (l *streamListener) Close() error {
	l.once.Do(func() { close(l.done) })
	for {
		select {
		case c := <-l.ch:
			c.Close()
		default:
			return nil
		}
	}
}

func (l *streamListener) Addr() net.Addr { return relayAddr("relay") }
