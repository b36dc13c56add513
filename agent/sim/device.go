package sim

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"

	"github.com/custos-uem/custos/agent"
	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/device"
	wire "github.com/custos-uem/custos/platform/agent"
)

// A Device is also the Applier and Executor of its simulated agent: it
// records what it applied and ran, so tests observe the device side of a
// configuration or a command the way an administrator would look at a
// phone.
var (
	_ agent.Applier  = (*Device)(nil)
	_ agent.Executor = (*Device)(nil)
)

// simulated is how a simulated device names itself in unsupported-command
// errors.
const simulated = "the simulated device"

// Execution is one command the simulated device was asked to run.
type Execution struct {
	ID   string
	Type string
	// Payload is the command's payload; a set_password payload is not
	// kept (the Executions of a test may be printed).
	Payload json.RawMessage
	// Status and Message are the result reported.
	Status, Message string
}

// Bind returns o with the device as its Collector, Applier and Executor
// where o names none. Push registration stays the caller's choice: set
// o.PushProvider and o.PushToken from FakePush to have the agent register
// one.
func (d *Device) Bind(o agent.Options) agent.Options {
	if o.Collector == nil {
		o.Collector = d
	}
	if o.Applier == nil {
		o.Applier = d
	}
	if o.Executor == nil {
		o.Executor = d
	}
	return o
}

// Attach connects the device to the Client running it, so that Wake (a
// simulated push notification) reaches it.
func (d *Device) Attach(c *agent.Client) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.client = c
}

// Wake delivers a simulated push notification: the attached Client runs
// its command round trips at once. It reports whether a Client was
// attached.
func (d *Device) Wake() bool {
	d.mu.Lock()
	c := d.client
	d.mu.Unlock()
	if c == nil {
		return false
	}
	c.Wake()
	return true
}

// FakePush returns the device's simulated push registration, stable for
// its hardware: an APNs token and MDM topic for iOS, an FCM registration
// token for Android, a WNS channel URI for Windows. A simulated Linux
// device has none (provider "").
func (d *Device) FakePush() (provider, token, topic string) {
	sum := sha256.Sum256([]byte("custos-sim-push\x00" + d.inv.HardwareID))
	switch d.inv.Platform {
	case "ios":
		return "apns", hex.EncodeToString(sum[:]), "com.apple.mgmt.External." + hex.EncodeToString(sum[:16])
	case "android":
		return "fcm", base64.RawURLEncoding.EncodeToString(sum[:8]) + ":APA91b" + base64.RawURLEncoding.EncodeToString(append(sum[:], sum[:]...)), ""
	case "windows":
		return "wns", "https://wns2-par02p.notify.windows.com/w/?token=" + base64.RawURLEncoding.EncodeToString(sum[:]), ""
	}
	return "", "", ""
}

// SetBusy makes the device answer every command "not now" with reason (a
// locked phone, a user in a call), until SetBusy("").
func (d *Device) SetBusy(reason string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.busy = reason
}

// Locked reports whether a lock command locked the device (and no
// clear_passcode unlocked it since).
func (d *Device) Locked() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.locked
}

// Applied returns the configuration items the device applied last.
func (d *Device) Applied() []wire.Item {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.applied)
}

// Executed returns the commands the device was asked to run, in order,
// not-now answers included.
func (d *Device) Executed() []Execution {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.executed)
}

// Apply implements agent.Applier: every item is applied (a simulated
// device supports every kind) and recorded.
func (d *Device) Apply(ctx context.Context, _, next wire.Configuration) ([]wire.ItemStatus, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.applied = slices.Clone(next.Items)
	out := make([]wire.ItemStatus, len(next.Items))
	for i, it := range next.Items {
		out[i] = wire.ItemStatus{ID: it.ID, Status: agent.StatusApplied}
	}
	return out, nil
}

// Execute implements agent.Executor: it acknowledges what a managed phone
// or computer does (lock, passcode, wipes, restart, inventory, app
// install and removal changing the app list, messages), answers "not now"
// while busy, and refuses raw platform commands.
func (d *Device) Execute(ctx context.Context, cmd wire.Command) (wire.CommandResult, error) {
	r, err := d.execute(ctx, cmd)
	e := Execution{ID: cmd.ID, Type: cmd.Type, Payload: cmd.Payload, Status: r.Status, Message: r.Message}
	if cmd.Type == string(command.SetPassword) {
		e.Payload = nil
	}
	if err != nil {
		e.Status, e.Message = agent.ResultError, err.Error()
	}
	d.mu.Lock()
	d.executed = append(d.executed, e)
	d.mu.Unlock()
	return r, err
}

func (d *Device) execute(ctx context.Context, cmd wire.Command) (wire.CommandResult, error) {
	if err := ctx.Err(); err != nil {
		return wire.CommandResult{}, err
	}
	d.mu.Lock()
	busy := d.busy
	d.mu.Unlock()
	if busy != "" {
		return agent.NotNow(busy), nil
	}
	switch cmd.Type {
	case string(command.DeviceInfo), string(command.InstalledApps):
		return agent.InventoryResult(ctx, d, cmd.Type)
	case string(command.Lock):
		d.setLocked(true)
		return agent.Acknowledged("locked"), nil
	case string(command.ClearPasscode):
		d.setLocked(false)
		return agent.Acknowledged("passcode cleared"), nil
	case string(command.SetPassword):
		if _, err := agent.ParseSetPassword(cmd); err != nil {
			return wire.CommandResult{}, err
		}
		return agent.Acknowledged("password set"), nil
	case string(command.WipeWork):
		return agent.Acknowledged("work data deleted"), nil
	case string(command.WipeDevice):
		return agent.Acknowledged("device data deleted"), nil
	case string(command.Restart):
		return agent.Acknowledged("restarting"), nil
	case string(command.InstallApp):
		p, err := agent.ParseInstallApp(cmd)
		if err != nil {
			return wire.CommandResult{}, err
		}
		d.install(p.AppID)
		return agent.Acknowledged("installed " + p.AppID), nil
	case string(command.RemoveApp):
		p, err := agent.ParseRemoveApp(cmd)
		if err != nil {
			return wire.CommandResult{}, err
		}
		if !d.remove(p.AppID) {
			return wire.CommandResult{Status: agent.ResultError, Message: p.AppID + " is not installed"}, nil
		}
		return agent.Acknowledged("removed " + p.AppID), nil
	case agent.CommandMessage:
		if _, err := agent.ParseMessage(cmd); err != nil {
			return wire.CommandResult{}, err
		}
		return agent.Acknowledged("message shown"), nil
	}
	return wire.CommandResult{}, agent.Unsupported(cmd.Type, simulated)
}

func (d *Device) setLocked(v bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.locked = v
}

// install adds the app (version 1.0, named after its ID) unless present.
func (d *Device) install(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if slices.ContainsFunc(d.inv.Apps, func(a device.App) bool { return a.ID == id }) {
		return
	}
	d.inv.Apps = append(d.inv.Apps, device.App{ID: id, Name: id, Version: "1.0"})
	slices.SortFunc(d.inv.Apps, func(a, b device.App) int { return strings.Compare(a.Name, b.Name) })
}

// remove removes the app and reports whether it was installed.
func (d *Device) remove(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := len(d.inv.Apps)
	d.inv.Apps = slices.DeleteFunc(d.inv.Apps, func(a device.App) bool { return a.ID == id })
	return len(d.inv.Apps) != n
}
