package core

import (
	"context"

	"github.com/custos-uem/custos/httpx"
)

// registerAppleDEP puts automated enrollment on rt.
func (m *Main) registerAppleDEP(ctx context.Context, rt *httpx.Router) error {
	return nil
}
