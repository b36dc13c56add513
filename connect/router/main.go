package router

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

// DefaultListen keeps a new router on the machine: it has no
// authentication, so reaching it from the network is a decision.
const DefaultListen = "127.0.0.1:1080"

// Config is what `custos router` is given.
type Config struct {
	// Listen is the SOCKS5 listener's address; empty means DefaultListen.
	Listen string
	// Allow lists destinations allowed even though the default policy
	// refuses them: CIDRs, IP addresses, host:port patterns (ParsePolicy).
	Allow []string
	// DialTimeout, HandshakeTimeout and IdleTimeout are the Server's.
	DialTimeout      time.Duration
	HandshakeTimeout time.Duration
	IdleTimeout      time.Duration

	Logger *slog.Logger
	// Stdout receives the start-up line; nil discards it.
	Stdout io.Writer
}

// Main is a running `custos router`.
type Main struct {
	Config
	Server *Server

	ln   net.Listener
	done chan error // Serve's result
	once sync.Once
}

// Run checks the configuration, starts listening and returns once the
// router accepts connections; Close stops it.
func (m *Main) Run(ctx context.Context) error {
	if m.Listen == "" {
		m.Listen = DefaultListen
	}
	if m.Logger == nil {
		m.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if m.Stdout == nil {
		m.Stdout = io.Discard
	}
	policy, err := ParsePolicy(m.Allow)
	if err != nil {
		return err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", m.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	m.ln = ln
	if ap, err := netip.ParseAddrPort(ln.Addr().String()); err == nil && !ap.Addr().IsLoopback() {
		m.Logger.Warn("the SOCKS5 router has no authentication: anyone who reaches this address can use it; restrict it with a firewall",
			"listen", ln.Addr().String())
	}
	m.Server = &Server{
		Allow:            policy,
		DialTimeout:      m.DialTimeout,
		HandshakeTimeout: m.HandshakeTimeout,
		IdleTimeout:      m.IdleTimeout,
		Logger:           m.Logger,
	}
	m.done = make(chan error, 1)
	go func() { m.done <- m.Server.Serve(ln) }()
	fmt.Fprintf(m.Stdout, "Custos router (SOCKS5) listening on %s\n", ln.Addr())
	return nil
}

// Addr is the listener's address (with the port chosen for ":0").
func (m *Main) Addr() string {
	if m.ln == nil {
		return ""
	}
	return m.ln.Addr().String()
}

// Close stops listening and cuts every tunnel.
func (m *Main) Close() error {
	var err error
	m.once.Do(func() {
		if m.Server == nil {
			return
		}
		err = m.Server.Close()
		if e := <-m.done; e != nil && !errors.Is(e, ErrServerClosed) && err == nil {
			err = e
		}
	})
	return err
}
