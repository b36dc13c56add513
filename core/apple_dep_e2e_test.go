package core_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/micromdm/nanodep/godep"
	"github.com/micromdm/plist"
	"github.com/smallstep/pkcs7"
	"github.com/smallstep/scep"

	"github.com/custos-uem/custos/core"
	"github.com/custos-uem/custos/platform/apple/dep"
	"github.com/custos-uem/custos/platform/apple/dep/deptest"
	"github.com/custos-uem/custos/platform/apple/enroll/enrolltest"
	"github.com/custos-uem/custos/sqlstore/sqltest"
)

// TestAppleDEPEndToEnd runs automated enrollment on a real Core against a
// fake of Apple's ADE API and a fake Apple device CA: the server token
// exchange through the API, a sync that defines and assigns the profile,
// the assignment of a device to a user, then the device's MachineInfo
// answered with its enrollment profile, whose SCEP challenge enrolls it.
func TestAppleDEPEndToEnd(t *testing.T) {
	for _, backend := range sqltest.Backends(t) {
		t.Run(backend, func(t *testing.T) { testAppleDEP(t, backend) })
	}
}

func testAppleDEP(t *testing.T, backend string) {
	apple := deptest.NewServer(t)
	deviceCA := deptest.NewDeviceCA(t, "Fake Apple")
	rootsFile := filepath.Join(t.TempDir(), "apple-device-ca.pem")
	if err := os.WriteFile(rootsFile, deviceCA.RootPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, backend, func(c *core.Config) {
		c.Apple = core.AppleConfig{DEPURL: apple.URL, DeviceCAFile: rootsFile, DEPSyncInterval: -1}
	})
	ctx := context.Background()

	// Before the token: a sync is refused with what to do.
	if st, raw := e.rawAPI("POST", "/api/v1/apple/dep/sync", nil); st != 409 || !strings.Contains(string(raw), "ade_not_configured") {
		t.Fatalf("sync without a token: %d %s", st, raw)
	}
	// The token exchange: public key out, .p7m in.
	var pk struct {
		Certificate string `json:"certificate"`
	}
	if st := e.api("GET", "/api/v1/apple/dep/public-key", nil, &pk); st != 200 || !strings.Contains(pk.Certificate, "BEGIN CERTIFICATE") {
		t.Fatalf("public key: %d %+v", st, pk)
	}
	t.Run("fail/garbage-p7m-token", func(t *testing.T) {
		b, _ := json.Marshal(map[string]string{"token": "MIME-Version: 1.0\r\n\r\nZ2FyYmFnZQ==\r\n"})
		if st, raw := e.rawAPI("PUT", "/api/v1/apple/dep/token", b); st != 400 || !strings.Contains(string(raw), "invalid_ade_token") {
			t.Fatalf("garbage token: %d %s", st, raw)
		}
	})
	b, _ := json.Marshal(map[string]string{"token": string(deptest.TokenP7M(t, []byte(pk.Certificate), apple.Token))})
	st, raw := e.rawAPI("PUT", "/api/v1/apple/dep/token", b)
	if st != 200 || !strings.Contains(string(raw), apple.Token.ConsumerKey) {
		t.Fatalf("token upload: %d %s", st, raw)
	}
	for _, path := range []string{"/api/v1/apple/dep", "/api/v1/audit"} {
		_, raw := e.rawAPI("GET", path, nil)
		for _, s := range []string{apple.Token.ConsumerSecret, apple.Token.AccessSecret, apple.Token.AccessToken} {
			if strings.Contains(string(raw), s) {
				t.Fatalf("GET %s shows a token secret", path)
			}
		}
	}

	apple.AddDevices(
		deptest.Device("C02E2E0001", "MacBook Air", godep.DeviceJsonDeviceFamilyMac, godep.DeviceJsonOsOSX),
		deptest.Device("F2E2E00002", "iPhone 16", godep.DeviceJsonDeviceFamilyIPhone, godep.DeviceJsonOsIOS),
	)
	var rep dep.Report
	if st := e.api("POST", "/api/v1/apple/dep/sync", nil, &rep); st != 200 || rep.Fetched != 2 || rep.Assigned != 2 {
		t.Fatalf("sync: %d %+v", st, rep)
	}
	prof := apple.Profile(rep.ProfileUUID)
	if prof == nil || *prof.Url != strings.TrimSuffix(e.m.Config.PublicURL, "/")+dep.PathEnroll {
		t.Fatalf("the profile's url: %+v", prof)
	}
	var devs struct {
		Items []dep.Device `json:"items"`
	}
	if st := e.api("GET", "/api/v1/apple/dep/devices", nil, &devs); st != 200 || len(devs.Items) != 2 || devs.Items[0].AssignStatus != "SUCCESS" {
		t.Fatalf("devices: %d %+v", st, devs)
	}

	u, _ := e.mustUser("ada@example.com")
	if st := e.api("PATCH", "/api/v1/apple/dep/devices/C02E2E0001", map[string]string{"user_id": u.ID}, nil); st != 200 {
		t.Fatalf("assign: %d", st)
	}
	if st, raw := e.rawAPI("PATCH", "/api/v1/apple/dep/devices/C02E2E0001", []byte(`{"user_id":"no-such-user"}`)); st != 404 {
		t.Fatalf("assign to an unknown user: %d %s", st, raw)
	}

	post := func(body []byte) (int, string, []byte) {
		resp, err := e.hc.Post(e.m.URL()+dep.PathEnroll, "application/pkcs7-signature", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), b
	}
	mi := func(serial string) []byte {
		return deptest.MachineInfo{UDID: "00008103-" + serial, Serial: serial, Product: "MacBookAir10,1", Version: "24A335", Language: "en"}.Plist()
	}
	foreign := deptest.NewDeviceCA(t, "Somebody Else")
	for _, tc := range []struct {
		name   string
		body   []byte
		status int
		code   string
	}{
		{"fail/unsigned-machineinfo", mi("C02E2E0001"), 403, "machineinfo_unsigned"},
		{"fail/machineinfo-signed-by-foreign-ca", foreign.Sign(t, mi("C02E2E0001")), 403, "machineinfo_untrusted"},
		{"fail/serial-not-synced", deviceCA.Sign(t, mi("C02NOTOURS")), 403, "serial_not_assigned"},
		{"fail/no-assigned-user", deviceCA.Sign(t, mi("F2E2E00002")), 403, "ade_no_user"},
		{"fail/oversized-machineinfo", make([]byte, dep.MaxMachineInfo+1), 413, "machineinfo_too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if st, _, body := post(tc.body); st != tc.status || !strings.Contains(string(body), tc.code) {
				t.Fatalf("answer %d %s, want %d %s", st, body, tc.status, tc.code)
			}
		})
	}
	var list struct {
		Items []struct {
			ID    string `json:"id"`
			State string `json:"state"`
		} `json:"items"`
	}
	if e.api("GET", "/api/v1/devices", nil, &list); len(list.Items) != 0 {
		t.Fatalf("refused requests created devices: %+v", list.Items)
	}

	st, ct, body := post(deviceCA.Sign(t, mi("C02E2E0001")))
	if st != 200 || ct != dep.ContentTypeProfile {
		t.Fatalf("enrollment: %d %s %s", st, ct, body)
	}
	if e.api("GET", "/api/v1/devices?user="+u.ID, nil, &list); len(list.Items) != 1 || list.Items[0].State != "activating" {
		t.Fatalf("the user's devices after ADE: %+v", list.Items)
	}
	deviceID := list.Items[0].ID
	p7, err := pkcs7.Parse(body)
	if err != nil {
		t.Fatalf("the profile is not CMS-signed: %v", err)
	}
	var profile map[string]any
	if err := plist.Unmarshal(p7.Content, &profile); err != nil {
		t.Fatal(err)
	}
	var challenge, scepURL string
	for _, p := range profile["PayloadContent"].([]any) {
		if m := p.(map[string]any); m["PayloadType"] == "com.apple.security.scep" {
			c := m["PayloadContent"].(map[string]any)
			challenge, _ = c["Challenge"].(string)
			scepURL, _ = c["URL"].(string)
		}
	}
	if challenge == "" || scepURL == "" {
		t.Fatalf("no SCEP payload in the profile: %v", profile)
	}
	// The device does SCEP with the profile's challenge: its identity is
	// issued and the device enrolled.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	sc := &enrolltest.SCEPClient{URL: e.m.URL() + strings.TrimPrefix(scepURL, strings.TrimSuffix(e.m.Config.PublicURL, "/")), HTTP: e.hc}
	res, err := sc.Enroll(ctx, enrolltest.Request{Key: key, CommonName: deviceID, Challenge: challenge}, false)
	if err != nil || res.Status != scep.SUCCESS || res.Cert == nil || res.Cert.Subject.CommonName != deviceID {
		t.Fatalf("SCEP with the ADE profile's challenge: %+v %v", res, err)
	}
	if e.api("GET", "/api/v1/devices?user="+u.ID, nil, &list); len(list.Items) != 1 || list.Items[0].State != "enrolled" {
		t.Fatalf("after SCEP: %+v", list.Items)
	}
	if e.api("GET", "/api/v1/apple/dep/devices", nil, &devs); devs.Items[0].Serial != "C02E2E0001" || devs.Items[0].EnrolledDeviceID != deviceID {
		t.Fatalf("the ADE record of the enrollment: %+v", devs.Items[0])
	}
}

// TestAppleDEPScheduledSync: the Core's scheduler syncs the device list
// by itself once a server token is uploaded.
func TestAppleDEPScheduledSync(t *testing.T) {
	apple := deptest.NewServer(t)
	e := newEnvWith(t, "sqlite", func(c *core.Config) {
		c.Apple = core.AppleConfig{DEPURL: apple.URL, DEPSyncInterval: 50 * time.Millisecond}
	})
	apple.AddDevices(deptest.Device("C02SCHED01", "Mac mini", godep.DeviceJsonDeviceFamilyMac, godep.DeviceJsonOsOSX))
	var pk struct {
		Certificate string `json:"certificate"`
	}
	e.api("GET", "/api/v1/apple/dep/public-key", nil, &pk)
	b, _ := json.Marshal(map[string]string{"token": string(deptest.TokenP7M(t, []byte(pk.Certificate), apple.Token))})
	if st, raw := e.rawAPI("PUT", "/api/v1/apple/dep/token", b); st != 200 {
		t.Fatalf("token upload: %d %s", st, raw)
	}
	waitFor(t, "the scheduled sync", func() bool {
		e.clock.Add(time.Second) // the test clock: each look makes the next run due
		var devs struct {
			Items []dep.Device `json:"items"`
		}
		e.api("GET", "/api/v1/apple/dep/devices", nil, &devs)
		return len(devs.Items) == 1 && devs.Items[0].AssignStatus == "SUCCESS"
	})
}
