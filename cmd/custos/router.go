package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/custos-uem/custos/connect/router"
)

// runRouter runs `custos router`, the seed's router: a SOCKS5 proxy that
// carries the outbound links of Cores that may not reach the Internet
// themselves.
func runRouter(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("router", stderr)
	var cfg router.Config
	var allow, logFormat, logLevel string
	fs.StringVar(&cfg.Listen, "listen", router.DefaultListen, "SOCKS5 address (loopback by default: the proxy has no authentication)")
	fs.StringVar(&allow, "allow", "", "comma-separated CIDRs, IP addresses or host:port patterns (*.example.com:443, [::1]:*) allowed even though they are loopback, link-local, unspecified or multicast")
	fs.DurationVar(&cfg.DialTimeout, "dial-timeout", router.DefaultDialTimeout, "how long to try to reach a destination, DNS included")
	fs.DurationVar(&cfg.HandshakeTimeout, "handshake-timeout", router.DefaultHandshakeTimeout, "how long a client may take to send its SOCKS5 greeting and request")
	fs.DurationVar(&cfg.IdleTimeout, "idle-timeout", 0, "close a tunnel with no traffic either way for this long (0: never)")
	fs.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "custos router: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	log, err := newLogger(stderr, logFormat, logLevel)
	if err != nil {
		return err
	}
	for _, a := range strings.Split(allow, ",") {
		if a = strings.TrimSpace(a); a != "" {
			cfg.Allow = append(cfg.Allow, a)
		}
	}
	cfg.Logger, cfg.Stdout = log, stdout
	m := &router.Main{Config: cfg}
	if err := m.Run(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	fmt.Fprintln(stdout, "shutting down")
	return m.Close()
}
