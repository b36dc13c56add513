package core

import (
	"context"

	"github.com/custos-uem/custos/httpx"
)

// registerWindows puts the Windows enrollment (MS-MDE2) and management
// (OMA-DM) protocols on rt.
func (m *Main) registerWindows(ctx context.Context, rt *httpx.Router) error {
	return nil
}
