package console

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/custos-uem/custos/activation"
	"github.com/custos-uem/custos/audit"
	"github.com/custos-uem/custos/auth"
	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/httpx"
	"github.com/custos-uem/custos/policy"
	"github.com/custos-uem/custos/user"
	"github.com/custos-uem/custos/websession"
)

type ctxKey int

const keyAdmin ctxKey = iota

// requireAdmin lets through requests of a signed-in administrator, with
// the administrator in the context; a browser without a session is sent
// to the sign-in page (a POST gets 401).
func (c *Console) requireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, ok := websession.FromContext(r.Context())
		var a *auth.Admin
		if ok && sess.Realm == websession.RealmAdmin {
			var err error
			if a, err = c.Auth.Admin(r.Context(), sess.PrincipalID); err != nil {
				a = nil
			}
		}
		if a == nil {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, ConsolePath+"/login", http.StatusSeeOther)
				return
			}
			c.render(w, r, http.StatusUnauthorized, "error", page{Title: "Signed out", Base: ConsolePath, Data: "Your session ended; sign in again."})
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), keyAdmin, a)))
	})
}

func adminOf(r *http.Request) *auth.Admin {
	a, _ := r.Context().Value(keyAdmin).(*auth.Admin)
	return a
}

// consoleNav is the console's menu; an entry shows when the
// administrator holds its permission.
var consoleNav = []struct {
	path, label string
	perm        auth.Permission
}{
	{"/", "Dashboard", auth.DevicesRead},
	{"/users", "Users", auth.UsersRead},
	{"/groups", "Groups", auth.GroupsRead},
	{"/devices", "Devices", auth.DevicesRead},
	{"/profiles", "Activation profiles", auth.ProfilesRead},
	{"/policies", "Policies", auth.PoliciesRead},
	{"/administrators", "Administrators", auth.AdminsRead},
	{"/bulk", "Bulk actions", auth.UsersWrite},
	{"/audit", "Audit log", auth.AuditRead},
	{"/settings", "Settings", auth.SettingsRead},
}

// adminPage fills the parts of a console page every page has.
func (c *Console) adminPage(r *http.Request, title, current string, data any) page {
	a := adminOf(r)
	var nav []navItem
	for _, n := range consoleNav {
		if n.perm == "" || c.can(r, n.perm) {
			nav = append(nav, navItem{Href: ConsolePath + n.path, Label: n.label})
		}
	}
	for i := range nav {
		nav[i].Current = nav[i].Label == current
	}
	return page{Title: title, Base: ConsolePath, Signed: true, Who: a.Username, Nav: nav, Data: data,
		Can: can{UsersWrite: c.can(r, auth.UsersWrite), PasswordsWrite: c.can(r, auth.PasswordsWrite)}}
}

func (c *Console) can(r *http.Request, p auth.Permission) bool {
	a := adminOf(r)
	return a != nil && c.Auth.Authorize(r.Context(), a, p) == nil
}

// ErrPermission is a page the administrator's role does not allow.
func errPermission(p auth.Permission) error {
	return errs.E(errs.Forbidden, "permission_denied", "your role does not allow this ("+string(p)+")")
}

// require checks p next to the data; a refusal is audited.
func (c *Console) require(w http.ResponseWriter, r *http.Request, p auth.Permission, action, objectType, objectID string) bool {
	if c.can(r, p) {
		return true
	}
	c.record(r, action+".denied", objectType, objectID, "denied", map[string]any{"permission": string(p)})
	c.fail(w, r, ConsolePath, errPermission(p))
	return false
}

// record writes an audit entry for the signed-in administrator.
func (c *Console) record(r *http.Request, action, objectType, objectID, outcome string, detail map[string]any) {
	a := adminOf(r)
	actor := ""
	if a != nil {
		actor = a.ID
	}
	c.Audit.Record(r.Context(), audit.Entry{Actor: actor, ActorIP: websession.ClientIP(r), Action: action, ObjectType: objectType,
		ObjectID: objectID, RequestID: httpx.RequestID(r.Context()), Outcome: outcome, Detail: detail})
}

// inScope reports whether the administrator's scope covers the user.
func (c *Console) inScope(r *http.Request, userID string) (bool, error) {
	a := adminOf(r)
	if !a.Scoped() {
		return true, nil
	}
	return c.Auth.UserInScope(r.Context(), a, userID)
}

// adminLogin is the console's sign-in page.
func (c *Console) adminLogin(w http.ResponseWriter, r *http.Request) {
	p := page{Title: "Sign in", Base: ConsolePath}
	switch r.Method {
	case http.MethodGet:
		c.render(w, r, http.StatusOK, "login", p)
	case http.MethodPost:
		if err := parseForm(w, r); err != nil {
			c.fail(w, r, ConsolePath, err)
			return
		}
		login := strings.TrimSpace(r.PostFormValue("login"))
		id, local := "", false
		if admins, err := c.Auth.ListAdmins(r.Context()); err == nil {
			for _, a := range admins {
				if strings.EqualFold(a.Username, login) {
					id, local = a.ID, a.ExternalID == ""
				}
			}
		}
		var err error
		if !local && c.DirectoryAdmin != nil {
			// A directory account: the directory checks the password and
			// its groups' bindings give the role (now, at every sign-in).
			// The session's own check below binds again, under the
			// sign-in lockout.
			if !c.dirLimiter.Allow(websession.ClientIP(r)) {
				err = httpx.ErrRateLimited
			} else if a, derr := c.DirectoryAdmin(r.Context(), login, r.PostFormValue("password")); derr != nil {
				err = derr
			} else {
				id = a.ID
			}
		}
		if err == nil {
			_, err = c.Sessions.Login(w, r, websession.RealmAdmin, id, r.PostFormValue("password"))
		}
		if err != nil {
			_, msg, _ := errs.Public(err)
			p.Flash, p.FlashKind = msg, "error"
			c.Audit.Record(r.Context(), audit.Entry{Actor: id, ActorIP: websession.ClientIP(r), Action: "console.sign_in",
				ObjectType: "admin", ObjectID: id, RequestID: httpx.RequestID(r.Context()), Outcome: "denied"})
			c.render(w, r, httpx.Status(errs.KindOf(err)), "login", p)
			return
		}
		c.Audit.Record(r.Context(), audit.Entry{Actor: id, ActorIP: websession.ClientIP(r), Action: "console.sign_in",
			ObjectType: "admin", ObjectID: id, RequestID: httpx.RequestID(r.Context()), Outcome: "ok"})
		http.Redirect(w, r, ConsolePath+"/", http.StatusSeeOther)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func (c *Console) logout(realm websession.Realm, base string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c.Sessions.Logout(w, r, realm)
		http.Redirect(w, r, base+"/login", http.StatusSeeOther)
	}
}

func (c *Console) dashboard(w http.ResponseWriter, r *http.Request) {
	if !c.require(w, r, auth.DevicesRead, "console.dashboard", "", "") {
		return
	}
	now := c.Now()
	d, err := c.Reports.Dashboard(r.Context(), adminOf(r).ScopeGroups, now.AddDate(0, 0, -(DashboardDays-1)), now)
	if err != nil {
		c.fail(w, r, ConsolePath, err)
		return
	}
	c.render(w, r, http.StatusOK, "dashboard", c.adminPage(r, "Dashboard", "Dashboard", d))
}

func (c *Console) users(w http.ResponseWriter, r *http.Request) {
	if !c.require(w, r, auth.UsersRead, "console.users", "", "") {
		return
	}
	list, err := c.Users.List(r.Context(), user.Page{After: r.URL.Query().Get("after"), Limit: user.MaxPage})
	if err != nil {
		c.fail(w, r, ConsolePath, err)
		return
	}
	var shown []*user.User
	for _, u := range list {
		if ok, err := c.inScope(r, u.ID); err == nil && ok {
			shown = append(shown, u)
		}
	}
	c.render(w, r, http.StatusOK, "users", c.adminPage(r, "Users", "Users", shown))
}

func (c *Console) addUser(w http.ResponseWriter, r *http.Request) {
	if !c.require(w, r, auth.UsersWrite, "user.create", "user", "") {
		return
	}
	if err := parseForm(w, r); err != nil {
		c.fail(w, r, ConsolePath, err)
		return
	}
	u, err := c.Users.Create(r.Context(), user.NewUser{Email: r.PostFormValue("email"), DisplayName: r.PostFormValue("display_name")})
	if err != nil {
		c.record(r, "user.create", "user", "", "failed", nil)
		c.fail(w, r, ConsolePath, err)
		return
	}
	c.record(r, "user.create", "user", u.ID, "ok", map[string]any{"email": u.Email})
	http.Redirect(w, r, ConsolePath+"/users/"+u.ID, http.StatusSeeOther)
}

// userData is the user page.
type userData struct {
	User            *user.User
	Devices         []*device.Device
	Password        string
	PasswordExpires time.Time
	MailReady       bool
	MailSent        bool
	MailError       string
	// Profiles to assign; Effective the one that applies and why.
	// Passwords are the user's activation passwords (metadata only).
	Passwords        []*activation.Password
	Profiles         []*activation.Profile
	Effective        *activation.Profile
	EffectiveBecause string
}

// scopedUser fetches the user, 404 when out of the administrator's scope
// (the same answer as for no such user).
func (c *Console) scopedUser(r *http.Request, id string) (*user.User, error) {
	u, err := c.Users.Get(r.Context(), id)
	if err != nil {
		return nil, err
	}
	ok, err := c.inScope(r, u.ID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errs.E(errs.NotFound, "user_not_found", "no such user")
	}
	return u, nil
}

func (c *Console) userData(r *http.Request, u *user.User) (*userData, error) {
	ds, err := c.DeviceStore.ListDevices(r.Context(), device.Query{UserID: u.ID, Limit: device.MaxPage})
	if err != nil {
		return nil, err
	}
	d := &userData{User: u, Devices: ds, MailReady: c.SendActivationEmail != nil && u.Email != ""}
	if d.Passwords, err = c.Activation.Passwords(r.Context(), u.ID); err != nil {
		return nil, err
	}
	if c.can(r, auth.ProfilesRead) {
		if d.Profiles, err = c.Activation.Store.ListProfiles(r.Context()); err != nil {
			return nil, err
		}
		if d.Effective, d.EffectiveBecause, err = c.Activation.EffectiveProfile(r.Context(), u.ID); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// userProfile assigns an activation profile to the user directly ("" goes
// back to the groups' or the default one).
func (c *Console) userProfile(w http.ResponseWriter, r *http.Request) {
	u, ok := c.userForm(w, r, auth.UsersWrite, "user.update")
	if !ok {
		return
	}
	pid := r.PostFormValue("profile_id")
	if pid != "" {
		if _, err := c.Activation.Store.Profile(r.Context(), pid); err != nil {
			c.fail(w, r, ConsolePath, errs.E(errs.Invalid, "profile_not_found", "no such activation profile"))
			return
		}
	}
	if _, err := c.Users.Update(r.Context(), u.ID, user.UserPatch{ActivationProfileID: &pid}); err != nil {
		c.record(r, "user.update", "user", u.ID, "failed", nil)
		c.fail(w, r, ConsolePath, err)
		return
	}
	c.record(r, "user.update", "user", u.ID, "ok", map[string]any{"activation_profile_id": pid})
	http.Redirect(w, r, ConsolePath+"/users/"+u.ID+"?done=profile", http.StatusSeeOther)
}

func (c *Console) userPage(w http.ResponseWriter, r *http.Request) {
	if !c.require(w, r, auth.UsersRead, "console.user", "user", r.PathValue("id")) {
		return
	}
	u, err := c.scopedUser(r, r.PathValue("id"))
	if err != nil {
		c.fail(w, r, ConsolePath, err)
		return
	}
	d, err := c.userData(r, u)
	if err != nil {
		c.fail(w, r, ConsolePath, err)
		return
	}
	c.render(w, r, http.StatusOK, "user", c.adminPage(r, u.Email, "Users", d))
}

// userForm starts a POST on a user's page: the permission (a refusal is
// audited as action.denied), the form, and the user in the
// administrator's scope. It has answered the request when ok is false.
func (c *Console) userForm(w http.ResponseWriter, r *http.Request, p auth.Permission, action string) (u *user.User, ok bool) {
	id := r.PathValue("id")
	if !c.require(w, r, p, action, "user", id) {
		return nil, false
	}
	if err := parseForm(w, r); err != nil {
		c.fail(w, r, ConsolePath, err)
		return nil, false
	}
	u, err := c.scopedUser(r, id)
	if err != nil {
		c.fail(w, r, ConsolePath, err)
		return nil, false
	}
	return u, true
}

// userPassword generates an activation password and, if asked, emails
// it. A mail failure leaves the password valid and shown: nothing is
// silently lost.
func (c *Console) userPassword(w http.ResponseWriter, r *http.Request) {
	u, ok := c.userForm(w, r, auth.PasswordsWrite, "activation_password.create")
	if !ok {
		return
	}
	pw, rec, err := c.Activation.SetPassword(r.Context(), activation.SetPasswordInput{UserID: u.ID, CreatedBy: adminOf(r).ID})
	if err != nil {
		c.record(r, "activation_password.create", "user", u.ID, "failed", nil)
		c.fail(w, r, ConsolePath, err)
		return
	}
	c.record(r, "activation_password.create", "user", u.ID, "ok", map[string]any{"password_id": rec.ID})
	d, err := c.userData(r, u)
	if err != nil {
		c.fail(w, r, ConsolePath, err)
		return
	}
	d.Password, d.PasswordExpires = pw, rec.ExpiresAt
	if r.PostFormValue("email") != "" && c.SendActivationEmail != nil {
		if err := c.SendActivationEmail(r.Context(), u, pw, rec.ExpiresAt); err != nil {
			_, msg, _ := errs.Public(err)
			d.MailError = msg
			c.record(r, "activation_email.send", "user", u.ID, "failed", map[string]any{"error": msg})
		} else {
			d.MailSent = true
			c.record(r, "activation_email.send", "user", u.ID, "ok", nil)
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	c.render(w, r, http.StatusOK, "user", c.adminPage(r, u.Email, "Users", d))
}

// userPortalPassword sets the user's Self-Service password (for users
// who do not sign in through the company directory).
func (c *Console) userPortalPassword(w http.ResponseWriter, r *http.Request) {
	u, ok := c.userForm(w, r, auth.UsersWrite, "user.portal_password")
	if !ok {
		return
	}
	if err := c.Sessions.SetPassword(r.Context(), websession.RealmUser, u.ID, r.PostFormValue("password")); err != nil {
		c.record(r, "user.portal_password", "user", u.ID, "failed", nil)
		c.fail(w, r, ConsolePath, err)
		return
	}
	c.record(r, "user.portal_password", "user", u.ID, "ok", nil)
	http.Redirect(w, r, ConsolePath+"/users/"+u.ID+"?done=portal", http.StatusSeeOther)
}

func (c *Console) devices(w http.ResponseWriter, r *http.Request) {
	if !c.require(w, r, auth.DevicesRead, "console.devices", "", "") {
		return
	}
	q := device.Query{After: r.URL.Query().Get("after"), Limit: device.MaxPage}
	var ds []*device.Device
	var err error
	if a := adminOf(r); a.Scoped() {
		ds, err = c.Auth.ScopedDevices(r.Context(), a, q)
	} else {
		ds, err = c.DeviceStore.ListDevices(r.Context(), q)
	}
	if err != nil {
		c.fail(w, r, ConsolePath, err)
		return
	}
	c.render(w, r, http.StatusOK, "devices", c.adminPage(r, "Devices", "Devices", ds))
}

// deviceData is the device page.
type deviceData struct {
	Device        *device.Device
	Inventory     *device.Inventory
	InventoryRows []kv
	Compliance    any
	Commands      []*command.Command
	Config        []configRow
	ConfigCurrent bool
	CommandTypes  []command.Type
	CanCommand    bool
	CanRemove     bool
	CanCancel     bool
}

type kv struct{ K, V string }

// configRow is one item of the device's effective configuration and what
// the device did with its current revision.
type configRow struct {
	Kind, Name, Via, State, Error string
	Revision                      int
}

// scopedDevice fetches the device, 404 when it is out of scope.
func (c *Console) scopedDevice(r *http.Request, id string) (*device.Device, error) {
	d, err := c.DeviceStore.Device(r.Context(), id)
	if err != nil {
		if errors.Is(err, errs.ErrNotFound) {
			return nil, errs.E(errs.NotFound, "device_not_found", "no such device")
		}
		return nil, err
	}
	ok, err := c.inScope(r, d.UserID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errs.E(errs.NotFound, "device_not_found", "no such device")
	}
	return d, nil
}

// adminCommands are the commands the console offers an administrator.
var adminCommands = []command.Type{command.Lock, command.DeviceInfo, command.InstalledApps, command.Restart,
	command.ClearPasscode, command.WipeWork, command.WipeDevice}

func (c *Console) devicePage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !c.require(w, r, auth.DevicesRead, "console.device", "device", id) {
		return
	}
	d, err := c.scopedDevice(r, id)
	if err != nil {
		c.fail(w, r, ConsolePath, err)
		return
	}
	data := &deviceData{Device: d, CanCommand: c.can(r, auth.CommandsSend), CanRemove: c.can(r, auth.DevicesWrite),
		CanCancel: c.can(r, auth.CommandsCancel)}
	for _, t := range adminCommands {
		if (t == command.WipeWork || t == command.WipeDevice) && !c.can(r, auth.WipeSend) {
			continue
		}
		data.CommandTypes = append(data.CommandTypes, t)
	}
	if inv, err := c.DeviceStore.Inventory(r.Context(), d.ID); err == nil {
		data.Inventory = inv
		i := inv.Info
		for _, f := range []kv{{"Manufacturer", i.Manufacturer}, {"Model", i.Model}, {"Serial number", i.SerialNumber},
			{"OS", i.OSName + " " + i.OSVersion}, {"Kernel", i.Kernel}, {"Architecture", i.Arch}, {"Host name", i.Hostname},
			{"IMEI", i.IMEI}, {"Phone number", i.PhoneNumber}, {"Reported", inv.ReportedAt.UTC().Format(time.RFC3339)}} {
			if strings.TrimSpace(f.V) != "" {
				data.InventoryRows = append(data.InventoryRows, f)
			}
		}
	}
	if c.Compliance != nil {
		if st, err := c.Compliance.ComplianceState(r.Context(), d.ID); err == nil {
			data.Compliance = st
		}
	}
	if c.Policies != nil {
		eff, err := c.Policies.Effective(r.Context(), d)
		if err != nil {
			c.fail(w, r, ConsolePath, err)
			return
		}
		st, err := c.Policies.Status(r.Context(), d)
		if err != nil {
			c.fail(w, r, ConsolePath, err)
			return
		}
		data.ConfigCurrent = st.UpToDate
		for _, it := range eff.Items {
			row := configRow{Kind: string(it.Kind), Name: it.Name, Via: it.Via, Revision: it.Revision, State: policy.ItemPending}
			for _, s := range st.Items {
				if s.ID == it.ID && s.Revision == it.Revision { // an older revision's state is not this one's
					row.State, row.Error = s.Status, s.Error
				}
			}
			data.Config = append(data.Config, row)
		}
	}
	if c.can(r, auth.CommandsRead) {
		cmds, err := c.Commands.List(r.Context(), command.Query{DeviceID: d.ID, Limit: 50})
		if err != nil {
			c.fail(w, r, ConsolePath, err)
			return
		}
		data.Commands = cmds
	}
	c.render(w, r, http.StatusOK, "device", c.adminPage(r, d.Name, "Devices", data))
}

func (c *Console) sendCommand(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !c.require(w, r, auth.CommandsSend, "command.send", "device", id) {
		return
	}
	if err := parseForm(w, r); err != nil {
		c.fail(w, r, ConsolePath, err)
		return
	}
	typ := command.Type(r.PostFormValue("type"))
	if (typ == command.WipeWork || typ == command.WipeDevice) && !c.require(w, r, auth.WipeSend, "command.send", "device", id) {
		return
	}
	d, err := c.scopedDevice(r, id)
	if err != nil {
		c.fail(w, r, ConsolePath, err)
		return
	}
	in := command.NewCommand{Type: typ, CreatedBy: adminOf(r).ID}
	if pin := r.PostFormValue("pin"); pin != "" {
		// The Find My PIN of a Mac's lock or erase; command.Service says
		// what is wrong with it, or with a PIN for another command.
		in.Payload, _ = json.Marshal(map[string]string{"pin": pin})
	}
	cmds, err := c.Commands.Send(r.Context(), []string{d.ID}, in)
	if err != nil {
		c.record(r, "command.send", "device", d.ID, "failed", map[string]any{"type": string(typ)})
		c.fail(w, r, ConsolePath, err)
		return
	}
	detail := map[string]any{"type": string(typ)}
	if len(cmds) > 0 {
		detail["command_id"] = cmds[0].ID
	}
	c.record(r, "command.send", "device", d.ID, "ok", detail)
	http.Redirect(w, r, ConsolePath+"/devices/"+d.ID+"?done=command", http.StatusSeeOther)
}

// cancelCommand cancels an open command of a device in scope.
func (c *Console) cancelCommand(w http.ResponseWriter, r *http.Request) {
	id, cid := r.PathValue("id"), r.PathValue("cmd")
	if !c.require(w, r, auth.CommandsCancel, "command.cancel", "command", cid) {
		return
	}
	d, err := c.scopedDevice(r, id)
	if err != nil {
		c.fail(w, r, ConsolePath, err)
		return
	}
	cmd, err := c.Commands.Get(r.Context(), cid)
	if err != nil || cmd.DeviceID != d.ID { // another device's command is not this page's
		c.fail(w, r, ConsolePath, errs.E(errs.NotFound, "command_not_found", "no such command"))
		return
	}
	if _, err := c.Commands.Cancel(r.Context(), cmd.ID); err != nil {
		c.record(r, "command.cancel", "command", cmd.ID, "failed", nil)
		c.fail(w, r, ConsolePath, err)
		return
	}
	c.record(r, "command.cancel", "command", cmd.ID, "ok", map[string]any{"device_id": d.ID, "type": string(cmd.Type)})
	http.Redirect(w, r, ConsolePath+"/devices/"+d.ID+"?done=cancelled", http.StatusSeeOther)
}

// revokePasswords revokes the user's unused activation passwords.
func (c *Console) revokePasswords(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !c.require(w, r, auth.PasswordsWrite, "user.password.revoke", "user", id) {
		return
	}
	u, err := c.scopedUser(r, id)
	if err != nil {
		c.fail(w, r, ConsolePath, err)
		return
	}
	n, err := c.Activation.RevokePasswords(r.Context(), u.ID)
	if err != nil {
		c.record(r, "user.password.revoke", "user", u.ID, "failed", nil)
		c.fail(w, r, ConsolePath, err)
		return
	}
	c.record(r, "user.password.revoke", "user", u.ID, "ok", map[string]any{"revoked": n})
	http.Redirect(w, r, ConsolePath+"/users/"+u.ID+"?done=revoked", http.StatusSeeOther)
}

func (c *Console) removeDevice(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !c.require(w, r, auth.DevicesWrite, "device.remove", "device", id) {
		return
	}
	d, err := c.scopedDevice(r, id)
	if err != nil {
		c.fail(w, r, ConsolePath, err)
		return
	}
	if err := c.Devices.Remove(r.Context(), d.ID); err != nil {
		c.record(r, "device.remove", "device", d.ID, "failed", nil)
		c.fail(w, r, ConsolePath, err)
		return
	}
	c.record(r, "device.remove", "device", d.ID, "ok", nil)
	http.Redirect(w, r, ConsolePath+"/devices/"+d.ID+"?done=removed", http.StatusSeeOther)
}

// auditData is the audit page.
type auditData struct {
	Action, Actor string
	Entries       []*audit.Entry
}

func (c *Console) auditQuery(r *http.Request) audit.Query {
	q := r.URL.Query()
	limit, _ := strconv.Atoi(q.Get("limit"))
	return audit.Query{Action: q.Get("action"), Actor: q.Get("actor"), Limit: limit}
}

func (c *Console) auditPage(w http.ResponseWriter, r *http.Request) {
	if !c.require(w, r, auth.AuditRead, "console.audit", "", "") {
		return
	}
	q := c.auditQuery(r)
	if q.Limit == 0 {
		q.Limit = 200
	}
	es, err := c.Audit.List(r.Context(), q)
	if err != nil {
		c.fail(w, r, ConsolePath, err)
		return
	}
	c.render(w, r, http.StatusOK, "audit", c.adminPage(r, "Audit log", "Audit log", auditData{Action: q.Action, Actor: q.Actor, Entries: es}))
}

func (c *Console) auditCSV(w http.ResponseWriter, r *http.Request) {
	if !c.require(w, r, auth.AuditRead, "audit.export", "", "") {
		return
	}
	q := c.auditQuery(r)
	q.Limit = audit.MaxPage
	es, err := c.Audit.List(r.Context(), q)
	if err != nil {
		c.fail(w, r, ConsolePath, err)
		return
	}
	rows := [][]string{{"id", "at", "actor", "actor_ip", "action", "object_type", "object_id", "outcome", "request_id"}}
	for _, e := range es {
		rows = append(rows, []string{strconv.FormatInt(e.ID, 10), e.At.UTC().Format(time.RFC3339), e.Actor, e.ActorIP, e.Action,
			e.ObjectType, e.ObjectID, e.Outcome, e.RequestID})
	}
	c.record(r, "audit.export", "", "", "ok", map[string]any{"rows": len(es)})
	writeCSV(w, "custos-audit.csv", rows)
}
