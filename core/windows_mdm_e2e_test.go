package core_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custos-uem/custos/core"
	"github.com/custos-uem/custos/platform/windows"
	"github.com/custos-uem/custos/platform/windows/syncml"
	"github.com/custos-uem/custos/platform/windows/wintest"
	"github.com/custos-uem/custos/push"
	"github.com/custos-uem/custos/push/wns"
	"github.com/custos-uem/custos/push/wns/wnstest"
	"github.com/custos-uem/custos/sqlstore/sqltest"
)

const testPFN = "Contoso.CustosMDM_8wekyb3d8bbwe"

// winManaged is an enrolled Windows emulator woken by the fake WNS.
type winManaged struct {
	dev     *wintest.Device
	id      string
	channel string
	woken   chan error
}

// TestWindowsManagement is the end-to-end test of Windows
// management: the emulator enrolls (MS-MDE2), its sessions store its WNS
// channel; a lock from the REST API and an IT policy change each reach it
// through a WNS push (the real client against the fake's token endpoint
// and channel) and a session; the inventory shows in the API.
func TestWindowsManagement(t *testing.T) {
	for _, backend := range sqltest.Backends(t) {
		t.Run(backend, func(t *testing.T) {
			fake := wnstest.NewServer(t, wnstest.Options{})
			client, err := wns.New(wns.Config{PackageSID: wnstest.DefaultSID, ClientSecret: wnstest.DefaultSecret,
				TokenURL: fake.TokenURL(), AllowHosts: []string{fake.Host()}, HTTPClient: fake.Client()})
			if err != nil {
				t.Fatal(err)
			}
			e := newEnvWith(t, backend, func(c *core.Config) {
				c.PushSender = push.NewRouter(map[string]push.Sender{push.WNS: client}, nil)
				c.WindowsEnroll.WNSPackageFamilyName = testPFN
			})
			ctx := context.Background()
			var mu sync.Mutex
			byChannel := map[string]*winManaged{}
			fake.OnPush(func(n wnstest.Notification) {
				mu.Lock()
				w := byChannel[n.Channel]
				mu.Unlock()
				if w != nil {
					go func() { w.woken <- w.dev.Session(ctx, syncml.AlertServerInitiated) }()
				}
			})
			enroll := func(email, hw string) *winManaged {
				t.Helper()
				u, pw := e.mustUser(email)
				en, err := wintest.Enroll(ctx, wintest.EnrollConfig{BaseURL: e.m.URL(), Email: u.Email, Password: pw, HTTPClient: e.hc,
					DeviceID: hw, HWDevID: "hw-" + hw})
				if err != nil {
					t.Fatalf("enroll: %v", err)
				}
				if en.ManagementURL != e.m.URL()+windows.PathManagement || en.ProviderID != windows.ProviderID {
					t.Fatalf("provisioning: ADDR %q provider %q", en.ManagementURL, en.ProviderID)
				}
				w := &winManaged{dev: wintest.NewDevice(en), id: en.DeviceID, channel: "chan-" + hw, woken: make(chan error, 4)}
				w.dev.Tree.ChannelURI = fake.ChannelURI(w.channel)
				mu.Lock()
				byChannel[w.channel] = w
				mu.Unlock()
				// The first session (the DM client starts one after
				// enrollment): DevInfo, the PFN, the channel, the first
				// configuration.
				if err := w.dev.Session(ctx, syncml.AlertClientInitiated); err != nil {
					t.Fatalf("first session: %v", err)
				}
				return w
			}
			wake := func(w *winManaged) {
				t.Helper()
				select {
				case err := <-w.woken:
					if err != nil {
						t.Fatalf("pushed session: %v", err)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("no push reached the device")
				}
			}
			a := enroll("alice@example.com", "A1B2C3D4E5F60718293A4B5C6D7E8F90")

			t.Run("ok/first-session", func(t *testing.T) {
				if v, _ := a.dev.Tree.Get("./Vendor/MSFT/DMClient/Provider/Custos/Push/PFN"); v != testPFN {
					t.Fatalf("PFN %q", v)
				}
				var d struct {
					State     string `json:"state"`
					Inventory struct {
						Info struct {
							Manufacturer string `json:"manufacturer"`
							Model        string `json:"model"`
						} `json:"info"`
					} `json:"inventory"`
				}
				if st := e.api("GET", "/api/v1/devices/"+a.id, nil, &d); st != 200 || d.State != "active" ||
					d.Inventory.Info.Manufacturer != "Contoso" || d.Inventory.Info.Model != "Surface Emulator" {
					t.Fatalf("device: %d %+v", st, d)
				}
			})
			t.Run("ok/lock-through-wns", func(t *testing.T) {
				var c struct {
					ID     string `json:"id"`
					Status string `json:"status"`
				}
				if st := e.api("POST", "/api/v1/devices/"+a.id+"/commands", map[string]string{"type": "lock"}, &c); st != 201 {
					t.Fatalf("send: %d", st)
				}
				wake(a)
				if a.dev.Tree.Execs[windows.NodeLock] != 1 {
					t.Fatalf("execs %v", a.dev.Tree.Execs)
				}
				if st := e.api("GET", "/api/v1/commands/"+c.ID, nil, &c); st != 200 || c.Status != "acknowledged" {
					t.Fatalf("command: %d %+v", st, c)
				}
				got := fake.Delivered()
				if len(got) == 0 || got[len(got)-1].Channel != a.channel || got[len(got)-1].Type != "wns/raw" || fake.Stats().TokensIssued == 0 {
					t.Fatalf("WNS saw %+v, %+v", got, fake.Stats())
				}
			})
			t.Run("ok/it-policy-through-wns", func(t *testing.T) {
				var p struct {
					ID string `json:"id"`
				}
				body := map[string]any{"name": "passwords", "kind": "it_policy", "rank": 1, "settings": map[string]any{
					"password_required": true, "password_min_length": 10, "password_complexity": "complex", "max_failed_attempts": 8,
					"password_max_age_days": 90}}
				if st := e.api("POST", "/api/v1/policies", body, &p); st != 201 {
					t.Fatalf("create policy: %d", st)
				}
				var dev struct {
					UserID string `json:"user_id"`
				}
				e.api("GET", "/api/v1/devices/"+a.id, nil, &dev)
				if st := e.api("POST", "/api/v1/policies/"+p.ID+"/assignments", map[string]string{"target_kind": "user", "target_id": dev.UserID}, nil); st != 204 {
					t.Fatalf("assign: %d", st)
				}
				wake(a)
				lock := a.dev.Tree.Nodes("./Device/Vendor/MSFT/Policy/Config/DeviceLock/")
				for k, v := range map[string]string{"DevicePasswordEnabled": "0", "MinDevicePasswordLength": "10", "AlphanumericDevicePasswordRequired": "0",
					"MinDevicePasswordComplexCharacters": "3", "MaxDevicePasswordFailedAttempts": "8", "DevicePasswordExpiration": "90"} {
					if got := lock["./Device/Vendor/MSFT/Policy/Config/DeviceLock/"+k]; got != v {
						t.Fatalf("DeviceLock/%s = %q, want %q (%v)", k, got, v, lock)
					}
				}
			})
			t.Run("ok/device-info-in-the-api", func(t *testing.T) {
				if st := e.api("POST", "/api/v1/devices/"+a.id+"/commands", map[string]string{"type": "device_info"}, nil); st != 201 {
					t.Fatalf("send: %d", st)
				}
				wake(a)
				var d struct {
					Inventory struct {
						Info struct {
							OSVersion    string `json:"os_version"`
							SerialNumber string `json:"serial_number"`
						} `json:"info"`
					} `json:"inventory"`
				}
				if e.api("GET", "/api/v1/devices/"+a.id, nil, &d); d.Inventory.Info.OSVersion != "10.0.22631.2428" || d.Inventory.Info.SerialNumber != "EMU-0001" {
					t.Fatalf("inventory %+v", d.Inventory)
				}
			})

			b := enroll("bob@example.com", "B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0")
			post := func(hc *http.Client, body []byte) int {
				t.Helper()
				req, _ := http.NewRequest("POST", e.m.URL()+windows.PathManagement, bytes.NewReader(body))
				req.Header.Set("Content-Type", syncml.ContentType)
				resp, err := hc.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp.StatusCode
			}
			t.Run("fail/syncml-without-client-certificate", func(t *testing.T) {
				if st := post(e.hc, syncml.Encode(a.dev.Package1("5", syncml.AlertClientInitiated))); st != http.StatusUnauthorized {
					t.Fatalf("%d, want 401", st)
				}
			})
			t.Run("fail/syncml-with-another-devices-certificate", func(t *testing.T) {
				m := a.dev.Package1("6", syncml.AlertClientInitiated)
				if st := post(b.dev.HTTP, syncml.Encode(m)); st != http.StatusForbidden {
					t.Fatalf("%d, want 403", st)
				}
			})
			t.Run("fail/session-id-of-another-device", func(t *testing.T) {
				if st := e.api("POST", "/api/v1/devices/"+a.id+"/commands", map[string]string{"type": "restart"}, nil); st != 201 {
					t.Fatal(st)
				}
				wake(a) // the push's session delivers the restart; a answers
				sid := a.dev.NextSessionID()
				if _, err := a.dev.Post(ctx, syncml.Encode(a.dev.Package1(sid, syncml.AlertClientInitiated))); err != nil {
					t.Fatal(err)
				}
				m := &syncml.Message{Header: syncml.Header{VerDTD: "1.2", VerProto: "DM/1.2", SessionID: sid, MsgID: "2", Source: b.dev.DevID},
					Body: syncml.Body{Final: true}}
				if st := post(b.dev.HTTP, syncml.Encode(m)); st != http.StatusForbidden {
					t.Fatalf("%d, want 403", st)
				}
			})
			// Sessions driven by hand: pushes to a are not acted on.
			mu.Lock()
			delete(byChannel, a.channel)
			mu.Unlock()
			open := func(typ string) (string, *syncml.Message) {
				t.Helper()
				if st := e.api("POST", "/api/v1/devices/"+a.id+"/commands", map[string]string{"type": typ}, nil); st != 201 {
					t.Fatal(st)
				}
				sid := a.dev.NextSessionID()
				raw, err := a.dev.Post(ctx, syncml.Encode(a.dev.Package1(sid, syncml.AlertClientInitiated)))
				if err != nil {
					t.Fatal(err)
				}
				m, err := syncml.Decode(raw)
				if err != nil {
					t.Fatal(err)
				}
				return sid, m
			}
			openCommands := func() []map[string]any {
				var l struct {
					Items []map[string]any `json:"items"`
				}
				e.api("GET", "/api/v1/devices/"+a.id+"/commands?status=open", nil, &l)
				return l.Items
			}
			t.Run("fail/status-for-cmdid-never-sent", func(t *testing.T) {
				sid, m := open("lock")
				var exec syncml.Command
				for _, c := range m.Body.Commands {
					if c.Name == syncml.CmdExec {
						exec = c
					}
				}
				if exec.CmdID == "" {
					t.Fatalf("no Exec in %+v", m.Body.Commands)
				}
				reply := &syncml.Message{Header: syncml.Header{VerDTD: "1.2", VerProto: "DM/1.2", SessionID: sid, MsgID: "2", Source: a.dev.DevID},
					Body: syncml.Body{Commands: []syncml.Command{
						{Name: syncml.CmdStatus, CmdID: "1", MsgRef: "1", CmdRef: "999", Cmd: "Exec", Data: "200"},
						{Name: syncml.CmdStatus, CmdID: "2", MsgRef: "2", CmdRef: exec.CmdID, Cmd: "Exec", Data: "200"},
					}, Final: true}}
				if _, err := a.dev.Post(ctx, syncml.Encode(reply)); err != nil {
					t.Fatal(err)
				}
				if open := openCommands(); len(open) != 1 || open[0]["type"] != "lock" || open[0]["status"] != "sent" {
					t.Fatalf("open commands %v, want the lock still sent", open)
				}
				if err := a.dev.Session(ctx, syncml.AlertClientInitiated); err != nil { // delivered again and answered
					t.Fatal(err)
				}
				if open := openCommands(); len(open) != 0 {
					t.Fatalf("open commands %v", open)
				}
			})
			t.Run("fail/unknown-csp-path-in-results", func(t *testing.T) {
				sid, m := open("device_info")
				var cmds []syncml.Command
				for _, c := range m.Body.Commands {
					if c.Name != syncml.CmdGet {
						continue
					}
					cmds = append(cmds, syncml.Command{Name: syncml.CmdStatus, CmdID: c.CmdID, MsgRef: "1", CmdRef: c.CmdID, Cmd: "Get", Data: "200"},
						syncml.Command{Name: syncml.CmdResults, CmdID: "9" + c.CmdID, MsgRef: "1", CmdRef: c.CmdID,
							Items: []syncml.Item{{Source: "./Vendor/MSFT/Unknown/" + c.CmdID, Data: "{{template}}<script>"}}})
				}
				reply := &syncml.Message{Header: syncml.Header{VerDTD: "1.2", VerProto: "DM/1.2", SessionID: sid, MsgID: "2", Source: a.dev.DevID},
					Body: syncml.Body{Commands: cmds, Final: true}}
				if _, err := a.dev.Post(ctx, syncml.Encode(reply)); err != nil {
					t.Fatal(err)
				}
				var d map[string]any
				e.api("GET", "/api/v1/devices/"+a.id, nil, &d)
				if inv := fmt.Sprint(d["inventory"]); strings.Contains(inv, "Unknown") || strings.Contains(inv, "script") || !strings.Contains(inv, "EMU-0001") {
					t.Fatalf("inventory %s", inv)
				}
			})
			t.Run("fail/xml-entity-expansion", func(t *testing.T) {
				bomb := `<?xml version="1.0"?><!DOCTYPE SyncML [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><SyncML><SyncHdr/><SyncBody>&lol2;</SyncBody></SyncML>`
				if st := post(a.dev.HTTP, []byte(bomb)); st != http.StatusBadRequest {
					t.Fatalf("%d, want 400", st)
				}
			})
			t.Run("fail/xml-deep-nesting", func(t *testing.T) {
				deep := `<SyncML><SyncHdr/><SyncBody>` + strings.Repeat("<Atomic>", 20000) + strings.Repeat("</Atomic>", 20000) + `</SyncBody></SyncML>`
				if st := post(a.dev.HTTP, []byte(deep)); st != http.StatusBadRequest {
					t.Fatalf("%d, want 400", st)
				}
			})
			t.Run("fail/oversized-body", func(t *testing.T) {
				if st := post(a.dev.HTTP, bytes.Repeat([]byte("<a>"), syncml.MaxBody)); st != http.StatusRequestEntityTooLarge {
					t.Fatalf("%d, want 413", st)
				}
			})
			t.Run("fail/replayed-1226-alert", func(t *testing.T) {
				m := b.dev.Package1("7", syncml.AlertClientInitiated, wintest.UnenrollAlert())
				if _, err := b.dev.Post(ctx, syncml.Encode(m)); err != nil {
					t.Fatalf("unenroll: %v", err)
				}
				var d struct {
					State string `json:"state"`
				}
				if e.api("GET", "/api/v1/devices/"+b.id, nil, &d); d.State != "removed" {
					t.Fatalf("device %s after 1226", d.State)
				}
				_, err := b.dev.Post(ctx, syncml.Encode(m))
				var se *wintest.ErrStatus
				if !errors.As(err, &se) || se.Code != http.StatusUnauthorized {
					t.Fatalf("replay: %v, want 401", err)
				}
				if e.api("GET", "/api/v1/devices/"+b.id, nil, &d); d.State != "removed" {
					t.Fatalf("device %s after the replay", d.State)
				}
			})
		})
	}
}
