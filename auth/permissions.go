package auth

import (
	"errors"
	"slices"
	"strings"

	"github.com/custos-uem/custos/errs"
)

// Permission names one thing an administrator may do through the REST API.
// Every API route requires exactly one (api's route table names it); a few
// actions need a second one on top (a wipe command needs WipeSend besides
// CommandsSend). The set is fixed: roles are sets of these names, and an
// unknown name is refused wherever a role is written.
type Permission string

// The permissions. Reads and writes are separate so that a view-only role
// is a role of reads.
const (
	// UsersRead: list and read users, their effective activation profile
	// and the metadata of their activation passwords.
	UsersRead Permission = "users.read"
	// UsersWrite: create, change and delete users (deleting a user removes
	// their devices).
	UsersWrite Permission = "users.write"
	// GroupsRead: list and read groups, their members and subgroups.
	GroupsRead Permission = "groups.read"
	// GroupsWrite: create, change and delete groups; add and remove members
	// and subgroups.
	GroupsWrite Permission = "groups.write"
	// ProfilesRead: list and read activation profiles and activation types.
	ProfilesRead Permission = "profiles.read"
	// ProfilesWrite: create, change and delete activation profiles.
	ProfilesWrite Permission = "profiles.write"
	// PasswordsWrite: set, generate and revoke users' activation passwords.
	PasswordsWrite Permission = "passwords.write"
	// DevicesRead: list and read devices, their inventory and effective
	// configuration.
	DevicesRead Permission = "devices.read"
	// DevicesWrite: remove devices (their certificates are revoked).
	DevicesWrite Permission = "devices.write"
	// CommandsSend: queue commands for devices, one or many at once. The
	// commands that delete data need WipeSend as well.
	CommandsSend Permission = "commands.send"
	// CommandsRead: read devices' command queues and histories.
	CommandsRead Permission = "commands.read"
	// CommandsCancel: cancel open commands.
	CommandsCancel Permission = "commands.cancel"
	// WipeSend: queue the commands that delete data on a device
	// (wipe_work, wipe_device) and raw platform commands (which may carry
	// an erase), in addition to CommandsSend.
	WipeSend Permission = "wipe.send"
	// PoliciesRead: list and read IT policies and profiles and their
	// assignments (secrets are redacted whatever the role).
	PoliciesRead Permission = "policies.read"
	// PoliciesWrite: create, change, delete, assign and unassign policies.
	PoliciesWrite Permission = "policies.write"
	// ComplianceRead: read devices' compliance state.
	ComplianceRead Permission = "compliance.read"
	// ComplianceWrite: act on compliance (reserved: no route needs it yet;
	// compliance profiles themselves are policies, PoliciesWrite).
	ComplianceWrite Permission = "compliance.write"
	// AuditRead: read the audit trail.
	AuditRead Permission = "audit.read"
	// AdminsRead: list administrators, their roles and scopes.
	AdminsRead Permission = "admins.read"
	// AdminsWrite: create administrators (with a role no stronger than the
	// creator's own).
	AdminsWrite Permission = "admins.write"
	// RolesRead: list and read roles, their directory group bindings and
	// the permission names.
	RolesRead Permission = "roles.read"
	// RolesWrite: create, change and delete custom roles; bind roles to
	// directory groups (never granting what the caller lacks).
	RolesWrite Permission = "roles.write"
	// TokensRead: list API tokens (a scoped administrator sees their own).
	TokensRead Permission = "tokens.read"
	// TokensWrite: create API tokens for oneself and revoke tokens.
	TokensWrite Permission = "tokens.write"
	// SettingsRead: read server settings (reserved: no route yet).
	SettingsRead Permission = "settings.read"
	// SettingsWrite: change server settings (reserved: no route yet).
	SettingsWrite Permission = "settings.write"
)

// allPermissions in documented order: the order of Permissions and of a
// role's stored list.
var allPermissions = []Permission{
	UsersRead, UsersWrite, GroupsRead, GroupsWrite, ProfilesRead, ProfilesWrite, PasswordsWrite,
	DevicesRead, DevicesWrite, CommandsSend, CommandsRead, CommandsCancel, WipeSend,
	PoliciesRead, PoliciesWrite, ComplianceRead, ComplianceWrite, AuditRead,
	AdminsRead, AdminsWrite, RolesRead, RolesWrite, TokensRead, TokensWrite, SettingsRead, SettingsWrite,
}

var permissionIndex = func() map[Permission]int {
	m := make(map[Permission]int, len(allPermissions))
	for i, p := range allPermissions {
		m[p] = i
	}
	return m
}()

// Permissions returns every permission, in documented order (a fresh
// slice).
func Permissions() []Permission { return slices.Clone(allPermissions) }

// Valid reports whether p is one of Permissions.
func (p Permission) Valid() bool { _, ok := permissionIndex[p]; return ok }

// IsRead reports whether p only reads (its name ends in ".read").
func (p Permission) IsRead() bool { return strings.HasSuffix(string(p), ".read") }

// PermissionSet is a set of permissions. The zero value is empty.
type PermissionSet struct{ bits uint64 }

// NewPermissionSet returns the set of ps; invalid names are left out.
func NewPermissionSet(ps ...Permission) PermissionSet {
	var s PermissionSet
	for _, p := range ps {
		if i, ok := permissionIndex[p]; ok {
			s.bits |= 1 << i
		}
	}
	return s
}

// Has reports whether p is in s. The empty permission is in no set.
func (s PermissionSet) Has(p Permission) bool {
	i, ok := permissionIndex[p]
	return ok && s.bits&(1<<i) != 0
}

// List returns the permissions of s in documented order (never nil).
func (s PermissionSet) List() []Permission {
	out := []Permission{}
	for i, p := range allPermissions {
		if s.bits&(1<<i) != 0 {
			out = append(out, p)
		}
	}
	return out
}

// Missing returns the permissions of want that s lacks, in documented
// order (never nil).
func (s PermissionSet) Missing(want PermissionSet) []Permission {
	return PermissionSet{bits: want.bits &^ s.bits}.List()
}

// ParsePermissions checks names and returns them as a set. Unknown names
// are an errs Invalid unknown_permission error listing them (in its
// message and in Fields["permissions"]).
func ParsePermissions(names []string) (PermissionSet, error) {
	var s PermissionSet
	var unknown []string
	for _, n := range names {
		p := Permission(n)
		if !p.Valid() {
			if !slices.Contains(unknown, n) {
				unknown = append(unknown, n)
			}
			continue
		}
		s.bits |= 1 << permissionIndex[p]
	}
	if len(unknown) > 0 {
		for i, u := range unknown {
			if len(u) > 64 {
				unknown[i] = u[:64] + "…"
			}
		}
		list := strings.Join(unknown, ", ")
		e := errs.E(errs.Invalid, "unknown_permission", "unknown permissions: "+list)
		e.Fields = map[string]string{"permissions": "unknown: " + list}
		return PermissionSet{}, e
	}
	return s, nil
}

// ErrPermissionDenied is the refusal of an administrator whose role lacks p:
// errs Forbidden permission_denied, naming p in its message and in
// Fields["permission"].
func ErrPermissionDenied(p Permission) *errs.Error {
	name := string(p)
	if name == "" {
		name = "(none: the action names no permission, so nobody may)"
	}
	e := errs.E(errs.Forbidden, "permission_denied", "your role lacks the permission "+name)
	e.Fields = map[string]string{"permission": string(p)}
	return e
}

// DeniedPermission returns the permission an ErrPermissionDenied error
// names, and whether err is one.
func DeniedPermission(err error) (Permission, bool) {
	var e *errs.Error
	if !errors.As(err, &e) || e.Kind != errs.Forbidden || e.Code != "permission_denied" {
		return "", false
	}
	return Permission(e.Fields["permission"]), true
}

var permissionDescriptions = map[Permission]string{
	UsersRead:       "list and read users, their effective activation profile and activation password metadata",
	UsersWrite:      "create, change and delete users (deleting a user removes their devices)",
	GroupsRead:      "list and read groups, their members and subgroups",
	GroupsWrite:     "create, change and delete groups; add and remove members and subgroups",
	ProfilesRead:    "list and read activation profiles and activation types",
	ProfilesWrite:   "create, change and delete activation profiles",
	PasswordsWrite:  "set, generate and revoke activation passwords",
	DevicesRead:     "list and read devices, their inventory and configuration",
	DevicesWrite:    "remove devices",
	CommandsSend:    "queue commands for devices (a wipe also needs wipe.send)",
	CommandsRead:    "read command queues and histories",
	CommandsCancel:  "cancel open commands",
	WipeSend:        "queue wipe_work, wipe_device and raw commands (with commands.send)",
	PoliciesRead:    "list and read policies and their assignments",
	PoliciesWrite:   "create, change, delete, assign and unassign policies",
	ComplianceRead:  "read devices' compliance state",
	ComplianceWrite: "act on compliance (reserved)",
	AuditRead:       "read the audit trail",
	AdminsRead:      "list administrators",
	AdminsWrite:     "create administrators (with a role no stronger than one's own)",
	RolesRead:       "list and read roles, their bindings and the permissions",
	RolesWrite:      "create, change and delete custom roles; bind roles to directory groups",
	TokensRead:      "list API tokens",
	TokensWrite:     "create API tokens for oneself; revoke tokens",
	SettingsRead:    "read server settings (reserved)",
	SettingsWrite:   "change server settings (reserved)",
}

// Description says in a few words what p allows.
func (p Permission) Description() string { return permissionDescriptions[p] }
