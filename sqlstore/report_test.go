package sqlstore_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/custos-uem/custos/activation/activationtest"
	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/command/commandtest"
	"github.com/custos-uem/custos/compliance"
	"github.com/custos-uem/custos/report"
	"github.com/custos-uem/custos/sqlstore/sqltest"
	"github.com/custos-uem/custos/user/usertest"
)

// TestDashboard: counts by platform, state and compliance, activity per
// day, and a scope that sees only its groups' devices.
func TestDashboard(t *testing.T) {
	for _, backend := range sqltest.Backends(t) {
		t.Run(backend, func(t *testing.T) {
			ctx := context.Background()
			db := sqltest.Open(t, backend)
			day := time.Date(2026, 11, 20, 15, 0, 0, 0, time.UTC)
			ada := usertest.CreateUser(t, db, "ada")
			bob := usertest.CreateUser(t, db, "bob")
			grp := usertest.CreateGroup(t, db, "ops")
			if err := db.AddMember(ctx, grp.ID, ada.ID); err != nil {
				t.Fatal(err)
			}
			a1, _ := activationtest.Enroll(t, db, ada.ID, "hw-a1", day)
			activationtest.Enroll(t, db, ada.ID, "hw-a2", day.AddDate(0, 0, 1))
			activationtest.OpenAttempt(t, db, bob.ID, activationtest.SetPassword(t, db, bob.ID, day).ID, "hw-b1", day.AddDate(0, 0, 1))
			if _, err := db.Enqueue(ctx, []*command.Command{commandtest.New(a1.ID, command.Lock, 80, day.AddDate(0, 0, 1))}); err != nil {
				t.Fatal(err)
			}
			if err := db.SaveComplianceState(ctx, &compliance.State{DeviceID: a1.ID, Status: compliance.StatusCompliant, Step: compliance.NoStep}); err != nil {
				t.Fatal(err)
			}
			now := day.AddDate(0, 0, 2)

			all, err := db.Dashboard(ctx, nil, day.AddDate(0, 0, -1), now)
			if err != nil {
				t.Fatal(err)
			}
			if all.Total != 3 || !reflect.DeepEqual(all.ByPlatform, []report.Count{{Key: "linux", Count: 3}}) {
				t.Fatalf("all devices: total %d, by platform %+v", all.Total, all.ByPlatform)
			}
			if !reflect.DeepEqual(all.ByState, []report.Count{{Key: "enrolled", Count: 2}, {Key: "activating", Count: 1}}) {
				t.Fatalf("by state %+v", all.ByState)
			}
			if !reflect.DeepEqual(all.ByCompliance, []report.Count{{Key: "unknown", Count: 2}, {Key: "compliant", Count: 1}}) {
				t.Fatalf("by compliance %+v", all.ByCompliance)
			}
			var acts, cmds []int
			for _, d := range all.Days {
				acts, cmds = append(acts, d.Activations), append(cmds, d.Commands)
			}
			if len(all.Days) != 4 || !reflect.DeepEqual(acts, []int{0, 1, 2, 0}) || !reflect.DeepEqual(cmds, []int{0, 0, 1, 0}) {
				t.Fatalf("days %+v", all.Days)
			}

			scoped, err := db.Dashboard(ctx, []string{grp.ID}, day, now)
			if err != nil {
				t.Fatal(err)
			}
			if scoped.Total != 2 {
				t.Fatalf("scoped total %d, want ada's 2 devices", scoped.Total)
			}
			none, err := db.Dashboard(ctx, []string{"no-such-group"}, day, now)
			if err != nil || none.Total != 0 || len(none.ByPlatform) != 0 {
				t.Fatalf("a scope of nobody: %+v, %v", none, err)
			}
		})
	}
}
