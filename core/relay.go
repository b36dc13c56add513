package core

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/custos-uem/custos/connect/router"
	"github.com/custos-uem/custos/httpx"
	"github.com/custos-uem/custos/license"
	"github.com/custos-uem/custos/platform/windows/mde"
	"github.com/custos-uem/custos/relay"
	"github.com/custos-uem/custos/user"
)

// RelayConfig links the Core to relays: the Core dials out to each (TLS
// 1.3, optionally through a SOCKS5 or HTTP CONNECT proxy) and serves the
// devices the relays carry, so it needs no port open towards the
// internet.
type RelayConfig struct {
	// Addresses are the relays' link addresses (host:port, port 3101 by
	// default); empty means no relay.
	Addresses []string
	// CAFile holds the PEM certificates that verify the relays; RootCAs
	// is the same, given directly (the embedded relay). Neither: the
	// system roots.
	CAFile  string
	RootCAs *x509.CertPool
	// Proxy is how the link leaves the company network: "" (direct),
	// "socks5://host:port" or "http://host:port" (connect/router).
	Proxy string
	// PoolSize is the number of link connections per relay (2–4).
	PoolSize int
	// LicenseFile is the Core's licence; empty looks for license.pem in
	// the data directory. License, when set, is the document itself (the
	// embedded relay's development licence).
	LicenseFile string
	License     []byte
	// Domains are email domains whose every address may activate against
	// this Core (besides each user's own address).
	Domains []string
	// DevicesViaRelayOnly makes the Core's own listener serve the admin
	// API only: devices reach the Core through relays and nowhere else.
	DevicesViaRelayOnly bool
	// BackoffMax caps the delay between reconnect attempts (default 1 s).
	BackoffMax time.Duration
}

func (c RelayConfig) enabled() bool { return len(c.Addresses) > 0 }

// LicenseFile is the default licence file in the data directory.
const LicenseFile = "license.pem"

// newRelayClient loads the Core's relay identity and licence and builds
// its link client; the caller starts it once devices can be served.
func (m *Main) newRelayClient() error {
	cfg := &m.Config
	rc := cfg.Relay
	id, key, err := relay.LoadOrCreateIdentity(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("relay identity: %w", err)
	}
	m.ServerID = id
	lic := rc.License
	if lic == nil {
		path, must := rc.LicenseFile, true
		if path == "" {
			path, must = filepath.Join(cfg.DataDir, LicenseFile), false
		}
		b, err := os.ReadFile(path)
		switch {
		case err == nil:
			lic = b
		case must || !errors.Is(err, os.ErrNotExist):
			return fmt.Errorf("licence: %w", err)
		}
	}
	roots := rc.RootCAs
	if roots == nil && rc.CAFile != "" {
		pemBytes, err := os.ReadFile(rc.CAFile)
		if err != nil {
			return fmt.Errorf("relay CA: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pemBytes) {
			return fmt.Errorf("relay CA: no certificate in %s", rc.CAFile)
		}
	}
	dialer, err := router.New(rc.Proxy, nil)
	if err != nil {
		return fmt.Errorf("relay proxy: %w", err)
	}
	domains := make([]string, 0, len(rc.Domains))
	for _, d := range rc.Domains {
		domains = append(domains, strings.ToLower(strings.TrimSpace(d)))
	}
	m.Relay, err = relay.NewClient(relay.ClientConfig{
		Addresses: rc.Addresses, PoolSize: rc.PoolSize, ServerID: id, Key: key, License: lic,
		Instance: m.ProcessID, TLS: &tls.Config{RootCAs: roots}, Dial: dialer.DialContext,
		Routes: func(ctx context.Context) (*relay.RoutesRequest, error) {
			emails, err := m.DB.UserEmails(ctx)
			if err != nil {
				return nil, err
			}
			in := &relay.RoutesRequest{Addresses: emails, Domains: domains}
			// The relay answers Windows discovery with the Core's URLs
			// (relay/windows.go) unless devices may reach the Core only
			// through the relay's tunnel, which Windows cannot use.
			if !rc.DevicesViaRelayOnly {
				in.PublicURL, in.WindowsAuthPolicy = m.Config.PublicURL, m.Config.WindowsEnroll.AuthPolicy
				if in.WindowsAuthPolicy == "" {
					in.WindowsAuthPolicy = mde.AuthOnPremise
				}
			}
			return in, nil
		},
		BackoffMax: rc.BackoffMax, Logger: cfg.Logger,
	})
	return err
}

// licenseGate admits activations while the licence the relay verified
// allows them.
func (m *Main) licenseGate() *license.Gate {
	return &license.Gate{
		Current: func() *license.License {
			l, _ := m.Relay.License()
			return l
		},
		ActiveDevices: m.DB.CountLicensed,
		Now:           m.Config.Now,
		Log:           m.Config.Logger,
	}
}

// serveRelay serves the devices the relays carry: the device routes only
// (never the admin API, which stays inside the company network), over TLS
// with the same certificate and client-certificate rules as the listener.
func (m *Main) serveRelay(devices http.Handler, tlsCfg *tls.Config) {
	m.relaySrv = httpx.NewServer(devices, m.Config.Logger)
	m.relaySrv.TLSConfig = tlsCfg
	m.serveWG.Add(1)
	go func() {
		defer m.serveWG.Done()
		if err := m.relaySrv.ServeTLS(m.Relay.Listener(), "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.Config.Logger.Error("relay device server stopped", "err", err)
		}
	}()
	m.Relay.Start()
	m.banner = append(m.banner, fmt.Sprintf("Relay link: server ID %s → %s", m.ServerID, strings.Join(m.Config.Relay.Addresses, ", ")))
}

// routeSyncing asks the relay link to send the routes again whenever a
// user is added, changed or deleted, so that discovery knows a new user at
// once rather than at the next periodic sync.
type routeSyncing struct {
	user.Stores
	sync func()
}

func (s routeSyncing) CreateUser(ctx context.Context, u *user.User) error {
	return s.after(s.Stores.CreateUser(ctx, u))
}

func (s routeSyncing) UpdateUser(ctx context.Context, u *user.User) error {
	return s.after(s.Stores.UpdateUser(ctx, u))
}

func (s routeSyncing) DeleteUser(ctx context.Context, id string) error {
	return s.after(s.Stores.DeleteUser(ctx, id))
}

func (s routeSyncing) after(err error) error {
	if err == nil {
		s.sync()
	}
	return err
}
