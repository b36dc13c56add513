package compliancetest

import (
	"testing"
	"time"

	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/compliance"
)

// FullLadder is a profile that forbids rooted devices and has every action
// of the ladder: monitor and prompt (3 times, 4 hours apart) at once,
// untrust after a day, quarantine after two, wipe_work after three,
// wipe_device after four, remove after five.
func FullLadder(id string) *compliance.Profile {
	return &compliance.Profile{
		ID:    id,
		Rules: compliance.Rules{RootedOrJailbroken: true},
		Actions: []compliance.Step{
			{Action: compliance.Monitor, AfterHours: 0},
			{Action: compliance.Prompt, AfterHours: 0, Count: 3, IntervalHours: 4},
			{Action: compliance.Untrust, AfterHours: 24},
			{Action: compliance.Quarantine, AfterHours: 48},
			{Action: compliance.WipeWork, AfterHours: 72},
			{Action: compliance.WipeDevice, AfterHours: 96},
			{Action: compliance.Remove, AfterHours: 120},
		},
	}
}

// Want is what a check must leave behind; Prompts, WipeWork, WipeDevice
// and Removes count what the fakes saw in all.
type Want struct {
	Status                 compliance.Status
	Step, Prompts          int
	Untrusted, Quarantined bool
	WipeWork, WipeDevice   int // commands sent in all
	Removes                int
}

// WantState fails unless st and the fakes of env match want.
func WantState(t testing.TB, what string, env *Env, st *compliance.State, want Want) {
	t.Helper()
	got := Want{Status: st.Status, Step: st.Step, Prompts: env.Commands.Count(command.Message),
		Untrusted: st.Untrusted, Quarantined: st.Quarantined,
		WipeWork: env.Commands.Count(command.WipeWork), WipeDevice: env.Commands.Count(command.WipeDevice),
		Removes: env.Removes()}
	if got != want {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

// Walk takes a device that is rooted for the whole walk, under
// FullLadder, from its first check at t0 to its removal, checking twice at
// every point (a repeated check must change nothing) and at the moments
// just before each step is due.
func Walk(t *testing.T, env *Env, deviceID string, t0 time.Time) {
	t.Helper()
	h := func(n float64) time.Time { return t0.Add(time.Duration(n * float64(time.Hour))) }
	nc := compliance.StatusNoncompliant
	steps := []struct {
		at   time.Time
		want Want
	}{
		{h(0), Want{Status: nc, Step: 1, Prompts: 1}},
		{h(3.99), Want{Status: nc, Step: 1, Prompts: 1}},
		{h(4), Want{Status: nc, Step: 1, Prompts: 2}},
		{h(7), Want{Status: nc, Step: 1, Prompts: 2}},
		{h(8.5), Want{Status: nc, Step: 1, Prompts: 3}},
		{h(20), Want{Status: nc, Step: 1, Prompts: 3}}, // count reached
		{h(23.9), Want{Status: nc, Step: 1, Prompts: 3}},
		{h(24), Want{Status: nc, Step: 2, Prompts: 3, Untrusted: true}},
		{h(48), Want{Status: nc, Step: 3, Prompts: 3, Untrusted: true, Quarantined: true}},
		{h(71), Want{Status: nc, Step: 3, Prompts: 3, Untrusted: true, Quarantined: true}},
		{h(72), Want{Status: nc, Step: 4, Prompts: 3, Untrusted: true, Quarantined: true, WipeWork: 1}},
		{h(96), Want{Status: nc, Step: 5, Prompts: 3, Untrusted: true, Quarantined: true, WipeWork: 1, WipeDevice: 1}},
		{h(119), Want{Status: nc, Step: 5, Prompts: 3, Untrusted: true, Quarantined: true, WipeWork: 1, WipeDevice: 1}},
		{h(120), Want{Status: nc, Step: 6, Prompts: 3, Untrusted: true, Quarantined: true, WipeWork: 1, WipeDevice: 1, Removes: 1}},
		{h(500), Want{Status: nc, Step: 6, Prompts: 3, Untrusted: true, Quarantined: true, WipeWork: 1, WipeDevice: 1, Removes: 1}},
	}
	for _, s := range steps {
		for range 2 {
			st := env.Check(t, deviceID, s.at)
			WantState(t, "check at +"+s.at.Sub(t0).String(), env, st, s.want)
			if st.Prompts != s.want.Prompts {
				t.Fatalf("check at +%v: the state counts %d prompts, %d were sent", s.at.Sub(t0), st.Prompts, s.want.Prompts)
			}
		}
	}
	prompts := env.Commands.Sent(command.Message)
	for i, c := range prompts {
		if c.CreatedBy != compliance.CreatedBy {
			t.Fatalf("prompt %d created by %q", i, c.CreatedBy)
		}
		PromptText(t, c)
	}
	st := env.Check(t, deviceID, h(600))
	var actions []compliance.Action
	for _, tk := range st.Taken {
		actions = append(actions, tk.Action)
	}
	if len(actions) != len(compliance.Ladder) {
		t.Fatalf("steps taken %v, want the whole ladder", actions)
	}
	if !st.Since.Equal(t0) {
		t.Fatalf("Since = %v, want %v", st.Since, t0)
	}
}
