package core_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/micromdm/plist"
	"github.com/smallstep/pkcs7"
	"github.com/smallstep/scep"

	"github.com/custos-uem/custos/activation"
	"github.com/custos-uem/custos/core"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/pki"
	wire "github.com/custos-uem/custos/platform/agent"
	"github.com/custos-uem/custos/platform/apple/appletest"
	"github.com/custos-uem/custos/platform/apple/enroll"
	"github.com/custos-uem/custos/platform/apple/enroll/enrolltest"
	"github.com/custos-uem/custos/platform/apple/pushcert"
	"github.com/custos-uem/custos/push/apns/apnstest"
	"github.com/custos-uem/custos/sqlstore/sqltest"
	"github.com/custos-uem/custos/websession"
)

// aeAgent activates hw for login over the agent protocol as platform and
// enrolls a CSR: the iOS UEM client's seed steps 7-10. It returns the
// device's TLS certificate and ID.
func (e *env) aeAgent(login, pw, hw, platform string) (tls.Certificate, string) {
	e.t.Helper()
	body, _ := json.Marshal(wire.ActivateRequest{Login: login, Password: pw, Platform: platform, OSVersion: "18.1", HardwareID: hw})
	return e.mustEnrolledWith(string(body))
}

// aeProfile posts to the profile route with cert (nil: none) and returns
// the status, the headers and the body; status 0 when the connection
// failed (the error is the body).
func (e *env) aeProfile(cert *tls.Certificate, query string) (int, http.Header, []byte) {
	e.t.Helper()
	cfg := &tls.Config{RootCAs: e.roots}
	if cert != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Post(e.m.URL()+enroll.PathProfile+query, "application/octet-stream", nil)
	if err != nil {
		// The TLS handshake refused the certificate.
		return 0, nil, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// aeVerify checks a signed profile with OpenSSL against the Core's CA
// file and returns the plist it signs, parsed.
func (e *env) aeVerify(signed []byte) map[string]any {
	e.t.Helper()
	in := filepath.Join(e.t.TempDir(), "p.mobileconfig")
	if err := os.WriteFile(in, signed, 0o600); err != nil {
		e.t.Fatal(err)
	}
	out, err := exec.Command("openssl", "smime", "-verify", "-inform", "der", "-in", in,
		"-CAfile", filepath.Join(e.dir, pki.CAFile), "-purpose", "any").Output()
	if err != nil {
		e.t.Fatalf("openssl smime -verify: %v", err)
	}
	var m map[string]any
	if err := plist.Unmarshal(out, &m); err != nil {
		e.t.Fatalf("the verified content is not a plist: %v", err)
	}
	return m
}

func aePayload(t *testing.T, prof map[string]any, typ string) map[string]any {
	t.Helper()
	content, _ := prof["PayloadContent"].([]any)
	for _, p := range content {
		if m, _ := p.(map[string]any); m["PayloadType"] == typ {
			return m
		}
	}
	t.Fatalf("the profile has no %s payload", typ)
	return nil
}

// aeSCEP is the SCEP URL and challenge of a profile, and a client for it.
func (e *env) aeSCEP(prof map[string]any) (*enrolltest.SCEPClient, string) {
	e.t.Helper()
	c := aePayload(e.t, prof, "com.apple.security.scep")["PayloadContent"].(map[string]any)
	return &enrolltest.SCEPClient{URL: c["URL"].(string), HTTP: e.hc}, c["Challenge"].(string)
}

func aeKey(t *testing.T, bits int) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestAppleEnrollIOSEndToEnd is seed "Activating an iOS device", steps 7-16,
// on a real Core: the agent activates and enrolls, asks for the MDM profile
// with its certificate, the profile verifies with OpenSSL and has every key,
// and SCEP issues the device identity.
func TestAppleEnrollIOSEndToEnd(t *testing.T) {
	for _, backend := range sqltest.Backends(t) {
		t.Run(backend, func(t *testing.T) { testAppleEnrollIOS(t, backend) })
	}
}

func testAppleEnrollIOS(t *testing.T, backend string) {
	e := newEnv(t, backend)
	ctx := context.Background()
	u, pw := e.mustUser("iphone@example.com")
	agentCert, deviceID := e.aeAgent(u.Email, pw, "UDID-IPHONE-1", "ios")

	st, hdr, signed := e.aeProfile(&agentCert, "")
	if st != 200 || hdr.Get("Content-Type") != "application/x-apple-aspen-config" || hdr.Get("Cache-Control") != "no-store" {
		t.Fatalf("profile: %d %v", st, hdr)
	}
	prof := e.aeVerify(signed)
	base := e.m.Config.PublicURL
	if prof["PayloadType"] != "Configuration" {
		t.Fatalf("top-level PayloadType %v", prof["PayloadType"])
	}
	root := aePayload(t, prof, "com.apple.security.root")
	if !bytes.Equal(root["PayloadContent"].([]byte), e.m.CA.Cert.Raw) {
		t.Error("the root payload is not the Core's CA")
	}
	sp := aePayload(t, prof, "com.apple.security.scep")
	sc := sp["PayloadContent"].(map[string]any)
	for k, v := range map[string]any{"URL": base + enroll.PathSCEP, "Keysize": uint64(2048), "Key Type": "RSA", "Key Usage": uint64(5)} {
		if sc[k] != v {
			t.Errorf("SCEP %s = %#v, want %#v", k, sc[k], v)
		}
	}
	if cn := sc["Subject"].([]any)[0].([]any)[0].([]any); cn[0] != "CN" || cn[1] != deviceID {
		t.Errorf("SCEP Subject %v, want CN=%s", cn, deviceID)
	}
	mdm := aePayload(t, prof, "com.apple.mdm")
	for k, v := range map[string]any{"ServerURL": base + "/device/apple/mdm", "CheckInURL": base + "/device/apple/checkin",
		"IdentityCertificateUUID": sp["PayloadUUID"], "AccessRights": uint64(8191), "SignMessage": true, "CheckOutWhenRemoved": true} {
		if mdm[k] != v {
			t.Errorf("MDM %s = %#v, want %#v", k, mdm[k], v)
		}
	}
	if topic, _ := mdm["Topic"].(string); !strings.HasPrefix(topic, "com.apple.mgmt.External.") {
		t.Errorf("Topic %q", topic)
	}
	if caps := mdm["ServerCapabilities"].([]any); len(caps) != 3 || caps[0] != "com.apple.mdm.per-user-connections" ||
		caps[1] != "com.apple.mdm.bootstraptoken" || caps[2] != "com.apple.mdm.token" {
		t.Errorf("ServerCapabilities %v", caps)
	}

	// The native MDM daemon: GetCACaps, GetCACert, PKCSReq (steps 15-16).
	cl, challenge := e.aeSCEP(prof)
	caps, err := cl.CACaps(ctx)
	if err != nil || !strings.Contains(caps, "SCEPStandard") || !strings.Contains(caps, "SHA-256") || !strings.Contains(caps, "AES") {
		t.Fatalf("GetCACaps: %q %v", caps, err)
	}
	ra, ct, err := cl.CACerts(ctx)
	if err != nil || ct != "application/x-x509-ca-ra-cert" || len(ra) != 1 || ra[0].CheckSignatureFrom(e.m.CA.Cert) != nil {
		t.Fatalf("GetCACert: %s %d %v", ct, len(ra), err)
	}
	res, err := cl.Enroll(ctx, enrolltest.Request{Key: aeKey(t, 2048), CommonName: deviceID, Challenge: challenge}, false)
	if err != nil || res.Status != scep.SUCCESS || res.Cert == nil {
		t.Fatalf("SCEP: %v %+v", err, res)
	}
	if res.Cert.Subject.CommonName != deviceID {
		t.Fatalf("SCEP certificate CN %q, want the device ID %s", res.Cert.Subject.CommonName, deviceID)
	}
	if _, err := res.Cert.Verify(x509.VerifyOptions{Roots: e.roots, CurrentTime: e.clock.Now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("the SCEP certificate does not chain to the CA: %v", err)
	}
	// The agent's certificate stays the device's; the SCEP one is
	// recorded for the device: removing it revokes both.
	d, err := e.m.DB.Device(ctx, deviceID)
	agentLeaf, _ := x509.ParseCertificate(agentCert.Certificate[0])
	if err != nil || d.State != device.StateEnrolled || d.CertSerial != pki.SerialHex(agentLeaf.SerialNumber) {
		t.Fatalf("device after SCEP: %+v %v", d, err)
	}
	if st := e.api("DELETE", "/api/v1/devices/"+deviceID, nil, nil); st != 204 {
		t.Fatalf("remove device: %d", st)
	}
	scepPair := tls.Certificate{Certificate: [][]byte{res.Cert.Raw}}
	if !e.crlLists(agentCert) || !e.crlLists(scepPair) {
		t.Fatal("removing the device did not revoke both its certificates")
	}

	// The unsigned variant, for simulators.
	_, agent2 := e.mustUserAgent("ipad@example.com", "UDID-IPAD-1", "ipados")
	st, _, plain := e.aeProfile(&agent2, "?format=plist")
	if st != 200 || !bytes.HasPrefix(plain, []byte("<?xml")) {
		t.Fatalf("unsigned profile: %d %.40q", st, plain)
	}
	if p7, err := pkcs7.Parse(signed); err != nil || len(p7.Certificates) < 2 {
		t.Fatalf("the signature does not embed the chain: %v", err)
	}
	if mdm["Topic"] != core.DevelopmentTopic {
		t.Errorf("Topic without a push certificate %v, want %s", mdm["Topic"], core.DevelopmentTopic)
	}

	// Once an MDM push certificate is uploaded, profiles carry its topic.
	const topic = "com.apple.mgmt.External.11111111-2222-4333-8444-555555555555"
	pushCert := apnstest.NewServer(t, apnstest.Options{}).ClientCertificate(t, topic)
	keyDER, _ := x509.MarshalPKCS8PrivateKey(pushCert.PrivateKey)
	if _, _, err := e.m.ApplePush.Upload(ctx, pushcert.Upload{By: "test",
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: pushCert.Certificate[0]}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})}); err != nil {
		t.Fatal(err)
	}
	_, _, signed = e.aeProfile(&agent2, "")
	if got := aePayload(t, e.aeVerify(signed), "com.apple.mdm")["Topic"]; got != topic {
		t.Errorf("Topic with a push certificate %v, want %s", got, topic)
	}
}

// mustUserAgent creates a user and activates an agent device of theirs.
func (e *env) mustUserAgent(email, hw, platform string) (string, tls.Certificate) {
	e.t.Helper()
	u, pw := e.mustUser(email)
	cert, id := e.aeAgent(u.Email, pw, hw, platform)
	return id, cert
}

// TestAppleEnrollRefusals: each attack on the profile route and on SCEP is
// refused, and nothing is issued.
func TestAppleEnrollRefusals(t *testing.T) {
	e := newEnv(t, "sqlite")
	ctx := context.Background()
	// profile returns a fresh SCEP client and challenge for a new iPhone.
	n := 0
	profile := func(t *testing.T) (string, *enrolltest.SCEPClient, string) {
		t.Helper()
		n++
		id, cert := e.mustUserAgent("refusal"+string(rune('a'+n))+"@example.com", "UDID-R-"+string(rune('a'+n)), "ios")
		st, _, signed := e.aeProfile(&cert, "")
		if st != 200 {
			t.Fatalf("profile: %d", st)
		}
		cl, ch := e.aeSCEP(e.aeVerify(signed))
		return id, cl, ch
	}
	scepURL := e.m.Config.PublicURL + enroll.PathSCEP
	raw := &enrolltest.SCEPClient{URL: scepURL, HTTP: e.hc}
	failInfo := func(t *testing.T, res *enrolltest.Result, err error, want scep.FailInfo) {
		t.Helper()
		if err != nil || res.HTTPStatus != 200 || res.Status != scep.FAILURE || res.FailInfo != want || res.Cert != nil {
			t.Fatalf("got %v %+v, want a CertRep FAILURE %s", err, res, want)
		}
	}
	t.Run("fail/profile-for-android-device", func(t *testing.T) {
		cert, _ := e.mustEnrolled(mustLogin(e, "android-ae@example.com"))
		if st, _, b := e.aeProfile(&cert, ""); st != 403 || !bytes.Contains(b, []byte("platform_not_ios")) {
			t.Fatalf("%d %s", st, b)
		}
	})
	t.Run("fail/profile-without-client-certificate", func(t *testing.T) {
		if st, _, _ := e.aeProfile(nil, ""); st != 401 {
			t.Fatalf("%d, want 401", st)
		}
	})
	t.Run("fail/profile-with-foreign-certificate", func(t *testing.T) {
		id, _ := e.mustUserAgent("foreign-ae@example.com", "UDID-FOREIGN", "ios")
		cert := foreignCert(t, id)
		if st, _, b := e.aeProfile(&cert, ""); st != 0 && st != 401 {
			t.Fatalf("a foreign CA's certificate: %d %s", st, b)
		}
	})
	t.Run("fail/wrong-challenge", func(t *testing.T) {
		id, cl, _ := profile(t)
		res, err := cl.Enroll(ctx, enrolltest.Request{Key: aeKey(t, 2048), CommonName: id, Challenge: "AAAAAAAAAAAAAAAAAAAAAAAAAA"}, false)
		failInfo(t, res, err, scep.BadRequest)
	})
	t.Run("fail/replayed-scep-challenge", func(t *testing.T) {
		id, cl, ch := profile(t)
		first, err := cl.Enroll(ctx, enrolltest.Request{Key: aeKey(t, 2048), CommonName: id, Challenge: ch}, false)
		if err != nil || first.Status != scep.SUCCESS {
			t.Fatalf("first use: %v %+v", err, first)
		}
		res, err := cl.Enroll(ctx, enrolltest.Request{Key: aeKey(t, 2048), CommonName: id, Challenge: ch}, true)
		failInfo(t, res, err, scep.BadRequest)
	})
	t.Run("fail/expired-challenge", func(t *testing.T) {
		id, cl, ch := profile(t)
		e.clock.Add(enroll.DefaultChallengeTTL + time.Minute)
		res, err := cl.Enroll(ctx, enrolltest.Request{Key: aeKey(t, 2048), CommonName: id, Challenge: ch}, false)
		failInfo(t, res, err, scep.BadRequest)
	})
	t.Run("fail/rsa-1024-key", func(t *testing.T) {
		id, cl, ch := profile(t)
		res, err := cl.Enroll(ctx, enrolltest.Request{Key: aeKey(t, 1024), CommonName: id, Challenge: ch}, false)
		failInfo(t, res, err, scep.BadRequest)
		// The challenge was not consumed by the refusal.
		res, err = cl.Enroll(ctx, enrolltest.Request{Key: aeKey(t, 2048), CommonName: id, Challenge: ch}, false)
		if err != nil || res.Status != scep.SUCCESS {
			t.Fatalf("the challenge after a refused key: %v %+v", err, res)
		}
	})
	t.Run("fail/removed-device-challenge", func(t *testing.T) {
		id, cl, ch := profile(t)
		if st := e.api("DELETE", "/api/v1/devices/"+id, nil, nil); st != 204 {
			t.Fatalf("remove: %d", st)
		}
		res, err := cl.Enroll(ctx, enrolltest.Request{Key: aeKey(t, 2048), CommonName: id, Challenge: ch}, false)
		failInfo(t, res, err, scep.BadRequest)
	})
	t.Run("fail/garbage-pkimessage", func(t *testing.T) {
		res, _, err := raw.PKIOperation(ctx, []byte("\x30\x82\x01\x00garbage"), false)
		if err != nil || res.HTTPStatus != 400 {
			t.Fatalf("%v %+v, want 400", err, res)
		}
	})
	t.Run("fail/oversized-pkimessage", func(t *testing.T) {
		res, _, err := raw.PKIOperation(ctx, bytes.Repeat([]byte{0x30}, enroll.MaxPKIMessage+1), false)
		if err != nil || res.HTTPStatus != 413 {
			t.Fatalf("%v %+v, want 413", err, res)
		}
		q := url.Values{"operation": {"PKIOperation"}, "message": {strings.Repeat("A", 2*enroll.MaxPKIMessage)}}
		resp, err := e.hc.Get(scepURL + "?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 413 && resp.StatusCode != 431 {
			t.Fatalf("oversized GET message: %d", resp.StatusCode)
		}
	})
	t.Run("fail/unknown-operation", func(t *testing.T) {
		resp, err := e.hc.Get(scepURL + "?operation=GetNextCACert")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Fatalf("%d, want 400", resp.StatusCode)
		}
	})
}

// mustLogin creates a user with a password and returns login, password
// and a hardware ID for mustEnrolled.
func mustLogin(e *env, email string) (string, string, string) {
	e.t.Helper()
	u, pw := e.mustUser(email)
	return u.Email, pw, "HW-" + email
}

// aePortal signs a user in to Self-Service.
func (e *env) aePortal(email string) (*webClient, string) {
	e.t.Helper()
	u, _ := e.mustUser(email)
	if err := e.m.Sessions.SetPassword(context.Background(), websession.RealmUser, u.ID, "correct horse battery"); err != nil {
		e.t.Fatal(err)
	}
	w := newWebClient(e.t, e)
	w.do("GET", "/portal/login", nil)
	if st, body, _ := w.do("POST", "/portal/login", url.Values{"login": {email}, "password": {"correct horse battery"}}); st != 303 {
		e.t.Fatalf("portal sign-in: %d %s", st, body)
	}
	return w, u.ID
}

// TestAppleEnrollMacFromPortal is seed "Activating a macOS device", steps
// 2-8, over HTTP: the user signs in to Self-Service, clicks "Enroll this
// Mac", gets the signed profile, and the Mac's SCEP request makes the new
// device enrolled.
func TestAppleEnrollMacFromPortal(t *testing.T) {
	for _, backend := range sqltest.Backends(t) {
		t.Run(backend, func(t *testing.T) { testAppleEnrollMac(t, backend) })
	}
}

func testAppleEnrollMac(t *testing.T, backend string) {
	e := newEnv(t, backend)
	ctx := context.Background()
	w, userID := e.aePortal("mac-user@example.com")
	st, page, _ := w.do("GET", "/portal/", nil)
	if st != 200 || !strings.Contains(page, `id="enroll-mac"`) {
		t.Fatalf("portal page: %d, no Enroll this Mac", st)
	}
	t.Run("fail/without-csrf-token", func(t *testing.T) {
		if st, _, _ := w.do("POST", "/portal/enroll-mac", url.Values{"csrf_token": {"forged"}}); st == 200 {
			t.Fatal("a forged CSRF token got a profile")
		}
	})
	st, body, hdr := w.do("POST", "/portal/enroll-mac", url.Values{})
	if st != 200 || hdr.Get("Content-Type") != "application/x-apple-aspen-config" ||
		!strings.Contains(hdr.Get("Content-Disposition"), `filename="Custos.mobileconfig"`) {
		t.Fatalf("enroll this Mac: %d %v", st, hdr)
	}
	prof := e.aeVerify([]byte(body))
	cl, ch := e.aeSCEP(prof)
	macs, err := e.m.DB.ListDevices(ctx, device.Query{UserID: userID})
	if err != nil || len(macs) != 1 || macs[0].Platform != "macos" || macs[0].State != device.StateActivating {
		t.Fatalf("devices after the download: %+v %v", macs, err)
	}
	res, err := cl.Enroll(ctx, enrolltest.Request{Key: aeKey(t, 2048), CommonName: macs[0].ID, Challenge: ch}, false)
	if err != nil || res.Status != scep.SUCCESS || res.Cert.Subject.CommonName != macs[0].ID {
		t.Fatalf("SCEP: %v %+v", err, res)
	}
	d, err := e.m.DB.Device(ctx, macs[0].ID)
	if err != nil || d.State != device.StateEnrolled || d.CertSerial != pki.SerialHex(res.Cert.SerialNumber) {
		t.Fatalf("the Mac after SCEP: %+v %v", d, err)
	}

	t.Run("fail/platform-not-in-activation-profile", func(t *testing.T) {
		w2, uid := e.aePortal("no-mac@example.com")
		prof := &activation.Profile{Name: "Phones only", MaxDevices: 3, Types: map[activation.Platform]activation.Type{activation.IOS: activation.MDMControls}}
		e.mustGiveProfile(t, uid, prof)
		w2.do("GET", "/portal/", nil)
		st, body, hdr := w2.do("POST", "/portal/enroll-mac", url.Values{})
		if st != 403 || hdr.Get("Content-Type") == "application/x-apple-aspen-config" ||
			!strings.Contains(body, "your activation profile does not allow this platform") {
			t.Fatalf("%d %.200s", st, body)
		}
	})
	t.Run("fail/device-limit", func(t *testing.T) {
		w3, uid := e.aePortal("limit@example.com")
		prof := &activation.Profile{Name: "One Mac", MaxDevices: 1, Types: map[activation.Platform]activation.Type{activation.MacOS: activation.MDMControls}}
		e.mustGiveProfile(t, uid, prof)
		w3.do("GET", "/portal/", nil)
		st, body, _ := w3.do("POST", "/portal/enroll-mac", url.Values{})
		if st != 200 {
			t.Fatalf("first Mac: %d", st)
		}
		cl, ch := e.aeSCEP(e.aeVerify([]byte(body)))
		mine, _ := e.m.DB.ListDevices(ctx, device.Query{UserID: uid})
		if res, err := cl.Enroll(ctx, enrolltest.Request{Key: aeKey(t, 2048), CommonName: mine[0].ID, Challenge: ch}, false); err != nil || res.Status != scep.SUCCESS {
			t.Fatalf("SCEP of the first Mac: %v %+v", err, res)
		}
		w3.do("GET", "/portal/", nil)
		st, body, _ = w3.do("POST", "/portal/enroll-mac", url.Values{})
		if st != 409 || !strings.Contains(body, "as many devices as your activation profile allows") {
			t.Fatalf("second Mac: %d %.200s", st, body)
		}
	})
}

// TestAppleEnrollWithMDMB: the real device simulator mdmb v0.1.0 installs
// the unsigned profile and completes SCEP against the Core. Its check-in
// afterwards belongs to the MDM protocol (core/apple_mdm.go); this test
// asserts the SCEP step: a certificate issued for the device and recorded.
func TestAppleEnrollWithMDMB(t *testing.T) {
	e := newEnv(t, "sqlite")
	ctx := context.Background()
	mb := appletest.NewMDMB(t, e.m.CA.CertPEM)
	udid := mb.Create(1)[0]
	u, _ := e.mustUser("mdmb-mac@example.com")
	d, err := e.m.Activation.ActivateUser(ctx, activation.UserActivation{UserID: u.ID, Platform: activation.MacOS, HardwareID: udid})
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.m.AppleEnroll.Profile(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	out := mb.Install(udid, p.Unsigned)
	got, err := e.m.DB.Device(ctx, d.ID)
	if err != nil || got.State == device.StateActivating || got.CertSerial == "" {
		t.Fatalf("device after mdmb's SCEP: %+v %v\n%s", got, err, out)
	}
	// The recorded certificate is the one mdmb got: removing the device
	// lists its serial in the CRL.
	if st := e.api("DELETE", "/api/v1/devices/"+d.ID, nil, nil); st != 204 {
		t.Fatalf("remove: %d", st)
	}
	der, err := e.m.CA.CRL(ctx, e.m.DB)
	if err != nil {
		t.Fatal(err)
	}
	crl, _ := x509.ParseRevocationList(der)
	found := false
	for _, r := range crl.RevokedCertificateEntries {
		found = found || pki.SerialHex(r.SerialNumber) == got.CertSerial
	}
	if !found {
		t.Fatal("mdmb's SCEP certificate is not revoked with its device")
	}
}

// mustGiveProfile creates the activation profile prof and assigns it to
// the user uid.
func (e *env) mustGiveProfile(t *testing.T, uid string, prof *activation.Profile) {
	t.Helper()
	ctx := context.Background()
	if err := e.m.Activation.CreateProfile(ctx, prof); err != nil {
		t.Fatal(err)
	}
	u, err := e.m.DB.User(ctx, uid)
	if err != nil {
		t.Fatal(err)
	}
	u.ActivationProfileID = prof.ID
	if err := e.m.DB.UpdateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
}
