// Package commandtest is the conformance suite of command.Store, run by
// every implementation against each of its backends. Each delivery
// guarantee of package command is one named case here.
package commandtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/custos-uem/custos/activation/activationtest"
	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/id"
	"github.com/custos-uem/custos/storetest"
	"github.com/custos-uem/custos/user/usertest"
)

// Fixture is what the suite tests, with the stores it needs to put devices
// into the states that matter to the queue: enrolled and active devices
// take commands, removed (and unknown, and still activating) ones do not.
type Fixture interface {
	command.Store
	activationtest.Enroller
	device.Store
	device.Remover
}

// Run runs the suite; open must return an empty fixture of its own for
// each call (the subtests run in parallel).
func Run(t *testing.T, open func(*testing.T) Fixture) {
	storetest.Run(t, open, []storetest.Case[Fixture]{
		{Name: "CommandUnknownIsNotFound", Fn: testCommandUnknown},
		{Name: "EnqueueThenCommandReturnsIt", Fn: testEnqueue},
		{Name: "EnqueueWithUnknownOrRemovedDeviceStoresNothing", Fn: testEnqueueRefused},
		{Name: "EnqueueSyncConfigOncePerDeviceWhilePending", Fn: testEnqueueSyncConfig},
		{Name: "NextDeliversPriorityThenAge", Fn: testNextOrder},
		{Name: "NextHandsOutOneCommandPerCall", Fn: testNextOne},
		{Name: "NextIdleWhenNothingIsDue", Fn: testNextIdle},
		{Name: "DueChangesNothing", Fn: testDueReadOnly},
		{Name: "NextRedeliversSentCommandWithoutResult", Fn: testNextRedelivers},
		{Name: "NotNowHeldBackForNotNowDelayThenResent", Fn: testNotNow},
		{Name: "CompleteStoresResult", Fn: testComplete},
		{Name: "CompleteForCommandOfAnotherDeviceIsUnknown", Fn: testCompleteOtherDevice},
		{Name: "CompleteForNeverDeliveredCommandIsUnknown", Fn: testCompleteUndelivered},
		{Name: "CompleteTwiceIsDuplicateAndChangesNothing", Fn: testCompleteTwice},
		{Name: "CancelledCommandIsNeverDelivered", Fn: testCancelled},
		{Name: "CancelOfFinalOrUnknownCommandFails", Fn: testCancelRefused},
		{Name: "ExpiredCommandIsNeverDeliveredAndSwept", Fn: testExpired},
		{Name: "PruneDeletesOnlyFinalCommandsCreatedBefore", Fn: testPrune},
		{Name: "ListCommandsFiltersOpenFinalAndPages", Fn: testList},
		{Name: "ListCommandsCapsLimitAtMaxPage", Fn: testListCap},
		{Name: "ConcurrentNextRecordsEveryDelivery", Fn: testNextConcurrent},
		{Name: "HostileStringsRoundTrip", Fn: testHostileStrings},
	})
}

// T0 is the suite's clock (whole microseconds, UTC, as stores keep time).
var T0 = activationtest.T0

// EnrolledDevice creates a user and enrolls a new device for them.
func EnrolledDevice(t testing.TB, f Fixture) *device.Device {
	t.Helper()
	u := usertest.CreateUser(t, f, "owner")
	d, _ := activationtest.Enroll(t, f, u.ID, "hw-"+id.New(), T0)
	return d
}

// ActiveDevice creates a device that has acknowledged its configuration.
func ActiveDevice(t testing.TB, f Fixture) *device.Device {
	t.Helper()
	d := EnrolledDevice(t, f)
	if err := f.Acknowledge(context.Background(), d.ID, "v1", T0); err != nil {
		t.Fatalf("Acknowledge: %v", err)
	}
	d.State, d.ConfigVersion, d.ActivatedAt, d.LastSeenAt = device.StateActive, "v1", &T0, &T0
	return d
}

// RemovedDevice creates a device and removes it.
func RemovedDevice(t testing.TB, f Fixture) *device.Device {
	t.Helper()
	d := EnrolledDevice(t, f)
	if err := f.RemoveDevice(context.Background(), d.ID, T0); err != nil {
		t.Fatalf("RemoveDevice: %v", err)
	}
	d.State, d.RemovedAt = device.StateRemoved, &T0
	return d
}

// New returns a pending command for the device created at now with the
// default lifetime, not stored.
func New(deviceID string, typ command.Type, priority int, now time.Time) *command.Command {
	return &command.Command{ID: id.New(), DeviceID: deviceID, Type: typ, Priority: priority,
		Status: command.StatusPending, CreatedBy: "admin-1", CreatedAt: now, ExpiresAt: now.Add(command.DefaultTTL)}
}

// Enqueue stores the commands and fails unless every one was stored.
func Enqueue(t testing.TB, s command.Store, cmds ...*command.Command) {
	t.Helper()
	n, err := s.Enqueue(context.Background(), cmds)
	if err != nil || n != len(cmds) {
		t.Fatalf("Enqueue(%d commands) = %d, %v", len(cmds), n, err)
	}
}

func wantCommand(t testing.TB, s command.Store, want *command.Command) {
	t.Helper()
	got, err := s.Command(context.Background(), want.ID)
	storetest.WantErr(t, "Command", err, nil)
	storetest.WantEqual(t, "Command", got, want)
}

// next checks that Due at now is true, then calls Next at now and checks
// that it delivered want, recording the delivery in want.
func next(t testing.TB, s command.Store, want *command.Command, now time.Time) {
	t.Helper()
	wantDue(t, s, want.DeviceID, now, true)
	got, err := s.Next(context.Background(), want.DeviceID, now)
	storetest.WantErr(t, "Next", err, nil)
	delivered(want, now)
	storetest.WantEqual(t, "Next", got, want)
}

// delivered records a delivery at now in c, as Next does.
func delivered(c *command.Command, now time.Time) {
	c.Status, c.Deliveries, c.SentAt, c.NotBefore = command.StatusSent, c.Deliveries+1, &now, nil
}

// wantDue checks Due (Next's answer without a delivery).
func wantDue(t testing.TB, s command.Store, deviceID string, now time.Time, want bool) {
	t.Helper()
	due, err := s.Due(context.Background(), deviceID, now)
	storetest.WantErr(t, "Due", err, nil)
	if due != want {
		t.Fatalf("Due = %v, want %v", due, want)
	}
}

// wantIdle checks that Due at now is false and that Next is ErrIdle.
func wantIdle(t testing.TB, s command.Store, deviceID string, now time.Time) {
	t.Helper()
	wantDue(t, s, deviceID, now, false)
	c, err := s.Next(context.Background(), deviceID, now)
	if err == nil {
		t.Fatalf("Next = %+v, want ErrIdle", c)
	}
	storetest.WantErr(t, "Next", err, command.ErrIdle)
}

// complete reports r for the command and checks the outcome.
func complete(t testing.TB, s command.Store, deviceID string, r command.Result, now time.Time, want *command.Command, duplicate bool) {
	t.Helper()
	got, dup, err := s.Complete(context.Background(), deviceID, r, now)
	storetest.WantErr(t, "Complete", err, nil)
	if dup != duplicate {
		t.Fatalf("Complete duplicate = %v, want %v", dup, duplicate)
	}
	storetest.WantEqual(t, "Complete", got, want)
}

func ids(cs []*command.Command) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

func testCommandUnknown(t *testing.T, f Fixture) {
	_, err := f.Command(context.Background(), id.New())
	storetest.WantErr(t, "Command(unknown)", err, command.ErrNotFound)
}

func testEnqueue(t *testing.T, f Fixture) {
	d := EnrolledDevice(t, f)
	a := New(d.ID, command.Lock, command.PriorityAdmin, T0)
	b := New(d.ID, command.InstallApp, command.PriorityConfig, T0)
	b.Payload = json.RawMessage(`{"app_id":"org.example.mail","url":"https://apps.example.com/mail.apk"}`)
	b.CreatedBy, b.ExpiresAt = "system", T0.Add(time.Hour)
	Enqueue(t, f, a, b)
	wantCommand(t, f, a)
	wantCommand(t, f, b)
	n, err := f.Enqueue(context.Background(), nil)
	if n != 0 || err != nil {
		t.Fatalf("Enqueue(nothing) = %d, %v", n, err)
	}
}

func testEnqueueRefused(t *testing.T, f Fixture) {
	ctx := context.Background()
	enrolled, active := EnrolledDevice(t, f), ActiveDevice(t, f)
	removed := RemovedDevice(t, f)
	u := usertest.CreateUser(t, f, "activating")
	_, activating := activationtest.Start(t, f, u.ID, "hw-activating", T0)
	tests := []struct {
		name   string
		device string
		want   error
	}{
		{"fail/unknown device", id.New(), errs.ErrNotFound},
		{"fail/removed device", removed.ID, errs.ErrNotFound},
		{"fail/activating device", activating.ID, errs.ErrNotFound},
		{"ok/enrolled and active devices", active.ID, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The bad device comes last, after commands for good ones:
			// the whole call fails, and none of them is stored.
			cmds := []*command.Command{New(enrolled.ID, command.Lock, 80, T0), New(active.ID, command.Lock, 80, T0),
				New(tc.device, command.Lock, 80, T0)}
			n, err := f.Enqueue(ctx, cmds)
			storetest.WantErr(t, "Enqueue", err, tc.want)
			for _, c := range cmds {
				_, err := f.Command(ctx, c.ID)
				if tc.want == nil {
					storetest.WantErr(t, "Command", err, nil)
				} else {
					storetest.WantErr(t, "Command after the failed Enqueue", err, command.ErrNotFound)
				}
			}
			if tc.want == nil && n != len(cmds) {
				t.Fatalf("Enqueue = %d, want %d", n, len(cmds))
			}
		})
	}
}

func testEnqueueSyncConfig(t *testing.T, f Fixture) {
	ctx := context.Background()
	a, b := EnrolledDevice(t, f), EnrolledDevice(t, f)
	first := New(a.ID, command.SyncConfig, command.PriorityConfig, T0)
	Enqueue(t, f, first)

	// a has one pending: a second is not stored; b gets its first; other
	// types are never deduplicated.
	again, forB, lock := New(a.ID, command.SyncConfig, 40, T0), New(b.ID, command.SyncConfig, 40, T0), New(a.ID, command.Lock, 80, T0)
	againID := again.ID
	n, err := f.Enqueue(ctx, []*command.Command{again, forB, lock})
	if err != nil || n != 2 {
		t.Fatalf("Enqueue = %d, %v; want 2 stored", n, err)
	}
	if again.ID != "" || forB.ID == "" || lock.ID == "" {
		t.Fatalf("IDs after Enqueue: skipped %q, stored %q and %q; want only the skipped one cleared", again.ID, forB.ID, lock.ID)
	}
	_, err = f.Command(ctx, againID)
	storetest.WantErr(t, "Command(skipped)", err, command.ErrNotFound)
	wantCommand(t, f, forB)

	// Once delivered, the pending one may have fetched the configuration
	// before the change: a new one is queued behind it.
	next(t, f, lock, T0)
	complete(t, f, a.ID, command.Result{CommandID: lock.ID, Status: command.StatusAcknowledged}, T0, acked(lock, T0), false)
	next(t, f, first, T0)
	later := New(a.ID, command.SyncConfig, 40, T0)
	Enqueue(t, f, later)
	wantCommand(t, f, later)
	open, err := f.ListCommands(ctx, command.Query{DeviceID: a.ID, Open: true})
	storetest.WantErr(t, "ListCommands", err, nil)
	storetest.WantEqual(t, "open commands", ids(open), []string{first.ID, later.ID})
}

func testNextOrder(t *testing.T, f Fixture) {
	d := EnrolledDevice(t, f)
	// Queued in this order; delivered by priority, then by age (ID).
	info := New(d.ID, command.DeviceInfo, command.PriorityInfo, T0)
	cfg1 := New(d.ID, command.SyncConfig, command.PriorityConfig, T0)
	lock := New(d.ID, command.Lock, command.PriorityAdmin, T0)
	cfg2 := New(d.ID, command.InstallApp, command.PriorityConfig, T0)
	wipe := New(d.ID, command.WipeDevice, command.PriorityWipe, T0)
	Enqueue(t, f, info, cfg1, lock, cfg2, wipe)
	for _, want := range []*command.Command{wipe, lock, cfg1, cfg2, info} {
		next(t, f, want, T0)
		complete(t, f, d.ID, command.Result{CommandID: want.ID, Status: command.StatusAcknowledged}, T0,
			acked(want, T0), false)
	}
	wantIdle(t, f, d.ID, T0)
}

// acked returns c as it is stored after an acknowledgement at now.
func acked(c *command.Command, now time.Time) *command.Command {
	c.Status, c.CompletedAt = command.StatusAcknowledged, &now
	return c
}

func testNextOne(t *testing.T, f Fixture) {
	ctx := context.Background()
	d := EnrolledDevice(t, f)
	a, b := New(d.ID, command.Lock, 80, T0), New(d.ID, command.Restart, 80, T0)
	Enqueue(t, f, a, b)
	now := T0.Add(time.Second)
	next(t, f, a, now)
	// Only the delivered command changed.
	wantCommand(t, f, a)
	wantCommand(t, f, b)
	complete(t, f, d.ID, command.Result{CommandID: a.ID, Status: command.StatusAcknowledged}, now, acked(a, now), false)
	next(t, f, b, now)
	open, err := f.ListCommands(ctx, command.Query{DeviceID: d.ID, Open: true})
	storetest.WantErr(t, "ListCommands", err, nil)
	storetest.WantEqual(t, "open commands", ids(open), []string{b.ID})
}

func testNextIdle(t *testing.T, f Fixture) {
	d, other := EnrolledDevice(t, f), EnrolledDevice(t, f)
	wantIdle(t, f, d.ID, T0)
	wantIdle(t, f, id.New(), T0)
	// Another device's command is not d's; a final one is nobody's.
	Enqueue(t, f, New(other.ID, command.Lock, 80, T0))
	done := New(d.ID, command.Lock, 80, T0)
	Enqueue(t, f, done)
	next(t, f, done, T0)
	r := command.Result{CommandID: done.ID, Status: command.StatusError, Message: "no"}
	done.Status, done.Message, done.CompletedAt = command.StatusError, "no", &T0
	complete(t, f, d.ID, r, T0, done, false)
	wantIdle(t, f, d.ID, T0)
}

// testDueReadOnly: Due records no delivery, however often it is asked.
// (Every case that calls next or wantIdle also checks that Due agrees
// with Next.)
func testDueReadOnly(t *testing.T, f Fixture) {
	d := EnrolledDevice(t, f)
	c := New(d.ID, command.Lock, 80, T0)
	Enqueue(t, f, c)
	for range 3 {
		wantDue(t, f, d.ID, T0, true)
	}
	wantCommand(t, f, c)
}

func testNextRedelivers(t *testing.T, f Fixture) {
	d := EnrolledDevice(t, f)
	c := New(d.ID, command.Lock, 80, T0)
	low := New(d.ID, command.DeviceInfo, 20, T0)
	Enqueue(t, f, c, low)
	next(t, f, c, T0)
	// The answer was lost: the device asks again without a result and gets
	// the same command, counted as a second delivery.
	later := T0.Add(time.Minute)
	next(t, f, c, later)
	if c.Deliveries != 2 {
		t.Fatalf("Deliveries = %d, want 2", c.Deliveries)
	}
	wantCommand(t, f, c)
}

func testNotNow(t *testing.T, f Fixture) {
	d := EnrolledDevice(t, f)
	c := New(d.ID, command.InstallApp, 40, T0)
	low := New(d.ID, command.DeviceInfo, 20, T0)
	Enqueue(t, f, c, low)
	next(t, f, c, T0)
	at := T0.Add(time.Second)
	hold := at.Add(command.NotNowDelay)
	c.Status, c.Message, c.NotBefore = command.StatusNotNow, "device locked", &hold
	complete(t, f, d.ID, command.Result{CommandID: c.ID, Status: command.StatusNotNow, Message: "device locked"}, at, c, false)
	// Not in the same round trip, nor before NotNowDelay: the lower
	// priority command goes first, then the queue is idle.
	next(t, f, low, at)
	complete(t, f, d.ID, command.Result{CommandID: low.ID, Status: command.StatusAcknowledged}, at, acked(low, at), false)
	wantIdle(t, f, d.ID, hold.Add(-time.Microsecond))
	next(t, f, c, hold)
	if c.Deliveries != 2 {
		t.Fatalf("Deliveries = %d, want 2", c.Deliveries)
	}
	wantCommand(t, f, c)
}

func testComplete(t *testing.T, f Fixture) {
	d := EnrolledDevice(t, f)
	info := New(d.ID, command.DeviceInfo, 20, T0)
	wipe := New(d.ID, command.WipeWork, 90, T0)
	Enqueue(t, f, info, wipe)
	now := T0.Add(time.Minute)
	tests := []struct {
		name string
		c    *command.Command
		r    command.Result
	}{
		{"ok/error with message", wipe, command.Result{CommandID: wipe.ID, Status: command.StatusError, Message: "work profile missing"}},
		{"ok/acknowledged with data", info, command.Result{CommandID: info.ID, Status: command.StatusAcknowledged,
			Data: json.RawMessage(`{"model":"Pixel 9","os_version":"15"}`)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			next(t, f, tc.c, now)
			tc.c.Status, tc.c.Message, tc.c.Result, tc.c.CompletedAt = tc.r.Status, tc.r.Message, tc.r.Data, &now
			complete(t, f, d.ID, tc.r, now, tc.c, false)
			wantCommand(t, f, tc.c)
		})
	}
}

func testCompleteOtherDevice(t *testing.T, f Fixture) {
	d, other := EnrolledDevice(t, f), EnrolledDevice(t, f)
	c := New(d.ID, command.WipeDevice, 90, T0)
	Enqueue(t, f, c)
	next(t, f, c, T0)
	// other reports on d's delivered command: refused, d's command keeps
	// waiting for d.
	for _, status := range []command.Status{command.StatusAcknowledged, command.StatusError, command.StatusNotNow} {
		_, _, err := f.Complete(context.Background(), other.ID, command.Result{CommandID: c.ID, Status: status}, T0)
		storetest.WantErr(t, "Complete by another device", err, command.ErrUnknownCommand)
	}
	wantCommand(t, f, c)
}

func testCompleteUndelivered(t *testing.T, f Fixture) {
	d := EnrolledDevice(t, f)
	c := New(d.ID, command.Lock, 80, T0)
	Enqueue(t, f, c)
	tests := []struct {
		name string
		r    command.Result
	}{
		{"fail/pending command acknowledged", command.Result{CommandID: c.ID, Status: command.StatusAcknowledged}},
		{"fail/pending command not now", command.Result{CommandID: c.ID, Status: command.StatusNotNow}},
		{"fail/unknown command", command.Result{CommandID: id.New(), Status: command.StatusAcknowledged}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := f.Complete(context.Background(), d.ID, tc.r, T0)
			storetest.WantErr(t, "Complete", err, command.ErrUnknownCommand)
			wantCommand(t, f, c)
		})
	}
}

func testCompleteTwice(t *testing.T, f Fixture) {
	d := EnrolledDevice(t, f)
	now := T0.Add(time.Minute)
	later := now.Add(time.Hour)
	tests := []struct {
		name         string
		first, again command.Status
	}{
		{"ok/acknowledged twice", command.StatusAcknowledged, command.StatusAcknowledged},
		{"ok/error then acknowledged", command.StatusError, command.StatusAcknowledged},
		{"ok/acknowledged then not now", command.StatusAcknowledged, command.StatusNotNow},
		{"ok/not now twice", command.StatusNotNow, command.StatusNotNow},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := New(d.ID, command.Lock, 80, T0)
			Enqueue(t, f, c)
			next(t, f, c, now)
			first, _, err := f.Complete(context.Background(), d.ID, command.Result{CommandID: c.ID, Status: tc.first,
				Message: "first", Data: json.RawMessage(`{"n":1}`)}, now)
			storetest.WantErr(t, "first Complete", err, nil)
			// The repeat is a duplicate: it returns the stored command,
			// and the first result stays.
			complete(t, f, d.ID, command.Result{CommandID: c.ID, Status: tc.again, Message: "again", Data: json.RawMessage(`{"n":2}`)},
				later, first, true)
			wantCommand(t, f, first)
			// Complete the not-now one, so the next case's command is first in line.
			if tc.first == command.StatusNotNow {
				_, err := f.Cancel(context.Background(), c.ID, now)
				storetest.WantErr(t, "Cancel", err, nil)
			}
		})
	}
}

func testCancelled(t *testing.T, f Fixture) {
	ctx := context.Background()
	d := EnrolledDevice(t, f)
	pending, sent := New(d.ID, command.WipeDevice, 90, T0), New(d.ID, command.Lock, 80, T0)
	Enqueue(t, f, pending, sent)
	// Deliver sent first: cancel pending (the higher priority) after that.
	got, err := f.Cancel(ctx, pending.ID, T0)
	storetest.WantErr(t, "Cancel(pending)", err, nil)
	pending.Status, pending.CompletedAt = command.StatusCancelled, &T0
	storetest.WantEqual(t, "Cancel", got, pending)
	next(t, f, sent, T0)
	now := T0.Add(time.Second)
	got, err = f.Cancel(ctx, sent.ID, now)
	storetest.WantErr(t, "Cancel(sent)", err, nil)
	sent.Status, sent.CompletedAt = command.StatusCancelled, &now
	storetest.WantEqual(t, "Cancel", got, sent)
	// Neither is delivered again, and the late result of the delivered
	// one leaves it cancelled.
	wantIdle(t, f, d.ID, now.Add(time.Hour))
	complete(t, f, d.ID, command.Result{CommandID: sent.ID, Status: command.StatusAcknowledged}, now, sent, true)
	wantCommand(t, f, pending)
	wantCommand(t, f, sent)
}

func testCancelRefused(t *testing.T, f Fixture) {
	ctx := context.Background()
	d := EnrolledDevice(t, f)
	done := New(d.ID, command.Lock, 80, T0)
	Enqueue(t, f, done)
	next(t, f, done, T0)
	complete(t, f, d.ID, command.Result{CommandID: done.ID, Status: command.StatusAcknowledged}, T0, acked(done, T0), false)
	cancelled := New(d.ID, command.Lock, 80, T0)
	Enqueue(t, f, cancelled)
	if _, err := f.Cancel(ctx, cancelled.ID, T0); err != nil {
		t.Fatal(err)
	}
	cancelled.Status, cancelled.CompletedAt = command.StatusCancelled, &T0
	tests := []struct {
		name string
		id   string
		want error
	}{
		{"fail/unknown", id.New(), command.ErrNotFound},
		{"fail/acknowledged", done.ID, command.ErrFinal},
		{"fail/cancelled", cancelled.ID, command.ErrFinal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.Cancel(ctx, tc.id, T0.Add(time.Hour))
			storetest.WantErr(t, "Cancel", err, tc.want)
		})
	}
	wantCommand(t, f, done)
	wantCommand(t, f, cancelled)
}

func testExpired(t *testing.T, f Fixture) {
	ctx := context.Background()
	d := EnrolledDevice(t, f)
	end := T0.Add(time.Hour)
	short := func(typ command.Type, prio int) *command.Command {
		c := New(d.ID, typ, prio, T0)
		c.ExpiresAt = end
		return c
	}
	sent, a, b := short(command.Lock, 90), short(command.Restart, 80), short(command.DeviceInfo, 70)
	long := New(d.ID, command.InstalledApps, 20, T0)
	Enqueue(t, f, sent, a, b, long)
	next(t, f, sent, end.Add(-time.Microsecond))
	// At ExpiresAt none of the three is delivered any more, swept or not:
	// Next skips to the long-lived one.
	next(t, f, long, end)
	complete(t, f, d.ID, command.Result{CommandID: long.ID, Status: command.StatusAcknowledged}, end, acked(long, end), false)
	wantIdle(t, f, d.ID, end)

	// The sweep honours its limit and touches only open, expired commands.
	sweep := end.Add(time.Minute)
	for _, want := range []int{2, 1, 0} {
		n, err := f.ExpireCommands(ctx, sweep, 2)
		if err != nil || n != want {
			t.Fatalf("ExpireCommands = %d, %v; want %d", n, err, want)
		}
	}
	for _, c := range []*command.Command{sent, a, b} {
		c.Status, c.CompletedAt = command.StatusExpired, &sweep
		wantCommand(t, f, c)
	}
	wantCommand(t, f, long)
	// A late result for the expired delivered command changes nothing.
	complete(t, f, d.ID, command.Result{CommandID: sent.ID, Status: command.StatusAcknowledged}, sweep, sent, true)
}

func testPrune(t *testing.T, f Fixture) {
	ctx := context.Background()
	d := EnrolledDevice(t, f)
	// Old commands (created at T0) in every state, delivered in priority
	// order; the expired one is never delivered.
	acked, failed, notNow, sent := New(d.ID, command.Lock, 90, T0), New(d.ID, command.Restart, 80, T0),
		New(d.ID, command.DeviceInfo, 70, T0), New(d.ID, command.InstalledApps, 60, T0)
	pending, cancelled, expired := New(d.ID, command.Lock, 10, T0), New(d.ID, command.Lock, 10, T0), New(d.ID, command.Lock, 5, T0)
	expired.ExpiresAt = T0.Add(30 * time.Minute)
	Enqueue(t, f, acked, failed, notNow, sent, pending, cancelled, expired)
	for _, step := range []struct {
		c   *command.Command
		res command.Status // "" leaves it sent
	}{{acked, command.StatusAcknowledged}, {failed, command.StatusError}, {notNow, command.StatusNotNow}, {sent, ""}} {
		got, err := f.Next(ctx, d.ID, T0)
		if err != nil || got.ID != step.c.ID {
			t.Fatalf("Next = %v, %v; want %s", got, err, step.c.ID)
		}
		if step.res != "" {
			if _, _, err := f.Complete(ctx, d.ID, command.Result{CommandID: step.c.ID, Status: step.res}, T0); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := f.Cancel(ctx, cancelled.ID, T0); err != nil {
		t.Fatal(err)
	}
	if n, err := f.ExpireCommands(ctx, T0.Add(time.Hour), 10); err != nil || n != 1 {
		t.Fatalf("ExpireCommands = %d, %v; want 1", n, err)
	}
	// A recent final command.
	later := T0.Add(2 * time.Hour)
	recent := New(d.ID, command.Lock, 95, later)
	Enqueue(t, f, recent)
	next(t, f, recent, later)
	if _, _, err := f.Complete(ctx, d.ID, command.Result{CommandID: recent.ID, Status: command.StatusAcknowledged}, later); err != nil {
		t.Fatal(err)
	}

	// The prune honours its limit and deletes the four old final ones.
	for _, want := range []int{3, 1, 0} {
		n, err := f.PruneCommands(ctx, T0.Add(time.Hour), 3)
		if err != nil || n != want {
			t.Fatalf("PruneCommands = %d, %v; want %d", n, err, want)
		}
	}
	for _, c := range []*command.Command{acked, failed, cancelled, expired} {
		if _, err := f.Command(ctx, c.ID); !errors.Is(err, command.ErrNotFound) {
			t.Fatalf("pruned %s command: %v, want ErrNotFound", c.Type, err)
		}
	}
	for c, want := range map[*command.Command]command.Status{notNow: command.StatusNotNow, sent: command.StatusSent,
		pending: command.StatusPending, recent: command.StatusAcknowledged} {
		got, err := f.Command(ctx, c.ID)
		if err != nil || got.Status != want {
			t.Fatalf("kept command %s: %+v, %v; want it %s", c.ID, got, err, want)
		}
	}
	if n, err := f.PruneCommands(ctx, later.Add(time.Hour), 0); err != nil || n != 0 {
		t.Fatalf("PruneCommands with limit 0 = %d, %v; want 0, nothing deleted", n, err)
	}
}

func testList(t *testing.T, f Fixture) {
	ctx := context.Background()
	a, b := EnrolledDevice(t, f), EnrolledDevice(t, f)
	pending, acked, cancelled, sent := New(a.ID, command.Lock, 10, T0), New(a.ID, command.Lock, 90, T0),
		New(a.ID, command.Restart, 20, T0), New(a.ID, command.DeviceInfo, 80, T0)
	other := New(b.ID, command.Lock, 80, T0)
	Enqueue(t, f, pending, acked, cancelled, sent, other)
	if _, err := f.Next(ctx, a.ID, T0); err != nil { // acked
		t.Fatal(err)
	}
	if _, _, err := f.Complete(ctx, a.ID, command.Result{CommandID: acked.ID, Status: command.StatusAcknowledged}, T0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Cancel(ctx, cancelled.ID, T0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Next(ctx, a.ID, T0); err != nil { // sent
		t.Fatal(err)
	}
	tests := []struct {
		name string
		q    command.Query
		want []string
	}{
		{"ok/no filter", command.Query{}, ids([]*command.Command{pending, acked, cancelled, sent, other})},
		{"ok/device", command.Query{DeviceID: a.ID}, ids([]*command.Command{pending, acked, cancelled, sent})},
		{"ok/open", command.Query{Open: true}, ids([]*command.Command{pending, sent, other})},
		{"ok/final", command.Query{Final: true}, ids([]*command.Command{acked, cancelled})},
		{"ok/open and final", command.Query{Open: true, Final: true}, ids([]*command.Command{pending, acked, cancelled, sent, other})},
		{"ok/device open", command.Query{DeviceID: a.ID, Open: true}, ids([]*command.Command{pending, sent})},
		{"ok/device final", command.Query{DeviceID: b.ID, Final: true}, []string{}},
		{"ok/after", command.Query{After: acked.ID}, ids([]*command.Command{cancelled, sent, other})},
		{"ok/limit", command.Query{Limit: 2}, ids([]*command.Command{pending, acked})},
		{"ok/open pages", command.Query{Open: true, After: pending.ID, Limit: 1}, ids([]*command.Command{sent})},
		{"ok/final pages", command.Query{Final: true, After: acked.ID, Limit: 1}, ids([]*command.Command{cancelled})},
		{"ok/nothing matches", command.Query{DeviceID: id.New()}, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := f.ListCommands(ctx, tc.q)
			storetest.WantErr(t, "ListCommands", err, nil)
			storetest.WantEqual(t, fmt.Sprintf("ListCommands(%+v)", tc.q), ids(got), tc.want)
		})
	}
}

func testListCap(t *testing.T, f Fixture) {
	d := EnrolledDevice(t, f)
	cmds := make([]*command.Command, command.MaxPage+1)
	for i := range cmds {
		cmds[i] = New(d.ID, command.DeviceInfo, 20, T0)
	}
	Enqueue(t, f, cmds...)
	got, err := f.ListCommands(context.Background(), command.Query{Limit: command.MaxPage + 1})
	storetest.WantErr(t, "ListCommands", err, nil)
	if len(got) != command.MaxPage {
		t.Fatalf("ListCommands(Limit MaxPage+1) returned %d, want %d", len(got), command.MaxPage)
	}
}

// testNextConcurrent lets many requests of one device ask at the same
// instant, as several Core processes serving it would. Every command handed
// out must have its delivery counted: no two requests get one command with
// the same delivery number. A request that finds every due command taken
// by requests in flight may be answered idle (the device is being served).
func testNextConcurrent(t *testing.T, f Fixture) {
	const commands, requests = 5, 40
	ctx := context.Background()
	d := EnrolledDevice(t, f)
	var cmds []*command.Command
	for range commands {
		cmds = append(cmds, New(d.ID, command.Lock, 80, T0))
	}
	Enqueue(t, f, cmds...)
	var (
		mu     sync.Mutex
		got    = map[string][]int{}
		served int
		wg     sync.WaitGroup
	)
	start := make(chan struct{})
	for range requests {
		wg.Go(func() {
			<-start
			c, err := f.Next(ctx, d.ID, T0)
			if errors.Is(err, command.ErrIdle) {
				return
			}
			if err != nil {
				t.Errorf("Next: %v", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			got[c.ID] = append(got[c.ID], c.Deliveries)
			served++
		})
	}
	close(start)
	wg.Wait()
	total := 0
	for _, c := range cmds {
		stored, err := f.Command(ctx, c.ID)
		storetest.WantErr(t, "Command", err, nil)
		total += stored.Deliveries
		seen := got[c.ID]
		slices.Sort(seen)
		want := make([]int, stored.Deliveries)
		for i := range want {
			want[i] = i + 1
		}
		storetest.WantEqual(t, "delivery numbers handed out for "+c.ID, append([]int{}, seen...), want)
	}
	if total != served || served == 0 {
		t.Fatalf("%d of %d requests got a command, %d deliveries recorded; want as many deliveries as commands handed out",
			served, requests, total)
	}
}

func testHostileStrings(t *testing.T, f Fixture) {
	d := EnrolledDevice(t, f)
	c := New(d.ID, command.Raw, 40, T0)
	c.Payload = json.RawMessage(`{"platform":"agent","body":{"cmd":"` + usertest.ScriptTag + `","q":"` + usertest.SQLInject + `","u":"ünï\u0000"}}`)
	c.CreatedBy = usertest.SQLInject
	Enqueue(t, f, c)
	wantCommand(t, f, c)
	next(t, f, c, T0)
	r := command.Result{CommandID: c.ID, Status: command.StatusError, Message: usertest.ScriptTag + "{{.}}" + usertest.SQLInject,
		Data: json.RawMessage(`["` + usertest.SQLInject + `"]`)}
	c.Status, c.Message, c.Result, c.CompletedAt = command.StatusError, r.Message, r.Data, &T0
	complete(t, f, d.ID, r, T0, c, false)
	wantCommand(t, f, c)
}
