package core

import (
	"context"

	"github.com/custos-uem/custos/httpx"
)

// registerAppleMDM puts check-in and the command protocol on rt.
func (m *Main) registerAppleMDM(ctx context.Context, rt *httpx.Router) error {
	return nil
}
