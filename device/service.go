package device

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/custos-uem/custos/errs"
)

// Report limits, checked before anything is stored.
const (
	MaxField      = 256   // bytes in one info string or app field
	MaxAttributes = 64    // extra info attributes
	MaxApps       = 20000 // software entries in one report
)

// Service is the device domain: what enrolled devices report, and their
// retirement.
type Service struct {
	Store   Store
	Remover Remover
	// OnRemove runs after a device was removed (the CA re-signs its CRL).
	OnRemove func()
	Now      func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func validString(v string) bool {
	return len(v) <= MaxField && utf8.ValidString(v) && !strings.ContainsRune(v, 0)
}

// ValidateReport checks a report against the limits above, naming the
// first offending field.
func ValidateReport(info Info, software []App) error {
	bad := func(field, why string) error {
		e := errs.E(errs.Invalid, "invalid_report", "the device report has an invalid field")
		e.Fields = map[string]string{field: why}
		return e
	}
	for name, v := range map[string]string{"hostname": info.Hostname, "manufacturer": info.Manufacturer, "model": info.Model, "serial_number": info.SerialNumber, "os_name": info.OSName, "os_version": info.OSVersion, "kernel": info.Kernel, "arch": info.Arch, "imei": info.IMEI, "phone_number": info.PhoneNumber} {
		if !validString(v) {
			return bad("info."+name, "at most 256 bytes of UTF-8")
		}
	}
	if len(info.Attributes) > MaxAttributes {
		return bad("info.attributes", "at most 64 attributes")
	}
	for k, v := range info.Attributes {
		if !validString(k) || !validString(v) || k == "" {
			return bad("info.attributes", "keys and values of at most 256 bytes")
		}
	}
	if len(software) > MaxApps {
		e := errs.E(errs.TooLarge, "too_many_apps", "the software list is longer than 20000 entries")
		return e
	}
	for i, a := range software {
		if a.Name == "" || !validString(a.Name) || !validString(a.Version) || !validString(a.ID) {
			return bad(fmt.Sprintf("software[%d]", i), "name required; fields of at most 256 bytes")
		}
	}
	return nil
}

// Report stores what an enrolled device reported (seed step 10: "stores the
// device information in the database").
func (s *Service) Report(ctx context.Context, d *Device, info Info, software []App) error {
	if err := ValidateReport(info, software); err != nil {
		return err
	}
	return s.Store.SaveReport(ctx, d.ID, info, software, s.now())
}

// Acknowledge records the configuration version the device applied (seed
// step 12); the first acknowledgment completes the activation.
func (s *Service) Acknowledge(ctx context.Context, d *Device, version string) error {
	if !validString(version) {
		return errs.E(errs.Invalid, "invalid_version", "the configuration version is malformed")
	}
	return s.Store.Acknowledge(ctx, d.ID, version, s.now())
}

// Remove retires a device: its certificate is revoked and refused at its
// next request.
func (s *Service) Remove(ctx context.Context, id string) error {
	if err := s.Remover.RemoveDevice(ctx, id, s.now()); err != nil {
		return err
	}
	if s.OnRemove != nil {
		s.OnRemove()
	}
	return nil
}

// RemoveUserDevices removes every device of a user that is not removed
// yet (before the user is deleted): each certificate is revoked and the
// CRL re-signed. It satisfies user.DeviceRemover.
func (s *Service) RemoveUserDevices(ctx context.Context, userID string) error {
	after := ""
	for {
		ds, err := s.Store.ListDevices(ctx, Query{UserID: userID, After: after, Limit: MaxPage})
		if err != nil {
			return err
		}
		for _, d := range ds {
			if d.State == StateRemoved {
				continue
			}
			if err := s.Remove(ctx, d.ID); err != nil && !errors.Is(err, errs.ErrNotFound) {
				return err
			}
		}
		if len(ds) < MaxPage {
			return nil
		}
		after = ds[len(ds)-1].ID
	}
}

type ctxKey struct{}

// FromContext returns the device authenticated by CertAuth.
func FromContext(ctx context.Context) (*Device, bool) {
	d, ok := ctx.Value(ctxKey{}).(*Device)
	return d, ok
}

// WithDevice returns ctx carrying d (for CertAuth and tests of handlers).
func WithDevice(ctx context.Context, d *Device) context.Context {
	return context.WithValue(ctx, ctxKey{}, d)
}

// Authentication errors.
var (
	ErrNoClientCert = errs.E(errs.Unauthenticated, "client_certificate_required", "this endpoint requires the device's client certificate")
	ErrCertRevoked  = errs.E(errs.Unauthenticated, "certificate_revoked", "the device certificate is revoked or no longer belongs to an enrolled device")
)

// Authenticate maps a verified client certificate to exactly one device.
// The TLS layer has already checked the chain against our CA and the
// validity period (tls.Config.ClientCAs with VerifyClientCertIfGiven);
// here the certificate must still be the one current certificate of an
// enrolled or active device, which is what makes removal (and replacement
// by a re-activation) a revocation at the next request.
func Authenticate(ctx context.Context, store Store, chains [][]*x509.Certificate) (*Device, error) {
	if len(chains) == 0 || len(chains[0]) == 0 {
		return nil, ErrNoClientCert
	}
	leaf := chains[0][0]
	d, err := store.Device(ctx, leaf.Subject.CommonName)
	if errors.Is(err, errs.ErrNotFound) {
		return nil, ErrCertRevoked
	}
	if err != nil {
		return nil, fmt.Errorf("device: authenticate: %w", err)
	}
	if d.State != StateEnrolled && d.State != StateActive {
		return nil, ErrCertRevoked
	}
	if d.CertSerial != hex.EncodeToString(leaf.SerialNumber.Bytes()) {
		return nil, ErrCertRevoked
	}
	return d, nil
}

// CertAuth is the HTTP middleware form of Authenticate; onError answers a
// refused request.
func CertAuth(store Store, onError func(http.ResponseWriter, *http.Request, error)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var chains [][]*x509.Certificate
			if r.TLS != nil {
				chains = r.TLS.VerifiedChains
			}
			d, err := Authenticate(r.Context(), store, chains)
			if err != nil {
				onError(w, r, err)
				return
			}
			next.ServeHTTP(w, r.WithContext(WithDevice(r.Context(), d)))
		})
	}
}
