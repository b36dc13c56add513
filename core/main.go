// Package core wires the Custos Core (the seed's "UEM Core") out of the
// domain packages: the database, the CA, the services, the device
// protocol handlers and the admin API, behind one deny-by-default HTTPS
// listener. Main is what `custos serve` runs and what end-to-end tests
// start on 127.0.0.1:0.
package core

import (
	"context"
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
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/custos-uem/custos/activation"
	"github.com/custos-uem/custos/auth"
	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/compliance"
	"github.com/custos-uem/custos/console"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/directory"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/httpx"
	"github.com/custos-uem/custos/mail"
	"github.com/custos-uem/custos/notify"
	"github.com/custos-uem/custos/pki"
	agentproto "github.com/custos-uem/custos/platform/agent"
	"github.com/custos-uem/custos/platform/apple/dep"
	appleenroll "github.com/custos-uem/custos/platform/apple/enroll"
	"github.com/custos-uem/custos/platform/apple/pushcert"
	"github.com/custos-uem/custos/policy"
	"github.com/custos-uem/custos/push"
	"github.com/custos-uem/custos/push/providers"
	"github.com/custos-uem/custos/relay"
	"github.com/custos-uem/custos/secret"
	"github.com/custos-uem/custos/sqlstore"
	"github.com/custos-uem/custos/user"
	"github.com/custos-uem/custos/websession"
)

// Defaults of Config.
const (
	DefaultListen = "127.0.0.1:8443"
	// DefaultMetricsListen is the Prometheus exporter port, on loopback.
	DefaultMetricsListen = "127.0.0.1:9464"
	DefaultDataDir       = "custos-data"
	// PepperFile keys the hash of activation passwords; it must be the
	// same on every Core process sharing one database.
	PepperFile = "secret.key"
	// Public paths of the PKI.
	PathCA  = "/pki/ca.pem"
	PathCRL = "/pki/crl.der"
)

// Config is everything `custos serve` takes from flags.
type Config struct {
	DataDir string
	// Database is a PostgreSQL URL; empty means SQLite in DataDir.
	Database string
	// Listen is the address of the HTTPS listener (devices, API, metrics).
	Listen string
	// Hostnames are names and addresses the generated server certificate
	// covers besides localhost, 127.0.0.1 and ::1.
	Hostnames []string
	// PublicURL is how devices reach this Core (written into device
	// certificates as the CRL location); defaults to https://<listen>.
	PublicURL string
	// TLSCert and TLSKey, when both set, replace the certificate issued
	// from the internal CA.
	TLSCert, TLSKey string
	// PollSeconds is the agents' check-in interval.
	PollSeconds int
	// ActivationRate limits activation requests per client IP per second
	// (burst 4×); zero takes a default of 10, negative disables it (for
	// benchmarks from one address).
	ActivationRate float64

	// NewAdminToken issues a new API token to the first administrator at
	// start and writes it to the admin-token file (recovery of a lost
	// token).
	NewAdminToken bool
	// MetricsListen is the address of the plain-HTTP listener that serves
	// /metrics to Prometheus; empty serves no metrics. Metrics stay off
	// the device-facing listener: they describe the installation.
	MetricsListen string
	// ReadHeaderTimeout, when positive, replaces httpx.ReadHeaderTimeout
	// (tests of slow clients shorten it).
	ReadHeaderTimeout time.Duration

	// AppleUserChannels accepts Apple MDM user channels (UserAuthenticate);
	// off, they are declined with 410 (platform/apple).
	AppleUserChannels bool

	// Relay links the Core to relays (devices then reach it through
	// them); zero means none.
	Relay RelayConfig
	// Directory is the company directory (LDAP, Active Directory); an
	// empty URL means none.
	Directory DirectoryConfig
	// Mail is the SMTP server of activation emails; an empty host means
	// none (passwords are then given to users another way).
	Mail MailConfig
	// WindowsEnroll configures Windows enrollment (core/windows_enroll.go).
	WindowsEnroll WindowsEnrollConfig
	// Apple configures automated enrollment and the MDM push
	// certificate's APNs client (core/apple_dep.go).
	Apple AppleConfig

	// Push is the push provider configuration (APNs, FCM, WNS
	// credentials); providers without credentials are not used.
	Push providers.Config
	// PushSender, when set, replaces the senders built from Push (tests
	// point it at local fakes of the providers).
	PushSender push.Sender
	// ComplianceInterval is how often every device is evaluated against
	// its compliance profile (besides at each report); ExpiryInterval how
	// often expired commands are swept. Each runs once per interval
	// across all Core processes sharing the database. Zero takes the
	// defaults; negative disables the job.
	ComplianceInterval time.Duration
	ExpiryInterval     time.Duration
	// CommandRetention is how long final commands and their results are
	// kept, from their creation; an hourly job, once across all Core
	// processes, deletes older ones. Zero takes DefaultCommandRetention;
	// negative keeps every command; a positive value must be at least
	// MinCommandRetention.
	CommandRetention time.Duration

	Logger *slog.Logger
	// Stdout receives the start-up banner (addresses, admin token); nil
	// discards it.
	Stdout io.Writer
	Now    func() time.Time
}

// Main is a running Core.
type Main struct {
	Config Config

	DB         *sqlstore.DB
	CA         *pki.CA
	Activation *activation.Service
	Devices    *device.Service
	Commands   *command.Service
	Policies   *policy.Service
	Compliance *compliance.Engine
	Notifier   *notify.Notifier
	Registry   *prometheus.Registry
	// Relay is the Core's link to its relays (nil without relays) and
	// ServerID the ID it logs in with.
	Relay    *relay.Client
	ServerID string
	// ProcessID names this process among the Cores sharing the database
	// (scheduled-job claims, wake-up messages).
	ProcessID string

	// Sessions is the web sign-in layer of the console and Self-Service.
	Sessions *websession.Service
	// Users manages users and groups; Directory synchronises them from
	// the company directory (nil without one).
	Users *user.Service
	// Auth holds administrators, tokens and roles.
	Auth      *auth.Service
	Directory *directory.Syncer
	// AppleEnroll issues Apple enrollment profiles and SCEP certificates
	// (core/apple_enroll.go).
	AppleEnroll *appleenroll.Service
	// ApplePush holds the MDM push certificate and sends MDM pushes with
	// it (core/apple_push.go); AppleDEP is automated enrollment
	// (core/apple_dep.go).
	ApplePush        *pushcert.Service
	AppleDEP         *dep.Service
	appleDeviceRoots *dep.Roots // Apple's device CA roots (ADE MachineInfo signatures)

	pushProviders []string // providers this Core sends to itself
	mailSender    *mail.Sender
	mailRenderer  *mail.Renderer
	console       *console.Console

	sched     *scheduler
	box       *secret.Box // seals secrets stored in the database
	secretKey []byte      // secret.key: keys what every Core sharing the database must agree on

	ln     net.Listener
	srv    *http.Server
	metLn  net.Listener
	metSrv *http.Server
	// relaySrv serves the device streams the relays carry.
	relaySrv *http.Server
	serveWG  sync.WaitGroup
	closed   bool
	banner   []string // start-up lines printed after the listening address
}

// NewMain returns a Main for cfg, with defaults filled in.
func NewMain(cfg Config) *Main {
	if cfg.DataDir == "" {
		cfg.DataDir = DefaultDataDir
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

// Run opens the data directory and database, loads or creates the CA,
// bootstraps the first administrator, starts listening and returns once
// the Core is serving. Close stops it.
func (m *Main) Run(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	cfg := &m.Config
	log := cfg.Logger
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	ca, created, err := pki.LoadOrCreateCA(cfg.DataDir, pki.Options{Now: cfg.Now})
	if err != nil {
		return err
	}
	m.CA = ca
	if created {
		log.Info("created the internal CA", "fingerprint", ca.Fingerprint())
	}
	pepper, err := loadOrCreateSecret(filepath.Join(cfg.DataDir, PepperFile))
	if err != nil {
		return err
	}
	if m.DB, err = sqlstore.Open(ctx, cfg.Database, cfg.DataDir, log); err != nil {
		return err
	}
	if err := m.checkInstallation(ctx, pepper); err != nil {
		return err
	}
	host, _ := os.Hostname()
	m.ProcessID = fmt.Sprintf("%s/%d/%s", host, os.Getpid(), rand.Text()[:8])
	if cfg.Relay.enabled() {
		if err := m.newRelayClient(); err != nil {
			return err
		}
	}
	if m.box, err = secret.New(pepper); err != nil {
		return err
	}
	m.secretKey = pepper

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// Devices refused at the TLS handshake must see the refusal, not a
	// reset (httpx.LingerListener).
	m.ln = httpx.LingerListener(ln)
	if cfg.PublicURL == "" {
		cfg.PublicURL = defaultPublicURL(ln.Addr().(*net.TCPAddr), log)
	}
	ca.CRLURL = strings.TrimSuffix(cfg.PublicURL, "/") + PathCRL
	tlsCert, err := m.serverCert()
	if err != nil {
		return err
	}

	m.Registry = prometheus.NewRegistry()
	m.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.Registry.MustRegister(m.DB.Collector())

	m.Activation = &activation.Service{Store: m.DB, CA: ca, Pepper: pepper, Now: cfg.Now, Metrics: activation.NewMetrics(m.Registry)}
	if m.Relay != nil {
		m.Activation.Admit = m.licenseGate().Admit
	}
	if m.Activation.DefaultProfileID, err = m.Activation.EnsureDefaultProfile(ctx); err != nil {
		return fmt.Errorf("default activation profile: %w", err)
	}
	m.Devices = &device.Service{Store: m.DB, Remover: m.DB, OnRemove: ca.InvalidateCRL, Now: cfg.Now}
	if err := m.startServices(ctx); err != nil {
		return err
	}

	handler, devices, err := m.routes(ctx)
	if err != nil {
		return err
	}
	if cfg.Relay.DevicesViaRelayOnly {
		handler = withoutDevices(handler)
	}
	m.srv = httpx.NewServer(handler, log)
	if cfg.ReadHeaderTimeout > 0 {
		m.srv.ReadHeaderTimeout = cfg.ReadHeaderTimeout
	}
	deviceTLS := func() *tls.Config {
		return &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{tlsCert},
			// Devices present their certificate after activation; the admin
			// API and the activation steps have none. Each route decides
			// (httpx.Router), TLS only verifies a certificate that is given.
			ClientAuth: tls.VerifyClientCertIfGiven,
			ClientCAs:  ca.Pool(),
			// Certificate validity is judged by the Core's clock, the same
			// one that issued them.
			Time: cfg.Now,
		}
	}
	m.srv.TLSConfig = deviceTLS()
	m.serveWG.Add(1)
	go func() {
		defer m.serveWG.Done()
		if err := m.srv.ServeTLS(m.ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("server stopped", "err", err)
		}
	}()
	if m.Relay != nil {
		m.serveRelay(devices, deviceTLS()) // a config of its own: ServeTLS edits it
	}
	if cfg.MetricsListen != "" {
		if err := m.serveMetrics(cfg.MetricsListen); err != nil {
			return err
		}
	}
	fmt.Fprintf(cfg.Stdout, "Custos Core listening on %s (database: %s)\n", m.URL(), m.DB.Backend())
	fmt.Fprintf(cfg.Stdout, "  CA certificate: %s (SHA-256 %s)\n", filepath.Join(cfg.DataDir, pki.CAFile), ca.Fingerprint())
	if m.metLn != nil {
		fmt.Fprintf(cfg.Stdout, "  Prometheus metrics: %s\n", m.MetricsURL())
	}
	for _, l := range m.banner {
		fmt.Fprintf(cfg.Stdout, "  %s\n", l)
	}
	return nil
}

// routes builds the handler of the listener (admin routes come from
// package api) and the one of relay-borne connections, which serves the
// device routes only.
func (m *Main) routes(ctx context.Context) (all, devices http.Handler, err error) {
	rt, err := m.adminRouter(ctx)
	if err != nil {
		return nil, nil, err
	}
	rate := m.Config.ActivationRate
	if rate == 0 {
		rate = 10
	}
	var lim *httpx.IPLimiter
	if rate > 0 {
		lim = httpx.NewIPLimiter(rate, int(4*rate))
	}
	(&agentproto.Handler{Activation: m.Activation, Devices: m.Devices, Commands: m.Commands, Config: m.Policies,
		Pushes: m.DB, Waiter: m.Notifier, OnReport: m.checkCompliance, Limiter: lim,
		PollSeconds: m.Config.PollSeconds, Now: m.Config.Now}).Register(rt)
	// The native MDM protocols of Apple and Windows devices (core/apple.go,
	// core/windows.go).
	if err := m.registerApple(ctx, rt); err != nil {
		return nil, nil, err
	}
	if err := m.registerWindows(ctx, rt); err != nil {
		return nil, nil, err
	}

	rt.Public("GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}))
	rt.Public("GET /readyz", http.HandlerFunc(m.readyz))
	rt.Public("GET "+PathCA, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Write(m.CA.CertPEM)
	}))
	rt.Public("GET "+PathCRL, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		der, err := m.CA.CRL(r.Context(), m.DB)
		if err != nil {
			httpx.WriteError(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/pkix-crl")
		w.Write(der)
	}))
	met := httpx.NewMetrics(m.Registry)
	return httpx.Observe(m.Config.Logger, met, rt), httpx.Observe(m.Config.Logger, met, rt.DevicesOnly()), nil
}

// withoutDevices answers 404 to every device route: with
// RelayConfig.DevicesViaRelayOnly devices reach the Core only through its
// relays.
func withoutDevices(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/device/") || strings.HasPrefix(r.URL.Path, "/EnrollmentServer/") {
			httpx.WriteError(w, r, errs.E(errs.NotFound, "route_not_found", "devices reach this Core through its relay"))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// serveMetrics starts the metrics listener.
func (m *Main) serveMetrics(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics listener: %w", err)
	}
	m.metLn = ln
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	m.metSrv = httpx.NewServer(mux, m.Config.Logger)
	m.serveWG.Add(1)
	go func() {
		defer m.serveWG.Done()
		if err := m.metSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.Config.Logger.Error("metrics server stopped", "err", err)
		}
	}()
	return nil
}

// MetricsURL is the URL of /metrics, or "" when metrics are off.
func (m *Main) MetricsURL() string {
	if m.metLn == nil {
		return ""
	}
	return "http://" + m.metLn.Addr().String() + "/metrics"
}

// readyz answers 200 when the database answers and every migration is
// applied.
func (m *Main) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	ok, err := m.DB.Migrated(ctx)
	if err == nil && !ok {
		err = errors.New("migrations pending")
	}
	if err != nil {
		httpx.Logger(ctx).Warn("not ready", "err", err)
		httpx.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": "database"})
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (m *Main) serverCert() (tls.Certificate, error) {
	cfg := &m.Config
	if cfg.TLSCert != "" || cfg.TLSKey != "" {
		c, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return c, fmt.Errorf("TLS certificate: %w", err)
		}
		return c, nil
	}
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil && h != "" {
		hosts = append(hosts, h)
	}
	hosts = append(hosts, cfg.Hostnames...)
	if m.ServerID != "" {
		// Devices reaching the Core through a relay name it by its
		// server ID (CONNECT <server-id>:443, then TLS to that name).
		hosts = append(hosts, m.ServerID)
	}
	return m.CA.LoadOrIssueServerCert(cfg.DataDir, hosts)
}

// URL is the base URL of the listener.
func (m *Main) URL() string {
	if m.ln == nil {
		return ""
	}
	return "https://" + m.ln.Addr().String()
}

// Close stops serving (in-flight requests get a few seconds) and closes
// the database. It is safe to call more than once.
func (m *Main) Close() error {
	if m.closed {
		return nil
	}
	m.closed = true
	var errs []error
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if m.srv != nil {
		errs = append(errs, m.srv.Shutdown(ctx))
	} else if m.ln != nil {
		errs = append(errs, m.ln.Close())
	}
	if m.metSrv != nil {
		errs = append(errs, m.metSrv.Shutdown(ctx))
	}
	if m.relaySrv != nil {
		errs = append(errs, m.relaySrv.Shutdown(ctx))
	}
	if m.Relay != nil {
		m.Relay.Close()
	}
	m.serveWG.Wait()
	if m.sched != nil {
		m.sched.stop()
	}
	if m.Notifier != nil {
		m.Notifier.Close()
	}
	if m.DB != nil {
		errs = append(errs, m.DB.Close())
	}
	return errors.Join(errs...)
}

// defaultPublicURL is https://<listen address>, or the host name when the
// listener is on a wildcard address (a URL with 0.0.0.0 in a device
// certificate would point devices nowhere).
func defaultPublicURL(a *net.TCPAddr, log *slog.Logger) string {
	if !a.IP.IsUnspecified() {
		return "https://" + a.String()
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	u := "https://" + net.JoinHostPort(host, strconv.Itoa(a.Port))
	log.Warn("listening on a wildcard address without --public-url; devices will be told "+u, "listen", a.String())
	return u
}

// Installation settings compared at start.
const (
	settingCAFingerprint = "ca_fingerprint"
	settingSecretCheck   = "secret_check"
)

// checkInstallation makes sure this data directory belongs with this
// database: the first Core to start records its CA fingerprint and a check
// value of its secret key, and every later one (a restart, or another
// process sharing a PostgreSQL database) must present the same. A Core
// with another CA would enroll devices the others refuse; one with another
// secret would refuse every activation password set elsewhere.
func (m *Main) checkInstallation(ctx context.Context, pepper []byte) error {
	mac := hmac.New(sha256.New, pepper)
	mac.Write([]byte("custos installation check"))
	for _, c := range []struct{ key, mine, files string }{
		{settingCAFingerprint, m.CA.Fingerprint(), pki.CAFile + " and " + pki.CAKeyFile},
		{settingSecretCheck, hex.EncodeToString(mac.Sum(nil)), PepperFile},
	} {
		stored, err := m.DB.ClaimSetting(ctx, c.key, c.mine)
		if err != nil {
			return fmt.Errorf("installation check: %w", err)
		}
		if stored != c.mine {
			return fmt.Errorf("the database belongs to another installation: its %s differs from the one in %s; every Core sharing a database needs the same %s: copy them from the first Core's data directory", c.key, m.Config.DataDir, c.files)
		}
	}
	return nil
}

// loadOrCreateSecret returns the 32-byte secret in path, creating it
// (0600, atomically) on first start.
func loadOrCreateSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) != 32 {
			return nil, fmt.Errorf("%s: expected 32 bytes, found %d", path, len(b))
		}
		return b, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	b = make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return b, pki.WriteFileAtomic(path, b, 0o600)
}
