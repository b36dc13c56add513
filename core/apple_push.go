package core

import (
	"context"

	"github.com/custos-uem/custos/httpx"
)

// registerApplePush puts the MDM push certificate settings on rt.
func (m *Main) registerApplePush(ctx context.Context, rt *httpx.Router) error {
	return nil
}
