package compliance_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/compliance"
	"github.com/custos-uem/custos/compliance/compliancetest"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/errs"
)

// memStates is an in-memory compliance.Store with the contract's
// compare-and-swap; failSave makes the next saves fail.
type memStates struct {
	mu       sync.Mutex
	states   map[string]compliance.State
	devices  *memDevices
	failSave int
	saves    int
}

func (m *memStates) ComplianceState(_ context.Context, deviceID string) (*compliance.State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := m.states[deviceID]
	if !ok {
		return nil, errs.ErrNotFound
	}
	return &st, nil
}

func (m *memStates) SaveComplianceState(ctx context.Context, st *compliance.State) error {
	if _, err := m.devices.Device(ctx, st.DeviceID); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failSave > 0 {
		m.failSave--
		return errors.New("disk on fire")
	}
	if m.states[st.DeviceID].Version != st.Version {
		return errs.ErrConflict
	}
	st.Version++
	c := *st
	c.Violations = append([]compliance.Violation{}, st.Violations...)
	c.Taken = append([]compliance.Taken{}, st.Taken...)
	m.states[st.DeviceID] = c
	m.saves++
	return nil
}

func (m *memStates) ListComplianceStates(context.Context, compliance.StateQuery) ([]*compliance.State, error) {
	return nil, errors.New("not used")
}

func (m *memStates) Saves() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.saves
}

// memDevices is an in-memory device.Store of the devices the tests set.
type memDevices struct {
	mu      sync.Mutex
	devices map[string]device.Device
	inv     map[string]device.Inventory
}

func (m *memDevices) Device(_ context.Context, id string) (*device.Device, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.devices[id]
	if !ok {
		return nil, errs.ErrNotFound
	}
	return &d, nil
}

func (m *memDevices) ListDevices(_ context.Context, q device.Query) ([]*device.Device, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*device.Device
	for _, d := range m.devices {
		if d.State == q.State {
			out = append(out, &d)
		}
	}
	return out, nil
}

func (m *memDevices) Inventory(_ context.Context, id string) (*device.Inventory, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	inv, ok := m.inv[id]
	if !ok {
		return nil, errs.ErrNotFound
	}
	return &inv, nil
}

func (m *memDevices) SaveReport(context.Context, string, device.Info, []device.App, time.Time) error {
	return errors.New("not used")
}

func (m *memDevices) Acknowledge(context.Context, string, string, time.Time) error {
	return errors.New("not used")
}

func (m *memDevices) remove(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.devices[id]
	if !ok || d.State == device.StateRemoved {
		return errs.ErrNotFound
	}
	d.State = device.StateRemoved
	m.devices[id] = d
	return nil
}

// setRooted reports the device rooted or not.
func (m *memDevices) setRooted(id string, rooted bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.inv[id] = device.Inventory{DeviceID: id, Info: device.Info{Attributes: map[string]string{"rooted": fmt.Sprint(rooted)}}, Software: []device.App{}}
}

type fixture struct {
	env     *compliancetest.Env
	states  *memStates
	devices *memDevices
	id      string
}

// newFixture has one active device, rooted or not, under profile.
func newFixture(t *testing.T, rooted bool, profile *compliance.Profile) *fixture {
	t.Helper()
	devs := &memDevices{devices: map[string]device.Device{}, inv: map[string]device.Inventory{}}
	d := newDevice("android", "14", "Pixel 8")
	devs.devices[d.ID] = *d
	devs.setRooted(d.ID, rooted)
	states := &memStates{states: map[string]compliance.State{}, devices: devs}
	env := compliancetest.NewEnv(states, devs, devs.remove, profile, t0)
	return &fixture{env: env, states: states, devices: devs, id: d.ID}
}

func hoursAfter(n float64) time.Time { return t0.Add(time.Duration(n * float64(time.Hour))) }

func TestEngineWalksTheWholeLadder(t *testing.T) {
	f := newFixture(t, true, compliancetest.FullLadder("p1"))
	compliancetest.Walk(t, f.env, f.id, t0)
	for _, c := range f.env.Commands.Sent(command.Message) {
		if c.ExpiresAt.IsZero() || !strings.Contains(compliancetest.PromptText(t, c), "rooted") {
			t.Fatalf("prompt %+v does not name the violation", c)
		}
	}
}

// TestEngineNeverWipesACompliantDevice checks a compliant device under a
// ladder that would wipe at once, over a long time and many checks.
func TestEngineNeverWipesACompliantDevice(t *testing.T) {
	instant := &compliance.Profile{ID: "p1", Rules: compliance.Rules{RootedOrJailbroken: true, MinOSVersion: map[string]string{"android": "14"}},
		Actions: []compliance.Step{{Action: compliance.Prompt, Count: 20, IntervalHours: 1}, {Action: compliance.WipeWork},
			{Action: compliance.WipeDevice}, {Action: compliance.Remove}}}
	f := newFixture(t, false, instant)
	for h := range 1000 {
		st := f.env.Check(t, f.id, hoursAfter(float64(h)))
		if st.Status != compliance.StatusCompliant {
			t.Fatalf("check %d: %+v", h, st)
		}
	}
	compliancetest.WantState(t, "after 1000 checks", f.env, f.env.Check(t, f.id, hoursAfter(2000)),
		compliancetest.Want{Status: compliance.StatusCompliant, Step: compliance.NoStep})
	if f.states.Saves() != 1 {
		t.Fatalf("%d saves of an unchanging state, want 1 (a check that changes nothing writes nothing)", f.states.Saves())
	}
}

func TestEngineRecoversWhenCompliant(t *testing.T) {
	f := newFixture(t, true, compliancetest.FullLadder("p1"))
	nc := compliance.StatusNoncompliant
	f.env.Check(t, f.id, t0)
	st := f.env.Check(t, f.id, hoursAfter(72))
	compliancetest.WantState(t, "wipe_work", f.env, st, compliancetest.Want{Status: nc, Step: 4, Prompts: 2, Untrusted: true, Quarantined: true, WipeWork: 1})

	f.devices.setRooted(f.id, false)
	st = f.env.Check(t, f.id, hoursAfter(80))
	compliancetest.WantState(t, "fixed", f.env, st, compliancetest.Want{Status: compliance.StatusCompliant, Step: compliance.NoStep, Prompts: 2, WipeWork: 1})
	if got, want := f.env.Commands.Cancelled(), f.env.Commands.Sent(command.WipeWork)[0].ID; len(got) != 1 || got[0] != want {
		t.Fatalf("cancelled %v, want the queued wipe %s", got, want)
	}
	// Compliant for a long time: nothing more happens.
	st = f.env.Check(t, f.id, hoursAfter(500))
	compliancetest.WantState(t, "long after", f.env, st, compliancetest.Want{Status: compliance.StatusCompliant, Step: compliance.NoStep, Prompts: 2, WipeWork: 1})

	// Rooted again: the clock starts over, the flags are not back at once.
	f.devices.setRooted(f.id, true)
	st = f.env.Check(t, f.id, hoursAfter(600))
	compliancetest.WantState(t, "rooted again", f.env, st, compliancetest.Want{Status: nc, Step: 1, Prompts: 3, WipeWork: 1})
	st = f.env.Check(t, f.id, hoursAfter(672))
	compliancetest.WantState(t, "rooted again, 72 hours on", f.env, st, compliancetest.Want{Status: nc, Step: 4, Prompts: 4, Untrusted: true, Quarantined: true, WipeWork: 2})
}

func TestEngineRecoveryWithoutCancelerStillLifts(t *testing.T) {
	f := newFixture(t, true, compliancetest.FullLadder("p1"))
	f.env.Engine.Commands = struct{ compliance.Commander }{f.env.Commands}
	f.env.Check(t, f.id, t0)
	f.env.Check(t, f.id, hoursAfter(72))
	f.devices.setRooted(f.id, false)
	st := f.env.Check(t, f.id, hoursAfter(73))
	if st.Status != compliance.StatusCompliant || st.Untrusted || st.Quarantined {
		t.Fatalf("state %+v", st)
	}
}

// TestEngineCrashAfterSavingAWipeDoesNotWipeTwice: the process dies after
// the step was saved as taken and before the command was queued; the
// checks after the restart queue no wipe (at most once).
func TestEngineCrashAfterSavingAWipeDoesNotWipeTwice(t *testing.T) {
	f := newFixture(t, true, compliancetest.FullLadder("p1"))
	f.env.Check(t, f.id, t0)
	f.env.Commands.OnSend = func(in command.NewCommand) {
		if in.Type == command.WipeWork {
			panic("crash")
		}
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("no crash")
			}
		}()
		f.env.Clock.Set(hoursAfter(72))
		f.env.Engine.Check(context.Background(), f.id)
	}()
	f.env.Commands.OnSend = nil
	for range 3 {
		st := f.env.Check(t, f.id, hoursAfter(73))
		compliancetest.WantState(t, "after the crash", f.env, st, compliancetest.Want{Status: compliance.StatusNoncompliant,
			Step: 4, Prompts: 2, Untrusted: true, Quarantined: true})
	}
	// The ladder goes on.
	st := f.env.Check(t, f.id, hoursAfter(96))
	compliancetest.WantState(t, "wipe_device", f.env, st, compliancetest.Want{Status: compliance.StatusNoncompliant,
		Step: 5, Prompts: 3, Untrusted: true, Quarantined: true, WipeDevice: 1})
}

// TestEngineSendFailureRetriesOnce: a Send that reports failure queued
// nothing, so the step is retried at the next check, and sent once.
func TestEngineSendFailureRetriesOnce(t *testing.T) {
	f := newFixture(t, true, compliancetest.FullLadder("p1"))
	f.env.Check(t, f.id, t0)
	f.env.Commands.Fail(errs.E(errs.Unavailable, "unavailable", "database down"))
	f.env.Clock.Set(hoursAfter(72))
	if _, err := f.env.Engine.Check(context.Background(), f.id); !errs.Is(err, errs.Unavailable) {
		t.Fatalf("Check with the queue down: %v", err)
	}
	st, err := f.env.Engine.State(context.Background(), f.id)
	if err != nil || st.Step != 3 || len(st.Taken) != 4 {
		t.Fatalf("state after the failed wipe: %+v %v; want quarantine as the last step", st, err)
	}
	f.env.Commands.Fail(nil)
	for range 2 {
		st = f.env.Check(t, f.id, hoursAfter(73))
		compliancetest.WantState(t, "retried", f.env, st, compliancetest.Want{Status: compliance.StatusNoncompliant,
			Step: 4, Prompts: 2, Untrusted: true, Quarantined: true, WipeWork: 1})
	}
	if id := st.Taken[len(st.Taken)-1].CommandID; id != f.env.Commands.Sent(command.WipeWork)[0].ID {
		t.Fatalf("recorded command %q", id)
	}
}

// TestEngineRemoveIsRepeatedAfterACrash: remove runs before its step is
// saved; if saving fails (the crash) the next check removes again, which
// is harmless, and then records it.
func TestEngineRemoveIsRepeatedAfterACrash(t *testing.T) {
	ladder := &compliance.Profile{ID: "p1", Rules: compliance.Rules{RootedOrJailbroken: true},
		Actions: []compliance.Step{{Action: compliance.Remove, AfterHours: 1}}}
	f := newFixture(t, true, ladder)
	f.env.Check(t, f.id, t0)
	f.states.mu.Lock()
	f.states.failSave = 1
	f.states.mu.Unlock()
	f.env.Clock.Set(hoursAfter(1))
	if _, err := f.env.Engine.Check(context.Background(), f.id); err == nil {
		t.Fatal("Check with the save failing succeeded")
	}
	if f.env.Removes() != 1 {
		t.Fatalf("removes = %d", f.env.Removes())
	}
	// The device is removed, so a check leaves it alone; a second removal
	// (had the device still been listed) would be ErrNotFound, taken as done.
	st := f.env.Check(t, f.id, hoursAfter(2))
	if st.Step != compliance.NoStep || f.env.Removes() != 1 {
		t.Fatalf("after the crash: %+v, %d removes", st, f.env.Removes())
	}
	d, _ := f.devices.Device(context.Background(), f.id)
	if d.State != device.StateRemoved {
		t.Fatalf("device %+v not removed", d)
	}
}

func TestEngineProfileChangeRestartsTheLadder(t *testing.T) {
	f := newFixture(t, true, &compliance.Profile{ID: "lenient", Rules: compliance.Rules{RootedOrJailbroken: true},
		Actions: []compliance.Step{{Action: compliance.Monitor}, {Action: compliance.Untrust, AfterHours: 1}}})
	f.env.Check(t, f.id, t0)
	st := f.env.Check(t, f.id, hoursAfter(500))
	if !st.Untrusted {
		t.Fatalf("state %+v", st)
	}
	strict := &compliance.Profile{ID: "strict", Rules: compliance.Rules{RootedOrJailbroken: true},
		Actions: []compliance.Step{{Action: compliance.WipeWork, AfterHours: 24}}}
	f.env.SetProfile(strict)
	st = f.env.Check(t, f.id, hoursAfter(501))
	compliancetest.WantState(t, "new profile", f.env, st, compliancetest.Want{Status: compliance.StatusNoncompliant, Step: compliance.NoStep})
	if st.ProfileID != "strict" || !st.Since.Equal(hoursAfter(501)) {
		t.Fatalf("state %+v", st)
	}
	st = f.env.Check(t, f.id, hoursAfter(525))
	compliancetest.WantState(t, "new profile's wipe", f.env, st, compliancetest.Want{Status: compliance.StatusNoncompliant, Step: 0, WipeWork: 1})
}

func TestEngineNoProfileLiftsEverything(t *testing.T) {
	f := newFixture(t, true, compliancetest.FullLadder("p1"))
	f.env.Check(t, f.id, t0)
	f.env.Check(t, f.id, hoursAfter(50))
	f.env.SetProfile(nil)
	st := f.env.Check(t, f.id, hoursAfter(51))
	compliancetest.WantState(t, "no profile", f.env, st, compliancetest.Want{Status: compliance.StatusCompliant, Step: compliance.NoStep, Prompts: 2})
	if st.ProfileID != "" {
		t.Fatalf("ProfileID = %q", st.ProfileID)
	}
}

func TestEngineDeviceWithoutInventory(t *testing.T) {
	p := &compliance.Profile{ID: "p1", Rules: compliance.Rules{RootedOrJailbroken: true, RequiredApps: []string{"vpn"}, OutOfContactDays: 1},
		Actions: []compliance.Step{{Action: compliance.Untrust}}}
	f := newFixture(t, true, p)
	f.devices.mu.Lock()
	delete(f.devices.inv, f.id)
	f.devices.mu.Unlock()
	if st := f.env.Check(t, f.id, t0); st.Status != compliance.StatusCompliant {
		t.Fatalf("judged on rules that need a report: %+v", st)
	}
	// Last seen an hour before t0: out of contact a day later.
	st := f.env.Check(t, f.id, hoursAfter(24))
	if st.Status != compliance.StatusNoncompliant || len(st.Violations) != 1 || st.Violations[0].Rule != compliance.RuleOutOfContact || !st.Untrusted {
		t.Fatalf("state %+v", st)
	}
}

func TestEngineLeavesDevicesNotEnrolledAlone(t *testing.T) {
	for _, state := range []device.State{device.StateActivating, device.StateRemoved} {
		t.Run(string(state), func(t *testing.T) {
			f := newFixture(t, true, compliancetest.FullLadder("p1"))
			d := f.devices.devices[f.id]
			d.State = state
			f.devices.devices[f.id] = d
			st := f.env.Check(t, f.id, hoursAfter(1000))
			if st.Status != compliance.StatusUnknown || f.states.Saves() != 0 || len(f.env.Commands.Sent(command.Message)) != 0 {
				t.Fatalf("state %+v after %d saves", st, f.states.Saves())
			}
		})
	}
	f := newFixture(t, true, nil)
	if _, err := f.env.Engine.Check(context.Background(), "nope"); !errors.Is(err, compliance.ErrDeviceNotFound) {
		t.Fatalf("Check(unknown) = %v", err)
	}
	st, err := f.env.Engine.State(context.Background(), f.id)
	if err != nil || st.Status != compliance.StatusUnknown || st.Step != compliance.NoStep {
		t.Fatalf("State(never evaluated) = %+v, %v", st, err)
	}
}

func TestEnginePromptTextIsBounded(t *testing.T) {
	var apps []string
	for i := range 400 {
		apps = append(apps, fmt.Sprintf("com.example.app%d.é", i))
	}
	p := &compliance.Profile{ID: "p1", Rules: compliance.Rules{RequiredApps: apps},
		Actions: []compliance.Step{{Action: compliance.Prompt, Count: 1, IntervalHours: 1}}}
	f := newFixture(t, false, p)
	f.env.Check(t, f.id, t0)
	text := compliancetest.PromptText(t, f.env.Commands.Sent(command.Message)[0])
	if len(text) > compliance.MaxPromptText || !strings.Contains(text, "com.example.app0.é") {
		t.Fatalf("prompt of %d bytes: %.80q…", len(text), text)
	}
}

// TestEngineWritesNothingForADeviceNoProfileReached: a fleet without
// compliance profiles costs no write per check-in.
func TestEngineWritesNothingForADeviceNoProfileReached(t *testing.T) {
	f := newFixture(t, true, nil)
	for i := range 3 {
		st := f.env.Check(t, f.id, hoursAfter(float64(i)))
		if st.Status != compliance.StatusCompliant || st.ProfileID != "" {
			t.Fatalf("check %d: %+v", i, st)
		}
	}
	if n := f.states.Saves(); n != 0 {
		t.Fatalf("%d state writes for a device no profile reached, want 0", n)
	}
	st, err := f.env.Engine.State(context.Background(), f.id)
	if err != nil || st.Status != compliance.StatusUnknown {
		t.Fatalf("State = %+v, %v; want unknown", st, err)
	}
}
