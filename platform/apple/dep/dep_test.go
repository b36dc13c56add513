package dep_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/micromdm/nanodep/godep"

	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/platform/apple/dep"
	"github.com/custos-uem/custos/platform/apple/dep/deptest"
	"github.com/custos-uem/custos/secret"
)

const publicURL = "https://custos.example.com:8443"

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type fixture struct {
	t     *testing.T
	apple *deptest.Server
	store *deptest.MemStore
	svc   *dep.Service
	clock *clock
	enr   *fakeEnroller
}

// fakeEnroller stands in for activation and the Apple enrollment profile.
type fakeEnroller struct {
	mu  sync.Mutex
	got []dep.Enrollee
}

func (f *fakeEnroller) Activate(_ context.Context, e dep.Enrollee) (*device.Device, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, e)
	return &device.Device{ID: "dev-" + e.Serial, UserID: e.UserID}, nil
}

func (f *fakeEnroller) Profile(_ context.Context, d *device.Device) ([]byte, error) {
	return []byte("profile of " + d.ID), nil
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	box, err := secret.New(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, apple: deptest.NewServer(t), store: deptest.NewMemStore(), clock: &clock{now: time.Now().UTC()}, enr: &fakeEnroller{}}
	f.svc = &dep.Service{Store: f.store, Box: box, BaseURL: f.apple.URL, PublicURL: publicURL, Now: f.clock.Now, Enroll: f.enr}
	return f
}

// uploadToken goes through the administrator's round trip: download the
// public key, "upload it to ABM", upload the .p7m ABM gives back.
func (f *fixture) uploadToken(tok deptest.Token) (*dep.TokenInfo, error) {
	f.t.Helper()
	certPEM, err := f.svc.PublicKeyPEM(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return f.svc.UploadToken(context.Background(), deptest.TokenP7M(f.t, certPEM, tok), "admin")
}

func TestServerTokenRoundTrip(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	certPEM, err := f.svc.PublicKeyPEM(ctx)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := f.svc.PublicKeyPEM(ctx)
	if !bytes.Equal(certPEM, again) {
		t.Fatal("the public key changed between two downloads")
	}
	if b, _ := pem.Decode(certPEM); b == nil || b.Type != "CERTIFICATE" {
		t.Fatalf("public key download is not a PEM certificate: %.60s", certPEM)
	} else if c, err := x509.ParseCertificate(b.Bytes); err != nil || c.PublicKeyAlgorithm != x509.RSA {
		t.Fatalf("certificate: %v (ABM wants RSA)", err)
	}
	for k, v := range f.storeSettings() {
		if strings.Contains(v, "PRIVATE KEY") {
			t.Fatalf("setting %s holds the key in the clear", k)
		}
	}

	t.Run("fail/garbage-p7m-token", func(t *testing.T) {
		for _, body := range [][]byte{[]byte("garbage"), []byte("Content-Type: application/pkcs7-mime\r\n\r\nbm90IGEgY21zIG1lc3NhZ2U=\r\n"), {}} {
			_, err := f.svc.UploadToken(ctx, body, "admin")
			if code, _, _ := errs.Public(err); code != "invalid_ade_token" {
				t.Fatalf("garbage %q: %v, want invalid_ade_token", body, err)
			}
		}
	})
	t.Run("fail/token-for-another-server", func(t *testing.T) {
		other := newFixture(t)
		otherPEM, _ := other.svc.PublicKeyPEM(ctx)
		_, err := f.svc.UploadToken(ctx, deptest.TokenP7M(t, otherPEM, f.apple.Token), "admin")
		if code, _, _ := errs.Public(err); code != "invalid_ade_token" {
			t.Fatalf("token encrypted to another key: %v", err)
		}
	})
	t.Run("fail/oversized-token", func(t *testing.T) {
		_, err := f.svc.UploadToken(ctx, make([]byte, dep.MaxTokenFile+1), "admin")
		if !errs.Is(err, errs.TooLarge) {
			t.Fatalf("oversized: %v", err)
		}
	})
	t.Run("ok/upload", func(t *testing.T) {
		info, err := f.uploadToken(f.apple.Token)
		if err != nil {
			t.Fatal(err)
		}
		if !info.Configured || info.ConsumerKey != f.apple.Token.ConsumerKey || !info.Expiry.Equal(f.apple.Token.Expiry) || info.ExpiringSoon {
			t.Fatalf("token info %+v", info)
		}
		for k, v := range f.storeSettings() {
			for _, secretPart := range []string{f.apple.Token.ConsumerSecret, f.apple.Token.AccessSecret, f.apple.Token.AccessToken} {
				if strings.Contains(v, secretPart) {
					t.Fatalf("setting %s holds a token secret in the clear", k)
				}
			}
		}
	})
}

func (f *fixture) storeSettings() map[string]string {
	out := map[string]string{}
	for _, k := range []string{"token_keypair", "server_token", "cursor", "profile", "profile_config", "default_user", "last_sync"} {
		if v, err := f.store.DEPSetting(context.Background(), k); err == nil {
			out[k] = v
		}
	}
	return out
}

func TestSyncWithCursorAndProfile(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.svc.Sync(ctx); !errors.Is(err, dep.ErrNoToken) {
		t.Fatalf("sync without a token: %v, want ErrNoToken", err)
	}
	if _, err := f.uploadToken(f.apple.Token); err != nil {
		t.Fatal(err)
	}
	// More devices than one page (1000) holds.
	var devs []godep.DeviceJson
	for i := range 1203 {
		devs = append(devs, deptest.Device(serial(i), "iPhone 16", godep.DeviceJsonDeviceFamilyIPhone, godep.DeviceJsonOsIOS))
	}
	devs = append(devs, deptest.Device("C02MAC0001", "MacBook Pro", godep.DeviceJsonDeviceFamilyMac, godep.DeviceJsonOsOSX))
	f.apple.AddDevices(devs...)

	rep, err := f.svc.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Full || rep.Fetched != 1204 || rep.ProfileUUID == "" || rep.Assigned != 1204 || rep.Failed != 0 ||
		rep.ServerName != "Custos test server" || rep.OrgName != "Example Org" {
		t.Fatalf("first sync %+v", rep)
	}
	if n := f.apple.Requests("POST /server/devices"); n != 2 {
		t.Fatalf("first sync made %d fetch requests, want 2 pages", n)
	}
	if n := f.apple.Requests("GET /session"); n != 1 {
		t.Fatalf("first sync opened %d sessions, want 1", n)
	}
	prof := f.apple.Profile(rep.ProfileUUID)
	if prof == nil || *prof.Url != publicURL+dep.PathEnroll || !*prof.IsSupervised || !*prof.IsMandatory || prof.IsMdmRemovable {
		t.Fatalf("profile defined %+v", prof)
	}
	if f.apple.Assigned("C02MAC0001") != rep.ProfileUUID {
		t.Fatal("the Mac was not assigned the profile")
	}
	d, err := f.store.DEPDevice(ctx, "C02MAC0001")
	if err != nil || d.ProfileUUID != rep.ProfileUUID || d.AssignStatus != "SUCCESS" || d.Model != "MacBook Pro" || d.OS != "OSX" {
		t.Fatalf("stored Mac %+v %v", d, err)
	}

	// Incremental: one added, one removed; only the new one is assigned,
	// no fetch of every device again.
	f.apple.AddDevices(deptest.Device("DMPNEW0001", "iPad Air", godep.DeviceJsonDeviceFamilyIPad, godep.DeviceJsonOsIPadOS))
	f.apple.RemoveDevice(serial(5))
	rep, err = f.svc.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Full || rep.Added != 1 || rep.Deleted != 1 || rep.Assigned != 1 {
		t.Fatalf("incremental sync %+v", rep)
	}
	if n := f.apple.Requests("POST /server/devices"); n != 2 {
		t.Fatalf("the incremental sync fetched every device again (%d fetches)", n)
	}
	if n := f.apple.Requests("POST /profile"); n != 1 {
		t.Fatalf("the unchanged profile was defined %d times", n)
	}
	if d, _ := f.store.DEPDevice(ctx, serial(5)); !d.Removed {
		t.Fatalf("removed device %+v", d)
	}

	// A changed config defines a new profile and assigns it to all.
	cfg, _ := f.svc.ProfileConfig(ctx)
	cfg.SkipSetupItems = []string{"Location", "Siri"}
	cfg.Department = "IT"
	if err := f.svc.SetProfileConfig(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	rep, err = f.svc.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p := f.apple.Profile(rep.ProfileUUID); p == nil || len(p.SkipSetupItems) != 2 || *p.Department != "IT" || rep.Assigned != 1204 {
		t.Fatalf("after a config change: %+v", rep)
	}

	// An expired cursor starts a full fetch again.
	f.apple.ExpireCursors()
	rep, err = f.svc.Sync(ctx)
	if err != nil {
		t.Fatalf("sync after the cursor expired: %v", err)
	}
	if !rep.Full {
		t.Fatalf("after an expired cursor: %+v, want a full fetch", rep)
	}
}

func serial(i int) string { return "F" + strings.Repeat("0", 8-len(itoa(i))) + itoa(i) }

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

func TestExpiredServerToken(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tok := f.apple.Token
	tok.Expiry = f.clock.Now().Add(10 * 24 * time.Hour).Truncate(time.Second)
	f.apple.Token = tok
	info, err := f.uploadToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	if !info.ExpiringSoon || info.Expired {
		t.Fatalf("a token of 10 days: %+v, want expiring_soon", info)
	}
	t.Run("fail/expired-server-token", func(t *testing.T) {
		f.clock.Add(11 * 24 * time.Hour)
		_, err := f.svc.Sync(ctx)
		if !errors.Is(err, dep.ErrTokenExpired) {
			t.Fatalf("sync with an expired token: %v", err)
		}
		if n := f.apple.Requests("GET /session"); n != 0 {
			t.Fatalf("the expired token was sent to Apple (%d sessions)", n)
		}
		if n, _ := f.svc.CheckExpiry(ctx); n != 1 {
			t.Fatal("no warning for an expired token")
		}
		info, _ := f.svc.TokenInfo(ctx)
		if !info.Expired {
			t.Fatalf("info %+v", info)
		}
	})
	t.Run("fail/expired-token-upload", func(t *testing.T) {
		_, err := f.uploadToken(tok)
		if !errors.Is(err, dep.ErrTokenExpired) {
			t.Fatalf("upload of an expired token: %v", err)
		}
	})
}

// TestEnrollRequests drives the MachineInfo endpoint with signed, unsigned,
// foreign and unassigned requests.
func TestEnrollRequests(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.uploadToken(f.apple.Token); err != nil {
		t.Fatal(err)
	}
	f.apple.AddDevices(
		deptest.Device("C02ASSIGNED", "MacBook Air", godep.DeviceJsonDeviceFamilyMac, godep.DeviceJsonOsOSX),
		deptest.Device("F1NOUSER", "iPhone 16", godep.DeviceJsonDeviceFamilyIPhone, godep.DeviceJsonOsIOS),
	)
	if _, err := f.svc.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.AssignUser(ctx, "C02ASSIGNED", "user-ada"); err != nil {
		t.Fatal(err)
	}
	apple := deptest.NewDeviceCA(t, "Fake Apple")
	foreign := deptest.NewDeviceCA(t, "Somebody Else")
	srv := httptest.NewServer(f.svc.Handler(apple.Roots))
	defer srv.Close()
	mi := func(serial string) []byte {
		return deptest.MachineInfo{UDID: "00008030-" + serial, Serial: serial, Product: "MacBookAir10,1", Version: "24A335", Language: "en-US"}.Plist()
	}
	post := func(body []byte) (int, string, []byte) {
		resp, err := http.Post(srv.URL+dep.PathEnroll, "application/pkcs7-signature", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), b.Bytes()
	}
	for _, tc := range []struct {
		name   string
		body   []byte
		status int
		code   string
	}{
		{"fail/unsigned-machineinfo", mi("C02ASSIGNED"), 403, "machineinfo_unsigned"},
		{"fail/machineinfo-signed-by-foreign-ca", foreign.Sign(t, mi("C02ASSIGNED")), 403, "machineinfo_untrusted"},
		{"fail/serial-not-synced", apple.Sign(t, mi("C02UNKNOWN")), 403, "serial_not_assigned"},
		{"fail/no-assigned-user", apple.Sign(t, mi("F1NOUSER")), 403, "ade_no_user"},
		{"fail/oversized-machineinfo", bytes.Repeat([]byte{0x30}, dep.MaxMachineInfo+1), 413, "machineinfo_too_large"},
		{"fail/garbage", []byte("\x30\x82garbage"), 400, "invalid_machineinfo"},
		{"fail/signed-by-a-ca-certificate-itself", signedByCA(t, apple, mi("C02ASSIGNED")), 403, "machineinfo_untrusted"},
		{"fail/deep-plist", apple.Sign(t, []byte(strings.Repeat("<array>", 50)+strings.Repeat("</array>", 50))), 400, "invalid_machineinfo"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, _, body := post(tc.body)
			if st != tc.status || !strings.Contains(string(body), `"`+tc.code+`"`) {
				t.Fatalf("answer %d %s, want %d %s", st, body, tc.status, tc.code)
			}
		})
	}
	if len(f.enr.got) != 0 {
		t.Fatalf("refused requests created devices: %+v", f.enr.got)
	}
	t.Run("ok/assigned-device-gets-its-profile", func(t *testing.T) {
		st, ct, body := post(apple.Sign(t, mi("C02ASSIGNED")))
		if st != 200 || ct != dep.ContentTypeProfile || string(body) != "profile of dev-C02ASSIGNED" {
			t.Fatalf("answer %d %s %q", st, ct, body)
		}
		if len(f.enr.got) != 1 || f.enr.got[0] != (dep.Enrollee{UserID: "user-ada", Platform: "macos", UDID: "00008030-C02ASSIGNED",
			Serial: "C02ASSIGNED", Model: "MacBookAir10,1", OSVersion: "24A335"}) {
			t.Fatalf("enrollee %+v", f.enr.got)
		}
		d, _ := f.store.DEPDevice(ctx, "C02ASSIGNED")
		if d.EnrolledDeviceID != "dev-C02ASSIGNED" {
			t.Fatalf("enrollment not recorded: %+v", d)
		}
	})
	t.Run("ok/sha1-signed-device-chain", func(t *testing.T) {
		legacy := deptest.NewSHA1DeviceCA(t, "Fake Apple (SHA-1)")
		srv := httptest.NewServer(f.svc.Handler(legacy.Roots))
		defer srv.Close()
		resp, err := http.Post(srv.URL+dep.PathEnroll, "application/pkcs7-signature", bytes.NewReader(legacy.Sign(t, mi("C02ASSIGNED"))))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("a SHA-1 device chain: %d", resp.StatusCode)
		}
		// and a SHA-1 chain of another CA is still refused
		other := deptest.NewSHA1DeviceCA(t, "Somebody Else (SHA-1)")
		resp, err = http.Post(srv.URL+dep.PathEnroll, "application/pkcs7-signature", bytes.NewReader(other.Sign(t, mi("C02ASSIGNED"))))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 403 {
			t.Fatalf("a foreign SHA-1 chain: %d", resp.StatusCode)
		}
	})
	t.Run("ok/default-user", func(t *testing.T) {
		if err := f.svc.SetDefaultUser(ctx, "user-default"); err != nil {
			t.Fatal(err)
		}
		if st, _, body := post(apple.Sign(t, mi("F1NOUSER"))); st != 200 {
			t.Fatalf("answer %d %s", st, body)
		}
		if got := f.enr.got[len(f.enr.got)-1]; got.UserID != "user-default" {
			t.Fatalf("enrollee %+v", got)
		}
	})
	t.Run("fail/removed-device", func(t *testing.T) {
		f.apple.RemoveDevice("C02ASSIGNED")
		if _, err := f.svc.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if st, _, body := post(apple.Sign(t, mi("C02ASSIGNED"))); st != 403 || !strings.Contains(string(body), "serial_not_assigned") {
			t.Fatalf("answer %d %s", st, body)
		}
	})
}

func TestNoRootsConfigured(t *testing.T) {
	f := newFixture(t)
	apple := deptest.NewDeviceCA(t, "Fake Apple")
	srv := httptest.NewServer(f.svc.Handler(func() *dep.Roots { return nil }))
	defer srv.Close()
	body := apple.Sign(t, deptest.MachineInfo{UDID: "u", Serial: "s"}.Plist())
	resp, err := http.Post(srv.URL+dep.PathEnroll, "application/pkcs7-signature", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("without roots: %d, want 503", resp.StatusCode)
	}
}

// FuzzParseMachineInfo: no input makes the parser panic, and whatever it
// accepts is signed by the fake Apple CA and has a UDID and a serial.
func FuzzParseMachineInfo(f *testing.F) {
	apple := deptest.NewDeviceCA(f, "Fake Apple")
	good := deptest.MachineInfo{UDID: "00008030-001", Serial: "C02X", Product: "iPhone16,1", Version: "22A100"}.Plist()
	f.Add(apple.Sign(f, good))
	f.Add(good)
	f.Add(apple.Sign(f, []byte("<plist><dict><key>UDID</key><integer>1</integer></dict></plist>")))
	f.Add([]byte{0x30, 0x80})
	f.Add([]byte("bplist00"))
	roots := apple.Roots()
	now := time.Now()
	f.Fuzz(func(t *testing.T, b []byte) {
		mi, err := dep.ParseMachineInfo(b, roots, now)
		if err == nil && (mi.UDID == "" || mi.Serial == "") {
			t.Fatalf("accepted %+v without UDID or serial", mi)
		}
		// The plist layer alone, as if the signature had verified.
		if mi, err := dep.ParsePlistForTest(b); err == nil && (mi.UDID == "" || mi.Serial == "") {
			t.Fatalf("plist accepted %+v", mi)
		}
	})
}

// TestTokenRefusedByApple: a token Apple does not accept (revoked, or
// another server's) fails the sync with what to do.
func TestTokenRefusedByApple(t *testing.T) {
	f := newFixture(t)
	tok := f.apple.Token
	tok.AccessSecret = "not-the-secret-apple-knows"
	if _, err := f.uploadToken(tok); err != nil {
		t.Fatal(err)
	}
	_, err := f.svc.Sync(context.Background())
	if code, _, _ := errs.Public(err); code != "ade_token_refused" {
		t.Fatalf("sync with a token Apple refuses: %v", err)
	}
}

// signedByCA is content signed by a certificate that is not a device's
// (here a self-signed one with the CA's name): it must not chain.
func signedByCA(t *testing.T, ca *deptest.DeviceCA, content []byte) []byte {
	t.Helper()
	impostor := deptest.NewDeviceCA(t, ca.Root.Subject.Organization[0])
	return impostor.Sign(t, content)
}
