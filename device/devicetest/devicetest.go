// Package devicetest is the conformance suite of device.Store and
// device.Remover, run by every implementation against each of its
// backends.
package devicetest

import (
	"context"
	"fmt"
	"github.com/custos-uem/custos/id"
	"github.com/custos-uem/custos/storetest"
	"testing"
	"time"

	"github.com/custos-uem/custos/activation/activationtest"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/pki"
	"github.com/custos-uem/custos/user/usertest"
)

// Stores is what the suite tests, with the stores it needs to enroll
// devices and to see revocations.
type Stores interface {
	activationtest.Enroller
	device.Store
	device.Remover
	pki.RevocationStore
}

// Run runs the suite; open must return empty stores of their own for each
// call (the subtests run in parallel).
func Run(t *testing.T, open func(t *testing.T) Stores) {
	storetest.Run(t, open, []storetest.Case[Stores]{
		{Name: "DeviceUnknownIsNotFound", Fn: testDeviceUnknown},
		{Name: "ListDevicesFiltersAndPagesInIDOrder", Fn: testListDevices},
		{Name: "ListDevicesCapsLimitAtMaxPage", Fn: testListDevicesCap},
		{Name: "InventoryBeforeReportIsNotFound", Fn: testInventoryNotFound},
		{Name: "SaveReportStoresInfoAndSoftware", Fn: testSaveReport},
		{Name: "SaveReportNilSoftwareKeepsList", Fn: testSaveReportNilSoftware},
		{Name: "SaveReportRefusesDevicesNotEnrolled", Fn: testSaveReportRefused},
		{Name: "HostileStringsRoundTrip", Fn: testHostileStrings},
		{Name: "AcknowledgeActivatesEnrolledDevice", Fn: testAcknowledge},
		{Name: "RemoveDeviceRevokesCertificate", Fn: testRemoveDevice},
	})
}

var t0 = activationtest.T0

func wantDevice(t testing.TB, s device.Store, want *device.Device) {
	t.Helper()
	got, err := s.Device(context.Background(), want.ID)
	storetest.WantErr(t, "Device", err, nil)
	storetest.WantEqual(t, "Device", got, want)
}

// enroll creates a user and enrolls a device on hardwareID for them.
func enroll(t testing.TB, s Stores, hardwareID string) *device.Device {
	t.Helper()
	u := usertest.CreateUser(t, s, "owner")
	d, _ := activationtest.Enroll(t, s, u.ID, hardwareID, t0)
	return d
}

func ids(ds []*device.Device) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}

func testDeviceUnknown(t *testing.T, s Stores) {
	_, err := s.Device(context.Background(), id.New())
	storetest.WantErr(t, "Device(unknown)", err, errs.ErrNotFound)
}

func testListDevices(t *testing.T, s Stores) {
	ctx := context.Background()
	u, v := usertest.CreateUser(t, s, "ada"), usertest.CreateUser(t, s, "bob")
	a, _ := activationtest.Enroll(t, s, u.ID, "hw-a", t0)
	_, b := activationtest.Start(t, s, u.ID, "hw-b", t0)
	c, _ := activationtest.Enroll(t, s, v.ID, "hw-c", t0)
	old, _ := activationtest.Enroll(t, s, v.ID, "hw-d", t0)
	storetest.WantErr(t, "RemoveDevice", s.RemoveDevice(ctx, old.ID, t0), nil)
	_, d := activationtest.Start(t, s, u.ID, "hw-d", t0)
	tests := []struct {
		name string
		q    device.Query
		want []string
	}{
		{"ok/no filter", device.Query{}, []string{a.ID, b.ID, c.ID, old.ID, d.ID}},
		{"ok/user", device.Query{UserID: u.ID}, []string{a.ID, b.ID, d.ID}},
		{"ok/hardware", device.Query{HardwareID: "hw-d"}, []string{old.ID, d.ID}},
		{"ok/state", device.Query{State: device.StateEnrolled}, []string{a.ID, c.ID}},
		{"ok/user and state", device.Query{UserID: u.ID, State: device.StateActivating}, []string{b.ID, d.ID}},
		{"ok/after", device.Query{After: b.ID}, []string{c.ID, old.ID, d.ID}},
		{"ok/limit", device.Query{Limit: 2}, []string{a.ID, b.ID}},
		{"ok/after and limit", device.Query{After: a.ID, Limit: 2}, []string{b.ID, c.ID}},
		{"ok/nothing matches", device.Query{UserID: id.New()}, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListDevices(ctx, tc.q)
			storetest.WantErr(t, "ListDevices", err, nil)
			storetest.WantEqual(t, fmt.Sprintf("ListDevices(%+v)", tc.q), ids(got), tc.want)
		})
	}
}

func testListDevicesCap(t *testing.T, s Stores) {
	u := usertest.CreateUser(t, s, "ada")
	for i := range device.MaxPage + 1 {
		activationtest.Start(t, s, u.ID, fmt.Sprintf("hw-%d", i), t0)
	}
	got, err := s.ListDevices(context.Background(), device.Query{Limit: device.MaxPage + 1})
	storetest.WantErr(t, "ListDevices", err, nil)
	if len(got) != device.MaxPage {
		t.Fatalf("ListDevices(Limit MaxPage+1) returned %d, want %d", len(got), device.MaxPage)
	}
}

func testInventoryNotFound(t *testing.T, s Stores) {
	ctx := context.Background()
	d := enroll(t, s, "hw-1")
	for _, id := range []string{d.ID, id.New()} {
		_, err := s.Inventory(ctx, id)
		storetest.WantErr(t, "Inventory("+id+")", err, errs.ErrNotFound)
	}
}

var sampleInfo = device.Info{Hostname: "ada-laptop", Manufacturer: "Framework", Model: "Laptop 16", SerialNumber: "SN1",
	OSName: "Debian", OSVersion: "12.5", Kernel: "6.1.0", Arch: "amd64", Attributes: map[string]string{"tpm": "2.0"}}

var sampleApps = []device.App{{Name: "firefox", Version: "128.0", ID: "org.mozilla.firefox"}, {Name: "vim"}}

func wantInventory(t testing.TB, s device.Store, want *device.Inventory) {
	t.Helper()
	got, err := s.Inventory(context.Background(), want.DeviceID)
	storetest.WantErr(t, "Inventory", err, nil)
	storetest.WantEqual(t, "Inventory", got, want)
}

func testSaveReport(t *testing.T, s Stores) {
	ctx := context.Background()
	d := enroll(t, s, "hw-1")
	now := t0.Add(time.Minute)
	storetest.WantErr(t, "SaveReport", s.SaveReport(ctx, d.ID, sampleInfo, sampleApps, now), nil)
	wantInventory(t, s, &device.Inventory{DeviceID: d.ID, Info: sampleInfo, Software: sampleApps, ReportedAt: now})
	d.Model, d.OSVersion, d.Name, d.LastSeenAt = sampleInfo.Model, sampleInfo.OSVersion, sampleInfo.Hostname, &now
	wantDevice(t, s, d)

	// A later report replaces the info; fields it leaves empty keep the
	// device's columns.
	later := t0.Add(time.Hour)
	info := device.Info{OSVersion: "13.0"}
	storetest.WantErr(t, "SaveReport", s.SaveReport(ctx, d.ID, info, []device.App{}, later), nil)
	wantInventory(t, s, &device.Inventory{DeviceID: d.ID, Info: info, Software: []device.App{}, ReportedAt: later})
	d.OSVersion, d.LastSeenAt = "13.0", &later
	wantDevice(t, s, d)
}

func testSaveReportNilSoftware(t *testing.T, s Stores) {
	ctx := context.Background()
	d := enroll(t, s, "hw-1")
	storetest.WantErr(t, "first SaveReport", s.SaveReport(ctx, d.ID, sampleInfo, nil, t0), nil)
	wantInventory(t, s, &device.Inventory{DeviceID: d.ID, Info: sampleInfo, Software: []device.App{}, ReportedAt: t0})
	storetest.WantErr(t, "SaveReport", s.SaveReport(ctx, d.ID, sampleInfo, sampleApps, t0), nil)
	later := t0.Add(time.Minute)
	storetest.WantErr(t, "SaveReport(nil software)", s.SaveReport(ctx, d.ID, sampleInfo, nil, later), nil)
	wantInventory(t, s, &device.Inventory{DeviceID: d.ID, Info: sampleInfo, Software: sampleApps, ReportedAt: later})
}

func testSaveReportRefused(t *testing.T, s Stores) {
	ctx := context.Background()
	u := usertest.CreateUser(t, s, "ada")
	_, activating := activationtest.Start(t, s, u.ID, "hw-activating", t0)
	removed, _ := activationtest.Enroll(t, s, u.ID, "hw-removed", t0)
	storetest.WantErr(t, "RemoveDevice", s.RemoveDevice(ctx, removed.ID, t0), nil)
	removed.State, removed.RemovedAt = device.StateRemoved, &t0
	tests := []struct {
		name string
		id   string
	}{
		{"fail/unknown", id.New()},
		{"fail/removed", removed.ID},
		{"fail/activating", activating.ID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			storetest.WantErr(t, "SaveReport", s.SaveReport(ctx, tc.id, sampleInfo, sampleApps, t0), errs.ErrNotFound)
			_, err := s.Inventory(ctx, tc.id)
			storetest.WantErr(t, "Inventory", err, errs.ErrNotFound)
		})
	}
	wantDevice(t, s, removed)
	wantDevice(t, s, activating)
}

func testHostileStrings(t *testing.T, s Stores) {
	ctx := context.Background()
	d := enroll(t, s, usertest.SQLInject)
	info := device.Info{Hostname: usertest.ScriptTag, Model: usertest.SQLInject, OSVersion: "{{.Secret}}",
		Attributes: map[string]string{usertest.ScriptTag: usertest.SQLInject, "nul": "a\x00b", "quote": `"'\`}}
	apps := []device.App{{Name: usertest.SQLInject, Version: usertest.ScriptTag, ID: "ünïcødé ✓"}}
	storetest.WantErr(t, "SaveReport", s.SaveReport(ctx, d.ID, info, apps, t0), nil)
	wantInventory(t, s, &device.Inventory{DeviceID: d.ID, Info: info, Software: apps, ReportedAt: t0})
	got, err := s.ListDevices(ctx, device.Query{HardwareID: usertest.SQLInject})
	storetest.WantErr(t, "ListDevices", err, nil)
	if len(got) != 1 || got[0].Name != usertest.ScriptTag || got[0].Model != usertest.SQLInject {
		t.Fatalf("ListDevices(hostile hardware ID) = %+v", got)
	}
}

func testAcknowledge(t *testing.T, s Stores) {
	ctx := context.Background()
	u := usertest.CreateUser(t, s, "ada")
	_, activating := activationtest.Start(t, s, u.ID, "hw-activating", t0)
	removed, _ := activationtest.Enroll(t, s, u.ID, "hw-removed", t0)
	storetest.WantErr(t, "RemoveDevice", s.RemoveDevice(ctx, removed.ID, t0), nil)
	d, _ := activationtest.Enroll(t, s, u.ID, "hw-1", t0)
	first, second := t0.Add(time.Minute), t0.Add(time.Hour)
	tests := []struct {
		name, id, version string
		now               time.Time
		want              error
	}{
		{"fail/unknown", id.New(), "1", first, errs.ErrNotFound},
		{"fail/removed", removed.ID, "1", first, errs.ErrNotFound},
		{"fail/activating", activating.ID, "1", first, errs.ErrNotFound},
		{"ok/enrolled becomes active", d.ID, "1", first, nil},
		{"ok/active stays active", d.ID, "2", second, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			storetest.WantErr(t, "Acknowledge", s.Acknowledge(ctx, tc.id, tc.version, tc.now), tc.want)
		})
	}
	wantDevice(t, s, activating)
	d.State, d.ConfigVersion, d.ActivatedAt, d.LastSeenAt = device.StateActive, "2", &first, &second
	wantDevice(t, s, d)
}

func testRemoveDevice(t *testing.T, s Stores) {
	ctx := context.Background()
	u := usertest.CreateUser(t, s, "ada")
	d, cert := activationtest.Enroll(t, s, u.ID, "hw-1", t0)
	kept, _ := activationtest.Enroll(t, s, u.ID, "hw-2", t0)
	now := t0.Add(time.Hour)
	tests := []struct {
		name, id string
		want     error
	}{
		{"fail/unknown", id.New(), errs.ErrNotFound},
		{"ok/enrolled", d.ID, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			storetest.WantErr(t, "RemoveDevice", s.RemoveDevice(ctx, tc.id, now), tc.want)
		})
	}
	storetest.WantErr(t, "RemoveDevice(removed)", s.RemoveDevice(ctx, d.ID, now.Add(time.Hour)), errs.ErrNotFound)
	d.State, d.RemovedAt = device.StateRemoved, &now
	wantDevice(t, s, d)
	wantDevice(t, s, kept)
	revoked, err := s.RevokedCerts(ctx, now)
	storetest.WantErr(t, "RevokedCerts", err, nil)
	storetest.WantEqual(t, "RevokedCerts", revoked, []pki.Revoked{{Serial: cert.Serial, RevokedAt: now}})
	storetest.WantErr(t, "SaveReport(removed)", s.SaveReport(ctx, d.ID, sampleInfo, nil, now), errs.ErrNotFound)
}
