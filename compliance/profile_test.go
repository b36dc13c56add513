package compliance_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/custos-uem/custos/compliance"
	"github.com/custos-uem/custos/errs"
)

func TestValidateSettings(t *testing.T) {
	tests := []struct {
		name     string
		settings string
		field    string // the key that must be reported; "" for valid settings
	}{
		{"fail/not an object", `[]`, ""},
		{"fail/null", `null`, ""},
		{"fail/trailing data", `{} {}`, ""},
		{"fail/unknown top-level key", `{"rule": {}}`, "rule"},
		{"fail/unknown rule", `{"rules": {"jailbroken": true}}`, "rules.jailbroken"},
		{"fail/duplicate key", `{"rules": {"out_of_contact_days": 3, "out_of_contact_days": 400}}`, "rules.out_of_contact_days"},
		{"fail/rooted wrong type", `{"rules": {"rooted_or_jailbroken": "yes"}}`, "rules.rooted_or_jailbroken"},
		{"fail/rooted null", `{"rules": {"rooted_or_jailbroken": null}}`, "rules.rooted_or_jailbroken"},
		{"fail/negative out_of_contact_days", `{"rules": {"out_of_contact_days": -1}}`, "rules.out_of_contact_days"},
		{"fail/zero out_of_contact_days", `{"rules": {"out_of_contact_days": 0}}`, "rules.out_of_contact_days"},
		{"fail/out_of_contact_days over a year", `{"rules": {"out_of_contact_days": 366}}`, "rules.out_of_contact_days"},
		{"fail/fractional out_of_contact_days", `{"rules": {"out_of_contact_days": 1.5}}`, "rules.out_of_contact_days"},
		{"fail/out_of_contact_days as string", `{"rules": {"out_of_contact_days": "30"}}`, "rules.out_of_contact_days"},
		{"fail/bad version string", `{"rules": {"min_os_version": {"android": "fourteen"}}}`, "rules.min_os_version.android"},
		{"fail/version with empty segment", `{"rules": {"min_os_version": {"ios": "17..1"}}}`, "rules.min_os_version.ios"},
		{"fail/version with suffix", `{"rules": {"max_os_version": {"windows": "10.0-beta"}}}`, "rules.max_os_version.windows"},
		{"fail/version as number", `{"rules": {"min_os_version": {"android": 14}}}`, "rules.min_os_version.android"},
		{"fail/unknown platform", `{"rules": {"min_os_version": {"symbian": "9"}}}`, "rules.min_os_version.symbian"},
		{"fail/versions not an object", `{"rules": {"min_os_version": "14"}}`, "rules.min_os_version"},
		{"fail/max below min", `{"rules": {"min_os_version": {"ios": "17.4"}, "max_os_version": {"ios": "17.3.9"}}}`, "rules.max_os_version.ios"},
		{"fail/models not a list", `{"rules": {"blocked_models": "Pixel 8"}}`, "rules.blocked_models"},
		{"fail/empty app name", `{"rules": {"required_apps": ["com.a", " "]}}`, "rules.required_apps[1]"},
		{"fail/repeated model ignoring case", `{"rules": {"allowed_models": ["Pixel 8", "pixel 8"]}}`, "rules.allowed_models[1]"},
		{"fail/name too long", `{"rules": {"restricted_apps": ["` + strings.Repeat("a", 257) + `"]}}`, "rules.restricted_apps[0]"},
		{"fail/actions not a list", `{"actions": {"action": "monitor"}}`, "actions"},
		{"fail/unknown action", `{"actions": [{"action": "lock", "after_hours": 0}]}`, "actions[0].action"},
		{"fail/missing after_hours", `{"actions": [{"action": "monitor"}]}`, "actions[0].after_hours"},
		{"fail/missing action", `{"actions": [{"after_hours": 1}]}`, "actions[0].action"},
		{"fail/negative after_hours", `{"actions": [{"action": "monitor", "after_hours": -1}]}`, "actions[0].after_hours"},
		{"fail/unknown step key", `{"actions": [{"action": "monitor", "after_hours": 0, "notify": true}]}`, "actions[0].notify"},
		{"fail/ladder after_hours decrease", `{"actions": [{"action": "untrust", "after_hours": 24}, {"action": "wipe_work", "after_hours": 12}]}`, "actions[1].after_hours"},
		{"fail/ladder actions out of order", `{"actions": [{"action": "wipe_work", "after_hours": 1}, {"action": "untrust", "after_hours": 2}]}`, "actions[1].action"},
		{"fail/duplicate action", `{"actions": [{"action": "monitor", "after_hours": 0}, {"action": "untrust", "after_hours": 1}, {"action": "untrust", "after_hours": 2}]}`, "actions[2].action"},
		{"fail/prompt without count", `{"actions": [{"action": "prompt", "after_hours": 0, "interval_hours": 4}]}`, "actions[0].count"},
		{"fail/prompt count over 20", `{"actions": [{"action": "prompt", "after_hours": 0, "count": 21, "interval_hours": 4}]}`, "actions[0].count"},
		{"fail/prompt interval zero", `{"actions": [{"action": "prompt", "after_hours": 0, "count": 2, "interval_hours": 0}]}`, "actions[0].interval_hours"},
		{"fail/prompt interval over a week", `{"actions": [{"action": "prompt", "after_hours": 0, "count": 2, "interval_hours": 169}]}`, "actions[0].interval_hours"},
		{"fail/count on another action", `{"actions": [{"action": "untrust", "after_hours": 0, "count": 2}]}`, "actions[0].count"},
		{"ok/empty", `{}`, ""},
		{"ok/rules only", `{"rules": {"rooted_or_jailbroken": false, "out_of_contact_days": 365}}`, ""},
		{"ok/full", `{"rules": {"rooted_or_jailbroken": true,
			"min_os_version": {"android": "13", "ios": "17.4"}, "max_os_version": {"ios": "17.4", "windows": "10.0.22631"},
			"allowed_models": ["Pixel 8"], "blocked_models": ["Galaxy S7"],
			"required_apps": ["com.example.mail"], "restricted_apps": ["Cydia"], "out_of_contact_days": 1},
			"actions": [{"action": "monitor", "after_hours": 0},
				{"action": "prompt", "after_hours": 0, "count": 20, "interval_hours": 168},
				{"action": "untrust", "after_hours": 24}, {"action": "quarantine", "after_hours": 24},
				{"action": "wipe_work", "after_hours": 72}, {"action": "wipe_device", "after_hours": 96},
				{"action": "remove", "after_hours": 8760}]}`, ""},
		{"ok/ladder subset", `{"actions": [{"action": "prompt", "after_hours": 2, "count": 1, "interval_hours": 1}, {"action": "remove", "after_hours": 2}]}`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fields := compliance.ValidateSettings(json.RawMessage(tc.settings))
			if strings.HasPrefix(tc.name, "ok/") {
				if fields != nil {
					t.Fatalf("ValidateSettings = %v, want valid", fields)
				}
				p, err := compliance.ParseProfile(json.RawMessage(tc.settings))
				if err != nil {
					t.Fatalf("ParseProfile: %v", err)
				}
				// The profile encodes back to settings that are valid and
				// decode to the same profile.
				again, err := json.Marshal(p)
				if err != nil {
					t.Fatal(err)
				}
				p2, err := compliance.ParseProfile(again)
				if err != nil || !reflect.DeepEqual(p, p2) {
					t.Fatalf("round trip %s: %+v %v, want %+v", again, p2, err, p)
				}
				return
			}
			if _, ok := fields[tc.field]; !ok {
				t.Fatalf("ValidateSettings = %v, want an error for %q", fields, tc.field)
			}
			_, err := compliance.ParseProfile(json.RawMessage(tc.settings))
			var e *errs.Error
			if !errors.As(err, &e) || e.Kind != errs.Invalid || e.Code != "invalid_policy" || !reflect.DeepEqual(e.Fields, fields) {
				t.Fatalf("ParseProfile error = %#v, want invalid_policy with fields %v", err, fields)
			}
		})
	}
}

func TestValidateSettingsSizeLimit(t *testing.T) {
	big := `{"rules": {"required_apps": ["` + strings.Repeat("a", compliance.MaxSettings) + `"]}}`
	if fields := compliance.ValidateSettings(json.RawMessage(big)); fields[""] == "" {
		t.Fatalf("ValidateSettings of %d bytes = %v, want the size refused", len(big), fields)
	}
}

func TestParseProfileDecodes(t *testing.T) {
	p, err := compliance.ParseProfile(json.RawMessage(`{"rules": {"min_os_version": {"android": "13"}, "blocked_models": ["X1"]},
		"actions": [{"action": "prompt", "after_hours": 1, "count": 2, "interval_hours": 3}]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := &compliance.Profile{
		Rules:   compliance.Rules{MinOSVersion: map[string]string{"android": "13"}, BlockedModels: []string{"X1"}},
		Actions: []compliance.Step{{Action: compliance.Prompt, AfterHours: 1, Count: 2, IntervalHours: 3}},
	}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("ParseProfile = %+v, want %+v", p, want)
	}
}
