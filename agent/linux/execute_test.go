package linux

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custos-uem/custos/agent"
	wire "github.com/custos-uem/custos/platform/agent"
)

func mkfile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustExist(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("%s was removed: %v", path, err)
	}
}

// workTree makes a work directory holding files, a nested directory and
// symbolic links out of it (to a directory and to a file), and returns the
// work directory and the outside directory.
func workTree(t *testing.T) (work, outside string) {
	t.Helper()
	base := t.TempDir()
	work, outside = filepath.Join(base, "work"), filepath.Join(base, "outside")
	mkfile(t, filepath.Join(outside, "keep.txt"), "not work data")
	mkfile(t, filepath.Join(work, "mail.db"), "work mail")
	mkfile(t, filepath.Join(work, "docs", "deep", "report.pdf"), "work doc")
	for name, target := range map[string]string{"out-dir": outside, "docs/out-file": filepath.Join(outside, "keep.txt"), "dotdot": ".."} {
		if err := os.Symlink(target, filepath.Join(work, name)); err != nil {
			t.Fatal(err)
		}
	}
	return work, outside
}

func TestWipeWork(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T) *Executor
		wantErr string
	}{
		{name: "fail/root directory", wantErr: "refusing to use / as the work directory",
			prepare: func(t *testing.T) *Executor { return &Executor{WorkDir: "/"} }},
		{name: "fail/relative path", wantErr: "is not an absolute path",
			prepare: func(t *testing.T) *Executor { return &Executor{WorkDir: "work"} }},
		{name: "fail/the home directory", wantErr: "it is or holds the home directory",
			prepare: func(t *testing.T) *Executor {
				home := t.TempDir()
				return &Executor{WorkDir: home, Home: home}
			}},
		{name: "fail/a parent of the home directory", wantErr: "it is or holds the home directory",
			prepare: func(t *testing.T) *Executor {
				base := t.TempDir()
				return &Executor{WorkDir: base, Home: filepath.Join(base, "ana")}
			}},
		{name: "fail/holds the state directory", wantErr: "it is or holds the state directory",
			prepare: func(t *testing.T) *Executor {
				base := t.TempDir()
				return &Executor{WorkDir: base, StateDir: filepath.Join(base, "state"), Home: "/nonexistent-home"}
			}},
		{name: "fail/work directory is a symbolic link", wantErr: "it is a symbolic link",
			prepare: func(t *testing.T) *Executor {
				_, outside := workTree(t)
				link := filepath.Join(t.TempDir(), "work")
				if err := os.Symlink(outside, link); err != nil {
					t.Fatal(err)
				}
				return &Executor{WorkDir: link, Home: "/nonexistent-home"}
			}},
		{name: "fail/work directory missing", wantErr: "no such file",
			prepare: func(t *testing.T) *Executor {
				return &Executor{WorkDir: filepath.Join(t.TempDir(), "gone"), Home: "/nonexistent-home"}
			}},
		{name: "ok/contents deleted, links removed but not followed",
			prepare: func(t *testing.T) *Executor {
				work, _ := workTree(t)
				return &Executor{WorkDir: work, StateDir: filepath.Join(filepath.Dir(work), "state"), Home: "/nonexistent-home"}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := tt.prepare(t)
			var outsideFiles []string
			if e.WorkDir != "/" && filepath.IsAbs(e.WorkDir) {
				outside := filepath.Join(filepath.Dir(e.WorkDir), "outside")
				if _, err := os.Stat(outside); err == nil {
					outsideFiles = []string{outside, filepath.Join(outside, "keep.txt")}
				}
			}
			n, err := e.WipeWork()
			for _, p := range outsideFiles {
				mustExist(t, p)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			entries, _ := os.ReadDir(e.WorkDir)
			if n != 4 || len(entries) != 0 {
				t.Fatalf("removed %d, left %v", n, entries)
			}
			mustExist(t, e.WorkDir)
		})
	}
}

func TestPrepareWorkDir(t *testing.T) {
	base := t.TempDir()
	e := &Executor{WorkDir: filepath.Join(base, "state", "work"), StateDir: filepath.Join(base, "state"), Home: "/nonexistent-home"}
	if err := e.Prepare(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(e.WorkDir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("work dir: %v, %v", fi.Mode(), err)
	}
	if err := os.Chmod(e.WorkDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := e.Prepare(); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(e.WorkDir); fi.Mode().Perm() != 0o700 {
		t.Fatalf("not tightened: %v", fi.Mode())
	}
	bad := &Executor{WorkDir: base, StateDir: filepath.Join(base, "state"), Home: "/nonexistent-home"}
	if err := bad.Prepare(); err == nil || !strings.Contains(err.Error(), "state directory") {
		t.Fatalf("Prepare of a directory holding the state = %v", err)
	}
}

func TestExecutor(t *testing.T) {
	root := copyTree(t, "testdata/debian")
	tests := []struct {
		name       string
		progs      *fakePrograms
		cmd        wire.Command
		wantStatus string // "" with wantErr: an error return
		wantErr    string
		wantRuns   []string
		check      func(t *testing.T, r wire.CommandResult, out string)
	}{
		{name: "fail/restart is never run", cmd: wire.Command{Type: "restart"}, wantErr: "restart is not supported by the Linux agent"},
		{name: "fail/wipe_device is never run", cmd: wire.Command{Type: "wipe_device"}, wantErr: "wipe_device is not supported by the Linux agent"},
		{name: "fail/set_password", cmd: wire.Command{Type: "set_password", Payload: json.RawMessage(`{"password":"x"}`)}, wantErr: "set_password is not supported by the Linux agent"},
		{name: "fail/clear_passcode", cmd: wire.Command{Type: "clear_passcode"}, wantErr: "clear_passcode is not supported by the Linux agent"},
		{name: "fail/lock without loginctl", progs: &fakePrograms{}, cmd: wire.Command{Type: "lock"}, wantErr: "loginctl not found"},
		{name: "fail/lock when loginctl fails", progs: &fakePrograms{have: map[string]bool{"loginctl": true}, out: "Failed to issue method call", err: errors.New("exit status 1")},
			cmd: wire.Command{Type: "lock"}, wantErr: "loginctl lock-sessions failed: exit status 1: Failed to issue method call", wantRuns: []string{"loginctl lock-sessions"}},
		{name: "fail/message without payload", cmd: wire.Command{Type: "message"}, wantErr: "has no payload"},
		{name: "ok/lock", progs: &fakePrograms{have: map[string]bool{"loginctl": true}}, cmd: wire.Command{Type: "lock"},
			wantStatus: agent.ResultAcknowledged, wantRuns: []string{"loginctl lock-sessions"}},
		{name: "ok/message printed, terminal escapes defused", cmd: wire.Command{Type: "message", Payload: json.RawMessage(`{"text":"Update today\u001b[2J please"}`)},
			wantStatus: agent.ResultAcknowledged,
			check: func(t *testing.T, _ wire.CommandResult, out string) {
				if !strings.Contains(out, "Update today\uFFFD[2J please") || strings.Contains(out, "\x1b") {
					t.Fatalf("printed %q", out)
				}
			}},
		{name: "ok/device_info from the collector", cmd: wire.Command{Type: "device_info"}, wantStatus: agent.ResultAcknowledged,
			check: func(t *testing.T, r wire.CommandResult, _ string) {
				var d agent.DeviceInfoData
				if err := json.Unmarshal(r.Data, &d); err != nil || d.Platform != Platform || d.HardwareID == "" || d.Info.OSName == "" {
					t.Fatalf("data %s: %v", r.Data, err)
				}
			}},
		{name: "ok/installed_apps from the package database", cmd: wire.Command{Type: "installed_apps"}, wantStatus: agent.ResultAcknowledged,
			check: func(t *testing.T, r wire.CommandResult, _ string) {
				var d agent.InstalledAppsData
				if err := json.Unmarshal(r.Data, &d); err != nil || len(d.Apps) == 0 || d.Total != len(d.Apps) {
					t.Fatalf("data %s: %v", r.Data, err)
				}
			}},
		{name: "ok/wipe_work", cmd: wire.Command{Type: "wipe_work"}, wantStatus: agent.ResultAcknowledged,
			check: func(t *testing.T, r wire.CommandResult, _ string) {
				if string(r.Data) != `{"removed":1}` {
					t.Fatalf("data %s", r.Data)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.progs == nil {
				tt.progs = &fakePrograms{}
			}
			base := t.TempDir()
			var out bytes.Buffer
			e := &Executor{Programs: tt.progs.programs(), Collector: &Collector{Root: root}, WorkDir: filepath.Join(base, "work"),
				StateDir: filepath.Join(base, "state"), Home: "/nonexistent-home", Out: &out}
			if err := e.Prepare(); err != nil {
				t.Fatal(err)
			}
			mkfile(t, filepath.Join(e.WorkDir, "doc.txt"), "x")
			r, err := e.Execute(context.Background(), tt.cmd)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(tt.wantErr, "not supported") && !errors.Is(err, agent.ErrUnsupported) {
					t.Fatal("not ErrUnsupported")
				}
			} else if err != nil || r.Status != tt.wantStatus {
				t.Fatalf("result = %+v, %v", r, err)
			}
			if runs := tt.progs.ran(); strings.Join(runs, "\n") != strings.Join(tt.wantRuns, "\n") {
				t.Fatalf("ran %q, want %q", runs, tt.wantRuns)
			}
			if tt.check != nil {
				tt.check(t, r, out.String())
			}
		})
	}
}
