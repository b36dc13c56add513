package api

import (
	"fmt"
	"net/http"

	"github.com/custos-uem/custos/auth"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/user"
)

// ErrScoped refuses what only an unscoped administrator may do: create
// administrators (and so tokens for others). A scoped one could otherwise
// make an administrator with a wider scope than their own.
var ErrScoped = errs.E(errs.Forbidden, "admin_scoped", "only an administrator without a scope may do this")

// MaxAdminBody: a username, a display name and up to auth.MaxScopeGroups
// group IDs.
const MaxAdminBody = 8 << 10

// InitialTokenName names the token POST /admins creates with the
// administrator.
const InitialTokenName = "initial"

// adminIn is the body of POST /admins.
type adminIn struct {
	Username    string `json:"username"`
	DisplayName string `json:"display_name"`
	// Role is a role ID; empty means auth.RoleSecurityAdmin.
	Role        string   `json:"role"`
	ScopeGroups []string `json:"scope_groups"`
}

// adminView shows an administrator; scope_groups is [] (never null) for an
// unscoped one.
type adminView struct {
	*auth.Admin
	ScopeGroups []string `json:"scope_groups"`
}

func viewAdmin(a *auth.Admin) adminView {
	v := adminView{Admin: a, ScopeGroups: a.ScopeGroups}
	if v.ScopeGroups == nil {
		v.ScopeGroups = []string{}
	}
	return v
}

// adminCreated is the answer of POST /admins: the administrator and their
// first token, whose value is shown only here.
type adminCreated struct {
	adminView
	Token tokenCreated `json:"token"`
}

func (a *API) listAdmins(c *call) error {
	as, err := a.d.Auth.ListAdmins(c.ctx())
	if err != nil {
		return err
	}
	out := make([]adminView, 0, len(as))
	for _, ad := range as {
		out = append(out, viewAdmin(ad))
	}
	return c.reply(http.StatusOK, newList(out, ""))
}

func (a *API) createAdmin(c *call) error {
	if c.admin.Scoped() {
		return ErrScoped
	}
	var in adminIn
	if err := c.decode(&in); err != nil {
		return err
	}
	c.note("username", in.Username)
	c.note("scope_groups", in.ScopeGroups)
	role := in.Role
	if role == "" {
		role = auth.RoleSecurityAdmin
	}
	c.note("role", role)
	r, err := a.d.Auth.Role(c.ctx(), role)
	if errs.Is(err, errs.NotFound) {
		return invalidAdmin("role", "no such role")
	}
	if err != nil {
		return err
	}
	// No administrator makes one stronger than themselves.
	if err := c.grant(r.Set()); err != nil {
		return err
	}
	if err := a.checkScopeGroups(c, in.ScopeGroups, invalidAdmin); err != nil {
		return err
	}
	ad, err := a.d.Auth.CreateAdmin(c.ctx(), auth.NewAdmin{Username: in.Username, DisplayName: in.DisplayName, Role: role, ScopeGroups: in.ScopeGroups})
	if err != nil {
		return err
	}
	c.objectID = ad.ID
	plain, t, err := a.d.Auth.CreateToken(c.ctx(), ad.ID, InitialTokenName, 0)
	if err != nil {
		return err
	}
	c.note("token_created", t.ID)
	return c.reply(http.StatusCreated, adminCreated{adminView: viewAdmin(ad), Token: tokenCreated{Token: t, Value: plain}})
}

// checkScopeGroups checks that scope groups exist now: a typing error
// would otherwise make an administrator who sees nothing, silently.
// invalid builds the error naming the field.
func (a *API) checkScopeGroups(c *call, groups []string, invalid func(field, why string) error) error {
	if len(groups) > auth.MaxScopeGroups {
		return invalid("scope_groups", fmt.Sprintf("at most %d groups", auth.MaxScopeGroups))
	}
	for _, g := range groups {
		if !validID(g) {
			return invalid("scope_groups", "group IDs")
		}
		if _, err := a.d.Users.Group(c.ctx(), g); err != nil {
			if errs.Is(err, errs.NotFound) {
				return invalid("scope_groups", "no group has the ID "+g)
			}
			return err
		}
	}
	return nil
}

func invalidAdmin(field, why string) error {
	e := errs.E(errs.Invalid, "invalid_admin", "the administrator is invalid")
	e.Fields = map[string]string{field: why}
	return e
}

// userInScope is the scope check of a route that acts on a user's
// devices (deleting a user removes them): a user outside the caller's
// scope is user_not_found.
func (a *API) userInScope(c *call, userID string) error {
	return a.inScope(c, userID, user.ErrUserNotFound)
}
