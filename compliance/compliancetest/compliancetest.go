// Package compliancetest is the conformance suite of compliance.Store, run
// by every implementation against each of its backends, together with the
// Engine's ladder walked on that store, and the fakes (clock, command
// recorder) the compliance tests share.
package compliancetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/custos-uem/custos/activation/activationtest"
	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/compliance"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/id"
	"github.com/custos-uem/custos/storetest"
	"github.com/custos-uem/custos/user/usertest"
)

// Stores is what the suite tests, with the stores it needs to enroll,
// report, remove and delete devices.
type Stores interface {
	activationtest.Enroller
	device.Store
	device.Remover
	compliance.Store
}

// Run runs the suite; open must return empty stores of their own for each
// call (the subtests run in parallel).
func Run(t *testing.T, open func(t *testing.T) Stores) {
	storetest.Run(t, open, []storetest.Case[Stores]{
		{Name: "StateNeverSavedIsNotFound", Fn: testNotFound},
		{Name: "SaveInsertsThenUpdatesAndRoundTrips", Fn: testRoundTrip},
		{Name: "SaveWithStaleVersionConflictsAndChangesNothing", Fn: testStaleVersion},
		{Name: "ConcurrentSavesOfOneVersionExactlyOneWins", Fn: testConcurrentSaves},
		{Name: "SaveForUnknownDeviceIsNotFound", Fn: testUnknownDevice},
		{Name: "ListFiltersByStatusAndPagesInDeviceOrder", Fn: testList},
		{Name: "DeletingTheUserDeletesTheStates", Fn: testCascade},
		{Name: "EngineWalksTheWholeLadder", Fn: testEngineWalk},
		{Name: "EngineConcurrentChecksWipeOnce", Fn: testEngineConcurrent},
		{Name: "EngineRecoveryLiftsAndCancels", Fn: testEngineRecovery},
		{Name: "EngineSweepChecksEnrolledAndActiveOnly", Fn: testEngineSweep},
	})
}

// T0 is the suite's clock, in whole microseconds as stores keep them.
var T0 = activationtest.T0

func enroll(t testing.TB, s Stores, hardwareID string) *device.Device {
	t.Helper()
	u := usertest.CreateUser(t, s, "owner")
	d, _ := activationtest.Enroll(t, s, u.ID, hardwareID, T0)
	return d
}

// report stores a report of d saying whether it is rooted.
func report(t testing.TB, s device.Store, deviceID string, rooted bool, now time.Time) {
	t.Helper()
	v := "false"
	if rooted {
		v = "true"
	}
	info := device.Info{OSVersion: "14", Model: "Pixel 8", Attributes: map[string]string{compliance.AttrRooted: v}}
	if err := s.SaveReport(context.Background(), deviceID, info, []device.App{}, now); err != nil {
		t.Fatalf("SaveReport: %v", err)
	}
}

func sampleState(deviceID string) *compliance.State {
	since, prompt := T0.Add(-time.Hour), T0.Add(-time.Minute)
	return &compliance.State{
		DeviceID: deviceID, Status: compliance.StatusNoncompliant,
		Violations: []compliance.Violation{{Rule: compliance.RuleRestrictedApps, Detail: usertest.ScriptTag + " {{.x}} é"}},
		Since:      &since, Step: 2, Prompts: 1, LastPromptAt: &prompt, Untrusted: true,
		ProfileID: id.New(),
		Taken: []compliance.Taken{{Step: 0, Action: compliance.Monitor, At: since},
			{Step: 2, Action: compliance.WipeWork, At: T0, CommandID: id.New()}},
		UpdatedAt: T0,
	}
}

func wantState(t testing.TB, s compliance.Store, want *compliance.State) {
	t.Helper()
	got, err := s.ComplianceState(context.Background(), want.DeviceID)
	storetest.WantErr(t, "ComplianceState", err, nil)
	storetest.WantEqual(t, "ComplianceState", got, want)
}

func testNotFound(t *testing.T, s Stores) {
	d := enroll(t, s, "hw-1")
	_, err := s.ComplianceState(context.Background(), d.ID)
	storetest.WantErr(t, "ComplianceState(never saved)", err, errs.ErrNotFound)
	_, err = s.ComplianceState(context.Background(), id.New())
	storetest.WantErr(t, "ComplianceState(unknown device)", err, errs.ErrNotFound)
}

func testRoundTrip(t *testing.T, s Stores) {
	ctx := context.Background()
	d := enroll(t, s, "hw-1")
	st := sampleState(d.ID)
	storetest.WantErr(t, "SaveComplianceState(insert)", s.SaveComplianceState(ctx, st), nil)
	if st.Version != 1 {
		t.Fatalf("Version after insert = %d, want 1", st.Version)
	}
	wantState(t, s, st)

	// Back to compliant: nil lists and times are stored as empty and nil.
	next := &compliance.State{DeviceID: d.ID, Status: compliance.StatusCompliant, Step: compliance.NoStep,
		UpdatedAt: T0.Add(time.Hour), Version: st.Version}
	storetest.WantErr(t, "SaveComplianceState(update)", s.SaveComplianceState(ctx, next), nil)
	if next.Version != 2 {
		t.Fatalf("Version after update = %d, want 2", next.Version)
	}
	next.Violations, next.Taken = []compliance.Violation{}, []compliance.Taken{}
	wantState(t, s, next)
}

func testStaleVersion(t *testing.T, s Stores) {
	ctx := context.Background()
	d := enroll(t, s, "hw-1")
	st := sampleState(d.ID)
	storetest.WantErr(t, "SaveComplianceState", s.SaveComplianceState(ctx, st), nil)

	again := sampleState(d.ID) // version 0: a second first save
	again.Status = compliance.StatusCompliant
	storetest.WantErr(t, "SaveComplianceState(second insert)", s.SaveComplianceState(ctx, again), errs.ErrConflict)
	if again.Version != 0 {
		t.Fatalf("a refused save changed Version to %d", again.Version)
	}
	for _, v := range []int64{2, 7} {
		stale := sampleState(d.ID)
		stale.Version, stale.Step = v, 5
		storetest.WantErr(t, "SaveComplianceState(wrong version)", s.SaveComplianceState(ctx, stale), errs.ErrConflict)
	}
	wantState(t, s, st)
}

func testConcurrentSaves(t *testing.T, s Stores) {
	ctx := context.Background()
	d := enroll(t, s, "hw-1")
	st := sampleState(d.ID)
	storetest.WantErr(t, "SaveComplianceState", s.SaveComplianceState(ctx, st), nil)
	const writers = 8
	results := make([]error, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			mine := sampleState(d.ID)
			mine.Version, mine.Step = st.Version, 10+i
			results[i] = s.SaveComplianceState(ctx, mine)
		})
	}
	wg.Wait()
	won := 0
	for i, err := range results {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, errs.ErrConflict):
			t.Fatalf("writer %d: %v, want success or ErrConflict", i, err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d saves of version %d succeeded, want exactly 1", won, writers, st.Version)
	}
	got, err := s.ComplianceState(ctx, d.ID)
	if err != nil || got.Version != 2 || got.Step < 10 {
		t.Fatalf("after the race: %+v %v", got, err)
	}
}

func testUnknownDevice(t *testing.T, s Stores) {
	st := sampleState(id.New())
	storetest.WantErr(t, "SaveComplianceState(unknown device)", s.SaveComplianceState(context.Background(), st), errs.ErrNotFound)
}

func testList(t *testing.T, s Stores) {
	ctx := context.Background()
	var want []*compliance.State
	for i, status := range []compliance.Status{compliance.StatusCompliant, compliance.StatusNoncompliant,
		compliance.StatusNoncompliant, compliance.StatusCompliant, compliance.StatusNoncompliant} {
		d := enroll(t, s, "hw-"+string(rune('a'+i)))
		st := sampleState(d.ID)
		st.Status = status
		storetest.WantErr(t, "SaveComplianceState", s.SaveComplianceState(ctx, st), nil)
		want = append(want, st)
	}
	// Device IDs are UUIDv7, created in order.
	all, err := s.ListComplianceStates(ctx, compliance.StateQuery{})
	storetest.WantErr(t, "ListComplianceStates", err, nil)
	storetest.WantEqual(t, "ListComplianceStates(all)", all, want)

	bad, err := s.ListComplianceStates(ctx, compliance.StateQuery{Status: compliance.StatusNoncompliant, Limit: 2})
	storetest.WantErr(t, "ListComplianceStates", err, nil)
	storetest.WantEqual(t, "noncompliant, first page", bad, []*compliance.State{want[1], want[2]})
	bad, err = s.ListComplianceStates(ctx, compliance.StateQuery{Status: compliance.StatusNoncompliant, After: want[2].DeviceID, Limit: 2})
	storetest.WantErr(t, "ListComplianceStates", err, nil)
	storetest.WantEqual(t, "noncompliant, second page", bad, []*compliance.State{want[4]})

	none, err := s.ListComplianceStates(ctx, compliance.StateQuery{Status: compliance.StatusUnknown})
	if err != nil || none == nil || len(none) != 0 {
		t.Fatalf("ListComplianceStates(unknown) = %v, %v; want an empty, non-nil list", none, err)
	}
}

func testCascade(t *testing.T, s Stores) {
	ctx := context.Background()
	u := usertest.CreateUser(t, s, "leaver")
	d, _ := activationtest.Enroll(t, s, u.ID, "hw-1", T0)
	st := sampleState(d.ID)
	storetest.WantErr(t, "SaveComplianceState", s.SaveComplianceState(ctx, st), nil)
	// A removed device keeps its state (and may still be saved) …
	storetest.WantErr(t, "RemoveDevice", s.RemoveDevice(ctx, d.ID, T0), nil)
	st.Step = 6
	storetest.WantErr(t, "SaveComplianceState(removed device)", s.SaveComplianceState(ctx, st), nil)
	// … and a deleted device leaves no orphan.
	storetest.WantErr(t, "DeleteUser", s.DeleteUser(ctx, u.ID), nil)
	_, err := s.ComplianceState(ctx, d.ID)
	storetest.WantErr(t, "ComplianceState(deleted device)", err, errs.ErrNotFound)
	all, err := s.ListComplianceStates(ctx, compliance.StateQuery{})
	if err != nil || len(all) != 0 {
		t.Fatalf("ListComplianceStates after the delete = %v, %v; want none", all, err)
	}
}

// newEnv wires an engine to s under FullLadder, removing through s.
func newEnv(s Stores) *Env {
	return NewEnv(s, s, func(ctx context.Context, deviceID string) error {
		return s.RemoveDevice(ctx, deviceID, T0)
	}, FullLadder(id.New()), T0)
}

func testEngineWalk(t *testing.T, s Stores) {
	d := enroll(t, s, "hw-1")
	report(t, s, d.ID, true, T0)
	env := newEnv(s)
	Walk(t, env, d.ID, T0)
	got, err := s.Device(context.Background(), d.ID)
	if err != nil || got.State != device.StateRemoved {
		t.Fatalf("device after the ladder: %+v %v; want removed", got, err)
	}
}

func testEngineConcurrent(t *testing.T, s Stores) {
	d := enroll(t, s, "hw-1")
	report(t, s, d.ID, true, T0)
	env := newEnv(s)
	env.Check(t, d.ID, T0)
	env.Clock.Set(T0.Add(72 * time.Hour)) // untrust, quarantine and wipe_work are due at once
	const checkers = 4
	var wg sync.WaitGroup
	results := make([]error, checkers)
	for i := range checkers {
		wg.Go(func() { _, results[i] = env.Engine.Check(context.Background(), d.ID) })
	}
	wg.Wait()
	for i, err := range results {
		// A check that lost every race gives up with a conflict; it took
		// no step.
		if err != nil && !errs.Is(err, errs.Conflict) {
			t.Fatalf("checker %d: %v", i, err)
		}
	}
	st := env.Check(t, d.ID, T0.Add(72*time.Hour))
	WantState(t, "after concurrent checks", env, st, Want{Status: compliance.StatusNoncompliant, Step: 4, Prompts: 2,
		Untrusted: true, Quarantined: true, WipeWork: 1})
}

func testEngineRecovery(t *testing.T, s Stores) {
	d := enroll(t, s, "hw-1")
	report(t, s, d.ID, true, T0)
	env := newEnv(s)
	env.Check(t, d.ID, T0)
	nc := compliance.StatusNoncompliant
	st := env.Check(t, d.ID, T0.Add(72*time.Hour))
	WantState(t, "wipe_work due", env, st, Want{Status: nc, Step: 4, Prompts: 2, Untrusted: true, Quarantined: true, WipeWork: 1})

	report(t, s, d.ID, false, T0.Add(73*time.Hour))
	st = env.Check(t, d.ID, T0.Add(73*time.Hour))
	WantState(t, "compliant again", env, st, Want{Status: compliance.StatusCompliant, Step: compliance.NoStep,
		Prompts: 2, WipeWork: 1})
	if st.Since != nil || len(st.Violations) != 0 || st.Prompts != 0 || len(st.Taken) != 0 {
		t.Fatalf("compliant state keeps the old violation: %+v", st)
	}
	wipe := env.Commands.Sent(command.WipeWork)[0]
	storetest.WantEqual(t, "cancelled commands", env.Commands.Cancelled(), []string{wipe.ID})

	// A new violation starts the ladder from the bottom: no wipe at once.
	report(t, s, d.ID, true, T0.Add(200*time.Hour))
	st = env.Check(t, d.ID, T0.Add(200*time.Hour))
	if !st.Since.Equal(T0.Add(200 * time.Hour)) {
		t.Fatalf("Since = %v after a new violation", st.Since)
	}
	// The state counts this violation's prompts, the recorder all of them.
	if st.Status != nc || st.Step != 1 || st.Prompts != 1 || st.Untrusted || st.Quarantined ||
		env.Commands.Count(command.Message) != 3 || env.Commands.Count(command.WipeWork) != 1 {
		t.Fatalf("new violation: %+v, %d prompts and %d wipes sent in all", st,
			env.Commands.Count(command.Message), env.Commands.Count(command.WipeWork))
	}
}

func testEngineSweep(t *testing.T, s Stores) {
	ctx := context.Background()
	rooted := enroll(t, s, "hw-rooted")
	report(t, s, rooted.ID, true, T0)
	clean := enroll(t, s, "hw-clean")
	report(t, s, clean.ID, false, T0)
	active := enroll(t, s, "hw-active")
	report(t, s, active.ID, true, T0)
	if err := s.Acknowledge(ctx, active.ID, "v1", T0); err != nil {
		t.Fatal(err)
	}
	gone := enroll(t, s, "hw-gone")
	report(t, s, gone.ID, true, T0)
	if err := s.RemoveDevice(ctx, gone.ID, T0); err != nil {
		t.Fatal(err)
	}
	env := newEnv(s)
	for range 2 { // a second sweep at the same time takes no step
		n, err := env.Engine.Sweep(ctx)
		if err != nil || n != 3 {
			t.Fatalf("Sweep = %d, %v; want 3 devices checked", n, err)
		}
		if got := env.Commands.Count(command.Message); got != 2 {
			t.Fatalf("prompts sent = %d, want one per rooted device", got)
		}
	}
	for _, tc := range []struct {
		id   string
		want compliance.Status
	}{{rooted.ID, compliance.StatusNoncompliant}, {clean.ID, compliance.StatusCompliant},
		{active.ID, compliance.StatusNoncompliant}, {gone.ID, compliance.StatusUnknown}} {
		st, err := env.Engine.State(ctx, tc.id)
		if err != nil || st.Status != tc.want {
			t.Fatalf("State(%s) = %+v, %v; want %s", tc.id, st, err, tc.want)
		}
	}
	if _, err := env.Engine.State(ctx, id.New()); !errs.Is(err, errs.NotFound) {
		t.Fatalf("State(unknown device) = %v, want not found", err)
	}
}
