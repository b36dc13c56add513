package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/httpx"
	"github.com/custos-uem/custos/id"
)

// Built-in role IDs. They are stable (stored in admins.role and in role
// bindings) and their roles are immutable: defined here, not in the
// database.
const (
	// RoleSecurityAdmin may do everything, administrators and roles
	// included. The bootstrap administrator and every administrator
	// created before roles existed have it.
	RoleSecurityAdmin = "security_admin"
	// RoleEnterpriseAdmin may do everything except create administrators
	// and change roles.
	RoleEnterpriseAdmin = "enterprise_admin"
	// RoleHelpDesk reads everything but the audit trail, administrators,
	// roles and settings; sends and cancels commands (no wipe) and sets
	// activation passwords. It changes no user, group, profile or policy.
	RoleHelpDesk = "help_desk"
	// RoleJuniorHelpDesk reads what RoleHelpDesk reads and changes nothing.
	RoleJuniorHelpDesk = "junior_help_desk"
)

// Role is a named set of permissions: built in (fixed IDs, immutable) or
// custom (stored, UUID IDs).
type Role struct {
	ID          string       `json:"id"`
	Name        string       `json:"name"`
	Description string       `json:"description"`
	Permissions []Permission `json:"permissions"`
	BuiltIn     bool         `json:"built_in"`
	// CreatedAt and UpdatedAt are zero (and not shown) for built-in roles.
	CreatedAt time.Time `json:"created_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// Set returns r's permissions as a set.
func (r *Role) Set() PermissionSet { return NewPermissionSet(r.Permissions...) }

// helpDeskReads are the reads of the help desk roles: every read but the
// audit trail, administrators, roles and settings.
func helpDeskReads() []Permission {
	var out []Permission
	for _, p := range allPermissions {
		if p.IsRead() && !slices.Contains([]Permission{AuditRead, AdminsRead, RolesRead, SettingsRead}, p) {
			out = append(out, p)
		}
	}
	return out
}

var builtInRoles = func() []*Role {
	all := Permissions()
	enterprise := slices.DeleteFunc(Permissions(), func(p Permission) bool { return p == AdminsWrite || p == RolesWrite })
	helpDesk := NewPermissionSet(append(helpDeskReads(), CommandsSend, CommandsCancel, PasswordsWrite)...).List()
	junior := NewPermissionSet(helpDeskReads()...).List()
	return []*Role{
		{ID: RoleSecurityAdmin, Name: "Security Administrator", BuiltIn: true, Permissions: all,
			Description: "Everything, including administrators and roles."},
		{ID: RoleEnterpriseAdmin, Name: "Enterprise Administrator", BuiltIn: true, Permissions: enterprise,
			Description: "Everything except creating administrators and changing roles."},
		{ID: RoleHelpDesk, Name: "Help Desk", BuiltIn: true, Permissions: helpDesk,
			Description: "Reads users, groups, profiles, devices, commands, policies and compliance; sends and cancels commands (no wipe); sets activation passwords."},
		{ID: RoleJuniorHelpDesk, Name: "Junior Help Desk", BuiltIn: true, Permissions: junior,
			Description: "Reads what the help desk reads; changes nothing."},
	}
}()

func copyRole(r *Role) *Role {
	c := *r
	c.Permissions = slices.Clone(r.Permissions)
	return &c
}

// BuiltInRoles returns the built-in roles (copies), strongest first.
func BuiltInRoles() []*Role {
	out := make([]*Role, len(builtInRoles))
	for i, r := range builtInRoles {
		out[i] = copyRole(r)
	}
	return out
}

// BuiltInRole returns the built-in role with id (a copy).
func BuiltInRole(id string) (*Role, bool) {
	for _, r := range builtInRoles {
		if r.ID == id {
			return copyRole(r), true
		}
	}
	return nil, false
}

// IsBuiltInRole reports whether id names a built-in role.
func IsBuiltInRole(id string) bool { _, ok := BuiltInRole(id); return ok }

// RoleBinding grants a role to the members of a directory group: when an
// administrator signs in through the directory, the roles bound to their
// groups apply (limited to ScopeGroups, when set, as Admin.ScopeGroups).
type RoleBinding struct {
	ID     string `json:"id"`
	RoleID string `json:"role_id"`
	// Group is the directory group's external ID (e.g. an LDAP DN or an
	// objectGUID), compared exactly.
	Group       string    `json:"group"`
	ScopeGroups []string  `json:"scope_groups"`
	CreatedAt   time.Time `json:"created_at"`
}

// RoleStore keeps custom roles (built-in ones are not stored).
type RoleStore interface {
	// CreateRole inserts r. A name another custom role has (in any case)
	// is errs.ErrConflict.
	CreateRole(ctx context.Context, r *Role) error
	// Role returns the custom role with id, or errs.ErrNotFound.
	Role(ctx context.Context, id string) (*Role, error)
	// ListRoles returns every custom role, by name.
	ListRoles(ctx context.Context) ([]*Role, error)
	// UpdateRole stores r's name, description, permissions and UpdatedAt.
	// errs.ErrNotFound for an unknown role; errs.ErrConflict for a name
	// another role has.
	UpdateRole(ctx context.Context, r *Role) error
	// DeleteRole deletes the custom role. errs.ErrNotFound for an unknown
	// one; errs.ErrConflict, deleting nothing, while an administrator has
	// it or a binding names it — checked in the transaction of the delete,
	// so that a concurrent CreateAdmin or AddRoleBinding cannot leave a
	// reference to a deleted role.
	DeleteRole(ctx context.Context, id string) error
}

// RoleBindingStore keeps the bindings of roles to directory groups.
type RoleBindingStore interface {
	// AddRoleBinding inserts b. Its role must be built in or a stored
	// custom role, checked in the transaction of the insert (else
	// errs.ErrNotFound); a second binding of one group to one role is
	// errs.ErrConflict. ScopeGroups nil and empty are stored alike and
	// read back as nil.
	AddRoleBinding(ctx context.Context, b *RoleBinding) error
	// RoleBindings returns the bindings of the role in ID order (none for
	// an unknown role).
	RoleBindings(ctx context.Context, roleID string) ([]*RoleBinding, error)
	// BindingsForGroups returns the bindings naming any of the directory
	// groups (external IDs), in ID order: what directory sign-in needs.
	BindingsForGroups(ctx context.Context, groups []string) ([]*RoleBinding, error)
	// RemoveRoleBinding deletes the binding id of the role, or returns
	// errs.ErrNotFound.
	RemoveRoleBinding(ctx context.Context, roleID, id string) error
}

// Role errors. Their codes are stable.
var (
	ErrRoleNotFound    = errs.E(errs.NotFound, "role_not_found", "no such role")
	ErrRoleBuiltIn     = errs.E(errs.Conflict, "role_built_in", "a built-in role cannot be changed or deleted")
	ErrRoleInUse       = errs.E(errs.Conflict, "role_in_use", "the role is held by an administrator or bound to a directory group")
	ErrRoleNameTaken   = errs.E(errs.Conflict, "role_name_taken", "another role has this name")
	ErrBindingNotFound = errs.E(errs.NotFound, "role_binding_not_found", "no such role binding")
	ErrBindingExists   = errs.E(errs.Conflict, "role_binding_exists", "the group is already bound to this role")
)

// Role limits.
const (
	MaxRoleName        = 64
	MaxRoleDescription = 512
	// MaxDirectoryGroup bounds a directory group's external ID (an LDAP DN
	// may be long).
	MaxDirectoryGroup = 512
)

// errNoRoleStore answers custom-role questions of a Service built without
// a role store.
var errNoRoleStore = errors.New("auth: no role store")

// roleStore returns Roles, or Admins when it keeps roles too.
func (s *Service) roleStore() (RoleStore, error) {
	if s.Roles != nil {
		return s.Roles, nil
	}
	if rs, ok := s.Admins.(RoleStore); ok {
		return rs, nil
	}
	return nil, errNoRoleStore
}

// bindingStore returns Bindings, or Admins when it keeps bindings too.
func (s *Service) bindingStore() (RoleBindingStore, error) {
	if s.Bindings != nil {
		return s.Bindings, nil
	}
	if bs, ok := s.Admins.(RoleBindingStore); ok {
		return bs, nil
	}
	return nil, errNoRoleStore
}

// Role returns the role with id, built in or custom (ErrRoleNotFound).
func (s *Service) Role(ctx context.Context, id string) (*Role, error) {
	if r, ok := BuiltInRole(id); ok {
		return r, nil
	}
	rs, err := s.roleStore()
	if err != nil {
		return nil, err
	}
	r, err := rs.Role(ctx, id)
	if errors.Is(err, errs.ErrNotFound) {
		return nil, errs.Wrap(ErrRoleNotFound.Kind, ErrRoleNotFound.Code, ErrRoleNotFound.Message, err)
	}
	if err != nil {
		return nil, fmt.Errorf("auth: role %s: %w", id, err)
	}
	return r, nil
}

// ListRoles returns the built-in roles, then the custom ones by name.
func (s *Service) ListRoles(ctx context.Context) ([]*Role, error) {
	out := BuiltInRoles()
	rs, err := s.roleStore()
	if err != nil {
		return nil, err
	}
	custom, err := rs.ListRoles(ctx)
	if err != nil {
		return nil, fmt.Errorf("auth: list roles: %w", err)
	}
	return append(out, custom...), nil
}

// PermissionsOf returns what a's role allows. A role that does not exist
// (deleted underneath, or a typing error in the database) allows nothing.
func (s *Service) PermissionsOf(ctx context.Context, a *Admin) (PermissionSet, error) {
	r, err := s.Role(ctx, a.Role)
	if errs.Is(err, errs.NotFound) {
		httpx.Logger(ctx).Warn("auth: administrator has an unknown role; refusing everything", "admin_id", a.ID, "role", a.Role)
		return PermissionSet{}, nil
	}
	if err != nil {
		return PermissionSet{}, err
	}
	return r.Set(), nil
}

// Authorize returns nil if a's role has p, ErrPermissionDenied(p)
// otherwise (always for the empty permission: deny by default).
func (s *Service) Authorize(ctx context.Context, a *Admin, p Permission) error {
	set, err := s.PermissionsOf(ctx, a)
	if err != nil {
		return err
	}
	if !set.Has(p) {
		return ErrPermissionDenied(p)
	}
	return nil
}

// CheckGrant refuses to give away more than one has: nil when have holds
// every permission of want, else ErrPermissionDenied naming the first one
// missing.
func CheckGrant(have, want PermissionSet) error {
	if m := have.Missing(want); len(m) > 0 {
		return ErrPermissionDenied(m[0])
	}
	return nil
}

// RoleInput is what CreateRole needs; UpdateRole changes the fields that
// are set.
type RoleInput struct {
	Name        string
	Description string
	Permissions []string
}

// RolePatch changes the fields that are not nil.
type RolePatch struct {
	Name        *string
	Description *string
	Permissions *[]string
}

func invalidRole(field, why string) error {
	e := errs.E(errs.Invalid, "invalid_role", "the role is invalid")
	e.Fields = map[string]string{field: why}
	return e
}

func printable(s string, maxLen int) bool {
	return len(s) <= maxLen && utf8.ValidString(s) && strings.IndexFunc(s, unicode.IsControl) < 0
}

// checkRoleName validates a custom role's name: 1 to 64 printable
// characters, and neither the ID nor the name of a built-in role.
func checkRoleName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" || !printable(name, MaxRoleName) {
		return "", invalidRole("name", "1 to 64 printable characters")
	}
	for _, b := range builtInRoles {
		if strings.EqualFold(name, b.ID) || strings.EqualFold(name, b.Name) {
			return "", errs.E(ErrRoleNameTaken.Kind, ErrRoleNameTaken.Code, "a built-in role has this name")
		}
	}
	return name, nil
}

func checkRoleDescription(d string) (string, error) {
	d = strings.TrimSpace(d)
	if !printable(d, MaxRoleDescription) {
		return "", invalidRole("description", "at most 512 printable characters")
	}
	return d, nil
}

// CreateRole creates a custom role. Unknown permission names are errs
// Invalid unknown_permission, listing them; a name taken is
// ErrRoleNameTaken. The caller checks that its administrator may grant the
// permissions (CheckGrant).
func (s *Service) CreateRole(ctx context.Context, in RoleInput) (*Role, error) {
	name, err := checkRoleName(in.Name)
	if err != nil {
		return nil, err
	}
	desc, err := checkRoleDescription(in.Description)
	if err != nil {
		return nil, err
	}
	set, err := ParsePermissions(in.Permissions)
	if err != nil {
		return nil, err
	}
	rs, err := s.roleStore()
	if err != nil {
		return nil, err
	}
	now := s.now()
	r := &Role{ID: id.New(), Name: name, Description: desc, Permissions: set.List(), CreatedAt: now, UpdatedAt: now}
	if err := rs.CreateRole(ctx, r); err != nil {
		if errors.Is(err, errs.ErrConflict) {
			return nil, errs.Wrap(ErrRoleNameTaken.Kind, ErrRoleNameTaken.Code, ErrRoleNameTaken.Message, err)
		}
		return nil, fmt.Errorf("auth: create role: %w", err)
	}
	return r, nil
}

// customRole returns the stored role id, refusing built-in ones
// (ErrRoleBuiltIn) and unknown ones (ErrRoleNotFound).
func (s *Service) customRole(ctx context.Context, id string) (RoleStore, *Role, error) {
	if IsBuiltInRole(id) {
		return nil, nil, ErrRoleBuiltIn
	}
	rs, err := s.roleStore()
	if err != nil {
		return nil, nil, err
	}
	r, err := rs.Role(ctx, id)
	if errors.Is(err, errs.ErrNotFound) {
		return nil, nil, errs.Wrap(ErrRoleNotFound.Kind, ErrRoleNotFound.Code, ErrRoleNotFound.Message, err)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("auth: role %s: %w", id, err)
	}
	return rs, r, nil
}

// UpdateRole changes a custom role; a built-in role is ErrRoleBuiltIn.
// It returns the role before and after the change (the caller checks that
// its administrator may grant what is added).
func (s *Service) UpdateRole(ctx context.Context, id string, in RolePatch) (before, after *Role, err error) {
	rs, r, err := s.customRole(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	before = copyRole(r)
	if in.Name != nil {
		if r.Name, err = checkRoleName(*in.Name); err != nil {
			return nil, nil, err
		}
	}
	if in.Description != nil {
		if r.Description, err = checkRoleDescription(*in.Description); err != nil {
			return nil, nil, err
		}
	}
	if in.Permissions != nil {
		set, err := ParsePermissions(*in.Permissions)
		if err != nil {
			return nil, nil, err
		}
		r.Permissions = set.List()
	}
	r.UpdatedAt = s.now()
	if err := rs.UpdateRole(ctx, r); err != nil {
		switch {
		case errors.Is(err, errs.ErrConflict):
			return nil, nil, errs.Wrap(ErrRoleNameTaken.Kind, ErrRoleNameTaken.Code, ErrRoleNameTaken.Message, err)
		case errors.Is(err, errs.ErrNotFound):
			return nil, nil, errs.Wrap(ErrRoleNotFound.Kind, ErrRoleNotFound.Code, ErrRoleNotFound.Message, err)
		}
		return nil, nil, fmt.Errorf("auth: update role: %w", err)
	}
	return before, r, nil
}

// DeleteRole deletes a custom role: ErrRoleBuiltIn for a built-in one,
// ErrRoleInUse while an administrator has it or a binding names it.
func (s *Service) DeleteRole(ctx context.Context, id string) error {
	rs, _, err := s.customRole(ctx, id)
	if err != nil {
		return err
	}
	if err := rs.DeleteRole(ctx, id); err != nil {
		switch {
		case errors.Is(err, errs.ErrConflict):
			return errs.Wrap(ErrRoleInUse.Kind, ErrRoleInUse.Code, ErrRoleInUse.Message, err)
		case errors.Is(err, errs.ErrNotFound):
			return errs.Wrap(ErrRoleNotFound.Kind, ErrRoleNotFound.Code, ErrRoleNotFound.Message, err)
		}
		return fmt.Errorf("auth: delete role: %w", err)
	}
	return nil
}

// NewRoleBinding is what AddRoleBinding needs. The caller checks that the
// scope groups exist (auth does not know groups).
type NewRoleBinding struct {
	Group       string
	ScopeGroups []string
}

// checkScope validates and deduplicates scope group IDs.
func checkScope(groups []string) ([]string, string) {
	var scope []string
	seen := map[string]bool{}
	for _, g := range groups {
		if g == "" || len(g) > 64 {
			return nil, "group IDs"
		}
		if !seen[g] {
			seen[g] = true
			scope = append(scope, g)
		}
	}
	if len(scope) > MaxScopeGroups {
		return nil, fmt.Sprintf("at most %d groups", MaxScopeGroups)
	}
	return scope, ""
}

// AddRoleBinding binds the role (built in or custom) to a directory group.
func (s *Service) AddRoleBinding(ctx context.Context, roleID string, in NewRoleBinding) (*RoleBinding, error) {
	if _, err := s.Role(ctx, roleID); err != nil {
		return nil, err
	}
	group := strings.TrimSpace(in.Group)
	fields := map[string]string{}
	if group == "" || !printable(group, MaxDirectoryGroup) {
		fields["group"] = "the directory group's external ID: 1 to 512 printable characters"
	}
	scope, why := checkScope(in.ScopeGroups)
	if why != "" {
		fields["scope_groups"] = why
	}
	if len(fields) > 0 {
		e := errs.E(errs.Invalid, "invalid_role_binding", "the role binding is invalid")
		e.Fields = fields
		return nil, e
	}
	bs, err := s.bindingStore()
	if err != nil {
		return nil, err
	}
	b := &RoleBinding{ID: id.New(), RoleID: roleID, Group: group, ScopeGroups: scope, CreatedAt: s.now()}
	if err := bs.AddRoleBinding(ctx, b); err != nil {
		switch {
		case errors.Is(err, errs.ErrConflict):
			return nil, errs.Wrap(ErrBindingExists.Kind, ErrBindingExists.Code, ErrBindingExists.Message, err)
		case errors.Is(err, errs.ErrNotFound):
			return nil, errs.Wrap(ErrRoleNotFound.Kind, ErrRoleNotFound.Code, ErrRoleNotFound.Message, err)
		}
		return nil, fmt.Errorf("auth: add role binding: %w", err)
	}
	return b, nil
}

// RoleBindings lists the bindings of a role (ErrRoleNotFound for an
// unknown role).
func (s *Service) RoleBindings(ctx context.Context, roleID string) ([]*RoleBinding, error) {
	if _, err := s.Role(ctx, roleID); err != nil {
		return nil, err
	}
	bs, err := s.bindingStore()
	if err != nil {
		return nil, err
	}
	out, err := bs.RoleBindings(ctx, roleID)
	if err != nil {
		return nil, fmt.Errorf("auth: role bindings: %w", err)
	}
	return out, nil
}

// BindingsForGroups returns the bindings of the directory groups (external
// IDs): the roles an administrator signing in through the directory gets.
func (s *Service) BindingsForGroups(ctx context.Context, groups []string) ([]*RoleBinding, error) {
	if len(groups) == 0 {
		return []*RoleBinding{}, nil
	}
	bs, err := s.bindingStore()
	if err != nil {
		return nil, err
	}
	out, err := bs.BindingsForGroups(ctx, groups)
	if err != nil {
		return nil, fmt.Errorf("auth: bindings for groups: %w", err)
	}
	return out, nil
}

// RemoveRoleBinding deletes a binding of the role
// (ErrBindingNotFound).
func (s *Service) RemoveRoleBinding(ctx context.Context, roleID, bindingID string) error {
	bs, err := s.bindingStore()
	if err != nil {
		return err
	}
	if err := bs.RemoveRoleBinding(ctx, roleID, bindingID); err != nil {
		if errors.Is(err, errs.ErrNotFound) {
			return errs.Wrap(ErrBindingNotFound.Kind, ErrBindingNotFound.Code, ErrBindingNotFound.Message, err)
		}
		return fmt.Errorf("auth: remove role binding: %w", err)
	}
	return nil
}
