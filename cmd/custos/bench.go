package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
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
	if err := parse(fs, args); err != nil {
		return err
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
	var rates []float64
	for i := 0; i < *runs; i++ {
		creds, err := bench.PrepareUsers(ctx, m, *n)
		if err != nil {
			return err
		}
		r := bench.Activate(ctx, m, creds, *concurrency, *platform)
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
