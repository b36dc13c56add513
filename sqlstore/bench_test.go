package sqlstore_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custos-uem/custos/activation"
	"github.com/custos-uem/custos/activation/activationtest"
	"github.com/custos-uem/custos/audit"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/sqlstore"
	"github.com/custos-uem/custos/sqlstore/sqltest"
	"github.com/custos-uem/custos/user/usertest"
)

// BenchmarkActivation runs the store calls of one complete device
// activation, from a new user to an active, reporting device, on many
// goroutines: 7 write transactions (create user, set password, open and
// complete the session, report, acknowledge, audit) and the reads the
// services make between them.
func BenchmarkActivation(b *testing.B) {
	for _, backend := range sqltest.Backends(b) {
		b.Run(backend, func(b *testing.B) {
			db := sqltest.Open(b, backend)
			var seq atomic.Int64
			b.SetParallelism(32) // 1,000 activations a second means many devices at once
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := activate(db, fmt.Sprintf("hw-%d", seq.Add(1))); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "activations/s")
		})
	}
}

func activate(db *sqlstore.DB, hardwareID string) error {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	u := usertest.NewUser("bench")
	if err := db.CreateUser(ctx, u); err != nil {
		return err
	}
	p := activationtest.NewPassword(u.ID, now)
	if err := db.SetPassword(ctx, p, now); err != nil {
		return err
	}
	// Activate: find the user, match the password, pick the profile, check
	// the devices, open the session.
	if _, err := db.UserByLogin(ctx, u.Email); err != nil {
		return err
	}
	if _, err := db.Passwords(ctx, u.ID); err != nil {
		return err
	}
	if _, err := db.GroupsOf(ctx, u.ID); err != nil {
		return err
	}
	if _, err := db.ListDevices(ctx, device.Query{HardwareID: hardwareID, Limit: device.MaxPage}); err != nil {
		return err
	}
	if _, err := db.ListDevices(ctx, device.Query{UserID: u.ID, Limit: device.MaxPage}); err != nil {
		return err
	}
	sess, d := activationtest.NewAttempt(u.ID, p.ID, hardwareID, now)
	if err := db.OpenSession(ctx, sess, d); err != nil {
		return err
	}
	// Enroll: find the session, complete it.
	if _, err := db.SessionByToken(ctx, sess.TokenHash); err != nil {
		return err
	}
	if err := db.CompleteSession(ctx, sess.ID, activationtest.NewCert(d.ID, now), now); err != nil {
		return err
	}
	// Each later request authenticates the device first.
	for _, step := range []func() error{
		func() error {
			return db.SaveReport(ctx, d.ID, device.Info{Hostname: "h", OSVersion: "1"}, []device.App{{Name: "a"}}, now)
		},
		func() error { return db.Acknowledge(ctx, d.ID, "1", now) },
	} {
		if _, err := db.Device(ctx, d.ID); err != nil {
			return err
		}
		if err := step(); err != nil {
			return err
		}
	}
	return db.AppendAudit(ctx, &audit.Entry{At: now, Actor: "system", Action: "device.activate",
		ObjectType: "device", ObjectID: d.ID, Outcome: "ok", Detail: map[string]any{"type": string(activation.MDMControls)}})
}
