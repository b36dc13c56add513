package appletest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/micromdm/plist"
	"github.com/smallstep/pkcs7"

	"github.com/custos-uem/custos/activation"
	"github.com/custos-uem/custos/id"
	"github.com/custos-uem/custos/platform/apple"
	"github.com/custos-uem/custos/user"
)

// Device is an emulated Apple device: it speaks the check-in and command
// protocols with a Mdm-Signature (or, with MTLS, its TLS client
// certificate) the way iOS and macOS do.
type Device struct {
	UDID    string
	Cert    *x509.Certificate
	Key     crypto.Signer
	BaseURL string
	Client  *http.Client
	// CheckinPath and ServerPath default to the Custos paths.
	CheckinPath, ServerPath string
	// MTLS sends no Mdm-Signature (the client presents the certificate).
	MTLS bool
}

// Command is a command the device received.
type Command struct {
	UUID        string
	RequestType string
	Body        map[string]any // the Command dict
	Raw         []byte
}

// Sign returns the Mdm-Signature of body: a detached CMS signature by the
// identity certificate (Apple, "Pass an Identity Certificate Through a
// Proxy").
func Sign(cert *x509.Certificate, key crypto.Signer, body []byte) (string, error) {
	sd, err := pkcs7.NewSignedData(body)
	if err != nil {
		return "", err
	}
	if err := sd.AddSigner(cert, key, pkcs7.SignerInfoConfig{}); err != nil {
		return "", err
	}
	sd.Detach()
	der, err := sd.Finish()
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(der), nil
}

// Put sends body to path, signed, and returns the status and answer.
func (d *Device) Put(ctx context.Context, path string, body []byte, header http.Header) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, strings.TrimSuffix(d.BaseURL, "/")+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if !d.MTLS && req.Header.Get(apple.HeaderSignature) == "" {
		sig, err := Sign(d.Cert, d.Key, body)
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set(apple.HeaderSignature, sig)
	}
	res, err := d.Client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, b, err
}

func (d *Device) checkinPath() string {
	if d.CheckinPath != "" {
		return d.CheckinPath
	}
	return apple.PathCheckin
}

func (d *Device) serverPath() string {
	if d.ServerPath != "" {
		return d.ServerPath
	}
	return apple.PathServer
}

// Checkin sends one check-in message and returns the status and answer.
func (d *Device) Checkin(ctx context.Context, msg map[string]any) (int, []byte, error) {
	if _, ok := msg["UDID"]; !ok {
		msg["UDID"] = d.UDID
	}
	body, err := plist.Marshal(msg)
	if err != nil {
		return 0, nil, err
	}
	return d.Put(ctx, d.checkinPath(), body, http.Header{"Content-Type": {apple.ContentTypeCheckin}})
}

// Enroll sends Authenticate and TokenUpdate, failing on any answer but 200.
func (d *Device) Enroll(ctx context.Context) error {
	for _, m := range []map[string]any{
		{"MessageType": "Authenticate", "Topic": "com.apple.mgmt.External.test", "SerialNumber": "C02" + d.UDID[:8], "DeviceName": "emulated", "Model": "iPhone14,2", "OSVersion": "17.4"},
		{"MessageType": "TokenUpdate", "Topic": "com.apple.mgmt.External.test", "Token": []byte("token-" + d.UDID), "PushMagic": "magic-" + d.UDID, "UnlockToken": []byte("unlock")},
	} {
		st, b, err := d.Checkin(ctx, m)
		if err != nil {
			return err
		}
		if st != http.StatusOK {
			return fmt.Errorf("%s: HTTP %d: %s", m["MessageType"], st, b)
		}
	}
	return nil
}

// Report sends a report to the ServerURL and returns the next command, or
// nil when the server ended the session (an empty 200 answer).
func (d *Device) Report(ctx context.Context, rep map[string]any) (*Command, int, error) {
	if _, ok := rep["UDID"]; !ok {
		rep["UDID"] = d.UDID
	}
	body, err := plist.Marshal(rep)
	if err != nil {
		return nil, 0, err
	}
	return d.ReportBody(ctx, body)
}

// ReportBody sends an encoded report (benchmarks sign bodies ahead).
func (d *Device) ReportBody(ctx context.Context, body []byte) (*Command, int, error) {
	st, b, err := d.Put(ctx, d.serverPath(), body, nil)
	if err != nil || st != http.StatusOK {
		return nil, st, err
	}
	c, err := DecodeCommand(b)
	return c, st, err
}

// ReportSigned sends a report signed ahead of time.
func (d *Device) ReportSigned(ctx context.Context, body []byte, sig string) (*Command, int, error) {
	st, b, err := d.Put(ctx, d.serverPath(), body, http.Header{apple.HeaderSignature: {sig}})
	if err != nil || st != http.StatusOK {
		return nil, st, err
	}
	c, err := DecodeCommand(b)
	return c, st, err
}

// DecodeCommand decodes a command answer; an empty one is nil.
func DecodeCommand(b []byte) (*Command, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, nil
	}
	var w struct {
		CommandUUID string
		Command     map[string]any
	}
	if err := plist.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("decode command: %w", err)
	}
	rt, _ := w.Command["RequestType"].(string)
	return &Command{UUID: w.CommandUUID, RequestType: rt, Body: w.Command, Raw: b}, nil
}

// Idle reports Idle and returns the first command.
func (d *Device) Idle(ctx context.Context) (*Command, int, error) {
	return d.Report(ctx, map[string]any{"Status": apple.StatusIdle})
}

// Answer reports status for c with extra keys and returns the next command.
func (d *Device) Answer(ctx context.Context, c *Command, status string, extra map[string]any) (*Command, int, error) {
	rep := map[string]any{"Status": status, "CommandUUID": c.UUID}
	for k, v := range extra {
		rep[k] = v
	}
	return d.Report(ctx, rep)
}

// Identity is a device identity certificate issued by the Core's CA
// through the activation service and recorded for its device, as SCEP
// does for a real device.
type Identity struct {
	DeviceID string
	Cert     *x509.Certificate
	Key      crypto.Signer
}

// Activator is the part of the activation service identities come from.
type Activator interface {
	SetPassword(ctx context.Context, in activation.SetPasswordInput) (string, *activation.Password, error)
	Activate(ctx context.Context, in activation.ActivateInput) (*activation.Activation, error)
	Enroll(ctx context.Context, token string, csr []byte) (*activation.Enrollment, error)
}

// UserCreator creates users (user.Store).
type UserCreator interface {
	CreateUser(ctx context.Context, u *user.User) error
}

// NewIdentity activates a new iOS device for a new user and returns its
// identity (an ECDSA P-256 key: cheap to make; the protocol treats RSA
// the same).
func NewIdentity(ctx context.Context, act Activator, users UserCreator, platform activation.Platform) (*Identity, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return NewIdentityKey(ctx, act, users, platform, key)
}

// NewIdentityKey is NewIdentity with the device's key (benchmarks share
// one RSA key among many devices: key generation is not what they
// measure).
func NewIdentityKey(ctx context.Context, act Activator, users UserCreator, platform activation.Platform, key crypto.Signer) (*Identity, error) {
	now := time.Now()
	u := &user.User{ID: id.New(), Email: "u" + id.New() + "@example.org", Source: user.SourceLocal, CreatedAt: now, UpdatedAt: now}
	if err := users.CreateUser(ctx, u); err != nil {
		return nil, err
	}
	pw, _, err := act.SetPassword(ctx, activation.SetPasswordInput{UserID: u.ID, CreatedBy: "test"})
	if err != nil {
		return nil, err
	}
	a, err := act.Activate(ctx, activation.ActivateInput{Login: u.Email, Password: pw, Platform: platform,
		OSVersion: "17.4", HardwareID: "udid-" + id.New(), Model: "iPhone14,2", Name: "emulated"})
	if err != nil {
		return nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: a.Device.ID}}, key)
	if err != nil {
		return nil, err
	}
	e, err := act.Enroll(ctx, a.SessionToken, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}))
	if err != nil {
		return nil, err
	}
	return &Identity{DeviceID: a.Device.ID, Cert: e.Certificate, Key: key}, nil
}

// MustIdentity is NewIdentity for tests.
func MustIdentity(t testing.TB, act Activator, users UserCreator) *Identity {
	t.Helper()
	idn, err := NewIdentity(context.Background(), act, users, activation.IOS)
	if err != nil {
		t.Fatal(err)
	}
	return idn
}

// NewUDID returns a random UDID in Apple's format.
func NewUDID() string {
	return strings.ToUpper(id.New())
}
