package bench

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/custos-uem/custos/core"
	"github.com/custos-uem/custos/pki"
	"github.com/custos-uem/custos/push"
	"github.com/custos-uem/custos/push/apns"
	"github.com/custos-uem/custos/push/apns/apnstest"
	"github.com/custos-uem/custos/sqlstore"
	"github.com/custos-uem/custos/sqlstore/sqltest"
)

var (
	fanoutDevices  = flag.Int("fanout.devices", 100_000, "devices of BenchmarkProfileFanout")
	latencyDevices = flag.Int("latency.devices", 10_000, "online devices of BenchmarkCommandLatency")
	fleetWorkers   = flag.Int("fleet.workers", 128, "simulated devices talking to the Core at once")
	fanoutWarm     = flag.Bool("fanout.warm", false, "devices of BenchmarkProfileFanout have contacted the Core before (they resume their TLS session) instead of making their first contact")
)

// fleetCore seeds n devices into a fresh database of backend and starts a
// Core over it whose pushes go to a local fake APNs that wakes the
// fleet's devices.
func fleetCore(tb testing.TB, backend string, n int, online bool) (*core.Main, *Fleet, string) {
	tb.Helper()
	ctx := context.Background()
	dir, dsn := tb.TempDir(), sqltest.DSN(tb, backend)
	db, err := sqlstore.Open(ctx, dsn, dir, nil) // migrate
	if err != nil {
		tb.Fatal(err)
	}
	db.Close()
	ca, _, err := pki.LoadOrCreateCA(dir, pki.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	start := time.Now()
	fleet, err := SeedFleet(ctx, dsn, ca, n)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Logf("seeded %d devices in %v", n, time.Since(start).Round(time.Millisecond))
	fake := apnstest.NewServer(tb, apnstest.Options{Discard: true})
	fake.OnPush(func(p apnstest.Notification) { fleet.WakeToken(p.Token) })
	client, err := apns.New(apns.Config{Certificate: fake.ClientCertificate(tb, FleetTopic), URL: fake.URL, RootCAs: fake.RootCAs(), Topic: FleetTopic})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { client.Close() })
	m := core.NewMain(core.Config{
		DataDir: dir, Database: dsn, Listen: "127.0.0.1:0", ActivationRate: -1, PollSeconds: 86400,
		PushSender: push.NewRouter(map[string]push.Sender{push.APNs: client}, nil),
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err := m.Run(ctx); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { m.Close() })
	if err := fleet.Start(m.URL(), m.CA.Pool(), *fleetWorkers, online); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(fleet.Close)
	tok, err := os.ReadFile(filepath.Join(dir, "admin-token"))
	if err != nil {
		tb.Fatal(err)
	}
	return m, fleet, strings.TrimSpace(string(tok))
}

// profileChanges makes changes policy changes reaching the fleet's group
// through the admin API: create and assign an IT policy, then edit it.
// It returns the configuration version they end at.
func profileChanges(tb testing.TB, m *core.Main, f *Fleet, token string, changes int) string {
	tb.Helper()
	api := newAPI(m.URL(), token, m.CA.Pool())
	var pol struct {
		ID string `json:"id"`
	}
	settings := map[string]any{"password_required": true, "password_min_length": 6, "screen_lock_timeout_seconds": 300}
	if err := api.do("POST", "/api/v1/policies", map[string]any{"name": "Fleet policy " + time.Now().Format(time.RFC3339Nano), "kind": "it_policy", "rank": 1, "settings": settings}, &pol); err != nil {
		tb.Fatal(err)
	}
	if err := api.do("POST", "/api/v1/policies/"+pol.ID+"/assignments", map[string]string{"target_kind": "group", "target_id": f.GroupID}, nil); err != nil {
		tb.Fatal(err)
	}
	for k := 1; k < changes; k++ {
		settings["password_min_length"] = 6 + k
		if err := api.do("PATCH", "/api/v1/policies/"+pol.ID, map[string]any{"settings": settings}, nil); err != nil {
			tb.Fatal(err)
		}
	}
	d, err := m.DB.Device(context.Background(), f.IDs[0])
	if err != nil {
		tb.Fatal(err)
	}
	eff, err := m.Policies.Effective(context.Background(), d)
	if err != nil {
		tb.Fatal(err)
	}
	return eff.Version
}

// waitAcked waits until every device acknowledged version v.
func waitAcked(tb testing.TB, f *Fleet, v string, limit time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(limit)
	for f.Acked(v) < len(f.IDs) {
		if err := f.Err(); err != nil {
			tb.Fatal(err)
		}
		if time.Now().After(deadline) {
			tb.Fatalf("after %v only %d of %d devices acknowledged the last configuration", limit, f.Acked(v), len(f.IDs))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BenchmarkProfileFanout is the benchmark (a): 10 profile changes
// fanned out to -fanout.devices simulated devices (100,000 by default).
// It reports the time to enqueue (the 10 admin calls, each answered once
// its devices' configuration syncs are committed) and the time until every
// device has fetched, applied and acknowledged the last configuration
// after a push through the fake APNs. Goal: ≤ 5 minutes end to end on the
// 2-core reference machine. Run with -benchtime 1x.
func BenchmarkProfileFanout(b *testing.B) {
	for _, backend := range sqltest.Backends(b) {
		b.Run(backend, func(b *testing.B) {
			m, f, token := fleetCore(b, backend, *fanoutDevices, *fanoutWarm)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				v := profileChanges(b, m, f, token, 10)
				enqueued := time.Since(start)
				waitAcked(b, f, v, 30*time.Minute)
				all := time.Since(start)
				b.ReportMetric(enqueued.Seconds(), "enqueue-s")
				b.ReportMetric(all.Seconds(), "all-acked-s")
				b.ReportMetric(float64(len(f.IDs))/all.Seconds(), "devices/s")
			}
		})
	}
}

// BenchmarkCommandLatency is the benchmark (b): the time from the
// admin API call that queues a command until the device's acknowledgment
// was taken, through a push from the fake APNs, a resumed TLS connection
// and two command round trips, with -latency.devices online devices
// (10,000 by default). Goal: p95 ≤ 2 s.
//
//   - steady: 500 lock commands, each to another device, one every 20 ms
//     (50/s), while the rest of the fleet is idle: the latency a help-desk
//     lock sees.
//   - burst: one bulk lock to every device at once: the last device's
//     latency is the fleet's size over the Core's throughput.
func BenchmarkCommandLatency(b *testing.B) {
	for _, backend := range sqltest.Backends(b) {
		b.Run(backend, func(b *testing.B) {
			m, f, token := fleetCore(b, backend, *latencyDevices, true)
			api := newAPI(m.URL(), token, m.CA.Pool())
			b.Run("steady", func(b *testing.B) {
				const n, every = 500, 20 * time.Millisecond
				for range b.N {
					sent := make([]time.Time, n)
					devs := make([]int, n)
					base := rand.IntN(len(f.IDs))
					tick := time.NewTicker(every)
					for k := range n {
						devs[k] = (base + k*(len(f.IDs)/n)) % len(f.IDs)
						sent[k] = time.Now()
						if err := api.do("POST", "/api/v1/devices/"+f.IDs[devs[k]]+"/commands", map[string]any{"type": "lock"}, nil); err != nil {
							b.Fatal(err)
						}
						<-tick.C
					}
					tick.Stop()
					reportLatency(b, f, devs, sent)
				}
			})
			b.Run("burst", func(b *testing.B) {
				for range b.N {
					start := time.Now()
					var out struct {
						Count int `json:"count"`
					}
					if err := api.do("POST", "/api/v1/commands", map[string]any{"device_ids": f.IDs, "type": "lock"}, &out); err != nil {
						b.Fatal(err)
					}
					if out.Count != len(f.IDs) {
						b.Fatalf("queued %d, want %d", out.Count, len(f.IDs))
					}
					devs := make([]int, len(f.IDs))
					sent := make([]time.Time, len(f.IDs))
					for i := range devs {
						devs[i], sent[i] = i, start
					}
					reportLatency(b, f, devs, sent)
				}
			})
		})
	}
}

// reportLatency waits until each device devs[k] acknowledged a command
// after sent[k] and reports the p50, p95 and slowest latency.
func reportLatency(b *testing.B, f *Fleet, devs []int, sent []time.Time) {
	b.Helper()
	lat := make([]time.Duration, len(devs))
	deadline := time.Now().Add(10 * time.Minute)
	for k, i := range devs {
		for !f.DoneAt(i).After(sent[k]) {
			if err := f.Err(); err != nil {
				b.Fatal(err)
			}
			if time.Now().After(deadline) {
				b.Fatalf("device %d never acknowledged its command", i)
			}
			time.Sleep(2 * time.Millisecond)
		}
		lat[k] = f.DoneAt(i).Sub(sent[k])
	}
	slices.Sort(lat)
	b.ReportMetric(lat[len(lat)/2].Seconds(), "p50-s")
	b.ReportMetric(lat[len(lat)*95/100].Seconds(), "p95-s")
	b.ReportMetric(lat[len(lat)-1].Seconds(), "max-s")
}

// TestFleetDeliversProfileChanges runs benchmark (a)'s path small, so CI
// proves it works on both backends: every device ends on the last version
// and the API's view agrees.
func TestFleetDeliversProfileChanges(t *testing.T) {
	for _, backend := range sqltest.Backends(t) {
		t.Run(backend, func(t *testing.T) {
			m, f, token := fleetCore(t, backend, 200, false)
			v := profileChanges(t, m, f, token, 3)
			waitAcked(t, f, v, time.Minute)
			d, err := m.DB.Device(context.Background(), f.IDs[len(f.IDs)-1])
			if err != nil {
				t.Fatal(err)
			}
			if d.ConfigVersion != v {
				t.Fatalf("the Core records version %q for a device, want %q", d.ConfigVersion, v)
			}
			if err := f.Err(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
