package core

import (
	"context"

	"github.com/custos-uem/custos/httpx"
)

// registerWindowsMDM puts OMA-DM management sessions on rt.
func (m *Main) registerWindowsMDM(ctx context.Context, rt *httpx.Router) error {
	return nil
}
