package linux

import (
	"context"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/custos-uem/custos/agent"
	"github.com/custos-uem/custos/device"
)

// copyTree copies the fixture tree src into a temporary directory and
// returns it, so a test may change it.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func writeFile(t *testing.T, root, rel, content string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustHardwareID(t *testing.T, mid string) string {
	t.Helper()
	id, err := HardwareID(mid)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func appNames(apps []device.App) []string {
	out := make([]string, len(apps))
	for i, a := range apps {
		out[i] = a.Name + "=" + a.Version
	}
	slices.Sort(out)
	return out
}

func TestCollect(t *testing.T) {
	tests := []struct {
		name    string
		root    func(t *testing.T) string
		wantErr string
		check   func(t *testing.T, inv *agent.Inventory)
	}{
		{
			name: "fail/no machine id",
			root: func(t *testing.T) string {
				r := copyTree(t, "testdata/debian")
				if err := os.Remove(filepath.Join(r, "etc/machine-id")); err != nil {
					t.Fatal(err)
				}
				return r
			},
			wantErr: "machine ID",
		},
		{
			name: "fail/machine id not hex",
			root: func(t *testing.T) string {
				r := copyTree(t, "testdata/debian")
				writeFile(t, r, "etc/machine-id", "uninitialized\n")
				return r
			},
			wantErr: "not 32 hex digits",
		},
		{
			name: "fail/os-release over its limit",
			root: func(t *testing.T) string {
				r := copyTree(t, "testdata/debian")
				writeFile(t, r, "etc/os-release", "NAME=x\n"+strings.Repeat("#", MaxOSRelease))
				return r
			},
			wantErr: "larger than its limit",
		},
		{
			name: "ok/debian",
			root: func(t *testing.T) string { return "testdata/debian" },
			check: func(t *testing.T, inv *agent.Inventory) {
				want := device.Info{
					Hostname: "ws-debian-01", Manufacturer: "LENOVO", Model: "21HD",
					OSName: "Debian GNU/Linux", OSVersion: "12", Kernel: "6.1.0-21-amd64", Arch: "arm64",
					Attributes: map[string]string{AttrPrettyName: "Debian GNU/Linux 12 (bookworm)", AttrOSID: "debian", AttrPackagesSkipped: "1"},
				}
				if !equalInfo(inv.Info, want) {
					t.Errorf("info = %+v\nwant   %+v", inv.Info, want)
				}
				if inv.Platform != "linux" || inv.OSVersion != "12" || inv.Name != "ws-debian-01" || inv.Model != "21HD" {
					t.Errorf("identity = %q %q %q %q", inv.Platform, inv.OSVersion, inv.Name, inv.Model)
				}
				if want := mustHardwareID(t, "0f3a6b2c9d8e4f1a8b7c6d5e4f3a2b1c"); inv.HardwareID != want {
					t.Errorf("hardware ID = %q, want %q", inv.HardwareID, want)
				}
				// Installed (and held) only; libc6 twice (amd64, i386);
				// Bad_Name skipped; half-configured, config-files and
				// not-installed left out.
				wantApps := []string{"bash=5.2.15-2+b7", "ca-certificates=20230311", "curl=7.88.1-10+deb12u5",
					"libc6=2.36-9+deb12u7", "libc6=2.36-9+deb12u7", "vim=2:9.0.1378-2"}
				if got := appNames(inv.Apps); !slices.Equal(got, wantApps) {
					t.Errorf("apps = %q\nwant   %q", got, wantApps)
				}
			},
		},
		{
			name: "ok/alpine",
			root: func(t *testing.T) string { return "testdata/alpine" },
			check: func(t *testing.T, inv *agent.Inventory) {
				want := device.Info{
					Hostname: "alpine-edge-7", Manufacturer: "QEMU", Model: "Standard PC (Q35 + ICH9, 2009)",
					OSName: "Alpine Linux", OSVersion: "3.19.1", Kernel: "6.6.14-0-virt", Arch: "arm64",
					Attributes: map[string]string{AttrPrettyName: "Alpine Linux v3.19", AttrOSID: "alpine"},
				}
				if !equalInfo(inv.Info, want) {
					t.Errorf("info = %+v\nwant   %+v", inv.Info, want)
				}
				// The machine ID comes from the D-Bus fallback.
				if want := mustHardwareID(t, "9c1e5f7a3b2d4c6e8f0a1b3c5d7e9f11"); inv.HardwareID != want {
					t.Errorf("hardware ID = %q, want %q", inv.HardwareID, want)
				}
				wantApps := []string{"alpine-baselayout=3.4.3-r2", "apk-tools=2.14.0-r5", "busybox=1.36.1-r15",
					"musl=1.2.4_git20230717-r4", "py3-setuptools=68.2.2-r0"}
				if got := appNames(inv.Apps); !slices.Equal(got, wantApps) {
					t.Errorf("apps = %q\nwant   %q", got, wantApps)
				}
				for _, a := range inv.Apps {
					if a.ID != a.Name {
						t.Errorf("app %q has ID %q", a.Name, a.ID)
					}
				}
			},
		},
		{
			name: "ok/oversized package database is skipped with a note",
			root: func(t *testing.T) string {
				r := copyTree(t, "testdata/debian")
				// A sparse file: its size is checked before any read.
				if err := os.Truncate(filepath.Join(r, "var/lib/dpkg/status"), MaxDpkgStatus+1); err != nil {
					t.Fatal(err)
				}
				return r
			},
			check: func(t *testing.T, inv *agent.Inventory) {
				if len(inv.Apps) != 0 {
					t.Errorf("apps = %d, want none", len(inv.Apps))
				}
				if got := inv.Info.Attributes[AttrPackageDBError]; !strings.Contains(got, "var/lib/dpkg/status") || !strings.Contains(got, "larger than its limit") {
					t.Errorf("%s = %q", AttrPackageDBError, got)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Collector{Root: tt.root(t), Arch: "arm64"}
			inv, err := c.Collect(context.Background())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, inv)
			// Whatever a collector reports must survive the wire limits.
			if err := agent.Normalize(inv); err != nil {
				t.Fatalf("Normalize: %v", err)
			}
		})
	}
}

func equalInfo(a, b device.Info) bool {
	ma, mb := a.Attributes, b.Attributes
	a.Attributes, b.Attributes = nil, nil
	return reflect.DeepEqual(a, b) && maps.Equal(ma, mb)
}

func TestCollectCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := (&Collector{Root: "testdata/debian"}).Collect(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestHardwareID(t *testing.T) {
	tests := []struct {
		name, mid, want, wantErr string
	}{
		{name: "fail/empty", mid: "", wantErr: "not 32 hex digits"},
		{name: "fail/short", mid: "3d1219c7c4c5404aaa1f6d2a48adfd", wantErr: "not 32 hex digits"},
		{name: "fail/not hex", mid: "3d1219c7c4c5404aaa1f6d2a48adfdzz", wantErr: "not 32 hex digits"},
		{name: "fail/uninitialized", mid: "uninitialized", wantErr: "not 32 hex digits"},
		{name: "fail/zeros", mid: strings.Repeat("0", 32), wantErr: "all zeros"},
		// Computed by systemd: `systemd-id128 machine-id
		// --app-specific=e508f23094c641d081827c6f9fc08ab0` on a machine whose
		// /etc/machine-id is 3d1219c7c4c5404aaa1f6d2a48adfda4.
		{name: "ok/systemd vector", mid: "3d1219c7c4c5404aaa1f6d2a48adfda4\n", want: "7a9cfc32bcb24d29aff290047bf431d1"},
		{name: "ok/upper case", mid: "3D1219C7C4C5404AAA1F6D2A48ADFDA4", want: "7a9cfc32bcb24d29aff290047bf431d1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := HardwareID(tt.mid)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("HardwareID = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
