package sim

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/custos-uem/custos/agent"
	wire "github.com/custos-uem/custos/platform/agent"
)

func TestExecute(t *testing.T) {
	tests := []struct {
		name       string
		busy       string
		cmd        wire.Command
		wantStatus string // "" : an error return
		wantErr    string
	}{
		{name: "fail/raw", cmd: wire.Command{ID: "1", Type: "raw"}, wantErr: "raw is not supported by the simulated device"},
		{name: "fail/install_app bad payload", cmd: wire.Command{ID: "1", Type: "install_app", Payload: json.RawMessage(`{"app_id":"a b"}`)}, wantErr: "app_id holds spaces"},
		{name: "fail/remove_app not installed", cmd: wire.Command{ID: "1", Type: "remove_app", Payload: json.RawMessage(`{"app_id":"x.y"}`)}, wantStatus: agent.ResultError},
		{name: "ok/busy answers not now", busy: "locked by the user", cmd: wire.Command{ID: "1", Type: "lock"}, wantStatus: agent.ResultNotNow},
		{name: "ok/lock", cmd: wire.Command{ID: "1", Type: "lock"}, wantStatus: agent.ResultAcknowledged},
		{name: "ok/wipe_device", cmd: wire.Command{ID: "1", Type: "wipe_device"}, wantStatus: agent.ResultAcknowledged},
		{name: "ok/message", cmd: wire.Command{ID: "1", Type: "message", Payload: json.RawMessage(`{"text":"hi"}`)}, wantStatus: agent.ResultAcknowledged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := mustNew(t, "ios", 1)
			d.SetBusy(tt.busy)
			r, err := d.Execute(context.Background(), tt.cmd)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
			} else if err != nil || r.Status != tt.wantStatus {
				t.Fatalf("result %+v, %v", r, err)
			}
			ex := d.Executed()
			if len(ex) != 1 || ex[0].ID != "1" || ex[0].Type != tt.cmd.Type {
				t.Fatalf("executed = %+v", ex)
			}
			if tt.wantErr != "" && ex[0].Status != agent.ResultError {
				t.Fatalf("recorded status %q for an error", ex[0].Status)
			}
		})
	}
}

func TestInstallRemoveChangesApps(t *testing.T) {
	d := mustNew(t, "android", 2)
	before := agent.SoftwareHash(collect(t, d).Apps)
	ctx := context.Background()
	if _, err := d.Execute(ctx, wire.Command{ID: "1", Type: "install_app", Payload: json.RawMessage(`{"app_id":"com.example.work"}`)}); err != nil {
		t.Fatal(err)
	}
	inv := collect(t, d)
	found := false
	for _, a := range inv.Apps {
		found = found || a.ID == "com.example.work"
	}
	if !found || agent.SoftwareHash(inv.Apps) == before {
		t.Fatal("install_app did not add the app")
	}
	r, err := d.Execute(ctx, wire.Command{ID: "2", Type: "remove_app", Payload: json.RawMessage(`{"app_id":"com.example.work"}`)})
	if err != nil || r.Status != agent.ResultAcknowledged || agent.SoftwareHash(collect(t, d).Apps) != before {
		t.Fatalf("remove_app: %+v, %v", r, err)
	}
	// set_password's payload is not kept.
	if _, err := d.Execute(ctx, wire.Command{ID: "3", Type: "set_password", Payload: json.RawMessage(`{"password":"S3cret"}`)}); err != nil {
		t.Fatal(err)
	}
	if ex := d.Executed(); ex[2].Payload != nil {
		t.Fatalf("password kept: %s", ex[2].Payload)
	}
}

func TestApplyRecords(t *testing.T) {
	d := mustNew(t, "windows", 3)
	items := []wire.Item{{ID: "a", Kind: "it_policy"}, {ID: "b", Kind: "wifi"}}
	st, err := d.Apply(context.Background(), wire.Configuration{}, wire.Configuration{Version: "v1", Items: items})
	if err != nil || len(st) != 2 || st[1].ID != "b" || st[1].Status != agent.StatusApplied {
		t.Fatalf("statuses %+v, %v", st, err)
	}
	got := d.Applied()
	got[0].ID = "changed"
	if d.Applied()[0].ID != "a" {
		t.Fatal("Applied shares memory with the device")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.Apply(ctx, wire.Configuration{}, wire.Configuration{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply on a cancelled context = %v", err)
	}
}

func TestFakePushAndWake(t *testing.T) {
	for _, p := range Platforms {
		d := mustNew(t, p, 9)
		provider, token, _ := d.FakePush()
		p2, t2, _ := mustNew(t, p, 9).FakePush()
		if provider != p2 || token != t2 {
			t.Fatalf("%s: push token not stable", p)
		}
		want := map[string]string{"ios": "apns", "android": "fcm", "windows": "wns", "linux": ""}[p]
		if provider != want || (want != "" && token == "") {
			t.Fatalf("%s: provider %q token %q", p, provider, token)
		}
	}
	d := mustNew(t, "android", 1)
	if d.Wake() {
		t.Fatal("Wake without a Client reported delivered")
	}
	c, err := agent.New(d.Bind(agent.Options{Store: agent.NewMemStore()}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d.Attach(c)
	if !d.Wake() {
		t.Fatal("Wake with a Client attached reported not delivered")
	}
}
