package activation

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/id"
)

// ProvisionalHardwarePrefix starts the hardware ID ActivateUser gives a
// device whose hardware is not known yet (a Mac enrolling from
// Self-Service: its UDID arrives with its first MDM check-in). The device
// ID follows it, so two such devices never collide in the unique index of
// enrolled hardware.
const ProvisionalHardwarePrefix = "provisional:"

// IsProvisionalHardwareID reports whether hw was given by ActivateUser for
// unknown hardware.
func IsProvisionalHardwareID(hw string) bool { return strings.HasPrefix(hw, ProvisionalHardwarePrefix) }

// errNoUserDeviceStore is returned by ActivateUser when the Service's store
// cannot create devices outside an enrollment session.
var errNoUserDeviceStore = errors.New("activation: the store does not implement UserDeviceStore")

// UserDeviceStore creates devices for users who were authenticated by other
// means than an activation password. The Service's Store must implement it
// for ActivateUser (sqlstore.DB does).
type UserDeviceStore interface {
	// CreateUserDevice, in one transaction: deletes the user's devices of
	// d's platform that are still activating without a certificate and have
	// d's hardware ID (an earlier attempt that never finished; when d's
	// hardware ID is provisional, every provisional one matches), then
	// inserts d in state activating.
	CreateUserDevice(ctx context.Context, d *device.Device) error
}

// UserActivation is an activation for a user the caller has authenticated.
type UserActivation struct {
	UserID   string
	Platform Platform
	// HardwareID may be empty when the hardware is not known yet; the device
	// then gets a provisional one (ProvisionalHardwarePrefix).
	HardwareID, Model, Name, OSVersion string
}

func (in *UserActivation) validate() error {
	fields := map[string]string{}
	if in.UserID == "" {
		fields["user_id"] = "required"
	}
	if !ValidPlatform(in.Platform) {
		fields["platform"] = "unknown platform"
	}
	if IsProvisionalHardwareID(in.HardwareID) {
		fields["hardware_id"] = "reserved prefix"
	}
	for name, v := range map[string]string{"hardware_id": in.HardwareID, "os_version": in.OSVersion, "model": in.Model, "name": in.Name} {
		if len(v) > MaxField || !utf8.ValidString(v) || strings.ContainsAny(v, "\x00\r\n") {
			fields[name] = "at most 256 bytes of printable UTF-8"
		}
	}
	if len(fields) > 0 {
		e := errs.E(errs.Invalid, "invalid_activation_request", "the activation request is incomplete or malformed")
		e.Fields = fields
		return e
	}
	return nil
}

// ActivateUser creates a device instance in state activating for a user the
// caller has already authenticated (a Self-Service sign-in, an ADE
// assignment): the user's activation profile must allow the platform, the
// device limit holds, the licence gate (Admit) holds; no activation
// password is used and no enrollment session is opened. The device leaves
// activating when its platform's own enrollment issues its certificate
// (for Apple devices, SCEP).
func (s *Service) ActivateUser(ctx context.Context, in UserActivation) (*device.Device, error) {
	if err := in.validate(); err != nil {
		return nil, s.fail(err)
	}
	st, ok := s.Store.(UserDeviceStore)
	if !ok {
		return nil, errNoUserDeviceStore
	}
	u, err := s.Store.User(ctx, in.UserID)
	if errors.Is(err, errs.ErrNotFound) {
		return nil, s.fail(errs.E(errs.NotFound, "user_not_found", "no such user"))
	}
	if err != nil {
		return nil, fmt.Errorf("activation: find user: %w", err)
	}
	if s.Admit != nil {
		if err := s.Admit(ctx); err != nil {
			return nil, s.fail(err)
		}
	}
	prof, _, err := s.effectiveProfile(ctx, u)
	if err != nil {
		return nil, err
	}
	typ, ok := prof.Types[in.Platform]
	if !ok {
		return nil, s.fail(ErrPlatformNotAllowed)
	}
	now := s.now()
	d := &device.Device{
		ID: id.New(), UserID: u.ID, HardwareID: in.HardwareID, Platform: string(in.Platform),
		OSVersion: in.OSVersion, Model: in.Model, Name: in.Name, ActivationType: string(typ),
		ProfileID: prof.ID, State: device.StateActivating, CreatedAt: now,
	}
	if d.HardwareID == "" {
		d.HardwareID = ProvisionalHardwarePrefix + d.ID
	}
	if err := s.checkDevices(ctx, u.ID, d.HardwareID, prof.MaxDevices); err != nil {
		return nil, s.fail(err)
	}
	if err := st.CreateUserDevice(ctx, d); err != nil {
		return nil, fmt.Errorf("activation: create device: %w", err)
	}
	if s.Metrics != nil {
		s.Metrics.Started.Inc()
	}
	return d, nil
}
