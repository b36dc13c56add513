package agent_test

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/custos-uem/custos/agent"
	"github.com/custos-uem/custos/device"
	wire "github.com/custos-uem/custos/platform/agent"
)

func baseInventory() *agent.Inventory {
	return &agent.Inventory{Platform: "linux", HardwareID: "hw1", OSVersion: "12"}
}

func TestNormalize(t *testing.T) {
	long := strings.Repeat("x", wire.MaxField+1)
	tests := []struct {
		name    string
		mod     func(inv *agent.Inventory)
		wantErr string
		check   func(t *testing.T, inv *agent.Inventory)
	}{
		{name: "fail/no hardware ID", mod: func(inv *agent.Inventory) { inv.HardwareID = "" }, wantErr: "no hardware ID"},
		{name: "fail/hardware ID too long", mod: func(inv *agent.Inventory) { inv.HardwareID = long }, wantErr: "hardware ID longer"},
		{name: "fail/no platform", mod: func(inv *agent.Inventory) { inv.Platform = "" }, wantErr: "platform"},
		{
			name: "ok/long info fields cut and named",
			mod: func(inv *agent.Inventory) {
				inv.Info.Model = strings.Repeat("é", wire.MaxField) // 2 bytes each: cut at a character boundary
				inv.Info.Hostname = long
				inv.Info.OSName = "ok"
			},
			check: func(t *testing.T, inv *agent.Inventory) {
				if len(inv.Info.Model) != wire.MaxField || !utf8.ValidString(inv.Info.Model) || len(inv.Info.Hostname) != wire.MaxField {
					t.Fatalf("lengths %d %d", len(inv.Info.Model), len(inv.Info.Hostname))
				}
				if got := inv.Info.Attributes[agent.AttrTruncated]; got != "hostname,model" {
					t.Fatalf("%s = %q", agent.AttrTruncated, got)
				}
			},
		},
		{
			name: "ok/invalid UTF-8 replaced",
			mod:  func(inv *agent.Inventory) { inv.Info.OSName = "De\xffbian" },
			check: func(t *testing.T, inv *agent.Inventory) {
				if inv.Info.OSName != "De\uFFFDbian" {
					t.Fatalf("os name %q", inv.Info.OSName)
				}
			},
		},
		{
			name: "ok/apps cleaned, sorted, deduplicated, unusable dropped",
			mod: func(inv *agent.Inventory) {
				inv.Apps = []device.App{
					{Name: "zsh", Version: "5.9"}, {Name: "bash", Version: "5.2"}, {Name: "bash", Version: "5.2"},
					{Name: ""}, {Name: long}, {Name: "ok", ID: long}, {Name: "vim", Version: long},
				}
			},
			check: func(t *testing.T, inv *agent.Inventory) {
				var got []string
				for _, a := range inv.Apps {
					got = append(got, a.Name)
				}
				if strings.Join(got, ",") != "bash,vim,zsh" || len(inv.Apps[1].Version) != wire.MaxField {
					t.Fatalf("apps %q", got)
				}
				if inv.Info.Attributes[agent.AttrAppsDropped] != "4" {
					t.Fatalf("dropped = %q", inv.Info.Attributes[agent.AttrAppsDropped])
				}
			},
		},
		{
			name: "ok/apps capped at MaxApps",
			mod: func(inv *agent.Inventory) {
				for i := range wire.MaxApps + 7 {
					inv.Apps = append(inv.Apps, device.App{Name: fmt.Sprintf("pkg%06d", i)})
				}
			},
			check: func(t *testing.T, inv *agent.Inventory) {
				if len(inv.Apps) != wire.MaxApps || inv.Info.Attributes[agent.AttrAppsDropped] != "7" {
					t.Fatalf("%d apps, dropped %q", len(inv.Apps), inv.Info.Attributes[agent.AttrAppsDropped])
				}
			},
		},
		{
			name: "ok/attributes capped, notes kept",
			mod: func(inv *agent.Inventory) {
				inv.Info.Attributes = map[string]string{long: "key too long"}
				for i := range wire.MaxAttributes + 5 {
					inv.Info.Attributes[fmt.Sprintf("k%03d", i)] = "v"
				}
				inv.Info.Hostname = long
			},
			check: func(t *testing.T, inv *agent.Inventory) {
				a := inv.Info.Attributes
				if len(a) != wire.MaxAttributes || a[agent.AttrTruncated] != "hostname" || a[agent.AttrAttributesDropped] != "8" {
					t.Fatalf("%d attributes: truncated %q dropped %q", len(a), a[agent.AttrTruncated], a[agent.AttrAttributesDropped])
				}
				if _, ok := a["k000"]; !ok {
					t.Fatal("dropped the first keys instead of the last")
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := baseInventory()
			tt.mod(inv)
			err := agent.Normalize(inv)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, inv)
		})
	}
}

func TestSoftwareHash(t *testing.T) {
	a := baseInventory()
	a.Apps = []device.App{{Name: "b", Version: "1"}, {Name: "a", Version: "2"}}
	b := baseInventory()
	b.Apps = []device.App{{Name: "a", Version: "2"}, {Name: "b", Version: "1"}}
	for _, inv := range []*agent.Inventory{a, b} {
		if err := agent.Normalize(inv); err != nil {
			t.Fatal(err)
		}
	}
	if agent.SoftwareHash(a.Apps) != agent.SoftwareHash(b.Apps) {
		t.Fatal("same software in another order hashes differently after Normalize")
	}
	b.Apps[0].Version = "3"
	if agent.SoftwareHash(a.Apps) == agent.SoftwareHash(b.Apps) {
		t.Fatal("a version change does not change the hash")
	}
	if agent.SoftwareHash(nil) != agent.SoftwareHash([]device.App{}) {
		t.Fatal("nil and empty lists differ")
	}
}
