package core

import (
	"context"

	"github.com/custos-uem/custos/httpx"
)

// registerWindowsEnroll puts discovery, enrollment policy and enrollment (MS-MDE2) on rt.
func (m *Main) registerWindowsEnroll(ctx context.Context, rt *httpx.Router) error {
	return nil
}
