package agent_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/httpx"
	wire "github.com/custos-uem/custos/platform/agent"
)

// testCA is a certificate authority for the fake Core.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
	pool *x509.CertPool
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pool: pool}
}

// issue signs a certificate for pub.
func (ca *testCA) issue(t testing.TB, tmpl *x509.Certificate, pub any) *x509.Certificate {
	t.Helper()
	serial := make([]byte, 16)
	_, _ = rand.Read(serial)
	tmpl.SerialNumber = new(big.Int).SetBytes(serial)
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = time.Now().Add(-time.Minute)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

func certPEM(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

// fakeCore implements the four endpoints of platform/agent faithfully
// enough to exercise the agent: credentials, an enrollment session cookie
// required by /enroll and usable once, CSRs checked and signed by a test
// CA, client certificates required by /checkin and /ack, and revocation
// refused at the TLS handshake (or, with refuseHTTP, by a 401 as the
// real Core does).
type fakeCore struct {
	t   testing.TB
	ca  *testCA
	srv *httptest.Server

	mu         sync.Mutex
	login      string
	password   string
	seq        int
	sessions   map[string]*session
	devices    map[string]*fakeDevice // by ID
	bySerial   map[string]string      // cert serial → device ID
	revoked    map[string]bool
	refuseHTTP bool // refuse revoked certificates by HTTP 401 instead of TLS
	config     wire.Configuration
	checkins   []wire.CheckinRequest
	acks       []wire.AckRequest
	failNext   int    // answer 503 to the next failNext check-ins
	contacts   int    // mutual-TLS handshakes and requests seen
	retryAfter string // Retry-After of those 503s
	// Hooks to misbehave or observe.
	omitCookie bool
	onEnroll   func(csr *x509.CertificateRequest)
	badCert    func(csr *x509.CertificateRequest) string // replaces the certificate answered
}

type session struct {
	deviceID, cn string
	used         bool
}

type fakeDevice struct {
	id, hardwareID, platform, state, configVersion string
	software                                       []device.App
}

func newFakeCore(t testing.TB) *fakeCore {
	t.Helper()
	fc := &fakeCore{
		t: t, ca: newTestCA(t, "Custos Test CA"),
		login: "ana@example.com", password: "correct horse",
		sessions: map[string]*session{}, devices: map[string]*fakeDevice{},
		bySerial: map[string]string{}, revoked: map[string]bool{},
		config: wire.Configuration{Version: "v1", Items: []wire.Item{}, PollSeconds: 600},
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srvCert := fc.ca.issue(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "core.test"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, &key.PublicKey)

	mux := http.NewServeMux()
	mux.HandleFunc("POST "+wire.PathActivate, fc.activate)
	mux.HandleFunc("POST "+wire.PathEnroll, fc.enroll)
	mux.HandleFunc("POST "+wire.PathCheckin, fc.checkin)
	mux.HandleFunc("POST "+wire.PathAck, fc.ack)
	fc.srv = httptest.NewUnstartedServer(httpx.Observe(slog.New(slog.DiscardHandler), nil, mux))
	fc.srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{srvCert.Raw}, PrivateKey: key}},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    fc.ca.pool,
		MinVersion:   tls.VersionTLS12,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return nil
			}
			fc.mu.Lock()
			defer fc.mu.Unlock()
			fc.contacts++
			if fc.revoked[serialOf(cs.PeerCertificates[0])] && !fc.refuseHTTP {
				return errors.New("certificate revoked")
			}
			return nil
		},
	}
	fc.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake refusals are expected
	fc.srv.StartTLS()
	t.Cleanup(fc.srv.Close)
	return fc
}

func serialOf(c *x509.Certificate) string { return strings.ToLower(c.SerialNumber.Text(16)) }

func (fc *fakeCore) activate(w http.ResponseWriter, r *http.Request) {
	var req wire.ActivateRequest
	if err := httpx.DecodeJSON(w, r, wire.MaxActivateBody, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if req.Login != fc.login || req.Password != fc.password {
		httpx.WriteError(w, r, errs.E(errs.Unauthenticated, "activation_password_invalid", "the activation password is wrong, expired or already used"))
		return
	}
	if req.Platform == "" || req.HardwareID == "" || req.OSVersion == "" {
		httpx.WriteError(w, r, errs.E(errs.Invalid, "device_identity_missing", "platform, os_version and hardware_id are required"))
		return
	}
	fc.seq++
	id := fmt.Sprintf("dev%04d", fc.seq)
	fc.devices[id] = &fakeDevice{id: id, hardwareID: req.HardwareID, platform: req.Platform, state: "activating"}
	tok := make([]byte, 16)
	_, _ = rand.Read(tok)
	token := hex.EncodeToString(tok)
	fc.sessions[token] = &session{deviceID: id, cn: "custos-device " + id}
	if !fc.omitCookie {
		http.SetCookie(w, &http.Cookie{Name: wire.SessionCookie, Value: token, Path: "/device/v1/", HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	}
	httpx.WriteJSON(w, http.StatusOK, wire.ActivateResponse{
		DeviceID: id, ActivationType: "mdm_controls", CSRCommonName: "custos-device " + id,
		ExpiresAt: time.Now().Add(10 * time.Minute).UTC().Format(time.RFC3339),
	})
}

func (fc *fakeCore) enroll(w http.ResponseWriter, r *http.Request) {
	var req wire.EnrollRequest
	if err := httpx.DecodeJSON(w, r, wire.MaxEnrollBody, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	ck, err := r.Cookie(wire.SessionCookie)
	if err != nil {
		httpx.WriteError(w, r, errs.E(errs.Unauthenticated, "enrollment_session_missing", "no enrollment session"))
		return
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	s := fc.sessions[ck.Value]
	if s == nil || s.used {
		httpx.WriteError(w, r, errs.E(errs.Unauthenticated, "enrollment_session_invalid", "the enrollment session is unknown or used"))
		return
	}
	blk, _ := pem.Decode([]byte(req.CSR))
	if blk == nil || blk.Type != "CERTIFICATE REQUEST" {
		httpx.WriteError(w, r, errs.E(errs.Invalid, "csr_invalid", "no PEM CSR"))
		return
	}
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil || csr.CheckSignature() != nil {
		httpx.WriteError(w, r, errs.E(errs.Invalid, "csr_invalid", "the CSR does not parse or its signature is wrong"))
		return
	}
	if csr.Subject.CommonName != s.cn {
		httpx.WriteError(w, r, errs.E(errs.Invalid, "csr_subject_mismatch", "the CSR names another device"))
		return
	}
	if fc.onEnroll != nil {
		fc.onEnroll(csr)
	}
	s.used = true
	leaf := fc.ca.issue(fc.t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: s.cn},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, csr.PublicKey)
	fc.bySerial[serialOf(leaf)] = s.deviceID
	fc.devices[s.deviceID].state = "enrolled"
	cert := certPEM(leaf)
	if fc.badCert != nil {
		cert = fc.badCert(csr)
	}
	httpx.WriteJSON(w, http.StatusOK, wire.EnrollResponse{Certificate: cert, CA: string(fc.ca.pem)})
}

// deviceOf authenticates a mutual-TLS request.
func (fc *fakeCore) deviceOf(w http.ResponseWriter, r *http.Request) *fakeDevice {
	fc.contacts++
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		httpx.WriteError(w, r, errs.E(errs.Unauthenticated, "client_certificate_required", "a client certificate is required"))
		return nil
	}
	serial := serialOf(r.TLS.PeerCertificates[0])
	if fc.revoked[serial] {
		httpx.WriteError(w, r, errs.E(errs.Unauthenticated, "certificate_revoked", "the device certificate is revoked or no longer belongs to an enrolled device"))
		return nil
	}
	d := fc.devices[fc.bySerial[serial]]
	if d == nil {
		httpx.WriteError(w, r, errs.E(errs.Unauthenticated, "client_certificate_unknown", "unknown certificate"))
		return nil
	}
	return d
}

func (fc *fakeCore) checkin(w http.ResponseWriter, r *http.Request) {
	var req wire.CheckinRequest
	if err := httpx.DecodeJSON(w, r, wire.MaxCheckinBody, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	d := fc.deviceOf(w, r)
	if d == nil {
		return
	}
	if fc.failNext > 0 {
		fc.failNext--
		if fc.retryAfter != "" {
			w.Header().Set("Retry-After", fc.retryAfter)
		}
		httpx.WriteError(w, r, errs.E(errs.Unavailable, "database_unavailable", "try again later"))
		return
	}
	if req.DeviceID != d.id {
		httpx.WriteError(w, r, errs.E(errs.Forbidden, "device_mismatch", "the request names another device"))
		return
	}
	fc.checkins = append(fc.checkins, req)
	if req.Software != nil {
		d.software = req.Software
	}
	httpx.WriteJSON(w, http.StatusOK, wire.CheckinResponse{DeviceID: d.id, State: d.state, Configuration: fc.config})
}

func (fc *fakeCore) ack(w http.ResponseWriter, r *http.Request) {
	var req wire.AckRequest
	if err := httpx.DecodeJSON(w, r, wire.MaxAckBody, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	d := fc.deviceOf(w, r)
	if d == nil {
		return
	}
	if req.DeviceID != d.id {
		httpx.WriteError(w, r, errs.E(errs.Forbidden, "device_mismatch", "the request names another device"))
		return
	}
	if req.Version != fc.config.Version {
		httpx.WriteError(w, r, errs.E(errs.Conflict, "configuration_version_stale", "that is not the current configuration"))
		return
	}
	fc.acks = append(fc.acks, req)
	d.state, d.configVersion = "active", req.Version
	httpx.WriteJSON(w, http.StatusOK, wire.AckResponse{State: d.state})
}

// revoke removes the device: its certificate is refused from the next
// connection on (TLS) or request on (HTTP, with refuseHTTP), and open
// connections are cut.
func (fc *fakeCore) revoke(deviceID string) {
	fc.mu.Lock()
	for serial, id := range fc.bySerial {
		if id == deviceID {
			fc.revoked[serial] = true
		}
	}
	fc.devices[deviceID].state = "removed"
	fc.mu.Unlock()
	fc.srv.CloseClientConnections()
}

func (fc *fakeCore) set(f func(fc *fakeCore)) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	f(fc)
}

func (fc *fakeCore) recorded() ([]wire.CheckinRequest, []wire.AckRequest) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return append([]wire.CheckinRequest(nil), fc.checkins...), append([]wire.AckRequest(nil), fc.acks...)
}

// contacted returns the number of mutual-TLS handshakes and requests seen.
func (fc *fakeCore) contacted() int {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return fc.contacts
}

func (fc *fakeCore) device(id string) fakeDevice {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return *fc.devices[id]
}
