// Package console is the seed's "Management console and Self-Service": the
// web pages administrators use to manage users and devices, and the
// portal where users activate and command their own devices.
//
// Pages are rendered on the server from templates embedded in the binary
// (nothing to build before `go run`); there is no script at all, so the
// Content-Security-Policy allows none inline. The console is a thin
// translator over the same services as the REST API: a lock sent here is
// the lock the API sends, audited the same way.
//
// Promises:
//   - Deny by default: every path under /console/ and /portal/ but the
//     sign-in page and the static files needs a session of its realm
//     (websession), and every page checks the administrator's permission
//     next to the data it touches; an administrator limited to some groups
//     sees and acts on their devices only, and another user's device is
//     404 in the portal.
//   - Every state change is a POST carrying the session's CSRF token.
//   - Everything a device reports (name, model, apps) is escaped by
//     html/template; nothing from a request is rendered unescaped.
//   - Every administrator action is written to the audit log.
package console

import (
	"context"
	"embed"
	"encoding/csv"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/custos-uem/custos/activation"
	"github.com/custos-uem/custos/audit"
	"github.com/custos-uem/custos/auth"
	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/compliance"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/directory"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/httpx"
	"github.com/custos-uem/custos/license"
	"github.com/custos-uem/custos/policy"
	"github.com/custos-uem/custos/report"
	"github.com/custos-uem/custos/user"
	"github.com/custos-uem/custos/websession"
)

// Paths of the two web surfaces.
const (
	ConsolePath = "/console"
	PortalPath  = "/portal"
	// MaxForm bounds a form body.
	MaxForm = 64 << 10
	// DashboardDays is the activity window of the dashboard.
	DashboardDays = 14
	// DirectorySignInRate bounds administrators' directory sign-ins per
	// client address per second (burst 5).
	DirectorySignInRate = 1
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// DirectorySyncer is the company directory's sync (directory.Syncer).
type DirectorySyncer interface {
	Sync(ctx context.Context) (directory.Report, error)
	Last() (directory.Report, bool)
}

// Settings is what the settings page shows of the installation: which
// push providers, SMTP server, directory, licence and relays it has.
// Secrets are never part of it.
type Settings struct {
	PushProviders []string // configured on this Core ("apns", …)
	PushViaRelay  bool
	SMTPHost      string
	SMTPFrom      string
	DirectoryURL  string
	ServerID      string
	Relays        []string
	RelayLinks    int
	License       *license.License
	LicenseError  string
	ActiveDevices int
}

// Console serves the management console and the Self-Service portal.
type Console struct {
	Sessions    *websession.Service
	Auth        *auth.Service
	Users       *user.Service
	UserStore   user.Store
	Activation  *activation.Service
	Devices     *device.Service
	DeviceStore device.Store
	Commands    *command.Service
	Compliance  compliance.Store
	Policies    *policy.Service
	// Directory is the company directory's sync; nil without one.
	Directory DirectorySyncer
	// Settings reports the installation's settings for the settings page.
	Settings func(ctx context.Context) Settings
	// Apple is the MDM push certificate and automated enrollment on the
	// settings page (console/apple.go); nil hides them.
	Apple   *Apple
	Audit   *audit.Logger
	Reports report.Store
	// SendActivationEmail, when set, emails the user their new password
	// (and its QR code); nil hides the option.
	SendActivationEmail func(ctx context.Context, u *user.User, password string, expires time.Time) error
	// ActivationQR returns the PNG QR code of a user's activation route
	// and password for the portal; nil shows none.
	ActivationQR func(ctx context.Context, u *user.User, password string) ([]byte, error)
	// EnrollMac creates a macOS device for the signed-in user and returns
	// its signed enrollment profile (Self-Service "Enroll this Mac"); nil
	// hides the option.
	EnrollMac func(ctx context.Context, u *user.User) ([]byte, error)
	// DirectoryAdmin signs in an administrator from the company directory:
	// it checks the password by bind and returns the administrator whose
	// role the account's directory groups are bound to; nil without a
	// directory.
	DirectoryAdmin func(ctx context.Context, login, password string) (*auth.Admin, error)
	Logger         *slog.Logger
	Now            func() time.Time

	pages      map[string]*template.Template
	dirLimiter *httpx.IPLimiter
}

// Handler returns the handler of both surfaces, to be mounted at / (it
// serves only paths under ConsolePath and PortalPath).
func (c *Console) Handler() (http.Handler, error) {
	if err := c.parse(); err != nil {
		return nil, err
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	// Directory sign-ins bind before the session's lockout sees them:
	// their own rate per client address.
	c.dirLimiter = httpx.NewIPLimiter(DirectorySignInRate, 5)
	static, _ := fs.Sub(staticFS, "static")
	files := http.FileServerFS(static)

	admin := http.NewServeMux()
	admin.HandleFunc("GET "+ConsolePath+"/{$}", c.dashboard)
	admin.HandleFunc("GET "+ConsolePath+"/users", c.users)
	admin.HandleFunc("POST "+ConsolePath+"/users", c.addUser)
	admin.HandleFunc("GET "+ConsolePath+"/users/{id}", c.userPage)
	admin.HandleFunc("POST "+ConsolePath+"/users/{id}/password", c.userPassword)
	admin.HandleFunc("POST "+ConsolePath+"/users/{id}/portal-password", c.userPortalPassword)
	admin.HandleFunc("POST "+ConsolePath+"/users/{id}/profile", c.userProfile)
	admin.HandleFunc("GET "+ConsolePath+"/devices", c.devices)
	admin.HandleFunc("GET "+ConsolePath+"/devices/{id}", c.devicePage)
	admin.HandleFunc("POST "+ConsolePath+"/devices/{id}/commands", c.sendCommand)
	admin.HandleFunc("POST "+ConsolePath+"/devices/{id}/remove", c.removeDevice)
	admin.HandleFunc("POST "+ConsolePath+"/devices/{id}/commands/{cmd}/cancel", c.cancelCommand)
	admin.HandleFunc("POST "+ConsolePath+"/users/{id}/passwords/revoke", c.revokePasswords)
	admin.HandleFunc("GET "+ConsolePath+"/audit", c.auditPage)
	admin.HandleFunc("GET "+ConsolePath+"/audit.csv", c.auditCSV)
	admin.HandleFunc("POST "+ConsolePath+"/logout", c.logout(websession.RealmAdmin, ConsolePath))
	c.registerObjects(admin)
	c.registerAdministration(admin)
	admin.Handle("/", http.HandlerFunc(c.notFound))

	portal := http.NewServeMux()
	portal.HandleFunc("GET "+PortalPath+"/{$}", c.portal)
	portal.HandleFunc("POST "+PortalPath+"/password", c.portalPassword)
	portal.HandleFunc("POST "+PortalPath+"/enroll-mac", c.portalEnrollMac)
	portal.HandleFunc("POST "+PortalPath+"/devices/{id}/commands", c.portalCommand)
	portal.HandleFunc("POST "+PortalPath+"/logout", c.logout(websession.RealmUser, PortalPath))
	portal.Handle("/", http.HandlerFunc(c.notFound))

	adminH := c.Sessions.Middleware(websession.RealmAdmin)(c.Sessions.CSRFMiddleware(c.requireAdmin(admin)))
	portalH := c.Sessions.Middleware(websession.RealmUser)(c.Sessions.CSRFMiddleware(c.requireUser(portal)))
	adminLogin := c.Sessions.CSRFMiddleware(http.HandlerFunc(c.adminLogin))
	portalLogin := c.Sessions.CSRFMiddleware(http.HandlerFunc(c.portalLogin))

	return websession.SecurityHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !httpx.Canonical(r) {
			c.notFound(w, r)
			return
		}
		p := r.URL.Path
		switch {
		case strings.HasPrefix(p, ConsolePath+"/static/"):
			http.StripPrefix(ConsolePath+"/static", files).ServeHTTP(w, r)
		case strings.HasPrefix(p, PortalPath+"/static/"):
			http.StripPrefix(PortalPath+"/static", files).ServeHTTP(w, r)
		case p == ConsolePath+"/login":
			adminLogin.ServeHTTP(w, r)
		case p == PortalPath+"/login":
			portalLogin.ServeHTTP(w, r)
		case p == ConsolePath || strings.HasPrefix(p, ConsolePath+"/"):
			adminH.ServeHTTP(w, r)
		case p == PortalPath || strings.HasPrefix(p, PortalPath+"/"):
			portalH.ServeHTTP(w, r)
		default:
			c.notFound(w, r)
		}
	})), nil
}

// parse loads each page with the layout.
func (c *Console) parse() error {
	funcs := template.FuncMap{
		"time": func(t time.Time) string {
			if t.IsZero() {
				return "—"
			}
			return t.UTC().Format("2006-01-02 15:04 MST")
		},
		"timep": func(t *time.Time) string {
			if t == nil || t.IsZero() {
				return "never"
			}
			return t.UTC().Format("2006-01-02 15:04 MST")
		},
		"day": func(t time.Time) string { return t.UTC().Format("Mon 2 Jan") },
	}
	c.pages = map[string]*template.Template{}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return err
	}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return fmt.Errorf("console: template %s: %w", name, err)
		}
		c.pages[name] = t
	}
	return nil
}

// page is what every template gets.
type page struct {
	Title     string
	Base      string
	Portal    bool
	Signed    bool
	Who       string
	CSRF      string
	Nav       []navItem
	Flash     string
	FlashKind string
	Can       can
	Data      any
}

type navItem struct {
	Href, Label string
	Current     bool
}

// can is what the templates ask of the administrator's permissions.
type can struct {
	UsersWrite, PasswordsWrite bool
}

// render writes the page with status.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	t := c.pages[name]
	if t == nil {
		http.Error(w, "no such page", http.StatusInternalServerError)
		return
	}
	if p.CSRF == "" {
		p.CSRF = websession.Token(r)
	}
	if flash := r.URL.Query().Get("done"); flash != "" && p.Flash == "" {
		p.Flash = doneMessages[flash]
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout", p); err != nil {
		c.Logger.Error("console: render", "page", name, "err", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write([]byte(b.String()))
}

// doneMessages are the confirmations a redirect after a POST may show
// (by key, so nothing from the URL is echoed).
var doneMessages = map[string]string{
	"user":      "User added.",
	"command":   "Command queued.",
	"removed":   "Device removed; its certificate is revoked.",
	"portal":    "Self-Service password set.",
	"profile":   "Activation profile assigned.",
	"cancelled": "Command cancelled.",
	"revoked":   "Unused activation passwords revoked.",
}

// fail renders err as a page: its public message and the status of its
// kind; the cause goes to the log.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, base string, err error) {
	code, msg, fields := errs.Public(err)
	status := httpx.Status(errs.KindOf(err))
	if status >= 500 {
		c.Logger.Error("console: request failed", "path", r.URL.Path, "code", code, "err", err)
	}
	// What is wrong with each field, as the API says it: "the command is
	// invalid" alone leaves the administrator guessing.
	if len(fields) > 0 {
		names := slices.Sorted(maps.Keys(fields))
		parts := make([]string, len(names))
		for i, name := range names {
			parts[i] = name + ": " + fields[name]
		}
		msg += " (" + strings.Join(parts, "; ") + ")"
	}
	title := http.StatusText(status)
	c.render(w, r, status, "error", page{Title: title, Base: base, Portal: base == PortalPath, Signed: true, Data: msg})
}

// SessionError answers what websession refuses (its Config.OnError): a
// browser without a session goes to the sign-in page of the surface it
// asked for; other refusals (a missing CSRF token) are an error page.
func (c *Console) SessionError(w http.ResponseWriter, r *http.Request, err error) {
	base := ConsolePath
	if strings.HasPrefix(r.URL.Path, PortalPath) {
		base = PortalPath
	}
	if errs.KindOf(err) == errs.Unauthenticated && r.Method == http.MethodGet {
		http.Redirect(w, r, base+"/login", http.StatusSeeOther)
		return
	}
	code, msg, _ := errs.Public(err)
	status := httpx.Status(errs.KindOf(err))
	c.Logger.Info("console: refused", "path", r.URL.Path, "code", code, "site", r.Header.Get("Sec-Fetch-Site"), "origin", r.Header.Get("Origin"), "host", r.Host)
	c.render(w, r, status, "error", page{Title: http.StatusText(status), Base: base, Portal: base == PortalPath, Data: msg})
}

func (c *Console) notFound(w http.ResponseWriter, r *http.Request) {
	base := ConsolePath
	if strings.HasPrefix(r.URL.Path, PortalPath) {
		base = PortalPath
	}
	c.render(w, r, http.StatusNotFound, "error", page{Title: "Not found", Base: base, Portal: base == PortalPath, Data: "There is no such page."})
}

// parseForm reads a bounded form body.
func parseForm(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, MaxForm)
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errs.E(errs.TooLarge, "form_too_large", "the form is too large")
		}
		return errs.Wrap(errs.Invalid, "form_invalid", "the form could not be read", err)
	}
	return nil
}

// writeCSV writes rows as a CSV attachment.
func writeCSV(w http.ResponseWriter, name string, rows [][]string) {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	cw := csv.NewWriter(w)
	for _, row := range rows {
		// A cell starting with = + - @ is a formula to a spreadsheet
		// (CSV injection): prefix it so it stays text.
		for i, v := range row {
			if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
				row[i] = "'" + v
			}
		}
		cw.Write(row)
	}
	cw.Flush()
}
