package core

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/custos-uem/custos/audit"
	"github.com/custos-uem/custos/auth"
	"github.com/custos-uem/custos/console"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/httpx"
	"github.com/custos-uem/custos/pki"
	"github.com/custos-uem/custos/user"
	"github.com/custos-uem/custos/websession"
)

// AdminPasswordFile holds the first administrator's console password,
// written at the first start (0600), like the API token.
const AdminPasswordFile = "admin-password"

// newSessions builds the web sign-in layer; its refusals are answered by
// the console (set before anything is served).
func (m *Main) newSessions(v websession.Verifier) (err error) {
	m.Sessions, err = websession.New(websession.Config{Store: m.DB, InstallationSecret: m.secretKey, Now: m.Config.Now, Verifier: v,
		OnError: func(w http.ResponseWriter, r *http.Request, err error) { m.console.SessionError(w, r, err) }})
	return err
}

// mountConsole builds the console and the
// Self-Service portal on rt (their own session checks inside: the routes
// are public to the API's bearer authentication).
func (m *Main) mountConsole(ctx context.Context, rt *httpx.Router, authSvc *auth.Service, users *user.Service, auditLog *audit.Logger) error {
	cfg := &m.Config
	c := &console.Console{Auth: authSvc, Users: users, UserStore: m.DB, Activation: m.Activation, Devices: m.Devices,
		DeviceStore: m.DB, Commands: m.Commands, Compliance: m.DB, Audit: auditLog, Reports: m.DB,
		Policies: m.Policies, Settings: m.settings,
		SendActivationEmail: m.sendActivationEmailFunc(), ActivationQR: m.activationQR, Logger: cfg.Logger, Now: cfg.Now}
	if m.Directory != nil {
		c.Directory = m.Directory
		c.DirectoryAdmin = m.directoryAdmin
	}
	c.Sessions = m.Sessions
	m.console = c
	h, err := c.Handler()
	if err != nil {
		return err
	}
	rt.Public(console.ConsolePath+"/", h)
	rt.Public(console.PortalPath+"/", h)
	if err := m.bootstrapConsolePassword(ctx, authSvc); err != nil {
		return fmt.Errorf("console password: %w", err)
	}
	return nil
}

// bootstrapConsolePassword gives the first administrator a console
// password at the first start and writes it to AdminPasswordFile, so the
// URL printed by `custos serve` can be signed in to at once.
func (m *Main) bootstrapConsolePassword(ctx context.Context, authSvc *auth.Service) error {
	admins, err := authSvc.ListAdmins(ctx)
	if err != nil || len(admins) == 0 {
		return err
	}
	first := admins[0]
	path := filepath.Join(m.Config.DataDir, AdminPasswordFile)
	_, err = m.DB.WebCredential(ctx, websession.RealmAdmin, first.ID)
	switch {
	case err == nil:
		if _, err := os.Stat(path); err == nil {
			m.banner = append(m.banner, fmt.Sprintf("Console: %s%s/ (administrator %q; password in %s)", m.URL(), console.ConsolePath, first.Username, path))
		} else {
			m.banner = append(m.banner, fmt.Sprintf("Console: %s%s/", m.URL(), console.ConsolePath))
		}
		return nil
	case !errors.Is(err, errs.ErrNotFound):
		return err
	}
	pw := strings.ToLower(rand.Text()[:20])
	if err := m.Sessions.SetPassword(ctx, websession.RealmAdmin, first.ID, pw); err != nil {
		return err
	}
	if err := pki.WriteFileAtomic(path, []byte(pw+"\n"), 0o600); err != nil {
		return err
	}
	m.banner = append(m.banner, fmt.Sprintf("Console: %s%s/ (administrator %q; password in %s, readable only by you)", m.URL(), console.ConsolePath, first.Username, path))
	return nil
}

// settings is what the console's settings page shows: never a secret.
func (m *Main) settings(ctx context.Context) console.Settings {
	cfg := &m.Config
	s := console.Settings{SMTPHost: cfg.Mail.Host, SMTPFrom: cfg.Mail.From, DirectoryURL: cfg.Directory.URL, ServerID: m.ServerID,
		Relays: cfg.Relay.Addresses}
	s.PushProviders = m.pushProviders
	if m.Relay != nil {
		s.PushViaRelay = len(s.PushProviders) < 3
		s.RelayLinks = m.Relay.Linked()
		var err error
		if s.License, err = m.Relay.License(); err != nil {
			_, s.LicenseError, _ = errs.Public(err)
		}
	}
	s.ActiveDevices, _ = m.DB.CountLicensed(ctx)
	return s
}
