package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/custos-uem/custos/bench"
	"github.com/custos-uem/custos/core"
)

// runBench measures full activations per second: a Core on 127.0.0.1:0 in
// a temporary data directory (or on --database) and --concurrency
// simulated agents activating --n devices, --runs times; it prints every
// run and the median.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench", stderr)
	database := fs.String("database", "", "PostgreSQL URL of an empty database to measure on; empty uses SQLite in a temporary directory")
	n := fs.Int("n", 2000, "activations per run")
	concurrency := fs.Int("concurrency", 64, "agents activating at once")
	runs := fs.Int("runs", 3, "runs; the median is reported")
	platform := fs.String("platform", "android", "simulated platform: android, ios, windows or linux")
	server := fs.String("server", "", "measure a running Core at this URL instead of an in-process one (its activation rate limit must allow the load: serve --activation-rate -1)")
	tokenFile := fs.String("token-file", "custos-data/admin-token", "with --server: file holding an administrator's API token")
	caFile := fs.String("ca", "custos-data/ca.pem", "with --server: PEM root that verifies the Core's TLS certificate")
	// Unlike the other commands, bench takes no CUSTOS_* variables: an
	// operator's exported CUSTOS_DATABASE must never point a benchmark
	// (which creates thousands of users) at production.
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return errUsage
	}
	if *server != "" {
		return benchRemote(ctx, stdout, *server, *tokenFile, *caFile, *n, *concurrency, *runs, *platform)
	}
	dir, err := os.MkdirTemp("", "custos-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	m := core.NewMain(core.Config{
		DataDir: dir, Database: *database, Listen: "127.0.0.1:0", ActivationRate: -1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err := m.Run(ctx); err != nil {
		return err
	}
	defer m.Close()
	fmt.Fprintf(stdout, "activations: %d per run, %d concurrent %s agents, %s backend\n", *n, *concurrency, *platform, m.DB.Backend())
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(m.CA.CertPEM)
	return benchRuns(stdout, *runs, func() (bench.Result, error) {
		creds, err := bench.PrepareUsers(ctx, m, *n)
		if err != nil {
			return bench.Result{}, err
		}
		return bench.ActivateAt(ctx, m.URL(), roots, creds, *concurrency, *platform), nil
	})
}

// benchRemote measures a Core running in another process, so that its CPU
// can be told apart from the agents'.
func benchRemote(ctx context.Context, stdout io.Writer, server, tokenFile, caFile string, n, concurrency, runs int, platform string) error {
	tok, err := os.ReadFile(tokenFile)
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("%s holds no PEM certificate", caFile)
	}
	token := strings.TrimSpace(string(tok))
	fmt.Fprintf(stdout, "activations: %d per run, %d concurrent %s agents, Core at %s\n", n, concurrency, platform, server)
	return benchRuns(stdout, runs, func() (bench.Result, error) {
		creds, err := bench.PrepareUsersAPI(ctx, server, token, roots, n)
		if err != nil {
			return bench.Result{}, err
		}
		return bench.ActivateAt(ctx, server, roots, creds, concurrency, platform), nil
	})
}

// benchRuns runs one measurement runs times, printing each and the median.
func benchRuns(stdout io.Writer, runs int, one func() (bench.Result, error)) error {
	var rates []float64
	for i := 0; i < runs; i++ {
		r, err := one()
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "run %d: %v\n", i+1, r)
		if r.FirstError != nil {
			return fmt.Errorf("run %d: %d failed, first: %w", i+1, r.Failures, r.FirstError)
		}
		rates = append(rates, r.PerSecond)
		time.Sleep(100 * time.Millisecond)
	}
	slices.Sort(rates)
	fmt.Fprintf(stdout, "median: %.0f activations/s\n", rates[len(rates)/2])
	return nil
}
