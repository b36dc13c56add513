package apple

import (
	"context"
	"time"

	"github.com/custos-uem/custos/command"
)

// Enrollment is one Apple MDM enrollment: the device channel of one
// device, named by its UDID (or the EnrollmentID of a User Enrollment),
// bound to the Custos device of its identity certificate.
type Enrollment struct {
	// UDID is the enrollment's ID: the UDID, or the EnrollmentID of a
	// User Enrollment.
	UDID     string
	DeviceID string
	// CertSerial is the hex serial of the identity certificate the
	// device authenticated with; every later request must present it.
	CertSerial   string
	Topic        string
	SerialNumber string
	// AuthenticatedAt is the time of the last Authenticate message.
	AuthenticatedAt time.Time
	// TokenUpdatedAt is the time of the last TokenUpdate; nil until the
	// first, which completes the enrollment.
	TokenUpdatedAt *time.Time
	// CheckedOutAt is set when the device checked out (its MDM profile
	// was removed).
	CheckedOutAt *time.Time
	// BootstrapToken and UnlockToken are sealed with the Core's secret
	// box; empty when the device sent none.
	BootstrapToken string
	UnlockToken    string
	// AwaitingConfiguration: the device is in Setup Assistant (ADE) and
	// waits for DeviceConfigured.
	AwaitingConfiguration bool
}

// Enrolled reports whether the enrollment is complete and not checked out.
func (e *Enrollment) Enrolled() bool { return e.TokenUpdatedAt != nil && e.CheckedOutAt == nil }

// Identity is what the store knows about an identity certificate.
type Identity struct {
	// DeviceID is the device the certificate was issued to.
	DeviceID string
	// DeviceState is that device's state.
	DeviceState string
	// Revoked: the certificate was revoked.
	Revoked bool
	// Enrollment is the enrollment the certificate is bound to, or nil.
	Enrollment *Enrollment
}

// ProfileCommand records which policy item an InstallProfile or
// RemoveProfile command renders.
type ProfileCommand struct {
	CommandID string
	DeviceID  string
	ItemID    string
	Revision  int
	// Version is the configuration version the sync rendered.
	Version string
	Remove  bool
	// Status is "pending", "applied" or "failed" (policy item states).
	Status    string
	CreatedAt time.Time
}

// Store keeps Apple enrollments. Implementations: sqlstore (both
// backends), checked by appletest.RunStore.
type Store interface {
	// Identity returns what is known about the certificate with serial
	// (lower-case hex): its device, whether it is revoked, the device's
	// state and the enrollment bound to it. A serial that was never
	// recorded is errs.ErrNotFound.
	Identity(ctx context.Context, serial string) (*Identity, error)
	// Authenticate binds e.CertSerial to the enrollment e.UDID of device
	// e.DeviceID and starts it afresh (no token update, not checked out,
	// tokens cleared). A certificate bound to another enrollment, or an
	// enrollment of another device that is not removed, is
	// errs.ErrConflict and changes nothing.
	Authenticate(ctx context.Context, e Enrollment) error
	// TokenUpdate records a token update of the enrollment udid bound to
	// serial at now and returns whether it was the first since
	// Authenticate. unlockToken, when not empty, replaces the stored one.
	// An enrollment not bound to serial is errs.ErrNotFound.
	TokenUpdate(ctx context.Context, udid, serial, topic, unlockToken string, awaiting bool, now time.Time) (first bool, err error)
	// CheckOut marks the enrollment checked out; errs.ErrNotFound when
	// udid is not bound to serial.
	CheckOut(ctx context.Context, udid, serial string, now time.Time) error
	// SetBootstrapToken replaces the sealed bootstrap token (empty
	// clears it); errs.ErrNotFound when udid is not bound to serial.
	SetBootstrapToken(ctx context.Context, udid, serial, sealed string) error
	// SetAwaitingConfiguration records whether the device still waits in
	// Setup Assistant. errs.ErrNotFound for an unknown enrollment.
	SetAwaitingConfiguration(ctx context.Context, udid string, awaiting bool) error
	// EnrollmentOf returns the newest enrollment of device deviceID, or
	// errs.ErrNotFound.
	EnrollmentOf(ctx context.Context, deviceID string) (*Enrollment, error)

	// AddProfileCommands records the profile commands of one sync.
	AddProfileCommands(ctx context.Context, pcs []ProfileCommand) error
	// ProfileCommand returns the record of a command ID, or
	// errs.ErrNotFound.
	ProfileCommand(ctx context.Context, commandID string) (*ProfileCommand, error)
	// SetProfileStatus records the device's answer to a profile command
	// and returns how many profile commands of the same device and
	// version are still pending afterwards.
	SetProfileStatus(ctx context.Context, commandID, status string) (pending int, err error)
	// InstalledProfiles returns the item IDs whose newest install was
	// applied on the device and not removed since, in ID order.
	InstalledProfiles(ctx context.Context, deviceID string) ([]string, error)
}

// RoundTripStore is implemented by stores that can record a result and
// deliver the next command in one transaction (one commit per round trip
// instead of two), with exactly the effects of command.Store's Complete
// followed by Next. nil next means nothing is due.
type RoundTripStore interface {
	CompleteAndNext(ctx context.Context, deviceID string, res command.Result, now time.Time) (done *command.Command, duplicate bool, next *command.Command, err error)
}
