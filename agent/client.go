package agent

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/custos-uem/custos/device"
	wire "github.com/custos-uem/custos/platform/agent"
)

// Timing defaults.
const (
	// DefaultPoll is the check-in interval when the Core names none.
	DefaultPoll = 15 * time.Minute
	// MaxPoll caps the interval a Core may ask for.
	MaxPoll = 24 * time.Hour
	// PollJitter spreads check-ins by ±10 % so that devices activated
	// together do not stay in step.
	PollJitter = 0.10
	// BackoffMin and BackoffMax bound the wait after a failed check-in:
	// it doubles from BackoffMin per consecutive failure up to BackoffMax,
	// with ±20 % jitter. A Retry-After from the Core is honoured up to
	// MaxRetryAfter.
	BackoffMin    = time.Second
	BackoffMax    = 5 * time.Minute
	MaxRetryAfter = time.Hour
	// DefaultTimeout bounds one request, connection included.
	DefaultTimeout = 60 * time.Second
)

// Bounds on the Core's answers, checked while reading.
const (
	maxActivateAnswer = 64 << 10
	maxEnrollAnswer   = 256 << 10
	maxCheckinAnswer  = 16 << 20 // a configuration of up to wire.MaxItems items
	maxAckAnswer      = 64 << 10
	maxCommandsAnswer = 256 << 10 // one command, its payload at most command.MaxPayload
	maxWaitAnswer     = 4 << 10
)

// Device states the Core reports (device.State), and the agent's own:
// "enrolling" between saving the key and receiving the certificate,
// "refused" after the Core refused the certificate (ErrRefused).
const (
	StateEnrolling = "enrolling"
	StateEnrolled  = string(device.StateEnrolled)
	StateActive    = string(device.StateActive)
	StateRefused   = "refused"
)

// Clock is the agent's time: the current time, and waiting.
type Clock interface {
	Now() time.Time
	// Sleep waits for d or until ctx is done, then returns ctx.Err().
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Options configure a Client. Store is required; everything else has a
// default.
type Options struct {
	// ServerURL is the Core's address, https://host[:port][/prefix].
	// Empty: the one recorded at activation.
	ServerURL string
	// ServerCAs verifies the Core's TLS certificate during activation
	// (steps 5–8) and, with the CA received in step 8, afterwards. Nil:
	// ServerCAPEM if given, else server_ca.pem of the Store if it was saved
	// at activation, else the system roots.
	ServerCAs *x509.CertPool
	// ServerCAPEM is the PEM text of ServerCAs (the --ca file). When given
	// at activation it is saved as ItemServerCA, so a later run trusts
	// the same server certificate without being told again.
	ServerCAPEM []byte
	// Store keeps the state, key and certificates. Required.
	Store Store
	// Collector reports the device; required by Activate and Checkin.
	Collector Collector
	// Applier applies configurations; nil is NoApplier.
	Applier Applier
	// Executor runs the commands the Core sends; nil is a
	// CollectorExecutor on Collector (it answers device_info and
	// installed_apps and refuses everything else). sync_config never
	// reaches it: the Client runs a check-in itself.
	Executor Executor
	// PushProvider, PushToken and PushTopic are the device's push
	// registration ("apns", "fcm" or "wns"; see wire.PushRegistration).
	// When a token is given, check-ins register it with the Core whenever
	// it differs from the one last accepted. Empty: the device has no push
	// channel and is reached by polling and the long poll of PathWait.
	PushProvider, PushToken, PushTopic string
	// Wait says whether Run holds the long poll of PathWait open between
	// check-ins; WaitAuto (the zero value) does so when no PushToken is
	// configured.
	Wait WaitMode
	// WaitTimeout bounds one long poll; zero or more than wire.MaxWait is
	// wire.MaxWait.
	WaitTimeout time.Duration
	// Transport, when set, carries the pre-certificate requests (activate,
	// enroll) as is, so many agents in one process share its connections;
	// its TLSClientConfig.RootCAs must trust the Core (ServerCAs defaults to
	// it). The mutual-TLS client of each agent is a Clone of it with the
	// agent's certificate: connections are never shared between identities.
	// Nil: a Transport from NewTransport.
	Transport *http.Transport
	// DialContext dials the Core when Transport is nil; nil is a
	// net.Dialer.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// Relays, when set, are the relays (host:port, from discovery) the
	// device reaches its Core through: every connection is an HTTP
	// CONNECT to the Core's server ID through the first relay that
	// answers, and TLS with the Core runs inside it. Saved at activation;
	// a later Client takes them from the Store when this is empty. Only
	// used when Transport is nil.
	Relays []string
	// Clock is the time source and sleeper; nil is the real clock.
	Clock Clock
	// Rand jitters poll intervals and backoff; nil is a generator seeded
	// from crypto/rand. A Client uses it from one goroutine at a time.
	Rand *rand.Rand
	// PollInterval, when positive, replaces the interval the Core asks for.
	PollInterval time.Duration
	// Timeout bounds each request; zero is DefaultTimeout.
	Timeout time.Duration
	// Logger receives the agent's log; nil discards it.
	Logger *slog.Logger
}

// Client is one agent: one device, one Store. Its methods may be called
// from several goroutines, but Activate, Checkin and Run run one at a time.
type Client struct {
	store     Store
	collector Collector
	applier   Applier
	executor  Executor
	push      *wire.PushRegistration // nil: no push channel
	listen    bool                   // Run holds the long poll open (until a 404 turns it off)
	waitFor   time.Duration          // one long poll
	wake      chan struct{}          // Wake's signal, buffered 1: a push is never lost while Run is busy
	clock     Clock
	rmu       sync.Mutex // guards rng
	rng       *rand.Rand
	poll      time.Duration
	timeout   time.Duration
	log       *slog.Logger

	serverURL   string   // as configured (may be empty until activation)
	optRelays   []string // Options.Relays
	serverCAs   *x509.CertPool
	serverCAPEM []byte
	baseTr      *http.Transport // Transport option or our own
	pre         *http.Client    // pre-certificate client on baseTr

	op sync.Mutex // serializes Activate, Checkin, Run

	mu      sync.Mutex // guards the fields below
	st      *State     // nil before any activation
	mtls    *http.Client
	mtlsTr  *http.Transport
	leaf    *x509.Certificate
	idErr   error // why there is no identity, when st says there is one
	closeTr bool  // baseTr is ours
	noWait  bool  // the Core answered 404/405 on PathWait: it has no long poll
}

// NewTransport returns the Transport a Client uses when given none: TLS 1.2
// or later verified against roots (nil: the system roots), the proxy from
// the environment (the seed's "HTTP CONNECT call over port 443"), and enough
// idle connections per host for many agents sharing it.
func NewTransport(roots *x509.CertPool, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Transport {
	if dial == nil {
		dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dial,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots},
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: DefaultTimeout,
		MaxIdleConns:          1000,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// New returns the Client of opts.Store. A Store holding an activation makes
// a Client ready to Checkin and Run; a Store holding none (or a broken one)
// makes a Client ready to Activate. New fails only on bad options or a
// Store it cannot read.
func New(opts Options) (*Client, error) {
	if opts.Store == nil {
		return nil, errors.New("agent: Options.Store is required")
	}
	c := &Client{
		store:       opts.Store,
		collector:   opts.Collector,
		applier:     opts.Applier,
		executor:    opts.Executor,
		waitFor:     opts.WaitTimeout,
		wake:        make(chan struct{}, 1),
		clock:       opts.Clock,
		rng:         opts.Rand,
		poll:        opts.PollInterval,
		timeout:     opts.Timeout,
		log:         opts.Logger,
		serverCAs:   opts.ServerCAs,
		serverCAPEM: opts.ServerCAPEM,
	}
	if c.applier == nil {
		c.applier = NoApplier{}
	}
	if c.executor == nil {
		c.executor = CollectorExecutor{Collector: opts.Collector}
	}
	if opts.PushToken != "" {
		p := &wire.PushRegistration{Provider: opts.PushProvider, Token: opts.PushToken, Topic: opts.PushTopic}
		if err := checkPush(p); err != nil {
			return nil, err
		}
		c.push = p
	}
	switch opts.Wait {
	case WaitAuto:
		c.listen = c.push == nil
	case WaitAlways:
		c.listen = true
	case WaitNever:
	default:
		return nil, fmt.Errorf("agent: unknown Options.Wait %d", opts.Wait)
	}
	if c.waitFor <= 0 || c.waitFor > wire.MaxWait {
		c.waitFor = wire.MaxWait
	}
	if c.clock == nil {
		c.clock = realClock{}
	}
	if c.rng == nil {
		var seed [16]byte
		_, _ = crand.Read(seed[:])
		c.rng = rand.New(rand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:])))
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if opts.ServerURL != "" {
		u, err := checkServerURL(opts.ServerURL)
		if err != nil {
			return nil, err
		}
		c.serverURL = u
	}
	if c.serverCAs == nil && len(c.serverCAPEM) > 0 {
		p := x509.NewCertPool()
		if !p.AppendCertsFromPEM(c.serverCAPEM) {
			return nil, errors.New("agent: ServerCAPEM holds no PEM certificate")
		}
		c.serverCAs = p
	}
	if opts.Transport != nil {
		c.baseTr = opts.Transport
		if c.serverCAs == nil && opts.Transport.TLSClientConfig != nil {
			c.serverCAs = opts.Transport.TLSClientConfig.RootCAs
		}
	} else {
		c.optRelays = opts.Relays
		c.baseTr = NewTransport(c.serverCAs, c.relayDial(opts.DialContext))
		env := c.baseTr.Proxy
		c.baseTr.Proxy = func(r *http.Request) (*url.URL, error) {
			if len(c.relays()) > 0 {
				return nil, nil // the relay is the proxy
			}
			return env(r)
		}
		c.closeTr = true
	}
	c.pre = &http.Client{Transport: c.baseTr, CheckRedirect: noRedirect}

	st, err := LoadState(c.store)
	switch {
	case errors.Is(err, ErrNotActivated):
		// a fresh store
	case err != nil:
		return nil, err
	default:
		c.st = st
		switch st.State {
		case StateEnrolled, StateActive:
			if err := c.loadIdentity(); err != nil {
				c.idErr = err
			}
		case StateRefused:
			// Refused by the Core: nothing to run until activated again.
			c.idErr = recordedRefusal(st)
		case "":
			// never activated (a simulation seed saved ahead, say)
		default:
			c.idErr = fmt.Errorf("an activation was interrupted in state %q", st.State)
		}
	}
	return c, nil
}

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func checkServerURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("agent: server URL: %w", err)
	}
	if u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("agent: server URL %q: want https://host[:port][/path]", s)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// State returns a copy of the agent's state, or nil before any activation.
func (c *Client) State() *State {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st == nil {
		return nil
	}
	s := *c.st
	return &s
}

// Activated reports whether the Client holds a usable certificate, and if
// not, why: an error wrapping ErrRefused when the Core refused it (the
// State records the refusal), else one wrapping ErrNotActivated.
func (c *Client) Activated() (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mtls != nil {
		return true, nil
	}
	return false, c.notActivated()
}

// notActivated is why there is no identity; c.mu is held.
func (c *Client) notActivated() error {
	switch {
	case c.idErr == nil:
		return ErrNotActivated
	case errors.Is(c.idErr, ErrRefused):
		return c.idErr
	default:
		return fmt.Errorf("%w: %w", ErrNotActivated, c.idErr)
	}
}

// recordedRefusal is the error of a State in StateRefused.
func recordedRefusal(st *State) *RefusedError {
	e := &RefusedError{Recorded: true}
	if st.Refusal != nil {
		e.Refusal = *st.Refusal
	}
	return e
}

// Close releases idle connections. The Transport given in Options is left
// to its owner, apart from its idle connections to nobody.
func (c *Client) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mtlsTr != nil {
		c.mtlsTr.CloseIdleConnections()
	}
	if c.closeTr {
		c.baseTr.CloseIdleConnections()
	}
}

func (c *Client) url() string {
	if c.serverURL != "" {
		return c.serverURL
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st != nil {
		return c.st.ServerURL
	}
	return ""
}

// collect runs the Collector and fits its report to the wire.
func (c *Client) collect(ctx context.Context) (*Inventory, error) {
	return Collect(ctx, c.collector)
}

// Collect runs col and fits its report to the wire (Normalize), as a
// check-in does; executors answering device_info and installed_apps use it
// so that both report the device the same way.
func Collect(ctx context.Context, col Collector) (*Inventory, error) {
	if col == nil {
		return nil, errors.New("agent: no Collector configured")
	}
	inv, err := col.Collect(ctx)
	if err != nil {
		return nil, fmt.Errorf("agent: collect inventory: %w", err)
	}
	if inv.Info.OSVersion == "" {
		inv.Info.OSVersion = inv.OSVersion
	}
	if inv.Info.Model == "" {
		inv.Info.Model = inv.Model
	}
	if err := Normalize(inv); err != nil {
		return nil, err
	}
	return inv, nil
}

// post sends in as JSON to path and decodes a 2xx answer of at most limit
// bytes into out. A non-2xx answer is a *ServerError. The response is
// returned (body closed) for its headers.
//
// An idempotent request (check-in, acknowledgment) is marked so, without a
// header on the wire, so that the Transport resends it on a fresh
// connection when a kept-alive one turns out closed by the Core.
func (c *Client) post(ctx context.Context, hc *http.Client, base, path string, in any, cookie *http.Cookie, idempotent bool, limit int64, out any) (*http.Response, error) {
	return c.postWithin(ctx, c.timeout, hc, base, path, in, cookie, idempotent, limit, out)
}

// postWithin is post bounded by timeout instead of Options.Timeout (a long
// poll outlives an ordinary request).
func (c *Client) postWithin(ctx context.Context, timeout time.Duration, hc *http.Client, base, path string, in any, cookie *http.Cookie, idempotent bool, limit int64, out any) (*http.Response, error) {
	body, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("agent: encode %s: %w", path, err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "custos-agent/1")
	if idempotent {
		req.Header["Idempotency-Key"] = nil // see net/http.Transport
	}
	if cookie != nil {
		req.AddCookie(&http.Cookie{Name: cookie.Name, Value: cookie.Value})
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return resp, serverError(resp, b)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return resp, fmt.Errorf("agent: read the answer to %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return resp, fmt.Errorf("agent: the answer to %s is larger than %d bytes", path, limit)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return resp, fmt.Errorf("agent: the answer to %s is not the expected JSON: %w", path, err)
	}
	return resp, nil
}
