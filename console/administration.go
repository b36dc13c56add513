package console

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/custos-uem/custos/audit"
	"github.com/custos-uem/custos/auth"
	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/directory"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/httpx"
	"github.com/custos-uem/custos/id"
	"github.com/custos-uem/custos/license"
	"github.com/custos-uem/custos/user"
	"github.com/custos-uem/custos/websession"
)

// Limits of the bulk actions, each checked before the work it bounds.
const (
	// MaxImportRows bounds the users of one CSV import (the header not
	// counted); a longer file is refused before any user is created.
	MaxImportRows = 10_000
	// MaxImportBytes bounds the CSV file of an import (the CSRF check
	// reads form bodies up to websession.MaxFormBytes, which leaves room
	// for it).
	MaxImportBytes = 2 << 20
	// maxImportBody is the multipart body around a file of
	// MaxImportBytes (part headers, boundaries, the token field).
	maxImportBody = MaxImportBytes + 16<<10
	// MaxJobs is how many bulk jobs the console remembers; starting one
	// more forgets the oldest (its work goes on, only its progress page
	// goes). The jobs live in this process's memory: a restart forgets
	// their progress, not what they did.
	MaxJobs = 100
	// MaxJobFailures bounds the failures a job keeps to show; the rest
	// are counted.
	MaxJobFailures = 100
	// maxConsecutiveServerErrors stops an import whose every row fails
	// on the server's side (the database is gone): no point in failing
	// the remaining thousands one by one.
	maxConsecutiveServerErrors = 20
	// JobRefreshSeconds is how often a running job's page reloads itself
	// (a meta refresh: the pages have no script).
	JobRefreshSeconds = 1
)

// Administration errors.
var (
	errAdminScoped            = errs.E(errs.Forbidden, "admin_scoped", "only an administrator without a scope may do this")
	errDirectoryNotConfigured = errs.E(errs.Conflict, "directory_not_configured", "no company directory is configured")
	errJobNotFound            = errs.E(errs.NotFound, "job_not_found", "no such job: it was never started by you, or this server restarted since, or it is among the oldest and was forgotten")
	errBulkGroupNotFound      = errs.E(errs.NotFound, "group_not_found", "no such group")
	errImportTooManyRows      = errs.E(errs.TooLarge, "csv_too_many_rows", fmt.Sprintf("the file has more than %d rows; split it", MaxImportRows))
	errImportTooLarge         = errs.E(errs.TooLarge, "csv_too_large", fmt.Sprintf("the file is larger than %d MiB; split it", MaxImportBytes>>20))
	errImportNoFile           = errs.E(errs.Invalid, "csv_missing", "choose a CSV file to import")
	errImportNoRows           = errs.E(errs.Invalid, "csv_empty", "the file has a header but no rows")
	errBulkUnknownCommand     = errs.E(errs.Invalid, "invalid_command", "choose one of the commands offered")
)

// admOKMessages are the confirmations of this file's redirects (?ok=key;
// by key, so nothing from the URL is echoed).
var admOKMessages = map[string]string{
	"admin":        "Administrator created. Their console password is the one you typed; it is not shown again.",
	"role":         "Role created.",
	"role_deleted": "Role deleted.",
}

// administration serves the pages of administrators, roles, settings
// and bulk actions; jobs are its bulk jobs in progress.
type administration struct {
	*Console
	jobs *jobTable
}

// registerAdministration registers the pages of administrators and
// roles, settings, and the bulk actions.
func (c *Console) registerAdministration(mux *http.ServeMux) {
	a := &administration{Console: c, jobs: &jobTable{byID: map[string]*job{}}}
	mux.HandleFunc("GET "+ConsolePath+"/administrators", a.administrators)
	mux.HandleFunc("POST "+ConsolePath+"/administrators", a.createAdmin)
	mux.HandleFunc("GET "+ConsolePath+"/administrators/{id}", a.administrator)
	mux.HandleFunc("GET "+ConsolePath+"/roles", a.roles)
	mux.HandleFunc("POST "+ConsolePath+"/roles", a.createRole)
	mux.HandleFunc("POST "+ConsolePath+"/roles/{id}/delete", a.deleteRole)
	mux.HandleFunc("GET "+ConsolePath+"/settings", a.settings)
	mux.HandleFunc("POST "+ConsolePath+"/settings/directory/sync", a.syncDirectory)
	a.registerApple(mux) // console/apple.go
	mux.HandleFunc("GET "+ConsolePath+"/bulk", a.bulk)
	mux.HandleFunc("POST "+ConsolePath+"/bulk/users", a.importUsers)
	mux.HandleFunc("POST "+ConsolePath+"/bulk/command", a.groupCommand)
	mux.HandleFunc("GET "+ConsolePath+"/jobs/{id}", a.jobPage)
}

// admOKFlash sets the page's confirmation from ?ok=.
func admOKFlash(r *http.Request, p page) page {
	if m := admOKMessages[r.URL.Query().Get("ok")]; m != "" {
		p.Flash = m
	}
	return p
}

// failFlash shows err on the page itself (status and message), so that
// the administrator keeps the form and its context.
func (a *administration) failFlash(r *http.Request, p page, err error) (int, page) {
	code, msg, fields := errs.Public(err)
	status := httpx.Status(errs.KindOf(err))
	if status >= 500 {
		a.Logger.Error("console: request failed", "path", r.URL.Path, "code", code, "err", err)
	}
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		msg += "; " + k + ": " + fields[k]
	}
	p.Flash, p.FlashKind = msg, "error"
	return status, p
}

// permissions returns what the signed-in administrator's role allows.
func (a *administration) permissions(r *http.Request) (auth.PermissionSet, error) {
	return a.Auth.PermissionsOf(r.Context(), adminOf(r))
}

// denied records a refusal that is not a missing permission of one's own
// (a grant beyond it, a scoped administrator) and shows it.
func (a *administration) denied(w http.ResponseWriter, r *http.Request, action, objectType, objectID string, err error, detail map[string]any) {
	if p, ok := auth.DeniedPermission(err); ok {
		if detail == nil {
			detail = map[string]any{}
		}
		detail["permission"] = string(p)
	}
	a.record(r, action+".denied", objectType, objectID, "denied", detail)
	a.fail(w, r, ConsolePath, err)
}

// groupNames maps group IDs to names (first page of groups: scope groups
// and group pickers are a handful).
func (a *administration) groupList(ctx context.Context) ([]*user.Group, map[string]string) {
	gs, err := a.Users.Groups(ctx, user.Page{Limit: user.MaxPage})
	if err != nil {
		a.Logger.Warn("console: list groups", "err", err)
	}
	names := make(map[string]string, len(gs))
	for _, g := range gs {
		names[g.ID] = g.Name
	}
	return gs, names
}

// ---- Administrators ----

type adminRow struct {
	Admin    *auth.Admin
	RoleName string
	Scope    []string // group names (or IDs of groups deleted since)
}

type administratorsData struct {
	Admins    []adminRow
	CanCreate bool
	// WhyNot says why the create form is not offered, when it is not.
	WhyNot    string
	Roles     []*auth.Role // roles the creator may grant
	Groups    []*user.Group
	CanRoles  bool
	MinPasswd int
	Form      adminForm
}

type adminForm struct {
	Username, DisplayName, Role string
	Scope                       []string
}

func (a *administration) administratorsData(r *http.Request, form adminForm) (*administratorsData, error) {
	ctx := r.Context()
	admins, err := a.Auth.ListAdmins(ctx)
	if err != nil {
		return nil, err
	}
	roles, err := a.Auth.ListRoles(ctx)
	if err != nil {
		return nil, err
	}
	roleNames := map[string]string{}
	for _, ro := range roles {
		roleNames[ro.ID] = ro.Name
	}
	groups, groupNames := a.groupList(ctx)
	d := &administratorsData{Groups: groups, CanRoles: a.can(r, auth.RolesRead), MinPasswd: websession.MinPasswordLen, Form: form}
	if d.Form.Role == "" {
		d.Form.Role = auth.RoleHelpDesk
	}
	for _, ad := range admins {
		row := adminRow{Admin: ad, RoleName: roleNames[ad.Role]}
		if row.RoleName == "" {
			row.RoleName = ad.Role + " (unknown: allows nothing)"
		}
		for _, g := range ad.ScopeGroups {
			if n := groupNames[g]; n != "" {
				row.Scope = append(row.Scope, n)
			} else {
				row.Scope = append(row.Scope, g)
			}
		}
		d.Admins = append(d.Admins, row)
	}
	switch {
	case !a.can(r, auth.AdminsWrite):
		d.WhyNot = ""
	case adminOf(r).Scoped():
		d.WhyNot = "Only an administrator without a scope creates administrators."
	default:
		have, err := a.permissions(r)
		if err != nil {
			return nil, err
		}
		for _, ro := range roles {
			if auth.CheckGrant(have, ro.Set()) == nil {
				d.Roles = append(d.Roles, ro)
			}
		}
		d.CanCreate = true
	}
	return d, nil
}

func (a *administration) administrators(w http.ResponseWriter, r *http.Request) {
	if !a.require(w, r, auth.AdminsRead, "console.administrators", "", "") {
		return
	}
	d, err := a.administratorsData(r, adminForm{})
	if err != nil {
		a.fail(w, r, ConsolePath, err)
		return
	}
	a.render(w, r, http.StatusOK, "administrators", admOKFlash(r, a.adminPage(r, "Administrators", "Administrators", d)))
}

// createAdmin creates an administrator with a console password. The same
// rules as POST /api/v1/admins: only an unscoped administrator, with a
// role no stronger than their own, scope groups that exist.
func (a *administration) createAdmin(w http.ResponseWriter, r *http.Request) {
	const action = "admin.create"
	if !a.require(w, r, auth.AdminsWrite, action, "admin", "") {
		return
	}
	if adminOf(r).Scoped() {
		a.denied(w, r, action, "admin", "", errAdminScoped, nil)
		return
	}
	if err := parseForm(w, r); err != nil {
		a.fail(w, r, ConsolePath, err)
		return
	}
	form := adminForm{Username: strings.TrimSpace(r.PostFormValue("username")), DisplayName: r.PostFormValue("display_name"),
		Role: r.PostFormValue("role"), Scope: r.PostForm["scope_groups"]}
	detail := map[string]any{"username": form.Username, "role": form.Role, "scope_groups": form.Scope}
	again := func(err error) {
		a.record(r, action, "admin", "", "failed", detail)
		d, derr := a.administratorsData(r, form)
		if derr != nil {
			a.fail(w, r, ConsolePath, err)
			return
		}
		status, p := a.failFlash(r, a.adminPage(r, "Administrators", "Administrators", d), err)
		a.render(w, r, status, "administrators", p)
	}
	role, err := a.Auth.Role(r.Context(), form.Role)
	if errs.Is(err, errs.NotFound) {
		again(admInvalid("invalid_admin", "the administrator is invalid", "role", "no such role"))
		return
	}
	if err != nil {
		a.fail(w, r, ConsolePath, err)
		return
	}
	have, err := a.permissions(r)
	if err != nil {
		a.fail(w, r, ConsolePath, err)
		return
	}
	// No administrator makes one stronger than themselves.
	if err := auth.CheckGrant(have, role.Set()); err != nil {
		a.denied(w, r, action, "admin", "", err, detail)
		return
	}
	if len(form.Scope) > auth.MaxScopeGroups {
		again(admInvalid("invalid_admin", "the administrator is invalid", "scope_groups", fmt.Sprintf("at most %d groups", auth.MaxScopeGroups)))
		return
	}
	for _, g := range form.Scope {
		if _, err := a.Users.Group(r.Context(), g); err != nil {
			if errs.Is(err, errs.NotFound) {
				again(admInvalid("invalid_admin", "the administrator is invalid", "scope_groups", "a group chosen no longer exists"))
				return
			}
			a.fail(w, r, ConsolePath, err)
			return
		}
	}
	// The password is checked before the administrator exists: there is
	// no deleting one made without a usable password.
	password := r.PostFormValue("password")
	if err := websession.ValidatePassword(password); err != nil {
		again(err)
		return
	}
	ad, err := a.Auth.CreateAdmin(r.Context(), auth.NewAdmin{Username: form.Username, DisplayName: form.DisplayName, Role: role.ID, ScopeGroups: form.Scope})
	if err != nil {
		again(err)
		return
	}
	if err := a.Sessions.SetPassword(r.Context(), websession.RealmAdmin, ad.ID, password); err != nil {
		a.record(r, action, "admin", ad.ID, "failed", map[string]any{"username": ad.Username, "role": ad.Role, "step": "console_password"})
		a.fail(w, r, ConsolePath, fmt.Errorf("console: the administrator %s was created, but not their console password: %w", ad.ID, err))
		return
	}
	a.record(r, action, "admin", ad.ID, "ok", map[string]any{"username": ad.Username, "role": ad.Role, "scope_groups": ad.ScopeGroups, "console_password": true})
	http.Redirect(w, r, ConsolePath+"/administrators/"+url.PathEscape(ad.ID)+"?ok=admin", http.StatusSeeOther)
}

func admInvalid(code, msg, field, why string) error {
	e := errs.E(errs.Invalid, code, msg)
	e.Fields = map[string]string{field: why}
	return e
}

type administratorData struct {
	Admin *auth.Admin
	Role  *auth.Role
	Scope []string
	// Tokens are the administrator's API tokens (never their values),
	// shown to those who may read tokens.
	Tokens     []*auth.Token
	ShowTokens bool
}

func (a *administration) administrator(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !a.require(w, r, auth.AdminsRead, "console.administrator", "admin", id) {
		return
	}
	ad, err := a.Auth.Admin(r.Context(), id)
	if err != nil {
		a.fail(w, r, ConsolePath, err)
		return
	}
	d := &administratorData{Admin: ad}
	if d.Role, err = a.Auth.Role(r.Context(), ad.Role); err != nil && !errs.Is(err, errs.NotFound) {
		a.fail(w, r, ConsolePath, err)
		return
	}
	_, names := a.groupList(r.Context())
	for _, g := range ad.ScopeGroups {
		if n := names[g]; n != "" {
			d.Scope = append(d.Scope, n)
		} else {
			d.Scope = append(d.Scope, g)
		}
	}
	if d.ShowTokens = a.can(r, auth.TokensRead) && !adminOf(r).Scoped(); d.ShowTokens {
		all, err := a.Auth.ListTokens(r.Context())
		if err != nil {
			a.fail(w, r, ConsolePath, err)
			return
		}
		for _, t := range all {
			if t.AdminID == ad.ID {
				d.Tokens = append(d.Tokens, t)
			}
		}
	}
	a.render(w, r, http.StatusOK, "administrator", admOKFlash(r, a.adminPage(r, ad.Username, "Administrators", d)))
}

// ---- Roles ----

type permissionRow struct {
	Name        auth.Permission
	Description string
	Have        bool // the signed-in administrator holds it (may grant it)
	Checked     bool
}

type rolesData struct {
	Roles []*auth.Role
	// Bindings are the directory groups bound to each role, by role ID.
	Bindings    map[string][]*auth.RoleBinding
	CanWrite    bool
	Permissions []permissionRow
	Name, Desc  string
}

func (a *administration) rolesData(r *http.Request, name, desc string, checked []string) (*rolesData, error) {
	roles, err := a.Auth.ListRoles(r.Context())
	if err != nil {
		return nil, err
	}
	d := &rolesData{Roles: roles, CanWrite: a.can(r, auth.RolesWrite), Name: name, Desc: desc, Bindings: map[string][]*auth.RoleBinding{}}
	for _, role := range roles {
		bs, err := a.Auth.RoleBindings(r.Context(), role.ID)
		if err != nil {
			return nil, err
		}
		d.Bindings[role.ID] = bs
	}
	if d.CanWrite {
		have, err := a.permissions(r)
		if err != nil {
			return nil, err
		}
		for _, p := range auth.Permissions() {
			d.Permissions = append(d.Permissions, permissionRow{Name: p, Description: p.Description(), Have: have.Has(p),
				Checked: slices.Contains(checked, string(p))})
		}
	}
	return d, nil
}

func (a *administration) roles(w http.ResponseWriter, r *http.Request) {
	if !a.require(w, r, auth.RolesRead, "console.roles", "", "") {
		return
	}
	d, err := a.rolesData(r, "", "", nil)
	if err != nil {
		a.fail(w, r, ConsolePath, err)
		return
	}
	a.render(w, r, http.StatusOK, "roles", admOKFlash(r, a.adminPage(r, "Roles", "Administrators", d)))
}

// rolesAgain shows the roles page with err, keeping what was typed.
func (a *administration) rolesAgain(w http.ResponseWriter, r *http.Request, err error, name, desc string, checked []string) {
	d, derr := a.rolesData(r, name, desc, checked)
	if derr != nil {
		a.fail(w, r, ConsolePath, err)
		return
	}
	status, p := a.failFlash(r, a.adminPage(r, "Roles", "Administrators", d), err)
	a.render(w, r, status, "roles", p)
}

func (a *administration) createRole(w http.ResponseWriter, r *http.Request) {
	const action = "role.create"
	if !a.require(w, r, auth.RolesWrite, action, "role", "") {
		return
	}
	if err := parseForm(w, r); err != nil {
		a.fail(w, r, ConsolePath, err)
		return
	}
	name, desc, perms := r.PostFormValue("name"), r.PostFormValue("description"), r.PostForm["permissions"]
	detail := map[string]any{"name": name, "permissions": perms}
	set, err := auth.ParsePermissions(perms)
	if err != nil {
		a.record(r, action, "role", "", "failed", detail)
		a.rolesAgain(w, r, err, name, desc, perms)
		return
	}
	have, err := a.permissions(r)
	if err != nil {
		a.fail(w, r, ConsolePath, err)
		return
	}
	if err := auth.CheckGrant(have, set); err != nil {
		a.denied(w, r, action, "role", "", err, detail)
		return
	}
	ro, err := a.Auth.CreateRole(r.Context(), auth.RoleInput{Name: name, Description: desc, Permissions: perms})
	if err != nil {
		a.record(r, action, "role", "", "failed", detail)
		a.rolesAgain(w, r, err, name, desc, perms)
		return
	}
	a.record(r, action, "role", ro.ID, "ok", map[string]any{"name": ro.Name, "permissions": ro.Permissions})
	http.Redirect(w, r, ConsolePath+"/roles?ok=role", http.StatusSeeOther)
}

func (a *administration) deleteRole(w http.ResponseWriter, r *http.Request) {
	const action = "role.delete"
	id := r.PathValue("id")
	if !a.require(w, r, auth.RolesWrite, action, "role", id) {
		return
	}
	if err := a.Auth.DeleteRole(r.Context(), id); err != nil {
		a.record(r, action, "role", id, "failed", map[string]any{"error": admCode(err)})
		if errs.Is(err, errs.Conflict) {
			// Built in, or held: say so on the roles page, with its 409.
			a.rolesAgain(w, r, err, "", "", nil)
			return
		}
		a.fail(w, r, ConsolePath, err)
		return
	}
	a.record(r, action, "role", id, "ok", nil)
	http.Redirect(w, r, ConsolePath+"/roles?ok=role_deleted", http.StatusSeeOther)
}

func admCode(err error) string {
	code, _, _ := errs.Public(err)
	return code
}

// ---- Settings ----

type settingsData struct {
	Settings
	DirectoryURL   string // without any userinfo
	HasDirectory   bool
	Last           *directory.Report
	Synced         bool // Last is the sync just run
	CanSync        bool
	LicenseState   license.State
	LicenseWarn    []string
	LicenseExpires time.Time
	// Apple is the push certificate and automated enrollment (nil hides
	// them).
	Apple *appleView
}

func (a *administration) settingsData(r *http.Request) *settingsData {
	var s Settings
	if a.Settings != nil {
		s = a.Settings(r.Context())
	}
	d := &settingsData{Settings: s, HasDirectory: a.Directory != nil, CanSync: a.Directory != nil && a.can(r, auth.SettingsWrite)}
	// The directory refuses credentials in its URL; a URL is still shown
	// without any, whatever the configuration says.
	if s.DirectoryURL != "" {
		if u, err := url.Parse(s.DirectoryURL); err == nil {
			u.User = nil
			d.DirectoryURL = u.String()
		} else {
			d.DirectoryURL = "(not a URL)"
		}
	}
	if a.Directory != nil {
		if rep, ok := a.Directory.Last(); ok {
			d.Last = &rep
		}
	}
	if s.License != nil {
		now := a.Now()
		d.LicenseState = s.License.State(now)
		d.LicenseWarn = license.Warnings(s.License, now, s.ActiveDevices)
		d.LicenseExpires = s.License.Expires
	}
	d.Apple = a.appleSettings(r)
	return d
}

func (a *administration) settings(w http.ResponseWriter, r *http.Request) {
	if !a.require(w, r, auth.SettingsRead, "console.settings", "", "") {
		return
	}
	a.render(w, r, http.StatusOK, "settings", a.adminPage(r, "Settings", "Settings", a.settingsData(r)))
}

// syncDirectory synchronises the company directory now and shows the
// report, or why the directory could not be used (nothing changed then).
func (a *administration) syncDirectory(w http.ResponseWriter, r *http.Request) {
	const action = "directory.sync"
	if !a.require(w, r, auth.SettingsWrite, action, "directory", "") {
		return
	}
	if a.Directory == nil {
		a.record(r, action, "directory", "", "failed", map[string]any{"error": errDirectoryNotConfigured.Code})
		a.fail(w, r, ConsolePath, errDirectoryNotConfigured)
		return
	}
	rep, err := a.Directory.Sync(r.Context())
	if err != nil {
		a.record(r, action, "directory", "", "failed", map[string]any{"error": admCode(err)})
		status, p := a.failFlash(r, a.adminPage(r, "Settings", "Settings", a.settingsData(r)), err)
		a.render(w, r, status, "settings", p)
		return
	}
	a.record(r, action, "directory", "", "ok", map[string]any{"created": rep.Created, "updated": rep.Updated, "missing": rep.Missing, "failed": rep.Failed})
	d := a.settingsData(r)
	d.Last, d.Synced = &rep, true
	p := a.adminPage(r, "Settings", "Settings", d)
	p.Flash = fmt.Sprintf("Directory synchronised: %d users created, %d updated, %d missing, %d entries failed.", rep.Created, rep.Updated, rep.Missing, rep.Failed)
	if rep.Failed > 0 {
		p.FlashKind = "error"
	}
	a.render(w, r, http.StatusOK, "settings", p)
}

// ---- Bulk actions and their jobs ----

// jobFailure is one row or chunk a job could not do.
type jobFailure struct {
	Item  string // "row 4 (x@example.com)", "devices 1–500"
	Error string
}

// job is a bulk action running in this process.
type job struct {
	ID, Owner string
	Title     string
	Unit      string // "rows", "devices"
	Verb      string // "created", "queued"
	Started   time.Time

	mu       sync.Mutex
	resolved bool // Total is known
	total    int
	ok       int
	failed   int
	failures []jobFailure
	more     int // failures not kept
	ended    time.Time
	stopped  string // why the job ended before its last item
}

func (j *job) fail(item, msg string) { j.failMany(1, item, msg) }

// failMany counts n items failed for one reason.
func (j *job) failMany(n int, item, msg string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.failed += n
	if len(j.failures) < MaxJobFailures {
		j.failures = append(j.failures, jobFailure{Item: item, Error: msg})
	} else {
		j.more++
	}
}

func (j *job) succeed(n int) {
	j.mu.Lock()
	j.ok += n
	j.mu.Unlock()
}

func (j *job) setTotal(n int) {
	j.mu.Lock()
	j.total, j.resolved = n, true
	j.mu.Unlock()
}

func (j *job) finish(now time.Time, stopped string) {
	j.mu.Lock()
	j.ended, j.stopped = now, stopped
	j.mu.Unlock()
}

// jobView is a job as its page shows it: a snapshot.
type jobView struct {
	ID, Title, Unit, Verb string
	Started, Ended        time.Time
	Resolved              bool
	Total, OK, Failed     int
	Done                  int
	Failures              []jobFailure
	More                  int
	Running               bool
	Stopped               string
	Refresh               int
}

func (j *job) view() jobView {
	j.mu.Lock()
	defer j.mu.Unlock()
	v := jobView{ID: j.ID, Title: j.Title, Unit: j.Unit, Verb: j.Verb, Started: j.Started, Ended: j.ended, Resolved: j.resolved,
		Total: j.total, OK: j.ok, Failed: j.failed, Done: j.ok + j.failed, Failures: slices.Clone(j.failures), More: j.more,
		Running: j.ended.IsZero(), Stopped: j.stopped}
	if v.Running {
		v.Refresh = JobRefreshSeconds
	}
	return v
}

// jobTable keeps the last MaxJobs jobs, oldest forgotten first.
type jobTable struct {
	mu    sync.Mutex
	byID  map[string]*job
	order []string
}

func (t *jobTable) add(j *job) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for len(t.order) >= MaxJobs {
		delete(t.byID, t.order[0])
		t.order = t.order[1:]
	}
	t.byID[j.ID] = j
	t.order = append(t.order, j.ID)
}

// get returns the job if owner started it.
func (t *jobTable) get(id, owner string) (*job, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	j, ok := t.byID[id]
	if !ok || j.Owner != owner {
		return nil, false
	}
	return j, true
}

// of returns owner's jobs, newest first.
func (t *jobTable) of(owner string) []jobView {
	t.mu.Lock()
	var js []*job
	for i := len(t.order) - 1; i >= 0; i-- {
		if j := t.byID[t.order[i]]; j.Owner == owner {
			js = append(js, j)
		}
	}
	t.mu.Unlock()
	out := make([]jobView, len(js))
	for i, j := range js {
		out[i] = j.view()
	}
	return out
}

// jobAudit writes the audit entries of a job's work, after its request
// has ended: the administrator, address and request ID of the request
// that started it.
type jobAudit struct {
	audit *audit.Logger
	actor string
	ip    string
	reqID string
	jobID string
	ctx   context.Context
}

func (a *administration) jobAuditOf(r *http.Request, ctx context.Context, jobID string) jobAudit {
	return jobAudit{audit: a.Audit, actor: adminOf(r).ID, ip: websession.ClientIP(r), reqID: httpx.RequestID(r.Context()), jobID: jobID, ctx: ctx}
}

func (ja jobAudit) record(action, objectType, objectID, outcome string, detail map[string]any) {
	if detail == nil {
		detail = map[string]any{}
	}
	detail["job_id"] = ja.jobID
	ja.audit.Record(ja.ctx, audit.Entry{Actor: ja.actor, ActorIP: ja.ip, Action: action, ObjectType: objectType, ObjectID: objectID,
		RequestID: ja.reqID, Outcome: outcome, Detail: detail})
}

// start registers j and runs work in its own goroutine, detached from the
// request (which ends with the redirect to the job's page).
func (a *administration) start(r *http.Request, j *job, work func(ctx context.Context, ja jobAudit) string) {
	a.jobs.add(j)
	ctx := context.WithoutCancel(r.Context())
	ja := a.jobAuditOf(r, ctx, j.ID)
	go func() {
		stopped := ""
		defer func() {
			if p := recover(); p != nil {
				a.Logger.Error("console: bulk job panicked", "job_id", j.ID, "panic", p)
				stopped = "the job failed on the server; see the server's log"
			}
			j.finish(a.Now(), stopped)
		}()
		stopped = work(ctx, ja)
	}()
}

type bulkData struct {
	CanImport, CanCommand bool
	Groups                []*user.Group
	CommandTypes          []command.Type
	Jobs                  []jobView
	MaxRows               int
	MaxMiB                int
	MaxJobs               int
}

func (a *administration) bulk(w http.ResponseWriter, r *http.Request) {
	d := &bulkData{CanImport: a.can(r, auth.UsersWrite), CanCommand: a.can(r, auth.CommandsSend), MaxRows: MaxImportRows,
		MaxMiB: MaxImportBytes >> 20, MaxJobs: MaxJobs}
	if !d.CanImport && !d.CanCommand && !a.require(w, r, auth.UsersWrite, "console.bulk", "", "") {
		return
	}
	if d.CanCommand {
		d.Groups, _ = a.groupList(r.Context())
		d.CommandTypes = a.commandTypes(r)
	}
	d.Jobs = a.jobs.of(adminOf(r).ID)
	a.render(w, r, http.StatusOK, "bulk", a.adminPage(r, "Bulk actions", "", d))
}

func (a *administration) commandTypes(r *http.Request) []command.Type {
	var out []command.Type
	wipe := a.can(r, auth.WipeSend)
	for _, t := range adminCommands {
		if (t == command.WipeWork || t == command.WipeDevice) && !wipe {
			continue
		}
		out = append(out, t)
	}
	return out
}

func (a *administration) jobPage(w http.ResponseWriter, r *http.Request) {
	j, ok := a.jobs.get(r.PathValue("id"), adminOf(r).ID)
	if !ok {
		a.fail(w, r, ConsolePath, errJobNotFound)
		return
	}
	v := j.view()
	p := a.adminPage(r, v.Title, "", v)
	if v.Running {
		w.Header().Set("Cache-Control", "no-store")
	}
	a.render(w, r, http.StatusOK, "job", p)
}

// importRow is a user of the CSV file, with its line number.
type importRow struct {
	Line                         int
	Email, DisplayName, Username string
}

// importUsers reads the CSV file (email,name[,username]) whole, within
// its limits, then creates its users one by one in a job. A file over
// a limit or unreadable creates nobody.
func (a *administration) importUsers(w http.ResponseWriter, r *http.Request) {
	const action = "users.import"
	if !a.require(w, r, auth.UsersWrite, action, "job", "") {
		return
	}
	rows, err := readImport(w, r)
	if err != nil {
		a.record(r, action, "job", "", "failed", map[string]any{"error": admCode(err)})
		a.bulkAgain(w, r, err)
		return
	}
	j := &job{ID: id.New(), Owner: adminOf(r).ID, Title: "Import of users", Unit: "rows", Verb: "created", Started: a.Now()}
	j.setTotal(len(rows))
	a.record(r, action, "job", j.ID, "ok", map[string]any{"rows": len(rows)})
	a.start(r, j, func(ctx context.Context, ja jobAudit) string {
		serverErrors := 0
		for _, row := range rows {
			u, err := a.Users.Create(ctx, user.NewUser{Email: row.Email, DisplayName: row.DisplayName, Username: row.Username})
			if err != nil {
				code, msg, fields := errs.Public(err)
				for _, k := range slices.Sorted(maps.Keys(fields)) {
					msg += "; " + k + ": " + fields[k]
				}
				j.fail(fmt.Sprintf("line %d (%s)", row.Line, admClip(row.Email, 80)), msg)
				ja.record("user.create", "user", "", "failed", map[string]any{"line": row.Line, "error": code})
				if errs.KindOf(err) == errs.Internal || errs.KindOf(err) == errs.Unavailable {
					a.Logger.Error("console: import: create user", "job_id", j.ID, "line", row.Line, "err", err)
					if serverErrors++; serverErrors >= maxConsecutiveServerErrors {
						return fmt.Sprintf("stopped after %d server errors in a row; the rows after line %d were not tried", serverErrors, row.Line)
					}
				} else {
					serverErrors = 0
				}
				continue
			}
			serverErrors = 0
			j.succeed(1)
			ja.record("user.create", "user", u.ID, "ok", map[string]any{"email": u.Email, "line": row.Line})
		}
		return ""
	})
	http.Redirect(w, r, ConsolePath+"/jobs/"+j.ID, http.StatusSeeOther)
}

// bulkAgain shows the bulk page with err.
func (a *administration) bulkAgain(w http.ResponseWriter, r *http.Request, err error) {
	d := &bulkData{CanImport: a.can(r, auth.UsersWrite), CanCommand: a.can(r, auth.CommandsSend), MaxRows: MaxImportRows,
		MaxMiB: MaxImportBytes >> 20, MaxJobs: MaxJobs, Jobs: a.jobs.of(adminOf(r).ID)}
	if d.CanCommand {
		d.Groups, _ = a.groupList(r.Context())
		d.CommandTypes = a.commandTypes(r)
	}
	status, p := a.failFlash(r, a.adminPage(r, "Bulk actions", "", d), err)
	a.render(w, r, status, "bulk", p)
}

func admClip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// readImport returns the rows of the uploaded file "file". A browser's
// form was parsed by the CSRF check already (under its own limit); a
// client that sent the token in a header has its body read here, as a
// stream, under maxImportBody.
func readImport(w http.ResponseWriter, r *http.Request) ([]importRow, error) {
	if r.MultipartForm != nil {
		fhs := r.MultipartForm.File["file"]
		if len(fhs) == 0 {
			return nil, errImportNoFile
		}
		if fhs[0].Size > MaxImportBytes {
			return nil, errImportTooLarge
		}
		f, err := fhs[0].Open()
		if err != nil {
			return nil, errs.Wrap(errs.Invalid, "csv_unreadable", "the file could not be read", err)
		}
		defer f.Close()
		return parseImport(f)
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxImportBody)
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, "form_invalid", "send the file as a multipart form (field \"file\")", err)
	}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil, errImportNoFile
		}
		if err != nil {
			return nil, importBodyErr(err)
		}
		if part.FormName() != "file" {
			continue // NextPart discards what is left of it, under the body's limit
		}
		return parseImport(part)
	}
}

func importBodyErr(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errImportTooLarge
	}
	return errs.Wrap(errs.Invalid, "csv_unreadable", "the file could not be read", err)
}

// parseImport reads a CSV of users: a header naming the columns email
// (required), name and username (optional), in any order; then at most
// MaxImportRows rows, in at most MaxImportBytes. It stops at the first
// limit passed, before reading on.
func parseImport(f io.Reader) ([]importRow, error) {
	lr := &io.LimitedReader{R: f, N: MaxImportBytes + 1}
	br := bytes.NewBuffer(nil)
	// Read whole but bounded: the limit decides before the parse.
	if _, err := io.Copy(br, lr); err != nil {
		return nil, importBodyErr(err)
	}
	if br.Len() > MaxImportBytes {
		return nil, errImportTooLarge
	}
	data := bytes.TrimPrefix(br.Bytes(), []byte("\xef\xbb\xbf")) // a spreadsheet's byte order mark
	cr := csv.NewReader(bytes.NewReader(data))
	cr.TrimLeadingSpace = true
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, errImportNoFile
	}
	if err != nil {
		return nil, importCSVErr(err)
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "display_name" {
			h = "name"
		}
		switch h {
		case "email", "name", "username":
			if _, dup := col[h]; dup {
				return nil, admInvalid("csv_header", "the header names a column twice: "+h, "file", "header: email,name[,username]")
			}
			col[h] = i
		default:
			return nil, admInvalid("csv_header", fmt.Sprintf("the header's column %d is %q; the header is email,name[,username]", i+1, admClip(h, 40)), "file", "header: email,name[,username]")
		}
	}
	if _, ok := col["email"]; !ok {
		return nil, admInvalid("csv_header", "the header has no email column; the header is email,name[,username]", "file", "header: email,name[,username]")
	}
	cr.FieldsPerRecord = len(header)
	get := func(rec []string, name string) string {
		if i, ok := col[name]; ok {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	var rows []importRow
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, importCSVErr(err)
		}
		if len(rows) == MaxImportRows {
			return nil, errImportTooManyRows
		}
		line, _ := cr.FieldPos(0)
		rows = append(rows, importRow{Line: line, Email: get(rec, "email"), DisplayName: get(rec, "name"), Username: get(rec, "username")})
	}
	if len(rows) == 0 {
		return nil, errImportNoRows
	}
	return rows, nil
}

func importCSVErr(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return errs.Wrap(errs.Invalid, "csv_invalid", fmt.Sprintf("the file is not valid CSV: line %d: %v", pe.Line, pe.Err), err)
	}
	return errs.Wrap(errs.Invalid, "csv_invalid", "the file is not valid CSV", err)
}

// groupCommand queues a command for the devices of a group's users
// (members of its subgroups too, at any depth), within the
// administrator's own scope, in chunks of command.MaxBulk: each chunk is
// one transaction (all of it or none), audited command.send_bulk.
func (a *administration) groupCommand(w http.ResponseWriter, r *http.Request) {
	const action = "command.send_group"
	if !a.require(w, r, auth.CommandsSend, action, "group", "") {
		return
	}
	if err := parseForm(w, r); err != nil {
		a.fail(w, r, ConsolePath, err)
		return
	}
	groupID, typ := r.PostFormValue("group"), command.Type(r.PostFormValue("type"))
	if (typ == command.WipeWork || typ == command.WipeDevice) && !a.require(w, r, auth.WipeSend, action, "group", groupID) {
		return
	}
	if !slices.Contains(adminCommands, typ) {
		a.record(r, action, "group", groupID, "failed", map[string]any{"type": string(typ)})
		a.bulkAgain(w, r, errBulkUnknownCommand)
		return
	}
	g, err := a.Users.Group(r.Context(), groupID)
	if err != nil {
		a.record(r, action, "group", groupID, "failed", map[string]any{"type": string(typ)})
		if errs.Is(err, errs.NotFound) {
			err = errBulkGroupNotFound
		}
		a.bulkAgain(w, r, err)
		return
	}
	admin := adminOf(r)
	if admin.Scoped() && a.Auth.Scope == nil {
		a.fail(w, r, ConsolePath, errors.New("console: a scoped administrator, but no scope store"))
		return
	}
	j := &job{ID: id.New(), Owner: admin.ID, Title: fmt.Sprintf("%s to the devices of %s", typ, g.Name), Unit: "devices", Verb: "queued", Started: a.Now()}
	a.record(r, action, "group", g.ID, "ok", map[string]any{"type": string(typ), "job_id": j.ID})
	nc := command.NewCommand{Type: typ, CreatedBy: admin.ID}
	a.start(r, j, func(ctx context.Context, ja jobAudit) string {
		ids, err := a.groupDevices(ctx, admin, g.ID)
		if err != nil {
			_, msg, _ := errs.Public(err)
			a.Logger.Error("console: group command: devices", "job_id", j.ID, "err", err)
			j.setTotal(0)
			return "the group's devices could not be listed: " + msg
		}
		j.setTotal(len(ids))
		for start := 0; start < len(ids); start += command.MaxBulk {
			chunk := ids[start:min(len(ids), start+command.MaxBulk)]
			item := fmt.Sprintf("devices %d–%d", start+1, start+len(chunk))
			cmds, err := a.Commands.Send(ctx, chunk, nc)
			if errs.Is(err, errs.NotFound) {
				// A device was removed since the listing: send to the rest.
				var gone int
				chunk, gone = a.withoutRemoved(ctx, chunk)
				for range gone {
					j.fail(item, "the device was removed meanwhile")
				}
				cmds, err = nil, nil
				if len(chunk) > 0 {
					cmds, err = a.Commands.Send(ctx, chunk, nc)
				}
			}
			if err != nil {
				code, msg, _ := errs.Public(err)
				a.Logger.Error("console: group command: send", "job_id", j.ID, "err", err)
				j.failMany(len(chunk), item, msg)
				ja.record("command.send_bulk", "group", g.ID, "failed", map[string]any{"type": string(typ), "devices": len(chunk), "error": code})
				continue
			}
			j.succeed(len(chunk))
			ja.record("command.send_bulk", "group", g.ID, "ok", map[string]any{"type": string(typ), "devices": len(chunk), "queued": len(cmds)})
		}
		return ""
	})
	http.Redirect(w, r, ConsolePath+"/jobs/"+j.ID, http.StatusSeeOther)
}

// groupDevices lists the devices (not removed) of the group's users,
// subgroups included, that lie in admin's scope.
func (a *administration) groupDevices(ctx context.Context, admin *auth.Admin, groupID string) ([]string, error) {
	group := &auth.Admin{ID: admin.ID, ScopeGroups: []string{groupID}}
	var ids []string
	for q := (device.Query{Limit: device.MaxPage}); ; {
		ds, err := a.Auth.ScopedDevices(ctx, group, q)
		if err != nil {
			return nil, err
		}
		page := make([]string, 0, len(ds))
		for _, d := range ds {
			if d.State != device.StateRemoved {
				page = append(page, d.ID)
			}
		}
		if admin.Scoped() && len(page) > 0 {
			if page, err = a.Auth.Scope.DevicesInScope(ctx, admin.ScopeGroups, page); err != nil {
				return nil, err
			}
			slices.Sort(page)
		}
		ids = append(ids, page...)
		if len(ds) < device.MaxPage {
			return ids, nil
		}
		q.After = ds[len(ds)-1].ID
	}
}

// withoutRemoved returns ids less the devices removed (or gone), and how
// many those were.
func (a *administration) withoutRemoved(ctx context.Context, ids []string) ([]string, int) {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		d, err := a.DeviceStore.Device(ctx, id)
		if errors.Is(err, errs.ErrNotFound) || (err == nil && d.State == device.StateRemoved) {
			continue
		}
		out = append(out, id)
	}
	return out, len(ids) - len(out)
}
