package api

import (
	"net/http"

	"github.com/custos-uem/custos/auth"
	"github.com/custos-uem/custos/errs"
)

// Role body limits.
const (
	// MaxRoleBody: a name (64 bytes), a description (512) and every
	// permission name, with room for repeats and unknown names to be
	// reported.
	MaxRoleBody = 8 << 10
	// MaxBindingBody: a directory group's external ID (512 bytes) and up
	// to auth.MaxScopeGroups group IDs.
	MaxBindingBody = 8 << 10
)

// roleIn is the body of POST /roles; rolePatch of PATCH /roles/{id}.
type roleIn struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Permissions []string `json:"permissions"`
}

type rolePatch struct {
	Name        *string   `json:"name"`
	Description *string   `json:"description"`
	Permissions *[]string `json:"permissions"`
}

// bindingIn is the body of POST /roles/{id}/bindings.
type bindingIn struct {
	Group       string   `json:"group"`
	ScopeGroups []string `json:"scope_groups"`
}

// bindingView shows a binding; scope_groups is [] (never null).
type bindingView struct {
	*auth.RoleBinding
	ScopeGroups []string `json:"scope_groups"`
}

func viewBinding(b *auth.RoleBinding) bindingView {
	v := bindingView{RoleBinding: b, ScopeGroups: b.ScopeGroups}
	if v.ScopeGroups == nil {
		v.ScopeGroups = []string{}
	}
	return v
}

// permissionView is an item of GET /permissions.
type permissionView struct {
	Name        auth.Permission `json:"name"`
	Description string          `json:"description"`
}

// grant refuses to let the caller give away a permission their own role
// lacks (403 permission_denied naming it).
func (c *call) grant(want auth.PermissionSet) error {
	return auth.CheckGrant(c.perms, want)
}

func (a *API) roleID(c *call) (string, error) {
	return c.id("id", auth.ErrRoleNotFound)
}

func (a *API) listRoles(c *call) error {
	rs, err := a.d.Auth.ListRoles(c.ctx())
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, newList(rs, ""))
}

func (a *API) getRole(c *call) error {
	id, err := a.roleID(c)
	if err != nil {
		return err
	}
	r, err := a.d.Auth.Role(c.ctx(), id)
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, r)
}

func (a *API) createRole(c *call) error {
	var in roleIn
	if err := c.decode(&in); err != nil {
		return err
	}
	c.note("name", in.Name)
	c.note("permissions", in.Permissions)
	set, err := auth.ParsePermissions(in.Permissions)
	if err != nil {
		return err
	}
	if err := c.grant(set); err != nil {
		return err
	}
	r, err := a.d.Auth.CreateRole(c.ctx(), auth.RoleInput{Name: in.Name, Description: in.Description, Permissions: in.Permissions})
	if err != nil {
		return err
	}
	c.objectID = r.ID
	return c.reply(http.StatusCreated, r)
}

func (a *API) updateRole(c *call) error {
	id, err := a.roleID(c)
	if err != nil {
		return err
	}
	var in rolePatch
	if err := c.decode(&in); err != nil {
		return err
	}
	if in.Permissions != nil {
		c.note("permissions", *in.Permissions)
		set, err := auth.ParsePermissions(*in.Permissions)
		if err != nil {
			return err
		}
		// Changing a role's permissions in any way hands them out anew
		// to whoever holds it: the caller must have all of them.
		if err := c.grant(set); err != nil {
			return err
		}
	}
	if in.Name != nil {
		c.note("name", *in.Name)
	}
	before, r, err := a.d.Auth.UpdateRole(c.ctx(), id, auth.RolePatch{Name: in.Name, Description: in.Description, Permissions: in.Permissions})
	if err != nil {
		return err
	}
	c.note("permissions_before", before.Permissions)
	return c.reply(http.StatusOK, r)
}

func (a *API) deleteRole(c *call) error {
	id, err := a.roleID(c)
	if err != nil {
		return err
	}
	if err := a.d.Auth.DeleteRole(c.ctx(), id); err != nil {
		return err
	}
	return c.reply(http.StatusNoContent, nil)
}

func (a *API) listBindings(c *call) error {
	id, err := a.roleID(c)
	if err != nil {
		return err
	}
	bs, err := a.d.Auth.RoleBindings(c.ctx(), id)
	if err != nil {
		return err
	}
	out := make([]bindingView, 0, len(bs))
	for _, b := range bs {
		out = append(out, viewBinding(b))
	}
	return c.reply(http.StatusOK, newList(out, ""))
}

func (a *API) addBinding(c *call) error {
	// A binding makes administrators: the same rule as POST /admins.
	if c.admin.Scoped() {
		return ErrScoped
	}
	id, err := a.roleID(c)
	if err != nil {
		return err
	}
	var in bindingIn
	if err := c.decode(&in); err != nil {
		return err
	}
	c.note("group", in.Group)
	c.note("scope_groups", in.ScopeGroups)
	r, err := a.d.Auth.Role(c.ctx(), id)
	if err != nil {
		return err
	}
	if err := c.grant(r.Set()); err != nil {
		return err
	}
	if err := a.checkScopeGroups(c, in.ScopeGroups, func(field, why string) error {
		e := errs.E(errs.Invalid, "invalid_role_binding", "the role binding is invalid")
		e.Fields = map[string]string{field: why}
		return e
	}); err != nil {
		return err
	}
	b, err := a.d.Auth.AddRoleBinding(c.ctx(), id, auth.NewRoleBinding{Group: in.Group, ScopeGroups: in.ScopeGroups})
	if err != nil {
		return err
	}
	c.note("binding_id", b.ID)
	return c.reply(http.StatusCreated, viewBinding(b))
}

func (a *API) removeBinding(c *call) error {
	if c.admin.Scoped() {
		return ErrScoped
	}
	id, err := a.roleID(c)
	if err != nil {
		return err
	}
	bid, err := c.id("bindingID", auth.ErrBindingNotFound)
	if err != nil {
		return err
	}
	c.note("binding_id", bid)
	if err := a.d.Auth.RemoveRoleBinding(c.ctx(), id, bid); err != nil {
		return err
	}
	return c.reply(http.StatusNoContent, nil)
}

func (a *API) listPermissions(c *call) error {
	ps := auth.Permissions()
	out := make([]permissionView, len(ps))
	for i, p := range ps {
		out[i] = permissionView{Name: p, Description: p.Description()}
	}
	return c.reply(http.StatusOK, newList(out, ""))
}
