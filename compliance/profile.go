package compliance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/custos-uem/custos/activation"
	"github.com/custos-uem/custos/errs"
)

// Limits of a compliance profile's settings, checked before anything is
// decoded further.
const (
	MaxSettings        = 64 << 10 // bytes of the settings JSON
	MaxListEntries     = 500      // entries of one model or app list
	MaxName            = 256      // bytes of one model name, app ID or version
	MinOutOfContact    = 1        // days
	MaxOutOfContact    = 365      // days
	MaxPromptCount     = 20       // prompts of one prompt step
	MaxPromptInterval  = 168      // hours between prompts (a week)
	MaxAfterHours      = 8760     // hours (a year) before a ladder step runs
	maxVersionSegments = 8
)

// Rule names: the keys below "rules" and the Rule of a Violation.
const (
	RuleRooted         = "rooted_or_jailbroken"
	RuleMinOSVersion   = "min_os_version"
	RuleMaxOSVersion   = "max_os_version"
	RuleAllowedModels  = "allowed_models"
	RuleBlockedModels  = "blocked_models"
	RuleRequiredApps   = "required_apps"
	RuleRestrictedApps = "restricted_apps"
	RuleOutOfContact   = "out_of_contact_days"
)

// Action is one rung of the ladder of graduated actions.
type Action string

// The actions, from the mildest to the most severe.
const (
	Monitor    Action = "monitor"     // log only
	Prompt     Action = "prompt"      // message the user Count times, IntervalHours apart
	Untrust    Action = "untrust"     // work resources refuse the device (State.Untrusted)
	Quarantine Action = "quarantine"  // the device is cut off from work services (State.Quarantined)
	WipeWork   Action = "wipe_work"   // delete work data (command.WipeWork)
	WipeDevice Action = "wipe_device" // delete all device data (command.WipeDevice)
	Remove     Action = "remove"      // remove the device from the server
)

// Ladder lists every action in escalation order. A profile's steps are a
// subset of it in this order: a graduated response never gets milder as
// time passes.
var Ladder = []Action{Monitor, Prompt, Untrust, Quarantine, WipeWork, WipeDevice, Remove}

// Profile is a compliance profile: the settings of a policy of kind
// compliance.
type Profile struct {
	// ID is the policy's ID, set by whoever loads the policy (it is not
	// part of the settings). The ladder of a device restarts when its
	// profile changes.
	ID      string `json:"-"`
	Rules   Rules  `json:"rules"`
	Actions []Step `json:"actions,omitempty"`
}

// Rules are the conditions a device must meet. A zero field is no rule.
type Rules struct {
	// RootedOrJailbroken true forbids devices that report themselves
	// rooted or jailbroken (see the package doc for the attribute
	// convention).
	RootedOrJailbroken bool `json:"rooted_or_jailbroken,omitempty"`
	// MinOSVersion and MaxOSVersion map a platform (activation.Platforms)
	// to a dotted numeric version, bounds included.
	MinOSVersion map[string]string `json:"min_os_version,omitempty"`
	MaxOSVersion map[string]string `json:"max_os_version,omitempty"`
	// AllowedModels, when not empty, is the only models allowed;
	// BlockedModels are refused. Both match case-insensitively.
	AllowedModels []string `json:"allowed_models,omitempty"`
	BlockedModels []string `json:"blocked_models,omitempty"`
	// RequiredApps must be installed and RestrictedApps must not be; an
	// entry matches an app's ID or name, case-insensitively.
	RequiredApps   []string `json:"required_apps,omitempty"`
	RestrictedApps []string `json:"restricted_apps,omitempty"`
	// OutOfContactDays is how long a device may go without contacting the
	// server; 0 is no limit.
	OutOfContactDays int `json:"out_of_contact_days,omitempty"`
}

// Step is one rung of a profile's ladder.
type Step struct {
	Action Action `json:"action"`
	// AfterHours is how long after the violation began the step runs; it
	// never decreases along the ladder.
	AfterHours int `json:"after_hours"`
	// Count and IntervalHours are for Prompt only: the user is prompted
	// Count times, IntervalHours apart.
	Count         int `json:"count,omitempty"`
	IntervalHours int `json:"interval_hours,omitempty"`
}

// ErrInvalid is the error of invalid settings; ParseProfile returns a copy
// with the per-field errors in Fields.
var ErrInvalid = errs.E(errs.Invalid, "invalid_policy", "the compliance profile settings are invalid")

// ParseProfile validates raw settings and returns the profile they
// describe. Invalid settings are an *errs.Error of kind Invalid with code
// "invalid_policy" and the per-field errors of ValidateSettings.
func ParseProfile(raw json.RawMessage) (*Profile, error) {
	if fields := ValidateSettings(raw); fields != nil {
		e := *ErrInvalid
		e.Fields = fields
		return nil, &e
	}
	p := new(Profile)
	if err := json.Unmarshal(raw, p); err != nil {
		// ValidateSettings accepted it, so this is a bug.
		return nil, errs.Wrap(errs.Internal, "internal", "compliance settings", err)
	}
	return p, nil
}

// ValidateSettings checks the settings of a compliance profile (a policy
// of kind compliance) and returns per-field errors keyed by JSON path below
// "settings" (e.g. "rules.min_os_version.android", "actions[2].after_hours";
// the empty key is the settings object itself); nil when valid.
//
// Decoding is strict: unknown keys, duplicate keys, null, wrong types,
// negative or out-of-range numbers and malformed versions are refused, so
// that a typo never silently disables a rule.
func ValidateSettings(raw json.RawMessage) map[string]string {
	v := &validator{}
	v.settings(raw)
	if len(v.fields) == 0 {
		return nil
	}
	return v.fields
}

type validator struct{ fields map[string]string }

func (v *validator) fail(path, msg string) {
	if v.fields == nil {
		v.fields = map[string]string{}
	}
	if _, ok := v.fields[path]; !ok { // the first problem of a field is the one to fix
		v.fields[path] = msg
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (v *validator) settings(raw json.RawMessage) {
	if len(raw) > MaxSettings {
		v.fail("", fmt.Sprintf("at most %d bytes", MaxSettings))
		return
	}
	obj, ok := v.object("", raw)
	if !ok {
		return
	}
	for _, m := range obj {
		switch m.key {
		case "rules":
			v.rules("rules", m.val)
		case "actions":
			v.actions("actions", m.val)
		default:
			v.fail(join("", m.key), "unknown key")
		}
	}
}

func (v *validator) rules(path string, raw json.RawMessage) {
	obj, ok := v.object(path, raw)
	if !ok {
		return
	}
	bounds := map[string]map[string]string{}
	for _, m := range obj {
		p := join(path, m.key)
		switch m.key {
		case RuleRooted:
			var b bool
			if isNull(m.val) || json.Unmarshal(m.val, &b) != nil {
				v.fail(p, "must be true or false")
			}
		case RuleMinOSVersion, RuleMaxOSVersion:
			bounds[m.key] = v.versions(p, m.val)
		case RuleAllowedModels, RuleBlockedModels, RuleRequiredApps, RuleRestrictedApps:
			v.names(p, m.val)
		case RuleOutOfContact:
			v.integer(p, m.val, MinOutOfContact, MaxOutOfContact)
		default:
			v.fail(p, "unknown rule")
		}
	}
	// A maximum below the minimum makes every device of the platform
	// noncompliant: certainly a mistake, and one that would wipe devices.
	for platform, hi := range bounds[RuleMaxOSVersion] {
		lo, ok := bounds[RuleMinOSVersion][platform]
		if !ok {
			continue
		}
		a, _ := parseVersion(lo)
		b, _ := parseVersion(hi)
		if compareVersions(b, a) < 0 {
			v.fail(join(join(path, RuleMaxOSVersion), platform), "must not be below "+join(RuleMinOSVersion, platform))
		}
	}
}

// versions checks a platform → version map and returns its valid entries.
func (v *validator) versions(path string, raw json.RawMessage) map[string]string {
	valid := map[string]string{}
	obj, ok := v.object(path, raw)
	if !ok {
		return valid
	}
	for _, m := range obj {
		p := join(path, m.key)
		if !slices.Contains(activation.Platforms, activation.Platform(m.key)) {
			v.fail(p, "unknown platform")
			continue
		}
		var s string
		if isNull(m.val) || json.Unmarshal(m.val, &s) != nil {
			v.fail(p, "must be a version string")
			continue
		}
		if _, ok := parseVersion(s); !ok || len(s) > MaxName {
			v.fail(p, `must be a dotted numeric version such as "14" or "17.4.1"`)
			continue
		}
		valid[m.key] = s
	}
	return valid
}

func (v *validator) names(path string, raw json.RawMessage) {
	var list []string
	if isNull(raw) || json.Unmarshal(raw, &list) != nil {
		v.fail(path, "must be a list of strings")
		return
	}
	if len(list) > MaxListEntries {
		v.fail(path, fmt.Sprintf("at most %d entries", MaxListEntries))
		return
	}
	seen := map[string]bool{}
	for i, s := range list {
		p := fmt.Sprintf("%s[%d]", path, i)
		key := fold(s)
		switch {
		case key == "" || len(s) > MaxName || !utf8.ValidString(s) || strings.ContainsRune(s, 0):
			v.fail(p, fmt.Sprintf("must be a non-empty name of at most %d bytes", MaxName))
		case seen[key]:
			v.fail(p, "repeats an earlier entry")
		}
		seen[key] = true
	}
}

// integer checks a whole number in min..max; the decoder would otherwise
// accept 1.5 as 1 or -3 as a huge unsigned value.
func (v *validator) integer(path string, raw json.RawMessage, lo, hi int) (int, bool) {
	msg := fmt.Sprintf("must be a whole number from %d to %d", lo, hi)
	var n json.Number
	// json.Number also takes a string holding a number: only a bare
	// number is a number here.
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '-' && (t[0] < '0' || t[0] > '9') || json.Unmarshal(raw, &n) != nil {
		v.fail(path, msg)
		return 0, false
	}
	i, err := strconv.Atoi(n.String())
	if err != nil || i < lo || i > hi {
		v.fail(path, msg)
		return 0, false
	}
	return i, true
}

func (v *validator) actions(path string, raw json.RawMessage) {
	var steps []json.RawMessage
	if isNull(raw) || json.Unmarshal(raw, &steps) != nil {
		v.fail(path, "must be a list of steps")
		return
	}
	if len(steps) > len(Ladder) {
		v.fail(path, fmt.Sprintf("at most %d steps, one per action", len(Ladder)))
		return
	}
	prevRank, prevAfter := -1, 0
	seen := map[Action]bool{}
	for i, raw := range steps {
		sp := fmt.Sprintf("%s[%d]", path, i)
		obj, ok := v.object(sp, raw)
		if !ok {
			continue
		}
		var action Action
		after, haveAfter := -1, false
		var count, interval json.RawMessage
		for _, m := range obj {
			p := join(sp, m.key)
			switch m.key {
			case "action":
				var s string
				if isNull(m.val) || json.Unmarshal(m.val, &s) != nil || !slices.Contains(Ladder, Action(s)) {
					v.fail(p, "must be one of monitor, prompt, untrust, quarantine, wipe_work, wipe_device, remove")
					continue
				}
				action = Action(s)
			case "after_hours":
				after, haveAfter = v.integer(p, m.val, 0, MaxAfterHours)
			case "count":
				count = m.val
			case "interval_hours":
				interval = m.val
			default:
				v.fail(p, "unknown key")
			}
		}
		if !haveAfter {
			if _, bad := v.fields[join(sp, "after_hours")]; !bad {
				v.fail(join(sp, "after_hours"), "required")
			}
		}
		if action == "" {
			if _, bad := v.fields[join(sp, "action")]; !bad {
				v.fail(join(sp, "action"), "required")
			}
			continue
		}
		if action == Prompt {
			for _, f := range []struct {
				key string
				val json.RawMessage
				max int
			}{{"count", count, MaxPromptCount}, {"interval_hours", interval, MaxPromptInterval}} {
				if f.val == nil {
					v.fail(join(sp, f.key), "required for prompt")
				} else {
					v.integer(join(sp, f.key), f.val, 1, f.max)
				}
			}
		} else {
			if count != nil {
				v.fail(join(sp, "count"), "only for prompt")
			}
			if interval != nil {
				v.fail(join(sp, "interval_hours"), "only for prompt")
			}
		}
		rank := slices.Index(Ladder, action)
		switch {
		case seen[action]:
			v.fail(join(sp, "action"), "appears twice in the ladder")
		case rank < prevRank:
			v.fail(join(sp, "action"), fmt.Sprintf("must come before %s: the ladder runs monitor, prompt, untrust, quarantine, wipe_work, wipe_device, remove", Ladder[prevRank]))
		}
		seen[action] = true
		prevRank = max(prevRank, rank)
		if haveAfter {
			if after < prevAfter {
				v.fail(join(sp, "after_hours"), fmt.Sprintf("must not be less than the previous step's (%d)", prevAfter))
			}
			prevAfter = max(prevAfter, after)
		}
	}
}

// member is one key of a JSON object, in document order.
type member struct {
	key string
	val json.RawMessage
}

// object decodes a JSON object into its members, refusing anything else
// and duplicate keys (which decoders resolve differently, so two readers
// of one profile could disagree on a rule).
func (v *validator) object(path string, raw json.RawMessage) ([]member, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		v.fail(path, "must be a JSON object")
		return nil, false
	}
	var out []member
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			v.fail(path, "must be a JSON object")
			return nil, false
		}
		key := tok.(string) // object keys are always strings
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			v.fail(path, "must be a JSON object")
			return nil, false
		}
		if seen[key] {
			v.fail(join(path, key), "duplicate key")
			continue
		}
		seen[key] = true
		out = append(out, member{key, val})
	}
	if _, err := dec.Token(); err != nil {
		v.fail(path, "must be a JSON object")
		return nil, false
	}
	if _, err := dec.Token(); err == nil { // trailing data after the object
		v.fail(path, "must be a single JSON object")
		return nil, false
	}
	return out, true
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// fold is the form names are compared in: case-insensitive, surrounding
// spaces ignored.
func fold(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// parseVersion reads a dotted numeric version ("14", "17.4.1",
// "10.0.22631"). Missing trailing segments count as 0, so "14" equals
// "14.0".
func parseVersion(s string) ([]int, bool) {
	if s == "" {
		return nil, false
	}
	parts := strings.Split(s, ".")
	if len(parts) > maxVersionSegments {
		return nil, false
	}
	out := make([]int, len(parts))
	for i, p := range parts {
		if p == "" || len(p) > 9 || strings.Trim(p, "0123456789") != "" {
			return nil, false
		}
		out[i], _ = strconv.Atoi(p)
	}
	return out, true
}

// reportedVersion reads the leading dotted numeric part of what a device
// reports ("6.5.0-21-generic" is 6.5.0, "17.4.1 (21E236)" is 17.4.1); ok is
// false when there is none.
func reportedVersion(s string) ([]int, bool) {
	s = strings.TrimSpace(s)
	end := 0
	for end < len(s) && (s[end] >= '0' && s[end] <= '9' || s[end] == '.') {
		end++
	}
	return parseVersion(strings.TrimRight(s[:end], "."))
}

// compareVersions returns -1, 0 or +1 as a is less than, equal to or
// greater than b.
func compareVersions(a, b []int) int {
	for i := range max(len(a), len(b)) {
		var x, y int
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}
