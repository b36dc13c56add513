package core

import (
	"context"
	"fmt"
	"os"

	"github.com/custos-uem/custos/api"
	"github.com/custos-uem/custos/audit"
	"github.com/custos-uem/custos/auth"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/httpx"
	"github.com/custos-uem/custos/user"
)

// adminRouter bootstraps the first administrator, builds the
// deny-by-default router with device and administrator authentication, and
// registers the admin API on it.
func (m *Main) adminRouter(ctx context.Context) (*httpx.Router, error) {
	cfg := &m.Config
	auditLog := &audit.Logger{Store: m.DB, Now: cfg.Now, Failures: audit.NewFailureCounter(m.Registry)}
	authSvc := &auth.Service{Admins: m.DB, Tokens: m.DB, Audit: auditLog, Now: cfg.Now}
	created, tokenPath, err := authSvc.Bootstrap(ctx, cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("bootstrap administrator: %w", err)
	}
	switch {
	case created:
		m.banner = append(m.banner, fmt.Sprintf("Created administrator \"admin\"; its API token is in %s (readable only by you)", tokenPath))
	case fileExists(tokenPath):
		m.banner = append(m.banner, "Admin API token: "+tokenPath)
	}
	rt := httpx.NewRouter(device.CertAuth(m.DB, httpx.WriteError), authSvc.Middleware(httpx.WriteError))
	users := &user.Service{Store: m.DB, Devices: m.Devices, Now: cfg.Now}
	api.New(api.Deps{Users: users, Activation: m.Activation, Devices: m.Devices, Auth: authSvc, Audit: auditLog}).Register(rt)
	return rt, nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
