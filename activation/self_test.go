package activation_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/custos-uem/custos/activation"
	"github.com/custos-uem/custos/activation/activationtest"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/id"
	"github.com/custos-uem/custos/pki"
	"github.com/custos-uem/custos/sqlstore"
	"github.com/custos-uem/custos/sqlstore/sqltest"
	"github.com/custos-uem/custos/user"
	"github.com/custos-uem/custos/user/usertest"
)

// selfService is an activation service on a fresh database, a user whose
// activation profile allows macOS and iOS with a limit of two devices,
// and the licence answer the test sets.
type selfService struct {
	db    *sqlstore.DB
	svc   *activation.Service
	user  *user.User
	admit error
}

func mustSelfService(t *testing.T, backend string) *selfService {
	t.Helper()
	s := &selfService{db: sqltest.Open(t, backend)}
	ca, _, err := pki.LoadOrCreateCA(t.TempDir(), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.svc = &activation.Service{Store: s.db, CA: ca, Pepper: []byte("pepper"), Now: func() time.Time { return t0 },
		Admit: func(context.Context) error { return s.admit }}
	ctx := context.Background()
	prof := &activation.Profile{Name: "Macs", MaxDevices: 2,
		Types: map[activation.Platform]activation.Type{activation.MacOS: activation.MDMControls, activation.IOS: activation.UserPrivacy}}
	if err := s.svc.CreateProfile(ctx, prof); err != nil {
		t.Fatal(err)
	}
	s.user = usertest.CreateUser(t, s.db, "self")
	s.user.ActivationProfileID = prof.ID
	if err := s.db.UpdateUser(ctx, s.user); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *selfService) devices(t *testing.T) []*device.Device {
	t.Helper()
	ds, err := s.db.ListDevices(context.Background(), device.Query{UserID: s.user.ID, Limit: device.MaxPage})
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func TestActivateUser(t *testing.T) {
	for _, backend := range sqltest.Backends(t) {
		t.Run(backend, func(t *testing.T) { testActivateUser(t, backend) })
	}
}

func testActivateUser(t *testing.T, backend string) {
	ctx := context.Background()
	refusals := []struct {
		name  string
		setup func(t *testing.T, s *selfService) activation.UserActivation
		code  string
		kind  errs.Kind
	}{
		{"fail/unknown-user", func(t *testing.T, s *selfService) activation.UserActivation {
			return activation.UserActivation{UserID: id.New(), Platform: activation.MacOS}
		}, "user_not_found", errs.NotFound},
		{"fail/unknown-platform", func(t *testing.T, s *selfService) activation.UserActivation {
			return activation.UserActivation{UserID: s.user.ID, Platform: "plan9"}
		}, "invalid_activation_request", errs.Invalid},
		{"fail/reserved-hardware-prefix", func(t *testing.T, s *selfService) activation.UserActivation {
			return activation.UserActivation{UserID: s.user.ID, Platform: activation.MacOS, HardwareID: activation.ProvisionalHardwarePrefix + "x"}
		}, "invalid_activation_request", errs.Invalid},
		{"fail/newline-in-name", func(t *testing.T, s *selfService) activation.UserActivation {
			return activation.UserActivation{UserID: s.user.ID, Platform: activation.MacOS, Name: "Mac\r\nX-Injected: 1"}
		}, "invalid_activation_request", errs.Invalid},
		{"fail/platform-not-in-profile", func(t *testing.T, s *selfService) activation.UserActivation {
			return activation.UserActivation{UserID: s.user.ID, Platform: activation.Windows}
		}, activation.ErrPlatformNotAllowed.Code, errs.Forbidden},
		{"fail/device-limit", func(t *testing.T, s *selfService) activation.UserActivation {
			activationtest.Enroll(t, s.db, s.user.ID, "hw-1", t0)
			activationtest.Enroll(t, s.db, s.user.ID, "hw-2", t0)
			return activation.UserActivation{UserID: s.user.ID, Platform: activation.MacOS}
		}, activation.ErrDeviceLimit.Code, errs.Conflict},
		{"fail/hardware-of-another-user", func(t *testing.T, s *selfService) activation.UserActivation {
			other := usertest.CreateUser(t, s.db, "other")
			activationtest.Enroll(t, s.db, other.ID, "hw-taken", t0)
			return activation.UserActivation{UserID: s.user.ID, Platform: activation.MacOS, HardwareID: "hw-taken"}
		}, activation.ErrHardwareInUse.Code, errs.Conflict},
		{"fail/licence-refuses", func(t *testing.T, s *selfService) activation.UserActivation {
			s.admit = errs.E(errs.Forbidden, "license_device_limit", "the licence allows no more devices")
			return activation.UserActivation{UserID: s.user.ID, Platform: activation.MacOS}
		}, "license_device_limit", errs.Forbidden},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := mustSelfService(t, backend)
			in := tc.setup(t, s)
			before := len(s.devices(t))
			d, err := s.svc.ActivateUser(ctx, in)
			var e *errs.Error
			if d != nil || !errors.As(err, &e) || e.Code != tc.code || errs.KindOf(err) != tc.kind {
				t.Fatalf("ActivateUser: %v, %v; want %s (%v)", d, err, tc.code, tc.kind)
			}
			if after := len(s.devices(t)); after != before {
				t.Fatalf("a refused activation created a device: %d → %d", before, after)
			}
		})
	}

	t.Run("ok/creates-activating-device-with-provisional-hardware", func(t *testing.T) {
		t.Parallel()
		s := mustSelfService(t, backend)
		d, err := s.svc.ActivateUser(ctx, activation.UserActivation{UserID: s.user.ID, Platform: activation.MacOS, Name: "Mac"})
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.db.Device(ctx, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != device.StateActivating || got.UserID != s.user.ID || got.Platform != "macos" ||
			got.ActivationType != string(activation.MDMControls) || got.ProfileID != s.user.ActivationProfileID ||
			!strings.HasPrefix(got.HardwareID, activation.ProvisionalHardwarePrefix) || got.CertSerial != "" {
			t.Fatalf("device %+v", got)
		}
		// No password was used and no session opened.
		pws, _ := s.db.Passwords(ctx, s.user.ID)
		if len(pws) != 0 {
			t.Fatalf("passwords: %d", len(pws))
		}
	})
	t.Run("ok/again-replaces-the-unfinished-attempt", func(t *testing.T) {
		t.Parallel()
		s := mustSelfService(t, backend)
		first, err := s.svc.ActivateUser(ctx, activation.UserActivation{UserID: s.user.ID, Platform: activation.MacOS})
		if err != nil {
			t.Fatal(err)
		}
		second, err := s.svc.ActivateUser(ctx, activation.UserActivation{UserID: s.user.ID, Platform: activation.MacOS})
		if err != nil {
			t.Fatal(err)
		}
		ds := s.devices(t)
		if len(ds) != 1 || ds[0].ID != second.ID || first.ID == second.ID {
			t.Fatalf("devices after two attempts: %d, want only the second", len(ds))
		}
	})
	t.Run("ok/known-hardware-id-is-kept", func(t *testing.T) {
		t.Parallel()
		s := mustSelfService(t, backend)
		d, err := s.svc.ActivateUser(ctx, activation.UserActivation{UserID: s.user.ID, Platform: activation.IOS, HardwareID: "UDID-1"})
		if err != nil || d.HardwareID != "UDID-1" || d.ActivationType != string(activation.UserPrivacy) {
			t.Fatalf("%+v %v", d, err)
		}
	})
}
