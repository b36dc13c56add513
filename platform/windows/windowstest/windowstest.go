// Package windowstest is the conformance suite of windows.SessionStore,
// run by sqlstore against SQLite and PostgreSQL.
package windowstest

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/custos-uem/custos/activation/activationtest"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/platform/windows"
	"github.com/custos-uem/custos/user/usertest"
)

// Stores is what the suite needs: the session store, what creates
// devices, and what stores the inventory and push tokens DeviceState reads.
type Stores interface {
	windows.SessionStore
	activationtest.Enroller
	device.PushStore
	SaveReport(ctx context.Context, id string, info device.Info, software []device.App, now time.Time) error
}

// Run runs the suite; open returns empty stores for each call.
func Run(t *testing.T, open func(t *testing.T) Stores) {
	for _, tc := range []struct {
		name string
		f    func(*testing.T, Stores)
	}{
		{"CreateAndRead", testCreateAndRead},
		{"ScopedByDevice", testScopedByDevice},
		{"UpdateRequiresPreviousMsgID", testUpdate},
		{"PackageOneStartsOver", testStartOver},
		{"End", testEnd},
		{"Sweep", testSweep},
		{"ConcurrentUpdatesOneWins", testConcurrent},
		{"DeviceState", testDeviceState},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.f(t, open(t))
		})
	}
}

var t0 = activationtest.T0

func devices(t *testing.T, s Stores) (string, string) {
	t.Helper()
	u := usertest.CreateUser(t, s, "owner")
	a, _ := activationtest.Enroll(t, s, u.ID, "hw-a", t0)
	b, _ := activationtest.Enroll(t, s, u.ID, "hw-b", t0)
	return a.ID, b.ID
}

func session(deviceID, sid string, msg int) *windows.Session {
	return &windows.Session{DeviceID: deviceID, SessionID: sid, MsgID: msg, CmdID: 3 * msg,
		Pending: []windows.Pending{{MsgID: msg, CmdID: 3 * msg, Op: windows.OpCommand, Command: "cmd-1", LocURI: "./Vendor/MSFT/RemoteLock/Lock",
			Tolerate: []string{"404"}}}, Delivered: []string{"cmd-1"}, UpdatedAt: t0}
}

func mustGet(t *testing.T, s Stores, deviceID, sid string) *windows.Session {
	t.Helper()
	got, err := s.WindowsSession(context.Background(), deviceID, sid)
	if err != nil {
		t.Fatalf("WindowsSession(%s, %s): %v", deviceID, sid, err)
	}
	return got
}

func testCreateAndRead(t *testing.T, s Stores) {
	ctx := context.Background()
	a, _ := devices(t, s)
	if _, err := s.WindowsSession(ctx, a, "1"); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("fail/absent: %v, want not found", err)
	}
	if err := s.SaveWindowsSession(ctx, session("no-such-device", "1", 1), 0); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("fail/unknown-device: %v, want not found", err)
	}
	want := session(a, "1", 1)
	if err := s.SaveWindowsSession(ctx, want, 0); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s, a, "1"); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	empty := &windows.Session{DeviceID: a, SessionID: "2", MsgID: 1, UpdatedAt: t0}
	if err := s.SaveWindowsSession(ctx, empty, 0); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s, a, "2"); len(got.Pending) != 0 {
		t.Fatalf("pending %+v, want none", got.Pending)
	}
}

// testScopedByDevice: the same SessionID of two devices are two sessions,
// and one device never reads or changes the other's.
func testScopedByDevice(t *testing.T, s Stores) {
	ctx := context.Background()
	a, b := devices(t, s)
	if err := s.SaveWindowsSession(ctx, session(a, "7", 1), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.WindowsSession(ctx, b, "7"); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("fail/other-devices-session: %v, want not found", err)
	}
	if err := s.SaveWindowsSession(ctx, session(b, "7", 2), 1); !errors.Is(err, errs.ErrConflict) {
		t.Fatalf("fail/update-other-devices-session: %v, want conflict", err)
	}
	if err := s.EndWindowsSession(ctx, b, "7", 1); err != nil {
		t.Fatalf("ending an absent session: %v", err)
	}
	if got := mustGet(t, s, a, "7"); got.MsgID != 1 || got.DeviceID != a {
		t.Fatalf("device a's session changed: %+v", got)
	}
}

func testUpdate(t *testing.T, s Stores) {
	ctx := context.Background()
	a, _ := devices(t, s)
	if err := s.SaveWindowsSession(ctx, session(a, "1", 1), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveWindowsSession(ctx, session(a, "1", 3), 2); !errors.Is(err, errs.ErrConflict) {
		t.Fatalf("fail/skipped-msgid: %v, want conflict", err)
	}
	next := session(a, "1", 2)
	next.UpdatedAt = t0.Add(time.Second)
	if err := s.SaveWindowsSession(ctx, next, 1); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveWindowsSession(ctx, session(a, "1", 2), 1); !errors.Is(err, errs.ErrConflict) {
		t.Fatalf("fail/replayed-msgid: %v, want conflict", err)
	}
	if got := mustGet(t, s, a, "1"); !reflect.DeepEqual(got, next) {
		t.Fatalf("got %+v, want %+v", got, next)
	}
}

func testStartOver(t *testing.T, s Stores) {
	ctx := context.Background()
	a, _ := devices(t, s)
	if err := s.SaveWindowsSession(ctx, session(a, "1", 4), 0); err != nil {
		t.Fatal(err)
	}
	fresh := session(a, "1", 1)
	if err := s.SaveWindowsSession(ctx, fresh, 0); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s, a, "1"); !reflect.DeepEqual(got, fresh) {
		t.Fatalf("got %+v, want %+v", got, fresh)
	}
}

func testEnd(t *testing.T, s Stores) {
	ctx := context.Background()
	a, _ := devices(t, s)
	if err := s.SaveWindowsSession(ctx, session(a, "1", 2), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.EndWindowsSession(ctx, a, "1", 1); !errors.Is(err, errs.ErrConflict) {
		t.Fatalf("fail/stale-end: %v, want conflict", err)
	}
	if err := s.EndWindowsSession(ctx, a, "1", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.WindowsSession(ctx, a, "1"); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("after end: %v, want not found", err)
	}
	if err := s.EndWindowsSession(ctx, a, "1", 2); err != nil {
		t.Fatalf("ending twice: %v", err)
	}
}

func testSweep(t *testing.T, s Stores) {
	ctx := context.Background()
	a, b := devices(t, s)
	old, fresh := session(a, "1", 1), session(b, "1", 1)
	fresh.UpdatedAt = t0.Add(time.Hour)
	for _, x := range []*windows.Session{old, fresh} {
		if err := s.SaveWindowsSession(ctx, x, 0); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.SweepWindowsSessions(ctx, t0.Add(time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("Sweep = %d, %v; want 1", n, err)
	}
	mustGet(t, s, b, "1")
}

// testConcurrent: two Cores answering the same message: exactly one
// update wins.
func testConcurrent(t *testing.T, s Stores) {
	ctx := context.Background()
	a, _ := devices(t, s)
	if err := s.SaveWindowsSession(ctx, session(a, "1", 1), 0); err != nil {
		t.Fatal(err)
	}
	const n = 8
	var wg sync.WaitGroup
	errsCh := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errsCh <- s.SaveWindowsSession(ctx, session(a, "1", 2), 1)
		}()
	}
	wg.Wait()
	close(errsCh)
	ok := 0
	for err := range errsCh {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, errs.ErrConflict):
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d updates won, want 1", ok)
	}
}

// testDeviceState: the inventory and push token of the device asked for,
// as Inventory and PushTokens return them; none for a device without them,
// nor for an unknown one.
func testDeviceState(t *testing.T, s Stores) {
	ctx := context.Background()
	a, b := devices(t, s)
	for _, id := range []string{a, "no-such-device"} {
		st, err := s.WindowsDeviceState(ctx, id)
		if err != nil || !reflect.DeepEqual(st, &windows.DeviceState{}) {
			t.Fatalf("state of %s without inventory or token: %+v, %v; want zero", id, st, err)
		}
	}
	info := device.Info{Manufacturer: "Contoso", OSName: "Windows", Attributes: map[string]string{"dev_id": "hw-a"}}
	if err := s.SaveReport(ctx, a, info, nil, t0); err != nil {
		t.Fatal(err)
	}
	tok := device.PushToken{DeviceID: a, Provider: "wns", Token: "https://db5p.notify.windows.com/?token=a", UpdatedAt: t0.Add(time.Minute)}
	if err := s.SetPushToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	st, err := s.WindowsDeviceState(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	want := &windows.DeviceState{Reported: true, Info: info, ReportedAt: t0, Push: &tok}
	if !reflect.DeepEqual(st, want) {
		t.Fatalf("got %+v (push %+v), want %+v (push %+v)", st, st.Push, want, want.Push)
	}
	if st, err := s.WindowsDeviceState(ctx, b); err != nil || !reflect.DeepEqual(st, &windows.DeviceState{}) {
		t.Fatalf("fail/other-devices-state: %+v, %v; want zero", st, err)
	}
}
