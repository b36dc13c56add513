package agent

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/custos-uem/custos/device"
	wire "github.com/custos-uem/custos/platform/agent"
)

// Inventory is what a Collector reports about the device: its identity
// (step 5: "device operating system, and unique device identifier") and its
// device and software information (step 9).
type Inventory struct {
	// Platform is one of activation.Platforms ("android", "linux" …).
	Platform  string
	OSVersion string
	// HardwareID is the unique, stable identifier of the hardware.
	HardwareID string
	// Model and Name are shown to the administrator at activation.
	Model string
	Name  string
	Info  device.Info
	Apps  []device.App
}

// Collector reports what the device is. Implementations: agent/linux (a
// real Linux system) and agent/sim (simulated devices).
type Collector interface {
	// Collect returns a fresh inventory the caller may modify.
	Collect(ctx context.Context) (*Inventory, error)
}

// Attribute keys the agent adds to Info.Attributes when it had to cut a
// report to the wire limits.
const (
	// AttrTruncated lists, comma separated, the info fields cut to
	// wire.MaxField bytes.
	AttrTruncated = "agent.truncated_fields"
	// AttrAppsDropped counts software entries left out of the report: over
	// wire.MaxApps, or with a name or identifier longer than wire.MaxField
	// (a cut identifier would name another package), or empty.
	AttrAppsDropped = "agent.apps_dropped"
	// AttrAttributesDropped counts attributes left out (over
	// wire.MaxAttributes, or with a key longer than wire.MaxField).
	AttrAttributesDropped = "agent.attributes_dropped"
)

// Normalize fits inv to the wire limits (wire.MaxField, wire.MaxApps,
// wire.MaxAttributes) and puts it in a canonical form, so that the same
// device always produces the same report and the same software hash:
//
//   - every string becomes valid UTF-8 (invalid bytes → U+FFFD) and is cut
//     at a character boundary to wire.MaxField bytes; each cut info field is
//     named in Attributes[AttrTruncated]; Version of an app is cut the same way;
//   - an app whose Name or ID is longer than wire.MaxField, or whose Name is
//     empty, is dropped, as are exact duplicates and the apps beyond
//     wire.MaxApps (after sorting by name, ID, version); the count is in
//     Attributes[AttrAppsDropped];
//   - attributes beyond wire.MaxAttributes (including the agent's own notes)
//     are dropped in key order, counted in Attributes[AttrAttributesDropped].
//
// A HardwareID or Platform that is empty or longer than wire.MaxField is an
// error: an identity is never silently cut.
func Normalize(inv *Inventory) error {
	if inv.Platform == "" || len(inv.Platform) > wire.MaxField {
		return fmt.Errorf("agent: inventory: platform %q is empty or too long", inv.Platform)
	}
	if inv.HardwareID == "" {
		return errors.New("agent: inventory: no hardware ID")
	}
	if len(inv.HardwareID) > wire.MaxField || !utf8.ValidString(inv.HardwareID) {
		return fmt.Errorf("agent: inventory: hardware ID longer than %d bytes or not UTF-8", wire.MaxField)
	}
	inv.OSVersion, _ = Clean(inv.OSVersion)
	inv.Model, _ = Clean(inv.Model)
	inv.Name, _ = Clean(inv.Name)

	var cut []string
	info := &inv.Info
	for _, f := range []struct {
		name string
		p    *string
	}{
		{"hostname", &info.Hostname}, {"manufacturer", &info.Manufacturer}, {"model", &info.Model},
		{"serial_number", &info.SerialNumber}, {"os_name", &info.OSName}, {"os_version", &info.OSVersion},
		{"kernel", &info.Kernel}, {"arch", &info.Arch}, {"imei", &info.IMEI}, {"phone_number", &info.PhoneNumber},
	} {
		var was bool
		if *f.p, was = Clean(*f.p); was {
			cut = append(cut, f.name)
		}
	}

	// Apps: clean, drop the unusable, sort, deduplicate, cap.
	dropped := 0
	apps := inv.Apps[:0]
	for _, a := range inv.Apps {
		var cutName, cutID bool
		a.Name, cutName = Clean(a.Name)
		a.ID, cutID = Clean(a.ID)
		a.Version, _ = Clean(a.Version)
		if cutName || cutID || a.Name == "" {
			dropped++
			continue
		}
		apps = append(apps, a)
	}
	slices.SortFunc(apps, func(x, y device.App) int {
		return cmp.Or(strings.Compare(x.Name, y.Name), strings.Compare(x.ID, y.ID), strings.Compare(x.Version, y.Version))
	})
	n := len(apps)
	apps = slices.Compact(apps)
	dropped += n - len(apps)
	if len(apps) > wire.MaxApps {
		dropped += len(apps) - wire.MaxApps
		apps = apps[:wire.MaxApps]
	}
	inv.Apps = apps

	// Attributes: clean; the agent's notes go last and count against the cap.
	attrs := make(map[string]string, len(info.Attributes)+3)
	attrDropped := 0
	for k, v := range info.Attributes {
		if len(k) > wire.MaxField || k == "" {
			attrDropped++
			continue
		}
		k, _ = Clean(k)
		attrs[k], _ = Clean(v)
	}
	notes := 0
	if len(cut) > 0 {
		notes++
	}
	if dropped > 0 {
		notes++
	}
	if len(attrs)+notes > wire.MaxAttributes {
		notes++ // room for AttrAttributesDropped itself
		keys := make([]string, 0, len(attrs))
		for k := range attrs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		keep := max(wire.MaxAttributes-notes, 0)
		for _, k := range keys[keep:] {
			delete(attrs, k)
			attrDropped++
		}
	}
	if len(cut) > 0 {
		s, _ := Clean(strings.Join(cut, ","))
		attrs[AttrTruncated] = s
	}
	if dropped > 0 {
		attrs[AttrAppsDropped] = strconv.Itoa(dropped)
	}
	if attrDropped > 0 {
		attrs[AttrAttributesDropped] = strconv.Itoa(attrDropped)
	}
	if len(attrs) == 0 {
		attrs = nil
	}
	info.Attributes = attrs
	return nil
}

// Clean returns s as valid UTF-8 cut at a character boundary to at most
// wire.MaxField bytes, and whether it had to be cut.
func Clean(s string) (string, bool) {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) <= wire.MaxField {
		return s, false
	}
	i := wire.MaxField
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i], true
}

// SoftwareHash returns the hash of a normalized software list: the agent
// sends the list only when this differs from the hash of the last list the
// Core accepted.
func SoftwareHash(apps []device.App) string {
	if apps == nil {
		apps = []device.App{}
	}
	b, _ := json.Marshal(apps) // a slice of plain structs cannot fail
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
