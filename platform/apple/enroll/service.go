// Package enroll is the enrollment of Apple devices (iOS, iPadOS, macOS)
// in the Core's native MDM: the enrollment profile and the SCEP server
// that issues each device its identity certificate.
//
// Its promise: a profile carries a fresh one-time challenge bound to one
// device; the challenge yields at most one certificate, whose subject is
// that device's ID whatever the request says, issued by the Core's CA and
// recorded for that device in the same transaction that consumes the
// challenge (so removing the device revokes it, and a removed device's
// challenge yields nothing). Every malformed SCEP request gets a CertRep
// FAILURE or a 4xx, never a 500.
//
// Data flows: seed "Activating an iOS device" steps 11-16 (the agent asks
// for the profile, the device does SCEP) and "Activating a macOS device"
// steps 2-8 (Self-Service hands out the profile). Protocols: Apple's
// configuration profile reference and MDM payload
// (https://developer.apple.com/documentation/devicemanagement/mdm), SCEP
// (RFC 8894).
package enroll

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/custos-uem/custos/activation"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/pki"
)

// Paths of the protocol (contract between the Apple engineers).
const (
	PathSCEP    = "/device/apple/scep"
	PathProfile = "/device/apple/profile"
)

// Defaults of the Service's tunables.
const (
	// DefaultChallengeTTL is how long a profile's challenge can be
	// redeemed: long enough for a user to install a downloaded profile in
	// Settings, short enough that a leaked profile soon means nothing.
	DefaultChallengeTTL = time.Hour
)

// Errors of Profile.
var (
	ErrNotApple    = errs.E(errs.Invalid, "platform_not_apple", "enrollment profiles are for iOS, iPadOS and macOS devices only")
	ErrDeviceState = errs.E(errs.Conflict, "device_not_enrollable", "the device is removed; activate it again")
)

// Config are the profile's fixed values.
type Config struct {
	// SCEPURL, ServerURL and CheckInURL are absolute URLs of the Core.
	SCEPURL, ServerURL, CheckInURL string
	// Identifier prefixes every PayloadIdentifier; a profile installed again
	// replaces the earlier one with the same identifier.
	Identifier   string
	Organization string
}

// Service issues enrollment profiles and SCEP certificates. Set the
// exported fields, then call the methods.
type Service struct {
	Store   Store
	Devices device.Store
	CA      *pki.CA
	RA      *RA
	Signer  *Signer
	Config  Config
	// Topic returns the MDM push topic written into profiles.
	Topic func(ctx context.Context) (string, error)
	// OnIssued, optional, runs after a certificate was recorded (the CRL
	// cache is invalidated by it when a re-enrollment retired a device).
	OnIssued func()

	ChallengeTTL time.Duration
	CertValidity time.Duration
	Now          func() time.Time
	Logger       *slog.Logger
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Service) log() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// Profile is an enrollment profile.
type Profile struct {
	// Signed is CMS SignedData (DER) over Unsigned; Unsigned the XML plist.
	Signed, Unsigned   []byte
	ChallengeExpiresAt time.Time
}

// IsApple reports whether platform is enrolled through Apple's MDM.
func IsApple(platform string) bool {
	switch activation.Platform(platform) {
	case activation.IOS, activation.IPadOS, activation.MacOS:
		return true
	}
	return false
}

// HashChallenge is how challenges are stored: they are 128-bit random
// strings, so an unkeyed hash suffices.
func HashChallenge(challenge string) []byte {
	h := sha256.Sum256([]byte(challenge))
	return h[:]
}

// Profile issues a fresh one-time SCEP challenge bound to device d and
// returns its enrollment profile (signed CMS and the unsigned plist). d
// must be in state activating, enrolled or active.
func (s *Service) Profile(ctx context.Context, d *device.Device) (*Profile, error) {
	if !IsApple(d.Platform) {
		return nil, ErrNotApple
	}
	if d.State != device.StateActivating && d.State != device.StateEnrolled && d.State != device.StateActive {
		return nil, ErrDeviceState
	}
	topic, err := s.Topic(ctx)
	if err != nil {
		return nil, fmt.Errorf("enroll: push topic: %w", err)
	}
	// rand.Text: 26 base32 characters, 128 bits; printable, as PKCS#9's
	// challengePassword wants (RFC 2985 §5.4.1).
	challenge := rand.Text()
	now := s.now()
	c := &Challenge{Hash: HashChallenge(challenge), DeviceID: d.ID, CreatedAt: now,
		ExpiresAt: now.Add(orDefault(s.ChallengeTTL, DefaultChallengeTTL))}
	if err := s.Store.CreateChallenge(ctx, c); err != nil {
		return nil, fmt.Errorf("enroll: store challenge: %w", err)
	}
	plain, err := buildProfile(profileInput{
		Identifier: s.Config.Identifier, Organization: s.Config.Organization, CA: s.CA.Cert,
		SCEPURL: s.Config.SCEPURL, Challenge: challenge, DeviceID: d.ID,
		ServerURL: s.Config.ServerURL, CheckInURL: s.Config.CheckInURL, Topic: topic,
	})
	if err != nil {
		return nil, err
	}
	signed, err := s.Signer.sign(plain)
	if err != nil {
		return nil, err
	}
	return &Profile{Signed: signed, Unsigned: plain, ChallengeExpiresAt: c.ExpiresAt}, nil
}

func orDefault[T int | time.Duration](v, d T) T {
	if v <= 0 {
		return d
	}
	return v
}

// Refusals of a certificate request; each maps to a SCEP failInfo
// (RFC 8894 §3.2.1.4.5) in the handler.
var (
	errNoChallenge    = errors.New("enroll: the request has no challengePassword")
	errWrongChallenge = errors.New("enroll: unknown challenge")
)

// issue checks the CSR of a PKCSReq against its challenge and, if it
// holds, issues and records the device's certificate.
func (s *Service) issue(ctx context.Context, csr *x509.CertificateRequest, challenge string) (*x509.Certificate, error) {
	if challenge == "" {
		return nil, errNoChallenge
	}
	if len(challenge) > MaxChallenge {
		return nil, errWrongChallenge
	}
	// Looked up by its SHA-256: what the database compares is a hash of a
	// 128-bit random value, so the lookup's timing tells nothing about the
	// challenge.
	hash := HashChallenge(challenge)
	c, err := s.Store.Challenge(ctx, hash)
	if errors.Is(err, errs.ErrNotFound) {
		return nil, errWrongChallenge
	}
	if err != nil {
		return nil, fmt.Errorf("enroll: challenge: %w", err)
	}
	now := s.now()
	if c.UsedAt != nil || !now.Before(c.ExpiresAt) {
		return nil, ErrChallengeClosed
	}
	d, err := s.Devices.Device(ctx, c.DeviceID)
	if errors.Is(err, errs.ErrNotFound) || (err == nil && d.State == device.StateRemoved) {
		return nil, ErrDeviceGone
	}
	if err != nil {
		return nil, fmt.Errorf("enroll: device: %w", err)
	}
	if err := pki.CheckKey(csr.PublicKey); err != nil {
		return nil, err
	}
	// Only the CSR's key is certified: the subject is the device the
	// challenge was issued for, never what the request names.
	cert, err := s.CA.SignDeviceCSR(&x509.CertificateRequest{PublicKey: csr.PublicKey, Subject: pkix.Name{CommonName: d.ID}}, d.ID, s.CertValidity)
	if err != nil {
		return nil, fmt.Errorf("enroll: sign: %w", err)
	}
	rec := activation.IssuedCert{Serial: pki.SerialHex(cert.SerialNumber), DeviceID: d.ID,
		NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, DER: cert.Raw}
	if err := s.Store.RedeemChallenge(ctx, hash, rec, now); err != nil {
		return nil, err
	}
	if s.OnIssued != nil {
		s.OnIssued()
	}
	s.log().Info("apple enrollment: SCEP certificate issued", "device", d.ID, "serial", rec.Serial, "platform", d.Platform)
	return cert, nil
}

// MaxChallenge bounds the challengePassword compared (PKCS#9 allows 255,
// RFC 2985 §5.4.1).
const MaxChallenge = 255
