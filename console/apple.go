package console

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/custos-uem/custos/auth"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/platform/apple/dep"
	"github.com/custos-uem/custos/platform/apple/pushcert"
)

// Apple is what the Settings page needs of the Apple platform: the MDM
// push certificate (platform/apple/pushcert) and automated enrollment
// (platform/apple/dep). Nil hides both cards.
type Apple struct {
	Push *pushcert.Service
	DEP  *dep.Service
}

// maxAppleFile bounds each uploaded file (a certificate, a key, a
// PKCS#12, a .p7m); the CSRF check parsed the form under MaxFormBytes.
const maxAppleFile = 64 << 10

// appleView is the Apple part of the Settings page.
type appleView struct {
	Push        *pushcert.Info
	PushWarning string
	DEPToken    *dep.TokenInfo
	DEPWarning  string
	DEPLast     *dep.Report
	DEPProfile  dep.ProfileConfig
	DEPDefault  string // the default user's email (or ID)
	DEPDevices  []*depDeviceView
	EnrollURL   string
	CanWrite    bool
}

type depDeviceView struct {
	*dep.Device
	UserEmail string
}

// appleSettings gathers the Apple cards; nil without Apple services.
func (a *administration) appleSettings(r *http.Request) *appleView {
	if a.Apple == nil {
		return nil
	}
	ctx := r.Context()
	v := &appleView{CanWrite: a.can(r, auth.SettingsWrite)}
	if info, err := a.Apple.Push.Info(ctx); err == nil {
		v.Push = info
		switch {
		case info.Expired:
			v.PushWarning = "The MDM push certificate has expired: Apple devices no longer receive pushes. Renew it in Apple's Push Certificates Portal (same Apple ID) and upload it here."
		case info.ExpiringSoon:
			v.PushWarning = fmt.Sprintf("The MDM push certificate expires in %d days. Renew it in Apple's Push Certificates Portal (same Apple ID) and upload it here.", info.DaysLeft)
		}
	}
	if tok, err := a.Apple.DEP.TokenInfo(ctx); err == nil {
		v.DEPToken = tok
		switch {
		case tok.Expired:
			v.DEPWarning = "The ADE server token has expired: device sync stopped. Download a new token in Apple Business Manager and upload it here."
		case tok.Configured && tok.ExpiringSoon:
			v.DEPWarning = fmt.Sprintf("The ADE server token expires in %d days. Download a new token in Apple Business Manager and upload it here.", tok.DaysLeft)
		}
	}
	v.DEPLast, _ = a.Apple.DEP.LastSync(ctx)
	v.DEPProfile, _ = a.Apple.DEP.ProfileConfig(ctx)
	v.EnrollURL = a.Apple.DEP.EnrollURL()
	emails := map[string]string{}
	email := func(id string) string {
		if id == "" {
			return ""
		}
		if e, ok := emails[id]; ok {
			return e
		}
		e := id
		if u, err := a.UserStore.User(ctx, id); err == nil && u.Email != "" {
			e = u.Email
		}
		emails[id] = e
		return e
	}
	if def, err := a.Apple.DEP.DefaultUser(ctx); err == nil {
		v.DEPDefault = email(def)
	}
	if devs, err := a.Apple.DEP.Devices(ctx, "", 200); err == nil {
		for _, d := range devs {
			v.DEPDevices = append(v.DEPDevices, &depDeviceView{Device: d, UserEmail: email(d.UserID)})
		}
	}
	return v
}

// registerApple registers the Apple forms of the Settings page.
func (a *administration) registerApple(mux *http.ServeMux) {
	mux.HandleFunc("POST "+ConsolePath+"/settings/apple/push-certificate", a.applePushUpload)
	mux.HandleFunc("GET "+ConsolePath+"/settings/apple/dep/public-key", a.depPublicKey)
	mux.HandleFunc("POST "+ConsolePath+"/settings/apple/dep/token", a.depToken)
	mux.HandleFunc("POST "+ConsolePath+"/settings/apple/dep/sync", a.depSync)
	mux.HandleFunc("POST "+ConsolePath+"/settings/apple/dep/assign", a.depAssign)
}

var errAppleOff = errs.E(errs.Conflict, "apple_not_configured", "Apple settings are not available on this server")

// formFile reads an uploaded file of the (already parsed) form; "" name
// absent is nil.
func formFile(r *http.Request, name string) ([]byte, error) {
	if r.MultipartForm == nil {
		return nil, errs.E(errs.Invalid, "form_invalid", "send the files as a multipart form")
	}
	fhs := r.MultipartForm.File[name]
	if len(fhs) == 0 || fhs[0].Size == 0 {
		return nil, nil
	}
	if fhs[0].Size > maxAppleFile {
		return nil, errs.E(errs.TooLarge, "file_too_large", fmt.Sprintf("%s is over %d KiB", name, maxAppleFile>>10))
	}
	f, err := fhs[0].Open()
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, "file_unreadable", "the file could not be read", err)
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxAppleFile))
}

// settingsAgain shows the Settings page with err, or with ok.
func (a *administration) settingsAgain(w http.ResponseWriter, r *http.Request, err error, ok string) {
	p := a.adminPage(r, "Settings", "Settings", a.settingsData(r))
	if err != nil {
		status, p := a.failFlash(r, p, err)
		a.render(w, r, status, "settings", p)
		return
	}
	p.Flash = ok
	a.render(w, r, http.StatusOK, "settings", p)
}

func (a *administration) applePushUpload(w http.ResponseWriter, r *http.Request) {
	const action = "apple.push_certificate.upload"
	if !a.require(w, r, auth.SettingsWrite, action, "apple_push_certificate", "") {
		return
	}
	err := func() error {
		if a.Apple == nil {
			return errAppleOff
		}
		up := pushcert.Upload{Password: r.FormValue("password"), ReplaceTopic: r.FormValue("replace_topic") == "on", By: adminOf(r).Username}
		var err error
		if up.CertPEM, err = formFile(r, "certificate"); err != nil {
			return err
		}
		if up.KeyPEM, err = formFile(r, "private_key"); err != nil {
			return err
		}
		if up.P12, err = formFile(r, "pkcs12"); err != nil {
			return err
		}
		info, replaced, err := a.Apple.Push.Upload(r.Context(), up)
		if err != nil {
			return err
		}
		detail := map[string]any{"topic": info.Topic, "serial": info.Serial, "not_after": info.NotAfter}
		if replaced != "" {
			detail["replaced_topic"] = replaced
		}
		a.record(r, action, "apple_push_certificate", "", "ok", detail)
		return nil
	}()
	if err != nil {
		a.record(r, action, "apple_push_certificate", "", "failed", map[string]any{"error": admCode(err)})
	}
	a.settingsAgain(w, r, err, "MDM push certificate uploaded.")
}

func (a *administration) depPublicKey(w http.ResponseWriter, r *http.Request) {
	if !a.require(w, r, auth.SettingsRead, "console.apple.dep.public_key", "apple_dep", "") {
		return
	}
	if a.Apple == nil {
		a.fail(w, r, ConsolePath, errAppleOff)
		return
	}
	b, err := a.Apple.DEP.PublicKeyPEM(r.Context())
	if err != nil {
		a.fail(w, r, ConsolePath, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Header().Set("Content-Disposition", `attachment; filename="custos-ade-public-key.pem"`)
	w.Write(b)
}

func (a *administration) depToken(w http.ResponseWriter, r *http.Request) {
	const action = "apple.dep.token.upload"
	if !a.require(w, r, auth.SettingsWrite, action, "apple_dep", "") {
		return
	}
	err := func() error {
		if a.Apple == nil {
			return errAppleOff
		}
		b, err := formFile(r, "token")
		if err != nil {
			return err
		}
		if b == nil {
			return errs.E(errs.Invalid, "file_missing", "choose the .p7m token file")
		}
		info, err := a.Apple.DEP.UploadToken(r.Context(), b, adminOf(r).Username)
		if err != nil {
			return err
		}
		a.record(r, action, "apple_dep", "", "ok", map[string]any{"consumer_key": info.ConsumerKey, "expiry": info.Expiry})
		return nil
	}()
	if err != nil {
		a.record(r, action, "apple_dep", "", "failed", map[string]any{"error": admCode(err)})
	}
	a.settingsAgain(w, r, err, "ADE server token uploaded.")
}

func (a *administration) depSync(w http.ResponseWriter, r *http.Request) {
	const action = "apple.dep.sync"
	if !a.require(w, r, auth.SettingsWrite, action, "apple_dep", "") {
		return
	}
	if a.Apple == nil {
		a.settingsAgain(w, r, errAppleOff, "")
		return
	}
	rep, err := a.Apple.DEP.Sync(r.Context())
	if err != nil {
		a.record(r, action, "apple_dep", "", "failed", map[string]any{"error": admCode(err)})
		a.settingsAgain(w, r, err, "")
		return
	}
	a.record(r, action, "apple_dep", "", "ok", map[string]any{"fetched": rep.Fetched, "assigned": rep.Assigned})
	a.settingsAgain(w, r, nil, fmt.Sprintf("ADE synchronised: %d devices seen, profile assigned to %d (%d failed).", rep.Fetched, rep.Assigned, rep.Failed))
}

// depAssign assigns an ADE device (serial) to a user given by email or
// username; an empty login clears the assignment. serial "*" sets the
// default user.
func (a *administration) depAssign(w http.ResponseWriter, r *http.Request) {
	const action = "apple.dep.device.assign"
	serial := strings.TrimSpace(r.FormValue("serial"))
	if !a.require(w, r, auth.SettingsWrite, action, "apple_dep_device", serial) {
		return
	}
	err := func() error {
		if a.Apple == nil {
			return errAppleOff
		}
		login := strings.TrimSpace(r.FormValue("user"))
		userID := ""
		if login != "" {
			u, err := a.UserStore.UserByLogin(r.Context(), strings.ToLower(login))
			if err != nil {
				return errs.Wrap(errs.NotFound, "user_not_found", "no user with this email address or username", err)
			}
			userID = u.ID
		}
		ctx := context.WithoutCancel(r.Context())
		if serial == "*" {
			return a.Apple.DEP.SetDefaultUser(ctx, userID)
		}
		return a.Apple.DEP.AssignUser(ctx, serial, userID)
	}()
	outcome, detail := "ok", map[string]any{"user": r.FormValue("user")}
	if err != nil {
		outcome, detail["error"] = "failed", admCode(err)
	}
	a.record(r, action, "apple_dep_device", serial, outcome, detail)
	a.settingsAgain(w, r, err, "Assignment saved.")
}
