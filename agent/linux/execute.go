package linux

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/custos-uem/custos/agent"
	"github.com/custos-uem/custos/command"
	wire "github.com/custos-uem/custos/platform/agent"
)

// DefaultWorkDir is the work-data directory under the state directory when
// none is configured.
const DefaultWorkDir = "work"

// linuxAgent names the Linux agent in unsupported-command errors.
const linuxAgent = "the Linux agent"

// Executor runs commands on a Linux system (agent.Executor), never as
// anything but the user running the agent: it must be safe to run on a
// test machine, so it neither reboots, wipes the device nor changes
// passwords.
//
//	lock              loginctl lock-sessions (error when loginctl is missing)
//	wipe_work         deletes the contents of WorkDir, never outside it
//	device_info       the Collector's inventory
//	installed_apps    the Collector's packages
//	message           printed to Out and logged
//	everything else   error "… is not supported by the Linux agent"
type Executor struct {
	Programs
	// Collector answers device_info and installed_apps.
	Collector agent.Collector
	// WorkDir is the work-data directory that wipe_work empties: an
	// absolute path, created 0700 by Prepare.
	WorkDir string
	// StateDir is the agent's state directory: a WorkDir holding it is
	// refused (wiping would delete the device's key).
	StateDir string
	// Home is the user's home directory, which is never wiped; "" is
	// os.UserHomeDir.
	Home string
	// Out receives messages for the user; nil is os.Stdout.
	Out io.Writer
	// Logger logs what ran; nil discards.
	Logger *slog.Logger
}

var _ agent.Executor = (*Executor)(nil)

// Prepare creates WorkDir (mode 0700, tightened if it exists) after
// checking it is a directory wipe_work may empty.
func (e *Executor) Prepare() error {
	if err := e.checkWorkDir(false); err != nil {
		return err
	}
	if err := os.MkdirAll(e.WorkDir, 0o700); err != nil {
		return fmt.Errorf("linux: work directory: %w", err)
	}
	fi, err := os.Lstat(e.WorkDir)
	if err != nil {
		return fmt.Errorf("linux: work directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("linux: work directory %s is not a directory", e.WorkDir)
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(e.WorkDir, 0o700); err != nil {
			return fmt.Errorf("linux: work directory: %w", err)
		}
	}
	return nil
}

// Execute implements agent.Executor.
func (e *Executor) Execute(ctx context.Context, cmd wire.Command) (wire.CommandResult, error) {
	switch cmd.Type {
	case string(command.DeviceInfo), string(command.InstalledApps):
		return agent.InventoryResult(ctx, e.Collector, cmd.Type)
	case string(command.Lock):
		return e.lock(ctx)
	case string(command.WipeWork):
		n, err := e.WipeWork()
		if err != nil {
			return wire.CommandResult{}, err
		}
		data, _ := json.Marshal(map[string]int{"removed": n})
		return wire.CommandResult{Status: agent.ResultAcknowledged, Message: fmt.Sprintf("work data deleted (%d entries)", n), Data: data}, nil
	case agent.CommandMessage:
		p, err := agent.ParseMessage(cmd)
		if err != nil {
			return wire.CommandResult{}, err
		}
		out := e.Out
		if out == nil {
			out = os.Stdout
		}
		text := agent.DisplayText(p.Text)
		if _, err := fmt.Fprintf(out, "Message from your administrator:\n%s\n", text); err != nil {
			return wire.CommandResult{}, fmt.Errorf("cannot show the message: %w", err)
		}
		e.log().Info("message from the administrator", "text", text)
		return agent.Acknowledged("message shown"), nil
	}
	// restart, wipe_device, set_password, clear_passcode, install_app,
	// remove_app, raw: an agent must not reboot or wipe the machine it
	// runs on, nor manage its packages or passwords without privileges.
	return wire.CommandResult{}, agent.Unsupported(cmd.Type, linuxAgent)
}

func (e *Executor) log() *slog.Logger {
	if e.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Logger
}

func (e *Executor) lock(ctx context.Context) (wire.CommandResult, error) {
	lc, err := e.lookPath("loginctl")
	if err != nil {
		return wire.CommandResult{}, errors.New("loginctl not found: cannot lock the sessions of this system")
	}
	if err := e.runChecked(ctx, lc, "lock-sessions"); err != nil {
		return wire.CommandResult{}, err
	}
	return agent.Acknowledged("sessions locked"), nil
}

// WipeWork deletes everything inside WorkDir and returns how many entries
// of it went. It never follows a symbolic link out of the directory (links
// are removed, not their targets), and refuses a WorkDir that is not an
// absolute path, is "/", the home directory or one of its parents, holds
// the state directory, or is itself a symbolic link.
func (e *Executor) WipeWork() (int, error) {
	if err := e.checkWorkDir(true); err != nil {
		return 0, err
	}
	root, err := os.OpenRoot(e.WorkDir)
	if err != nil {
		return 0, fmt.Errorf("wipe_work: %w", err)
	}
	defer root.Close()
	entries, err := fs.ReadDir(root.FS(), ".")
	if err != nil {
		return 0, fmt.Errorf("wipe_work: %w", err)
	}
	n := 0
	for _, ent := range entries {
		// Root.RemoveAll resolves every name inside the root and removes a
		// link itself rather than what it points to.
		if err := root.RemoveAll(ent.Name()); err != nil {
			return n, fmt.Errorf("wipe_work: %w", err)
		}
		n++
	}
	e.log().Warn("work data deleted", "dir", e.WorkDir, "entries", n)
	return n, nil
}

// checkWorkDir refuses a work directory wiping which could delete more than
// work data; exists says it must exist already.
func (e *Executor) checkWorkDir(exists bool) error {
	dir := e.WorkDir
	if dir == "" || !filepath.IsAbs(dir) {
		return fmt.Errorf("the work directory %q is not an absolute path", dir)
	}
	dir = filepath.Clean(dir)
	if dir == "/" {
		return errors.New("refusing to use / as the work directory")
	}
	resolved := resolve(dir)
	home := e.Home
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	for _, p := range []struct{ what, path string }{{"the home directory", home}, {"the state directory", e.StateDir}} {
		if p.path == "" {
			continue
		}
		abs, err := filepath.Abs(p.path)
		if err != nil {
			continue
		}
		for _, d := range []string{dir, resolved} {
			if within(abs, d) || within(resolve(abs), d) {
				return fmt.Errorf("refusing to use %s as the work directory: it is or holds %s", dir, p.what)
			}
		}
	}
	fi, err := os.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist) && !exists:
		return nil
	case err != nil:
		return fmt.Errorf("work directory: %w", err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("refusing to use %s as the work directory: it is a symbolic link", dir)
	case !fi.IsDir():
		return fmt.Errorf("the work directory %s is not a directory", dir)
	}
	return nil
}

// resolve returns p with symbolic links resolved, or p when it cannot.
func resolve(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

// within reports whether p is dir or inside it.
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}
