package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/custos-uem/custos/core"
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
	fs.StringVar(&cfg.Push.APNsCert, "apns-cert", "", "PEM file of the APNs push certificate (for MDM: the APNs certificate for MDM); with --apns-key")
	fs.StringVar(&cfg.Push.APNsKey, "apns-key", "", "PEM file of the APNs certificate's private key")
	fs.StringVar(&cfg.Push.APNsTopic, "apns-topic", "", "APNs topic for devices that registered none")
	fs.StringVar(&cfg.Push.APNsURL, "apns-url", "", "APNs endpoint (default Apple's production endpoint; https://api.sandbox.push.apple.com for development)")
	fs.StringVar(&cfg.Push.FCMCredentials, "fcm-credentials", "", "Google service-account key file (JSON) for Firebase Cloud Messaging")
	fs.StringVar(&cfg.Push.WNSPackageSID, "wns-package-sid", "", "Windows app package SID (ms-app://…) for WNS")
	fs.StringVar(&cfg.Push.WNSClientSecret, "wns-client-secret", "", "WNS client secret (prefer the CUSTOS_WNS_CLIENT_SECRET environment variable: command lines are visible to other users)")
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
	for _, h := range strings.Split(hostnames, ",") {
		if h = strings.TrimSpace(h); h != "" {
			cfg.Hostnames = append(cfg.Hostnames, h)
		}
	}
	cfg.Logger, cfg.Stdout = log, stdout
	if *pprofAddr != "" {
		if err := servePprof(*pprofAddr, log); err != nil {
			return err
		}
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
