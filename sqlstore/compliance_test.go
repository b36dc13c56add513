package sqlstore_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/custos-uem/custos/activation/activationtest"
	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/compliance"
	"github.com/custos-uem/custos/compliance/compliancetest"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/id"
	"github.com/custos-uem/custos/sqlstore/sqltest"
	"github.com/custos-uem/custos/user/usertest"
)

func TestComplianceStore(t *testing.T) { forEachBackend(t, compliancetest.Run) }

// TestComplianceMigrationsMatch keeps the two dialects of the compliance
// migration in step: they may differ only in the byte type and the first
// comment line naming the dialect.
func TestComplianceMigrationsMatch(t *testing.T) {
	read := func(backend string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join("migrations", backend, "0005_compliance.sql"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.ReplaceAll(string(b), "BYTEA", "BLOB")
	}
	if lite, pg := read("sqlite"), read("postgres"); lite != pg {
		t.Fatalf("0005_compliance.sql differs between backends beyond BLOB/BYTEA:\n--- sqlite\n%s\n--- postgres\n%s", lite, pg)
	}
}

// TestComplianceEngineWithCommandQueue runs the engine on the real command
// service: the prompts and the wipe it queues pass the queue's validation,
// exactly one wipe is queued, and recovery cancels it.
func TestComplianceEngineWithCommandQueue(t *testing.T) {
	for _, backend := range sqltest.Backends(t) {
		t.Run(backend, func(t *testing.T) {
			ctx := context.Background()
			db := sqltest.Open(t, backend)
			t0 := compliancetest.T0
			u := usertest.CreateUser(t, db, "owner")
			d, _ := activationtest.Enroll(t, db, u.ID, "hw-1", t0)
			report := func(rooted bool, at time.Time) {
				t.Helper()
				info := device.Info{Attributes: map[string]string{compliance.AttrRooted: strconv.FormatBool(rooted)}}
				if err := db.SaveReport(ctx, d.ID, info, nil, at); err != nil {
					t.Fatal(err)
				}
			}
			report(true, t0)
			env := compliancetest.NewEnv(db, db, func(ctx context.Context, id string) error {
				return db.RemoveDevice(ctx, id, t0)
			}, compliancetest.FullLadder(id.New()), t0)
			env.Engine.Commands = &command.Service{Store: db, Now: env.Clock.Now}
			for _, h := range []int{0, 4, 72, 72, 73} {
				env.Check(t, d.ID, t0.Add(time.Duration(h)*time.Hour))
			}
			open, err := db.ListCommands(ctx, command.Query{DeviceID: d.ID, Open: true})
			if err != nil {
				t.Fatal(err)
			}
			count := map[command.Type]int{}
			var wipe *command.Command
			for _, c := range open {
				count[c.Type]++
				if c.Type == command.WipeWork {
					wipe = c
				}
				if c.CreatedBy != compliance.CreatedBy {
					t.Fatalf("command %+v not created by the system", c)
				}
			}
			if count[command.Message] != 3 || count[command.WipeWork] != 1 || len(open) != 4 {
				t.Fatalf("queued %v, want 3 prompts and 1 wipe_work", count)
			}
			report(false, t0.Add(74*time.Hour))
			st := env.Check(t, d.ID, t0.Add(74*time.Hour))
			if st.Status != compliance.StatusCompliant || st.Untrusted || st.Quarantined {
				t.Fatalf("state after the fix: %+v", st)
			}
			got, err := db.Command(ctx, wipe.ID)
			if err != nil || got.Status != command.StatusCancelled {
				t.Fatalf("queued wipe after the fix: %+v %v; want cancelled", got, err)
			}
		})
	}
}
