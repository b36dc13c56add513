package core

import (
	"context"

	"github.com/custos-uem/custos/httpx"
)

// registerAppleEnroll puts the enrollment profile and SCEP on rt.
func (m *Main) registerAppleEnroll(ctx context.Context, rt *httpx.Router) error {
	return nil
}
