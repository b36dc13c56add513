package activation

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/custos-uem/custos/id"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/pki"
	"github.com/custos-uem/custos/user"
)

// Defaults of the Service's tunables.
const (
	DefaultPasswordTTL  = 30 * 24 * time.Hour
	MaxPasswordTTL      = 365 * 24 * time.Hour
	DefaultSessionTTL   = 10 * time.Minute
	DefaultFailureLimit = 5
	DefaultLockDuration = 15 * time.Minute
	MinPasswordLen      = 8
	MaxPasswordLen      = 128
	// MaxField bounds identifiers a device sends (hardware ID, model …).
	MaxField = 256
)

// Errors of the activation flow. Their codes are part of the protocol.
var (
	ErrInvalidCredentials = errs.E(errs.Unauthenticated, "activation_password_invalid", "the login or activation password is wrong")
	ErrPasswordExpired    = errs.E(errs.Unauthenticated, "activation_password_expired", "the activation password has expired; ask for a new one")
	ErrLocked             = errs.E(errs.RateLimited, "activation_locked", "too many failed activation attempts; try again later")
	ErrPlatformNotAllowed = errs.E(errs.Forbidden, "platform_not_allowed", "your activation profile does not allow this platform")
	ErrDeviceLimit        = errs.E(errs.Conflict, "device_limit_reached", "you have activated as many devices as your activation profile allows")
	ErrNoSession          = errs.E(errs.Unauthenticated, "enrollment_session_required", "no valid enrollment session; start the activation again")
)

// Stores is what the Service needs from the database.
type Stores interface {
	user.Store
	user.MemberStore
	ProfileStore
	PasswordStore
	SessionStore
	device.Store
}

// Service runs activation. Set the exported fields, then call the methods;
// zero tunables take the defaults above.
type Service struct {
	Store Stores
	CA    *pki.CA
	// Pepper keys the HMAC of activation passwords. It lives outside the
	// database, so a stolen database alone does not allow guessing
	// passwords offline.
	Pepper []byte
	// DefaultProfileID applies to users with no assignment.
	DefaultProfileID string

	Now  func() time.Time
	Rand io.Reader

	SessionTTL   time.Duration
	FailureLimit int
	LockDuration time.Duration
	CertValidity time.Duration

	// Metrics, optional (see NewMetrics).
	Metrics *Metrics

	// Admit, optional, is called once a new activation's credentials are
	// found valid; a non-nil error refuses the activation with that error
	// (the licence gate, license.Gate.Admit). It runs only in
	// Activate, so enrollments it admitted and enrolled devices' later
	// requests never depend on it; a refusal consumes nothing (no failed
	// attempt counted, no password used).
	Admit func(ctx context.Context) error
}

// Metrics counts activations and failures by reason.
type Metrics struct {
	Started   prometheus.Counter
	Completed prometheus.Counter
	Failures  *prometheus.CounterVec
}

// NewMetrics registers the activation metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Started:   prometheus.NewCounter(prometheus.CounterOpts{Name: "custos_activations_started_total", Help: "Activation requests whose credentials were accepted."}),
		Completed: prometheus.NewCounter(prometheus.CounterOpts{Name: "custos_activations_enrolled_total", Help: "Activations that received their device certificate."}),
		Failures:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "custos_activation_failures_total", Help: "Refused activation steps by error code."}, []string{"reason"}),
	}
	reg.MustRegister(m.Started, m.Completed, m.Failures)
	return m
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Service) rand() io.Reader {
	if s.Rand != nil {
		return s.Rand
	}
	return rand.Reader
}

func orDefault[T int | time.Duration](v, d T) T {
	if v <= 0 {
		return d
	}
	return v
}

func (s *Service) fail(err error) error {
	if s.Metrics != nil {
		code, _, _ := errs.Public(err)
		s.Metrics.Failures.WithLabelValues(code).Inc()
	}
	return err
}

// hashPassword is the keyed hash stored for a password. The user ID is part
// of the input so that equal passwords of two users never share a hash.
// The password is hashed in its canonical form (CanonicalPassword).
func (s *Service) hashPassword(userID, password string) []byte {
	m := hmac.New(sha256.New, s.Pepper)
	m.Write([]byte(userID))
	m.Write([]byte{0})
	m.Write([]byte(CanonicalPassword(password)))
	return m.Sum(nil)
}

// CanonicalPassword is the form in which activation passwords are
// compared: upper case, without spaces or dashes. A password is read off an
// email or a screen and typed on a phone keyboard that capitalises and
// autocorrects; "k7qm 3zpa-wx9e-ht4c" is meant as "K7QM-3ZPA-WX9E-HT4C",
// and a failed attempt counts towards the lock. The few bits case would add
// are worth less than the lock-out they would cause: the password is
// single use, expires, and allows five attempts.
func CanonicalPassword(p string) string {
	return strings.ToUpper(strings.Map(func(r rune) rune {
		if r == '-' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, p))
}

// HashToken is how enrollment-session tokens are stored: they are 256-bit
// random values, so an unkeyed hash suffices.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// ActivateInput is the activation request of seed step 5.
type ActivateInput struct {
	Login      string
	Password   string
	Platform   Platform
	OSVersion  string
	HardwareID string
	Model      string
	Name       string
}

func (in *ActivateInput) validate() error {
	fields := map[string]string{}
	if in.Login == "" || len(in.Login) > MaxField {
		fields["login"] = "required, at most 256 bytes"
	}
	if in.Password == "" || len(in.Password) > MaxPasswordLen {
		fields["password"] = "required, at most 128 bytes"
	}
	if !ValidPlatform(in.Platform) {
		fields["platform"] = "unknown platform"
	}
	if in.HardwareID == "" {
		fields["hardware_id"] = "required"
	}
	for name, v := range map[string]string{"hardware_id": in.HardwareID, "os_version": in.OSVersion, "model": in.Model, "name": in.Name, "login": in.Login} {
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

// Activation is the outcome of seed step 6: a device instance in state
// activating and an enrollment session whose token the device presents
// with its CSR.
type Activation struct {
	Device       *device.Device
	SessionToken string
	ExpiresAt    time.Time
	Type         Type
}

// dummyHash is compared against when the login is unknown, so that an
// unknown login costs the same time as a wrong password.
var dummyHash = make([]byte, sha256.Size)

// Activate checks the credentials (seed step 6a), creates the device
// instance tied to the user (6b, 6c) and opens an enrollment session (6d).
func (s *Service) Activate(ctx context.Context, in ActivateInput) (*Activation, error) {
	if err := in.validate(); err != nil {
		return nil, s.fail(err)
	}
	now := s.now()
	u, err := s.Store.UserByLogin(ctx, strings.ToLower(in.Login))
	if errors.Is(err, errs.ErrNotFound) {
		subtle.ConstantTimeCompare(s.hashPassword("", in.Password), dummyHash)
		return nil, s.fail(ErrInvalidCredentials)
	}
	if err != nil {
		return nil, fmt.Errorf("activation: find user: %w", err)
	}
	if u.ActivationLockedUntil != nil && now.Before(*u.ActivationLockedUntil) {
		return nil, s.fail(ErrLocked)
	}
	pw, err := s.matchPassword(ctx, u.ID, in.Password, now)
	if err != nil {
		if errs.KindOf(err) == errs.Unauthenticated {
			if _, rerr := s.Store.RecordFailure(ctx, u.ID, orDefault(s.FailureLimit, DefaultFailureLimit), now.Add(orDefault(s.LockDuration, DefaultLockDuration))); rerr != nil {
				return nil, fmt.Errorf("activation: count failure: %w", rerr)
			}
		}
		return nil, s.fail(err)
	}
	// The licence is asked only once the credentials hold: its answer
	// (device limit, expiry) is for the organisation's users, not for
	// anyone who can reach the endpoint.
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
	if err := s.checkDevices(ctx, u.ID, in.HardwareID, prof.MaxDevices); err != nil {
		return nil, s.fail(err)
	}
	token, err := randomToken(s.rand())
	if err != nil {
		return nil, err
	}
	d := &device.Device{
		ID: id.New(), UserID: u.ID, HardwareID: in.HardwareID, Platform: string(in.Platform),
		OSVersion: in.OSVersion, Model: in.Model, Name: in.Name, ActivationType: string(typ),
		ProfileID: prof.ID, State: device.StateActivating, CreatedAt: now,
	}
	sess := &Session{
		ID: id.New(), TokenHash: HashToken(token), UserID: u.ID, DeviceID: d.ID, PasswordID: pw.ID,
		State: SessionOpen, CreatedAt: now, ExpiresAt: now.Add(orDefault(s.SessionTTL, DefaultSessionTTL)),
	}
	if err := s.Store.OpenSession(ctx, sess, d); err != nil {
		return nil, fmt.Errorf("activation: open session: %w", err)
	}
	if s.Metrics != nil {
		s.Metrics.Started.Inc()
	}
	return &Activation{Device: d, SessionToken: token, ExpiresAt: sess.ExpiresAt, Type: typ}, nil
}

// matchPassword finds the user's password equal to password. Every stored
// password is compared in constant time; a match that is used, revoked or
// expired gets its own clear error (only someone who knows the password
// learns which).
func (s *Service) matchPassword(ctx context.Context, userID, password string, now time.Time) (*Password, error) {
	all, err := s.Store.Passwords(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("activation: passwords: %w", err)
	}
	h := s.hashPassword(userID, password)
	var match *Password
	for _, p := range all {
		if subtle.ConstantTimeCompare(h, p.Hash) == 1 && match == nil {
			match = p
		}
	}
	switch {
	case match == nil:
		return nil, ErrInvalidCredentials
	case match.UsedAt != nil:
		return nil, errs.E(errs.Unauthenticated, ErrPasswordUsed.Code, ErrPasswordUsed.Message)
	case match.RevokedAt != nil:
		return nil, errs.E(errs.Unauthenticated, "activation_password_revoked", "the activation password was replaced or withdrawn; use the newest one")
	case !now.Before(match.ExpiresAt):
		return nil, ErrPasswordExpired
	}
	return match, nil
}

// checkDevices refuses hardware enrolled for another user and a user over
// their profile's device limit (a re-activation of the same hardware by the
// same user replaces the old instance, so it does not count).
func (s *Service) checkDevices(ctx context.Context, userID, hardwareID string, limit int) error {
	same, err := s.Store.ListDevices(ctx, device.Query{HardwareID: hardwareID, Limit: device.MaxPage})
	if err != nil {
		return fmt.Errorf("activation: devices by hardware: %w", err)
	}
	for _, d := range same {
		if d.UserID != userID && (d.State == device.StateEnrolled || d.State == device.StateActive) {
			return ErrHardwareInUse
		}
	}
	if limit <= 0 {
		return nil
	}
	mine, err := s.Store.ListDevices(ctx, device.Query{UserID: userID, Limit: device.MaxPage})
	if err != nil {
		return fmt.Errorf("activation: devices of user: %w", err)
	}
	n := 0
	for _, d := range mine {
		if (d.State == device.StateEnrolled || d.State == device.StateActive) && d.HardwareID != hardwareID {
			n++
		}
	}
	if n >= limit {
		return ErrDeviceLimit
	}
	return nil
}

// Enrollment is the outcome of seed step 8.
type Enrollment struct {
	DeviceID    string
	Certificate *x509.Certificate
	CAPEM       []byte
}

// Enroll validates the CSR against the enrollment session (seed step 8a),
// signs it with the root (8b), and completes the enrollment: the session
// and the activation password are consumed in the same transaction that
// records the certificate.
func (s *Service) Enroll(ctx context.Context, token string, csrBytes []byte) (*Enrollment, error) {
	return s.enroll(ctx, token, csrBytes, false)
}

// enroll is Enroll; anySubject ignores the CSR's subject (EnrollAnySubject).
func (s *Service) enroll(ctx context.Context, token string, csrBytes []byte, anySubject bool) (*Enrollment, error) {
	if token == "" {
		return nil, s.fail(ErrNoSession)
	}
	sess, err := s.Store.SessionByToken(ctx, HashToken(token))
	if errors.Is(err, errs.ErrNotFound) {
		return nil, s.fail(ErrNoSession)
	}
	if err != nil {
		return nil, fmt.Errorf("activation: session: %w", err)
	}
	now := s.now()
	if sess.State != SessionOpen || !now.Before(sess.ExpiresAt) {
		return nil, s.fail(ErrSessionClosed)
	}
	csr, err := pki.ParseCSR(csrBytes)
	if err != nil {
		return nil, s.fail(err)
	}
	if anySubject {
		// Only the public key of a CSR is ever certified; the certificate
		// names the session's device whatever the CSR said.
		csr.Subject = pkix.Name{CommonName: sess.DeviceID}
	}
	cert, err := s.CA.SignDeviceCSR(csr, sess.DeviceID, s.CertValidity)
	if err != nil {
		return nil, s.fail(err)
	}
	rec := IssuedCert{Serial: pki.SerialHex(cert.SerialNumber), DeviceID: sess.DeviceID, NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, DER: cert.Raw}
	if err := s.Store.CompleteSession(ctx, sess.ID, rec, now); err != nil {
		if errs.KindOf(err) == errs.Conflict {
			return nil, s.fail(err)
		}
		return nil, fmt.Errorf("activation: complete session: %w", err)
	}
	// A re-activation may have replaced (and revoked) an older instance.
	s.CA.InvalidateCRL()
	if s.Metrics != nil {
		s.Metrics.Completed.Inc()
	}
	return &Enrollment{DeviceID: sess.DeviceID, Certificate: cert, CAPEM: s.CA.CertPEM}, nil
}

// CertificatePEM encodes a certificate.
func CertificatePEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func randomToken(r io.Reader) (string, error) {
	var b [32]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", fmt.Errorf("activation: random: %w", err)
	}
	return fmt.Sprintf("%x", b[:]), nil
}
