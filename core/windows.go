package core

import (
	"context"

	"github.com/custos-uem/custos/httpx"
)

// registerWindows puts the Windows enrollment (MS-MDE2, core/windows_enroll.go)
// and management (OMA-DM, core/windows_mdm.go) protocols on rt.
func (m *Main) registerWindows(ctx context.Context, rt *httpx.Router) error {
	if err := m.registerWindowsEnroll(ctx, rt); err != nil {
		return err
	}
	return m.registerWindowsMDM(ctx, rt)
}
