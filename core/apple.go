package core

import (
	"context"

	"github.com/custos-uem/custos/httpx"
)

// registerApple puts Apple's MDM protocol on rt: the enrollment profile
// and SCEP (core/apple_enroll.go), check-in and commands
// (core/apple_mdm.go), the MDM push certificate and automated enrollment
// (core/apple_push.go, core/apple_dep.go).
func (m *Main) registerApple(ctx context.Context, rt *httpx.Router) error {
	for _, register := range []func(context.Context, *httpx.Router) error{
		m.registerAppleEnroll, m.registerAppleMDM, m.registerApplePush, m.registerAppleDEP,
	} {
		if err := register(ctx, rt); err != nil {
			return err
		}
	}
	return nil
}
