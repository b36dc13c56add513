// Package relayd runs a relay: the data directory, database, CA, keys and
// listeners around a relay.Relay. It is what `custos relay` runs, what
// `custos serve` embeds, and what end-to-end tests start on 127.0.0.1:0.
package relayd

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/httpx"
	"github.com/custos-uem/custos/license"
	"github.com/custos-uem/custos/pki"
	"github.com/custos-uem/custos/push"
	"github.com/custos-uem/custos/push/providers"
	"github.com/custos-uem/custos/relay"
	"github.com/custos-uem/custos/sqlstore"
)

// Defaults of MainConfig. Both ports bind to loopback by default; a
// relay that serves devices on the internet is given --listen :443.
const (
	DefaultDataDir    = "custos-relay"
	DefaultLinkListen = "127.0.0.1:3101"
	DefaultListen     = "127.0.0.1:8444"
	// AddressKeyFile keys the hashes of users' addresses; every relay
	// sharing a database needs the same one.
	AddressKeyFile = "address.key"
	// IssuerKeyFile is the relay's own licence-signing key: licences it
	// issues (`custos relay servers add`) are trusted by it.
	IssuerKeyFile = "license-issuer.key"
)

// MainConfig is what `custos relay` takes from flags.
type MainConfig struct {
	DataDir string
	// Database is a PostgreSQL URL; empty means SQLite in DataDir.
	Database string
	// LinkListen is where Cores log in; Listen is the device port.
	LinkListen, Listen string
	// PublicAddress is host:port devices use to reach Listen (default
	// the listener's address).
	PublicAddress string
	// Hostnames are names the generated TLS certificate covers besides
	// localhost and the loopback addresses; TLSCert/TLSKey replace it.
	Hostnames       []string
	TLSCert, TLSKey string
	// LicenseKeys is a file of trusted licence public keys ("CUSTOS
	// LICENSE KEY" PEM blocks), besides the relay's own issuer key.
	LicenseKeys string
	// Push holds the credentials the relay sends notifications with on
	// behalf of its Cores.
	Push providers.Config
	// PushSender, when set, replaces the senders built from Push (tests).
	PushSender push.Sender

	DiscoveryRate     float64
	ReadHeaderTimeout time.Duration
	Logger            *slog.Logger
	Stdout            io.Writer
	Now               func() time.Time
	// MetricsListen is the plain-HTTP address serving /metrics to
	// Prometheus; empty serves none.
	MetricsListen string
}

// Main is a running relay.
type Main struct {
	Config MainConfig
	Relay  *relay.Relay
	DB     *sqlstore.DB
	CA     *pki.CA
	Issuer *license.Issuer

	// Registry holds the relay's metrics.
	Registry *prometheus.Registry

	linkLn, devLn net.Listener
	metLn         net.Listener
	metSrv        *http.Server
	closed        bool
}

// NewMain returns a Main with defaults filled in.
func NewMain(cfg MainConfig) *Main {
	if cfg.DataDir == "" {
		cfg.DataDir = DefaultDataDir
	}
	if cfg.LinkListen == "" {
		cfg.LinkListen = DefaultLinkListen
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if cfg.Stdout == nil {
		cfg.Stdout = io.Discard
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Main{Config: cfg}
}

// Open prepares the data directory, database, CA and keys without
// listening (the relay's admin commands use it).
func (m *Main) Open(ctx context.Context) error {
	cfg := &m.Config
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	var err error
	if m.CA, _, err = pki.LoadOrCreateCA(cfg.DataDir, pki.Options{Now: cfg.Now}); err != nil {
		return err
	}
	if m.DB, err = sqlstore.Open(ctx, cfg.Database, cfg.DataDir, cfg.Logger); err != nil {
		return err
	}
	if m.Issuer, err = loadOrCreateIssuer(filepath.Join(cfg.DataDir, IssuerKeyFile)); err != nil {
		return err
	}
	return nil
}

// Run opens everything, starts listening and returns once the relay
// serves. Close stops it.
func (m *Main) Run(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	cfg := &m.Config
	if err := m.Open(ctx); err != nil {
		return err
	}
	m.Registry = prometheus.NewRegistry()
	m.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	addrKey, err := m.addressKey(ctx)
	if err != nil {
		return err
	}
	keys := []ed25519.PublicKey{m.Issuer.PublicKey()}
	if cfg.LicenseKeys != "" {
		more, err := license.LoadPublicKeys(cfg.LicenseKeys)
		if err != nil {
			return fmt.Errorf("licence keys: %w", err)
		}
		keys = append(keys, more...)
	}
	sender := cfg.PushSender
	if sender == nil {
		senders, err := cfg.Push.Senders()
		if err != nil {
			return err
		}
		if len(senders) > 0 {
			sender = push.NewRouter(senders, push.NewPrometheusMetrics(m.Registry))
		}
	}
	if m.linkLn, err = net.Listen("tcp", cfg.LinkListen); err != nil {
		return fmt.Errorf("link listener: %w", err)
	}
	if m.devLn, err = net.Listen("tcp", cfg.Listen); err != nil {
		return fmt.Errorf("device listener: %w", err)
	}
	if cfg.PublicAddress == "" {
		cfg.PublicAddress = m.devLn.Addr().String()
	}
	cert, err := m.certificate()
	if err != nil {
		return err
	}
	m.Relay, err = relay.New(relay.Config{
		Store: m.DB, PublicAddress: cfg.PublicAddress, Certificate: cert, LicenseKeys: keys,
		AddressKey: addrKey, Push: sender, DiscoveryRate: cfg.DiscoveryRate,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout, Logger: cfg.Logger, Now: cfg.Now, Registry: m.Registry,
	})
	if err != nil {
		return err
	}
	m.Relay.Serve(m.linkLn, m.devLn)
	if cfg.MetricsListen != "" {
		if err := m.serveMetrics(cfg.MetricsListen); err != nil {
			return err
		}
		fmt.Fprintf(cfg.Stdout, "  Prometheus metrics: %s\n", m.MetricsURL())
	}
	fmt.Fprintf(cfg.Stdout, "Custos relay %s: Cores on %s, devices on %s (database: %s)\n", m.Relay.ID(), m.linkLn.Addr(), m.devLn.Addr(), m.DB.Backend())
	fmt.Fprintf(cfg.Stdout, "  CA certificate for Cores (--relay-ca): %s (SHA-256 %s)\n", filepath.Join(cfg.DataDir, pki.CAFile), m.CA.Fingerprint())
	return nil
}

// serveMetrics serves /metrics on its own listener, off the device and
// link ports.
func (m *Main) serveMetrics(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics listener: %w", err)
	}
	m.metLn = ln
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	m.metSrv = httpx.NewServer(mux, m.Config.Logger)
	go m.metSrv.Serve(ln)
	return nil
}

// MetricsURL is the URL of /metrics, or "" when metrics are off.
func (m *Main) MetricsURL() string {
	if m.metLn == nil {
		return ""
	}
	return "http://" + m.metLn.Addr().String() + "/metrics"
}

// LinkAddr is where Cores log in; DeviceAddr where devices connect.
func (m *Main) LinkAddr() string   { return m.linkLn.Addr().String() }
func (m *Main) DeviceAddr() string { return m.devLn.Addr().String() }

// Close stops the relay and closes the database.
func (m *Main) Close() error {
	if m.closed {
		return nil
	}
	m.closed = true
	if m.metSrv != nil {
		m.metSrv.Close()
	}
	if m.Relay != nil {
		m.Relay.Close()
	} else {
		for _, ln := range []net.Listener{m.linkLn, m.devLn} {
			if ln != nil {
				ln.Close()
			}
		}
	}
	if m.DB != nil {
		return m.DB.Close()
	}
	return nil
}

func (m *Main) certificate() (tls.Certificate, error) {
	cfg := &m.Config
	if cfg.TLSCert != "" || cfg.TLSKey != "" {
		c, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return c, fmt.Errorf("TLS certificate: %w", err)
		}
		return c, nil
	}
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if h := hostOf(cfg.PublicAddress); h != "" && h != "127.0.0.1" && h != "localhost" {
		hosts = append(hosts, h)
	}
	hosts = append(hosts, cfg.Hostnames...)
	return m.CA.LoadOrIssueServerCert(cfg.DataDir, hosts)
}

// addressKey loads the address key, creating it on first start, and makes
// sure every relay sharing the database holds the same one (a relay with
// another key would find no user's route).
func (m *Main) addressKey(ctx context.Context) ([]byte, error) {
	path := filepath.Join(m.Config.DataDir, AddressKeyFile)
	key, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key = make([]byte, 32)
		rand.Read(key)
		err = pki.WriteFileAtomic(path, key, 0o600)
	}
	if err != nil {
		return nil, fmt.Errorf("address key: %w", err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("custos relay address key check"))
	mine := hex.EncodeToString(mac.Sum(nil))
	stored, err := m.DB.ClaimSetting(ctx, "relay_address_key_check", mine)
	if err != nil {
		return nil, fmt.Errorf("address key check: %w", err)
	}
	if stored != mine {
		return nil, fmt.Errorf("the database belongs to relays with another %s: copy it from the first relay's data directory", AddressKeyFile)
	}
	return key, nil
}

// Provision registers serverID with keyHash, or gives an existing server
// that key (the operator's `custos relay servers add`, and the embedded
// relay registering its own Core).
func (m *Main) Provision(ctx context.Context, serverID string, keyHash []byte) error {
	now := m.Config.Now().UTC()
	s, err := m.DB.Server(ctx, serverID)
	if errors.Is(err, errs.ErrNotFound) {
		return m.DB.CreateServer(ctx, &relay.Server{ID: serverID, KeyHash: keyHash, CreatedAt: now, UpdatedAt: now})
	}
	if err != nil {
		return err
	}
	if hmac.Equal(s.KeyHash, keyHash) && !s.Disabled {
		return nil
	}
	s.KeyHash, s.Disabled, s.UpdatedAt = keyHash, false, now
	return m.DB.UpdateServer(ctx, s)
}

func loadOrCreateIssuer(path string) (*license.Issuer, error) {
	k, err := license.LoadKey(path)
	if errors.Is(err, os.ErrNotExist) {
		k, err = license.GenerateKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("licence issuer key: %w", err)
	}
	return &license.Issuer{Key: k}, nil
}

func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// Enroll registers the Core whose data directory is coreDir with this
// relay, creating the Core's server ID and key there if it has none, the
// way `custos serve` links to the relay it embeds. When the Core has no
// licence file and development is set, it issues a development licence
// and returns it for the Core to present.
func (m *Main) Enroll(ctx context.Context, coreDir string, development bool) (serverID string, lic []byte, err error) {
	if err := os.MkdirAll(coreDir, 0o700); err != nil {
		return "", nil, err
	}
	serverID, key, err := relay.LoadOrCreateIdentity(coreDir)
	if err != nil {
		return "", nil, err
	}
	if err := m.Provision(ctx, serverID, relay.HashKey(key)); err != nil {
		return "", nil, fmt.Errorf("register the Core with the relay: %w", err)
	}
	if _, err := os.Stat(filepath.Join(coreDir, "license.pem")); err == nil || !development {
		return serverID, nil, nil
	}
	lic, err = license.Development(serverID, m.Issuer, m.Config.Now())
	return serverID, lic, err
}
