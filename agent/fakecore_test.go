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

// fakeCore implements the endpoints of platform/agent faithfully enough
// to exercise the agent: credentials, an enrollment session cookie required
// by /enroll and usable once, CSRs checked and signed by a test CA, client
// certificates required by every later request, revocation refused at the
// TLS handshake (or, with refuseHTTP, by a 401 as the real Core does), a
// configuration answered "unchanged" for the version the device runs, and
// a command queue with the guarantees of package command: at-least-once
// delivery (a command stays "sent" until its result arrives and is
// delivered again meanwhile), one command per round trip, results recorded
// once per ID (a repeat is answered Duplicate), not-now commands held back,
// and the long poll of /wait.
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

	// The command channel.
	queue       map[string][]*fakeCmd // by device ID, in delivery order
	results     []wire.CommandResult  // results recorded, in order (a redelivered command's too)
	duplicates  int                   // results answered Duplicate
	cmdRequests int
	cmdSeq      int
	again       map[string]bool // command IDs to deliver once more after their result
	dropAnswers int             // cut the connection instead of answering the next N requests carrying a result
	failResults int             // answer 503 to the next N requests carrying a result, recording nothing
	noCommands  bool            // answer 404 route_not_found on /commands, as an older Core
	noWait      bool            // the same on /wait
	waits       int             // long polls asked for
	waiting     int             // long polls open now
	changed     chan struct{}   // closed and replaced when the queue changes
}

// fakeCmd is a queued command and its state in the fake queue.
type fakeCmd struct {
	cmd    wire.Command
	status string // "pending", "sent", "not_now" (held until released) or final
}

type session struct {
	deviceID, cn string
	used         bool
}

type fakeDevice struct {
	id, hardwareID, platform, state, configVersion string
	software                                       []device.App
	push                                           *wire.PushRegistration
}

func newFakeCore(t testing.TB) *fakeCore {
	t.Helper()
	fc := &fakeCore{
		t: t, ca: newTestCA(t, "Custos Test CA"),
		login: "ana@example.com", password: "correct horse",
		sessions: map[string]*session{}, devices: map[string]*fakeDevice{},
		bySerial: map[string]string{}, revoked: map[string]bool{},
		config: wire.Configuration{Version: "v1", Items: []wire.Item{}, PollSeconds: 600},
		queue:  map[string][]*fakeCmd{}, again: map[string]bool{}, changed: make(chan struct{}),
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
	mux.HandleFunc("POST "+wire.PathCommands, fc.commands)
	mux.HandleFunc("POST "+wire.PathWait, fc.wait)
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
	fc.srv.Config.ErrorLog = log.New(io.Discard, "", 0)     // handshake refusals are expected
	fc.srv.Listener = httpx.LingerListener(fc.srv.Listener) // as the Core's: refusals reach the agent
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

// requestDevice is deviceOf for a request whose body names bodyID: a body naming
// another device than the certificate's is refused, as the Core does.
// fc.mu must be held.
func (fc *fakeCore) requestDevice(w http.ResponseWriter, r *http.Request, bodyID string) *fakeDevice {
	d := fc.deviceOf(w, r)
	if d != nil && bodyID != d.id {
		httpx.WriteError(w, r, errs.E(errs.Forbidden, "device_mismatch", "the request names another device"))
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
	d := fc.requestDevice(w, r, req.DeviceID)
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
	fc.checkins = append(fc.checkins, req)
	if req.Push != nil {
		p := *req.Push
		d.push = &p
	}
	if req.Software != nil {
		d.software = req.Software
	}
	cfg := fc.config
	if req.ConfigVersion != "" && req.ConfigVersion == cfg.Version {
		cfg.Unchanged, cfg.Items = true, []wire.Item{}
	}
	httpx.WriteJSON(w, http.StatusOK, wire.CheckinResponse{DeviceID: d.id, State: d.state, Configuration: cfg, PushRegistered: d.push != nil})
}

// commands is one round trip of the command channel.
func (fc *fakeCore) commands(w http.ResponseWriter, r *http.Request) {
	var req wire.CommandsRequest
	if err := httpx.DecodeJSON(w, r, wire.MaxCommandsBody, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if fc.noCommands {
		httpx.WriteError(w, r, errs.E(errs.NotFound, "route_not_found", "no such route"))
		return
	}
	d := fc.requestDevice(w, r, req.DeviceID)
	if d == nil {
		return
	}
	fc.cmdRequests++
	var resp wire.CommandsResponse
	if res := req.Result; res != nil {
		if fc.failResults > 0 {
			fc.failResults--
			httpx.WriteError(w, r, errs.E(errs.Unavailable, "database_unavailable", "try again later"))
			return
		}
		var c *fakeCmd
		for _, q := range fc.queue[d.id] {
			if q.cmd.ID == res.CommandID {
				c = q
			}
		}
		switch {
		case c == nil || c.status == "pending":
			httpx.WriteError(w, r, errs.E(errs.NotFound, "unknown_command", "no such command was queued for this device"))
			return
		case c.status == "sent":
			fc.results = append(fc.results, *res)
			c.status = res.Status
			if fc.again[c.cmd.ID] && res.Status != "not_now" {
				delete(fc.again, c.cmd.ID)
				c.status = "pending"
			}
		default:
			resp.Duplicate = true
			fc.duplicates++
		}
	}
	for _, q := range fc.queue[d.id] {
		if q.status == "pending" || q.status == "sent" {
			q.status = "sent"
			cmd := q.cmd
			resp.Command = &cmd
			break
		}
	}
	resp.Idle = resp.Command == nil
	if req.Result != nil && fc.dropAnswers > 0 {
		fc.dropAnswers--
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			fc.t.Errorf("hijack: %v", err)
			return
		}
		conn.Close()
		return
	}
	httpx.WriteJSON(w, http.StatusOK, resp)
}

// due reports whether a command is due for the device; fc.mu is held.
func (fc *fakeCore) due(id string) bool {
	for _, q := range fc.queue[id] {
		if q.status == "pending" || q.status == "sent" {
			return true
		}
	}
	return false
}

// wait is the long poll: it answers as soon as a command is due, or at
// the timeout.
func (fc *fakeCore) wait(w http.ResponseWriter, r *http.Request) {
	var req wire.WaitRequest
	if err := httpx.DecodeJSON(w, r, wire.MaxWaitBody, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	fc.mu.Lock()
	fc.waits++
	if fc.noWait {
		fc.mu.Unlock()
		httpx.WriteError(w, r, errs.E(errs.NotFound, "route_not_found", "no such route"))
		return
	}
	d := fc.deviceOf(w, r)
	if d == nil {
		fc.mu.Unlock()
		return
	}
	if req.TimeoutSeconds < 1 || time.Duration(req.TimeoutSeconds)*time.Second > wire.MaxWait {
		fc.mu.Unlock()
		httpx.WriteError(w, r, errs.E(errs.Invalid, "timeout_invalid", "timeout_seconds out of range"))
		return
	}
	timer := time.NewTimer(time.Duration(req.TimeoutSeconds) * time.Second)
	defer timer.Stop()
	for {
		if fc.due(d.id) {
			fc.mu.Unlock()
			httpx.WriteJSON(w, http.StatusOK, wire.WaitResponse{Pending: true})
			return
		}
		ch := fc.changed
		fc.waiting++
		fc.mu.Unlock()
		var done bool
		select {
		case <-ch:
		case <-timer.C:
			done = true
		case <-r.Context().Done():
			done = true
		}
		fc.mu.Lock()
		fc.waiting--
		if done {
			fc.mu.Unlock()
			httpx.WriteJSON(w, http.StatusOK, wire.WaitResponse{})
			return
		}
	}
}

// enqueue queues commands for a device; their IDs are cmdNNNN unless set.
func (fc *fakeCore) enqueue(deviceID string, cmds ...wire.Command) []string {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	var ids []string
	for _, c := range cmds {
		fc.cmdSeq++
		if c.ID == "" {
			c.ID = fmt.Sprintf("cmd%04d", fc.cmdSeq)
		}
		fc.queue[deviceID] = append(fc.queue[deviceID], &fakeCmd{cmd: c, status: "pending"})
		ids = append(ids, c.ID)
	}
	close(fc.changed)
	fc.changed = make(chan struct{})
	return ids
}

// release makes held (not-now) commands due again, as the real queue does
// after command.NotNowDelay.
func (fc *fakeCore) release(deviceID string) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	for _, q := range fc.queue[deviceID] {
		if q.status == "not_now" {
			q.status = "pending"
		}
	}
	close(fc.changed)
	fc.changed = make(chan struct{})
}

// commandResults returns the results recorded and the duplicates answered.
func (fc *fakeCore) commandResults() ([]wire.CommandResult, int) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return append([]wire.CommandResult(nil), fc.results...), fc.duplicates
}

// resultsOf returns the results recorded for one command.
func (fc *fakeCore) resultsOf(id string) []wire.CommandResult {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	var out []wire.CommandResult
	for _, r := range fc.results {
		if r.CommandID == id {
			out = append(out, r)
		}
	}
	return out
}

func (fc *fakeCore) ack(w http.ResponseWriter, r *http.Request) {
	var req wire.AckRequest
	if err := httpx.DecodeJSON(w, r, wire.MaxAckBody, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	d := fc.requestDevice(w, r, req.DeviceID)
	if d == nil {
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
