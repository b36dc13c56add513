package core

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/custos-uem/custos/auth"
	"github.com/custos-uem/custos/directory"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/mail"
	"github.com/custos-uem/custos/user"
	"github.com/custos-uem/custos/websession"
)

// DirectoryConfig is the company directory the Core synchronises users
// and groups from, and that Self-Service sign-ins bind against.
type DirectoryConfig struct {
	directory.Config
	// SyncInterval is how often the directory is synchronised (once
	// across all Cores sharing the database); zero takes the directory
	// package's default (1 h), negative only on demand.
	SyncInterval time.Duration
}

func (c DirectoryConfig) enabled() bool { return c.URL != "" }

// startDirectory builds the directory client and its syncer; the sync
// job is added to the scheduler by startServices.
func (m *Main) startDirectory() error {
	cfg := &m.Config
	cl, err := directory.New(cfg.Directory.Config)
	if err != nil {
		return fmt.Errorf("company directory: %w", err)
	}
	m.Directory = &directory.Syncer{Dir: cl, Users: m.Users, Interval: cfg.Directory.SyncInterval, Now: cfg.Now, Log: cfg.Logger}
	return nil
}

// directoryJob is the scheduler's sync of the directory.
func (m *Main) directoryJob(ctx context.Context) (int, error) {
	rep, err := m.Directory.Sync(ctx)
	return rep.Created + rep.Updated + rep.Missing, err
}

// directoryVerifier lets Self-Service users who come from the directory
// sign in with their directory password: the bind is the check. Local
// users and administrators use their local password (ErrUseLocal).
type directoryVerifier struct {
	dir    *directory.Client
	users  user.Store
	admins auth.AdminStore
}

func (v directoryVerifier) Verify(ctx context.Context, realm websession.Realm, principalID, password string) error {
	var login, externalID string
	switch realm {
	case websession.RealmUser:
		u, err := v.users.User(ctx, principalID)
		if err != nil || u.Source != user.SourceDirectory || u.ExternalID == "" {
			return websession.ErrUseLocal
		}
		login, externalID = u.Username, u.ExternalID
		if login == "" {
			login = u.Email
		}
	case websession.RealmAdmin:
		a, err := v.admins.Admin(ctx, principalID)
		if err != nil || a.ExternalID == "" {
			return websession.ErrUseLocal
		}
		login, externalID = a.Username, a.ExternalID
	default:
		return websession.ErrUseLocal
	}
	e, err := v.dir.Authenticate(ctx, login, password)
	switch {
	case errs.KindOf(err) == errs.Unauthenticated:
		return websession.ErrBadCredentials
	case err != nil:
		return err // the directory is down: said as such, not counted
	case e.ID != externalID:
		// The login now names another directory entry than the one this
		// user was synchronised from.
		return websession.ErrBadCredentials
	}
	return nil
}

// directoryAdmin signs in an administrator from the directory: the bind
// proves the password, and the groups the entry is in, directly or
// through nested groups, name the role bindings (auth.DirectoryAdmin).
func (m *Main) directoryAdmin(ctx context.Context, login, password string) (*auth.Admin, error) {
	dir := m.Directory.Dir
	e, err := dir.Authenticate(ctx, login, password)
	if err != nil {
		return nil, err
	}
	gs, err := dir.Groups(ctx)
	if err != nil {
		return nil, err
	}
	// The groups holding the entry, then the groups holding those, until
	// nothing is added: a binding on a parent group covers its subgroups'
	// members.
	in := map[string]bool{strings.ToLower(e.DN): true}
	var names []string
	for added := true; added; {
		added = false
		for _, g := range gs {
			dn := strings.ToLower(g.DN)
			if in[dn] {
				continue
			}
			for _, mem := range g.Members {
				if in[strings.ToLower(mem)] {
					in[dn], added = true, true
					names = append(names, g.DN, g.ID)
					break
				}
			}
		}
	}
	return m.Auth.DirectoryAdmin(ctx, e.ID, e.Login, e.DisplayName, names)
}

// MailConfig is the SMTP server activation emails leave through, and
// where their editable templates are.
type MailConfig struct {
	mail.Config
	// TemplateDir holds activation_subject.tmpl, activation_text.tmpl and
	// activation_html.tmpl replacing the built-in ones (each optional);
	// empty means <data>/templates.
	TemplateDir string
	// Organisation is named in the email.
	Organisation string
	// DiscoveryURL is the relay URL devices ask for their server, shown
	// in the email and its QR code (default: the embedded relay's).
	DiscoveryURL string
}

func (c MailConfig) enabled() bool { return c.Host != "" }

// Template files of MailConfig.TemplateDir.
const (
	TemplateSubject = "activation_subject.tmpl"
	TemplateText    = "activation_text.tmpl"
	TemplateHTML    = "activation_html.tmpl"
)

// startMail builds the SMTP sender and parses the templates: a template
// that does not parse stops the Core at start, not at the first email.
func (m *Main) startMail() error {
	cfg := &m.Config
	t := mail.DefaultTemplates()
	dir := cfg.Mail.TemplateDir
	if dir == "" {
		dir = filepath.Join(cfg.DataDir, "templates")
	}
	for _, f := range []struct {
		name string
		dst  *string
	}{{TemplateSubject, &t.Subject}, {TemplateText, &t.Text}, {TemplateHTML, &t.HTML}} {
		b, err := os.ReadFile(filepath.Join(dir, f.name))
		switch {
		case err == nil:
			*f.dst = string(b)
		case !errors.Is(err, os.ErrNotExist):
			return fmt.Errorf("activation email template: %w", err)
		}
	}
	r, err := mail.ParseTemplates(t)
	if err != nil {
		return fmt.Errorf("activation email template: %w", err)
	}
	m.mailRenderer = r
	if cfg.Mail.enabled() {
		if m.mailSender, err = mail.NewSender(cfg.Mail.Config); err != nil {
			return fmt.Errorf("SMTP: %w", err)
		}
	}
	return nil
}

// activation is what the email and the QR code say: the user, the
// password and how a device finds the server.
func (m *Main) activation(u *user.User, password string, expires time.Time) mail.Activation {
	return mail.Activation{To: u.Email, UserName: u.DisplayName, Password: password, ServerID: m.ServerID,
		Relay: m.Config.Mail.DiscoveryURL, ServerURL: m.Config.PublicURL, ExpiresAt: expires, Organisation: m.Config.Mail.Organisation}
}

// sendActivationEmail emails the user their activation password; nil
// when the Core has no SMTP server.
func (m *Main) sendActivationEmailFunc() func(ctx context.Context, u *user.User, password string, expires time.Time) error {
	if m.mailSender == nil {
		return nil
	}
	return func(ctx context.Context, u *user.User, password string, expires time.Time) error {
		msg, err := m.mailRenderer.Activation(m.activation(u, password, expires))
		if err != nil {
			return err
		}
		return m.mailSender.Send(ctx, msg)
	}
}

// activationQR is the PNG QR code Self-Service shows with a new
// password.
func (m *Main) activationQR(ctx context.Context, u *user.User, password string) ([]byte, error) {
	payload, err := mail.QRPayload(m.activation(u, password, time.Time{}))
	if err != nil {
		return nil, err
	}
	return mail.QRPNG(payload)
}
