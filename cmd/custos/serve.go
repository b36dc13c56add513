package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"path/filepath"
	"time"

	"github.com/custos-uem/custos/core"
	"github.com/custos-uem/custos/platform/apple/dep"
	"github.com/custos-uem/custos/relay/relayd"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	var cfg core.Config
	var hostnames, logFormat, logLevel string
	fs.StringVar(&cfg.DataDir, "data", core.DefaultDataDir, "data directory: embedded database, CA, keys, admin token")
	fs.StringVar(&cfg.Database, "database", "", "PostgreSQL URL (postgres://…); empty uses the embedded SQLite database in the data directory")
	fs.StringVar(&cfg.Listen, "listen", core.DefaultListen, "HTTPS address for devices, the API and metrics (loopback by default)")
	fs.StringVar(&cfg.MetricsListen, "metrics-listen", core.DefaultMetricsListen, "plain-HTTP address serving /metrics to Prometheus (loopback by default; empty: off)")
	fs.BoolVar(&cfg.NewAdminToken, "new-admin-token", false, "issue a new API token to the first administrator and write it to <data>/admin-token (when the old one is lost)")
	fs.StringVar(&hostnames, "hostname", "", "comma-separated extra names/addresses for the generated TLS certificate")
	fs.StringVar(&cfg.PublicURL, "public-url", "", "URL devices use to reach this Core (default https://<listen>)")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "PEM certificate chain to serve instead of one issued by the internal CA")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "PEM private key for --tls-cert")
	fs.IntVar(&cfg.PollSeconds, "poll-seconds", 0, "agent check-in interval in seconds (default 900)")
	fs.Float64Var(&cfg.ActivationRate, "activation-rate", 0, "activation requests allowed per second per client address, burst 4× (default 10; negative: no limit)")
	fs.DurationVar(&cfg.ComplianceInterval, "compliance-interval", core.DefaultComplianceInterval, "how often every device is checked against its compliance profile, once across all Cores sharing the database (negative: never; devices are still checked when they report)")
	fs.DurationVar(&cfg.ExpiryInterval, "expiry-interval", core.DefaultExpiryInterval, "how often expired commands are swept, once across all Cores sharing the database (negative: never; an expired command is still never delivered)")
	fs.DurationVar(&cfg.CommandRetention, "command-retention", core.DefaultCommandRetention, "how long finished commands and their results are kept from their creation (at least 24h; negative: forever); older ones are deleted hourly")
	pushFlags(fs, &cfg.Push)
	fs.StringVar(&cfg.WindowsEnroll.AuthPolicy, "windows-auth-policy", "OnPremise", "how Windows devices authenticate to enroll: OnPremise (email and activation password) or Federated (the Core's sign-in page)")
	fs.StringVar(&cfg.WindowsEnroll.WNSPackageFamilyName, "windows-wns-pfn", "", "package family name of the Store app registered for WNS, provisioned to enrolled Windows devices for push (empty: polling only)")
	fs.DurationVar(&cfg.WindowsEnroll.PollInterval, "windows-poll-interval", 0, "how often enrolled Windows devices poll the Core (default 8h; pushes wake them sooner)")
	fs.StringVar(&cfg.Apple.DEPURL, "apple-ade-url", dep.DefaultBaseURL, "Apple's automated device enrollment (ADE) API")
	fs.StringVar(&cfg.Apple.DeviceCAFile, "apple-device-ca", "", "PEM file of Apple's device CA roots (Apple Root CA) that sign the MachineInfo of automated enrollment (empty: ADE enrollments are refused); see docs/apple.md")
	fs.DurationVar(&cfg.Apple.DEPSyncInterval, "apple-ade-sync-interval", dep.DefaultSyncInterval, "how often the ADE device list is synced, once across all Cores sharing the database (negative: only on demand, POST /api/v1/apple/dep/sync)")
	relayAddrs := fs.String("relay", "", "link addresses (host:port, comma-separated) of the relays devices reach this Core through; empty: run an embedded relay; \"none\": no relay")
	fs.StringVar(&cfg.Relay.CAFile, "relay-ca", "", "PEM CA certificate that verifies the relays (their ca.pem); default: the system roots")
	proxy := fs.String("proxy", "", "how outbound links (relays, push providers) leave the network: socks5://host:port or http://host:port (default: direct)")
	fs.IntVar(&cfg.Relay.PoolSize, "relay-pool", 0, "link connections per relay, 2–4 (default 2)")
	fs.StringVar(&cfg.Relay.LicenseFile, "license", "", "licence file (default: <data>/license.pem; the embedded relay issues a development licence when there is none)")
	relayDomains := fs.String("relay-domain", "", "comma-separated email domains whose every address may activate against this Core")
	fs.BoolVar(&cfg.Relay.DevicesViaRelayOnly, "devices-via-relay-only", false, "serve devices only through the relays; --listen then serves the admin API alone")
	embedListen := fs.String("relay-listen", relayd.DefaultListen, "device port of the embedded relay (HTTP CONNECT and discovery)")
	embedLinkListen := fs.String("relay-link-listen", "127.0.0.1:0", "link port of the embedded relay (other Cores may link to it)")
	fs.StringVar(&cfg.Directory.URL, "ldap-url", "", "company directory: ldap://host:389 or ldaps://host:636 (empty: none)")
	fs.StringVar(&cfg.Directory.Preset, "ldap-preset", "openldap", "directory flavour: openldap or ad (Active Directory): default filters and attributes")
	fs.BoolVar(&cfg.Directory.StartTLS, "ldap-starttls", false, "upgrade ldap:// with StartTLS")
	fs.StringVar(&cfg.Directory.BindDN, "ldap-bind-dn", "", "service account that searches the directory")
	fs.StringVar(&cfg.Directory.BindPassword, "ldap-bind-password", "", "its password (prefer CUSTOS_LDAP_BIND_PASSWORD: command lines are visible to other users)")
	fs.StringVar(&cfg.Directory.BaseDN, "ldap-base-dn", "", "where users are searched, e.g. ou=people,dc=example,dc=com")
	fs.StringVar(&cfg.Directory.UserFilter, "ldap-user-filter", "", "LDAP filter of the users to synchronise (default by preset)")
	fs.StringVar(&cfg.Directory.GroupBaseDN, "ldap-group-base-dn", "", "where groups are searched (default: --ldap-base-dn)")
	fs.DurationVar(&cfg.Directory.SyncInterval, "ldap-sync-interval", 0, "how often users and groups are synchronised (default 1h; negative: only on demand, POST /api/v1/directory/sync)")
	fs.StringVar(&cfg.Mail.Host, "smtp-host", "", "SMTP server of activation emails (empty: none)")
	fs.IntVar(&cfg.Mail.Port, "smtp-port", 0, "its port (default 587, or 465 with --smtp-tls tls)")
	fs.StringVar((*string)(&cfg.Mail.TLS), "smtp-tls", "starttls", "starttls (required, never downgraded), tls (implicit), or none (loopback only)")
	fs.StringVar(&cfg.Mail.From, "smtp-from", "", "sender address of activation emails")
	fs.StringVar(&cfg.Mail.Username, "smtp-username", "", "SMTP user (AUTH PLAIN, over TLS only)")
	fs.StringVar(&cfg.Mail.Password, "smtp-password", "", "SMTP password (prefer CUSTOS_SMTP_PASSWORD)")
	fs.StringVar(&cfg.Mail.TemplateDir, "mail-templates", "", "directory of activation email templates replacing the built-in ones (default <data>/templates)")
	fs.StringVar(&cfg.Mail.Organisation, "organisation", "", "organisation named in activation emails")
	fs.StringVar(&cfg.Mail.DiscoveryURL, "discovery-url", "", "relay URL devices ask for their server, in activation emails and QR codes (default: the embedded relay's)")
	pprofAddr := fs.String("pprof-listen", "", "serve Go's profiler (net/http/pprof) on this address, e.g. 127.0.0.1:6060; off when empty")
	fs.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	if err := parse(fs, args); err != nil {
		return err
	}
	log, err := newLogger(stderr, logFormat, logLevel)
	if err != nil {
		return err
	}
	cfg.Hostnames = splitList(hostnames)
	cfg.Relay.Domains = splitList(*relayDomains)
	cfg.Relay.Proxy, cfg.Push.Proxy = *proxy, *proxy
	cfg.Logger, cfg.Stdout = log, stdout
	if *pprofAddr != "" {
		if err := servePprof(*pprofAddr, log); err != nil {
			return err
		}
	}
	var embedded *relayd.Main
	switch *relayAddrs {
	case "none":
	case "":
		embedded = relayd.NewMain(relayd.MainConfig{DataDir: filepath.Join(cfg.DataDir, "relay"),
			LinkListen: *embedLinkListen, Listen: *embedListen, Logger: log, Stdout: stdout})
		if err := embedded.Run(ctx); err != nil {
			return fmt.Errorf("embedded relay: %w", err)
		}
		defer embedded.Close()
		if _, lic, err := embedded.Enroll(ctx, cfg.DataDir, cfg.Relay.LicenseFile == ""); err != nil {
			return fmt.Errorf("embedded relay: %w", err)
		} else if lic != nil {
			cfg.Relay.License = lic
		}
		cfg.Relay.Addresses = []string{embedded.LinkAddr()}
		if cfg.Mail.DiscoveryURL == "" {
			cfg.Mail.DiscoveryURL = "http://" + embedded.DeviceAddr()
		}
		cfg.Relay.RootCAs = embedded.CA.Pool()
	default:
		cfg.Relay.Addresses = splitList(*relayAddrs)
	}
	m := core.NewMain(cfg)
	if err := m.Run(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	fmt.Fprintln(stdout, "shutting down")
	return m.Close()
}

// servePprof serves the profiler on its own listener, never on the Core's:
// it is for the operator on the machine, not for devices or the API.
func servePprof(addr string, log *slog.Logger) error {
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
		// The profiler has no authentication: it stays on the machine.
		return fmt.Errorf("--pprof-listen %q: must be a loopback address such as 127.0.0.1:6060", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--pprof-listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { log.Warn("profiler stopped", "err", srv.Serve(ln)) }()
	log.Info("profiler listening", "addr", ln.Addr().String())
	return nil
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is neither text nor json", format)
}
