package linux

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/custos-uem/custos/agent"
	"github.com/custos-uem/custos/pki"
	wire "github.com/custos-uem/custos/platform/agent"
)

// PolicyDir is the directory, under the agent's state directory, of the
// managed state files: one <item id>.json per configuration item, so that
// an operator sees what the Core asked for and what the agent did.
const PolicyDir = "policy"

// What the Linux agent enforces.
const (
	KindITPolicy = "it_policy"
	// KindCompliance items are enforced by the Core, not on the device.
	KindCompliance = "compliance"
	// SettingScreenLockTimeout is the IT policy rule the Linux agent
	// enforces: seconds of inactivity before the screen locks (0: never).
	SettingScreenLockTimeout = "screen_lock_timeout_seconds"
	// MaxScreenLockTimeout bounds it: a day.
	MaxScreenLockTimeout = 24 * 60 * 60
	// maxItemID bounds an item ID used as a file name.
	maxItemID = 128
	// maxProgramOutput bounds what a failed program's output adds to an
	// error message.
	maxProgramOutput = 200
)

// Programs runs the system programs through which the agent changes the
// system. The zero value uses os/exec; tests replace both functions so that
// nothing on the test machine changes.
type Programs struct {
	// LookPath finds a program; nil is exec.LookPath.
	LookPath func(file string) (string, error)
	// Run runs a program and returns its combined output; nil runs it
	// with os/exec.
	Run func(ctx context.Context, path string, args ...string) ([]byte, error)
}

func (p Programs) lookPath(file string) (string, error) {
	if p.LookPath != nil {
		return p.LookPath(file)
	}
	return exec.LookPath(file)
}

func (p Programs) run(ctx context.Context, path string, args ...string) ([]byte, error) {
	if p.Run != nil {
		return p.Run(ctx, path, args...)
	}
	return exec.CommandContext(ctx, path, args...).CombinedOutput()
}

// runChecked runs a program and words its failure: a non-zero exit, or
// (gsettings) a warning that the change was not saved although it exits 0.
func (p Programs) runChecked(ctx context.Context, path string, args ...string) error {
	out, err := p.run(ctx, path, args...)
	name := filepath.Base(path) + " " + strings.Join(args, " ")
	if err != nil {
		return fmt.Errorf("%s failed: %v%s", name, err, outputNote(out))
	}
	if strings.Contains(string(out), "failed to commit changes") {
		// dconf without a user session bus keeps the value in memory only.
		return fmt.Errorf("%s did not save the setting (no user session bus?)%s", name, outputNote(out))
	}
	return nil
}

func outputNote(out []byte) string {
	s := strings.Join(strings.Fields(agent.DisplayText(string(out))), " ")
	if s == "" {
		return ""
	}
	if len(s) > maxProgramOutput {
		s = strings.ToValidUTF8(s[:maxProgramOutput], "") + "…"
	}
	return ": " + s
}

// Applier applies configurations to a Linux system (agent.Applier),
// without root where the system allows: an IT policy's screen lock
// timeout through gsettings (GNOME) for the user running the agent. Every
// item is written to StateDir/policy/<item id>.json (0600, atomic);
// compliance profiles (which the Core enforces) are acknowledged as
// applied; items of other kinds the Linux agent does not enforce are
// reported failed, naming the kind.
type Applier struct {
	Programs
	// StateDir is the agent's state directory.
	StateDir string
	// Now stamps the state files; nil is time.Now.
	Now func() time.Time
}

var _ agent.Applier = (*Applier)(nil)

// PolicyFile is the content of a managed state file.
type PolicyFile struct {
	ID       string         `json:"id"`
	Kind     string         `json:"kind"`
	Name     string         `json:"name,omitempty"`
	Revision int            `json:"revision,omitempty"`
	Version  string         `json:"config_version"`
	Payload  map[string]any `json:"payload"`
	Status   string         `json:"status"`
	Error    string         `json:"error,omitempty"`
	// Enforced and NotEnforced list the payload's settings the agent
	// enforced and those it has no means to enforce on Linux.
	Enforced    []string  `json:"enforced,omitempty"`
	NotEnforced []string  `json:"not_enforced,omitempty"`
	AppliedAt   time.Time `json:"applied_at"`
}

// Apply implements agent.Applier. It fails entirely only when the policy
// directory cannot be made; a state file that cannot be written fails its
// item.
func (a *Applier) Apply(ctx context.Context, _, next wire.Configuration) ([]wire.ItemStatus, error) {
	if a.StateDir == "" {
		return nil, errors.New("linux: applier: no state directory")
	}
	dir := filepath.Join(a.StateDir, PolicyDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("linux: applier: %w", err)
	}
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	out := make([]wire.ItemStatus, len(next.Items))
	keep := map[string]bool{}
	for i, it := range next.Items {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		st := wire.ItemStatus{ID: it.ID, Status: agent.StatusApplied}
		if err := checkItemID(it.ID); err != nil {
			st.Status, st.Error = agent.StatusFailed, err.Error()
			out[i] = st
			continue
		}
		keep[it.ID+".json"] = true
		pf := PolicyFile{ID: it.ID, Kind: it.Kind, Name: it.Name, Revision: it.Revision, Version: next.Version, Payload: it.Payload}
		var err error
		pf.Enforced, pf.NotEnforced, err = a.applyItem(ctx, it)
		if err != nil {
			st.Status, st.Error = agent.StatusFailed, err.Error()
		}
		pf.Status, pf.Error, pf.AppliedAt = st.Status, st.Error, now().UTC()
		b, err := json.MarshalIndent(pf, "", "  ")
		if err == nil {
			err = pki.WriteFileAtomic(filepath.Join(dir, it.ID+".json"), append(b, '\n'), 0o600)
		}
		if err != nil {
			st.Status, st.Error = agent.StatusFailed, "cannot write the managed state file: "+err.Error()
		}
		out[i] = st
	}
	// Files of items no longer in the configuration go: the directory
	// shows exactly what the device runs.
	entries, err := os.ReadDir(dir)
	if err == nil {
		for _, e := range entries {
			if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".json") && !keep[e.Name()] {
				_ = os.Remove(filepath.Join(dir, e.Name()))
			}
		}
	}
	return out, nil
}

// applyItem enforces one item and returns which of its settings it
// enforced and which it cannot.
func (a *Applier) applyItem(ctx context.Context, it wire.Item) (enforced, notEnforced []string, err error) {
	if it.Kind == KindCompliance {
		// The Core evaluates compliance itself from what the device
		// reports; the device has nothing to enforce, only to keep the
		// profile on record (the state file).
		return nil, nil, nil
	}
	if it.Kind != KindITPolicy {
		return nil, nil, fmt.Errorf("the Linux agent does not enforce %s items (recorded in %s/%s.json)", it.Kind, PolicyDir, it.ID)
	}
	// An IT policy carries the rules of every platform; the ones Linux
	// has no means for are listed, not failed.
	for k := range it.Payload {
		if k != SettingScreenLockTimeout {
			notEnforced = append(notEnforced, k)
		}
	}
	slices.Sort(notEnforced)
	v, ok := it.Payload[SettingScreenLockTimeout]
	if !ok {
		return nil, notEnforced, nil
	}
	secs, err := lockTimeout(v)
	if err != nil {
		return nil, notEnforced, err
	}
	if err := a.setScreenLock(ctx, secs); err != nil {
		return nil, notEnforced, err
	}
	return []string{SettingScreenLockTimeout}, notEnforced, nil
}

// lockTimeout checks screen_lock_timeout_seconds as decoded from JSON.
func lockTimeout(v any) (int, error) {
	f, ok := v.(float64)
	if !ok || f != math.Trunc(f) || f < 0 || f > MaxScreenLockTimeout {
		return 0, fmt.Errorf("%s must be a whole number of seconds from 0 to %d", SettingScreenLockTimeout, MaxScreenLockTimeout)
	}
	return int(f), nil
}

// setScreenLock sets GNOME's idle delay and screen lock (0: no lock).
func (a *Applier) setScreenLock(ctx context.Context, secs int) error {
	gs, err := a.lookPath("gsettings")
	if err != nil {
		return fmt.Errorf("gsettings not found: cannot set %s on this system (no GNOME settings)", SettingScreenLockTimeout)
	}
	if err := a.runChecked(ctx, gs, "set", "org.gnome.desktop.session", "idle-delay", strconv.Itoa(secs)); err != nil {
		return err
	}
	return a.runChecked(ctx, gs, "set", "org.gnome.desktop.screensaver", "lock-enabled", strconv.FormatBool(secs > 0))
}

// checkItemID admits only IDs that are safe as file names: the Core's
// IDs are UUIDs, and an ID like "../key" must never become a path.
func checkItemID(id string) error {
	if id == "" || len(id) > maxItemID || id[0] == '.' {
		return fmt.Errorf("item ID %q is not usable as a file name", trimForError(id))
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("item ID %q is not usable as a file name", trimForError(id))
		}
	}
	return nil
}
