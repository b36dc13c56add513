package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/custos-uem/custos/activation"
	"github.com/custos-uem/custos/auth"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/httpx"
	"github.com/custos-uem/custos/policy"
	"github.com/custos-uem/custos/user"
)

// registerObjects registers the pages of groups, activation profiles,
// policies and profiles (compliance profiles included).
//
// Every change is a POST (CSRF-checked by the session middleware) that
// checks its permission first (a refusal is audited "<action>.denied"),
// calls the same service as the REST API, writes the audit entry the API
// route writes (same action names) and redirects with ?done=. A form the
// service refuses (invalid, conflict) is shown again with its input and
// the service's per-field errors.
func (c *Console) registerObjects(mux *http.ServeMux) {
	p := ConsolePath
	mux.HandleFunc("GET "+p+"/groups", c.groups)
	mux.HandleFunc("POST "+p+"/groups", c.createGroup)
	mux.HandleFunc("GET "+p+"/groups/{id}", c.groupPage)
	mux.HandleFunc("POST "+p+"/groups/{id}", c.updateGroup)
	mux.HandleFunc("POST "+p+"/groups/{id}/delete", c.deleteGroup)
	mux.HandleFunc("POST "+p+"/groups/{id}/members", c.addMember)
	mux.HandleFunc("POST "+p+"/groups/{id}/members/{userID}/remove", c.removeMember)
	mux.HandleFunc("POST "+p+"/groups/{id}/subgroups", c.addSubgroup)
	mux.HandleFunc("POST "+p+"/groups/{id}/subgroups/{childID}/remove", c.removeSubgroup)

	mux.HandleFunc("GET "+p+"/profiles", c.profiles)
	mux.HandleFunc("POST "+p+"/profiles", c.createProfile)
	mux.HandleFunc("GET "+p+"/profiles/{id}", c.profilePage)
	mux.HandleFunc("POST "+p+"/profiles/{id}", c.updateProfile)
	mux.HandleFunc("POST "+p+"/profiles/{id}/delete", c.deleteProfile)

	// Without a policy service (a console wired before policies) there
	// are no policy pages.
	pol := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if c.Policies == nil {
				c.notFound(w, r)
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("GET "+p+"/policies", pol(c.policies))
	mux.HandleFunc("POST "+p+"/policies", pol(c.createPolicy))
	mux.HandleFunc("GET "+p+"/policies/{id}", pol(c.policyPage))
	mux.HandleFunc("POST "+p+"/policies/{id}", pol(c.updatePolicy))
	mux.HandleFunc("POST "+p+"/policies/{id}/delete", pol(c.deletePolicy))
	mux.HandleFunc("POST "+p+"/policies/{id}/assignments", pol(c.assignPolicy))
	mux.HandleFunc("POST "+p+"/policies/{id}/assignments/{targetKind}/{targetID}/remove", pol(c.unassignPolicy))
}

// objectDone are the confirmations of this file's redirects (by key, so
// nothing from the URL is echoed).
var objectDone = map[string]string{
	"group":            "Group created.",
	"group_saved":      "Group saved.",
	"group_deleted":    "Group deleted; its members stay.",
	"member":           "Member added.",
	"member_removed":   "Member removed.",
	"subgroup":         "Subgroup added.",
	"subgroup_removed": "Subgroup removed.",
	"profile":          "Activation profile created.",
	"profile_saved":    "Activation profile saved.",
	"profile_deleted":  "Activation profile deleted.",
	"policy":           "Policy created.",
	"policy_saved":     "Policy saved.",
	"policy_deleted":   "Policy deleted.",
	"assigned":         "Policy assigned.",
	"unassigned":       "Assignment removed.",
}

// notNotified is added to a confirmation when the change stands but its
// devices could not be told now (policy.ErrNotNotified).
const notNotified = " Its devices could not be told now; they pick the change up at their next check-in."

// objectPage is adminPage with this file's confirmations.
func (c *Console) objectPage(r *http.Request, title, current string, data any) page {
	p := c.adminPage(r, title, current, data)
	if msg, ok := objectDone[r.URL.Query().Get("done")]; ok {
		p.Flash = msg
		if r.URL.Query().Get("late") == "1" {
			p.Flash += notNotified
		}
	}
	return p
}

// done redirects (303) to path with the confirmation key.
func done(w http.ResponseWriter, r *http.Request, path, key string, late bool) {
	q := url.Values{"done": {key}}
	if late {
		q.Set("late", "1")
	}
	http.Redirect(w, r, path+"?"+q.Encode(), http.StatusSeeOther)
}

// formError is a refusal shown on the form that caused it.
type formError struct {
	Message string
	Fields  []kv // sorted by field
	byField map[string]string
}

// Field returns the error of one field ("" when none).
func (f *formError) Field(name string) string {
	if f == nil {
		return ""
	}
	return f.byField[name]
}

// formErrorOf returns the error to show on the form for a refusal the
// administrator can correct (invalid input, a conflict, a name that does
// not exist); nil for anything else, which is an error page.
func formErrorOf(err error) *formError {
	switch errs.KindOf(err) {
	case errs.Invalid, errs.Conflict, errs.NotFound, errs.TooLarge:
	default:
		return nil
	}
	_, msg, fields := errs.Public(err)
	f := &formError{Message: msg, byField: fields}
	for k, v := range fields {
		f.Fields = append(f.Fields, kv{k, v})
	}
	sort.Slice(f.Fields, func(i, j int) bool { return f.Fields[i].K < f.Fields[j].K })
	return f
}

// fieldError builds an Invalid error with one field.
func fieldError(code, msg, field, fieldMsg string) error {
	e := errs.E(errs.Invalid, code, msg)
	e.Fields = map[string]string{field: fieldMsg}
	return e
}

// errCode is the public code of err, for audit details.
func errCode(err error) string {
	code, _, _ := errs.Public(err)
	return code
}

// errScoped refuses group changes to an administrator limited to some
// groups: changing memberships or nesting would move users, and so their
// devices, into (or out of) the scope that limits them.
var errScoped = errs.E(errs.Forbidden, "admin_scoped", "an administrator limited to some groups may not change groups")

// validID is the API's check of an ID taken from a form or a path.
func validID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// userByEmail finds a user by email or username; a user outside the
// administrator's scope is not found, as on the users pages.
func (c *Console) userByEmail(r *http.Request, login string) (*user.User, error) {
	u, err := c.Users.ByLogin(r.Context(), login)
	if err != nil {
		if errs.Is(err, errs.NotFound) {
			return nil, fieldError(user.ErrUserNotFound.Code, "no user has this email address", "email", "no such user")
		}
		return nil, err
	}
	ok, err := c.inScope(r, u.ID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fieldError(user.ErrUserNotFound.Code, "no user has this email address", "email", "no such user")
	}
	return u, nil
}

// ---- Groups ----

// groupForm is the input of the group forms, kept when they are refused.
type groupForm struct {
	Name, Description, ActivationProfileID string
}

type groupRow struct {
	*user.Group
	Members     int // -1: not counted
	ProfileName string
}

// groupsData is the groups page.
type groupsData struct {
	Groups   []groupRow
	Profiles []*activation.Profile
	CanWrite bool
	Form     groupForm
	Error    *formError
	Next     string
}

// memberCounts caps how many groups of a page get their members counted
// (one query each).
const memberCounts = 100

func (c *Console) canChangeGroups(r *http.Request) bool {
	return c.can(r, auth.GroupsWrite) && !adminOf(r).Scoped()
}

// requireGroupsWrite is require for group changes, which a scoped
// administrator may not make whatever their role (audited as a refusal).
func (c *Console) requireGroupsWrite(w http.ResponseWriter, r *http.Request, action, id string) bool {
	if !c.require(w, r, auth.GroupsWrite, action, "group", id) {
		return false
	}
	if adminOf(r).Scoped() {
		c.record(r, action+".denied", "group", id, "denied", map[string]any{"code": errScoped.Code})
		c.fail(w, r, ConsolePath, errScoped)
		return false
	}
	return true
}

// profileNames maps profile IDs to names.
func profileNames(ps []*activation.Profile) map[string]string {
	m := make(map[string]string, len(ps))
	for _, p := range ps {
		m[p.ID] = p.Name
	}
	return m
}

func (c *Console) showGroups(w http.ResponseWriter, r *http.Request, status int, form groupForm, ferr *formError) {
	after := r.URL.Query().Get("after")
	gs, err := c.Users.Groups(r.Context(), user.Page{After: after, Limit: user.MaxPage})
	if err != nil {
		c.fail(w, r, ConsolePath, err)
		return
	}
	d := &groupsData{CanWrite: c.canChangeGroups(r), Form: form, Error: ferr}
	if c.can(r, auth.ProfilesRead) || d.CanWrite {
		if d.Profiles, err = c.Activation.Store.ListProfiles(r.Context()); err != nil {
			c.fail(w, r, ConsolePath, err)
			return
		}
	}
	names := profileNames(d.Profiles)
	for i, g := range gs {
		row := groupRow{Group: g, Members: -1, ProfileName: names[g.ActivationProfileID]}
		if i < memberCounts {
			if ms, err := c.Users.Members(r.Context(), g.ID); err == nil {
				row.Members = len(ms)
			}
		}
		d.Groups = append(d.Groups, row)
	}
	if len(gs) == user.MaxPage {
		d.Next = gs[len(gs)-1].ID
	}
	if ferr != nil {
		w.Header().Set("Cache-Control", "no-store")
	}
	c.render(w, r, status, "groups", c.objectPage(r, "Groups", "Groups", d))
}

func (c *Console) groups(w http.ResponseWriter, r *http.Request) {
	if !c.require(w, r, auth.GroupsRead, "console.groups", "", "") {
		return
	}
	c.showGroups(w, r, http.StatusOK, groupForm{}, nil)
}

// checkProfile refuses an assignment to an activation profile that does
// not exist, like the API.
func (c *Console) checkProfile(r *http.Request, id string) error {
	if id == "" {
		return nil
	}
	e := fieldError("activation_profile_not_found", "no activation profile has this ID", "activation_profile_id", "no such activation profile")
	if !validID(id) {
		return e
	}
	if _, err := c.Activation.Store.Profile(r.Context(), id); err != nil {
		if errors.Is(err, errs.ErrNotFound) {
			return e
		}
		return err
	}
	return nil
}

func (c *Console) createGroup(w http.ResponseWriter, r *http.Request) {
	if !c.requireGroupsWrite(w, r, "group.create", "") {
		return
	}
	if err := parseForm(w, r); err != nil {
		c.fail(w, r, ConsolePath, err)
		return
	}
	f := groupForm{Name: r.PostFormValue("name"), Description: r.PostFormValue("description"), ActivationProfileID: r.PostFormValue("activation_profile_id")}
	err := c.checkProfile(r, f.ActivationProfileID)
	var g *user.Group
	if err == nil {
		g, err = c.Users.CreateGroup(r.Context(), user.NewGroup{Name: f.Name, Description: f.Description, ActivationProfileID: f.ActivationProfileID})
	}
	if err != nil {
		c.record(r, "group.create", "group", "", "failed", map[string]any{"name": f.Name, "error": errCode(err)})
		if fe := formErrorOf(err); fe != nil {
			c.showGroups(w, r, httpx.Status(errs.KindOf(err)), f, fe)
			return
		}
		c.fail(w, r, ConsolePath, err)
		return
	}
	c.record(r, "group.create", "group", g.ID, "ok", map[string]any{"name": g.Name})
	done(w, r, ConsolePath+"/groups/"+g.ID, "group", false)
}

// groupData is the group page.
type groupData struct {
	Group         *user.Group
	ProfileName   string
	Members       []*user.User
	HiddenMembers int // members outside the administrator's scope
	Subgroups     []*user.Group
	Candidates    []*user.Group // groups that may become subgroups
	Profiles      []*activation.Profile
	CanWrite      bool
	Form          groupForm
	Error         *formError
	// MemberEmail is the email of a refused member addition, kept.
	MemberEmail string
}

// group fetches the group of the path.
func (c *Console) group(r *http.Request) (*user.Group, error) {
	id := r.PathValue("id")
	if !validID(id) {
		return nil, user.ErrGroupNotFound
	}
	return c.Users.Group(r.Context(), id)
}

func (c *Console) showGroup(w http.ResponseWriter, r *http.Request, status int, g *user.Group, form *groupForm, ferr *formError, email string) {
	ctx := r.Context()
	d := &groupData{Group: g, CanWrite: c.canChangeGroups(r), Error: ferr, MemberEmail: email}
	if form != nil {
		d.Form = *form
	} else {
		d.Form = groupForm{Name: g.Name, Description: g.Description, ActivationProfileID: g.ActivationProfileID}
	}
	members, err := c.Users.Members(ctx, g.ID)
	if err != nil {
		c.fail(w, r, ConsolePath, err)
		return
	}
	for _, u := range members {
		if ok, err := c.inScope(r, u.ID); err == nil && ok {
			d.Members = append(d.Members, u)
		} else {
			d.HiddenMembers++
		}
	}
	if d.Subgroups, err = c.Users.Subgroups(ctx, g.ID); err != nil {
		c.fail(w, r, ConsolePath, err)
		return
	}
	if c.can(r, auth.ProfilesRead) || d.CanWrite {
		if d.Profiles, err = c.Activation.Store.ListProfiles(ctx); err != nil {
			c.fail(w, r, ConsolePath, err)
			return
		}
		d.ProfileName = profileNames(d.Profiles)[g.ActivationProfileID]
	}
	if d.CanWrite {
		all, err := c.Users.Groups(ctx, user.Page{Limit: user.MaxPage})
		if err != nil {
			c.fail(w, r, ConsolePath, err)
			return
		}
		for _, o := range all {
			if o.ID != g.ID && !slices.ContainsFunc(d.Subgroups, func(s *user.Group) bool { return s.ID == o.ID }) {
				d.Candidates = append(d.Candidates, o)
			}
		}
	}
	if ferr != nil {
		w.Header().Set("Cache-Control", "no-store")
	}
	c.render(w, r, status, "group", c.objectPage(r, g.Name, "Groups", d))
}

func (c *Console) groupPage(w http.ResponseWriter, r *http.Request) {
	if !c.require(w, r, auth.GroupsRead, "console.group", "group", r.PathValue("id")) {
		return
	}
	g, err := c.group(r)
	if err != nil {
		c.fail(w, r, ConsolePath, err)
		return
	}
	c.showGroup(w, r, http.StatusOK, g, nil, nil, "")
}

// groupChange runs a change of the group of the path: permission, form,
// the group itself (404 is an error page), then change, whose refusals
// the administrator can correct are shown on the group page.
func (c *Console) groupChange(w http.ResponseWriter, r *http.Request, action string, change func(g *user.Group) (detail map[string]any, form *groupForm, email string, err error), key string) {
	id := r.PathValue("id")
	if !c.requireGroupsWrite(w, r, action, id) {
		return
	}
	if err := parseForm(w, r); err != nil {
		c.fail(w, r, ConsolePath, err)
		return
	}
	g, err := c.group(r)
	if err != nil {
		c.record(r, action, "group", id, "failed", map[string]any{"error": errCode(err)})
		c.fail(w, r, ConsolePath, err)
		return
	}
	detail, form, email, err := change(g)
	if err != nil {
		if detail == nil {
			detail = map[string]any{}
		}
		detail["error"] = errCode(err)
		c.record(r, action, "group", g.ID, "failed", detail)
		if fe := formErrorOf(err); fe != nil {
			if fresh, gerr := c.Users.Group(r.Context(), g.ID); gerr == nil {
				g = fresh
			}
			c.showGroup(w, r, httpx.Status(errs.KindOf(err)), g, form, fe, email)
			return
		}
		c.fail(w, r, ConsolePath, err)
		return
	}
	late := detail["devices_not_notified"] == true
	c.record(r, action, "group", g.ID, "ok", detail)
	if key == "group_deleted" {
		done(w, r, ConsolePath+"/groups", key, late)
		return
	}
	done(w, r, ConsolePath+"/groups/"+g.ID, key, late)
}

// refreshed notes in detail that devices could not be told of a change
// (which stands: they compare versions at their next check-in).
func (c *Console) refreshed(r *http.Request, detail map[string]any, err error) {
	if err != nil {
		detail["devices_not_notified"] = true
		c.Logger.Warn("console: devices not told of a change", "path", r.URL.Path, "err", err)
	}
}

func (c *Console) updateGroup(w http.ResponseWriter, r *http.Request) {
	c.groupChange(w, r, "group.update", func(g *user.Group) (map[string]any, *groupForm, string, error) {
		var patch user.GroupPatch
		var changed []string
		form := groupForm{Name: g.Name, Description: g.Description, ActivationProfileID: g.ActivationProfileID}
		if _, ok := r.PostForm["name"]; ok {
			v := r.PostFormValue("name")
			patch.Name, form.Name, changed = &v, v, append(changed, "name")
		}
		if _, ok := r.PostForm["description"]; ok {
			v := r.PostFormValue("description")
			patch.Description, form.Description, changed = &v, v, append(changed, "description")
		}
		detail := map[string]any{}
		if _, ok := r.PostForm["activation_profile_id"]; ok {
			v := r.PostFormValue("activation_profile_id")
			patch.ActivationProfileID, form.ActivationProfileID, changed = &v, v, append(changed, "activation_profile_id")
			detail["activation_profile_id"] = v
		}
		sort.Strings(changed)
		detail["fields"] = changed
		if patch.ActivationProfileID != nil {
			if err := c.checkProfile(r, *patch.ActivationProfileID); err != nil {
				return detail, &form, "", err
			}
		}
		_, err := c.Users.UpdateGroup(r.Context(), g.ID, patch)
		return detail, &form, "", err
	}, "group_saved")
}

func (c *Console) deleteGroup(w http.ResponseWriter, r *http.Request) {
	c.groupChange(w, r, "group.delete", func(g *user.Group) (map[string]any, *groupForm, string, error) {
		detail := map[string]any{"name": g.Name}
		// The devices the group's policies reach are found before the
		// delete, while the nesting and memberships still say who they are.
		var devs []string
		var derr error
		if c.Policies != nil {
			devs, derr = c.Policies.DevicesOf(r.Context(), policy.TargetGroup, g.ID)
		}
		if err := c.Users.DeleteGroup(r.Context(), g.ID); err != nil {
			return detail, nil, "", err
		}
		if c.Policies != nil {
			if derr == nil {
				derr = c.Policies.Notify(r.Context(), devs)
			}
			c.refreshed(r, detail, derr)
		}
		return detail, nil, "", nil
	}, "group_deleted")
}

func (c *Console) addMember(w http.ResponseWriter, r *http.Request) {
	c.groupChange(w, r, "group.member.add", func(g *user.Group) (map[string]any, *groupForm, string, error) {
		email := strings.TrimSpace(r.PostFormValue("email"))
		detail := map[string]any{}
		u, err := c.userByEmail(r, email)
		if err != nil {
			return detail, nil, email, err
		}
		detail["user_id"] = u.ID
		if err := c.Users.AddMember(r.Context(), g.ID, u.ID); err != nil {
			return detail, nil, email, err
		}
		if c.Policies != nil {
			c.refreshed(r, detail, c.Policies.Refresh(r.Context(), u.ID))
		}
		return detail, nil, "", nil
	}, "member")
}

func (c *Console) removeMember(w http.ResponseWriter, r *http.Request) {
	c.groupChange(w, r, "group.member.remove", func(g *user.Group) (map[string]any, *groupForm, string, error) {
		uid := r.PathValue("userID")
		detail := map[string]any{"user_id": uid}
		if !validID(uid) {
			return detail, nil, "", user.ErrMemberNotFound
		}
		if err := c.Users.RemoveMember(r.Context(), g.ID, uid); err != nil {
			return detail, nil, "", err
		}
		if c.Policies != nil {
			c.refreshed(r, detail, c.Policies.Refresh(r.Context(), uid))
		}
		return detail, nil, "", nil
	}, "member_removed")
}

func (c *Console) addSubgroup(w http.ResponseWriter, r *http.Request) {
	c.groupChange(w, r, "group.subgroup.add", func(g *user.Group) (map[string]any, *groupForm, string, error) {
		child := r.PostFormValue("group_id")
		detail := map[string]any{"subgroup_id": child}
		if !validID(child) {
			return detail, nil, "", fieldError("invalid_subgroup", "choose a group", "group_id", "a group")
		}
		if err := c.Users.AddSubgroup(r.Context(), g.ID, child); err != nil {
			return detail, nil, "", err
		}
		if c.Policies != nil {
			// The child's members (at any depth) now get what g has.
			c.refreshed(r, detail, c.Policies.RefreshGroups(r.Context(), child))
		}
		return detail, nil, "", nil
	}, "subgroup")
}

func (c *Console) removeSubgroup(w http.ResponseWriter, r *http.Request) {
	c.groupChange(w, r, "group.subgroup.remove", func(g *user.Group) (map[string]any, *groupForm, string, error) {
		child := r.PathValue("childID")
		detail := map[string]any{"subgroup_id": child}
		if !validID(child) {
			return detail, nil, "", user.ErrSubgroupNotFound
		}
		if err := c.Users.RemoveSubgroup(r.Context(), g.ID, child); err != nil {
			return detail, nil, "", err
		}
		if c.Policies != nil {
			c.refreshed(r, detail, c.Policies.RefreshGroups(r.Context(), child))
		}
		return detail, nil, "", nil
	}, "subgroup_removed")
}

// ---- Activation profiles ----

// Defaults of a new activation profile (the API's).
const (
	defaultProfileRank       = 100
	defaultProfileMaxDevices = 10
)

var errProfileNotFound = errs.E(errs.NotFound, "profile_not_found", "no such activation profile")

// profileForm is the input of the profile forms, kept when refused.
type profileForm struct {
	Name, Description string
	Rank, MaxDevices  string
	Types             map[activation.Platform]activation.Type
}

// platformChoice is one platform's select of the profile form.
type platformChoice struct {
	Platform activation.Platform
	Options  []typeOption
	Allowed  bool // the platform may be activated
}

type typeOption struct {
	Type     activation.Type
	Label    string
	Selected bool
}

// choices lays out the types allowed per platform, with types selected.
func choices(types map[activation.Platform]activation.Type) []platformChoice {
	var out []platformChoice
	for _, pl := range activation.Platforms {
		pc := platformChoice{Platform: pl}
		cur, set := types[pl]
		for _, ti := range activation.Types {
			if activation.Allows(ti.Type, pl) {
				pc.Options = append(pc.Options, typeOption{Type: ti.Type, Label: ti.Label, Selected: set && cur == ti.Type})
			}
		}
		pc.Allowed = set
		out = append(out, pc)
	}
	return out
}

func typeLabel(t activation.Type) string {
	for _, ti := range activation.Types {
		if ti.Type == t {
			return ti.Label
		}
	}
	return string(t)
}

type profileRow struct {
	*activation.Profile
	Types   []kv // platform → type label
	Default bool
}

// profilesData is the activation profiles page.
type profilesData struct {
	Profiles []profileRow
	CanWrite bool
	Form     profileForm
	Choices  []platformChoice
	Error    *formError
}

func rowOf(p *activation.Profile, defaultID string) profileRow {
	row := profileRow{Profile: p, Default: p.ID == defaultID}
	for _, pl := range activation.Platforms {
		if t, ok := p.Types[pl]; ok {
			row.Types = append(row.Types, kv{string(pl), typeLabel(t)})
		}
	}
	return row
}

func (c *Console) showProfiles(w http.ResponseWriter, r *http.Request, status int, form profileForm, ferr *formError) {
	ps, err := c.Activation.Store.ListProfiles(r.Context())
	if err != nil {
		c.fail(w, r, ConsolePath, err)
		return
	}
	d := &profilesData{CanWrite: c.can(r, auth.ProfilesWrite), Form: form, Choices: choices(form.Types), Error: ferr}
	for _, p := range ps {
		d.Profiles = append(d.Profiles, rowOf(p, c.Activation.DefaultProfileID))
	}
	if ferr != nil {
		w.Header().Set("Cache-Control", "no-store")
	}
	c.render(w, r, status, "profiles", c.objectPage(r, "Activation profiles", "Activation profiles", d))
}

func (c *Console) profiles(w http.ResponseWriter, r *http.Request) {
	if !c.require(w, r, auth.ProfilesRead, "console.profiles", "", "") {
		return
	}
	form := profileForm{Rank: strconv.Itoa(defaultProfileRank), MaxDevices: strconv.Itoa(defaultProfileMaxDevices),
		Types: map[activation.Platform]activation.Type{}}
	c.showProfiles(w, r, http.StatusOK, form, nil)
}

// readProfileForm reads the profile form into p (its fields replaced)
// and returns the input as given; numbers that are not numbers are
// field errors.
func readProfileForm(r *http.Request, p *activation.Profile) (profileForm, error) {
	f := profileForm{Name: r.PostFormValue("name"), Description: r.PostFormValue("description"),
		Rank: strings.TrimSpace(r.PostFormValue("rank")), MaxDevices: strings.TrimSpace(r.PostFormValue("max_devices")),
		Types: map[activation.Platform]activation.Type{}}
	for _, pl := range activation.Platforms {
		if t := r.PostFormValue("type_" + string(pl)); t != "" {
			f.Types[pl] = activation.Type(t)
		}
	}
	bad := map[string]string{}
	rank, err := strconv.Atoi(f.Rank)
	if err != nil {
		bad["rank"] = "a whole number"
	}
	maxDev, err := strconv.Atoi(f.MaxDevices)
	if err != nil {
		bad["max_devices"] = "a whole number"
	}
	if strings.ContainsRune(f.Name, 0) || strings.ContainsRune(f.Description, 0) {
		bad["name"] = "text without NUL characters"
	}
	p.Name, p.Description, p.Rank, p.MaxDevices, p.Types = f.Name, f.Description, rank, maxDev, f.Types
	if len(bad) > 0 {
		e := errs.E(errs.Invalid, "invalid_activation_profile", "the activation profile has invalid fields")
		e.Fields = bad
		return f, e
	}
	return f, nil
}

func (c *Console) createProfile(w http.ResponseWriter, r *http.Request) {
	if !c.require(w, r, auth.ProfilesWrite, "profile.create", "activation_profile", "") {
		return
	}
	if err := parseForm(w, r); err != nil {
		c.fail(w, r, ConsolePath, err)
		return
	}
	p := &activation.Profile{}
	f, err := readProfileForm(r, p)
	if err == nil {
		err = c.Activation.CreateProfile(r.Context(), p)
	}
	if err != nil {
		c.record(r, "profile.create", "activation_profile", "", "failed", map[string]any{"name": f.Name, "error": errCode(err)})
		if fe := formErrorOf(err); fe != nil {
			c.showProfiles(w, r, httpx.Status(errs.KindOf(err)), f, fe)
			return
		}
		c.fail(w, r, ConsolePath, err)
		return
	}
	c.record(r, "profile.create", "activation_profile", p.ID, "ok", map[string]any{"name": p.Name, "types": p.Types})
	done(w, r, ConsolePath+"/profiles/"+p.ID, "profile", false)
}

// profileData is the activation profile page.
type profileData struct {
	Profile  profileRow
	Groups   []*user.Group // groups the profile is assigned to
	CanWrite bool
	Form     profileForm
	Choices  []platformChoice
	Error    *formError
}

func (c *Console) profile(r *http.Request) (*activation.Profile, error) {
	id := r.PathValue("id")
	if !validID(id) {
		return nil, errProfileNotFound
	}
	p, err := c.Activation.Store.Profile(r.Context(), id)
	if errors.Is(err, errs.ErrNotFound) {
		return nil, errs.Wrap(errProfileNotFound.Kind, errProfileNotFound.Code, errProfileNotFound.Message, err)
	}
	return p, err
}

func (c *Console) showProfile(w http.ResponseWriter, r *http.Request, status int, p *activation.Profile, form *profileForm, ferr *formError) {
	d := &profileData{Profile: rowOf(p, c.Activation.DefaultProfileID), CanWrite: c.can(r, auth.ProfilesWrite), Error: ferr}
	if form != nil {
		d.Form = *form
	} else {
		d.Form = profileForm{Name: p.Name, Description: p.Description, Rank: strconv.Itoa(p.Rank), MaxDevices: strconv.Itoa(p.MaxDevices), Types: p.Types}
	}
	d.Choices = choices(d.Form.Types)
	if c.can(r, auth.GroupsRead) {
		gs, err := c.Users.Groups(r.Context(), user.Page{Limit: user.MaxPage})
		if err != nil {
			c.fail(w, r, ConsolePath, err)
			return
		}
		for _, g := range gs {
			if g.ActivationProfileID == p.ID {
				d.Groups = append(d.Groups, g)
			}
		}
	}
	if ferr != nil {
		w.Header().Set("Cache-Control", "no-store")
	}
	c.render(w, r, status, "profile", c.objectPage(r, p.Name, "Activation profiles", d))
}

func (c *Console) profilePage(w http.ResponseWriter, r *http.Request) {
	if !c.require(w, r, auth.ProfilesRead, "console.profile", "activation_profile", r.PathValue("id")) {
		return
	}
	p, err := c.profile(r)
	if err != nil {
		c.fail(w, r, ConsolePath, err)
		return
	}
	c.showProfile(w, r, http.StatusOK, p, nil, nil)
}

func (c *Console) updateProfile(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !c.require(w, r, auth.ProfilesWrite, "profile.update", "activation_profile", id) {
		return
	}
	if err := parseForm(w, r); err != nil {
		c.fail(w, r, ConsolePath, err)
		return
	}
	p, err := c.profile(r)
	if err != nil {
		c.record(r, "profile.update", "activation_profile", id, "failed", map[string]any{"error": errCode(err)})
		c.fail(w, r, ConsolePath, err)
		return
	}
	old := *p
	f, err := readProfileForm(r, p)
	if err == nil {
		err = c.Activation.UpdateProfile(r.Context(), p)
		if errors.Is(err, errs.ErrNotFound) {
			err = errs.Wrap(errProfileNotFound.Kind, errProfileNotFound.Code, errProfileNotFound.Message, err)
		}
	}
	detail := map[string]any{"fields": []string{"description", "max_devices", "name", "rank", "types"}}
	if err != nil {
		detail["error"] = errCode(err)
		c.record(r, "profile.update", "activation_profile", old.ID, "failed", detail)
		if fe := formErrorOf(err); fe != nil && errs.KindOf(err) != errs.NotFound {
			c.showProfile(w, r, httpx.Status(errs.KindOf(err)), &old, &f, fe)
			return
		}
		c.fail(w, r, ConsolePath, err)
		return
	}
	c.record(r, "profile.update", "activation_profile", p.ID, "ok", detail)
	done(w, r, ConsolePath+"/profiles/"+p.ID, "profile_saved", false)
}

func (c *Console) deleteProfile(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !c.require(w, r, auth.ProfilesWrite, "profile.delete", "activation_profile", id) {
		return
	}
	p, err := c.profile(r)
	if err == nil {
		err = c.Activation.DeleteProfile(r.Context(), p.ID)
		if errors.Is(err, errs.ErrNotFound) {
			err = errs.Wrap(errProfileNotFound.Kind, errProfileNotFound.Code, errProfileNotFound.Message, err)
		}
	}
	if err != nil {
		c.record(r, "profile.delete", "activation_profile", id, "failed", map[string]any{"error": errCode(err)})
		c.fail(w, r, ConsolePath, err)
		return
	}
	c.record(r, "profile.delete", "activation_profile", p.ID, "ok", map[string]any{"name": p.Name})
	done(w, r, ConsolePath+"/profiles", "profile_deleted", false)
}

// ---- Policies and profiles ----

// Default rank of a policy created without one (the API's).
const defaultPolicyRank = 100

// kindLabels names the kinds for people.
var kindLabels = map[policy.Kind]string{
	policy.ITPolicy:        "IT policy",
	policy.WiFi:            "Wi-Fi profile",
	policy.VPN:             "VPN profile",
	policy.Email:           "Email profile",
	policy.Connectivity:    "Enterprise connectivity profile",
	policy.Certificate:     "Certificate profile",
	policy.AppConfig:       "App configuration",
	policy.SoftwareRelease: "Software release requirement",
	policy.Compliance:      "Compliance profile",
}

type kindOption struct {
	Kind     policy.Kind
	Label    string
	Selected bool
}

func kindOptions(selected policy.Kind) []kindOption {
	var out []kindOption
	for _, k := range policy.Kinds() {
		out = append(out, kindOption{Kind: k, Label: kindLabels[k], Selected: k == selected})
	}
	return out
}

type platformCheck struct {
	Platform activation.Platform
	Checked  bool
}

func platformChecks(set []string) []platformCheck {
	var out []platformCheck
	for _, pl := range activation.Platforms {
		out = append(out, platformCheck{Platform: pl, Checked: slices.Contains(set, string(pl))})
	}
	return out
}

// policyForm is the input of the policy forms, kept when refused.
type policyForm struct {
	Kind        policy.Kind
	Name        string
	Description string
	Rank        string
	Platforms   []string
	Settings    string
}

type policyRow struct {
	*policy.Policy
	KindLabel string
}

// policiesData is the policies page.
type policiesData struct {
	Policies  []policyRow
	Kind      policy.Kind // the filter
	Kinds     []kindOption
	FormKinds []kindOption
	Platforms []platformCheck
	CanWrite  bool
	Form      policyForm
	Error     *formError
	Next      string
}

func (c *Console) showPolicies(w http.ResponseWriter, r *http.Request, status int, form policyForm, ferr *formError) {
	kind := policy.Kind(r.URL.Query().Get("kind"))
	if kind != "" && !kind.Valid() {
		c.fail(w, r, ConsolePath, fieldError("invalid_query", "kind must be a policy kind", "kind", "a policy kind"))
		return
	}
	ps, err := c.Policies.List(r.Context(), policy.ListQuery{Kind: kind, After: r.URL.Query().Get("after"), Limit: policy.MaxPage})
	if err != nil {
		c.fail(w, r, ConsolePath, err)
		return
	}
	d := &policiesData{Kind: kind, Kinds: kindOptions(kind), FormKinds: kindOptions(form.Kind), Platforms: platformChecks(form.Platforms),
		CanWrite: c.can(r, auth.PoliciesWrite), Form: form, Error: ferr}
	for _, p := range ps {
		d.Policies = append(d.Policies, policyRow{Policy: policy.Redacted(p), KindLabel: kindLabels[p.Kind]})
	}
	if len(ps) == policy.MaxPage {
		d.Next = ps[len(ps)-1].ID
	}
	// A form that was refused may hold a secret the administrator typed:
	// keep it out of caches.
	w.Header().Set("Cache-Control", "no-store")
	c.render(w, r, status, "policies", c.objectPage(r, "Policies and profiles", "Policies", d))
}

func (c *Console) policies(w http.ResponseWriter, r *http.Request) {
	if !c.require(w, r, auth.PoliciesRead, "console.policies", "", "") {
		return
	}
	kind := policy.Kind(r.URL.Query().Get("kind"))
	if !kind.Valid() {
		kind = policy.ITPolicy
	}
	c.showPolicies(w, r, http.StatusOK, policyForm{Kind: kind, Rank: strconv.Itoa(defaultPolicyRank), Settings: "{}"}, nil)
}

// readPolicyForm reads the policy form; a rank that is not a number is
// a field error (with the service's own, when it has any).
func readPolicyForm(r *http.Request) (policyForm, int, map[string]string) {
	f := policyForm{Kind: policy.Kind(r.PostFormValue("kind")), Name: r.PostFormValue("name"), Description: r.PostFormValue("description"),
		Rank: strings.TrimSpace(r.PostFormValue("rank")), Platforms: r.PostForm["platforms"], Settings: r.PostFormValue("settings")}
	if f.Platforms == nil {
		f.Platforms = []string{}
	}
	bad := map[string]string{}
	rank, err := strconv.Atoi(f.Rank)
	if err != nil {
		bad["rank"] = "a whole number"
	}
	return f, rank, bad
}

// settingsOf is the settings textarea as JSON ("" is an empty object).
func settingsOf(s string) json.RawMessage {
	if strings.TrimSpace(s) == "" {
		return json.RawMessage(`{}`)
	}
	return json.RawMessage(s)
}

// withFields adds fields to an Invalid error of the service (or makes
// one).
func withFields(err error, bad map[string]string) error {
	if len(bad) == 0 {
		return err
	}
	var e *errs.Error
	if err == nil || !errors.As(err, &e) || e.Kind != errs.Invalid {
		if err != nil && errs.KindOf(err) != errs.Invalid {
			return err
		}
		e = errs.E(errs.Invalid, policy.CodeInvalid, "the policy has invalid fields")
	}
	merged := map[string]string{}
	for k, v := range e.Fields {
		merged[k] = v
	}
	for k, v := range bad {
		merged[k] = v
	}
	out := *e
	out.Fields = merged
	return &out
}

func (c *Console) createPolicy(w http.ResponseWriter, r *http.Request) {
	if !c.require(w, r, auth.PoliciesWrite, "policy.create", "policy", "") {
		return
	}
	if err := parseForm(w, r); err != nil {
		c.fail(w, r, ConsolePath, err)
		return
	}
	f, rank, bad := readPolicyForm(r)
	in := policy.NewPolicy{Name: f.Name, Description: f.Description, Kind: f.Kind, Rank: rank, Platforms: f.Platforms, Settings: settingsOf(f.Settings)}
	if len(bad) > 0 {
		in.Rank = defaultPolicyRank // validate the rest all the same
	}
	// Validate first so that a bad rank and bad settings are reported
	// together; Create validates again.
	err := withFields(policy.Validate(&policy.Policy{Name: in.Name, Description: in.Description, Kind: in.Kind, Rank: in.Rank, Platforms: in.Platforms, Settings: in.Settings}), bad)
	var p *policy.Policy
	if err == nil {
		p, err = c.Policies.Create(r.Context(), in)
	}
	if err != nil {
		c.record(r, "policy.create", "policy", "", "failed", map[string]any{"name": f.Name, "kind": f.Kind, "error": errCode(err)})
		if fe := formErrorOf(err); fe != nil {
			c.showPolicies(w, r, httpx.Status(errs.KindOf(err)), f, fe)
			return
		}
		c.fail(w, r, ConsolePath, err)
		return
	}
	c.record(r, "policy.create", "policy", p.ID, "ok", map[string]any{"name": p.Name, "kind": p.Kind})
	done(w, r, ConsolePath+"/policies/"+p.ID, "policy", false)
}

// assignmentRow is one assignment, its target named.
type assignmentRow struct {
	policy.Assignment
	Name string // email or group name; "" when not shown
	Link string // the target's page; "" when none
}

// policyData is the policy page.
type policyData struct {
	Policy      *policy.Policy // redacted
	KindLabel   string
	Single      bool
	SettingsPre string // pretty, redacted
	Assignments []assignmentRow
	Groups      []*user.Group // for the assign form
	Platforms   []platformCheck
	CanWrite    bool
	Form        policyForm
	Error       *formError
	ErrorAt     string // "edit" or "assign": the form Error belongs to
	// AssignEmail is the email of a refused assignment, kept.
	AssignEmail string
}

func (c *Console) policyOf(r *http.Request) (*policy.Policy, error) {
	id := r.PathValue("id")
	if !validID(id) {
		return nil, policy.ErrPolicyNotFound
	}
	return c.Policies.Get(r.Context(), id)
}

// pretty indents JSON for reading; what is not JSON is shown as it is.
func pretty(raw json.RawMessage) string {
	var b bytes.Buffer
	if json.Indent(&b, raw, "", "  ") != nil {
		return string(raw)
	}
	return b.String()
}

func (c *Console) showPolicy(w http.ResponseWriter, r *http.Request, status int, stored *policy.Policy, form *policyForm, ferr *formError, email string) {
	ctx := r.Context()
	p := policy.Redacted(stored)
	d := &policyData{Policy: p, KindLabel: kindLabels[p.Kind], Single: p.Kind.Single(), SettingsPre: pretty(p.Settings),
		CanWrite: c.can(r, auth.PoliciesWrite), Error: ferr, ErrorAt: "assign", AssignEmail: email}
	if form != nil {
		d.Form, d.ErrorAt = *form, "edit"
	} else {
		d.Form = policyForm{Kind: p.Kind, Name: p.Name, Description: p.Description, Rank: strconv.Itoa(p.Rank), Platforms: p.Platforms, Settings: d.SettingsPre}
	}
	d.Platforms = platformChecks(d.Form.Platforms)
	as, err := c.Policies.Assignments(ctx, p.ID)
	if err != nil {
		c.fail(w, r, ConsolePath, err)
		return
	}
	for _, a := range as {
		row := assignmentRow{Assignment: a}
		switch a.TargetKind {
		case policy.TargetUser:
			if u, err := c.Users.Get(ctx, a.TargetID); err == nil {
				if ok, err := c.inScope(r, u.ID); err == nil && ok {
					row.Name = u.Email
					if c.can(r, auth.UsersRead) {
						row.Link = ConsolePath + "/users/" + u.ID
					}
				}
			}
		case policy.TargetGroup:
			if g, err := c.Users.Group(ctx, a.TargetID); err == nil {
				row.Name = g.Name
				if c.can(r, auth.GroupsRead) {
					row.Link = ConsolePath + "/groups/" + g.ID
				}
			}
		}
		d.Assignments = append(d.Assignments, row)
	}
	if d.CanWrite {
		if d.Groups, err = c.Users.Groups(ctx, user.Page{Limit: user.MaxPage}); err != nil {
			c.fail(w, r, ConsolePath, err)
			return
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	c.render(w, r, status, "policy", c.objectPage(r, p.Name, "Policies", d))
}

func (c *Console) policyPage(w http.ResponseWriter, r *http.Request) {
	if !c.require(w, r, auth.PoliciesRead, "console.policy", "policy", r.PathValue("id")) {
		return
	}
	p, err := c.policyOf(r)
	if err != nil {
		c.fail(w, r, ConsolePath, err)
		return
	}
	c.showPolicy(w, r, http.StatusOK, p, nil, nil, "")
}

func (c *Console) updatePolicy(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !c.require(w, r, auth.PoliciesWrite, "policy.update", "policy", id) {
		return
	}
	if err := parseForm(w, r); err != nil {
		c.fail(w, r, ConsolePath, err)
		return
	}
	old, err := c.policyOf(r)
	if err != nil {
		c.record(r, "policy.update", "policy", id, "failed", map[string]any{"error": errCode(err)})
		c.fail(w, r, ConsolePath, err)
		return
	}
	f, rank, bad := readPolicyForm(r)
	f.Kind = old.Kind // the kind of a policy does not change
	if len(bad) > 0 {
		rank = old.Rank
	}
	platforms := f.Platforms
	// Never the values in the audit trail: settings hold secrets.
	detail := map[string]any{"fields": []string{"description", "name", "platforms", "rank", "settings"}}
	patch := policy.Patch{Name: &f.Name, Description: &f.Description, Rank: &rank, Platforms: &platforms, Settings: settingsOf(f.Settings)}
	var p *policy.Policy
	if len(bad) > 0 {
		err = withFields(nil, bad)
	} else {
		p, err = c.Policies.Update(r.Context(), old.ID, patch)
	}
	late := false
	if err != nil && p != nil && errors.Is(err, policy.ErrNotNotified) {
		late, err = true, nil
		c.refreshed(r, detail, policy.ErrNotNotified)
	}
	if err != nil {
		detail["error"] = errCode(err)
		c.record(r, "policy.update", "policy", old.ID, "failed", detail)
		if fe := formErrorOf(err); fe != nil && errs.KindOf(err) != errs.NotFound {
			c.showPolicy(w, r, httpx.Status(errs.KindOf(err)), old, &f, fe, "")
			return
		}
		c.fail(w, r, ConsolePath, err)
		return
	}
	detail["revision"] = p.Revision
	c.record(r, "policy.update", "policy", p.ID, "ok", detail)
	done(w, r, ConsolePath+"/policies/"+p.ID, "policy_saved", late)
}

func (c *Console) deletePolicy(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !c.require(w, r, auth.PoliciesWrite, "policy.delete", "policy", id) {
		return
	}
	p, err := c.policyOf(r)
	detail := map[string]any{}
	late := false
	if err == nil {
		detail["name"] = p.Name
		err = c.Policies.Delete(r.Context(), p.ID)
		if errors.Is(err, policy.ErrNotNotified) {
			late, err = true, nil
			c.refreshed(r, detail, policy.ErrNotNotified)
		}
	}
	if err != nil {
		detail["error"] = errCode(err)
		c.record(r, "policy.delete", "policy", id, "failed", detail)
		c.fail(w, r, ConsolePath, err)
		return
	}
	c.record(r, "policy.delete", "policy", p.ID, "ok", detail)
	done(w, r, ConsolePath+"/policies", "policy_deleted", late)
}

func (c *Console) assignPolicy(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !c.require(w, r, auth.PoliciesWrite, "policy.assign", "policy", id) {
		return
	}
	if err := parseForm(w, r); err != nil {
		c.fail(w, r, ConsolePath, err)
		return
	}
	p, err := c.policyOf(r)
	if err != nil {
		c.record(r, "policy.assign", "policy", id, "failed", map[string]any{"error": errCode(err)})
		c.fail(w, r, ConsolePath, err)
		return
	}
	kind := r.PostFormValue("target_kind")
	email := strings.TrimSpace(r.PostFormValue("email"))
	detail := map[string]any{"target_kind": kind}
	var target string
	switch kind {
	case policy.TargetUser:
		var u *user.User
		if u, err = c.userByEmail(r, email); err == nil {
			target = u.ID
		}
	case policy.TargetGroup:
		target = r.PostFormValue("group_id")
		if !validID(target) {
			err = fieldError("invalid_assignment", "choose a group", "group_id", "a group")
		}
	default:
		err = fieldError("invalid_assignment", "an assignment names a user or a group", "target_kind", "user or group")
	}
	detail["target_id"] = target
	late := false
	if err == nil {
		err = c.Policies.Assign(r.Context(), p.ID, kind, target)
		if errors.Is(err, policy.ErrNotNotified) {
			late, err = true, nil
			c.refreshed(r, detail, policy.ErrNotNotified)
		}
	}
	if err != nil {
		detail["error"] = errCode(err)
		c.record(r, "policy.assign", "policy", p.ID, "failed", detail)
		if fe := formErrorOf(err); fe != nil {
			c.showPolicy(w, r, httpx.Status(errs.KindOf(err)), p, nil, fe, email)
			return
		}
		c.fail(w, r, ConsolePath, err)
		return
	}
	c.record(r, "policy.assign", "policy", p.ID, "ok", detail)
	done(w, r, ConsolePath+"/policies/"+p.ID, "assigned", late)
}

func (c *Console) unassignPolicy(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !c.require(w, r, auth.PoliciesWrite, "policy.unassign", "policy", id) {
		return
	}
	kind, target := r.PathValue("targetKind"), r.PathValue("targetID")
	detail := map[string]any{"target_kind": kind, "target_id": target}
	p, err := c.policyOf(r)
	late := false
	if err == nil {
		if (kind != policy.TargetUser && kind != policy.TargetGroup) || !validID(target) {
			err = policy.ErrAssignmentNotFound
		} else {
			err = c.Policies.Unassign(r.Context(), p.ID, kind, target)
			if errors.Is(err, policy.ErrNotNotified) {
				late, err = true, nil
				c.refreshed(r, detail, policy.ErrNotNotified)
			}
		}
	}
	if err != nil {
		detail["error"] = errCode(err)
		c.record(r, "policy.unassign", "policy", id, "failed", detail)
		c.fail(w, r, ConsolePath, err)
		return
	}
	c.record(r, "policy.unassign", "policy", p.ID, "ok", detail)
	done(w, r, ConsolePath+"/policies/"+p.ID, "unassigned", late)
}
