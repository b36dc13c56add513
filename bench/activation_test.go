package bench

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/custos-uem/custos/core"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/sqlstore/sqltest"
)

// mustCore starts a Core on 127.0.0.1:0 on a fresh database of backend,
// without the per-address activation rate limit (all agents share one
// address here).
func mustCore(tb testing.TB, backend string) *core.Main {
	tb.Helper()
	m := core.NewMain(core.Config{
		DataDir:        tb.TempDir(),
		Database:       sqltest.DSN(tb, backend),
		Listen:         "127.0.0.1:0",
		ActivationRate: -1,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err := m.Run(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { m.Close() })
	return m
}

// BenchmarkActivation measures full activations (seed steps 5–12: activate,
// CSR, first mutual-TLS check-in, acknowledgment) per second with 64
// concurrent simulated Android agents, on each backend. Goal on the 2-core
// reference machine: 1,000/s on SQLite.
func BenchmarkActivation(b *testing.B) {
	for _, backend := range sqltest.Backends(b) {
		b.Run(backend, func(b *testing.B) {
			m := mustCore(b, backend)
			ctx := context.Background()
			creds, err := PrepareUsers(ctx, m, b.N)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			r := Activate(ctx, m, creds, 64, "android")
			b.StopTimer()
			if r.Failures > 0 {
				b.Fatalf("%d of %d activations failed; first: %v", r.Failures, r.Activations, r.FirstError)
			}
			b.ReportMetric(r.PerSecond, "activations/s")
			b.ReportMetric(float64(r.P95.Microseconds())/1000, "p95-ms")
		})
	}
}

// TestActivateManyConcurrently runs the benchmark's path once, small, so
// that CI checks it works on both backends: every activation succeeds and
// every device ends active.
func TestActivateManyConcurrently(t *testing.T) {
	for _, backend := range sqltest.Backends(t) {
		t.Run(backend, func(t *testing.T) {
			m := mustCore(t, backend)
			ctx := context.Background()
			creds, err := PrepareUsers(ctx, m, 40)
			if err != nil {
				t.Fatal(err)
			}
			r := Activate(ctx, m, creds, 8, "android")
			if r.Failures != 0 {
				t.Fatalf("%d failed; first: %v", r.Failures, r.FirstError)
			}
			devs, err := m.DB.ListDevices(ctx, deviceQueryAll())
			if err != nil {
				t.Fatal(err)
			}
			active := 0
			for _, d := range devs {
				if d.State == "active" {
					active++
				}
			}
			if active != len(creds) {
				t.Fatalf("%d active devices, want %d", active, len(creds))
			}
		})
	}
}

func deviceQueryAll() device.Query { return device.Query{Limit: device.MaxPage} }
