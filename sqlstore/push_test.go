package sqlstore_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custos-uem/custos/activation/activationtest"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/sqlstore"
	"github.com/custos-uem/custos/sqlstore/sqltest"
	"github.com/custos-uem/custos/user/usertest"
)

func TestPushTokens(t *testing.T) {
	for _, backend := range sqltest.Backends(t) {
		t.Run(backend, func(t *testing.T) {
			db := sqltest.Open(t, backend)
			ctx := context.Background()
			u := usertest.CreateUser(t, db, "owner")
			d, _ := activationtest.Enroll(t, db, u.ID, "hw-1", activationtest.T0)
			other, _ := activationtest.Enroll(t, db, u.ID, "hw-2", activationtest.T0)

			if err := db.SetPushToken(ctx, device.PushToken{DeviceID: "no-such-device", Provider: "fcm", Token: "x"}); !errors.Is(err, errs.ErrNotFound) {
				t.Fatalf("fail/unknown device: %v, want not found", err)
			}
			tok := device.PushToken{DeviceID: d.ID, Provider: "apns", Token: "aa01", Topic: "com.example.agent", UpdatedAt: activationtest.T0}
			if err := db.SetPushToken(ctx, tok); err != nil {
				t.Fatal(err)
			}
			tok.Token = "bb02" // a new registration replaces the old one
			if err := db.SetPushToken(ctx, tok); err != nil {
				t.Fatal(err)
			}
			got, err := db.PushTokens(ctx, []string{d.ID, other.ID})
			if err != nil || len(got) != 1 || got[0] != tok {
				t.Fatalf("PushTokens = %+v, %v; want only %+v", got, err, tok)
			}
			// A stale token's 410 must not drop the newer registration.
			if err := db.DropPushToken(ctx, d.ID, "aa01"); err != nil {
				t.Fatal(err)
			}
			if got, _ := db.PushTokens(ctx, []string{d.ID}); len(got) != 1 {
				t.Fatalf("dropping a stale token removed the current one")
			}
			if err := db.DropPushToken(ctx, d.ID, "bb02"); err != nil {
				t.Fatal(err)
			}
			if got, _ := db.PushTokens(ctx, []string{d.ID}); len(got) != 0 {
				t.Fatalf("token still stored after drop: %+v", got)
			}
			if err := db.RemoveDevice(ctx, other.ID, activationtest.T0); err != nil {
				t.Fatal(err)
			}
			if err := db.SetPushToken(ctx, device.PushToken{DeviceID: other.ID, Provider: "fcm", Token: "x"}); !errors.Is(err, errs.ErrNotFound) {
				t.Fatalf("fail/removed device: %v, want not found", err)
			}
		})
	}
}

// TestClaimRunOncePerInterval: many processes' claims of the same due run
// produce one winner, and the next run is claimable only an interval later.
func TestClaimRunOncePerInterval(t *testing.T) {
	for _, backend := range sqltest.Backends(t) {
		t.Run(backend, func(t *testing.T) {
			dsn := sqltest.DSN(t, backend)
			ctx := context.Background()
			dbs := []*sqlstore.DB{sqltest.Open(t, backend)}
			if backend == sqlstore.Postgres { // several pools = several processes
				dbs = nil
				for range 3 {
					db, err := sqlstore.Open(ctx, dsn, "", nil)
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { db.Close() })
					dbs = append(dbs, db)
				}
			}
			now := activationtest.T0
			const every = time.Minute
			var wins atomic.Int32
			var wg sync.WaitGroup
			for i := range 12 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ok, err := dbs[i%len(dbs)].ClaimRun(ctx, "sweep", "p", every, now)
					if err != nil {
						t.Error(err)
					}
					if ok {
						wins.Add(1)
					}
				}()
			}
			wg.Wait()
			if wins.Load() != 1 {
				t.Fatalf("%d claims won the same run, want 1", wins.Load())
			}
			if ok, _ := dbs[0].ClaimRun(ctx, "sweep", "p", every, now.Add(every-time.Second)); ok {
				t.Fatal("claimed again before the interval passed")
			}
			if ok, _ := dbs[0].ClaimRun(ctx, "other", "p", every, now); !ok {
				t.Fatal("another job's run was not claimable")
			}
			if ok, _ := dbs[len(dbs)-1].ClaimRun(ctx, "sweep", "p", every, now.Add(every)); !ok {
				t.Fatal("the next interval's run was not claimable")
			}
		})
	}
}
