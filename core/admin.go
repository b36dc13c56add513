package core

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/custos-uem/custos/api"
	"github.com/custos-uem/custos/audit"
	"github.com/custos-uem/custos/auth"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/httpx"
	"github.com/custos-uem/custos/pki"
)

// adminRouter bootstraps the first administrator, builds the
// deny-by-default router with device and administrator authentication, and
// registers the admin API on it.
func (m *Main) adminRouter(ctx context.Context) (*httpx.Router, error) {
	cfg := &m.Config
	auditLog := &audit.Logger{Store: m.DB, Now: cfg.Now, Failures: audit.NewFailureCounter(m.Registry)}
	authSvc := &auth.Service{Admins: m.DB, Tokens: m.DB, Scope: m.DB, Roles: m.DB, Bindings: m.DB, Audit: auditLog, Now: cfg.Now}
	m.Auth = authSvc
	created, tokenPath, err := authSvc.Bootstrap(ctx, cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("bootstrap administrator: %w", err)
	}
	if cfg.NewAdminToken && !created {
		path, err := m.newAdminToken(ctx, authSvc, auditLog)
		if err != nil {
			return nil, err
		}
		m.banner = append(m.banner, "Wrote a new API token for the first administrator to "+path)
		tokenPath = path
	}
	switch {
	case created:
		m.banner = append(m.banner, fmt.Sprintf("Created administrator \"admin\"; its API token is in %s (readable only by you)", tokenPath))
	case fileExists(tokenPath):
		m.banner = append(m.banner, "Admin API token: "+tokenPath)
	}
	rt := httpx.NewRouter(device.CertAuth(m.DB, httpx.WriteError), authSvc.Middleware(httpx.WriteError))
	users := m.Users
	deps := api.Deps{Users: users, Activation: m.Activation, Devices: m.Devices, Auth: authSvc, Audit: auditLog,
		Commands: m.Commands, Policies: m.Policies, Compliance: m.Compliance, SendActivationEmail: m.sendActivationEmailFunc()}
	if m.Directory != nil {
		deps.Directory = m.Directory
	}
	deps.ApplePush, deps.AppleDEP = m.ApplePush, m.AppleDEP
	api.New(deps).Register(rt)
	if err := m.mountConsole(ctx, rt, authSvc, users, auditLog); err != nil {
		return nil, err
	}
	return rt, nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// newAdminToken issues a new API token to the first administrator and
// writes it to the data directory: the recovery path when admin-token was
// lost, for whoever can start the Core on its data directory.
func (m *Main) newAdminToken(ctx context.Context, authSvc *auth.Service, auditLog *audit.Logger) (string, error) {
	admins, err := m.DB.ListAdmins(ctx)
	if err != nil {
		return "", err
	}
	if len(admins) == 0 {
		return "", fmt.Errorf("no administrator to issue a token to")
	}
	plain, tok, err := authSvc.CreateToken(ctx, admins[0].ID, "recovery "+m.Config.Now().UTC().Format(time.RFC3339), 0)
	if err != nil {
		return "", err
	}
	path := filepath.Join(m.Config.DataDir, auth.TokenFile)
	if err := pki.WriteFileAtomic(path, []byte(plain+"\n"), 0o600); err != nil {
		return "", err
	}
	auditLog.Record(ctx, audit.Entry{Actor: "system", Action: "token.create", ObjectType: "token", ObjectID: tok.ID, Outcome: audit.OutcomeOK,
		Detail: map[string]any{"reason": "serve --new-admin-token", "admin_id": admins[0].ID}})
	return path, nil
}
