package sim

import (
	"context"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/custos-uem/custos/agent"
)

func collect(t *testing.T, d *Device) *agent.Inventory {
	t.Helper()
	inv, err := d.Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func mustNew(t *testing.T, platform string, seed uint64) *Device {
	t.Helper()
	d, err := New(platform, seed)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestNew(t *testing.T) {
	tests := []struct {
		name, platform, wantErr string
	}{
		{name: "fail/unknown platform", platform: "symbian", wantErr: `no simulator for platform "symbian"`},
		{name: "fail/empty platform", platform: "", wantErr: "no simulator"},
		{name: "ok/android", platform: "android"},
		{name: "ok/ios", platform: "ios"},
		{name: "ok/windows", platform: "windows"},
		{name: "ok/linux", platform: "linux"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := New(tt.platform, 1)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Platform() != tt.platform {
				t.Fatalf("platform = %q", d.Platform())
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	for _, p := range Platforms {
		t.Run(p, func(t *testing.T) {
			a, b := collect(t, mustNew(t, p, 42)), collect(t, mustNew(t, p, 42))
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("same seed, different devices:\n%+v\n%+v", a, b)
			}
			seen := map[string]uint64{}
			for seed := range uint64(500) {
				hw := mustNew(t, p, seed).HardwareID()
				if prev, dup := seen[hw]; dup {
					t.Fatalf("seeds %d and %d share hardware ID %q", prev, seed, hw)
				}
				seen[hw] = seed
			}
		})
	}
}

var (
	reAndroidID = regexp.MustCompile(`^[0-9a-f]{16}$`)
	reUDID      = regexp.MustCompile(`^(0000811|0000812|0000813)0-00[0-9A-F]{14}$`)
	reHWDevID   = regexp.MustCompile(`^[0-9A-F]{64}$`)
	reMachineID = regexp.MustCompile(`^[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}$`)
	rePackageID = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_]*(\.[a-zA-Z0-9_-]+)+$`)
	reDigits    = regexp.MustCompile(`^[0-9]+$`)
)

// TestValid checks, over many seeds, that each simulated device is
// internally consistent and fits the wire unchanged.
func TestValid(t *testing.T) {
	for _, p := range Platforms {
		t.Run(p, func(t *testing.T) {
			for seed := range uint64(300) {
				inv := collect(t, mustNew(t, p, seed))
				if inv.Platform != p || inv.OSVersion == "" || inv.Model == "" || inv.Name == "" {
					t.Fatalf("seed %d: identity %+v", seed, inv)
				}
				ids := map[string]bool{}
				for _, a := range inv.Apps {
					if a.ID == "" || a.Name == "" || a.Version == "" || strings.Contains(a.Version+a.Name, "#") {
						t.Fatalf("seed %d: app %+v", seed, a)
					}
					if ids[a.ID] {
						t.Fatalf("seed %d: app ID %q twice", seed, a.ID)
					}
					ids[a.ID] = true
				}
				checkPlatform(t, seed, inv)
				n := len(inv.Apps)
				if err := agent.Normalize(inv); err != nil {
					t.Fatalf("seed %d: %v", seed, err)
				}
				if len(inv.Apps) != n || inv.Info.Attributes[agent.AttrAppsDropped] != "" || inv.Info.Attributes[agent.AttrTruncated] != "" {
					t.Fatalf("seed %d: Normalize had to cut the report: %v", seed, inv.Info.Attributes)
				}
			}
		})
	}
}

func checkPlatform(t *testing.T, seed uint64, inv *agent.Inventory) {
	t.Helper()
	info := inv.Info
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d (%s %s): "+format, append([]any{seed, inv.Platform, inv.Model}, args...)...)
	}
	checkIMEI := func(tac string) {
		t.Helper()
		if len(info.IMEI) != 15 || !LuhnValid(info.IMEI) || !strings.HasPrefix(info.IMEI, tac) {
			fail("IMEI %q (TAC %s)", info.IMEI, tac)
		}
	}
	switch inv.Platform {
	case "android":
		if !reAndroidID.MatchString(inv.HardwareID) || info.Attributes["android_id"] != inv.HardwareID {
			fail("hardware ID %q", inv.HardwareID)
		}
		if n := len(inv.Apps); n < 30 || n > 80 {
			fail("%d apps", n)
		}
		for _, a := range inv.Apps {
			if !rePackageID.MatchString(a.ID) {
				fail("package ID %q", a.ID)
			}
		}
		var m androidModel
		for _, x := range androidModels {
			if x.model == inv.Model {
				m = x
			}
		}
		if m.model == "" || info.Manufacturer != m.maker || inv.Name != m.name || info.OSName != "Android" {
			fail("model/maker %q %q", info.Manufacturer, inv.Name)
		}
		if !strings.Contains(strings.Join(m.os, ","), inv.OSVersion) {
			fail("OS %q on %s", inv.OSVersion, m.model)
		}
		checkIMEI(m.tac)
		samsung := strings.HasPrefix(inv.Model, "SM-")
		if samsung != (info.Manufacturer == "samsung") || samsung != (info.Attributes["knox_version"] != "") {
			fail("Samsung/Knox mismatch: %v", info.Attributes)
		}
		hasSamsungApp := false
		for _, a := range inv.Apps {
			hasSamsungApp = hasSamsungApp || strings.HasPrefix(a.ID, "com.samsung.") || strings.HasPrefix(a.ID, "com.sec.")
		}
		if hasSamsungApp != samsung {
			fail("Samsung apps on a non-Samsung device or missing")
		}
	case "ios":
		if !reUDID.MatchString(inv.HardwareID) {
			fail("UDID %q", inv.HardwareID)
		}
		var m iosModel
		for _, x := range iosModels {
			if x.ident == inv.Model {
				m = x
			}
		}
		if m.ident == "" || !strings.HasPrefix(inv.HardwareID, m.chip+"-") {
			fail("UDID %q does not match the chip of %s", inv.HardwareID, inv.Model)
		}
		if !strings.HasPrefix(inv.OSVersion, "17.") || info.Manufacturer != "Apple" || info.OSName != "iOS" {
			fail("OS %q %q", info.OSName, inv.OSVersion)
		}
		checkIMEI(m.tac)
		for _, a := range inv.Apps {
			if !rePackageID.MatchString(a.ID) {
				fail("bundle ID %q", a.ID)
			}
		}
	case "windows":
		if !reHWDevID.MatchString(inv.HardwareID) {
			fail("HWDevID %q", inv.HardwareID)
		}
		if inv.OSVersion != "10.0.22631" || !strings.HasPrefix(info.OSName, "Windows 11 ") || !strings.HasPrefix(info.Attributes["os_build"], "22631.") {
			fail("OS %q %q", info.OSName, inv.OSVersion)
		}
		if !strings.HasPrefix(inv.Name, "DESKTOP-") || info.Hostname != inv.Name {
			fail("name %q", inv.Name)
		}
		if n := len(inv.Apps); n < 24 || n > 50 {
			fail("%d programs", n)
		}
		if info.IMEI != "" {
			fail("a PC with an IMEI")
		}
	case "linux":
		if !reMachineID.MatchString(inv.HardwareID) {
			fail("hardware ID %q", inv.HardwareID)
		}
		if info.Kernel == "" || strings.Contains(info.Kernel, "#") || info.Attributes["os_id"] == "" {
			fail("kernel %q attrs %v", info.Kernel, info.Attributes)
		}
		if n := len(inv.Apps); n < 50 || n > 100 {
			fail("%d packages", n)
		}
	}
	if info.SerialNumber == "" {
		fail("no serial number")
	}
}

func TestLuhn(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{name: "fail/wrong check digit", in: "490154203237517", want: false},
		{name: "fail/swapped digits", in: "490154203273518", want: false},
		{name: "fail/not digits", in: "49015420323751X", want: false},
		{name: "fail/too short", in: "4", want: false},
		{name: "ok/IMEI example", in: "490154203237518", want: true}, // 3GPP TS 23.003 / Wikipedia example
		{name: "ok/card test number", in: "4111111111111111", want: true},
		{name: "ok/zero check digit", in: "0000000000", want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := LuhnValid(tt.in); got != tt.want {
				t.Fatalf("LuhnValid(%q) = %v", tt.in, got)
			}
		})
	}
	for seed := range uint64(100) {
		d := mustNew(t, "android", seed)
		if imei := collect(t, d).Info.IMEI; !reDigits.MatchString(imei) || !LuhnValid(imei) {
			t.Fatalf("IMEI %q", imei)
		}
	}
}

func TestUpdateApp(t *testing.T) {
	d := mustNew(t, "android", 7)
	before := collect(t, d)
	hash := agent.SoftwareHash(before.Apps)
	up := d.UpdateApp()
	after := collect(t, d)
	changed := 0
	for i := range after.Apps {
		if after.Apps[i] != before.Apps[i] {
			changed++
			if after.Apps[i] != up || after.Apps[i].ID != before.Apps[i].ID {
				t.Fatalf("changed %+v → %+v, UpdateApp said %+v", before.Apps[i], after.Apps[i], up)
			}
		}
	}
	if changed != 1 || agent.SoftwareHash(after.Apps) == hash {
		t.Fatalf("changed %d apps; hash changed: %v", changed, agent.SoftwareHash(after.Apps) != hash)
	}
	// The same seed makes the same update.
	d2 := mustNew(t, "android", 7)
	if up2 := d2.UpdateApp(); up2 != up {
		t.Fatalf("UpdateApp not deterministic: %+v vs %+v", up2, up)
	}
}

func TestCollectIsACopy(t *testing.T) {
	d := mustNew(t, "ios", 3)
	a := collect(t, d)
	a.Apps[0].Name = "changed"
	a.Info.Attributes["udid"] = "changed"
	b := collect(t, d)
	if b.Apps[0].Name == "changed" || b.Info.Attributes["udid"] == "changed" {
		t.Fatal("Collect shares memory with the device")
	}
}

func TestBump(t *testing.T) {
	for in, want := range map[string]string{
		"124.0.6367.82":                "124.0.6367.83",
		"2.24.9.99":                    "2.24.9.100",
		"8.11.0 build 12 50630":        "8.11.0 build 12 50631",
		"24.02.10 - Stable":            "24.02.11 - Stable",
		"tzdata":                       "tzdata.1",
		"1:9.2p1-ubuntu0.24.04.3":      "1:9.2p1-ubuntu0.24.04.4",
		"22.1 - Stable":                "22.2 - Stable",
		"messages.android_RC01.phone9": "messages.android_RC01.phone10",
	} {
		if got := bump(in); got != want {
			t.Errorf("bump(%q) = %q, want %q", in, got, want)
		}
	}
}
