package core_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custos-uem/custos/agent"
	"github.com/custos-uem/custos/agent/sim"
	"github.com/custos-uem/custos/core"
	"github.com/custos-uem/custos/httpx"
	"github.com/custos-uem/custos/pki"
	wire "github.com/custos-uem/custos/platform/agent"
	"github.com/custos-uem/custos/sqlstore/sqltest"
)

// clock is a settable clock shared by the Core under test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// env is one Core under test with its data directory, database and the
// administrator's bootstrap token.
type env struct {
	t     *testing.T
	dir   string
	dsn   string
	clock *clock
	m     *core.Main
	token string
	roots *x509.CertPool
	hc    *http.Client
	// configure, when set, adjusts the Config of every start.
	configure func(*core.Config)
}

func newEnv(t *testing.T, backend string) *env {
	t.Helper()
	return newEnvWith(t, backend, nil)
}

// newEnvWith starts a Core whose Config configure adjusts.
func newEnvWith(t *testing.T, backend string, configure func(*core.Config)) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), dsn: sqltest.DSN(t, backend), clock: &clock{now: time.Now().UTC()}, configure: configure}
	e.start()
	return e
}

// start runs a Core on 127.0.0.1:0 over e's data directory and database.
func (e *env) start() {
	e.t.Helper()
	cfg := core.Config{
		DataDir: e.dir, Database: e.dsn, Listen: "127.0.0.1:0", ActivationRate: -1,
		// Short, so that fail/slow-client-cut-off sees a client cut off
		// well within its 5 s; not shorter, because net/http also bounds
		// the TLS handshake by it, and a 300 ms bound failed handshakes
		// (the client saw EOF) when the race detector and a loaded
		// machine slowed them.
		ReadHeaderTimeout: 2 * time.Second,
		MetricsListen:     "127.0.0.1:0",
		Logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:               e.clock.Now,
	}
	if e.configure != nil {
		e.configure(&cfg)
	}
	m := core.NewMain(cfg)
	if err := m.Run(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { m.Close() })
	e.m = m
	tok, err := os.ReadFile(filepath.Join(e.dir, "admin-token"))
	if err != nil {
		e.t.Fatal(err)
	}
	e.token = strings.TrimSpace(string(tok))
	caPEM, err := os.ReadFile(filepath.Join(e.dir, pki.CAFile))
	if err != nil {
		e.t.Fatal(err)
	}
	e.roots = x509.NewCertPool()
	e.roots.AppendCertsFromPEM(caPEM)
	e.hc = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.roots}}}
}

func (e *env) restart() {
	e.t.Helper()
	if err := e.m.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.start()
}

// api calls the admin API and decodes the answer into out (if not nil).
func (e *env) api(method, path string, body, out any) int {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.m.URL()+path, rd)
	req.Header.Set("Authorization", "Bearer "+e.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.hc.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode
}

type userOut struct {
	ID                string `json:"id"`
	Email             string `json:"email"`
	FailedActivations int    `json:"failed_activations"`
}

// mustUser creates a user through the API and gives them an activation
// password.
func (e *env) mustUser(email string) (userOut, string) {
	e.t.Helper()
	var u userOut
	if st := e.api("POST", "/api/v1/users", map[string]string{"email": email}, &u); st != 201 {
		e.t.Fatalf("create user: %d", st)
	}
	return u, e.mustPassword(u.ID, "")
}

func (e *env) mustPassword(userID, expiresIn string) string {
	e.t.Helper()
	body := map[string]string{}
	if expiresIn != "" {
		body["expires_in"] = expiresIn
	}
	var p struct {
		Password string `json:"password"`
	}
	if st := e.api("POST", "/api/v1/users/"+userID+"/activation-passwords", body, &p); st != 201 || p.Password == "" {
		e.t.Fatalf("set password: %d", st)
	}
	return p.Password
}

func (e *env) agent(store agent.Store, seed uint64) *agent.Client {
	e.t.Helper()
	dev, err := sim.New("android", seed)
	if err != nil {
		e.t.Fatal(err)
	}
	c, err := agent.New(agent.Options{ServerURL: e.m.URL(), ServerCAs: e.roots, Store: store, Collector: dev})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(c.Close)
	return c
}

type deviceOut struct {
	ID         string `json:"id"`
	UserID     string `json:"user_id"`
	State      string `json:"state"`
	CertSerial string `json:"cert_serial"`
	LastSeenAt string `json:"last_seen_at"`
}

func (e *env) devices() []deviceOut {
	e.t.Helper()
	var l struct {
		Items []deviceOut `json:"items"`
	}
	if st := e.api("GET", "/api/v1/devices", nil, &l); st != 200 {
		e.t.Fatalf("list devices: %d", st)
	}
	return l.Items
}

// TestActivationEndToEndSurvivesRestart is the end-to-end test: a
// real Core, agents activating over the real protocol, a restart, and the
// device still authenticating with the certificate it got before.
func TestActivationEndToEndSurvivesRestart(t *testing.T) {
	for _, backend := range sqltest.Backends(t) {
		t.Run(backend, func(t *testing.T) {
			e := newEnv(t, backend)
			fingerprint := e.m.CA.Fingerprint()
			u, pw := e.mustUser("ana@example.org")
			store, err := agent.OpenDir(filepath.Join(t.TempDir(), "agent"))
			if err != nil {
				t.Fatal(err)
			}
			a, err := e.agent(store, 7).Activate(context.Background(), "ana@example.org", pw)
			if err != nil {
				t.Fatal(err)
			}
			if a.State != "active" || a.ActivationType != "mdm_controls" {
				t.Fatalf("activation = %+v", a)
			}
			var got struct {
				deviceOut
				Inventory struct {
					Info     struct{ Model string }  `json:"info"`
					Software []struct{ Name string } `json:"software"`
				} `json:"inventory"`
			}
			if st := e.api("GET", "/api/v1/devices/"+a.DeviceID, nil, &got); st != 200 {
				t.Fatalf("get device: %d", st)
			}
			if got.UserID != u.ID || got.State != "active" || got.Inventory.Info.Model == "" || len(got.Inventory.Software) == 0 {
				t.Fatalf("device after activation = %+v", got)
			}

			e.restart()
			if e.m.CA.Fingerprint() != fingerprint {
				t.Fatal("the CA changed across the restart")
			}
			var again userOut
			if st := e.api("GET", "/api/v1/users/"+u.ID, nil, &again); st != 200 || again.Email != "ana@example.org" {
				t.Fatalf("user after restart: %d %+v", st, again)
			}
			ds := e.devices()
			if len(ds) != 1 || ds[0].ID != a.DeviceID || ds[0].State != "active" || ds[0].CertSerial != got.CertSerial {
				t.Fatalf("devices after restart = %+v", ds)
			}
			// A new agent process on the same state directory checks in
			// with the certificate issued before the restart.
			res, err := e.agent(store, 7).Checkin(context.Background())
			if err != nil {
				t.Fatalf("check-in after restart: %v", err)
			}
			if res.State != "active" {
				t.Fatalf("state after restart = %q", res.State)
			}
		})
	}
}

// rawActivate posts an activation request and returns the status, the
// error code and the enrollment cookie.
func (e *env) rawActivate(body string) (int, string, *http.Cookie, wire.ActivateResponse) {
	e.t.Helper()
	resp, err := e.hc.Post(e.m.URL()+wire.PathActivate, "application/json", strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var eb httpx.ErrorBody
	var ok wire.ActivateResponse
	_ = json.Unmarshal(raw, &eb)
	_ = json.Unmarshal(raw, &ok)
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == wire.SessionCookie {
			cookie = c
		}
	}
	return resp.StatusCode, eb.Error.Code, cookie, ok
}

func activateBody(login, pw, hw string) string {
	b, _ := json.Marshal(wire.ActivateRequest{Login: login, Password: pw, Platform: "android", OSVersion: "14", HardwareID: hw})
	return string(b)
}

func csrPEM(t *testing.T, key any, cn string) string {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

// rawEnroll posts a CSR with the given session cookie (nil: none).
func (e *env) rawEnroll(cookie *http.Cookie, csr string) (int, string, wire.EnrollResponse) {
	e.t.Helper()
	b, _ := json.Marshal(wire.EnrollRequest{CSR: csr})
	req, _ := http.NewRequest("POST", e.m.URL()+wire.PathEnroll, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if cookie != nil {
		req.AddCookie(cookie)
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var eb httpx.ErrorBody
	var ok wire.EnrollResponse
	_ = json.Unmarshal(raw, &eb)
	_ = json.Unmarshal(raw, &ok)
	return resp.StatusCode, eb.Error.Code, ok
}

// mustEnrolled activates hw for login by hand and returns the device's
// TLS certificate and its ID.
func (e *env) mustEnrolled(login, pw, hw string) (tls.Certificate, string) {
	e.t.Helper()
	return e.mustEnrolledWith(activateBody(login, pw, hw))
}

// mustEnrolledWith activates with the activation request body and
// enrolls a CSR, returning the device's TLS certificate and its ID.
func (e *env) mustEnrolledWith(body string) (tls.Certificate, string) {
	e.t.Helper()
	st, code, cookie, a := e.rawActivate(body)
	if st != 200 {
		e.t.Fatalf("activate: %d %s", st, code)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	st, code, enr := e.rawEnroll(cookie, csrPEM(e.t, key, a.CSRCommonName))
	if st != 200 {
		e.t.Fatalf("enroll: %d %s", st, code)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	cert, err := tls.X509KeyPair([]byte(enr.Certificate), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		e.t.Fatal(err)
	}
	return cert, a.DeviceID
}

// deviceCall posts body to a device endpoint presenting cert (nil: none).
func (e *env) deviceCall(cert *tls.Certificate, path string, body any) (int, string, error) {
	e.t.Helper()
	cfg := &tls.Config{RootCAs: e.roots}
	if cert != nil {
		// Present the certificate whatever CAs the server asks for: an
		// attacker's client would.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	defer hc.CloseIdleConnections()
	b, _ := json.Marshal(body)
	resp, err := hc.Post(e.m.URL()+path, "application/json", bytes.NewReader(b))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var eb httpx.ErrorBody
	_ = json.NewDecoder(resp.Body).Decode(&eb)
	return resp.StatusCode, eb.Error.Code, nil
}

func (e *env) user(id string) userOut {
	e.t.Helper()
	var u userOut
	if st := e.api("GET", "/api/v1/users/"+id, nil, &u); st != 200 {
		e.t.Fatalf("get user: %d", st)
	}
	return u
}

// TestActivationRefusals covers the bad input, each subtest named
// after the attack, on both backends.
func TestActivationRefusals(t *testing.T) {
	for _, backend := range sqltest.Backends(t) {
		t.Run(backend, func(t *testing.T) {
			e := newEnv(t, backend)
			t.Run("fail/wrong-password-counted-nothing-created", func(t *testing.T) {
				u, _ := e.mustUser("wrong@example.org")
				st, code, cookie, _ := e.rawActivate(activateBody("wrong@example.org", "NOT-THE-PASSWORD", "hw-wrong"))
				if st != 401 || code != "activation_password_invalid" || cookie != nil {
					t.Fatalf("got %d %q cookie=%v", st, code, cookie)
				}
				if got := e.user(u.ID).FailedActivations; got != 1 {
					t.Fatalf("failed attempts = %d, want 1", got)
				}
				for _, d := range e.devices() {
					if d.UserID == u.ID {
						t.Fatalf("a device was created: %+v", d)
					}
				}
			})
			t.Run("fail/unknown-login-same-answer-as-wrong-password", func(t *testing.T) {
				st, code, _, _ := e.rawActivate(activateBody("nobody@example.org", "whatever-pass", "hw-x"))
				if st != 401 || code != "activation_password_invalid" {
					t.Fatalf("got %d %q", st, code)
				}
			})
			t.Run("fail/expired-password", func(t *testing.T) {
				u, _ := e.mustUser("expired@example.org")
				pw := e.mustPassword(u.ID, "1h")
				e.clock.Add(61 * time.Minute)
				st, code, _, _ := e.rawActivate(activateBody("expired@example.org", pw, "hw-exp"))
				if st != 401 || code != "activation_password_expired" {
					t.Fatalf("got %d %q", st, code)
				}
				if got := e.user(u.ID).FailedActivations; got != 1 {
					t.Fatalf("failed attempts = %d, want 1", got)
				}
			})
			t.Run("fail/replayed-password", func(t *testing.T) {
				_, pw := e.mustUser("replay@example.org")
				e.mustEnrolled("replay@example.org", pw, "hw-replay-1")
				st, code, _, _ := e.rawActivate(activateBody("replay@example.org", pw, "hw-replay-2"))
				if st != 401 || code != "activation_password_used" {
					t.Fatalf("got %d %q", st, code)
				}
			})
			t.Run("fail/repeated-failures-lock-activation", func(t *testing.T) {
				u, pw := e.mustUser("lock@example.org")
				for i := 0; i < 5; i++ {
					e.rawActivate(activateBody("lock@example.org", "bad-password-"+fmt.Sprint(i), "hw-lock"))
				}
				st, code, _, _ := e.rawActivate(activateBody("lock@example.org", pw, "hw-lock"))
				if st != 429 || code != "activation_locked" {
					t.Fatalf("right password while locked: %d %q", st, code)
				}
				e.clock.Add(16 * time.Minute)
				if st, code, _, _ := e.rawActivate(activateBody("lock@example.org", pw, "hw-lock")); st != 200 {
					t.Fatalf("after the lock expired: %d %q", st, code)
				}
				if got := e.user(u.ID).FailedActivations; got != 0 {
					t.Fatalf("failed attempts after success = %d", got)
				}
			})
			t.Run("fail/hardware-active-for-another-user", func(t *testing.T) {
				_, pw1 := e.mustUser("owner@example.org")
				e.mustEnrolled("owner@example.org", pw1, "hw-shared")
				_, pw2 := e.mustUser("thief@example.org")
				st, code, _, _ := e.rawActivate(activateBody("thief@example.org", pw2, "hw-shared"))
				if st != 409 || code != "device_in_use" {
					t.Fatalf("got %d %q", st, code)
				}
			})
			t.Run("fail/csr-without-session", func(t *testing.T) {
				key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				st, code, _ := e.rawEnroll(nil, csrPEM(t, key, "anything"))
				if st != 401 || code != "enrollment_session_required" {
					t.Fatalf("got %d %q", st, code)
				}
			})
			t.Run("fail/csr-for-another-session-then-ok", func(t *testing.T) {
				_, pw := e.mustUser("csr@example.org")
				_, _, cookie, a := e.rawActivate(activateBody("csr@example.org", pw, "hw-csr"))
				_, pwOther := e.mustUser("csr-other@example.org")
				_, _, _, other := e.rawActivate(activateBody("csr-other@example.org", pwOther, "hw-csr-other"))
				key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				if st, code, _ := e.rawEnroll(cookie, csrPEM(t, key, other.DeviceID)); st != 403 || code != "csr_subject_mismatch" {
					t.Fatalf("CSR naming another session's device: %d %q", st, code)
				}
				weak, _ := rsa.GenerateKey(rand.Reader, 1024)
				if st, code, _ := e.rawEnroll(cookie, csrPEM(t, weak, a.CSRCommonName)); st != 400 || code != "csr_weak_key" {
					t.Fatalf("weak key: %d %q", st, code)
				}
				// The refusals consumed nothing: the right CSR still works
				// once, and a replay of the session does not.
				if st, code, _ := e.rawEnroll(cookie, csrPEM(t, key, a.CSRCommonName)); st != 200 {
					t.Fatalf("right CSR after refusals: %d %q", st, code)
				}
				if st, code, _ := e.rawEnroll(cookie, csrPEM(t, key, a.CSRCommonName)); st != 409 || code != "enrollment_session_closed" {
					t.Fatalf("replayed session: %d %q", st, code)
				}
			})
			t.Run("fail/device-requests-without-valid-certificate", func(t *testing.T) {
				_, pw := e.mustUser("certs@example.org")
				cert, id := e.mustEnrolled("certs@example.org", pw, "hw-certs")
				ack := wire.AckRequest{DeviceID: id, Version: "0"}
				if st, code, err := e.deviceCall(nil, wire.PathAck, ack); err != nil || st != 401 || code != "client_certificate_required" {
					t.Fatalf("no certificate: %d %q %v", st, code, err)
				}
				foreign := foreignCert(t, id)
				if _, _, err := e.deviceCall(&foreign, wire.PathAck, ack); err == nil {
					t.Fatal("a certificate from another CA was accepted")
				}
				// A valid certificate, a body naming another device.
				_, pw2 := e.mustUser("certs2@example.org")
				_, id2 := e.mustEnrolled("certs2@example.org", pw2, "hw-certs-2")
				if st, code, _ := e.deviceCall(&cert, wire.PathAck, wire.AckRequest{DeviceID: id2, Version: "0"}); st != 403 || code != "device_mismatch" {
					t.Fatalf("body naming another device: %d %q", st, code)
				}
				for _, d := range e.devices() {
					if d.ID == id2 && d.State != "enrolled" {
						t.Fatalf("the other device changed: %+v", d)
					}
				}
				if st, code, _ := e.deviceCall(&cert, wire.PathAck, ack); st != 200 {
					t.Fatalf("own ack: %d %q", st, code)
				}
				// Removed: the certificate is revoked at its next request
				// and listed in the CRL.
				if st := e.api("DELETE", "/api/v1/devices/"+id, nil, nil); st != 204 && st != 200 {
					t.Fatalf("remove: %d", st)
				}
				if st, code, _ := e.deviceCall(&cert, wire.PathAck, ack); st != 401 || code != "certificate_revoked" {
					t.Fatalf("revoked: %d %q", st, code)
				}
				if !e.crlLists(cert) {
					t.Fatal("the removed device's certificate is not in the CRL")
				}
			})
			t.Run("fail/expired-certificate", func(t *testing.T) {
				_, pw := e.mustUser("old@example.org")
				cert, id := e.mustEnrolled("old@example.org", pw, "hw-old")
				e.clock.Add(pki.DeviceValidity + time.Hour)
				if _, _, err := e.deviceCall(&cert, wire.PathAck, wire.AckRequest{DeviceID: id, Version: "0"}); err == nil {
					t.Fatal("an expired certificate was accepted")
				}
			})
			t.Run("ok/password-typed-in-lower-case-with-spaces", func(t *testing.T) {
				_, pw := e.mustUser("typed@example.org")
				typed := strings.ToLower(strings.ReplaceAll(pw, "-", " "))
				if st, code, _, _ := e.rawActivate(activateBody("typed@example.org", typed, "hw-typed")); st != 200 {
					t.Fatalf("%q for %q: %d %q", typed, pw, st, code)
				}
			})
			t.Run("fail/malformed-and-oversized-bodies", func(t *testing.T) {
				if st, code, _, _ := e.rawActivate(`{"login":`); st != 400 || code != "malformed_json" {
					t.Fatalf("malformed: %d %q", st, code)
				}
				if st, code, _, _ := e.rawActivate(`{"login":"a","password":"b","platform":"android","hardware_id":"h","admin":true}`); st != 400 || code != "unknown_field" {
					t.Fatalf("unknown field: %d %q", st, code)
				}
				big := `{"login":"` + strings.Repeat("a", wire.MaxActivateBody) + `"}`
				if st, code, _, _ := e.rawActivate(big); st != 413 || code != "body_too_large" {
					t.Fatalf("oversized: %d %q", st, code)
				}
			})
			t.Run("fail/slow-client-cut-off", func(t *testing.T) {
				c, err := tls.Dial("tcp", strings.TrimPrefix(e.m.URL(), "https://"), &tls.Config{RootCAs: e.roots})
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				io.WriteString(c, "POST /device/v1/activate HTTP/1.1\r\nHost: x\r\n")
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				buf := make([]byte, 512)
				_, err = c.Read(buf)
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatal("the server kept a client that never finished its headers")
				}
			})
		})
	}
}

// crlLists reports whether the Core's CRL lists cert.
func (e *env) crlLists(cert tls.Certificate) bool {
	e.t.Helper()
	resp, err := e.hc.Get(e.m.URL() + core.PathCRL)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	der, _ := io.ReadAll(resp.Body)
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(e.m.CA.Cert); err != nil {
		e.t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(cert.Certificate[0])
	for _, r := range crl.RevokedCertificateEntries {
		if r.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
			return true
		}
	}
	return false
}

// foreignCert is a client certificate for deviceID from a CA that is not
// the Core's.
func foreignCert(t *testing.T, deviceID string) tls.Certificate {
	t.Helper()
	ca, _, err := pki.LoadOrCreateCA(t.TempDir(), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, err := pki.ParseCSR([]byte(csrPEM(t, key, deviceID)))
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.SignDeviceCSR(csr, deviceID, 0)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key}
}

// TestObservability checks what an operator scrapes and probes: health,
// readiness, request metrics by route, activation counters, the database
// pool, and a request ID on every answer.
func TestObservability(t *testing.T) {
	e := newEnv(t, "sqlite")
	_, pw := e.mustUser("obs@example.org")
	if _, err := e.agent(agent.NewMemStore(), 11).Activate(context.Background(), "obs@example.org", pw); err != nil {
		t.Fatal(err)
	}
	e.rawActivate(activateBody("obs@example.org", "wrong-password", "hw-obs"))
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := e.hc.Get(e.m.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("X-Request-Id") == "" {
			t.Fatalf("%s: %d, request id %q", path, resp.StatusCode, resp.Header.Get("X-Request-Id"))
		}
	}
	if resp, err := e.hc.Get(e.m.URL() + "/metrics"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatalf("/metrics on the device-facing listener: %d, want 401 (not served there)", resp.StatusCode)
		}
	}
	resp, err := http.Get(e.m.MetricsURL())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`custos_http_requests_total{code="200",method="POST",route="POST /device/v1/activate"} 1`,
		`custos_http_requests_total{code="200",method="POST",route="POST /device/v1/ack"} 1`,
		`custos_http_request_duration_seconds_count{route="POST /device/v1/enroll"} 1`,
		`custos_activations_enrolled_total 1`,
		`custos_activation_failures_total{reason="activation_password_invalid"} 1`,
		`go_sql_open_connections{db_name="sqlite_writer"}`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestActivationInterruptedAndRetried: every step is persisted, so an
// activation cut off between steps either continues after a restart of the
// Core or starts again with the same password.
func TestActivationInterruptedAndRetried(t *testing.T) {
	for _, backend := range sqltest.Backends(t) {
		t.Run(backend, func(t *testing.T) {
			e := newEnv(t, backend)
			_, pw := e.mustUser("crash@example.org")

			t.Run("ok/session-survives-core-restart", func(t *testing.T) {
				st, code, cookie, a := e.rawActivate(activateBody("crash@example.org", pw, "hw-crash-1"))
				if st != 200 {
					t.Fatalf("activate: %d %q", st, code)
				}
				e.restart()
				key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				if st, code, _ := e.rawEnroll(cookie, csrPEM(t, key, a.CSRCommonName)); st != 200 {
					t.Fatalf("enroll after restart: %d %q", st, code)
				}
			})

			_, pw2 := e.mustUser("retry@example.org")
			t.Run("ok/retry-supersedes-the-interrupted-attempt", func(t *testing.T) {
				_, _, stale, first := e.rawActivate(activateBody("retry@example.org", pw2, "hw-retry"))
				// The device gave up after step 6 and starts again with
				// the same password: the new attempt replaces the old one.
				_, _, fresh, second := e.rawActivate(activateBody("retry@example.org", pw2, "hw-retry"))
				key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				if st, code, _ := e.rawEnroll(stale, csrPEM(t, key, first.CSRCommonName)); st != 409 || code != "enrollment_session_closed" {
					t.Fatalf("superseded session: %d %q", st, code)
				}
				if st, code, _ := e.rawEnroll(fresh, csrPEM(t, key, second.CSRCommonName)); st != 200 {
					t.Fatalf("retried activation: %d %q", st, code)
				}
				n := 0
				for _, d := range e.devices() {
					if d.ID == first.DeviceID {
						t.Fatalf("the abandoned device instance is still listed: %+v", d)
					}
					if d.ID == second.DeviceID {
						n++
					}
				}
				if n != 1 {
					t.Fatal("the retried device is not listed")
				}
			})
		})
	}
}

// TestNewAdminTokenRecoversALostToken: whoever can start the Core on its
// data directory can get a working API token again.
func TestNewAdminTokenRecoversALostToken(t *testing.T) {
	e := newEnv(t, "sqlite")
	old := e.token
	if err := os.Remove(filepath.Join(e.dir, "admin-token")); err != nil {
		t.Fatal(err)
	}
	e.m.Close()
	m := core.NewMain(core.Config{DataDir: e.dir, Database: e.dsn, Listen: "127.0.0.1:0", NewAdminToken: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: e.clock.Now})
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	m.Close()
	e.start()
	if e.token == "" || e.token == old {
		t.Fatal("no new token was written")
	}
	var l struct {
		Items []struct{ Action, Actor string } `json:"items"`
	}
	if st := e.api("GET", "/api/v1/audit?action=token.create", nil, &l); st != 200 || len(l.Items) == 0 || l.Items[0].Actor != "system" {
		t.Fatalf("the new token works and is audited: %d %+v", st, l.Items)
	}
}
