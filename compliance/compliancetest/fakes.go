package compliancetest

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/compliance"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/id"
)

// Clock is a settable clock for Engine.Now.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock reading t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// Recorder is a fake command service: it records what is sent and
// cancelled (it implements compliance.Commander and compliance.Canceler).
type Recorder struct {
	mu        sync.Mutex
	sent      []*command.Command
	cancelled []string
	fail      error
	// OnSend, if set, runs inside Send before anything is recorded (to
	// simulate a crash with a panic).
	OnSend func(in command.NewCommand)
}

// Send records one command per device, or returns the error set by Fail.
func (r *Recorder) Send(_ context.Context, deviceIDs []string, in command.NewCommand) ([]*command.Command, error) {
	if r.OnSend != nil {
		r.OnSend(in)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return nil, r.fail
	}
	var out []*command.Command
	for _, d := range deviceIDs {
		c := &command.Command{ID: id.New(), DeviceID: d, Type: in.Type, Payload: in.Payload,
			Status: command.StatusPending, CreatedBy: in.CreatedBy, ExpiresAt: time.Now().Add(in.TTL)}
		r.sent = append(r.sent, c)
		out = append(out, c)
	}
	return out, nil
}

// Cancel cancels a recorded command: command.ErrNotFound for an unknown
// one, command.ErrFinal for one cancelled already.
func (r *Recorder) Cancel(_ context.Context, cmdID string) (*command.Command, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.sent {
		if c.ID != cmdID {
			continue
		}
		if c.Status.Final() {
			return nil, command.ErrFinal
		}
		c.Status = command.StatusCancelled
		r.cancelled = append(r.cancelled, cmdID)
		return c, nil
	}
	return nil, command.ErrNotFound
}

// Fail makes Send fail with err (nil: succeed again).
func (r *Recorder) Fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = err
}

// Sent returns the commands of type typ sent so far, in order.
func (r *Recorder) Sent(typ command.Type) []*command.Command {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*command.Command
	for _, c := range r.sent {
		if c.Type == typ {
			out = append(out, c)
		}
	}
	return out
}

// Count returns how many commands of type typ were sent.
func (r *Recorder) Count(typ command.Type) int { return len(r.Sent(typ)) }

// Cancelled returns the IDs of the cancelled commands.
func (r *Recorder) Cancelled() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.cancelled...)
}

// PromptText returns the text of a prompt command.
func PromptText(t testing.TB, c *command.Command) string {
	t.Helper()
	var p struct {
		Text string `json:"text"`
	}
	if err := json.Unmarshal(c.Payload, &p); err != nil || p.Text == "" {
		t.Fatalf("prompt payload %s: %v", c.Payload, err)
	}
	return p.Text
}

// Env is an Engine wired to fakes: a Clock, a Recorder, and a Remove that
// counts its calls before it calls the real one.
type Env struct {
	Engine   *compliance.Engine
	Clock    *Clock
	Commands *Recorder
	mu       sync.Mutex
	removes  int
	profile  *compliance.Profile
}

// NewEnv wires an Engine to store and devices, with profile applying to
// every device, the clock at start, and remove as the real removal.
func NewEnv(store compliance.Store, devices device.Store, remove func(context.Context, string) error,
	profile *compliance.Profile, start time.Time) *Env {
	env := &Env{Clock: NewClock(start), Commands: &Recorder{}, profile: profile}
	env.Engine = &compliance.Engine{
		Store:   store,
		Devices: devices,
		Profile: func(context.Context, *device.Device) (*compliance.Profile, error) {
			env.mu.Lock()
			defer env.mu.Unlock()
			return env.profile, nil
		},
		Commands: env.Commands,
		Remove: func(ctx context.Context, deviceID string) error {
			env.mu.Lock()
			env.removes++
			env.mu.Unlock()
			return remove(ctx, deviceID)
		},
		Now: env.Clock.Now,
	}
	return env
}

// SetProfile changes the profile that applies to every device.
func (env *Env) SetProfile(p *compliance.Profile) {
	env.mu.Lock()
	defer env.mu.Unlock()
	env.profile = p
}

// Removes returns how often the engine called Remove.
func (env *Env) Removes() int {
	env.mu.Lock()
	defer env.mu.Unlock()
	return env.removes
}

// Check runs Engine.Check at the given offset from start, failing the
// test on error.
func (env *Env) Check(t testing.TB, deviceID string, at time.Time) *compliance.State {
	t.Helper()
	env.Clock.Set(at)
	st, err := env.Engine.Check(context.Background(), deviceID)
	if err != nil {
		t.Fatalf("Check at %v: %v", at, err)
	}
	return st
}
