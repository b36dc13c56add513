package enroll

import (
	"context"
	"time"

	"github.com/custos-uem/custos/activation"
	"github.com/custos-uem/custos/errs"
)

// Challenge is a one-time SCEP challenge, bound to the device whose
// enrollment profile carries it. Only its hash is stored.
type Challenge struct {
	Hash      []byte
	DeviceID  string
	CreatedAt time.Time
	ExpiresAt time.Time
	// UsedAt and CertSerial are set when a certificate was issued with it.
	UsedAt     *time.Time
	CertSerial string
}

// Errors a Store returns from RedeemChallenge; the SCEP handler answers
// each with a CertRep FAILURE.
var (
	// ErrChallengeClosed: the challenge was used already or has expired.
	ErrChallengeClosed = errs.E(errs.Conflict, "scep_challenge_closed", "the SCEP challenge was used already or has expired; install a new enrollment profile")
	// ErrDeviceGone: the challenge's device was removed (or replaced by a
	// newer activation) after its profile was issued.
	ErrDeviceGone = errs.E(errs.Conflict, "device_removed", "the device of this enrollment profile was removed; activate it again")
)

// Store keeps SCEP challenges and records the certificates issued with
// them. Every method is safe for concurrent use by several Core processes
// sharing one database.
type Store interface {
	// CreateChallenge stores c (unused) and, in the same transaction,
	// deletes every challenge that expired before c.CreatedAt. A duplicate
	// hash is errs.ErrConflict.
	CreateChallenge(ctx context.Context, c *Challenge) error
	// Challenge returns the challenge whose hash is hash, in any state, or
	// errs.ErrNotFound.
	Challenge(ctx context.Context, hash []byte) (*Challenge, error)
	// RedeemChallenge, in one transaction: marks the challenge used with
	// cert.Serial if it is unused and expires after now (else
	// ErrChallengeClosed; an unknown hash too); refuses a device that no
	// longer exists or is removed (ErrDeviceGone); records cert in the
	// device's certificates (so removing the device revokes it); moves a
	// device still activating to enrolled with CertSerial = cert.Serial,
	// retiring the same user's other instances of the same hardware
	// (activation.ErrHardwareInUse when another user holds it); an enrolled
	// or active device keeps its CertSerial. cert.DeviceID must name the
	// challenge's device. Nothing changes when it returns an error, and of
	// concurrent calls with one hash exactly one succeeds.
	RedeemChallenge(ctx context.Context, hash []byte, cert activation.IssuedCert, now time.Time) error
}
