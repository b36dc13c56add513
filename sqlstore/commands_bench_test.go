package sqlstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/command/commandtest"
	"github.com/custos-uem/custos/id"
	"github.com/custos-uem/custos/sqlstore"
	"github.com/custos-uem/custos/sqlstore/sqltest"
	"github.com/custos-uem/custos/user/usertest"
)

// benchDevices creates n enrolled devices on a fresh database of backend.
func benchDevices(b *testing.B, backend string, n int) (*sqlstore.DB, []string) {
	b.Helper()
	db := sqltest.Open(b, backend)
	u := usertest.CreateUser(b, db, "bench")
	devices, err := db.CreateDevicesForTest(context.Background(), u.ID, n, commandtest.T0)
	if err != nil {
		b.Fatal(err)
	}
	return db, devices
}

func benchCommands(devices []string, typ command.Type, now time.Time) []*command.Command {
	cmds := make([]*command.Command, len(devices))
	for i, d := range devices {
		cmds[i] = &command.Command{ID: id.New(), DeviceID: d, Type: typ, Priority: command.DefaultPriority(typ),
			Status: command.StatusPending, CreatedBy: "bench", CreatedAt: now, ExpiresAt: now.Add(command.DefaultTTL)}
	}
	return cmds
}

// BenchmarkEnqueue100k sends one command to each of command.MaxBulk
// devices in one Enqueue (one transaction), as a bulk lock or a
// configuration change for a whole fleet does.
func BenchmarkEnqueue100k(b *testing.B) {
	for _, backend := range sqltest.Backends(b) {
		b.Run(backend, func(b *testing.B) {
			db, devices := benchDevices(b, backend, command.MaxBulk)
			var elapsed time.Duration
			for b.Loop() {
				cmds := benchCommands(devices, command.Lock, commandtest.T0)
				start := time.Now()
				n, err := db.Enqueue(context.Background(), cmds)
				elapsed += time.Since(start)
				if err != nil || n != len(cmds) {
					b.Fatalf("Enqueue = %d, %v", n, err)
				}
			}
			b.ReportMetric(float64(b.N*len(devices))/elapsed.Seconds(), "devices/s")
		})
	}
}

// BenchmarkNextComplete measures one device round trip: take the next
// command, report its result. Each device already has a history of
// benchHistory final commands, so the measure includes what a long-lived
// device costs Next.
func BenchmarkNextComplete(b *testing.B) {
	const devicesN, benchHistory = 1000, 100
	ctx := context.Background()
	for _, backend := range sqltest.Backends(b) {
		b.Run(backend, func(b *testing.B) {
			db, devices := benchDevices(b, backend, devicesN)
			for range benchHistory {
				if _, err := db.Enqueue(ctx, benchCommands(devices, command.DeviceInfo, commandtest.T0.Add(-command.MaxTTL))); err != nil {
					b.Fatal(err)
				}
			}
			for { // all of it expired: history, never due again
				n, err := db.ExpireCommands(ctx, commandtest.T0, 10_000)
				if err != nil {
					b.Fatal(err)
				}
				if n == 0 {
					break
				}
			}
			// One due command per round trip, round robin over the devices.
			var cmds []*command.Command
			for len(cmds) < b.N {
				cmds = append(cmds, benchCommands(devices, command.Lock, commandtest.T0)...)
			}
			cmds = cmds[:b.N]
			for start := 0; start < len(cmds); start += command.MaxBulk {
				if _, err := db.Enqueue(ctx, cmds[start:min(len(cmds), start+command.MaxBulk)]); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for i := range b.N {
				d := devices[i%devicesN]
				c, err := db.Next(ctx, d, commandtest.T0)
				if err != nil {
					b.Fatalf("Next: %v", err)
				}
				if _, dup, err := db.Complete(ctx, d, command.Result{CommandID: c.ID, Status: command.StatusAcknowledged}, commandtest.T0); err != nil || dup {
					b.Fatalf("Complete: %v, duplicate %v", err, dup)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "roundtrips/s")
		})
	}
}
