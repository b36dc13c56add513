package core

import (
	"context"
	"fmt"

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
	auditLog := &audit.Logger{Store: m.DB, Now: cfg.Now}
	authSvc := &auth.Service{Admins: m.DB, Tokens: m.DB, Audit: auditLog, Now: cfg.Now}
	created, tokenPath, err := authSvc.Bootstrap(ctx, cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("bootstrap administrator: %w", err)
	}
	if created {
		fmt.Fprintf(cfg.Stdout, "  Created administrator \"admin\"; its API token is in %s (readable only by you)\n", tokenPath)
	} else {
		fmt.Fprintf(cfg.Stdout, "  Admin API token: %s\n", tokenPath)
	}
	rt := httpx.NewRouter(device.CertAuth(m.DB, httpx.WriteError), authSvc.Middleware(httpx.WriteError))
	users := &user.Service{Store: m.DB, Devices: api.UserDeviceRemover(m.Devices), Now: cfg.Now}
	api.New(api.Deps{Users: users, Activation: m.Activation, Devices: m.Devices, Auth: authSvc, Audit: auditLog}).Register(rt)
	return rt, nil
}
