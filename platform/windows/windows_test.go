package windows_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/custos-uem/custos/activation/activationtest"
	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/platform/windows"
	"github.com/custos-uem/custos/platform/windows/syncml"
	"github.com/custos-uem/custos/platform/windows/wintest"
	"github.com/custos-uem/custos/policy"
	"github.com/custos-uem/custos/sqlstore"
	"github.com/custos-uem/custos/sqlstore/sqltest"
	"github.com/custos-uem/custos/user/usertest"
)

// env is a management endpoint on a real database, with the device
// identity injected the way CertAuth does after mutual TLS (the TLS side
// is tested end to end in core).
type env struct {
	t        *testing.T
	db       *sqlstore.DB
	h        *windows.Handler
	devices  *device.Service
	commands *command.Service
	policies *policy.Service
	userID   string
	reports  atomic.Int32
}

func newEnv(t *testing.T, backend string) *env {
	t.Helper()
	db := sqltest.Open(t, backend)
	e := &env{t: t, db: db}
	e.devices = &device.Service{Store: db, Remover: db}
	e.commands = &command.Service{Store: db}
	e.policies = &policy.Service{Store: db}
	e.h = e.handler()
	e.userID = usertest.CreateUser(t, db, "alice").ID
	return e
}

func (e *env) handler() *windows.Handler {
	return &windows.Handler{Devices: e.devices, Commands: e.commands, Config: e.policies, Sessions: e.db, Pushes: e.db,
		OnReport: func(context.Context, *device.Device) { e.reports.Add(1) }, ServerURL: "https://mdm.example/device/windows/mdm"}
}

// serve starts h for whichever device the request names in the
// X-Test-Device header (standing in for its certificate).
func (e *env) serve(h http.Handler) *httptest.Server {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, err := e.db.Device(r.Context(), r.Header.Get("X-Test-Device"))
		if err != nil || (d.State != device.StateEnrolled && d.State != device.StateActive) {
			http.Error(w, "certificate revoked", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r.WithContext(device.WithDevice(r.Context(), d)))
	}))
	e.t.Cleanup(srv.Close)
	return srv
}

type headerRT struct {
	id   string
	base http.RoundTripper
	// hosts, when set, are used in turn (several Core processes).
	hosts []string
	n     atomic.Int32
}

func (h *headerRT) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Test-Device", h.id)
	if len(h.hosts) > 0 {
		r.URL.Host = h.hosts[int(h.n.Add(1)-1)%len(h.hosts)]
	}
	return h.base.RoundTrip(r)
}

// enroll creates an enrolled device and its emulator talking to srv.
func (e *env) enroll(srv *httptest.Server, hw string) (*device.Device, *wintest.Device) {
	e.t.Helper()
	d, _ := activationtest.Enroll(e.t, e.db, e.userID, hw, activationtest.T0)
	em := &wintest.Device{URL: srv.URL + windows.PathManagement, DevID: hw, Tree: wintest.NewTree(hw, windows.ProviderID),
		HTTP: &http.Client{Transport: &headerRT{id: d.ID, base: srv.Client().Transport}}}
	return d, em
}

func (e *env) send(d *device.Device, typ command.Type, payload string) *command.Command {
	e.t.Helper()
	cs, err := e.commands.Send(context.Background(), []string{d.ID}, command.NewCommand{Type: typ, Payload: json.RawMessage(payload), CreatedBy: "admin"})
	if err != nil || len(cs) != 1 {
		e.t.Fatalf("Send %s: %v", typ, err)
	}
	return cs[0]
}

func (e *env) command(id string) *command.Command {
	e.t.Helper()
	c, err := e.commands.Get(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func mustSession(t *testing.T, em *wintest.Device) {
	t.Helper()
	if err := em.Session(context.Background(), syncml.AlertClientInitiated); err != nil {
		t.Fatalf("session: %v", err)
	}
}

func backends(t *testing.T, f func(t *testing.T, backend string)) {
	for _, b := range sqltest.Backends(t) {
		t.Run(b, func(t *testing.T) { f(t, b) })
	}
}

// TestFirstSession: package 1 stores the inventory, the first
// configuration (none) is acknowledged and the device becomes active.
func TestFirstSession(t *testing.T) {
	backends(t, func(t *testing.T, backend string) {
		e := newEnv(t, backend)
		d, em := e.enroll(e.serve(e.h), "hw-1")
		mustSession(t, em)
		inv, err := e.db.Inventory(context.Background(), d.ID)
		if err != nil || inv.Info.Manufacturer != "Contoso" || inv.Info.Model != "Surface Emulator" || inv.Info.Attributes["language"] != "en-US" {
			t.Fatalf("inventory %+v, %v", inv, err)
		}
		got, _ := e.db.Device(context.Background(), d.ID)
		if got.State != device.StateActive || got.ConfigVersion != policy.EmptyVersion {
			t.Fatalf("device %s version %q, want active with the empty configuration", got.State, got.ConfigVersion)
		}
		if e.reports.Load() == 0 {
			t.Fatal("OnReport (compliance) was not called")
		}
		// A second session with the same DevInfo writes nothing new.
		before := e.reports.Load()
		mustSession(t, em)
		if e.reports.Load() != before {
			t.Fatal("an unchanged DevInfo was stored again within ReportEvery")
		}
	})
}

// TestCommands: each queue command reaches the emulator as its CSP
// operation and its status becomes the command's result.
func TestCommands(t *testing.T) {
	backends(t, func(t *testing.T, backend string) {
		e := newEnv(t, backend)
		d, em := e.enroll(e.serve(e.h), "hw-1")
		mustSession(t, em)
		for _, tc := range []struct {
			name    string
			typ     command.Type
			payload string
			want    command.Status
			msg     string
			check   func(t *testing.T)
		}{
			{"fail/installed-apps-not-supported", command.InstalledApps, "", command.StatusError, "installed_apps is not supported on Windows", nil},
			{"fail/set-password-not-supported", command.SetPassword, `{"password":"123456"}`, command.StatusError, "set_password is not supported on Windows", nil},
			{"fail/raw-for-another-platform", command.Raw, `{"platform":"apple","body":"<Get/>"}`, command.StatusError, "needs", nil},
			{"fail/raw-with-entity", command.Raw, `{"platform":"windows","body":"<!DOCTYPE a [<!ENTITY x \"y\">]><Get/>"}`, command.StatusError, "not valid SyncML", nil},
			{"fail/raw-status", command.Raw, `{"platform":"windows","body":"<Status><CmdID>1</CmdID></Status>"}`, command.StatusError, "may not contain Status", nil},
			{"fail/unknown-csp-node", command.Raw, `{"platform":"windows","body":"<Exec><CmdID>1</CmdID><Item><Target><LocURI>./Vendor/MSFT/NoSuch/Node</LocURI></Target></Item></Exec>"}`, command.StatusError, "./Vendor/MSFT/NoSuch/Node: status 404", nil},
			{"ok/lock", command.Lock, "", command.StatusAcknowledged, "", func(t *testing.T) {
				if em.Tree.Execs[windows.NodeLock] != 1 {
					t.Fatalf("execs %v", em.Tree.Execs)
				}
			}},
			{"ok/restart", command.Restart, "", command.StatusAcknowledged, "", func(t *testing.T) {
				if em.Tree.Execs[windows.NodeReboot] != 1 {
					t.Fatalf("execs %v", em.Tree.Execs)
				}
			}},
			{"ok/wipe-device", command.WipeDevice, "", command.StatusAcknowledged, "", func(t *testing.T) {
				if em.Tree.Execs[windows.NodeWipe] != 1 {
					t.Fatalf("execs %v", em.Tree.Execs)
				}
			}},
			{"ok/device-info", command.DeviceInfo, "", command.StatusAcknowledged, "", func(t *testing.T) {
				inv, _ := e.db.Inventory(context.Background(), d.ID)
				if inv.Info.OSVersion != "10.0.22631.2428" || inv.Info.SerialNumber != "EMU-0001" || inv.Info.Hostname != "DESKTOP-EMU" ||
					inv.Info.OSName != "Windows 11 Enterprise" || inv.Info.Manufacturer != "Contoso" {
					t.Fatalf("inventory %+v", inv.Info)
				}
			}},
			{"ok/raw-replace", command.Raw, `{"platform":"windows","body":"<Replace><CmdID>7</CmdID><Item><Target><LocURI>./Device/Vendor/MSFT/Policy/Config/Camera/AllowCamera</LocURI></Target><Meta><Format xmlns=\"syncml:metinf\">int</Format></Meta><Data>0</Data></Item></Replace>"}`, command.StatusAcknowledged, "", func(t *testing.T) {
				if v, _ := em.Tree.Get("./Device/Vendor/MSFT/Policy/Config/Camera/AllowCamera"); v != "0" {
					t.Fatalf("AllowCamera = %q", v)
				}
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := e.send(d, tc.typ, tc.payload)
				mustSession(t, em)
				got := e.command(c.ID)
				if got.Status != tc.want || !strings.Contains(got.Message, tc.msg) {
					t.Fatalf("command %s: %s %q, want %s %q", tc.typ, got.Status, got.Message, tc.want, tc.msg)
				}
				if tc.check != nil {
					tc.check(t)
				}
			})
		}
	})
}

// TestConfiguration: an IT policy with password rules becomes DeviceLock
// nodes in one Atomic; Wi-Fi a WLAN profile; unsupported kinds are
// recorded failed, never sent.
func TestConfiguration(t *testing.T) {
	backends(t, func(t *testing.T, backend string) {
		e := newEnv(t, backend)
		d, em := e.enroll(e.serve(e.h), "hw-1")
		mustSession(t, em)
		ctx := context.Background()
		mk := func(name string, kind policy.Kind, settings string) *policy.Policy {
			p, err := e.policies.Create(ctx, policy.NewPolicy{Name: name, Kind: kind, Rank: 1, Settings: json.RawMessage(settings)})
			if err != nil {
				t.Fatalf("create %s: %v", name, err)
			}
			if err := e.policies.Assign(ctx, p.ID, policy.TargetUser, e.userID); err != nil {
				t.Fatal(err)
			}
			return p
		}
		it := mk("passwords", policy.ITPolicy, `{"password_required":true,"password_min_length":8,"password_complexity":"alphanumeric","password_history":5,"max_failed_attempts":10,"screen_lock_timeout_seconds":300,"encryption_required":true}`)
		wifi := mk("office", policy.WiFi, `{"ssid":"Office <5G>","security":"wpa2_personal","passphrase":"correct horse","auto_join":true}`)
		mail := mk("mail", policy.Email, `{"host":"mail.example.com","username_template":"{username}","email_template":"{email}","sync_days":7}`)
		c := e.send(d, command.SyncConfig, "")
		mustSession(t, em)
		lock := em.Tree.Nodes("./Device/Vendor/MSFT/Policy/Config/DeviceLock/")
		want := map[string]string{"DevicePasswordEnabled": "0", "MinDevicePasswordLength": "8", "AlphanumericDevicePasswordRequired": "0",
			"DevicePasswordHistory": "5", "MaxDevicePasswordFailedAttempts": "10", "MaxInactivityTimeDeviceLock": "5"}
		for k, v := range want {
			if lock["./Device/Vendor/MSFT/Policy/Config/DeviceLock/"+k] != v {
				t.Fatalf("DeviceLock/%s = %q, want %q (all: %v)", k, lock["./Device/Vendor/MSFT/Policy/Config/DeviceLock/"+k], v, lock)
			}
		}
		if v, _ := em.Tree.Get(windows.NodeRequireEncryption); v != "1" {
			t.Fatalf("RequireDeviceEncryption = %q", v)
		}
		xml, ok := em.Tree.Get("./Vendor/MSFT/WiFi/Profile/" + url.PathEscape("Office <5G>") + "/WlanXml")
		if !ok || !strings.Contains(xml, "<name>Office &lt;5G&gt;</name>") || !strings.Contains(xml, "<keyMaterial>correct horse</keyMaterial>") {
			t.Fatalf("WlanXml %q", xml)
		}
		var atomic bool
		for _, sc := range em.LastCommands {
			atomic = atomic || sc.Name == syncml.CmdAtomic && len(sc.Commands) == len(want)
		}
		if !atomic {
			t.Fatalf("the DeviceLock policies were not one Atomic: %+v", em.LastCommands)
		}
		got := e.command(c.ID)
		if got.Status != command.StatusError || !strings.Contains(got.Message, "email profiles are not supported on Windows") {
			t.Fatalf("sync_config: %s %q", got.Status, got.Message)
		}
		dev, _ := e.db.Device(ctx, d.ID)
		st, err := e.policies.Status(ctx, dev)
		if err != nil || !st.UpToDate {
			t.Fatalf("status %+v, %v", st, err)
		}
		for _, is := range st.Items {
			wantSt := policy.ItemApplied
			if is.ID == mail.ID {
				wantSt = policy.ItemFailed
			}
			if is.Status != wantSt {
				t.Fatalf("item %s (%s): %s %q, want %s", is.Name, is.ID, is.Status, is.Error, wantSt)
			}
		}
		_ = it
		_ = wifi
		// A second sync replaces the Wi-Fi profile (Delete then Add).
		c2 := e.send(d, command.SyncConfig, "")
		mustSession(t, em)
		if got := e.command(c2.ID); got.Status != command.StatusError || strings.Contains(got.Message, "418") {
			t.Fatalf("second sync: %s %q", got.Status, got.Message)
		}
	})
}

// TestAtomicFailureRollsBack: a DeviceLock node the device refuses fails
// the whole policy item with the node named, and nothing of it stays.
func TestAtomicFailureRollsBack(t *testing.T) {
	e := newEnv(t, "sqlite")
	d, em := e.enroll(e.serve(e.h), "hw-1")
	mustSession(t, em)
	c := e.send(d, command.Raw, `{"platform":"windows","body":"<Atomic><CmdID>1</CmdID><Replace><CmdID>2</CmdID><Item><Target><LocURI>./Device/Vendor/MSFT/Policy/Config/DeviceLock/DevicePasswordEnabled</LocURI></Target><Data>0</Data></Item></Replace><Replace><CmdID>3</CmdID><Item><Target><LocURI>./Device/Vendor/MSFT/Nope</LocURI></Target><Data>0</Data></Item></Replace></Atomic>"}`)
	mustSession(t, em)
	got := e.command(c.ID)
	if got.Status != command.StatusError || !strings.HasPrefix(got.Message, "Replace ./Device/Vendor/MSFT/Nope: status 404") {
		t.Fatalf("%s %q", got.Status, got.Message)
	}
	if _, ok := em.Tree.Get("./Device/Vendor/MSFT/Policy/Config/DeviceLock/DevicePasswordEnabled"); ok {
		t.Fatal("the Atomic was not rolled back")
	}
}

// TestPush: with a PFN configured, the first session writes it and every
// session reads the channel URI, stored as the device's WNS token.
func TestPush(t *testing.T) {
	e := newEnv(t, "sqlite")
	e.h.PFN = "Contoso.Custos_8wekyb3d8bbwe"
	d, em := e.enroll(e.serve(e.h), "hw-1")
	em.Tree.ChannelURI = "https://db5p.notify.windows.com/?token=AwYAAAD1"
	mustSession(t, em)
	if v, _ := em.Tree.Get("./Vendor/MSFT/DMClient/Provider/Custos/Push/PFN"); v != e.h.PFN {
		t.Fatalf("PFN = %q", v)
	}
	toks, _ := e.db.PushTokens(context.Background(), []string{d.ID})
	if len(toks) != 1 || toks[0].Provider != "wns" || toks[0].Token != em.Tree.ChannelURI {
		t.Fatalf("tokens %+v", toks)
	}
	// The channel renews: the next session stores the new one, without
	// writing the PFN again.
	em.Tree.ChannelURI = "https://db5p.notify.windows.com/?token=AwYAAAD2"
	mustSession(t, em)
	toks, _ = e.db.PushTokens(context.Background(), []string{d.ID})
	if toks[0].Token != em.Tree.ChannelURI {
		t.Fatalf("token %q, want the renewed channel", toks[0].Token)
	}
	for _, c := range em.LastCommands {
		if c.Name == syncml.CmdReplace {
			t.Fatalf("PFN written again: %+v", c)
		}
	}
	t.Run("fail/channel-uri-not-https", func(t *testing.T) {
		em.Tree.ChannelURI = "http://169.254.169.254/latest"
		mustSession(t, em)
		toks, _ = e.db.PushTokens(context.Background(), []string{d.ID})
		if toks[0].Token != "https://db5p.notify.windows.com/?token=AwYAAAD2" {
			t.Fatalf("token %q", toks[0].Token)
		}
	})
}

// TestSessionAcrossCores: the messages of one session reach two Core
// processes in turn (one database): the session continues.
func TestSessionAcrossCores(t *testing.T) {
	backends(t, func(t *testing.T, backend string) {
		e := newEnv(t, backend)
		a, b := e.serve(e.handler()), e.serve(e.handler())
		d, em := e.enroll(a, "hw-1")
		ua, _ := url.Parse(a.URL)
		ub, _ := url.Parse(b.URL)
		em.HTTP = &http.Client{Transport: &headerRT{id: d.ID, base: a.Client().Transport, hosts: []string{ua.Host, ub.Host}}}
		mustSession(t, em)
		c := e.send(d, command.DeviceInfo, "")
		l := e.send(d, command.Lock, "")
		mustSession(t, em) // lock (priority) then device info: 3 messages over 2 Cores
		if got := e.command(c.ID); got.Status != command.StatusAcknowledged {
			t.Fatalf("device_info %s %q", got.Status, got.Message)
		}
		if got := e.command(l.ID); got.Status != command.StatusAcknowledged {
			t.Fatalf("lock %s %q", got.Status, got.Message)
		}
	})
}

// post sends a raw message as device d to srv.
func post(t *testing.T, srv *httptest.Server, d *device.Device, body []byte) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", srv.URL+windows.PathManagement, strings.NewReader(string(body)))
	req.Header.Set("Content-Type", syncml.ContentType)
	req.Header.Set("X-Test-Device", d.ID)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, []byte(b.String())
}

// startSession sends package 1 with a command queued and returns the
// session ID and the server's answer.
func startSession(t *testing.T, srv *httptest.Server, d *device.Device, em *wintest.Device) (string, *syncml.Message) {
	t.Helper()
	sid := em.NextSessionID()
	code, body := post(t, srv, d, syncml.Encode(em.Package1(sid, syncml.AlertClientInitiated)))
	if code != 200 {
		t.Fatalf("package 1: %d %s", code, body)
	}
	m, err := syncml.Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	return sid, m
}

func commandIDs(m *syncml.Message) []string {
	var ids []string
	for _, c := range m.Body.Commands {
		if c.Name != syncml.CmdStatus {
			ids = append(ids, c.CmdID)
		}
	}
	return ids
}

// TestRefused are the attacks on a session (DESIGN.md §5).
func TestRefused(t *testing.T) {
	backends(t, func(t *testing.T, backend string) {
		e := newEnv(t, backend)
		srv := e.serve(e.h)
		a, emA := e.enroll(srv, "hw-a")
		b, emB := e.enroll(srv, "hw-b")
		mustSession(t, emA)
		mustSession(t, emB)
		ctx := context.Background()

		t.Run("fail/session-id-of-another-device", func(t *testing.T) {
			c := e.send(a, command.Lock, "")
			sid, m := startSession(t, srv, a, emA)
			ids := commandIDs(m)
			// Device b answers a's open session, with a's IDs, as itself.
			msg := &syncml.Message{Header: syncml.Header{VerDTD: "1.2", VerProto: "DM/1.2", SessionID: sid, MsgID: "2", Source: "hw-b"},
				Body: syncml.Body{Commands: []syncml.Command{{Name: syncml.CmdStatus, CmdID: "1", MsgRef: "1", CmdRef: ids[0], Cmd: "Exec", Data: "200"}}, Final: true}}
			if code, body := post(t, srv, b, syncml.Encode(msg)); code != http.StatusForbidden {
				t.Fatalf("%d %s, want 403", code, body)
			}
			if got := e.command(c.ID); got.Status != command.StatusSent {
				t.Fatalf("a's command is %s", got.Status)
			}
			s, err := e.db.WindowsSession(ctx, a.ID, sid)
			if err != nil || s.MsgID != 1 {
				t.Fatalf("a's session %+v, %v", s, err)
			}
			// a finishes its own session.
			msg.Header.Source = "hw-a"
			if code, body := post(t, srv, a, syncml.Encode(msg)); code != 200 {
				t.Fatalf("%d %s", code, body)
			}
			if got := e.command(c.ID); got.Status != command.StatusAcknowledged {
				t.Fatalf("a's command is %s", got.Status)
			}
		})
		t.Run("fail/syncml-with-another-devices-certificate", func(t *testing.T) {
			msg := emA.Package1("77", syncml.AlertClientInitiated)
			msg.Header.Source = a.ID // a's device ID, b's certificate
			if code, _ := post(t, srv, b, syncml.Encode(msg)); code != http.StatusForbidden {
				t.Fatalf("%d, want 403", code)
			}
			msg.Header.Source = "hw-a"
			if code, _ := post(t, srv, b, syncml.Encode(msg)); code != http.StatusForbidden {
				t.Fatalf("%d, want 403", code)
			}
		})
		t.Run("fail/status-for-cmdid-never-sent", func(t *testing.T) {
			c := e.send(a, command.Lock, "")
			sid, m := startSession(t, srv, a, emA)
			ids := commandIDs(m)
			n, _ := strconv.Atoi(ids[0])
			msg := &syncml.Message{Header: syncml.Header{VerDTD: "1.2", VerProto: "DM/1.2", SessionID: sid, MsgID: "2", Source: "hw-a"},
				Body: syncml.Body{Commands: []syncml.Command{
					{Name: syncml.CmdStatus, CmdID: "1", MsgRef: "1", CmdRef: strconv.Itoa(n + 50), Cmd: "Exec", Data: "200"},
					{Name: syncml.CmdStatus, CmdID: "2", MsgRef: "7", CmdRef: ids[0], Cmd: "Exec", Data: "200"}, // wrong message
				}, Final: true}}
			if code, body := post(t, srv, a, syncml.Encode(msg)); code != 200 {
				t.Fatalf("%d %s", code, body)
			}
			if got := e.command(c.ID); got.Status != command.StatusSent {
				t.Fatalf("command %s after statuses for commands never sent", got.Status)
			}
			mustSession(t, emA) // delivered again, answered
			if got := e.command(c.ID); got.Status != command.StatusAcknowledged {
				t.Fatalf("command %s", got.Status)
			}
		})
		t.Run("fail/message-out-of-order", func(t *testing.T) {
			e.send(a, command.Lock, "")
			sid, _ := startSession(t, srv, a, emA)
			msg := &syncml.Message{Header: syncml.Header{VerDTD: "1.2", VerProto: "DM/1.2", SessionID: sid, MsgID: "3", Source: "hw-a"},
				Body: syncml.Body{Final: true}}
			if code, _ := post(t, srv, a, syncml.Encode(msg)); code != http.StatusConflict {
				t.Fatalf("%d, want 409", code)
			}
			mustSession(t, emA)
		})
		t.Run("fail/unknown-csp-path-in-results", func(t *testing.T) {
			c := e.send(a, command.DeviceInfo, "")
			sid, m := startSession(t, srv, a, emA)
			var cmds []syncml.Command
			for _, sc := range m.Body.Commands {
				if sc.Name == syncml.CmdGet {
					cmds = append(cmds, syncml.Command{Name: syncml.CmdStatus, CmdID: sc.CmdID, MsgRef: "1", CmdRef: sc.CmdID, Cmd: "Get", Data: "200"})
					uri := sc.Items[0].Target
					data := "x"
					if uri == "./DevInfo/Mod" {
						uri, data = "./Vendor/MSFT/Evil/<script>", "<script>alert(1)</script>"
					}
					cmds = append(cmds, syncml.Command{Name: syncml.CmdResults, CmdID: "9" + sc.CmdID, MsgRef: "1", CmdRef: sc.CmdID,
						Items: []syncml.Item{{Source: uri, Data: data}}})
				}
			}
			msg := &syncml.Message{Header: syncml.Header{VerDTD: "1.2", VerProto: "DM/1.2", SessionID: sid, MsgID: "2", Source: "hw-a"},
				Body: syncml.Body{Commands: cmds, Final: true}}
			if code, body := post(t, srv, a, syncml.Encode(msg)); code != 200 {
				t.Fatalf("%d %s", code, body)
			}
			got := e.command(c.ID)
			if got.Status != command.StatusAcknowledged || !strings.Contains(string(got.Result), "Evil") {
				t.Fatalf("command %s result %s", got.Status, got.Result)
			}
			inv, _ := e.db.Inventory(ctx, a.ID)
			raw, _ := json.Marshal(inv)
			if strings.Contains(string(raw), "Evil") || strings.Contains(string(raw), "script") || inv.Info.Model != "Surface Emulator" {
				t.Fatalf("unknown node stored as inventory: %s", raw)
			}
		})
		t.Run("fail/bad-header", func(t *testing.T) {
			for _, mut := range []func(*syncml.Message){
				func(m *syncml.Message) { m.Header.VerProto = "DM/1.1" },
				func(m *syncml.Message) { m.Header.SessionID = "" },
				func(m *syncml.Message) { m.Header.MsgID = "-1" },
				func(m *syncml.Message) { m.Header.SessionID = strings.Repeat("9", 100) },
			} {
				m := emA.Package1("55", syncml.AlertClientInitiated)
				mut(m)
				if code, _ := post(t, srv, a, syncml.Encode(m)); code != http.StatusBadRequest {
					t.Fatalf("%d, want 400 for %+v", code, m.Header)
				}
			}
		})
		t.Run("fail/xml-entity-expansion", func(t *testing.T) {
			body := `<!DOCTYPE SyncML [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><SyncML><SyncHdr/><SyncBody>&b;</SyncBody></SyncML>`
			if code, _ := post(t, srv, a, []byte(body)); code != http.StatusBadRequest {
				t.Fatalf("%d, want 400", code)
			}
		})
		t.Run("fail/xml-deep-nesting", func(t *testing.T) {
			body := `<SyncML><SyncHdr/><SyncBody>` + strings.Repeat("<Atomic>", 50000) + strings.Repeat("</Atomic>", 50000) + `</SyncBody></SyncML>`
			if code, _ := post(t, srv, a, []byte(body)); code != http.StatusBadRequest {
				t.Fatalf("%d, want 400", code)
			}
		})
		t.Run("fail/oversized-body", func(t *testing.T) {
			body := strings.Repeat("<", syncml.MaxBody+10)
			if code, _ := post(t, srv, a, []byte(body)); code != http.StatusRequestEntityTooLarge {
				t.Fatalf("%d, want 413", code)
			}
		})
		t.Run("fail/replayed-1226-alert", func(t *testing.T) {
			msg := emB.Package1("99", syncml.AlertClientInitiated, wintest.UnenrollAlert())
			body := syncml.Encode(msg)
			code, resp := post(t, srv, b, body)
			if code != 200 {
				t.Fatalf("%d %s", code, resp)
			}
			m, err := syncml.Decode(resp)
			if err != nil || len(commandIDs(m)) != 0 {
				t.Fatalf("answer %+v, %v; want statuses only", m, err)
			}
			got, _ := e.db.Device(ctx, b.ID)
			if got.State != device.StateRemoved {
				t.Fatalf("device %s after 1226", got.State)
			}
			// The replay: the certificate is refused; nothing changes.
			if code, _ := post(t, srv, b, body); code != http.StatusUnauthorized {
				t.Fatalf("replay: %d, want 401", code)
			}
			// Even past authentication (a stale identity), it changes nothing.
			if _, err := e.h.Serve(device.WithDevice(ctx, b), b, msg); err != nil {
				t.Fatalf("replay served: %v", err)
			}
			again, _ := e.db.Device(ctx, b.ID)
			if again.State != device.StateRemoved || !again.RemovedAt.Equal(*got.RemovedAt) {
				t.Fatalf("replay changed the device: %+v", again)
			}
		})
	})
}

// TestWipeWorkUnenrolls: wipe_work is the DMClient Unenroll Exec; once the
// device accepts it, the device is retired.
func TestWipeWorkUnenrolls(t *testing.T) {
	e := newEnv(t, "sqlite")
	d, em := e.enroll(e.serve(e.h), "hw-1")
	c := e.send(d, command.WipeWork, "")
	mustSession(t, em)
	if !em.Tree.Unenrolled {
		t.Fatal("the emulator was not told to unenroll")
	}
	if got := e.command(c.ID); got.Status != command.StatusAcknowledged {
		t.Fatalf("%s %q", got.Status, got.Message)
	}
	got, _ := e.db.Device(context.Background(), d.ID)
	if got.State != device.StateRemoved {
		t.Fatalf("device %s", got.State)
	}
	var se *wintest.ErrStatus
	if err := em.Session(context.Background(), syncml.AlertClientInitiated); !errors.As(err, &se) || se.Code != http.StatusUnauthorized {
		t.Fatalf("session after retirement: %v", err)
	}
}

var _ = errs.ErrNotFound
