// Package appletest holds the conformance suite of apple.Store, an Apple
// MDM device emulator (Mdm-Signature over the real protocol) and a
// harness for the mdmb simulator.
package appletest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/custos-uem/custos/activation/activationtest"
	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/id"
	"github.com/custos-uem/custos/platform/apple"
	"github.com/custos-uem/custos/storetest"
	"github.com/custos-uem/custos/user/usertest"
)

// Stores is what the suite tests, with the stores it needs to enroll and
// remove devices.
type Stores interface {
	activationtest.Enroller
	device.Remover
	apple.Store
	apple.RoundTripStore
	command.Store
}

// RunStore runs the suite; open must return empty stores of their own for
// each call.
func RunStore(t *testing.T, open func(t *testing.T) Stores) {
	storetest.Run(t, open, []storetest.Case[Stores]{
		{Name: "fail/IdentityOfUnknownSerialIsNotFound", Fn: testIdentityUnknown},
		{Name: "fail/AuthenticateWithCertBoundElsewhere", Fn: testCertBoundElsewhere},
		{Name: "fail/AuthenticateEnrollmentOfAnotherLiveDevice", Fn: testEnrollmentOfOtherDevice},
		{Name: "fail/TokenUpdateOfUnboundCertificateIsNotFound", Fn: testTokenUpdateUnbound},
		{Name: "ok/IdentityBeforeAndAfterAuthenticate", Fn: testIdentity},
		{Name: "ok/ConcurrentIdentitiesAreEachTheirOwn", Fn: testIdentityConcurrent},
		{Name: "ok/TokenUpdateFirstOnceAfterAuthenticate", Fn: testTokenUpdate},
		{Name: "ok/CheckOutAndBootstrapToken", Fn: testCheckOut},
		{Name: "ok/IdentityRevokedAfterRemove", Fn: testRevoked},
		{Name: "ok/ProfileCommandsCountPendingAndInstalled", Fn: testProfiles},
		{Name: "fail/CompleteAndNextOfUnknownCommandDeliversNothing", Fn: testRoundTripUnknown},
		{Name: "ok/CompleteAndNextIsCompleteThenNext", Fn: testRoundTrip},
	})
}

var t0 = activationtest.T0

func enroll(t *testing.T, s Stores) (*device.Device, string) {
	t.Helper()
	u := usertest.CreateUser(t, s, "owner")
	d, cert := activationtest.Enroll(t, s, u.ID, "hw-"+id.New(), t0)
	return d, cert.Serial
}

func authenticate(t *testing.T, s Stores, d *device.Device, serial, udid string) {
	t.Helper()
	err := s.Authenticate(context.Background(), apple.Enrollment{UDID: udid, DeviceID: d.ID, CertSerial: serial,
		Topic: "com.apple.mgmt.External.test", SerialNumber: "C02TEST", AuthenticatedAt: t0})
	storetest.WantErr(t, "Authenticate", err, nil)
}

func testIdentityUnknown(t *testing.T, s Stores) {
	_, err := s.Identity(context.Background(), "00ff")
	storetest.WantErr(t, "Identity", err, errs.ErrNotFound)
}

func testIdentity(t *testing.T, s Stores) {
	ctx := context.Background()
	d, serial := enroll(t, s)
	got, err := s.Identity(ctx, serial)
	storetest.WantErr(t, "Identity", err, nil)
	storetest.WantEqual(t, "Identity", got, &apple.Identity{DeviceID: d.ID, DeviceState: string(device.StateEnrolled)})
	authenticate(t, s, d, serial, "UDID-1")
	got, err = s.Identity(ctx, serial)
	storetest.WantErr(t, "Identity", err, nil)
	want := &apple.Enrollment{UDID: "UDID-1", DeviceID: d.ID, CertSerial: serial, Topic: "com.apple.mgmt.External.test",
		SerialNumber: "C02TEST", AuthenticatedAt: t0}
	storetest.WantEqual(t, "Identity.Enrollment", got.Enrollment, want)
	e, err := s.EnrollmentOf(ctx, d.ID)
	storetest.WantErr(t, "EnrollmentOf", err, nil)
	storetest.WantEqual(t, "EnrollmentOf", e, want)
	_, err = s.EnrollmentOf(ctx, "nope")
	storetest.WantErr(t, "EnrollmentOf unknown", err, errs.ErrNotFound)
}

// testIdentityConcurrent reads many identities at once, unknown serials
// among them (a store may answer concurrent reads together): each caller
// gets its own.
func testIdentityConcurrent(t *testing.T, s Stores) {
	const devices, rounds = 8, 4
	ctx := context.Background()
	serials := make([]string, devices)
	ids := make([]string, devices)
	for i := range devices {
		d, serial := enroll(t, s)
		authenticate(t, s, d, serial, fmt.Sprintf("UDID-%d", i))
		serials[i], ids[i] = serial, d.ID
	}
	var wg sync.WaitGroup
	errc := make(chan error, devices*rounds*2)
	for range rounds {
		for i := range devices {
			wg.Go(func() {
				got, err := s.Identity(ctx, serials[i])
				if err != nil || got.DeviceID != ids[i] || got.Enrollment == nil || got.Enrollment.UDID != fmt.Sprintf("UDID-%d", i) {
					errc <- fmt.Errorf("Identity of device %d = %+v, %v", i, got, err)
				}
			})
			wg.Go(func() {
				if _, err := s.Identity(ctx, fmt.Sprintf("%04x", 0xff00+i)); !errors.Is(err, errs.ErrNotFound) {
					errc <- fmt.Errorf("Identity of an unknown serial: %v, want ErrNotFound", err)
				}
			})
		}
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
}

func testCertBoundElsewhere(t *testing.T, s Stores) {
	ctx := context.Background()
	d, serial := enroll(t, s)
	authenticate(t, s, d, serial, "UDID-A")
	err := s.Authenticate(ctx, apple.Enrollment{UDID: "UDID-B", DeviceID: d.ID, CertSerial: serial, AuthenticatedAt: t0})
	storetest.WantErr(t, "Authenticate with a bound certificate", err, errs.ErrConflict)
	got, _ := s.Identity(ctx, serial)
	if got.Enrollment == nil || got.Enrollment.UDID != "UDID-A" {
		t.Fatalf("binding changed: %+v", got.Enrollment)
	}
}

func testEnrollmentOfOtherDevice(t *testing.T, s Stores) {
	ctx := context.Background()
	d1, s1 := enroll(t, s)
	d2, s2 := enroll(t, s)
	authenticate(t, s, d1, s1, "UDID-SHARED")
	err := s.Authenticate(ctx, apple.Enrollment{UDID: "UDID-SHARED", DeviceID: d2.ID, CertSerial: s2, AuthenticatedAt: t0})
	storetest.WantErr(t, "Authenticate another device's enrollment", err, errs.ErrConflict)
	// Once the first device is removed, the hardware may enroll again as
	// a new device.
	storetest.WantErr(t, "RemoveDevice", s.RemoveDevice(ctx, d1.ID, t0), nil)
	authenticate(t, s, d2, s2, "UDID-SHARED")
}

func testTokenUpdateUnbound(t *testing.T, s Stores) {
	d, serial := enroll(t, s)
	authenticate(t, s, d, serial, "UDID-1")
	_, err := s.TokenUpdate(context.Background(), "UDID-1", "ffff", "topic", "", false, t0)
	storetest.WantErr(t, "TokenUpdate with another serial", err, errs.ErrNotFound)
	_, err = s.TokenUpdate(context.Background(), "UDID-2", serial, "topic", "", false, t0)
	storetest.WantErr(t, "TokenUpdate of another UDID", err, errs.ErrNotFound)
}

func testTokenUpdate(t *testing.T, s Stores) {
	ctx := context.Background()
	d, serial := enroll(t, s)
	authenticate(t, s, d, serial, "UDID-1")
	for i, want := range []bool{true, false, false} {
		first, err := s.TokenUpdate(ctx, "UDID-1", serial, "topic", map[bool]string{true: "sealed-unlock"}[i == 0], i == 2, t0.Add(time.Duration(i)*time.Second))
		storetest.WantErr(t, "TokenUpdate", err, nil)
		if first != want {
			t.Fatalf("TokenUpdate %d: first = %v, want %v", i, first, want)
		}
	}
	e, _ := s.EnrollmentOf(ctx, d.ID)
	if !e.Enrolled() || e.UnlockToken != "sealed-unlock" || !e.AwaitingConfiguration || !e.TokenUpdatedAt.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("after token updates: %+v", e)
	}
	storetest.WantErr(t, "SetAwaitingConfiguration", s.SetAwaitingConfiguration(ctx, "UDID-1", false), nil)
	// A new Authenticate starts the enrollment afresh.
	authenticate(t, s, d, serial, "UDID-1")
	e, _ = s.EnrollmentOf(ctx, d.ID)
	if e.Enrolled() || e.UnlockToken != "" {
		t.Fatalf("after a new Authenticate: %+v", e)
	}
	first, _ := s.TokenUpdate(ctx, "UDID-1", serial, "topic", "", false, t0)
	if !first {
		t.Fatal("the first TokenUpdate after a new Authenticate is not first")
	}
}

func testCheckOut(t *testing.T, s Stores) {
	ctx := context.Background()
	d, serial := enroll(t, s)
	authenticate(t, s, d, serial, "UDID-1")
	s.TokenUpdate(ctx, "UDID-1", serial, "topic", "", false, t0)
	storetest.WantErr(t, "SetBootstrapToken", s.SetBootstrapToken(ctx, "UDID-1", serial, "sealed-bootstrap"), nil)
	storetest.WantErr(t, "SetBootstrapToken of another serial", s.SetBootstrapToken(ctx, "UDID-1", "ffff", "x"), errs.ErrNotFound)
	storetest.WantErr(t, "CheckOut of another serial", s.CheckOut(ctx, "UDID-1", "ffff", t0), errs.ErrNotFound)
	storetest.WantErr(t, "CheckOut", s.CheckOut(ctx, "UDID-1", serial, t0.Add(time.Minute)), nil)
	e, _ := s.EnrollmentOf(ctx, d.ID)
	if e.Enrolled() || e.CheckedOutAt == nil || !e.CheckedOutAt.Equal(t0.Add(time.Minute)) || e.BootstrapToken != "sealed-bootstrap" {
		t.Fatalf("after check-out: %+v", e)
	}
}

func testRevoked(t *testing.T, s Stores) {
	ctx := context.Background()
	d, serial := enroll(t, s)
	authenticate(t, s, d, serial, "UDID-1")
	storetest.WantErr(t, "RemoveDevice", s.RemoveDevice(ctx, d.ID, t0), nil)
	got, err := s.Identity(ctx, serial)
	storetest.WantErr(t, "Identity", err, nil)
	if !got.Revoked || got.DeviceState != string(device.StateRemoved) {
		t.Fatalf("Identity after removal = %+v, want revoked and removed", got)
	}
}

func testProfiles(t *testing.T, s Stores) {
	ctx := context.Background()
	d, _ := enroll(t, s)
	pcs := []apple.ProfileCommand{
		{CommandID: id.New(), DeviceID: d.ID, ItemID: "p1", Revision: 1, Version: "v1", Status: "pending", CreatedAt: t0},
		{CommandID: id.New(), DeviceID: d.ID, ItemID: "p2", Revision: 3, Version: "v1", Status: "pending", CreatedAt: t0},
	}
	storetest.WantErr(t, "AddProfileCommands", s.AddProfileCommands(ctx, pcs), nil)
	got, err := s.ProfileCommand(ctx, pcs[1].CommandID)
	storetest.WantErr(t, "ProfileCommand", err, nil)
	storetest.WantEqual(t, "ProfileCommand", got, &pcs[1])
	_, err = s.ProfileCommand(ctx, "nope")
	storetest.WantErr(t, "ProfileCommand unknown", err, errs.ErrNotFound)
	n, err := s.SetProfileStatus(ctx, pcs[0].CommandID, "applied")
	storetest.WantErr(t, "SetProfileStatus", err, nil)
	if n != 1 {
		t.Fatalf("pending after one answer = %d, want 1", n)
	}
	n, _ = s.SetProfileStatus(ctx, pcs[1].CommandID, "failed")
	if n != 0 {
		t.Fatalf("pending after both answers = %d, want 0", n)
	}
	_, err = s.SetProfileStatus(ctx, "nope", "applied")
	if !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("SetProfileStatus unknown = %v, want not found", err)
	}
	ids, err := s.InstalledProfiles(ctx, d.ID)
	storetest.WantErr(t, "InstalledProfiles", err, nil)
	storetest.WantEqual(t, "InstalledProfiles", ids, []string{"p1"})
	rm := apple.ProfileCommand{CommandID: id.New(), DeviceID: d.ID, ItemID: "p1", Revision: 1, Version: "v2", Remove: true, Status: "pending", CreatedAt: t0}
	s.AddProfileCommands(ctx, []apple.ProfileCommand{rm})
	s.SetProfileStatus(ctx, rm.CommandID, "applied")
	ids, _ = s.InstalledProfiles(ctx, d.ID)
	if len(ids) != 0 {
		t.Fatalf("InstalledProfiles after removal = %v, want none", ids)
	}
}

func queue(t *testing.T, s Stores, deviceID string, n int) []*command.Command {
	t.Helper()
	cs := make([]*command.Command, n)
	for i := range cs {
		cs[i] = &command.Command{ID: id.New(), DeviceID: deviceID, Type: command.Lock, Priority: command.PriorityAdmin,
			Status: command.StatusPending, CreatedBy: "test", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	}
	if _, err := s.Enqueue(context.Background(), cs); err != nil {
		t.Fatal(err)
	}
	return cs
}

func testRoundTripUnknown(t *testing.T, s Stores) {
	ctx := context.Background()
	d, _ := enroll(t, s)
	cs := queue(t, s, d.ID, 1)
	_, _, next, err := s.CompleteAndNext(ctx, d.ID, command.Result{CommandID: cs[0].ID, Status: command.StatusAcknowledged}, t0)
	storetest.WantErr(t, "CompleteAndNext of a command never delivered", err, command.ErrUnknownCommand)
	if next != nil {
		t.Fatalf("delivered %+v after a refused result", next)
	}
	c, _ := s.Command(ctx, cs[0].ID)
	if c.Status != command.StatusPending || c.Deliveries != 0 {
		t.Fatalf("command after a refused result: %+v", c)
	}
}

func testRoundTrip(t *testing.T, s Stores) {
	ctx := context.Background()
	d, _ := enroll(t, s)
	cs := queue(t, s, d.ID, 2)
	first, err := s.Next(ctx, d.ID, t0)
	storetest.WantErr(t, "Next", err, nil)
	done, dup, next, err := s.CompleteAndNext(ctx, d.ID, command.Result{CommandID: first.ID, Status: command.StatusNotNow}, t0)
	storetest.WantErr(t, "CompleteAndNext", err, nil)
	if dup || done.Status != command.StatusNotNow || next == nil || next.ID != cs[1].ID || next.Status != command.StatusSent {
		t.Fatalf("after NotNow: done %+v dup %v next %+v", done, dup, next)
	}
	done, dup, next, err = s.CompleteAndNext(ctx, d.ID, command.Result{CommandID: next.ID, Status: command.StatusAcknowledged}, t0)
	storetest.WantErr(t, "CompleteAndNext", err, nil)
	if dup || done.Status != command.StatusAcknowledged || next != nil {
		t.Fatalf("after the last: done %+v dup %v next %+v (the not-now one waits NotNowDelay)", done, dup, next)
	}
	_, dup, _, err = s.CompleteAndNext(ctx, d.ID, command.Result{CommandID: cs[1].ID, Status: command.StatusError}, t0)
	storetest.WantErr(t, "CompleteAndNext repeated", err, nil)
	if !dup {
		t.Fatal("a repeated result is not a duplicate")
	}
	if c, _ := s.Command(ctx, cs[1].ID); c.Status != command.StatusAcknowledged {
		t.Fatalf("a duplicate changed the command: %+v", c)
	}
}
