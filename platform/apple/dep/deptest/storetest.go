package deptest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/platform/apple/dep"
	"github.com/custos-uem/custos/user"
	"github.com/custos-uem/custos/user/usertest"
)

// Stores is what the conformance suite needs: the ADE stores and a user
// store to assign devices to.
type Stores interface {
	dep.Store
	user.Store
}

// RunStore checks the contract of dep.Store on fresh stores from open.
func RunStore(t *testing.T, open func(*testing.T) Stores) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	t.Run("settings", func(t *testing.T) {
		s := open(t)
		if _, err := s.DEPSetting(ctx, "cursor"); !errors.Is(err, errs.ErrNotFound) {
			t.Fatalf("missing setting: %v, want ErrNotFound", err)
		}
		if got, err := s.ClaimDEPSetting(ctx, "token_keypair", "first", t0); err != nil || got != "first" {
			t.Fatalf("first claim: %q %v", got, err)
		}
		if got, err := s.ClaimDEPSetting(ctx, "token_keypair", "second", t0); err != nil || got != "first" {
			t.Fatalf("second claim: %q %v, want the first value kept", got, err)
		}
		for _, v := range []string{"a", "b"} {
			if err := s.PutDEPSetting(ctx, "cursor", v, t0); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := s.DEPSetting(ctx, "cursor"); err != nil || got != "b" {
			t.Fatalf("after two puts: %q %v", got, err)
		}
		if err := s.PutDEPSetting(ctx, "cursor", "", t0); err != nil {
			t.Fatal(err)
		}
		if _, err := s.DEPSetting(ctx, "cursor"); !errors.Is(err, errs.ErrNotFound) {
			t.Fatalf("after deleting: %v, want ErrNotFound", err)
		}
	})
	t.Run("devices", func(t *testing.T) {
		s := open(t)
		u := usertest.CreateUser(t, s, "ada")
		op := t0.Add(-time.Minute)
		devs := []dep.Device{
			{Serial: "C02B", Model: "MacBook Pro", Description: "MBP 14", Color: "SILVER", DeviceFamily: "Mac", OS: "OSX", OpType: "added", OpDate: &op, SyncedAt: t0},
			{Serial: "F17A", Model: "iPhone 16", DeviceFamily: "iPhone", OS: "iOS", AppleProfileUUID: "P0", AppleProfileStatus: "assigned", SyncedAt: t0},
		}
		if err := s.UpsertDEPDevices(ctx, devs); err != nil {
			t.Fatal(err)
		}
		if _, err := s.DEPDevice(ctx, "NOPE"); !errors.Is(err, errs.ErrNotFound) {
			t.Fatalf("unknown serial: %v, want ErrNotFound", err)
		}
		t.Run("fail/assign-unknown-serial", func(t *testing.T) {
			if err := s.AssignDEPUser(ctx, "NOPE", u.ID); !errors.Is(err, errs.ErrNotFound) {
				t.Fatalf("AssignDEPUser(unknown serial): %v, want ErrNotFound", err)
			}
		})
		t.Run("fail/assign-unknown-user", func(t *testing.T) {
			if err := s.AssignDEPUser(ctx, "C02B", "no-such-user"); !errors.Is(err, errs.ErrNotFound) {
				t.Fatalf("AssignDEPUser(unknown user): %v, want ErrNotFound", err)
			}
		})
		if err := s.AssignDEPUser(ctx, "C02B", u.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.RecordDEPAssignment(ctx, "P1", map[string]string{"C02B": "SUCCESS", "F17A": "NOT_ACCESSIBLE", "GONE": "FAILED"}, t0); err != nil {
			t.Fatal(err)
		}
		if err := s.RecordDEPEnrollment(ctx, "C02B", "device-1", t0); err != nil {
			t.Fatal(err)
		}
		// A later sync updates Apple's fields and keeps ours.
		again := devs[0]
		again.OpType, again.Removed, again.Description = "deleted", true, "MBP 14 (returned)"
		if err := s.UpsertDEPDevices(ctx, []dep.Device{again}); err != nil {
			t.Fatal(err)
		}
		got, err := s.DEPDevice(ctx, "C02B")
		if err != nil {
			t.Fatal(err)
		}
		if got.UserID != u.ID || got.ProfileUUID != "P1" || got.AssignStatus != "SUCCESS" || got.AssignedAt == nil || !got.AssignedAt.Equal(t0) ||
			got.EnrolledDeviceID != "device-1" || !got.Removed || got.Description != "MBP 14 (returned)" || got.OpDate == nil || !got.OpDate.Equal(op) ||
			got.Model != "MacBook Pro" || got.Color != "SILVER" || got.DeviceFamily != "Mac" || got.OS != "OSX" {
			t.Fatalf("device after resync: %+v", got)
		}
		list, err := s.ListDEPDevices(ctx, "", 10)
		if err != nil || len(list) != 2 || list[0].Serial != "C02B" || list[1].Serial != "F17A" {
			t.Fatalf("list: %v %v", list, err)
		}
		if list[1].AssignStatus != "NOT_ACCESSIBLE" || list[1].AppleProfileUUID != "P0" || list[1].UserID != "" {
			t.Fatalf("second device: %+v", list[1])
		}
		page, err := s.ListDEPDevices(ctx, "C02B", 10)
		if err != nil || len(page) != 1 || page[0].Serial != "F17A" {
			t.Fatalf("page after C02B: %v %v", page, err)
		}
		if err := s.AssignDEPUser(ctx, "C02B", ""); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.DEPDevice(ctx, "C02B"); got.UserID != "" {
			t.Fatalf("cleared user: %q", got.UserID)
		}
	})
	t.Run("many-devices-in-one-upsert", func(t *testing.T) {
		s := open(t)
		devs := make([]dep.Device, 1500)
		for i := range devs {
			devs[i] = dep.Device{Serial: fmt.Sprintf("S%05d", i), Model: "iPad", SyncedAt: t0}
		}
		if err := s.UpsertDEPDevices(ctx, devs); err != nil {
			t.Fatal(err)
		}
		list, err := s.ListDEPDevices(ctx, "S01400", 1000)
		if err != nil || len(list) != 99 {
			t.Fatalf("list after S01400: %d %v", len(list), err)
		}
	})
}
