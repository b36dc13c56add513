package compliance

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/custos-uem/custos/device"
)

// Attributes of device.Info that the rooted_or_jailbroken rule reads; a
// value "true" (any case) means the device reports itself compromised.
const (
	AttrRooted     = "rooted"
	AttrJailbroken = "jailbroken"
)

// Violation is one rule a device breaks.
type Violation struct {
	Rule   string `json:"rule"` // a Rule* name
	Detail string `json:"detail"`
}

// Evaluate returns the rules of p that d breaks, in the order of the
// Rule* constants; none means compliant. inv may be nil (the device has
// not reported yet): rules that need the report (rooted, apps) are then
// not judged, and the device's own OS version and model columns stand in
// for the report's. A rule that cannot be judged (an OS version with no
// numeric part, an empty model) is not a violation: the ladder ends in
// wiping a device, and a missing fact is no proof against it.
func Evaluate(p *Profile, d *device.Device, inv *device.Inventory, now time.Time) []Violation {
	if p == nil {
		return nil
	}
	r := p.Rules
	var out []Violation
	add := func(rule, format string, args ...any) {
		out = append(out, Violation{Rule: rule, Detail: fmt.Sprintf(format, args...)})
	}

	if r.RootedOrJailbroken && inv != nil {
		for _, attr := range []string{AttrRooted, AttrJailbroken} {
			if strings.EqualFold(strings.TrimSpace(inv.Info.Attributes[attr]), "true") {
				add(RuleRooted, "the device reports that it is %s", attr)
				break
			}
		}
	}

	osVersion, model := d.OSVersion, d.Model
	if inv != nil {
		osVersion = orElse(osVersion, inv.Info.OSVersion)
		model = orElse(model, inv.Info.Model)
	}
	if have, ok := reportedVersion(osVersion); ok {
		if lo, ok := r.MinOSVersion[d.Platform]; ok {
			if want, _ := parseVersion(lo); compareVersions(have, want) < 0 {
				add(RuleMinOSVersion, "OS version %s is older than the minimum %s", osVersion, lo)
			}
		}
		if hi, ok := r.MaxOSVersion[d.Platform]; ok {
			if want, _ := parseVersion(hi); compareVersions(have, want) > 0 {
				add(RuleMaxOSVersion, "OS version %s is newer than the maximum %s", osVersion, hi)
			}
		}
	}

	if m := fold(model); m != "" {
		if len(r.AllowedModels) > 0 && !containsFold(r.AllowedModels, m) {
			add(RuleAllowedModels, "model %q is not on the list of allowed models", model)
		}
		if containsFold(r.BlockedModels, m) {
			add(RuleBlockedModels, "model %q is blocked", model)
		}
	}

	if inv != nil {
		var missing, restricted []string
		for _, want := range r.RequiredApps {
			if !slices.ContainsFunc(inv.Software, func(a device.App) bool { return appIs(a, want) }) {
				missing = append(missing, want)
			}
		}
		for _, bad := range r.RestrictedApps {
			if slices.ContainsFunc(inv.Software, func(a device.App) bool { return appIs(a, bad) }) {
				restricted = append(restricted, bad)
			}
		}
		if len(missing) > 0 {
			add(RuleRequiredApps, "required apps not installed: %s", strings.Join(missing, ", "))
		}
		if len(restricted) > 0 {
			add(RuleRestrictedApps, "restricted apps installed: %s", strings.Join(restricted, ", "))
		}
	}

	if r.OutOfContactDays > 0 {
		last := d.LastSeenAt
		if last == nil {
			last = d.EnrolledAt
		}
		limit := time.Duration(r.OutOfContactDays) * 24 * time.Hour
		if last != nil && now.Sub(*last) > limit {
			add(RuleOutOfContact, "no contact for %d days (the limit is %d)", int(now.Sub(*last)/(24*time.Hour)), r.OutOfContactDays)
		}
	}
	return out
}

// orElse returns a unless it is empty, then b.
func orElse(a, b string) string {
	if strings.TrimSpace(a) != "" {
		return a
	}
	return b
}

func containsFold(list []string, folded string) bool {
	return slices.ContainsFunc(list, func(s string) bool { return fold(s) == folded })
}

// appIs reports whether the installed app a is the one a profile names,
// by ID (package name, bundle ID) or by name.
func appIs(a device.App, name string) bool {
	n := fold(name)
	return n != "" && (fold(a.ID) == n || fold(a.Name) == n)
}
