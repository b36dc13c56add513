package activation

import (
	"context"
	"time"

	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/errs"
)

// Errors a SessionStore returns from CompleteSession, so that the service
// can tell the device what went wrong.
var (
	// ErrSessionClosed: the session was already consumed, superseded by a
	// newer attempt, or has expired.
	ErrSessionClosed = errs.E(errs.Conflict, "enrollment_session_closed", "the enrollment session is closed; start the activation again")
	// ErrPasswordUsed: the activation password was used by another device
	// (or revoked) between the start of this activation and its CSR.
	ErrPasswordUsed = errs.E(errs.Conflict, "activation_password_used", "the activation password has already been used")
	// ErrHardwareInUse: the hardware is enrolled for another user.
	ErrHardwareInUse = errs.E(errs.Conflict, "device_in_use", "this device is already activated for another user")
)

// ProfileStore keeps activation profiles.
type ProfileStore interface {
	// CreateProfile inserts p; a duplicate name returns errs.ErrConflict.
	CreateProfile(ctx context.Context, p *Profile) error
	// Profile returns the profile with id, or errs.ErrNotFound.
	Profile(ctx context.Context, id string) (*Profile, error)
	// ListProfiles returns every profile ordered by rank, then name.
	ListProfiles(ctx context.Context) ([]*Profile, error)
	// UpdateProfile stores every field but ID and CreatedAt.
	// errs.ErrNotFound; errs.ErrConflict on a duplicate name.
	UpdateProfile(ctx context.Context, p *Profile) error
	// DeleteProfile removes the profile and clears every user and group
	// assignment of it. errs.ErrNotFound.
	DeleteProfile(ctx context.Context, id string) error
}

// PasswordStore keeps activation passwords and the failed-attempt counters
// that guard them.
type PasswordStore interface {
	// SetPassword inserts p and, in the same transaction, revokes every other
	// unused, unrevoked password of the same user (the newest password
	// replaces older ones).
	SetPassword(ctx context.Context, p *Password, now time.Time) error
	// Passwords returns all the user's passwords, newest first.
	Passwords(ctx context.Context, userID string) ([]*Password, error)
	// RevokePasswords revokes the user's unused passwords and returns how
	// many it revoked.
	RevokePasswords(ctx context.Context, userID string, now time.Time) (int, error)
	// RecordFailure adds one failed activation attempt to the user's counter
	// and, when the counter reaches limit, sets ActivationLockedUntil to
	// lockUntil and starts the counter again from zero. It returns the
	// counter after the increment (before any reset). errs.ErrNotFound.
	RecordFailure(ctx context.Context, userID string, limit int, lockUntil time.Time) (int, error)
}

// SessionStore keeps enrollment sessions and moves a device through
// enrollment atomically.
type SessionStore interface {
	// OpenSession, in one transaction: supersedes the open sessions that use
	// the same password; deletes a device of the same user and hardware ID
	// that is still activating (an earlier attempt that never got its
	// certificate); inserts d (state activating) and s (state open); clears
	// the user's failed-attempt counter and lock.
	OpenSession(ctx context.Context, s *Session, d *device.Device) error
	// SessionByToken returns the session whose token hash is hash, in any
	// state, or errs.ErrNotFound.
	SessionByToken(ctx context.Context, hash []byte) (*Session, error)
	// CompleteSession, in one transaction: consumes the session if it is
	// open and expires after now (else ErrSessionClosed); marks its password
	// used by the device if it is unused and unrevoked (else
	// ErrPasswordUsed); removes the user's other non-removed devices with
	// the same hardware ID and revokes their certificates; moves the device
	// to enrolled with cert.Serial; records cert. If the hardware is
	// enrolled for another user it returns ErrHardwareInUse. Nothing is
	// changed when it returns an error.
	CompleteSession(ctx context.Context, sessionID string, cert IssuedCert, now time.Time) error
}
