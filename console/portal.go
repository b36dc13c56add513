package console

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/custos-uem/custos/activation"
	"github.com/custos-uem/custos/audit"
	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/httpx"
	appleenroll "github.com/custos-uem/custos/platform/apple/enroll"
	"github.com/custos-uem/custos/user"
	"github.com/custos-uem/custos/websession"
)

const keyUser ctxKey = 1

// requireUser lets through requests of a signed-in user, with the user
// in the context.
func (c *Console) requireUser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, ok := websession.FromContext(r.Context())
		var u *user.User
		if ok && sess.Realm == websession.RealmUser {
			var err error
			if u, err = c.Users.Get(r.Context(), sess.PrincipalID); err != nil {
				u = nil
			}
		}
		if u == nil {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, PortalPath+"/login", http.StatusSeeOther)
				return
			}
			c.render(w, r, http.StatusUnauthorized, "error", page{Title: "Signed out", Base: PortalPath, Portal: true, Data: "Your session ended; sign in again."})
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), keyUser, u)))
	})
}

func userOf(r *http.Request) *user.User {
	u, _ := r.Context().Value(keyUser).(*user.User)
	return u
}

// portalCommands are what users may send to their own devices (the
// seed's Self-Service: set password, lock, delete device data).
var portalCommands = []command.Type{command.Lock, command.SetPassword, command.WipeDevice}

// portalData is the portal's page.
type portalData struct {
	Devices         []*device.Device
	CommandTypes    []command.Type
	Password        string
	PasswordExpires time.Time
	QR              string // base64 PNG
	// EnrollMac offers "Enroll this Mac" (Console.EnrollMac is set).
	EnrollMac bool
}

func (c *Console) portalPage(r *http.Request, data *portalData) page {
	u := userOf(r)
	data.CommandTypes = portalCommands
	data.EnrollMac = c.EnrollMac != nil
	return page{Title: "My devices", Base: PortalPath, Portal: true, Signed: true, Who: u.Email,
		Nav: []navItem{{Href: PortalPath + "/", Label: "My devices", Current: true}}, Data: data}
}

// portalLogin signs a user in: a directory bind when the Core has a
// directory (websession's Verifier), else the user's local password.
func (c *Console) portalLogin(w http.ResponseWriter, r *http.Request) {
	p := page{Title: "Sign in", Base: PortalPath, Portal: true}
	switch r.Method {
	case http.MethodGet:
		c.render(w, r, http.StatusOK, "login", p)
	case http.MethodPost:
		if err := parseForm(w, r); err != nil {
			c.fail(w, r, PortalPath, err)
			return
		}
		id := ""
		if u, err := c.Users.ByLogin(r.Context(), strings.TrimSpace(r.PostFormValue("login"))); err == nil {
			id = u.ID
		}
		if _, err := c.Sessions.Login(w, r, websession.RealmUser, id, r.PostFormValue("password")); err != nil {
			_, msg, _ := errs.Public(err)
			p.Flash, p.FlashKind = msg, "error"
			c.render(w, r, httpx.Status(errs.KindOf(err)), "login", p)
			return
		}
		http.Redirect(w, r, PortalPath+"/", http.StatusSeeOther)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func (c *Console) myDevices(r *http.Request) ([]*device.Device, error) {
	return c.DeviceStore.ListDevices(r.Context(), device.Query{UserID: userOf(r).ID, Limit: device.MaxPage})
}

func (c *Console) portal(w http.ResponseWriter, r *http.Request) {
	ds, err := c.myDevices(r)
	if err != nil {
		c.fail(w, r, PortalPath, err)
		return
	}
	c.render(w, r, http.StatusOK, "portal", c.portalPage(r, &portalData{Devices: ds}))
}

// portalPassword gives the user a new activation password and its QR
// code (the server route, their address and the password).
func (c *Console) portalPassword(w http.ResponseWriter, r *http.Request) {
	u := userOf(r)
	pw, rec, err := c.Activation.SetPassword(r.Context(), activation.SetPasswordInput{UserID: u.ID, CreatedBy: "self-service"})
	if err != nil {
		c.fail(w, r, PortalPath, err)
		return
	}
	c.userRecord(r, "activation_password.create", "user", u.ID, "ok", nil)
	ds, err := c.myDevices(r)
	if err != nil {
		c.fail(w, r, PortalPath, err)
		return
	}
	data := &portalData{Devices: ds, Password: pw, PasswordExpires: rec.ExpiresAt}
	if c.ActivationQR != nil {
		if png, err := c.ActivationQR(r.Context(), u, pw); err == nil {
			data.QR = base64.StdEncoding.EncodeToString(png)
		} else {
			c.Logger.Warn("console: activation QR code", "err", err)
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	c.render(w, r, http.StatusOK, "portal", c.portalPage(r, data))
}

// portalCommand sends a command to one of the user's own devices; any
// other device ID is 404, exactly as a device that does not exist.
func (c *Console) portalCommand(w http.ResponseWriter, r *http.Request) {
	u := userOf(r)
	if err := parseForm(w, r); err != nil {
		c.fail(w, r, PortalPath, err)
		return
	}
	d, err := c.DeviceStore.Device(r.Context(), r.PathValue("id"))
	if err != nil || d.UserID != u.ID || d.State == device.StateRemoved {
		c.fail(w, r, PortalPath, errs.E(errs.NotFound, "device_not_found", "no such device"))
		return
	}
	typ := command.Type(r.PostFormValue("type"))
	allowed := false
	for _, t := range portalCommands {
		allowed = allowed || t == typ
	}
	if !allowed {
		c.fail(w, r, PortalPath, errs.E(errs.Invalid, "command_not_offered", "this command is not offered in Self-Service"))
		return
	}
	in := command.NewCommand{Type: typ, CreatedBy: "self-service:" + u.ID}
	if typ == command.SetPassword {
		pw := r.PostFormValue("password")
		if pw == "" {
			c.fail(w, r, PortalPath, errs.E(errs.Invalid, "password_required", "enter the new device password"))
			return
		}
		in.Payload, _ = json.Marshal(map[string]string{"password": pw})
	}
	if _, err := c.Commands.Send(r.Context(), []string{d.ID}, in); err != nil {
		c.fail(w, r, PortalPath, err)
		return
	}
	c.userRecord(r, "command.send", "device", d.ID, "ok", map[string]any{"type": string(typ)})
	http.Redirect(w, r, PortalPath+"/?done=command", http.StatusSeeOther)
}

// userRecord audits a user's own action in Self-Service.
func (c *Console) userRecord(r *http.Request, action, objectType, objectID, outcome string, detail map[string]any) {
	c.Audit.Record(r.Context(), audit.Entry{Actor: "user:" + userOf(r).ID, ActorIP: websession.ClientIP(r), Action: "self_service." + action,
		ObjectType: objectType, ObjectID: objectID, RequestID: httpx.RequestID(r.Context()), Outcome: outcome, Detail: detail})
}

// portalEnrollMac is "Enroll this Mac" (seed, "Activating a macOS device",
// steps 2-4): the signed-in user's new Mac gets its enrollment profile as
// a download, which macOS installs from System Settings. A refusal (the
// activation profile does not allow macOS, the device limit) is shown on
// the portal page.
func (c *Console) portalEnrollMac(w http.ResponseWriter, r *http.Request) {
	u := userOf(r)
	if c.EnrollMac == nil {
		c.notFound(w, r)
		return
	}
	body, err := c.EnrollMac(r.Context(), u)
	if err != nil {
		kind := errs.KindOf(err)
		if kind == errs.Internal || kind == errs.Unavailable {
			c.fail(w, r, PortalPath, err)
			return
		}
		code, msg, _ := errs.Public(err)
		c.userRecord(r, "apple_profile.download", "user", u.ID, "refused", map[string]any{"reason": code})
		ds, lerr := c.myDevices(r)
		if lerr != nil {
			c.fail(w, r, PortalPath, lerr)
			return
		}
		p := c.portalPage(r, &portalData{Devices: ds})
		p.Flash, p.FlashKind = msg, "error"
		c.render(w, r, httpx.Status(kind), "portal", p)
		return
	}
	c.userRecord(r, "apple_profile.download", "user", u.ID, "ok", nil)
	appleenroll.WriteProfile(w, body)
}
