package enroll_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/micromdm/plist"
	"github.com/smallstep/pkcs7"
	"github.com/smallstep/scep"

	"github.com/custos-uem/custos/activation"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/id"
	"github.com/custos-uem/custos/pki"
	"github.com/custos-uem/custos/platform/apple/enroll"
	"github.com/custos-uem/custos/platform/apple/enroll/enrolltest"
	"github.com/custos-uem/custos/sqlstore"
	"github.com/custos-uem/custos/sqlstore/sqltest"
	"github.com/custos-uem/custos/user/usertest"
)

// fixture is an enroll.Service on a real SQLite database, its CA, and an
// HTTP server with the SCEP route.
type fixture struct {
	t    testing.TB
	svc  *enroll.Service
	db   *sqlstore.DB
	ca   *pki.CA
	dir  string
	now  time.Time
	mu   sync.Mutex
	srv  *httptest.Server
	scep *enrolltest.SCEPClient
}

func (f *fixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fixture) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: t.TempDir(), now: time.Now().UTC()}
	ca, _, err := pki.LoadOrCreateCA(f.dir, pki.Options{Now: f.clock})
	if err != nil {
		t.Fatal(err)
	}
	f.ca = ca
	pair, err := ca.LoadOrIssueServerCert(f.dir, []string{"localhost", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(pair.Certificate[0])
	ra, err := enroll.LoadOrCreateRA(f.dir, ca, f.now)
	if err != nil {
		t.Fatal(err)
	}
	f.db = sqltest.Open(t, sqlstore.SQLite)
	f.svc = &enroll.Service{Store: f.db, Devices: f.db, CA: ca, RA: ra,
		Signer: &enroll.Signer{Cert: leaf, Chain: []*x509.Certificate{ca.Cert}, Key: pair.PrivateKey.(*ecdsa.PrivateKey)},
		Config: enroll.Config{SCEPURL: "https://mdm.example.com" + enroll.PathSCEP, ServerURL: "https://mdm.example.com/device/apple/mdm",
			CheckInURL: "https://mdm.example.com/device/apple/checkin", Identifier: "org.custos-uem.enroll.test", Organization: "Custos"},
		Topic: func(context.Context) (string, error) { return "com.apple.mgmt.External.test", nil },
		Now:   f.clock, Logger: slog.New(slog.DiscardHandler)}
	mux := http.NewServeMux()
	h := f.svc.SCEPHandler(nil)
	mux.Handle("GET "+enroll.PathSCEP, h)
	mux.Handle("POST "+enroll.PathSCEP, h)
	mux.Handle("POST "+enroll.PathProfile, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The Core's router authenticates the certificate; here the test
		// names the device in a header.
		if idh := r.Header.Get("X-Test-Device"); idh != "" {
			d, err := f.db.Device(r.Context(), idh)
			if err != nil {
				t.Error(err)
				return
			}
			r = r.WithContext(device.WithDevice(r.Context(), d))
		}
		f.svc.ProfileHandler().ServeHTTP(w, r)
	}))
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	f.scep = &enrolltest.SCEPClient{URL: f.srv.URL + enroll.PathSCEP, HTTP: f.srv.Client()}
	return f
}

// mac stores an activating Mac of a new user.
func (f *fixture) mac() *device.Device {
	f.t.Helper()
	u := usertest.CreateUser(f.t, f.db, "mac")
	d := &device.Device{ID: id.New(), UserID: u.ID, HardwareID: activation.ProvisionalHardwarePrefix + id.New(), Platform: "macos",
		ActivationType: string(activation.MDMControls), State: device.StateActivating, CreatedAt: f.now}
	if err := f.db.CreateUserDevice(context.Background(), d); err != nil {
		f.t.Fatal(err)
	}
	return d
}

// profile issues d's profile and returns it with its parsed plist.
func (f *fixture) profile(d *device.Device) (*enroll.Profile, map[string]any) {
	f.t.Helper()
	p, err := f.svc.Profile(context.Background(), d)
	if err != nil {
		f.t.Fatalf("Profile: %v", err)
	}
	var m map[string]any
	if err := plist.Unmarshal(p.Unsigned, &m); err != nil {
		f.t.Fatalf("profile plist: %v", err)
	}
	return p, m
}

func payload(t testing.TB, prof map[string]any, typ string) map[string]any {
	t.Helper()
	for _, p := range prof["PayloadContent"].([]any) {
		if m := p.(map[string]any); m["PayloadType"] == typ {
			return m
		}
	}
	t.Fatalf("no %s payload", typ)
	return nil
}

func challengeOf(t testing.TB, prof map[string]any) string {
	t.Helper()
	return payload(t, prof, "com.apple.security.scep")["PayloadContent"].(map[string]any)["Challenge"].(string)
}

func rsaKey(t testing.TB, bits int) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var key2048 = sync.OnceValue(func() *rsa.PrivateKey { k, _ := rsa.GenerateKey(rand.Reader, 2048); return k })

func TestProfileHasEveryKey(t *testing.T) {
	f := newFixture(t)
	d := f.mac()
	p, prof := f.profile(d)
	if p.ChallengeExpiresAt != f.now.Add(enroll.DefaultChallengeTTL) {
		t.Errorf("ChallengeExpiresAt %v", p.ChallengeExpiresAt)
	}
	want := map[string]any{"PayloadType": "Configuration", "PayloadVersion": uint64(1), "PayloadIdentifier": "org.custos-uem.enroll.test"}
	for k, v := range want {
		if prof[k] != v {
			t.Errorf("top-level %s = %#v, want %#v", k, prof[k], v)
		}
	}
	root := payload(t, prof, "com.apple.security.root")
	if !bytes.Equal(root["PayloadContent"].([]byte), f.ca.Cert.Raw) {
		t.Error("the root payload does not hold the CA certificate")
	}
	sp := payload(t, prof, "com.apple.security.scep")
	sc := sp["PayloadContent"].(map[string]any)
	for k, v := range map[string]any{"URL": f.svc.Config.SCEPURL, "Keysize": uint64(2048), "Key Type": "RSA", "Key Usage": uint64(5)} {
		if sc[k] != v {
			t.Errorf("SCEP %s = %#v, want %#v", k, sc[k], v)
		}
	}
	if cn := sc["Subject"].([]any)[0].([]any)[0].([]any); cn[0] != "CN" || cn[1] != d.ID {
		t.Errorf("SCEP Subject %v, want CN=%s", cn, d.ID)
	}
	if c, _ := sc["Challenge"].(string); len(c) < 20 {
		t.Errorf("challenge %q", c)
	}
	mdm := payload(t, prof, "com.apple.mdm")
	for k, v := range map[string]any{"ServerURL": f.svc.Config.ServerURL, "CheckInURL": f.svc.Config.CheckInURL,
		"Topic": "com.apple.mgmt.External.test", "IdentityCertificateUUID": sp["PayloadUUID"], "AccessRights": uint64(8191),
		"SignMessage": true, "CheckOutWhenRemoved": true} {
		if mdm[k] != v {
			t.Errorf("MDM %s = %#v, want %#v", k, mdm[k], v)
		}
	}
	caps := mdm["ServerCapabilities"].([]any)
	if len(caps) != 3 || caps[0] != "com.apple.mdm.per-user-connections" || caps[1] != "com.apple.mdm.bootstraptoken" || caps[2] != "com.apple.mdm.token" {
		t.Errorf("ServerCapabilities %v", caps)
	}
	// The signed profile holds the same bytes and verifies against the CA.
	p7, err := pkcs7.Parse(p.Signed)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(f.ca.Cert)
	if err := p7.VerifyWithChain(pool); err != nil {
		t.Fatalf("signature: %v", err)
	}
	if !bytes.Equal(p7.Content, p.Unsigned) {
		t.Error("the signed content differs from the unsigned profile")
	}
	if len(p7.Certificates) != 2 {
		t.Errorf("the signature embeds %d certificates, want the signer and the CA", len(p7.Certificates))
	}
	opensslVerify(t, p.Signed, f.ca.CertPEM)
}

// opensslVerify checks the signed profile with OpenSSL, an independent
// CMS implementation.
func opensslVerify(t *testing.T, signed, caPEM []byte) {
	t.Helper()
	dir := t.TempDir()
	in, ca := filepath.Join(dir, "p.mobileconfig"), filepath.Join(dir, "ca.pem")
	os.WriteFile(in, signed, 0o600)
	os.WriteFile(ca, caPEM, 0o600)
	out, err := exec.Command("openssl", "smime", "-verify", "-inform", "der", "-in", in, "-CAfile", ca, "-purpose", "any").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl smime -verify: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("<string>Configuration</string>")) {
		t.Fatalf("openssl printed no profile:\n%s", out)
	}
}

func TestProfileRefusals(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name string
		dev  *device.Device
		code string
	}{
		{"fail/android-device", &device.Device{ID: id.New(), Platform: "android", State: device.StateEnrolled}, "platform_not_apple"},
		{"fail/removed-device", &device.Device{ID: id.New(), Platform: "ios", State: device.StateRemoved}, "device_not_enrollable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.svc.Profile(context.Background(), tc.dev)
			if err == nil || !strings.Contains(err.Error(), tc.code) {
				t.Fatalf("Profile: %v, want %s", err, tc.code)
			}
		})
	}
}

func TestGetCACapsAndCert(t *testing.T) {
	f := newFixture(t)
	caps, err := f.scep.CACaps(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"AES", "POSTPKIOperation", "SCEPStandard", "SHA-256"} {
		if !strings.Contains(caps, c+"\n") {
			t.Errorf("GetCACaps lacks %s: %q", c, caps)
		}
	}
	certs, ct, err := f.scep.CACerts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if ct != "application/x-x509-ca-ra-cert" || len(certs) != 1 || !certs[0].Equal(f.svc.RA.Cert) {
		t.Fatalf("GetCACert: %s, %d certificates", ct, len(certs))
	}
	if _, ok := certs[0].PublicKey.(*rsa.PublicKey); !ok || certs[0].CheckSignatureFrom(f.ca.Cert) != nil {
		t.Fatal("the RA is not an RSA certificate signed by the CA")
	}
}

func TestRAPersists(t *testing.T) {
	f := newFixture(t)
	again, err := enroll.LoadOrCreateRA(f.dir, f.ca, f.now)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Cert.Equal(f.svc.RA.Cert) {
		t.Fatal("a second start created another RA")
	}
	st, err := os.Stat(filepath.Join(f.dir, enroll.RAKeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("RA key file: %v %v", st.Mode(), err)
	}
	// Near its end, the RA is issued again.
	renewed, err := enroll.LoadOrCreateRA(f.dir, f.ca, f.svc.RA.Cert.NotAfter.Add(-24*time.Hour))
	if err != nil || renewed.Cert.Equal(f.svc.RA.Cert) {
		t.Fatalf("RA near expiry not renewed: %v", err)
	}
}

func TestSCEPIssuesCertificate(t *testing.T) {
	for _, viaGET := range []bool{false, true} {
		name := "ok/post"
		if viaGET {
			name = "ok/get-message"
		}
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			d := f.mac()
			_, prof := f.profile(d)
			res, err := f.scep.Enroll(context.Background(), enrolltest.Request{Key: key2048(), CommonName: "whatever the CSR says", Challenge: challengeOf(t, prof)}, viaGET)
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != scep.SUCCESS || res.Cert == nil {
				t.Fatalf("status %s failInfo %s", res.Status, res.FailInfo)
			}
			if res.Cert.Subject.CommonName != d.ID {
				t.Errorf("CN %q, want the device ID %s", res.Cert.Subject.CommonName, d.ID)
			}
			pool := x509.NewCertPool()
			pool.AddCert(f.ca.Cert)
			if _, err := res.Cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: f.now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Errorf("the certificate does not chain to the CA for client auth: %v", err)
			}
			got, err := f.db.Device(context.Background(), d.ID)
			if err != nil || got.State != device.StateEnrolled || got.CertSerial != pki.SerialHex(res.Cert.SerialNumber) {
				t.Fatalf("device after SCEP: %+v %v", got, err)
			}
		})
	}
}

// TestSCEPRefusals: each bad request gets a CertRep FAILURE (or a 4xx when
// there is no transaction to answer) and nothing is issued.
func TestSCEPRefusals(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	certs, _, err := f.scep.CACerts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fresh := func() (*device.Device, string) {
		d := f.mac()
		_, prof := f.profile(d)
		return d, challengeOf(t, prof)
	}
	type outcome struct {
		http int
		fail scep.FailInfo
	}
	failure := func(info scep.FailInfo) outcome { return outcome{http: 200, fail: info} }
	cases := []struct {
		name string
		// run returns the device whose state must not change, and the
		// request's raw bytes.
		run  func(t *testing.T) (*device.Device, []byte)
		want outcome
	}{
		{"fail/wrong-challenge", func(t *testing.T) (*device.Device, []byte) {
			d, _ := fresh()
			return d, message(t, enrolltest.Request{Key: key2048(), CommonName: d.ID, Challenge: "WRONGWRONGWRONGWRONGWRONG", Recipients: certs})
		}, failure(scep.BadRequest)},
		{"fail/no-challenge", func(t *testing.T) (*device.Device, []byte) {
			d, _ := fresh()
			return d, message(t, enrolltest.Request{Key: key2048(), CommonName: d.ID, Recipients: certs})
		}, failure(scep.BadRequest)},
		{"fail/replayed-scep-challenge", func(t *testing.T) (*device.Device, []byte) {
			d, c := fresh()
			first, err := f.scep.Enroll(ctx, enrolltest.Request{Key: key2048(), CommonName: d.ID, Challenge: c, Recipients: certs}, false)
			if err != nil || first.Status != scep.SUCCESS {
				t.Fatalf("first use: %v %+v", err, first)
			}
			// The device is enrolled now; the replay must leave it with its
			// first certificate and record none.
			return nil, message(t, enrolltest.Request{Key: rsaKey(t, 2048), CommonName: d.ID, Challenge: c, Recipients: certs})
		}, failure(scep.BadRequest)},
		{"fail/expired-challenge", func(t *testing.T) (*device.Device, []byte) {
			d, c := fresh()
			f.advance(enroll.DefaultChallengeTTL + time.Second)
			return d, message(t, enrolltest.Request{Key: key2048(), CommonName: d.ID, Challenge: c, Recipients: certs})
		}, failure(scep.BadRequest)},
		{"fail/rsa-1024-key", func(t *testing.T) (*device.Device, []byte) {
			d, c := fresh()
			return d, message(t, enrolltest.Request{Key: rsaKey(t, 1024), CommonName: d.ID, Challenge: c, Recipients: certs})
		}, failure(scep.BadRequest)},
		{"fail/removed-device-challenge", func(t *testing.T) (*device.Device, []byte) {
			d, c := fresh()
			if err := f.db.RemoveDevice(ctx, d.ID, f.clock()); err != nil {
				t.Fatal(err)
			}
			return nil, message(t, enrolltest.Request{Key: key2048(), CommonName: d.ID, Challenge: c, Recipients: certs})
		}, failure(scep.BadRequest)},
		{"fail/envelope-for-another-recipient", func(t *testing.T) (*device.Device, []byte) {
			d, c := fresh()
			other := *f.svc.RA.Cert
			otherKey := rsaKey(t, 2048)
			tmpl := &x509.Certificate{SerialNumber: other.SerialNumber, Subject: other.Subject, NotBefore: other.NotBefore, NotAfter: other.NotAfter,
				KeyUsage: x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature}
			der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &otherKey.PublicKey, otherKey)
			wrong, _ := x509.ParseCertificate(der)
			return d, message(t, enrolltest.Request{Key: key2048(), CommonName: d.ID, Challenge: c, Recipients: []*x509.Certificate{wrong}})
		}, failure(scep.BadMessageCheck)},
		{"fail/garbage-pkimessage", func(t *testing.T) (*device.Device, []byte) {
			return nil, []byte("this is not a PKIMessage")
		}, outcome{http: 400}},
		{"fail/truncated-pkimessage", func(t *testing.T) (*device.Device, []byte) {
			d, c := fresh()
			raw := message(t, enrolltest.Request{Key: key2048(), CommonName: d.ID, Challenge: c, Recipients: certs})
			return d, raw[:len(raw)/2]
		}, outcome{http: 400}},
		{"fail/oversized-pkimessage", func(t *testing.T) (*device.Device, []byte) {
			return nil, bytes.Repeat([]byte{0x30}, enroll.MaxPKIMessage+1)
		}, outcome{http: 413}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, raw := tc.run(t)
			res, _, err := f.scep.PKIOperation(ctx, raw, false)
			if err != nil {
				t.Fatal(err)
			}
			if res.HTTPStatus != tc.want.http {
				t.Fatalf("HTTP %d, want %d: %s", res.HTTPStatus, tc.want.http, res.Body)
			}
			if tc.want.http == 200 && (res.Status != scep.FAILURE || res.FailInfo != tc.want.fail) {
				t.Fatalf("pkiStatus %s failInfo %s, want FAILURE %s", res.Status, res.FailInfo, tc.want.fail)
			}
			if d != nil {
				got, err := f.db.Device(ctx, d.ID)
				if err != nil || got.State != device.StateActivating || got.CertSerial != "" {
					t.Fatalf("device changed by a refused request: %+v %v", got, err)
				}
			}
		})
	}
	// GET with a message that is not base64, and an unknown operation.
	for _, q := range []string{"?operation=PKIOperation&message=%25%25%25", "?operation=Nope", ""} {
		resp, err := f.srv.Client().Get(f.scep.URL + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("GET %s: %d, want 400", q, resp.StatusCode)
		}
	}
}

// TestReplayRecordsNothing: the second use of a challenge records no
// certificate; the device keeps the first one.
func TestReplayRecordsNothing(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	d := f.mac()
	_, prof := f.profile(d)
	c := challengeOf(t, prof)
	first, err := f.scep.Enroll(ctx, enrolltest.Request{Key: key2048(), CommonName: d.ID, Challenge: c}, false)
	if err != nil || first.Status != scep.SUCCESS {
		t.Fatalf("first: %v %+v", err, first)
	}
	second, err := f.scep.Enroll(ctx, enrolltest.Request{Key: rsaKey(t, 2048), CommonName: d.ID, Challenge: c}, false)
	if err != nil || second.Status != scep.FAILURE || second.Cert != nil {
		t.Fatalf("replay: %v %+v", err, second)
	}
	if err := f.db.RemoveDevice(ctx, d.ID, f.clock()); err != nil {
		t.Fatal(err)
	}
	revoked, err := f.db.RevokedCerts(ctx, f.clock())
	if err != nil || len(revoked) != 1 || revoked[0].Serial != pki.SerialHex(first.Cert.SerialNumber) {
		t.Fatalf("revoked after removal: %+v %v; want exactly the first certificate", revoked, err)
	}
}

func message(t *testing.T, r enrolltest.Request) []byte {
	t.Helper()
	msg, _, err := r.Message()
	if err != nil {
		t.Fatal(err)
	}
	return msg.Raw
}

func TestProfileHandler(t *testing.T) {
	f := newFixture(t)
	u := usertest.CreateUser(t, f.db, "ios")
	ios := &device.Device{ID: id.New(), UserID: u.ID, HardwareID: "hw-" + id.New(), Platform: "ios", ActivationType: "mdm_controls",
		State: device.StateActivating, CreatedAt: f.now}
	android := &device.Device{ID: id.New(), UserID: u.ID, HardwareID: "hw-" + id.New(), Platform: "android", ActivationType: "mdm_controls",
		State: device.StateActivating, CreatedAt: f.now}
	for _, d := range []*device.Device{ios, android} {
		if err := f.db.CreateUserDevice(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	post := func(devID, query string) (*http.Response, []byte) {
		req, _ := http.NewRequest("POST", f.srv.URL+enroll.PathProfile+query, nil)
		if devID != "" {
			req.Header.Set("X-Test-Device", devID)
		}
		resp, err := f.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp, b.Bytes()
	}
	for _, tc := range []struct {
		name, dev, query string
		status           int
	}{
		{"fail/no-device", "", "", 401},
		{"fail/android-device", android.ID, "", 403},
		{"fail/unknown-format", ios.ID, "?format=json", 400},
		{"ok/signed", ios.ID, "", 200},
		{"ok/plist", ios.ID, "?format=plist", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := post(tc.dev, tc.query)
			if resp.StatusCode != tc.status {
				t.Fatalf("%d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.status != 200 {
				return
			}
			if ct := resp.Header.Get("Content-Type"); ct != enroll.ContentType || resp.Header.Get("Cache-Control") != "no-store" {
				t.Fatalf("headers %v", resp.Header)
			}
			if plistFirst := bytes.HasPrefix(body, []byte("<?xml")); plistFirst != (tc.query == "?format=plist") {
				t.Fatalf("body starts %q", body[:16])
			}
		})
	}
}

// TestGetMessageAlphabets: clients send message= in standard or URL-safe
// base64 (mdmb's micromdm/scep uses the latter).
func TestGetMessageAlphabets(t *testing.T) {
	f := newFixture(t)
	certs, _, _ := f.scep.CACerts(context.Background())
	d := f.mac()
	_, prof := f.profile(d)
	raw := message(t, enrolltest.Request{Key: key2048(), CommonName: d.ID, Challenge: challengeOf(t, prof), Recipients: certs})
	resp, err := f.srv.Client().Get(f.scep.URL + "?operation=PKIOperation&message=" + base64.URLEncoding.EncodeToString(raw))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-pki-message" {
		t.Fatalf("URL-safe base64 message: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

// BenchmarkProfile measures one enrollment profile: a fresh challenge
// stored in SQLite, the plist, and its P-256 CMS signature.
func BenchmarkProfile(b *testing.B) {
	f := newFixture(b)
	d := f.mac()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.svc.Profile(ctx, d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSCEPPKIOperation measures the server side of one PKCSReq:
// parse and verify the message, decrypt the envelope with the RA's
// RSA-2048 key, check the challenge, issue with the CA, record it (SQLite)
// and sign the encrypted CertRep with the RA.
func BenchmarkSCEPPKIOperation(b *testing.B) {
	f := newFixture(b)
	certs, _, err := f.scep.CACerts(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	key := key2048()
	h := f.svc.SCEPHandler(nil)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		d := f.mac()
		_, prof := f.profile(d)
		msg, _, err := (&enrolltest.Request{Key: key, CommonName: d.ID, Challenge: challengeOf(f.t, prof), Recipients: certs}).Message()
		if err != nil {
			b.Fatal(err)
		}
		req := httptest.NewRequest("POST", enroll.PathSCEP+"?operation=PKIOperation", bytes.NewReader(msg.Raw))
		rec := httptest.NewRecorder()
		b.StartTimer()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
	}
}
