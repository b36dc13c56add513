package core_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/custos-uem/custos/activation"
	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/core"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/platform/apple"
	"github.com/custos-uem/custos/platform/apple/appletest"
	"github.com/custos-uem/custos/sqlstore/sqltest"
)

type appleCommandOut struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

// TestAppleMDMWithMDMB enrolls mdmb's simulated Apple devices in a real
// Core through the enrollment profile, SCEP and check-in, then drives
// commands through the REST API and the console and watches them reach
// the devices and their answers reach the API (seed, "Receiving
// configuration updates on an iOS device" / "… on a macOS device", steps
// 5–7).
func TestAppleMDMWithMDMB(t *testing.T) {
	for _, backend := range sqltest.Backends(t) {
		t.Run(backend, func(t *testing.T) { testAppleMDMWithMDMB(t, backend) })
	}
}

func testAppleMDMWithMDMB(t *testing.T, backend string) {
	const n = 5
	e := newEnv(t, backend)
	ctx := context.Background()
	mb := appletest.NewMDMB(t, e.m.CA.CertPEM)
	udids := mb.Create(n)
	ids := make([]string, n)
	for i, udid := range udids {
		u, _ := e.mustUser(fmt.Sprintf("mac%d@example.org", i))
		d, err := e.m.Activation.ActivateUser(ctx, activation.UserActivation{UserID: u.ID, Platform: activation.MacOS,
			HardwareID: udid, Model: "Mac14,2", Name: fmt.Sprintf("mdmb %d", i), OSVersion: "14.4"})
		if err != nil {
			t.Fatal(err)
		}
		p, err := e.m.AppleEnroll.Profile(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		out := mb.Install(udid, p.Unsigned)
		if strings.Contains(out, "PKCSReq decrypt pkiEnvelope") {
			// mdmb's SCEP client (go.mozilla.org/pkcs7) reads the CertRep
			// envelope's encryptedContent only in the constructed form
			// ([0] holding an OCTET STRING), which the SCEP server
			// writes for that reason (enroll.certRepSuccess);
			// smallstep/pkcs7's primitive form reads as empty.
			t.Fatalf("mdmb could not decrypt the SCEP CertRep of device %d, so it never checked in:\n%s", i, out)
		}
		ids[i] = d.ID
		dev, err := e.m.DB.Device(ctx, d.ID)
		if err != nil || dev.State != device.StateEnrolled {
			t.Fatalf("device %d after mdmb installed its profile: %+v, %v\n%s", i, dev, err, out)
		}
		en, err := e.m.DB.EnrollmentOf(ctx, d.ID)
		if err != nil || en.UDID != udid || !en.Enrolled() {
			t.Fatalf("enrollment of device %d: %+v, %v\n%s", i, en, err, out)
		}
		toks, _ := e.m.DB.PushTokens(ctx, []string{d.ID})
		if len(toks) != 1 || toks[0].Provider != "apns" || toks[0].PushMagic != "fakePushMagic" {
			t.Fatalf("push token of device %d: %+v", i, toks)
		}
	}

	// The first connect answers what enrollment queued: device
	// information (mdmb answers it), the app list (mdmb does not know
	// the command: error) and the configuration sync (no policies:
	// nothing to install, so the devices are active).
	mb.Connect(n, udids...)
	for i, id := range ids {
		inv, err := e.m.DB.Inventory(ctx, id)
		if err != nil || inv.Info.Attributes["udid"] != udids[i] || inv.Info.Hostname == "" || inv.Info.SerialNumber == "" {
			t.Fatalf("inventory of device %d: %+v, %v", i, inv, err)
		}
		dev, _ := e.m.DB.Device(ctx, id)
		if dev.State != device.StateActive {
			t.Fatalf("device %d is %s after its (empty) configuration was synced, want active", i, dev.State)
		}
	}

	var list struct {
		Commands []appleCommandOut `json:"items"`
	}
	// The answers to what enrollment queued are in the API: device
	// information acknowledged, the app list answered with mdmb's
	// error (so it reached the device).
	for i, id := range ids {
		e.api("GET", "/api/v1/devices/"+id+"/commands?status=final", nil, &list)
		var info, apps []appleCommandOut
		for _, c := range list.Commands {
			switch c.Type {
			case string(command.DeviceInfo):
				info = append(info, c)
			case string(command.InstalledApps):
				apps = append(apps, c)
			}
		}
		if len(info) != 1 || info[0].Status != string(command.StatusAcknowledged) {
			t.Fatalf("device %d after enrollment: device_info %+v, want one acknowledged", i, info)
		}
		if len(apps) != 1 || apps[0].Status != string(command.StatusError) || !strings.Contains(apps[0].Message, "Unknown command: InstalledApplicationList") {
			t.Fatalf("device %d after enrollment: installed_apps %+v, want one answered with mdmb's error", i, apps)
		}
	}

	// Commands through the REST API: a lock for the first device, a
	// ProfileList (a raw command mdmb implements) for the third, device
	// information for every device.
	var lock, profiles appleCommandOut
	if st := e.api("POST", "/api/v1/devices/"+ids[0]+"/commands", map[string]any{"type": "lock", "payload": map[string]string{"message": "Call IT"}}, &lock); st != 201 {
		t.Fatalf("send lock: %d", st)
	}
	if st := e.api("POST", "/api/v1/devices/"+ids[2]+"/commands", map[string]any{"type": "raw",
		"payload": map[string]any{"platform": "apple", "body": map[string]string{"RequestType": "ProfileList"}}}, &profiles); st != 201 {
		t.Fatalf("send ProfileList: %d", st)
	}
	var bulk struct {
		Count int `json:"count"`
	}
	if st := e.api("POST", "/api/v1/commands", map[string]any{"device_ids": ids, "type": "device_info"}, &bulk); st != 201 || bulk.Count != n {
		t.Fatalf("send device_info: %d %+v", st, bulk)
	}
	mb.Connect(n, udids...)
	var got appleCommandOut
	e.api("GET", "/api/v1/commands/"+lock.ID, nil, &got)
	// mdmb v0.1.0 has no DeviceLock: it reports Error 12021 "Unknown
	// command: DeviceLock", which proves the DeviceLock reached it.
	if got.Status != string(command.StatusError) || !strings.Contains(got.Message, "Unknown command: DeviceLock") {
		t.Fatalf("lock in the API after mdmb answered: %+v", got)
	}
	e.api("GET", "/api/v1/commands/"+profiles.ID, nil, &got)
	if got.Status != string(command.StatusAcknowledged) {
		t.Fatalf("ProfileList in the API after mdmb answered: %+v", got)
	}
	for _, id := range ids {
		e.api("GET", "/api/v1/devices/"+id+"/commands?status=final", nil, &list)
		acked := 0
		for _, c := range list.Commands {
			if c.Type == "device_info" && c.Status == string(command.StatusAcknowledged) {
				acked++
			}
		}
		if acked != 2 {
			t.Fatalf("device %s: %d acknowledged device_info commands in the API, want 2 (%+v)", id, acked, list.Commands)
		}
	}

	// A lock sent from the console's device page reaches an mdmb device.
	w := caSignIn(t, e, "admin", mustRead(t, e.dir, core.AdminPasswordFile))
	w.do("GET", "/console/devices/"+ids[1], nil)
	if st, body, _ := w.do("POST", "/console/devices/"+ids[1]+"/commands", url.Values{"type": {"lock"}}); st != 303 {
		t.Fatalf("console lock: %d\n%s", st, body)
	}
	mb.Connect(1, udids[1])
	e.api("GET", "/api/v1/devices/"+ids[1]+"/commands?status=final", nil, &list)
	var consoleLock *appleCommandOut
	for i, c := range list.Commands {
		if c.Type == "lock" {
			consoleLock = &list.Commands[i]
		}
	}
	if consoleLock == nil || consoleLock.Status != string(command.StatusError) || !strings.Contains(consoleLock.Message, "Unknown command: DeviceLock") {
		t.Fatalf("console lock after mdmb connected: %+v", consoleLock)
	}

}

// TestAppleMDMConsoleAndAPI drives the protocol emulator (Mdm-Signature,
// certificate issued by the Core's CA and recorded for its device) in a
// real Core: a lock from the console's device page and one from the REST
// API are delivered and acknowledged, device information reaches the
// inventory, and the routes refuse requests without an identity, spelled
// oddly, or from a removed device.
func TestAppleMDMConsoleAndAPI(t *testing.T) {
	for _, backend := range sqltest.Backends(t) {
		t.Run(backend, func(t *testing.T) {
			e := newEnv(t, backend)
			ctx := context.Background()
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.roots}}}
			for _, path := range []string{apple.PathCheckin, apple.PathServer, "//device/apple/mdm", "/device/apple/./mdm", "/device/apple/%6Ddm"} {
				req, _ := http.NewRequest(http.MethodPut, e.m.URL()+path, strings.NewReader("<plist><dict/></plist>"))
				res, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				if res.StatusCode != http.StatusUnauthorized {
					t.Fatalf("PUT %s without identity: %d, want 401", path, res.StatusCode)
				}
			}
			w := caSignIn(t, e, "admin", mustRead(t, e.dir, core.AdminPasswordFile))
			var got appleCommandOut
			idn, err := appletest.NewIdentity(ctx, e.m.Activation, e.m.DB, activation.IOS)
			if err != nil {
				t.Fatal(err)
			}
			em := &appletest.Device{UDID: appletest.NewUDID(), Cert: idn.Cert, Key: idn.Key, BaseURL: e.m.URL(),
				Client: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.roots}}}}
			if err := em.Enroll(ctx); err != nil {
				t.Fatal(err)
			}
			for c, _, _ := em.Idle(ctx); c != nil; c, _, _ = em.Answer(ctx, c, apple.StatusAcknowledged, nil) {
			}
			// A Find My PIN that is not 6 digits is refused, naming the PIN,
			// and queues nothing.
			if st, body, _ := w.do("POST", "/console/devices/"+idn.DeviceID+"/commands", url.Values{"type": {"lock"}, "pin": {"31415"}}); st == 303 || !strings.Contains(body, "6 digits") {
				t.Fatalf("console lock with a 5-digit PIN: %d\n%s", st, body)
			}
			if st, body, _ := w.do("POST", "/console/devices/"+idn.DeviceID+"/commands", url.Values{"type": {"lock"}, "pin": {"314159"}}); st != 303 {
				t.Fatalf("console lock: %d\n%s", st, body)
			}
			c, _, err := em.Idle(ctx)
			if err != nil || c == nil || c.RequestType != apple.ReqDeviceLock || c.Body["PIN"] != "314159" {
				t.Fatalf("the emulated device got %+v, %v; want DeviceLock with the PIN", c, err)
			}
			em.Answer(ctx, c, apple.StatusAcknowledged, nil)
			e.api("GET", "/api/v1/commands/"+c.UUID, nil, &got)
			if got.Status != string(command.StatusAcknowledged) || got.Type != "lock" {
				t.Fatalf("console lock in the API: %+v", got)
			}
			if _, body, _ := w.do("GET", "/console/devices/"+idn.DeviceID, nil); !strings.Contains(body, "acknowledged") {
				t.Fatal("the device page does not show the acknowledged lock")
			}
			var info appleCommandOut
			if st := e.api("POST", "/api/v1/devices/"+idn.DeviceID+"/commands", map[string]any{"type": "device_info"}, &info); st != 201 {
				t.Fatalf("send device_info: %d", st)
			}
			c, _, _ = em.Idle(ctx)
			if c == nil || c.RequestType != apple.ReqDeviceInformation {
				t.Fatalf("got %+v, want DeviceInformation", c)
			}
			em.Answer(ctx, c, apple.StatusAcknowledged, map[string]any{"QueryResponses": map[string]any{"SerialNumber": "F2LXJ0N7Q1GC", "OSVersion": "17.5", "ProductName": "iPhone15,2"}})
			e.api("GET", "/api/v1/commands/"+info.ID, nil, &got)
			if got.Status != string(command.StatusAcknowledged) {
				t.Fatalf("device_info in the API: %+v", got)
			}
			inv, err := e.m.DB.Inventory(ctx, idn.DeviceID)
			if err != nil || inv.Info.SerialNumber != "F2LXJ0N7Q1GC" || inv.Info.OSVersion != "17.5" {
				t.Fatalf("inventory: %+v, %v", inv, err)
			}
			if st := e.api("DELETE", "/api/v1/devices/"+idn.DeviceID, nil, nil); st != 204 {
				t.Fatalf("remove the device: %d", st)
			}
			if _, st, _ := em.Idle(ctx); st != http.StatusUnauthorized {
				t.Fatalf("a removed device's report: %d, want 401", st)
			}
		})
	}
}
