package activation_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/custos-uem/custos/activation"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/license"
	"github.com/custos-uem/custos/pki"
	"github.com/custos-uem/custos/sqlstore"
	"github.com/custos-uem/custos/sqlstore/sqltest"
	"github.com/custos-uem/custos/user/usertest"
)

// t0 is the clock of these tests, in whole seconds as licences keep it.
var t0 = time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)

// gated is an activation service on a fresh database whose Admit is a
// license.Gate over a licence and a device count the test changes.
type gated struct {
	db       *sqlstore.DB
	svc      *activation.Service
	reg      *prometheus.Registry
	lic      atomic.Pointer[license.License]
	active   atomic.Int64
	countErr atomic.Pointer[error] // a non-nil error makes the count fail
	admits   atomic.Int64
}

func MustGated(t *testing.T, backend string) *gated {
	t.Helper()
	g := &gated{db: sqltest.Open(t, backend), reg: prometheus.NewRegistry()}
	ca, _, err := pki.LoadOrCreateCA(t.TempDir(), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	gate := &license.Gate{
		Current: g.lic.Load,
		ActiveDevices: func(context.Context) (int, error) {
			if e := g.countErr.Load(); e != nil {
				return 0, *e
			}
			return int(g.active.Load()), nil
		},
		Now: func() time.Time { return t0 },
	}
	g.svc = &activation.Service{Store: g.db, CA: ca, Pepper: []byte("test pepper"), Now: func() time.Time { return t0 },
		Metrics: activation.NewMetrics(g.reg),
		Admit: func(ctx context.Context) error {
			g.admits.Add(1)
			return gate.Admit(ctx)
		}}
	if g.svc.DefaultProfileID, err = g.svc.EnsureDefaultProfile(context.Background()); err != nil {
		t.Fatal(err)
	}
	return g
}

// failures reads the activation failure counter of reason.
func (g *gated) failures(t *testing.T, reason string) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.svc.Metrics.Failures.WithLabelValues(reason).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// MustCSR returns a PEM certificate request of the device with a new
// P-256 key.
func MustCSR(t *testing.T, deviceID string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: deviceID}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func code(err error) string {
	if err == nil {
		return ""
	}
	c, _, _ := errs.Public(err)
	return c
}

// lic is a valid licence for 10 devices expiring a year after t0.
func lic() *license.License {
	return &license.License{ID: "test", Organisation: "Example", ServerID: "core-1", DeviceLimit: 10,
		IssuedAt: t0, Expires: t0.AddDate(1, 0, 0), Features: []string{}}
}

// TestActivateRefusedByLicenceConsumesNothing: an activation the licence
// gate refuses returns the gate's code and leaves the user as before: no
// failed attempt counted (so no lock-out, even after more refusals than
// the failure limit), no device, the password unused and still good.
func TestActivateRefusedByLicenceConsumesNothing(t *testing.T) {
	for _, backend := range sqltest.Backends(t) {
		t.Run(backend, func(t *testing.T) {
			ctx := context.Background()
			g := MustGated(t, backend)
			u := usertest.CreateUser(t, g.db, "ada")
			pw, _, err := g.svc.SetPassword(ctx, activation.SetPasswordInput{UserID: u.ID, CreatedBy: "admin"})
			if err != nil {
				t.Fatal(err)
			}
			in := activation.ActivateInput{Login: u.Username, Password: pw, Platform: activation.Linux,
				HardwareID: "hw-1", OSVersion: "6.1", Model: "Laptop 13", Name: "laptop"}
			expired := lic()
			expired.Expires = t0.Add(-license.DefaultGrace)
			errDB := errors.New("database down")

			tests := []struct {
				name     string
				setup    func()
				want     string
				wantKind errs.Kind
			}{
				{"fail/no licence", func() { g.lic.Store(nil) }, "license_missing", errs.Forbidden},
				{"fail/licence expired", func() { g.lic.Store(expired) }, "license_expired", errs.Forbidden},
				{"fail/device limit reached", func() { g.lic.Store(lic()); g.active.Store(10) }, "license_device_limit", errs.Forbidden},
				{"fail/device count fails", func() { g.lic.Store(lic()); g.active.Store(0); g.countErr.Store(&errDB) }, "internal", errs.Internal},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					tc.setup()
					defer g.countErr.Store(nil)
					before := g.failures(t, tc.want)
					// More refusals than the failure limit: none may count
					// towards the lock.
					for range activation.DefaultFailureLimit + 1 {
						a, err := g.svc.Activate(ctx, in)
						if code(err) != tc.want || errs.KindOf(err) != tc.wantKind || a != nil {
							t.Fatalf("Activate: %v, %v; want code %q (%s)", a, err, tc.want, tc.wantKind)
						}
					}
					if got := g.failures(t, tc.want) - before; got != activation.DefaultFailureLimit+1 {
						t.Fatalf("failure metric %q counted %v refusals; want %d", tc.want, got, activation.DefaultFailureLimit+1)
					}
					after, err := g.db.User(ctx, u.ID)
					if err != nil {
						t.Fatal(err)
					}
					if after.FailedActivations != 0 || after.ActivationLockedUntil != nil {
						t.Fatalf("user after refusals: %d failures, locked until %v; want untouched", after.FailedActivations, after.ActivationLockedUntil)
					}
					if ds, err := g.db.ListDevices(ctx, device.Query{UserID: u.ID}); err != nil || len(ds) != 0 {
						t.Fatalf("devices after refusals: %v, %v; want none", ds, err)
					}
					ps, err := g.db.Passwords(ctx, u.ID)
					if err != nil || len(ps) != 1 || ps[0].UsedAt != nil || ps[0].RevokedAt != nil {
						t.Fatalf("passwords after refusals: %v, %v; want one, unused", ps, err)
					}
				})
			}

			t.Run("fail/wrong password learns nothing of the licence", func(t *testing.T) {
				g.lic.Store(nil)
				defer g.lic.Store(lic())
				admitsBefore := g.admits.Load()
				bad := in
				bad.Password = "not-the-password"
				_, err := g.svc.Activate(ctx, bad)
				if code(err) != "activation_password_invalid" && errs.KindOf(err) != errs.Unauthenticated {
					t.Fatalf("Activate with a wrong password: %v, want the credentials refusal", err)
				}
				if g.admits.Load() != admitsBefore {
					t.Fatal("the licence was asked before the credentials held")
				}
			})

			t.Run("ok/the same password activates once the licence admits", func(t *testing.T) {
				g.lic.Store(lic())
				g.active.Store(9)
				admitsBefore := g.admits.Load()
				a, err := g.svc.Activate(ctx, in)
				if err != nil {
					t.Fatalf("Activate after the refusals: %v", err)
				}
				if g.admits.Load() != admitsBefore+1 {
					t.Fatalf("Admit ran %d times for one activation", g.admits.Load()-admitsBefore)
				}
				// The licence lapses between activation and enrollment:
				// enrollment of an admitted activation is not gated again.
				g.lic.Store(expired)
				if _, err := g.svc.Enroll(ctx, a.SessionToken, MustCSR(t, a.Device.ID)); err != nil {
					t.Fatalf("Enroll after the licence lapsed: %v", err)
				}
				if g.admits.Load() != admitsBefore+1 {
					t.Fatal("Enroll called Admit")
				}
			})
		})
	}
}

// TestActivateWithoutAdmitIsUngated: Admit is optional; a Service without
// it activates as before.
func TestActivateWithoutAdmitIsUngated(t *testing.T) {
	ctx := context.Background()
	g := MustGated(t, sqltest.Backends(t)[0])
	g.svc.Admit = nil
	u := usertest.CreateUser(t, g.db, "ada")
	pw, _, err := g.svc.SetPassword(ctx, activation.SetPasswordInput{UserID: u.ID, CreatedBy: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.svc.Activate(ctx, activation.ActivateInput{Login: u.Username, Password: pw, Platform: activation.Linux, HardwareID: "hw-1"}); err != nil {
		t.Fatalf("Activate without Admit: %v", err)
	}
}

// TestActivateChecksInputBeforeAdmit: a malformed request is refused as
// such, without asking the gate (and without counting devices for it).
func TestActivateChecksInputBeforeAdmit(t *testing.T) {
	g := MustGated(t, sqltest.Backends(t)[0])
	_, err := g.svc.Activate(context.Background(), activation.ActivateInput{Login: "ada"})
	if code(err) != "invalid_activation_request" || g.admits.Load() != 0 {
		t.Fatalf("Activate(malformed): %v, %d admits; want invalid_activation_request and none", err, g.admits.Load())
	}
}
