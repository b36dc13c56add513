package core

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/custos-uem/custos/activation"
	"github.com/custos-uem/custos/httpx"
	"github.com/custos-uem/custos/platform/apple"
	"github.com/custos-uem/custos/platform/apple/enroll"
	"github.com/custos-uem/custos/push"
	"github.com/custos-uem/custos/user"
)

// DevelopmentTopic is the MDM push topic written into enrollment profiles
// while no MDM push certificate is uploaded: devices enroll, and are
// reached by polling until an administrator uploads the certificate (and
// they enroll again under its topic).
const DevelopmentTopic = "com.apple.mgmt.External.custos-development"

// registerAppleEnroll puts the enrollment profile and SCEP on rt: the RA
// of SCEP is loaded or created in the data directory, profiles are signed
// with the Core's TLS certificate, and Self-Service gets "Enroll this Mac".
func (m *Main) registerAppleEnroll(ctx context.Context, rt *httpx.Router) error {
	cfg := &m.Config
	ra, err := enroll.LoadOrCreateRA(cfg.DataDir, m.CA, cfg.Now())
	if err != nil {
		return fmt.Errorf("SCEP RA: %w", err)
	}
	signer, err := m.profileSigner()
	if err != nil {
		return err
	}
	base := strings.TrimSuffix(cfg.PublicURL, "/")
	org := "Custos"
	if o := m.CA.Cert.Subject.Organization; len(o) > 0 && o[0] != "" {
		org = o[0]
	}
	m.AppleEnroll = &enroll.Service{
		Store: m.DB, Devices: m.DB, CA: m.CA, RA: ra, Signer: signer,
		Config: enroll.Config{
			SCEPURL: base + enroll.PathSCEP, ServerURL: base + apple.PathServer, CheckInURL: base + apple.PathCheckin,
			// One identifier per installation: installing a newer profile
			// of the same Core replaces the older one on the device.
			Identifier:   "org.custos-uem.enroll." + m.CA.Fingerprint()[:16],
			Organization: org,
		},
		Topic: m.appleTopic, OnIssued: m.CA.InvalidateCRL,
		CertValidity: m.Activation.CertValidity, Now: cfg.Now, Logger: cfg.Logger,
	}
	rate := cfg.ActivationRate
	if rate == 0 {
		rate = 10
	}
	var lim *httpx.IPLimiter
	if rate > 0 {
		lim = httpx.NewIPLimiter(rate, int(4*rate))
	}
	scep := m.AppleEnroll.SCEPHandler(lim)
	rt.Public("GET "+enroll.PathSCEP, scep)
	rt.Public("POST "+enroll.PathSCEP, scep)
	rt.Device("POST "+enroll.PathProfile, m.AppleEnroll.ProfileHandler())
	if m.console != nil {
		m.console.EnrollMac = m.enrollMac
	}
	return nil
}

// profileSigner is the Core's TLS certificate, chain and key: the
// identity a device sees when it connects, so the profile's signer and the
// server it enrolls with are one.
func (m *Main) profileSigner() (*enroll.Signer, error) {
	pair, err := m.serverCert()
	if err != nil {
		return nil, err
	}
	var chain []*x509.Certificate
	for _, der := range pair.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("profile signer: %w", err)
		}
		chain = append(chain, c)
	}
	key, ok := pair.PrivateKey.(crypto.Signer)
	if !ok || len(chain) == 0 {
		return nil, errors.New("profile signer: the TLS key cannot sign")
	}
	if len(chain) == 1 && chain[0].CheckSignatureFrom(m.CA.Cert) == nil {
		chain = append(chain, m.CA.Cert) // the full chain, root included
	}
	return &enroll.Signer{Cert: chain[0], Chain: chain[1:], Key: key}, nil
}

var devTopicOnce sync.Once

// appleTopic is the MDM push topic of new profiles: the UID of the
// uploaded MDM push certificate (m.ApplePush), or DevelopmentTopic while
// none is uploaded.
func (m *Main) appleTopic(ctx context.Context) (string, error) {
	if m.ApplePush != nil {
		topic, err := m.ApplePush.Topic(ctx)
		if err == nil {
			return topic, nil
		}
		if !errors.Is(err, push.ErrNotConfigured) {
			return "", err
		}
	}
	devTopicOnce.Do(func() {
		m.Config.Logger.Warn("no MDM push certificate uploaded: enrollment profiles carry the development topic " + DevelopmentTopic)
	})
	return DevelopmentTopic, nil
}

// enrollMac is Self-Service's "Enroll this Mac" (seed, "Activating a
// macOS device", steps 2-4): a device instance for the signed-in user, then
// its signed profile.
func (m *Main) enrollMac(ctx context.Context, u *user.User) ([]byte, error) {
	d, err := m.Activation.ActivateUser(ctx, activation.UserActivation{UserID: u.ID, Platform: activation.MacOS, Name: "Mac"})
	if err != nil {
		return nil, err
	}
	p, err := m.AppleEnroll.Profile(ctx, d)
	if err != nil {
		return nil, err
	}
	return p.Signed, nil
}
