package core

import (
	"context"
	"strings"
	"time"

	"github.com/custos-uem/custos/httpx"
	"github.com/custos-uem/custos/platform/windows/mde"
)

// WindowsEnrollConfig configures Windows enrollment (MS-MDE2).
type WindowsEnrollConfig struct {
	// AuthPolicy is how devices authenticate: "OnPremise" (default: the
	// email and activation password in the enrollment messages) or
	// "Federated" (our sign-in page issues a token).
	AuthPolicy string
	// WNSPackageFamilyName, when set, is provisioned as the device's push
	// package (DMClient/Provider/Custos/Push/PFN).
	WNSPackageFamilyName string
	// PollInterval is how often an enrolled device polls (default 8 h;
	// pushes wake it sooner).
	PollInterval time.Duration
}

// The management side's constants (platform/windows, contract.md):
// written into the provisioning document.
const (
	windowsProviderID     = "Custos"
	windowsPathManagement = "/device/windows/mdm"
)

// registerWindowsEnroll puts discovery, enrollment policy and enrollment (MS-MDE2) on rt.
func (m *Main) registerWindowsEnroll(ctx context.Context, rt *httpx.Router) error {
	wc := m.Config.WindowsEnroll
	base := strings.TrimSuffix(m.Config.PublicURL, "/")
	cfg := mde.Config{PublicURL: base, AuthPolicy: wc.AuthPolicy, ProviderID: windowsProviderID,
		ManagementURL: base + windowsPathManagement, PollInterval: wc.PollInterval,
		WNSPackageFamilyName: wc.WNSPackageFamilyName}
	if err := cfg.Validate(); err != nil {
		return err
	}
	h := &mde.Handler{Config: cfg, Activation: m.Activation, CA: m.CA.Cert,
		CertValidity: m.Activation.CertValidity, Now: m.Config.Now}
	if cfg.AuthPolicy == mde.AuthFederated {
		h.Federated = &mde.Federated{Store: m.DB, Box: m.box, Activation: m.Activation, Now: m.Config.Now}
	}
	// Rate-limited like the agent's activation: these routes are public
	// and check passwords.
	rate := m.Config.ActivationRate
	if rate == 0 {
		rate = 10
	}
	if rate > 0 {
		h.Limiter = httpx.NewIPLimiter(rate, int(4*rate))
	}
	h.Register(rt)
	return nil
}
