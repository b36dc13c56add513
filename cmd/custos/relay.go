package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/custos-uem/custos/license"
	"github.com/custos-uem/custos/pki"
	"github.com/custos-uem/custos/push/providers"
	"github.com/custos-uem/custos/relay"
	"github.com/custos-uem/custos/relay/relayd"
)

func relayUsage(w io.Writer) {
	fmt.Fprint(w, `usage: custos relay [flags]             run a relay
       custos relay add-server [flags]  register a Core and issue its key and licence

Run 'custos relay -h' or 'custos relay add-server -h' for the flags.
`)
}

func runRelay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "add-server" {
		return relayAddServer(ctx, args[1:], stdout, stderr)
	}
	fs := newFlagSet("relay", stderr)
	var cfg relayd.MainConfig
	var hostnames, logFormat, logLevel string
	relayCommonFlags(fs, &cfg)
	fs.StringVar(&cfg.LinkListen, "link-listen", relayd.DefaultLinkListen, "TLS address where Cores log in (loopback by default; port 3101 in production)")
	fs.StringVar(&cfg.Listen, "listen", relayd.DefaultListen, "address of the device port: HTTP CONNECT tunnels and discovery (loopback by default; :443 in production)")
	fs.StringVar(&cfg.PublicAddress, "public-address", "", "host:port devices use to reach --listen, as discovery tells them (default: the listen address)")
	fs.StringVar(&hostnames, "hostname", "", "comma-separated extra names for the generated TLS certificate")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "PEM certificate chain to serve instead of one issued by the relay's own CA")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "PEM private key for --tls-cert")
	fs.StringVar(&cfg.LicenseKeys, "license-keys", "", "file of trusted licence public keys (PEM \"CUSTOS LICENSE KEY\"), besides the relay's own")
	fs.StringVar(&cfg.MetricsListen, "metrics-listen", "127.0.0.1:9465", "plain-HTTP address serving /metrics to Prometheus (loopback by default; empty: off)")
	fs.Float64Var(&cfg.DiscoveryRate, "discovery-rate", 0, fmt.Sprintf("discovery lookups per second per client address, burst 4× (default %d; negative: no limit)", relay.DefaultDiscoveryRate))
	pushFlags(fs, &cfg.Push)
	fs.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.Usage = func() { relayUsage(stderr); fs.PrintDefaults() }
	if err := parse(fs, args); err != nil {
		return err
	}
	log, err := newLogger(stderr, logFormat, logLevel)
	if err != nil {
		return err
	}
	cfg.Hostnames = splitList(hostnames)
	cfg.Logger, cfg.Stdout = log, stdout
	m := relayd.NewMain(cfg)
	if err := m.Run(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	fmt.Fprintln(stdout, "shutting down")
	return m.Close()
}

func relayCommonFlags(fs interface {
	StringVar(*string, string, string, string)
}, cfg *relayd.MainConfig) {
	fs.StringVar(&cfg.DataDir, "data", relayd.DefaultDataDir, "data directory: database, CA, address and licence-issuer keys")
	fs.StringVar(&cfg.Database, "database", "", "PostgreSQL URL (postgres://…), shared by every relay of a group; empty uses SQLite in the data directory")
}

// relayAddServer registers a Core (or gives it a new key) and issues its
// licence, signed by the relay's issuer key.
func relayAddServer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("relay add-server", stderr)
	var cfg relayd.MainConfig
	relayCommonFlags(fs, &cfg)
	id := fs.String("id", "", "server ID of the Core (default: a new one); the Core keeps it in <data>/server-id")
	org := fs.String("organisation", "", "organisation named in the licence (required)")
	devices := fs.Int("devices", 0, "device limit of the licence (required)")
	days := fs.Int("days", 365, "licence validity in days")
	features := fs.String("features", "all", "comma-separated feature flags of the licence")
	out := fs.String("out", "", "directory to write the Core's server-id, relay.key and license.pem into (a Core's data directory); default: print them")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *org == "" || *devices <= 0 {
		return usageError(fs, stderr, "--organisation and --devices are required")
	}
	serverID := *id
	if serverID == "" {
		serverID = relay.NewServerID()
	}
	if err := relay.ValidServerID(serverID); err != nil {
		return err
	}
	m := relayd.NewMain(cfg)
	if err := m.Open(ctx); err != nil {
		return err
	}
	defer m.Close()
	key := relay.NewKey()
	if err := m.Provision(ctx, serverID, relay.HashKey(key)); err != nil {
		return err
	}
	now := time.Now()
	lic, err := m.Issuer.Issue(license.License{Organisation: *org, ServerID: serverID, DeviceLimit: *devices,
		Expires: now.AddDate(0, 0, *days), Features: splitList(*features)})
	if err != nil {
		return err
	}
	if *out == "" {
		fmt.Fprintf(stdout, "server ID: %s\nkey: %s\n%s", serverID, key, lic)
		return nil
	}
	if err := os.MkdirAll(*out, 0o700); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
		perm os.FileMode
	}{{relay.ServerIDFile, []byte(serverID + "\n"), 0o644}, {relay.KeyFile, []byte(key + "\n"), 0o600}, {"license.pem", lic, 0o644}} {
		if err := pki.WriteFileAtomic(strings.TrimRight(*out, "/")+"/"+f.name, f.data, f.perm); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "server %s registered; its identity and licence are in %s\n", serverID, *out)
	return nil
}

func pushFlags(fs interface {
	StringVar(*string, string, string, string)
}, p *providers.Config) {
	fs.StringVar(&p.APNsCert, "apns-cert", "", "PEM file of the APNs push certificate (for MDM: the APNs certificate for MDM); with --apns-key")
	fs.StringVar(&p.APNsKey, "apns-key", "", "PEM file of the APNs certificate's private key")
	fs.StringVar(&p.APNsTopic, "apns-topic", "", "APNs topic for devices that registered none")
	fs.StringVar(&p.APNsURL, "apns-url", "", "APNs endpoint (default Apple's production endpoint; https://api.sandbox.push.apple.com for development)")
	fs.StringVar(&p.FCMCredentials, "fcm-credentials", "", "Google service-account key file (JSON) for Firebase Cloud Messaging")
	fs.StringVar(&p.WNSPackageSID, "wns-package-sid", "", "Windows app package SID (ms-app://…) for WNS")
	fs.StringVar(&p.WNSClientSecret, "wns-client-secret", "", "WNS client secret (prefer the CUSTOS_WNS_CLIENT_SECRET environment variable: command lines are visible to other users)")
}
