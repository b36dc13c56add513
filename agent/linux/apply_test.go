package linux

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/custos-uem/custos/agent"
	wire "github.com/custos-uem/custos/platform/agent"
)

// fakePrograms stands in for the system's programs: the ones named in have
// exist, and every run is recorded and answered with out/err. Nothing on
// the test machine is ever run.
type fakePrograms struct {
	mu   sync.Mutex
	have map[string]bool
	runs []string
	out  string
	err  error
}

func (f *fakePrograms) programs() Programs {
	return Programs{
		LookPath: func(file string) (string, error) {
			if f.have[file] {
				return "/usr/bin/" + file, nil
			}
			return "", exec.ErrNotFound
		},
		Run: func(_ context.Context, path string, args ...string) ([]byte, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.runs = append(f.runs, filepath.Base(path)+" "+strings.Join(args, " "))
			return []byte(f.out), f.err
		},
	}
}

func (f *fakePrograms) ran() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.runs...)
}

func screenLock(secs any) wire.Item {
	return wire.Item{ID: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", Kind: KindITPolicy, Name: "Screen lock", Revision: 3,
		Payload: map[string]any{SettingScreenLockTimeout: secs, "camera_disabled": true}}
}

func readPolicy(t *testing.T, dir, id string) PolicyFile {
	t.Helper()
	p := filepath.Join(dir, PolicyDir, id+".json")
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s mode %v, want 0600", p, fi.Mode().Perm())
	}
	b, _ := os.ReadFile(p)
	var pf PolicyFile
	if err := json.Unmarshal(b, &pf); err != nil {
		t.Fatal(err)
	}
	return pf
}

func TestApplier(t *testing.T) {
	tests := []struct {
		name      string
		progs     *fakePrograms
		item      wire.Item
		wantErr   string // of the item; "" is applied
		wantRuns  []string
		wantFile  bool
		checkFile func(t *testing.T, pf PolicyFile)
	}{
		{name: "fail/gsettings absent", progs: &fakePrograms{}, item: screenLock(300.0),
			wantErr: "gsettings not found: cannot set screen_lock_timeout_seconds on this system", wantFile: true,
			checkFile: func(t *testing.T, pf PolicyFile) {
				if pf.Status != agent.StatusFailed || !strings.Contains(pf.Error, "gsettings not found") {
					t.Fatalf("file = %+v", pf)
				}
			}},
		{name: "fail/gsettings exits non-zero", progs: &fakePrograms{have: map[string]bool{"gsettings": true}, out: "No such schema “org.gnome.desktop.session”", err: errors.New("exit status 1")},
			item: screenLock(300.0), wantErr: "gsettings set org.gnome.desktop.session idle-delay 300 failed: exit status 1: No such schema",
			wantRuns: []string{"gsettings set org.gnome.desktop.session idle-delay 300"}, wantFile: true},
		{name: "fail/gsettings cannot save without a session bus", progs: &fakePrograms{have: map[string]bool{"gsettings": true},
			out: "(process:1): dconf-WARNING **: failed to commit changes to dconf: Cannot autolaunch D-Bus without X11 $DISPLAY"},
			item: screenLock(60.0), wantErr: "did not save the setting (no user session bus?)",
			wantRuns: []string{"gsettings set org.gnome.desktop.session idle-delay 60"}, wantFile: true},
		{name: "fail/timeout not a whole number", progs: &fakePrograms{have: map[string]bool{"gsettings": true}}, item: screenLock(2.5),
			wantErr: "must be a whole number of seconds from 0 to 86400", wantFile: true},
		{name: "fail/timeout a string", progs: &fakePrograms{have: map[string]bool{"gsettings": true}}, item: screenLock("300"),
			wantErr: "must be a whole number", wantFile: true},
		{name: "fail/kind not enforced on Linux", progs: &fakePrograms{}, item: wire.Item{ID: "wifi-1", Kind: "wifi", Payload: map[string]any{"ssid": "corp"}},
			wantErr: "the Linux agent does not enforce wifi items (recorded in policy/wifi-1.json)", wantFile: true},
		{name: "fail/item ID that would escape the directory", progs: &fakePrograms{}, item: wire.Item{ID: "../key", Kind: KindITPolicy},
			wantErr: `item ID "../key" is not usable as a file name`},
		{name: "ok/screen lock set through gsettings", progs: &fakePrograms{have: map[string]bool{"gsettings": true}}, item: screenLock(300.0),
			wantRuns: []string{"gsettings set org.gnome.desktop.session idle-delay 300", "gsettings set org.gnome.desktop.screensaver lock-enabled true"},
			wantFile: true,
			checkFile: func(t *testing.T, pf PolicyFile) {
				if pf.Status != agent.StatusApplied || pf.Version != "v7" || pf.Revision != 3 || pf.Name != "Screen lock" ||
					strings.Join(pf.Enforced, ",") != SettingScreenLockTimeout || strings.Join(pf.NotEnforced, ",") != "camera_disabled" || pf.AppliedAt.IsZero() {
					t.Fatalf("file = %+v", pf)
				}
			}},
		{name: "ok/zero turns the lock off", progs: &fakePrograms{have: map[string]bool{"gsettings": true}}, item: screenLock(0.0),
			wantRuns: []string{"gsettings set org.gnome.desktop.session idle-delay 0", "gsettings set org.gnome.desktop.screensaver lock-enabled false"},
			wantFile: true},
		{name: "ok/IT policy without a Linux rule", progs: &fakePrograms{}, item: wire.Item{ID: "p2", Kind: KindITPolicy, Payload: map[string]any{"camera_disabled": true}},
			wantFile: true},
		{name: "ok/compliance profile kept on record, enforced by the Core", progs: &fakePrograms{}, item: wire.Item{ID: "c1", Kind: KindCompliance, Payload: map[string]any{"rules": map[string]any{"out_of_contact_days": 7.0}}},
			wantFile: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			a := &Applier{Programs: tt.progs.programs(), StateDir: dir}
			got, err := a.Apply(context.Background(), wire.Configuration{}, wire.Configuration{Version: "v7", Items: []wire.Item{tt.item}})
			if err != nil {
				t.Fatal(err)
			}
			want := agent.StatusApplied
			if tt.wantErr != "" {
				want = agent.StatusFailed
			}
			if len(got) != 1 || got[0].ID != tt.item.ID || got[0].Status != want || !strings.Contains(got[0].Error, tt.wantErr) {
				t.Fatalf("statuses = %+v\nwant %s with %q", got, want, tt.wantErr)
			}
			if runs := tt.progs.ran(); strings.Join(runs, "\n") != strings.Join(tt.wantRuns, "\n") {
				t.Fatalf("ran %q\nwant %q", runs, tt.wantRuns)
			}
			entries, _ := os.ReadDir(filepath.Join(dir, PolicyDir))
			if (len(entries) == 1) != tt.wantFile || len(entries) > 1 {
				t.Fatalf("policy directory holds %v", entries)
			}
			if _, err := os.Stat(filepath.Join(dir, "key")); err == nil {
				t.Fatal("a file escaped the policy directory")
			}
			if tt.wantFile {
				pf := readPolicy(t, dir, tt.item.ID)
				if pf.Status != want || pf.ID != tt.item.ID {
					t.Fatalf("file = %+v", pf)
				}
				if tt.checkFile != nil {
					tt.checkFile(t, pf)
				}
			}
		})
	}
}

// TestApplierRemovesDroppedItems: the policy directory shows exactly the
// configuration the device runs.
func TestApplierRemovesDroppedItems(t *testing.T) {
	dir := t.TempDir()
	a := &Applier{Programs: (&fakePrograms{}).programs(), StateDir: dir}
	one := wire.Item{ID: "a", Kind: KindITPolicy, Payload: map[string]any{}}
	two := wire.Item{ID: "b", Kind: KindITPolicy, Payload: map[string]any{}}
	cfg1 := wire.Configuration{Version: "1", Items: []wire.Item{one, two}}
	if _, err := a.Apply(context.Background(), wire.Configuration{}, cfg1); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, PolicyDir, "README")
	if err := os.WriteFile(other, []byte("operator notes"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Apply(context.Background(), cfg1, wire.Configuration{Version: "2", Items: []wire.Item{two}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, PolicyDir, "a.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a.json still there: %v", err)
	}
	if pf := readPolicy(t, dir, "b"); pf.Version != "2" {
		t.Fatalf("b.json = %+v", pf)
	}
	if b, _ := os.ReadFile(other); !bytes.Equal(b, []byte("operator notes")) {
		t.Fatal("a file that is not the agent's was touched")
	}
	fi, _ := os.Stat(filepath.Join(dir, PolicyDir))
	if fi.Mode().Perm() != 0o700 {
		t.Fatalf("policy directory mode %v", fi.Mode().Perm())
	}
}
