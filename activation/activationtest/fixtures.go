package activationtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"github.com/custos-uem/custos/id"
	"testing"
	"time"

	"github.com/custos-uem/custos/activation"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/user"
)

// Enroller is what the fixtures need to take a device through activation.
type Enroller interface {
	user.Store
	activation.PasswordStore
	activation.SessionStore
}

// T0 is the suites' clock: whole microseconds in UTC, which is what stores
// keep, so stored times compare equal to the ones written.
var T0 = time.Date(2031, 3, 4, 5, 6, 7, 8000, time.UTC)

// Lifetimes the fixtures give passwords, sessions and certificates.
const (
	PasswordTTL = 24 * time.Hour
	SessionTTL  = 10 * time.Minute
	CertTTL     = 365 * 24 * time.Hour
)

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// NewPassword returns an unused password of the user created at now, not
// stored.
func NewPassword(userID string, now time.Time) *activation.Password {
	return &activation.Password{ID: id.New(), UserID: userID, Hash: random(32), CreatedBy: "admin",
		CreatedAt: now, ExpiresAt: now.Add(PasswordTTL)}
}

// SetPassword stores a new password of the user at now and returns it.
func SetPassword(t testing.TB, s activation.PasswordStore, userID string, now time.Time) *activation.Password {
	t.Helper()
	p := NewPassword(userID, now)
	if err := s.SetPassword(context.Background(), p, now); err != nil {
		t.Fatalf("SetPassword: %v", err)
	}
	return p
}

// NewAttempt returns the session and device of an activation of the
// hardware by the user with the password at now, not stored.
func NewAttempt(userID, passwordID, hardwareID string, now time.Time) (*activation.Session, *device.Device) {
	d := &device.Device{ID: id.New(), UserID: userID, HardwareID: hardwareID, Platform: string(activation.Linux),
		OSVersion: "6.1", Model: "Laptop 13", Name: "laptop", ActivationType: string(activation.MDMControls),
		State: device.StateActivating, CreatedAt: now}
	s := &activation.Session{ID: id.New(), TokenHash: random(32), UserID: userID, DeviceID: d.ID, PasswordID: passwordID,
		State: activation.SessionOpen, CreatedAt: now, ExpiresAt: now.Add(SessionTTL)}
	return s, d
}

// OpenAttempt stores the attempt with OpenSession.
func OpenAttempt(t testing.TB, s activation.SessionStore, userID, passwordID, hardwareID string, now time.Time) (*activation.Session, *device.Device) {
	t.Helper()
	sess, d := NewAttempt(userID, passwordID, hardwareID, now)
	if err := s.OpenSession(context.Background(), sess, d); err != nil {
		t.Fatalf("OpenSession: %v", err)
	}
	return sess, d
}

// Start gives the user a new password and opens an activation of the
// hardware with it at now.
func Start(t testing.TB, s Enroller, userID, hardwareID string, now time.Time) (*activation.Session, *device.Device) {
	t.Helper()
	p := SetPassword(t, s, userID, now)
	return OpenAttempt(t, s, userID, p.ID, hardwareID, now)
}

// NewCert returns a certificate record for the device, valid from now for
// CertTTL, with a random serial.
func NewCert(deviceID string, now time.Time) activation.IssuedCert {
	return activation.IssuedCert{Serial: hex.EncodeToString(random(16)), DeviceID: deviceID,
		NotBefore: now, NotAfter: now.Add(CertTTL), DER: random(64)}
}

// Enroll takes the hardware through activation for the user at now and
// returns the enrolled device (as the store now holds it) and its
// certificate.
func Enroll(t testing.TB, s Enroller, userID, hardwareID string, now time.Time) (*device.Device, activation.IssuedCert) {
	t.Helper()
	sess, d := Start(t, s, userID, hardwareID, now)
	cert := NewCert(d.ID, now)
	if err := s.CompleteSession(context.Background(), sess.ID, cert, now); err != nil {
		t.Fatalf("CompleteSession: %v", err)
	}
	d.State, d.CertSerial, d.EnrolledAt = device.StateEnrolled, cert.Serial, &now
	return d, cert
}
