package core

import (
	"context"

	"github.com/custos-uem/custos/httpx"
)

// registerApple puts Apple's MDM protocol (enrollment profile, SCEP,
// check-in and commands) on rt.
func (m *Main) registerApple(ctx context.Context, rt *httpx.Router) error {
	return nil
}
