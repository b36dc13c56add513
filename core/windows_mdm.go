package core

import (
	"context"
	"strings"

	"github.com/custos-uem/custos/httpx"
	"github.com/custos-uem/custos/platform/windows"
)

// registerWindowsMDM puts OMA-DM management sessions on rt: the DM client
// posts SyncML to the management URL with its enrolled certificate; a
// queued command or configuration change wakes it through WNS (the
// notifier sends to the channel URI the session stored) or waits for its
// scheduled poll (the DMClient schedule enrollment wrote).
func (m *Main) registerWindowsMDM(ctx context.Context, rt *httpx.Router) error {
	h := &windows.Handler{
		Devices:   m.Devices,
		Commands:  m.Commands,
		Config:    m.Policies,
		Sessions:  m.DB,
		Pushes:    m.DB,
		OnReport:  m.checkCompliance,
		PFN:       m.Config.WindowsEnroll.WNSPackageFamilyName,
		ServerURL: strings.TrimSuffix(m.Config.PublicURL, "/") + windows.PathManagement,
		Now:       m.Config.Now,
	}
	h.Register(rt)
	return nil
}

// sweepWindowsSessions deletes OMA-DM sessions a device left unfinished.
func (m *Main) sweepWindowsSessions(ctx context.Context) (int, error) {
	return m.DB.SweepWindowsSessions(ctx, m.Config.Now().Add(-windows.SessionTTL))
}
