package compliance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/errs"
)

// CreatedBy is the author of the commands the engine queues.
const CreatedBy = "system"

// MaxPromptText bounds the text of a prompt (the violations it names can
// be long: a list of missing apps), far below command.MaxPayload.
const MaxPromptText = command.MaxMessageText

// maxAttempts bounds how often a check decides again after losing a race
// to another check of the same device.
const maxAttempts = 3

// Commander queues commands; command.Service implements it.
type Commander interface {
	Send(ctx context.Context, deviceIDs []string, in command.NewCommand) ([]*command.Command, error)
}

// Canceler is implemented by a Commander that can cancel an open command.
// When Engine.Commands implements it, a wipe still queued when the device
// becomes compliant again is cancelled. Cancelling a command that has
// already completed (errs.Conflict) or is unknown (errs.NotFound) counts as
// done.
type Canceler interface {
	Cancel(ctx context.Context, id string) (*command.Command, error)
}

// ErrDeviceNotFound is the State of an unknown device.
var ErrDeviceNotFound = errs.E(errs.NotFound, "device_not_found", "no such device")

// Engine evaluates devices and walks the ladder. Its zero Now is the
// system clock and its nil Logger discards. Its methods are safe for
// concurrent use, also by several processes sharing one database.
type Engine struct {
	Store   Store
	Devices device.Store
	// Profile returns the compliance profile that applies to the device;
	// a nil profile means nothing to enforce.
	Profile  func(ctx context.Context, d *device.Device) (*Profile, error)
	Commands Commander
	// Remove removes a device from the server (device.Service.Remove).
	Remove func(ctx context.Context, deviceID string) error
	Now    func() time.Time
	Logger *slog.Logger
}

func (e *Engine) now() time.Time {
	now := time.Now()
	if e.Now != nil {
		now = e.Now()
	}
	// Stores keep microseconds; truncating here makes a state read back
	// equal to the one written, so an unchanged check writes nothing.
	return now.UTC().Truncate(time.Microsecond)
}

func (e *Engine) log() *slog.Logger {
	if e.Logger != nil {
		return e.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// unknown is the state of a device never evaluated.
func unknown(deviceID string) *State {
	return &State{DeviceID: deviceID, Status: StatusUnknown, Violations: []Violation{}, Step: NoStep, Taken: []Taken{}}
}

// State returns the compliance state of a device: StatusUnknown when it
// was never evaluated or no compliance profile has ever applied to it,
// ErrDeviceNotFound for an unknown device.
func (e *Engine) State(ctx context.Context, deviceID string) (*State, error) {
	if _, err := e.Devices.Device(ctx, deviceID); errors.Is(err, errs.ErrNotFound) {
		return nil, ErrDeviceNotFound
	} else if err != nil {
		return nil, fmt.Errorf("compliance: state of device %s: %w", deviceID, err)
	}
	return e.load(ctx, deviceID)
}

func (e *Engine) load(ctx context.Context, deviceID string) (*State, error) {
	st, err := e.Store.ComplianceState(ctx, deviceID)
	if errors.Is(err, errs.ErrNotFound) {
		return unknown(deviceID), nil
	}
	if err != nil {
		return nil, fmt.Errorf("compliance: state of device %s: %w", deviceID, err)
	}
	return st, nil
}

// Check evaluates a device (run when it reports) and takes the ladder
// steps that are due. A device that is not enrolled or active is left as
// it is. ErrDeviceNotFound for an unknown device.
func (e *Engine) Check(ctx context.Context, deviceID string) (*State, error) {
	var err error
	for range maxAttempts {
		var d *device.Device
		d, err = e.Devices.Device(ctx, deviceID)
		if errors.Is(err, errs.ErrNotFound) {
			return nil, ErrDeviceNotFound
		}
		if err != nil {
			return nil, fmt.Errorf("compliance: check device %s: %w", deviceID, err)
		}
		var st *State
		st, err = e.check(ctx, d)
		if !errors.Is(err, errs.ErrConflict) {
			return st, err
		}
		// Another check of this device (its report racing the sweep, or
		// another Core) saved first: decide again on what it stored.
		e.log().DebugContext(ctx, "compliance: check lost a race; deciding again", "device", deviceID)
	}
	return nil, err
}

// Sweep checks every enrolled and active device and returns how many it
// checked. It goes on past a device that fails and returns the first
// failure with the count of failures. Running it again at once takes no
// further step.
func (e *Engine) Sweep(ctx context.Context) (int, error) {
	checked, failed := 0, 0
	var first error
	for _, state := range []device.State{device.StateEnrolled, device.StateActive} {
		after := ""
		for {
			ds, err := e.Devices.ListDevices(ctx, device.Query{State: state, After: after, Limit: device.MaxPage})
			if err != nil {
				return checked, fmt.Errorf("compliance: sweep: %w", err)
			}
			for _, d := range ds {
				if err := ctx.Err(); err != nil {
					return checked, err
				}
				if _, err := e.Check(ctx, d.ID); err != nil && !errors.Is(err, ErrDeviceNotFound) {
					e.log().ErrorContext(ctx, "compliance: check failed", "device", d.ID, "err", err)
					failed++
					if first == nil {
						first = err
					}
					continue
				}
				checked++
			}
			if len(ds) < device.MaxPage {
				break
			}
			after = ds[len(ds)-1].ID
		}
	}
	if first != nil {
		return checked, fmt.Errorf("compliance: sweep: %d devices failed, the first: %w", failed, first)
	}
	return checked, nil
}

// check decides once on what is stored; errs.ErrConflict means another
// check saved in between and nothing of this one took effect after that.
func (e *Engine) check(ctx context.Context, d *device.Device) (*State, error) {
	cur, err := e.load(ctx, d.ID)
	if err != nil {
		return nil, err
	}
	if d.State != device.StateEnrolled && d.State != device.StateActive {
		return cur, nil
	}
	p, err := e.Profile(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("compliance: profile of device %s: %w", d.ID, err)
	}
	var inv *device.Inventory
	if p != nil {
		inv, err = e.Devices.Inventory(ctx, d.ID)
		if errors.Is(err, errs.ErrNotFound) {
			inv = nil
		} else if err != nil {
			return nil, fmt.Errorf("compliance: inventory of device %s: %w", d.ID, err)
		}
	}
	now := e.now()
	violations := Evaluate(p, d, inv, now)
	if len(violations) == 0 {
		id := ""
		if p != nil {
			id = p.ID
		}
		return e.comply(ctx, cur, id, now)
	}
	return e.enforce(ctx, cur, p, violations, now)
}

// comply resets the state of a device that breaks no rule: the ladder is
// cleared, untrust and quarantine are lifted, and wipes still queued are
// cancelled before the state says so.
func (e *Engine) comply(ctx context.Context, cur *State, profileID string, now time.Time) (*State, error) {
	if cur.Status == StatusNoncompliant {
		if err := e.cancelWipes(ctx, cur); err != nil {
			return nil, err
		}
		e.log().InfoContext(ctx, "compliance: device compliant again", "device", cur.DeviceID, "profile", profileID)
	}
	next := unknown(cur.DeviceID)
	next.Status, next.ProfileID = StatusCompliant, profileID
	if profileID == "" && cur.Status == StatusUnknown {
		// No profile has ever reached the device: there is nothing to
		// record, and not writing a row spares every check-in of a fleet
		// without compliance profiles a commit. State keeps reading
		// StatusUnknown for it.
		return next, nil
	}
	return e.saveIfChanged(ctx, cur, next, now)
}

// enforce records the violations and takes every step that is due, in
// ladder order, then a repeated prompt if one is due.
func (e *Engine) enforce(ctx context.Context, cur *State, p *Profile, violations []Violation, now time.Time) (*State, error) {
	next := cur.clone()
	if cur.Status != StatusNoncompliant || cur.ProfileID != p.ID || cur.Since == nil {
		// A violation begins, or the device's profile changed: its ladder
		// starts from the bottom, so a new profile's steps never fire at
		// once on time spent under another profile.
		if cur.Status == StatusNoncompliant {
			if err := e.cancelWipes(ctx, cur); err != nil {
				return nil, err
			}
		}
		next = unknown(cur.DeviceID)
		next.Since = &now
	}
	next.Status, next.Violations, next.ProfileID = StatusNoncompliant, violations, p.ID
	cur, err := e.saveIfChanged(ctx, cur, next, now)
	if err != nil {
		return nil, err
	}
	for i := cur.Step + 1; i < len(p.Actions); i++ {
		step := p.Actions[i]
		if now.Before(cur.Since.Add(hours(step.AfterHours))) {
			break
		}
		if cur, err = e.take(ctx, cur, i, step, now); err != nil {
			return nil, err
		}
		if step.Action == Remove {
			return cur, nil
		}
	}
	if i := slices.IndexFunc(p.Actions, func(s Step) bool { return s.Action == Prompt }); i >= 0 && i <= cur.Step {
		step := p.Actions[i]
		if cur.Prompts < step.Count && cur.LastPromptAt != nil && !now.Before(cur.LastPromptAt.Add(hours(step.IntervalHours))) {
			// One prompt per check even if several intervals passed
			// unchecked: the user is reminded, not flooded.
			next := cur.clone()
			return e.prompt(ctx, cur, next, step, now)
		}
	}
	return cur, nil
}

func hours(n int) time.Duration { return time.Duration(n) * time.Hour }

// take takes ladder step i. Every step is saved as taken before its effect
// runs (see the package doc); remove, the one idempotent effect, runs
// first.
func (e *Engine) take(ctx context.Context, cur *State, i int, step Step, now time.Time) (*State, error) {
	next := cur.clone()
	next.Step = i
	next.Taken = append(next.Taken, Taken{Step: i, Action: step.Action, At: now})
	log := e.log().With("device", cur.DeviceID, "profile", cur.ProfileID, "action", string(step.Action),
		"since", cur.Since, "violations", cur.Violations)
	switch step.Action {
	case Monitor, Untrust, Quarantine:
		next.Untrusted = next.Untrusted || step.Action == Untrust
		next.Quarantined = next.Quarantined || step.Action == Quarantine
		saved, err := e.save(ctx, next, now)
		if err == nil {
			log.WarnContext(ctx, "compliance: device out of compliance")
		}
		return saved, err
	case Prompt:
		return e.prompt(ctx, cur, next, step, now)
	case WipeWork, WipeDevice:
		return e.wipe(ctx, cur, next, command.Type(step.Action), log, now)
	case Remove:
		if e.Remove == nil {
			return nil, errors.New("compliance: the ladder removes a device but the engine has no Remove")
		}
		// Removing twice is harmless (the second is ErrNotFound), so
		// remove runs before the state is saved: a crash in between
		// repeats it rather than losing it.
		if err := e.Remove(ctx, cur.DeviceID); err != nil && !errors.Is(err, errs.ErrNotFound) {
			return nil, fmt.Errorf("compliance: remove device %s: %w", cur.DeviceID, err)
		}
		log.WarnContext(ctx, "compliance: device removed")
		return e.save(ctx, next, now)
	}
	return nil, fmt.Errorf("compliance: unknown action %q", step.Action)
}

// prompt saves next with one more prompt, then queues it; a prompt lives
// one interval, so prompts do not pile up on a device that is offline.
func (e *Engine) prompt(ctx context.Context, cur, next *State, step Step, now time.Time) (*State, error) {
	next.Prompts++
	next.LastPromptAt = &now
	saved, err := e.save(ctx, next, now)
	if err != nil {
		return nil, err
	}
	payload, err := json.Marshal(map[string]string{"text": promptText(saved.Violations)})
	if err != nil {
		return nil, err
	}
	if _, err := e.send(ctx, saved.DeviceID, command.NewCommand{Type: command.Message, Payload: payload,
		TTL: hours(step.IntervalHours), CreatedBy: CreatedBy}); err != nil {
		e.revert(ctx, saved, cur, now)
		return nil, err
	}
	return saved, nil
}

// wipe saves the step as taken, then queues the wipe and records its
// command ID (for a cancel if the device recovers first).
func (e *Engine) wipe(ctx context.Context, cur, next *State, typ command.Type, log *slog.Logger, now time.Time) (*State, error) {
	saved, err := e.save(ctx, next, now)
	if err != nil {
		return nil, err
	}
	// A crash here loses the wipe (at most once, see the package doc).
	cmd, err := e.send(ctx, saved.DeviceID, command.NewCommand{Type: typ, CreatedBy: CreatedBy})
	if err != nil {
		e.revert(ctx, saved, cur, now)
		return nil, err
	}
	log.WarnContext(ctx, "compliance: wipe queued", "command", cmd.ID)
	withID := saved.clone()
	withID.Taken[len(withID.Taken)-1].CommandID = cmd.ID
	if again, err := e.save(ctx, withID, now); err != nil {
		// The wipe is queued and recorded as taken; only the cancel on
		// recovery is lost.
		log.ErrorContext(ctx, "compliance: could not record the wipe command", "command", cmd.ID, "err", err)
	} else {
		saved = again
	}
	return saved, nil
}

func (e *Engine) send(ctx context.Context, deviceID string, in command.NewCommand) (*command.Command, error) {
	if e.Commands == nil {
		return nil, errors.New("compliance: the ladder queues commands but the engine has no Commands")
	}
	cmds, err := e.Commands.Send(ctx, []string{deviceID}, in)
	if err != nil {
		return nil, fmt.Errorf("compliance: queue %s for device %s: %w", in.Type, deviceID, err)
	}
	if len(cmds) != 1 {
		return nil, fmt.Errorf("compliance: queue %s for device %s: got %d commands", in.Type, deviceID, len(cmds))
	}
	return cmds[0], nil
}

// revert undoes a step whose effect failed, so the next check retries it
// (after evaluating the device again). The command service's Send is one
// transaction, so its failure means nothing was queued.
func (e *Engine) revert(ctx context.Context, saved, cur *State, now time.Time) {
	back := cur.clone()
	back.Version = saved.Version
	if _, err := e.save(ctx, back, now); err != nil {
		e.log().ErrorContext(ctx, "compliance: could not undo a step whose effect failed; it stays taken",
			"device", cur.DeviceID, "step", saved.Step, "err", err)
	}
}

// cancelWipes cancels the wipes of st that may still be queued.
func (e *Engine) cancelWipes(ctx context.Context, st *State) error {
	c, ok := e.Commands.(Canceler)
	for _, t := range st.Taken {
		if t.CommandID == "" {
			continue
		}
		if !ok {
			e.log().WarnContext(ctx, "compliance: a wipe may still be queued for a device that recovered; cancel it by hand",
				"device", st.DeviceID, "command", t.CommandID)
			continue
		}
		if _, err := c.Cancel(ctx, t.CommandID); err != nil && !errs.Is(err, errs.Conflict) && !errs.Is(err, errs.NotFound) {
			return fmt.Errorf("compliance: cancel %s of device %s: %w", t.Action, st.DeviceID, err)
		}
	}
	return nil
}

// save stores a copy of st (compare-and-swap on st.Version) and returns
// it with its new version.
func (e *Engine) save(ctx context.Context, st *State, now time.Time) (*State, error) {
	out := st.clone()
	out.UpdatedAt = now
	if err := e.Store.SaveComplianceState(ctx, out); err != nil {
		return nil, fmt.Errorf("compliance: save state of device %s: %w", st.DeviceID, err)
	}
	return out, nil
}

// saveIfChanged saves next in place of cur unless it says the same.
func (e *Engine) saveIfChanged(ctx context.Context, cur, next *State, now time.Time) (*State, error) {
	a, b := cur.clone(), next.clone()
	a.Version, a.UpdatedAt, b.Version, b.UpdatedAt = 0, time.Time{}, 0, time.Time{}
	if reflect.DeepEqual(a, b) {
		return cur, nil
	}
	next = next.clone()
	next.Version = cur.Version
	return e.save(ctx, next, now)
}

// clone copies st deeply, with nil lists made empty (as stored).
func (st *State) clone() *State {
	c := *st
	c.Violations = append([]Violation{}, st.Violations...)
	c.Taken = append([]Taken{}, st.Taken...)
	if st.Since != nil {
		t := *st.Since
		c.Since = &t
	}
	if st.LastPromptAt != nil {
		t := *st.LastPromptAt
		c.LastPromptAt = &t
	}
	return &c
}

// promptText tells the user what is wrong, within MaxPromptText bytes.
func promptText(vs []Violation) string {
	details := make([]string, len(vs))
	for i, v := range vs {
		details[i] = v.Detail
	}
	text := "This device does not meet your organization's compliance rules: " + strings.Join(details, "; ") +
		". Fix this to keep access to work resources."
	if len(text) > MaxPromptText {
		text = text[:MaxPromptText-len("…")]
		for !utf8.ValidString(text) {
			text = text[:len(text)-1]
		}
		text += "…"
	}
	return text
}
