package api

import (
	"net/http"

	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/httpx"
	"github.com/custos-uem/custos/policy"
	"github.com/custos-uem/custos/user"
)

// subgroupIn is the body of POST /groups/{id}/subgroups.
type subgroupIn struct {
	GroupID string `json:"group_id"`
}

// groupIn is the body of POST and PATCH /groups.
type groupIn struct {
	Name                *string `json:"name"`
	Description         *string `json:"description"`
	ActivationProfileID *string `json:"activation_profile_id"`
}

// memberIn is the body of POST /groups/{id}/members.
type memberIn struct {
	UserID string `json:"user_id"`
}

func (a *API) listGroups(c *call) error {
	p, err := c.page()
	if err != nil {
		return err
	}
	gs, err := a.d.Users.Groups(c.ctx(), p)
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, newList(gs, nextAfter(len(gs), p.Limit, func() string { return gs[len(gs)-1].ID })))
}

func (a *API) createGroup(c *call) error {
	if err := groupsUnscoped(c); err != nil {
		return err
	}
	var in groupIn
	if err := c.decode(&in); err != nil {
		return err
	}
	if err := a.checkProfile(c, in.ActivationProfileID); err != nil {
		return err
	}
	g, err := a.d.Users.CreateGroup(c.ctx(), user.NewGroup{Name: str(in.Name), Description: str(in.Description), ActivationProfileID: str(in.ActivationProfileID)})
	if err != nil {
		return err
	}
	c.objectID = g.ID
	c.note("name", g.Name)
	return c.reply(http.StatusCreated, g)
}

func (a *API) getGroup(c *call) error {
	id, err := c.id("id", user.ErrGroupNotFound)
	if err != nil {
		return err
	}
	g, err := a.d.Users.Group(c.ctx(), id)
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, g)
}

func (a *API) updateGroup(c *call) error {
	if err := groupsUnscoped(c); err != nil {
		return err
	}
	id, err := c.id("id", user.ErrGroupNotFound)
	if err != nil {
		return err
	}
	var in groupIn
	if err := c.decode(&in); err != nil {
		return err
	}
	if err := a.checkProfile(c, in.ActivationProfileID); err != nil {
		return err
	}
	var changed []string
	for name, set := range map[string]bool{"name": in.Name != nil, "description": in.Description != nil, "activation_profile_id": in.ActivationProfileID != nil} {
		if set {
			changed = append(changed, name)
		}
	}
	c.note("fields", sorted(changed))
	if in.ActivationProfileID != nil {
		c.note("activation_profile_id", *in.ActivationProfileID)
	}
	g, err := a.d.Users.UpdateGroup(c.ctx(), id, user.GroupPatch{Name: in.Name, Description: in.Description, ActivationProfileID: in.ActivationProfileID})
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, g)
}

func (a *API) deleteGroup(c *call) error {
	if err := groupsUnscoped(c); err != nil {
		return err
	}
	id, err := c.id("id", user.ErrGroupNotFound)
	if err != nil {
		return err
	}
	// The devices the group's policies reach are found before the delete,
	// while the nesting and memberships still say who they are.
	var devs []string
	var derr error
	if a.d.Policies != nil {
		devs, derr = a.d.Policies.DevicesOf(c.ctx(), policy.TargetGroup, id)
	}
	if err := a.d.Users.DeleteGroup(c.ctx(), id); err != nil {
		return err
	}
	if a.d.Policies != nil {
		if derr == nil {
			derr = a.d.Policies.Notify(c.ctx(), devs)
		}
		a.refreshed(c, derr)
	}
	return c.reply(http.StatusNoContent, nil)
}

// refreshUsers and refreshGroups tell the devices of the users, or of the
// groups' members at any depth, that their configuration may have changed.
// Without a policy service (a Core wired before policies) there is no
// configuration to change.
func (a *API) refreshUsers(c *call, ids ...string) {
	if a.d.Policies != nil {
		a.refreshed(c, a.d.Policies.Refresh(c.ctx(), ids...))
	}
}

func (a *API) refreshGroups(c *call, ids ...string) {
	if a.d.Policies != nil {
		a.refreshed(c, a.d.Policies.RefreshGroups(c.ctx(), ids...))
	}
}

// refreshed records the outcome of telling devices that their
// configuration may have changed after a membership change. The change
// itself is committed and stands; a device not told now compares versions
// at its next scheduled check-in, so a failure is logged and audited, not
// answered as one.
func (a *API) refreshed(c *call, err error) {
	if err != nil {
		c.note("devices_not_notified", true)
		httpx.Logger(c.ctx()).Warn("api: devices not told of a group change", "err", err)
	}
}

func (a *API) listMembers(c *call) error {
	id, err := c.id("id", user.ErrGroupNotFound)
	if err != nil {
		return err
	}
	us, err := a.d.Users.Members(c.ctx(), id)
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, newList(us, ""))
}

func (a *API) addMember(c *call) error {
	if err := groupsUnscoped(c); err != nil {
		return err
	}
	id, err := c.id("id", user.ErrGroupNotFound)
	if err != nil {
		return err
	}
	var in memberIn
	if err := c.decode(&in); err != nil {
		return err
	}
	c.note("user_id", in.UserID)
	if !validID(in.UserID) {
		e := errs.E(errs.Invalid, "invalid_member", "user_id must name a user")
		e.Fields = map[string]string{"user_id": "a user ID"}
		return e
	}
	if err := a.d.Users.AddMember(c.ctx(), id, in.UserID); err != nil {
		return err
	}
	a.refreshUsers(c, in.UserID)
	return c.reply(http.StatusNoContent, nil)
}

func (a *API) removeMember(c *call) error {
	if err := groupsUnscoped(c); err != nil {
		return err
	}
	id, err := c.id("id", user.ErrGroupNotFound)
	if err != nil {
		return err
	}
	uid, err := c.id("userID", user.ErrMemberNotFound)
	if err != nil {
		return err
	}
	c.note("user_id", uid)
	if err := a.d.Users.RemoveMember(c.ctx(), id, uid); err != nil {
		return err
	}
	a.refreshUsers(c, uid)
	return c.reply(http.StatusNoContent, nil)
}

func (a *API) listSubgroups(c *call) error {
	id, err := c.id("id", user.ErrGroupNotFound)
	if err != nil {
		return err
	}
	gs, err := a.d.Users.Subgroups(c.ctx(), id)
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, newList(gs, ""))
}

func (a *API) addSubgroup(c *call) error {
	if err := groupsUnscoped(c); err != nil {
		return err
	}
	id, err := c.id("id", user.ErrGroupNotFound)
	if err != nil {
		return err
	}
	var in subgroupIn
	if err := c.decode(&in); err != nil {
		return err
	}
	c.note("subgroup_id", in.GroupID)
	if !validID(in.GroupID) {
		e := errs.E(errs.Invalid, "invalid_subgroup", "group_id must name a group")
		e.Fields = map[string]string{"group_id": "a group ID"}
		return e
	}
	if err := a.d.Users.AddSubgroup(c.ctx(), id, in.GroupID); err != nil {
		return err
	}
	// The child's members (at any depth) now get what the parent has.
	a.refreshGroups(c, in.GroupID)
	return c.reply(http.StatusNoContent, nil)
}

func (a *API) removeSubgroup(c *call) error {
	if err := groupsUnscoped(c); err != nil {
		return err
	}
	id, err := c.id("id", user.ErrGroupNotFound)
	if err != nil {
		return err
	}
	child, err := c.id("childID", user.ErrSubgroupNotFound)
	if err != nil {
		return err
	}
	c.note("subgroup_id", child)
	if err := a.d.Users.RemoveSubgroup(c.ctx(), id, child); err != nil {
		return err
	}
	a.refreshGroups(c, child)
	return c.reply(http.StatusNoContent, nil)
}

// groupsUnscoped refuses group changes to a scoped administrator: their
// scope is made of groups, so adding anyone to a group in it, or nesting a
// group under one, would widen what they manage.
func groupsUnscoped(c *call) error {
	if c.admin.Scoped() {
		return ErrScoped
	}
	return nil
}
