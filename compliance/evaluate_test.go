package compliance_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/custos-uem/custos/compliance"
	"github.com/custos-uem/custos/device"
)

var t0 = time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)

func newDevice(platform, osVersion, model string) *device.Device {
	enrolled := t0.Add(-48 * time.Hour)
	seen := t0.Add(-time.Hour)
	return &device.Device{ID: "d1", Platform: platform, OSVersion: osVersion, Model: model,
		State: device.StateActive, EnrolledAt: &enrolled, LastSeenAt: &seen}
}

func newInventory(attrs map[string]string, apps ...device.App) *device.Inventory {
	return &device.Inventory{DeviceID: "d1", Info: device.Info{Attributes: attrs}, Software: apps, ReportedAt: t0}
}

func TestEvaluate(t *testing.T) {
	android := newDevice("android", "14", "Pixel 8")
	apps := newInventory(nil, device.App{Name: "Mail", ID: "com.example.mail"}, device.App{Name: "Cydia Installer", ID: "com.saurik.Cydia"})
	ago := func(d time.Duration) *time.Time { t := t0.Add(-d); return &t }
	tests := []struct {
		name  string
		rules compliance.Rules
		d     *device.Device
		inv   *device.Inventory
		want  []string // rules broken, in order
	}{
		{"rooted/attribute true", compliance.Rules{RootedOrJailbroken: true}, android, newInventory(map[string]string{"rooted": "true"}), []string{compliance.RuleRooted}},
		{"rooted/jailbroken any case", compliance.Rules{RootedOrJailbroken: true}, android, newInventory(map[string]string{"jailbroken": "TRUE"}), []string{compliance.RuleRooted}},
		{"rooted/false", compliance.Rules{RootedOrJailbroken: true}, android, newInventory(map[string]string{"rooted": "false"}), nil},
		{"rooted/rule off", compliance.Rules{}, android, newInventory(map[string]string{"rooted": "true"}), nil},
		{"rooted/no inventory not judged", compliance.Rules{RootedOrJailbroken: true}, android, nil, nil},

		{"min os/older", compliance.Rules{MinOSVersion: map[string]string{"android": "14.1"}}, android, nil, []string{compliance.RuleMinOSVersion}},
		{"min os/equal with missing segments", compliance.Rules{MinOSVersion: map[string]string{"android": "14.0.0"}}, android, nil, nil},
		{"min os/numeric not lexical", compliance.Rules{MinOSVersion: map[string]string{"ios": "9.3"}}, newDevice("ios", "10.0", "iPhone"), nil, nil},
		{"min os/other platform", compliance.Rules{MinOSVersion: map[string]string{"ios": "99"}}, android, nil, nil},
		{"min os/build suffix read", compliance.Rules{MinOSVersion: map[string]string{"linux": "6.6"}}, newDevice("linux", "6.5.0-21-generic", "x"), nil, []string{compliance.RuleMinOSVersion}},
		{"min os/unreadable not judged", compliance.Rules{MinOSVersion: map[string]string{"linux": "6"}}, newDevice("linux", "Debian bookworm", "x"), nil, nil},
		{"min os/report stands in for empty column", compliance.Rules{MinOSVersion: map[string]string{"android": "13"}}, newDevice("android", "", "P"),
			&device.Inventory{Info: device.Info{OSVersion: "12"}}, []string{compliance.RuleMinOSVersion}},
		{"max os/newer", compliance.Rules{MaxOSVersion: map[string]string{"android": "13"}}, android, nil, []string{compliance.RuleMaxOSVersion}},
		{"max os/equal", compliance.Rules{MaxOSVersion: map[string]string{"android": "14"}}, android, nil, nil},

		{"allowed models/listed any case", compliance.Rules{AllowedModels: []string{"pixel 8 "}}, android, nil, nil},
		{"allowed models/not listed", compliance.Rules{AllowedModels: []string{"Pixel 9"}}, android, nil, []string{compliance.RuleAllowedModels}},
		{"allowed models/empty model not judged", compliance.Rules{AllowedModels: []string{"Pixel 9"}}, newDevice("android", "14", ""), nil, nil},
		{"blocked models/listed", compliance.Rules{BlockedModels: []string{"PIXEL 8"}}, android, nil, []string{compliance.RuleBlockedModels}},
		{"blocked models/other", compliance.Rules{BlockedModels: []string{"Pixel 7"}}, android, nil, nil},

		{"required apps/by ID", compliance.Rules{RequiredApps: []string{"com.example.mail"}}, android, apps, nil},
		{"required apps/by name any case", compliance.Rules{RequiredApps: []string{"mail"}}, android, apps, nil},
		{"required apps/missing", compliance.Rules{RequiredApps: []string{"com.example.vpn"}}, android, apps, []string{compliance.RuleRequiredApps}},
		{"required apps/no inventory not judged", compliance.Rules{RequiredApps: []string{"com.example.vpn"}}, android, nil, nil},
		{"restricted apps/installed", compliance.Rules{RestrictedApps: []string{"com.saurik.cydia"}}, android, apps, []string{compliance.RuleRestrictedApps}},
		{"restricted apps/absent", compliance.Rules{RestrictedApps: []string{"com.evil"}}, android, apps, nil},

		{"out of contact/recent", compliance.Rules{OutOfContactDays: 1}, android, nil, nil},
		{"out of contact/too long", compliance.Rules{OutOfContactDays: 2},
			&device.Device{Platform: "android", State: device.StateActive, LastSeenAt: ago(49 * time.Hour)}, nil, []string{compliance.RuleOutOfContact}},
		{"out of contact/exactly the limit", compliance.Rules{OutOfContactDays: 2},
			&device.Device{Platform: "android", State: device.StateActive, LastSeenAt: ago(48 * time.Hour)}, nil, nil},
		{"out of contact/never seen counts from enrollment", compliance.Rules{OutOfContactDays: 1},
			&device.Device{Platform: "android", State: device.StateEnrolled, EnrolledAt: ago(25 * time.Hour)}, nil, []string{compliance.RuleOutOfContact}},

		{"several rules in order", compliance.Rules{RootedOrJailbroken: true, BlockedModels: []string{"Pixel 8"}, MinOSVersion: map[string]string{"android": "15"}},
			android, newInventory(map[string]string{"rooted": "true"}), []string{compliance.RuleRooted, compliance.RuleMinOSVersion, compliance.RuleBlockedModels}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vs := compliance.Evaluate(&compliance.Profile{Rules: tc.rules}, tc.d, tc.inv, t0)
			var got []string
			for _, v := range vs {
				if v.Detail == "" {
					t.Fatalf("violation %q has no detail", v.Rule)
				}
				got = append(got, v.Rule)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Evaluate = %v, want %v", vs, tc.want)
			}
		})
	}
}

func TestEvaluateNamesWhatIsWrong(t *testing.T) {
	p := &compliance.Profile{Rules: compliance.Rules{RequiredApps: []string{"com.example.vpn", "com.example.mail"}, RestrictedApps: []string{"Cydia Installer"}}}
	vs := compliance.Evaluate(p, newDevice("ios", "17", "iPhone"), newInventory(nil, device.App{Name: "Cydia Installer"}), t0)
	if len(vs) != 2 || !strings.Contains(vs[0].Detail, "com.example.vpn, com.example.mail") || !strings.Contains(vs[1].Detail, "Cydia Installer") {
		t.Fatalf("Evaluate = %+v", vs)
	}
	if vs := compliance.Evaluate(nil, newDevice("ios", "1", "x"), nil, t0); vs != nil {
		t.Fatalf("Evaluate(nil profile) = %v", vs)
	}
}
