package core

import (
	"context"

	"github.com/custos-uem/custos/httpx"
	"github.com/custos-uem/custos/platform/apple"
)

// registerAppleMDM puts check-in and the command protocol on rt
// (platform/apple). Both are public routes that authenticate every request
// themselves by the device's identity certificate (mutual TLS or
// Mdm-Signature): see apple.Handler.Register for why deny-by-default
// still holds. With RelayConfig.DevicesViaRelayOnly, withoutDevices
// answers them 404 like every other /device/ path.
func (m *Main) registerAppleMDM(ctx context.Context, rt *httpx.Router) error {
	cfg := &m.Config
	h := &apple.Handler{
		Identifier: &apple.Identifier{Roots: m.CA.Pool(), Store: m.DB, Now: cfg.Now},
		Store:      m.DB, Devices: m.Devices, Commands: m.Commands, Config: m.Policies, Pushes: m.DB,
		Box: m.box, OnReport: m.checkCompliance, UserChannels: cfg.AppleUserChannels,
		// Failed identifications per client address: 10/s, bursts of 40.
		FailLimiter: httpx.NewIPLimiter(10, 40),
		Now:         cfg.Now,
	}
	h.Register(rt)
	return nil
}
