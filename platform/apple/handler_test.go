package apple_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"math/big"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/micromdm/plist"

	"github.com/custos-uem/custos/activation"
	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/platform/apple"
	"github.com/custos-uem/custos/platform/apple/appletest"
	"github.com/custos-uem/custos/policy"
	"github.com/custos-uem/custos/sqlstore/sqltest"
)

var ctx = context.Background()

func testdata(t *testing.T, name, udid string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.ReplaceAll(b, []byte("00008110-000A1234B0C1801E"), []byte(udid))
}

func wantStatus(t *testing.T, what string, got, want int, body []byte) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: HTTP %d, want %d: %s", what, got, want, body)
	}
}

func send(t *testing.T, s *appletest.Server, idn *appletest.Identity, cmd command.NewCommand) *command.Command {
	t.Helper()
	cmd.CreatedBy = "admin-test"
	cs, err := s.Commands.Send(ctx, []string{idn.DeviceID}, cmd)
	if err != nil {
		t.Fatal(err)
	}
	return cs[0]
}

func get(t *testing.T, s *appletest.Server, id string) *command.Command {
	t.Helper()
	c, err := s.Commands.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// foreignIdentity is a certificate with the device's CN from a CA that is
// not the Core's.
func foreignIdentity(t *testing.T, cn string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Custos CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}

func TestCheckinAndCommandFaults(t *testing.T) {
	s := appletest.NewServer(t, "sqlite")
	t.Run("fail/checkin-without-identity", func(t *testing.T) {
		d, _ := s.NewDevice(t)
		body := testdata(t, "authenticate.plist", d.UDID)
		req, _ := http.NewRequest(http.MethodPut, s.HTTP.URL+apple.PathCheckin, bytes.NewReader(body))
		res, err := s.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		wantStatus(t, "check-in without identity", res.StatusCode, http.StatusUnauthorized, nil)
		req, _ = http.NewRequest(http.MethodPut, s.HTTP.URL+apple.PathServer, bytes.NewReader(testdata(t, "idle.plist", d.UDID)))
		res, err = s.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		wantStatus(t, "report without identity", res.StatusCode, http.StatusUnauthorized, nil)
	})
	t.Run("fail/signature-of-another-body", func(t *testing.T) {
		d, _ := s.NewDevice(t)
		sig, _ := appletest.Sign(d.Cert, d.Key, []byte("something else"))
		st, b, _ := d.Put(ctx, apple.PathCheckin, testdata(t, "authenticate.plist", d.UDID), http.Header{apple.HeaderSignature: {sig}})
		wantStatus(t, "check-in with a signature of another body", st, http.StatusUnauthorized, b)
	})
	t.Run("fail/foreign-ca-certificate", func(t *testing.T) {
		d, idn := s.NewDevice(t)
		d.Cert, d.Key = foreignIdentity(t, idn.DeviceID)
		st, b, _ := d.Put(ctx, apple.PathCheckin, testdata(t, "authenticate.plist", d.UDID), nil)
		wantStatus(t, "check-in signed by a foreign CA's certificate", st, http.StatusUnauthorized, b)
		if !strings.Contains(string(b), "certificate_untrusted") {
			t.Fatalf("answer %s, want certificate_untrusted", b)
		}
	})
	t.Run("fail/body-names-other-udid", func(t *testing.T) {
		d, idn := s.MustEnroll(t)
		other, _ := s.MustEnroll(t)
		before, _ := s.DB.PushTokens(ctx, []string{idn.DeviceID})
		st, b, _ := d.Put(ctx, apple.PathCheckin, testdata(t, "token_update.plist", other.UDID), http.Header{"Content-Type": {apple.ContentTypeCheckin}})
		wantStatus(t, "TokenUpdate naming another UDID", st, http.StatusForbidden, b)
		after, _ := s.DB.PushTokens(ctx, []string{idn.DeviceID})
		if len(before) != 1 || len(after) != 1 || before[0].Token != after[0].Token {
			t.Fatalf("push token changed: %+v → %+v", before, after)
		}
		c := send(t, s, idn, command.NewCommand{Type: command.Lock})
		_, st, _ = d.Report(ctx, map[string]any{"UDID": other.UDID, "Status": "Idle"})
		wantStatus(t, "report naming another UDID", st, http.StatusForbidden, nil)
		if got := get(t, s, c.ID); got.Status != command.StatusPending {
			t.Fatalf("the command is %s after a refused report, want pending", got.Status)
		}
		_, st, _ = d.Report(ctx, map[string]any{"UDID": other.UDID, "Status": "Acknowledged", "CommandUUID": c.ID})
		wantStatus(t, "result naming another UDID", st, http.StatusForbidden, nil)
	})
	t.Run("fail/authenticate-with-cert-bound-elsewhere", func(t *testing.T) {
		d, _ := s.MustEnroll(t)
		st, b, _ := d.Put(ctx, apple.PathCheckin, testdata(t, "authenticate.plist", appletest.NewUDID()), nil)
		wantStatus(t, "Authenticate of a new UDID with a bound certificate", st, http.StatusForbidden, b)
		// Another device's certificate cannot take over a bound UDID either.
		e, _ := s.NewDevice(t)
		st, b, _ = e.Put(ctx, apple.PathCheckin, testdata(t, "authenticate.plist", d.UDID), nil)
		wantStatus(t, "Authenticate of another device's UDID", st, http.StatusForbidden, b)
		c, st, err := d.Idle(ctx)
		if err != nil || st != http.StatusOK || c != nil {
			t.Fatalf("the bound device after the refused attempts: %v, HTTP %d, %v", c, st, err)
		}
	})
	t.Run("fail/authenticate-from-another-platform", func(t *testing.T) {
		idn, err := appletest.NewIdentity(ctx, s.Activation, s.DB, activation.Android)
		if err != nil {
			t.Fatal(err)
		}
		d := &appletest.Device{UDID: appletest.NewUDID(), Cert: idn.Cert, Key: idn.Key, BaseURL: s.HTTP.URL, Client: s.Client}
		st, b, _ := d.Put(ctx, apple.PathCheckin, testdata(t, "authenticate.plist", d.UDID), nil)
		wantStatus(t, "Authenticate with an Android device's certificate", st, http.StatusForbidden, b)
	})
	t.Run("fail/malformed-plist", func(t *testing.T) {
		d, _ := s.MustEnroll(t)
		for _, body := range []string{"<plist><dict><key>Status</key>", "not xml at all", "bplist00\x00\x01", `<?xml version="1.0"?><!DOCTYPE plist [<!ENTITY x "y">]><plist><dict/></plist>`, "<plist><array/></plist>"} {
			st, b, _ := d.Put(ctx, apple.PathServer, []byte(body), nil)
			wantStatus(t, "report "+body, st, http.StatusBadRequest, b)
			st, b, _ = d.Put(ctx, apple.PathCheckin, []byte(body), nil)
			wantStatus(t, "check-in "+body, st, http.StatusBadRequest, b)
		}
	})
	t.Run("fail/deeply-nested-plist", func(t *testing.T) {
		d, _ := s.MustEnroll(t)
		body := `<plist><dict><key>UDID</key><string>` + d.UDID + `</string><key>Status</key><string>Idle</string><key>X</key>` +
			strings.Repeat("<array>", apple.MaxDepth) + strings.Repeat("</array>", apple.MaxDepth) + `</dict></plist>`
		st, b, _ := d.Put(ctx, apple.PathServer, []byte(body), nil)
		wantStatus(t, "deeply nested report", st, http.StatusBadRequest, b)
		if !strings.Contains(string(b), "plist_too_deep") {
			t.Fatalf("answer %s, want plist_too_deep", b)
		}
	})
	t.Run("fail/oversized-plist", func(t *testing.T) {
		d, _ := s.MustEnroll(t)
		pad := strings.Repeat("x", apple.MaxCheckinBody)
		body := testdata(t, "checkout.plist", d.UDID)
		body = bytes.Replace(body, []byte("<dict>"), []byte("<dict><key>Pad</key><string>"+pad+"</string>"), 1)
		st, b, _ := d.Put(ctx, apple.PathCheckin, body, nil)
		wantStatus(t, "oversized check-in", st, http.StatusRequestEntityTooLarge, b)
		big := bytes.Repeat([]byte(" "), apple.MaxReportBody+1)
		st, b, _ = d.Put(ctx, apple.PathServer, big, nil)
		wantStatus(t, "oversized report", st, http.StatusRequestEntityTooLarge, b)
	})
	t.Run("fail/report-for-command-never-queued", func(t *testing.T) {
		d, idn := s.MustEnroll(t)
		_, other := s.MustEnroll(t)
		foreign := send(t, s, other, command.NewCommand{Type: command.Lock})
		for _, uuid := range []string{foreign.ID, "0190aaaa-0000-7000-8000-000000000000"} {
			_, st, _ := d.Report(ctx, map[string]any{"Status": "Acknowledged", "CommandUUID": uuid})
			wantStatus(t, "result for a command never queued for the device", st, http.StatusNotFound, nil)
		}
		if got := get(t, s, foreign.ID); got.Status != command.StatusPending {
			t.Fatalf("the other device's command is %s, want pending", got.Status)
		}
		open, _ := s.Commands.List(ctx, command.Query{DeviceID: idn.DeviceID, Open: true})
		if len(open) != 0 {
			t.Fatalf("the device has %d open commands, want none", len(open))
		}
	})
	t.Run("fail/user-channel-declined", func(t *testing.T) {
		d, _ := s.MustEnroll(t)
		st, b, _ := d.Checkin(ctx, map[string]any{"MessageType": "UserAuthenticate", "UserID": "A1", "UserShortName": "jane"})
		wantStatus(t, "UserAuthenticate", st, http.StatusGone, b)
	})
	t.Run("fail/removed-device", func(t *testing.T) {
		d, idn := s.MustEnroll(t)
		if err := s.Devices.Remove(ctx, idn.DeviceID); err != nil {
			t.Fatal(err)
		}
		_, st, _ := d.Idle(ctx)
		wantStatus(t, "report of a removed device", st, http.StatusUnauthorized, nil)
	})
	t.Run("fail/command-before-enrollment", func(t *testing.T) {
		d, _ := s.NewDevice(t)
		_, st, _ := d.Idle(ctx)
		wantStatus(t, "report before Authenticate", st, http.StatusForbidden, nil)
	})
	t.Run("ok/repeated-token-update", func(t *testing.T) {
		d, idn := s.NewDevice(t)
		for _, name := range []string{"authenticate.plist", "token_update.plist", "token_update.plist"} {
			st, b, _ := d.Put(ctx, apple.PathCheckin, testdata(t, name, d.UDID), nil)
			wantStatus(t, name, st, http.StatusOK, b)
		}
		next := bytes.Replace(testdata(t, "token_update.plist", d.UDID), []byte("FbmWAl8pPx2ufcuGiZPwuSrSFnq9vLyZf1RqnGENZKE="), []byte("AAECAwQ="), 1)
		st, b, _ := d.Put(ctx, apple.PathCheckin, next, nil)
		wantStatus(t, "a TokenUpdate with a new token", st, http.StatusOK, b)
		toks, _ := s.DB.PushTokens(ctx, []string{idn.DeviceID})
		if len(toks) != 1 || toks[0].Provider != "apns" || toks[0].Token != "0001020304" || toks[0].PushMagic != "A1B2C3D4-E5F6-7890-ABCD-EF1234567890" ||
			toks[0].Topic != "com.apple.mgmt.External.e3b8ceac-1f18-2c8e-8a63-dd17d99435d9" {
			t.Fatalf("push tokens = %+v", toks)
		}
		open, _ := s.Commands.List(ctx, command.Query{DeviceID: idn.DeviceID, Open: true})
		types := map[command.Type]int{}
		for _, c := range open {
			types[c.Type]++
		}
		if types[command.DeviceInfo] != 1 || types[command.InstalledApps] != 1 || types[command.SyncConfig] != 1 {
			t.Fatalf("queued after three token updates: %v, want one of each enrollment command", types)
		}
	})
	t.Run("ok/notnow-then-immediate-poll-gets-next-not-same", func(t *testing.T) {
		d, idn := s.MustEnroll(t)
		lock := send(t, s, idn, command.NewCommand{Type: command.Lock})
		info := send(t, s, idn, command.NewCommand{Type: command.DeviceInfo})
		c, _, _ := d.Idle(ctx)
		if c == nil || c.UUID != lock.ID || c.RequestType != apple.ReqDeviceLock {
			t.Fatalf("first command %+v, want the lock", c)
		}
		c, st, err := d.Answer(ctx, c, apple.StatusNotNow, nil)
		if err != nil || st != http.StatusOK || c == nil || c.UUID != info.ID {
			t.Fatalf("after NotNow: %+v, HTTP %d, %v; want the device information command", c, st, err)
		}
		c2, _, _ := d.Idle(ctx) // an immediate poll, the info command unanswered: it is redelivered, never the lock
		if c2 == nil || c2.UUID != info.ID {
			t.Fatalf("immediate poll after NotNow got %+v, want the device information again", c2)
		}
		if got := get(t, s, lock.ID); got.Status != command.StatusNotNow || got.NotBefore == nil {
			t.Fatalf("lock after NotNow = %+v", got)
		}
	})
	t.Run("ok/lock-acknowledged", func(t *testing.T) {
		d, idn := s.MustEnroll(t)
		lock := send(t, s, idn, command.NewCommand{Type: command.Lock, Payload: json.RawMessage(`{"message":"Call IT","phone_number":"+1 555 0100"}`)})
		c, _, _ := d.Idle(ctx)
		if c == nil || c.RequestType != "DeviceLock" || c.Body["Message"] != "Call IT" || c.Body["PhoneNumber"] != "+1 555 0100" {
			t.Fatalf("lock command = %+v", c)
		}
		next, st, _ := d.Answer(ctx, c, apple.StatusAcknowledged, nil)
		if st != http.StatusOK || next != nil {
			t.Fatalf("after the answer: HTTP %d, %+v; want an empty 200", st, next)
		}
		if got := get(t, s, lock.ID); got.Status != command.StatusAcknowledged {
			t.Fatalf("lock is %s", got.Status)
		}
		// The same result again is a duplicate: accepted, nothing changes.
		_, st, _ = d.Answer(ctx, c, apple.StatusError, nil)
		wantStatus(t, "repeated result", st, http.StatusOK, nil)
		if got := get(t, s, lock.ID); got.Status != command.StatusAcknowledged {
			t.Fatalf("lock is %s after a repeated result", got.Status)
		}
	})
	t.Run("ok/erase-and-lock-carry-the-find-my-pin", func(t *testing.T) {
		d, idn := s.MustEnroll(t)
		// The PINs are sealed at rest; the erase (higher priority) comes
		// through Next, the lock through the round trip that answers it.
		send(t, s, idn, command.NewCommand{Type: command.Lock, Payload: json.RawMessage(`{"pin":"314159"}`)})
		send(t, s, idn, command.NewCommand{Type: command.WipeDevice, Payload: json.RawMessage(`{"pin":"271828"}`)})
		c, _, _ := d.Idle(ctx)
		if c == nil || c.RequestType != apple.ReqEraseDevice || c.Body["PIN"] != "271828" {
			t.Fatalf("erase command = %+v, want EraseDevice with its PIN", c)
		}
		c, _, _ = d.Answer(ctx, c, apple.StatusAcknowledged, nil)
		if c == nil || c.RequestType != apple.ReqDeviceLock || c.Body["PIN"] != "314159" {
			t.Fatalf("lock command = %+v, want DeviceLock with its PIN", c)
		}
	})
	t.Run("ok/clear-passcode-carries-the-unlock-token", func(t *testing.T) {
		d, idn := s.MustEnroll(t)
		send(t, s, idn, command.NewCommand{Type: command.ClearPasscode})
		c, _, _ := d.Idle(ctx)
		if c == nil || c.RequestType != apple.ReqClearPasscode || !bytes.Equal(c.Body["UnlockToken"].([]byte), []byte("unlock")) {
			t.Fatalf("clear_passcode = %+v", c)
		}
		e, _ := s.DB.EnrollmentOf(ctx, idn.DeviceID)
		if strings.Contains(e.UnlockToken, "dW5sb2Nr") || e.UnlockToken == "" {
			t.Fatalf("stored unlock token %q is not sealed", e.UnlockToken)
		}
	})
	t.Run("ok/error-chain-is-the-message", func(t *testing.T) {
		d, idn := s.MustEnroll(t)
		r := send(t, s, idn, command.NewCommand{Type: command.Restart})
		c, _, _ := d.Idle(ctx)
		if c.RequestType != apple.ReqRestartDevice {
			t.Fatalf("got %s", c.RequestType)
		}
		body := bytes.ReplaceAll(testdata(t, "error_chain.plist", d.UDID), []byte("COMMAND-UUID"), []byte(c.UUID))
		_, st, _ := d.ReportBody(ctx, body)
		wantStatus(t, "error report", st, http.StatusOK, nil)
		got := get(t, s, r.ID)
		if got.Status != command.StatusError || !strings.Contains(got.Message, "MCProfileErrorDomain 4001: The profile “Wi-Fi” could not be installed.") ||
			!strings.Contains(got.Message, "MCMDMErrorDomain 12003") {
			t.Fatalf("command after an ErrorChain = %s %q", got.Status, got.Message)
		}
	})
	t.Run("ok/results-feed-inventory", func(t *testing.T) {
		d, idn := s.MustEnroll(t)
		send(t, s, idn, command.NewCommand{Type: command.DeviceInfo})
		send(t, s, idn, command.NewCommand{Type: command.InstalledApps})
		send(t, s, idn, command.NewCommand{Type: command.Raw, Payload: json.RawMessage(`{"platform":"apple","body":{"RequestType":"SecurityInfo"}}`)})
		for c, _, _ := d.Idle(ctx); c != nil; {
			file := map[string]string{apple.ReqDeviceInformation: "device_information_ack.plist", apple.ReqInstalledAppList: "installed_applications_ack.plist", apple.ReqSecurityInfo: "security_info_ack.plist"}[c.RequestType]
			if file == "" {
				t.Fatalf("unexpected %s", c.RequestType)
			}
			body := bytes.ReplaceAll(testdata(t, file, d.UDID), []byte("COMMAND-UUID"), []byte(c.UUID))
			c, _, _ = d.ReportBody(ctx, body)
		}
		inv, err := s.DB.Inventory(ctx, idn.DeviceID)
		if err != nil {
			t.Fatal(err)
		}
		i := inv.Info
		if i.Model != "iPhone14,2" || i.OSVersion != "17.4" || i.SerialNumber != "F2LXJ0N7Q1GC" || i.Hostname != "Jane's iPhone" || i.Manufacturer != "Apple" ||
			i.Attributes["build_version"] != "21E236" || i.Attributes[apple.AttrPasscodePresent] != "true" || i.Attributes[apple.AttrEncrypted] != "true" {
			t.Fatalf("inventory info = %+v", i)
		}
		if len(inv.Software) != 2 || inv.Software[0] != (device.App{Name: "Keynote", Version: "13.2", ID: "com.apple.Keynote"}) {
			t.Fatalf("software = %+v", inv.Software)
		}
		d2, _ := s.DB.Device(ctx, idn.DeviceID)
		if d2.Model != "iPhone14,2" || d2.OSVersion != "17.4" {
			t.Fatalf("device columns = %q %q", d2.Model, d2.OSVersion)
		}
		if len(s.Reports) == 0 {
			t.Fatal("OnReport (compliance) was never called")
		}
	})
	t.Run("ok/sync-config-installs-profiles-and-activates", func(t *testing.T) {
		d, idn := s.MustEnroll(t)
		dev, _ := s.DB.Device(ctx, idn.DeviceID)
		wifi, err := s.Policies.Create(ctx, policy.NewPolicy{Name: "Office", Kind: policy.WiFi, Rank: 1,
			Settings: json.RawMessage(`{"ssid":"office","security":"wpa2_personal","passphrase":"correct horse"}`)})
		if err != nil {
			t.Fatalf("%#v", err)
		}
		conn, err := s.Policies.Create(ctx, policy.NewPolicy{Name: "App", Kind: policy.AppConfig, Rank: 1, Settings: json.RawMessage(`{"app_id":"com.example.app","config":{"k":"v"}}`)})
		if err != nil {
			t.Fatalf("%#v", err)
		}
		for _, p := range []string{wifi.ID, conn.ID} {
			if err := s.Policies.Assign(ctx, p, policy.TargetUser, dev.UserID); err != nil {
				t.Fatal(err)
			}
		}
		c, _, _ := d.Idle(ctx)
		if c == nil || c.RequestType != apple.ReqInstallProfile {
			t.Fatalf("after the policy change the device got %+v, want InstallProfile", c)
		}
		payload, _ := c.Body["Payload"].([]byte)
		var prof map[string]any
		if err := plist.Unmarshal(payload, &prof); err != nil {
			t.Fatalf("profile: %v", err)
		}
		content := prof["PayloadContent"].([]any)[0].(map[string]any)
		if prof["PayloadIdentifier"] != apple.DefaultProfilePrefix+"."+wifi.ID || content["PayloadType"] != "com.apple.wifi.managed" ||
			content["SSID_STR"] != "office" || content["Password"] != "correct horse" || content["EncryptionType"] != "WPA2" {
			t.Fatalf("profile = %v", prof)
		}
		next, _, _ := d.Answer(ctx, c, apple.StatusAcknowledged, nil)
		if next != nil {
			t.Fatalf("after the profile: %+v", next)
		}
		st, err := s.Policies.Status(ctx, dev)
		if err != nil {
			t.Fatal(err)
		}
		states := map[string]string{}
		for _, it := range st.Items {
			states[it.ID] = it.Status
		}
		if states[wifi.ID] != policy.ItemApplied || states[conn.ID] != policy.ItemFailed {
			t.Fatalf("item states = %v (%+v)", states, st)
		}
		dev, _ = s.DB.Device(ctx, idn.DeviceID)
		if dev.State != device.StateActive {
			t.Fatalf("device state %s after its configuration was applied, want active", dev.State)
		}
		// wipe_work removes the profiles Custos installed.
		send(t, s, idn, command.NewCommand{Type: command.WipeWork})
		c, _, _ = d.Idle(ctx)
		if c == nil || c.RequestType != apple.ReqRemoveProfile || c.Body["Identifier"] != apple.DefaultProfilePrefix+"."+wifi.ID {
			t.Fatalf("wipe_work → %+v, want RemoveProfile of the Wi-Fi profile", c)
		}
	})
	t.Run("ok/unsupported-commands-complete-as-errors", func(t *testing.T) {
		d, idn := s.MustEnroll(t)
		msg := send(t, s, idn, command.NewCommand{Type: command.Message, Payload: json.RawMessage(`{"text":"hi"}`)})
		bad := send(t, s, idn, command.NewCommand{Type: command.Raw, Payload: json.RawMessage(`{"platform":"apple","body":{"NoRequestType":1}}`)})
		win := send(t, s, idn, command.NewCommand{Type: command.Raw, Payload: json.RawMessage(`{"platform":"windows","body":{"x":1}}`)})
		ok := send(t, s, idn, command.NewCommand{Type: command.Raw, Payload: json.RawMessage(`{"platform":"apple","body":{"RequestType":"ProfileList","ManagedOnly":true}}`)})
		c, _, _ := d.Idle(ctx)
		if c == nil || c.UUID != ok.ID || c.Body["ManagedOnly"] != true {
			t.Fatalf("got %+v, want the ProfileList", c)
		}
		if next, _, _ := d.Answer(ctx, c, apple.StatusAcknowledged, map[string]any{"ProfileList": []any{}}); next != nil {
			t.Fatalf("after the ProfileList: %+v, want the end of the session", next)
		}
		for _, id := range []string{msg.ID, bad.ID, win.ID} {
			if got := get(t, s, id); got.Status != command.StatusError {
				t.Fatalf("%s (%s) is %s, want error", id, got.Type, got.Status)
			}
		}
	})
	t.Run("ok/bootstrap-token-sealed", func(t *testing.T) {
		d, idn := s.MustEnroll(t)
		st, b, _ := d.Checkin(ctx, map[string]any{"MessageType": "SetBootstrapToken", "BootstrapToken": []byte("the-bootstrap-secret")})
		wantStatus(t, "SetBootstrapToken", st, http.StatusOK, b)
		e, _ := s.DB.EnrollmentOf(ctx, idn.DeviceID)
		if e.BootstrapToken == "" || strings.Contains(e.BootstrapToken, "the-bootstrap-secret") || strings.Contains(e.BootstrapToken, "dGhlLWJvb3RzdHJhcC1zZWNyZXQ") {
			t.Fatalf("stored bootstrap token %q is not sealed", e.BootstrapToken)
		}
		st, b, _ = d.Checkin(ctx, map[string]any{"MessageType": "GetBootstrapToken"})
		wantStatus(t, "GetBootstrapToken", st, http.StatusOK, b)
		var got struct{ BootstrapToken []byte }
		if err := plist.Unmarshal(b, &got); err != nil || string(got.BootstrapToken) != "the-bootstrap-secret" {
			t.Fatalf("GetBootstrapToken = %q, %v", got.BootstrapToken, err)
		}
	})
	t.Run("ok/declarative-management-empty-set", func(t *testing.T) {
		d, _ := s.MustEnroll(t)
		st, b, _ := d.Checkin(ctx, map[string]any{"MessageType": "DeclarativeManagement", "Endpoint": "declaration-items"})
		wantStatus(t, "declaration-items", st, http.StatusOK, b)
		var items struct {
			Declarations      map[string][]any
			DeclarationsToken string
		}
		if err := json.Unmarshal(b, &items); err != nil || items.DeclarationsToken == "" || len(items.Declarations) != 4 {
			t.Fatalf("declaration-items = %s (%v)", b, err)
		}
		st, b, _ = d.Checkin(ctx, map[string]any{"MessageType": "DeclarativeManagement", "Endpoint": "tokens"})
		wantStatus(t, "tokens", st, http.StatusOK, b)
		if !strings.Contains(string(b), items.DeclarationsToken) {
			t.Fatalf("tokens %s do not carry the declarations token %s", b, items.DeclarationsToken)
		}
	})
	t.Run("ok/checkin-sent-to-server-url", func(t *testing.T) {
		d, _ := s.NewDevice(t)
		d.CheckinPath = apple.PathServer // a profile without a CheckInURL
		if err := d.Enroll(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ok/mutual-tls-identity", func(t *testing.T) {
		d, idn := s.MustEnroll(t)
		d.MTLS, d.Client = true, s.MTLSClient(idn)
		lock := send(t, s, idn, command.NewCommand{Type: command.Lock})
		c, st, err := d.Idle(ctx)
		if err != nil || st != http.StatusOK || c == nil || c.UUID != lock.ID {
			t.Fatalf("over mutual TLS: %+v, HTTP %d, %v", c, st, err)
		}
	})
	t.Run("ok/checkout-removes-device", func(t *testing.T) {
		d, idn := s.MustEnroll(t)
		st, b, _ := d.Put(ctx, apple.PathCheckin, testdata(t, "checkout.plist", d.UDID), nil)
		wantStatus(t, "CheckOut", st, http.StatusOK, b)
		dev, _ := s.DB.Device(ctx, idn.DeviceID)
		if dev.State != device.StateRemoved {
			t.Fatalf("device state after CheckOut: %s, want removed", dev.State)
		}
		_, st, _ = d.Idle(ctx)
		wantStatus(t, "report after CheckOut", st, http.StatusUnauthorized, nil)
	})
}

// TestEnrollAndRoundTripOnEveryBackend walks enrollment and a command
// round trip on SQLite and PostgreSQL.
func TestEnrollAndRoundTripOnEveryBackend(t *testing.T) {
	for _, backend := range sqltest.Backends(t) {
		t.Run(backend, func(t *testing.T) {
			s := appletest.NewServer(t, backend)
			d, idn := s.MustEnroll(t)
			lock := send(t, s, idn, command.NewCommand{Type: command.WipeDevice})
			c, _, _ := d.Idle(ctx)
			if c == nil || c.RequestType != apple.ReqEraseDevice {
				t.Fatalf("got %+v", c)
			}
			d.Answer(ctx, c, apple.StatusAcknowledged, nil)
			if got := get(t, s, lock.ID); got.Status != command.StatusAcknowledged {
				t.Fatalf("wipe is %s", got.Status)
			}
		})
	}
}
