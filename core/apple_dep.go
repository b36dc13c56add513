package core

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/custos-uem/custos/activation"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/httpx"
	"github.com/custos-uem/custos/platform/apple/dep"
)

// AppleConfig configures the Apple pieces that need settings from flags:
// automated enrollment (ADE) and the MDM push certificate's APNs client.
type AppleConfig struct {
	// DEPURL is Apple's ADE API; "" means dep.DefaultBaseURL.
	DEPURL string
	// DeviceCAFile is a PEM file of the roots that sign Apple devices'
	// identities (Apple's "Apple Root CA"): the MachineInfo of an ADE
	// enrollment must verify against them. Empty refuses ADE enrollments
	// (503 ade_roots_not_configured).
	DeviceCAFile string
	// DEPSyncInterval is how often the ADE device list is synced; zero
	// takes dep.DefaultSyncInterval, negative disables the job (the API's
	// sync still works).
	DEPSyncInterval time.Duration
	// APNsRootCAs, when set, replaces the system roots of the MDM push
	// certificate's APNs client (tests point it at a fake APNs).
	APNsRootCAs *x509.CertPool
}

// newAppleDEP builds the automated enrollment service (before the API and
// the scheduler need it).
func (m *Main) newAppleDEP() error {
	cfg := &m.Config
	m.AppleDEP = &dep.Service{Store: m.DB, Box: m.box, BaseURL: cfg.Apple.DEPURL, PublicURL: cfg.PublicURL,
		Now: cfg.Now, Log: cfg.Logger, Users: func(ctx context.Context, id string) error {
			if _, err := m.DB.User(ctx, id); err != nil {
				if errors.Is(err, errs.ErrNotFound) {
					return errs.Wrap(errs.NotFound, "user_not_found", "no such user", err)
				}
				return err
			}
			return nil
		}}
	if cfg.Apple.DeviceCAFile != "" {
		b, err := os.ReadFile(cfg.Apple.DeviceCAFile)
		if err != nil {
			return fmt.Errorf("Apple device CA roots: %w", err)
		}
		roots, err := dep.ParseRoots(b)
		if err != nil {
			return fmt.Errorf("Apple device CA roots in %s: %w", cfg.Apple.DeviceCAFile, err)
		}
		m.appleDeviceRoots = roots
	}
	return nil
}

// depJobs is the scheduled ADE sync: one Core per interval syncs.
func (m *Main) depJobs() []job {
	every := interval(m.Config.Apple.DEPSyncInterval, dep.DefaultSyncInterval)
	return []job{{name: "apple-dep-sync", every: every, run: func(ctx context.Context) (int, error) {
		rep, err := m.AppleDEP.Sync(ctx)
		if errors.Is(err, dep.ErrNoToken) {
			return 0, nil // not configured: nothing to do
		}
		if err != nil {
			return 0, err
		}
		return rep.Fetched, nil
	}}}
}

// registerAppleDEP puts the ADE enrollment endpoint on rt (public: the
// device has no identity yet; its MachineInfo signature is checked first
// thing) and warns at start about a server token or push certificate that
// expires soon.
func (m *Main) registerAppleDEP(ctx context.Context, rt *httpx.Router) error {
	m.AppleDEP.Enroll = depEnroller{m}
	rate := m.Config.ActivationRate
	if rate == 0 {
		rate = 10
	}
	var h http.Handler = m.AppleDEP.Handler(func() *dep.Roots { return m.appleDeviceRoots })
	if rate > 0 {
		h = httpx.NewIPLimiter(rate, int(4*rate)).Middleware(h)
	}
	rt.Public("POST "+dep.PathEnroll, h)
	if m.appleDeviceRoots == nil {
		m.Config.Logger.Info("automated enrollment (ADE) refuses devices until Apple's device CA roots are configured (serve --apple-device-ca)")
	}
	m.ApplePush.CheckExpiry(ctx)
	m.AppleDEP.CheckExpiry(ctx)
	return nil
}

// depEnroller creates the device of an ADE enrollment for its user and
// answers the Apple enrollment profile (contract: activation.ActivateUser,
// enroll.Service.Profile).
type depEnroller struct{ m *Main }

func (e depEnroller) Activate(ctx context.Context, in dep.Enrollee) (*device.Device, error) {
	name := in.Serial
	if in.Model != "" {
		name = in.Model + " " + in.Serial
	}
	return e.m.Activation.ActivateUser(ctx, activation.UserActivation{UserID: in.UserID, Platform: activation.Platform(in.Platform),
		HardwareID: in.UDID, Model: in.Model, Name: name, OSVersion: in.OSVersion})
}

func (e depEnroller) Profile(ctx context.Context, d *device.Device) ([]byte, error) {
	if e.m.AppleEnroll == nil {
		return nil, errs.E(errs.Unavailable, "apple_enrollment_unavailable", "Apple enrollment is not available on this Core")
	}
	p, err := e.m.AppleEnroll.Profile(ctx, d)
	if err != nil {
		return nil, err
	}
	return p.Signed, nil
}
