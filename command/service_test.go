package command_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/command/commandtest"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/id"
	"github.com/custos-uem/custos/secret"
	"github.com/custos-uem/custos/sqlstore"
	"github.com/custos-uem/custos/sqlstore/sqltest"
	"github.com/custos-uem/custos/storetest"
)

var t0 = commandtest.T0

// notifier records the calls of Service.Notify.
type notifier struct {
	mu    sync.Mutex
	calls [][]string
}

func (n *notifier) notify(ids []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls = append(n.calls, ids)
}

func (n *notifier) want(t testing.TB, want ...[]string) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if want == nil {
		want = [][]string{}
	}
	got := append([][]string{}, n.calls...)
	storetest.WantEqual(t, "Notify calls", got, want)
}

// service returns a service on a fresh database of backend, its clock at
// t0, with its notifications recorded.
func service(t testing.TB, backend string) (*command.Service, *sqlstore.DB, *notifier) {
	t.Helper()
	db := sqltest.Open(t, backend)
	n := &notifier{}
	return &command.Service{Store: db, Notify: n.notify, Now: func() time.Time { return t0 }}, db, n
}

// forEachBackend runs fn once per backend.
func forEachBackend(t *testing.T, fn func(t *testing.T, backend string)) {
	t.Helper()
	for _, backend := range sqltest.Backends(t) {
		t.Run(backend, func(t *testing.T) { fn(t, backend) })
	}
}

func wantInvalid(t testing.TB, err error, code string, fields ...string) {
	t.Helper()
	var e *errs.Error
	if !errors.As(err, &e) || e.Kind != errs.Invalid || e.Code != code {
		t.Fatalf("error %v, want an invalid error coded %s", err, code)
	}
	for _, f := range fields {
		if _, ok := e.Fields[f]; !ok {
			t.Fatalf("error fields %v, want one for %q", e.Fields, f)
		}
	}
}

func TestDefaultPriority(t *testing.T) {
	want := map[command.Type]int{
		command.WipeWork: command.PriorityWipe, command.WipeDevice: command.PriorityWipe,
		command.Lock: command.PriorityAdmin, command.ClearPasscode: command.PriorityAdmin,
		command.SetPassword: command.PriorityAdmin, command.Restart: command.PriorityAdmin,
		command.DeviceInfo: command.PriorityInfo, command.InstalledApps: command.PriorityInfo, command.Message: command.PriorityInfo,
		command.InstallApp: command.PriorityConfig, command.RemoveApp: command.PriorityConfig,
		command.SyncConfig: command.PriorityConfig, command.Raw: command.PriorityConfig,
	}
	for typ, prio := range want {
		if !command.Known(typ) {
			t.Errorf("Known(%s) = false", typ)
		}
		if got := command.DefaultPriority(typ); got != prio {
			t.Errorf("DefaultPriority(%s) = %d, want %d", typ, got, prio)
		}
	}
	// The seed: IT administration outranks requests for information.
	if !(command.PriorityWipe > command.PriorityAdmin && command.PriorityAdmin > command.PriorityConfig &&
		command.PriorityConfig > command.PriorityInfo) {
		t.Fatal("priority classes out of order")
	}
}

func TestValidatePayload(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct {
		name    string
		typ     command.Type
		payload string
		bad     string // the field reported, "" for none
	}{
		{"fail/unknown type", "format_disk", ``, "type"},
		{"fail/too large", command.Raw, `{"platform":"agent","body":"` + long(command.MaxPayload) + `"}`, "payload"},
		{"fail/not an object", command.Lock, `["message"]`, "payload"},
		{"fail/not JSON", command.Lock, `{"message":`, "payload"},
		{"fail/two objects", command.Lock, `{} {}`, "payload"},
		{"fail/key twice", command.SetPassword, `{"password":"1234","password":"1"}`, "payload"},
		{"fail/invalid UTF-8", command.Message, "{\"text\":\"\xff\"}", "payload"},
		{"fail/unknown key", command.Lock, `{"message":"hi","passcode":"1234"}`, "payload.passcode"},
		{"fail/lock PIN of five digits", command.Lock, `{"pin":"12345"}`, "payload.pin"},
		{"fail/lock PIN of seven digits", command.Lock, `{"pin":"1234567"}`, "payload.pin"},
		{"fail/lock PIN with a letter", command.Lock, `{"pin":"12345a"}`, "payload.pin"},
		{"fail/lock PIN of other scripts' digits", command.Lock, `{"pin":"١٢٣٤٥٦"}`, "payload.pin"},
		{"fail/lock PIN not a string", command.Lock, `{"pin":123456}`, "payload.pin"},
		{"fail/wipe_device PIN of four digits", command.WipeDevice, `{"pin":"1234"}`, "payload.pin"},
		{"fail/payload for a type without one", command.WipeDevice, `{"keep_esim":true}`, "payload.keep_esim"},
		{"fail/set_password without password", command.SetPassword, `{}`, "payload.password"},
		{"fail/set_password too short", command.SetPassword, `{"password":"123"}`, "payload.password"},
		{"fail/set_password too long", command.SetPassword, `{"password":"` + long(command.MaxPassword+1) + `"}`, "payload.password"},
		{"fail/set_password not a string", command.SetPassword, `{"password":1234}`, "payload.password"},
		{"fail/install_app without app_id", command.InstallApp, `{"url":"https://x.example/a.apk"}`, "payload.app_id"},
		{"fail/install_app plain http URL", command.InstallApp, `{"app_id":"a","url":"http://x.example/a.apk"}`, "payload.url"},
		{"fail/remove_app empty app_id", command.RemoveApp, `{"app_id":""}`, "payload.app_id"},
		{"fail/message without text", command.Message, ``, "payload.text"},
		{"fail/message too long", command.Message, `{"text":"` + long(command.MaxMessageText+1) + `"}`, "payload.text"},
		{"fail/raw without body", command.Raw, `{"platform":"agent"}`, "payload.body"},
		{"fail/raw null body", command.Raw, `{"platform":"agent","body":null}`, "payload.body"},
		{"fail/raw without platform", command.Raw, `{"body":{}}`, "payload.platform"},
		{"ok/lock without payload", command.Lock, ``, ""},
		{"ok/lock null payload", command.Lock, `null`, ""},
		{"ok/lock with message", command.Lock, `{"message":"Call IT","phone_number":"+1 555 0100"}`, ""},
		{"ok/lock with a Find My PIN", command.Lock, `{"message":"Call IT","pin":"012345"}`, ""},
		{"ok/wipe_device with a Find My PIN", command.WipeDevice, `{"pin":"987654"}`, ""},
		{"ok/set_password", command.SetPassword, `{"password":"` + long(command.MaxPassword) + `"}`, ""},
		{"ok/install_app", command.InstallApp, `{"app_id":"org.example.mail","url":"https://apps.example.com/mail.apk"}`, ""},
		{"ok/remove_app", command.RemoveApp, `{"app_id":"org.example.mail"}`, ""},
		{"ok/message", command.Message, `{"text":"` + long(command.MaxMessageText) + `"}`, ""},
		{"ok/raw", command.Raw, ` {"platform":"apple","body":{"RequestType":"DeviceInformation"}} `, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := command.ValidatePayload(tc.typ, json.RawMessage(tc.payload))
			if tc.bad == "" && got != nil || tc.bad != "" && got[tc.bad] == "" {
				t.Fatalf("ValidatePayload = %v, want a complaint about %q", got, tc.bad)
			}
		})
	}
}

// noStore fails the test when a refused call reaches the store.
type noStore struct {
	command.Store
	t *testing.T
}

func (s noStore) Enqueue(context.Context, []*command.Command) (int, error) {
	s.t.Error("an invalid command reached the store")
	return 0, errors.New("unexpected")
}

func (s noStore) Complete(context.Context, string, command.Result, time.Time) (*command.Command, bool, error) {
	s.t.Error("an invalid result reached the store")
	return nil, false, errors.New("unexpected")
}

func TestSendRefusesInvalidCommands(t *testing.T) {
	prio := func(p int) *int { return &p }
	one := []string{id.New()}
	tooMany := make([]string, command.MaxBulk+1)
	for i := range tooMany {
		tooMany[i] = fmt.Sprint(i)
	}
	tests := []struct {
		name    string
		devices []string
		in      command.NewCommand
		field   string
	}{
		{"fail/unknown type", one, command.NewCommand{Type: "self_destruct"}, "type"},
		{"fail/priority below range", one, command.NewCommand{Type: command.Lock, Priority: prio(-1)}, "priority"},
		{"fail/priority above range", one, command.NewCommand{Type: command.Lock, Priority: prio(101)}, "priority"},
		{"fail/bad payload", one, command.NewCommand{Type: command.SetPassword, Payload: json.RawMessage(`{"password":"1"}`)}, "payload.password"},
		{"fail/payload too large", one, command.NewCommand{Type: command.Raw,
			Payload: json.RawMessage(`{"platform":"x","body":"` + strings.Repeat("a", command.MaxPayload) + `"}`)}, "payload"},
		{"fail/ttl above MaxTTL", one, command.NewCommand{Type: command.Lock, TTL: command.MaxTTL + time.Second}, "ttl"},
		{"fail/negative ttl", one, command.NewCommand{Type: command.Lock, TTL: -time.Second}, "ttl"},
		{"fail/no devices", nil, command.NewCommand{Type: command.Lock}, "devices"},
		{"fail/empty device ID", []string{""}, command.NewCommand{Type: command.Lock}, "devices"},
		{"fail/more than MaxBulk devices", tooMany, command.NewCommand{Type: command.Lock}, "devices"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := &notifier{}
			s := &command.Service{Store: noStore{t: t}, Notify: n.notify}
			tc.in.CreatedBy = "admin-1"
			_, err := s.Send(context.Background(), tc.devices, tc.in)
			wantInvalid(t, err, "invalid_command", tc.field)
			n.want(t)
		})
	}
	t.Run("fail/no sender", func(t *testing.T) {
		s := &command.Service{Store: noStore{t: t}}
		_, err := s.Send(context.Background(), one, command.NewCommand{Type: command.Lock})
		if err == nil || errs.KindOf(err) != errs.Internal {
			t.Fatalf("Send without CreatedBy: %v, want an internal error (the caller's bug)", err)
		}
	})
}

func TestSendQueuesOneCommandPerDeviceAndNotifiesAfterCommit(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		ctx := context.Background()
		s, db, _ := service(t, backend)
		a, b := commandtest.EnrolledDevice(t, db), commandtest.ActiveDevice(t, db)
		// Notify must find the commands already committed: a device pushed
		// before then could ask and find nothing.
		var notified [][]string
		s.Notify = func(ids []string) {
			for _, d := range ids {
				open, err := db.ListCommands(ctx, command.Query{DeviceID: d, Open: true})
				if err != nil || len(open) != 1 {
					t.Errorf("in Notify, device %s has %d open commands (%v), want 1", d, len(open), err)
				}
			}
			notified = append(notified, ids)
		}
		payload := json.RawMessage(`{"app_id":"org.example.mail"}`)
		got, err := s.Send(ctx, []string{a.ID, b.ID, a.ID}, command.NewCommand{Type: command.InstallApp, Payload: payload,
			TTL: time.Hour, CreatedBy: "admin-1"})
		storetest.WantErr(t, "Send", err, nil)
		storetest.WantEqual(t, "Notify calls", notified, [][]string{{a.ID, b.ID}})
		if len(got) != 2 || got[0].DeviceID != a.ID || got[1].DeviceID != b.ID {
			t.Fatalf("Send returned %d commands, want one for each of 2 devices in order", len(got))
		}
		for _, c := range got {
			want := &command.Command{ID: c.ID, DeviceID: c.DeviceID, Type: command.InstallApp, Priority: command.PriorityConfig,
				Payload: payload, Status: command.StatusPending, CreatedBy: "admin-1", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
			storetest.WantEqual(t, "sent command", c, want)
			stored, err := s.Get(ctx, c.ID)
			storetest.WantErr(t, "Get", err, nil)
			storetest.WantEqual(t, "stored command", stored, want)
		}
		if got[0].ID >= got[1].ID {
			t.Fatalf("IDs %s, %s not in creation order", got[0].ID, got[1].ID)
		}
	})
}

func TestSendDefaults(t *testing.T) {
	ctx := context.Background()
	s, db, n := service(t, sqlstore.SQLite)
	d := commandtest.EnrolledDevice(t, db)
	p := 100
	tests := []struct {
		name     string
		in       command.NewCommand
		priority int
		payload  json.RawMessage
		ttl      time.Duration
	}{
		{"ok/type's priority and DefaultTTL", command.NewCommand{Type: command.WipeDevice, CreatedBy: "a"}, command.PriorityWipe, nil, command.DefaultTTL},
		{"ok/explicit priority and MaxTTL", command.NewCommand{Type: command.DeviceInfo, Priority: &p, TTL: command.MaxTTL, CreatedBy: "a"}, 100, nil, command.MaxTTL},
		{"ok/empty object is no payload", command.NewCommand{Type: command.Lock, Payload: json.RawMessage(`{}`), CreatedBy: "a"}, command.PriorityAdmin, nil, command.DefaultTTL},
		{"ok/null is no payload", command.NewCommand{Type: command.Lock, Payload: json.RawMessage(`null`), CreatedBy: "a"}, command.PriorityAdmin, nil, command.DefaultTTL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Send(ctx, []string{d.ID}, tc.in)
			storetest.WantErr(t, "Send", err, nil)
			c, err := s.Get(ctx, got[0].ID)
			storetest.WantErr(t, "Get", err, nil)
			if c.Priority != tc.priority || string(c.Payload) != string(tc.payload) || c.ExpiresAt != t0.Add(tc.ttl) {
				t.Fatalf("stored priority %d, payload %q, expires %v; want %d, %q, %v", c.Priority, c.Payload, c.ExpiresAt,
					tc.priority, tc.payload, t0.Add(tc.ttl))
			}
		})
	}
	if len(n.calls) != len(tests) {
		t.Fatalf("%d Notify calls, want %d", len(n.calls), len(tests))
	}
}

func TestSendToUnknownOrRemovedDeviceStoresNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		ctx := context.Background()
		s, db, n := service(t, backend)
		good, removed := commandtest.EnrolledDevice(t, db), commandtest.RemovedDevice(t, db)
		for _, bad := range []string{removed.ID, id.New()} {
			_, err := s.Send(ctx, []string{good.ID, bad}, command.NewCommand{Type: command.Lock, CreatedBy: "admin-1"})
			if errs.KindOf(err) != errs.NotFound || !errors.Is(err, errs.ErrNotFound) {
				t.Fatalf("Send to %s: %v, want a not-found error", bad, err)
			}
			if code, _, _ := errs.Public(err); code != "device_not_found" {
				t.Fatalf("Send: code %q, want device_not_found", code)
			}
		}
		all, err := s.List(ctx, command.Query{})
		storetest.WantErr(t, "List", err, nil)
		if len(all) != 0 {
			t.Fatalf("%d commands stored after failed sends, want none", len(all))
		}
		n.want(t)
	})
}

func TestSendSyncConfigSkipsDevicesWithOnePending(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		ctx := context.Background()
		s, db, n := service(t, backend)
		a, b := commandtest.EnrolledDevice(t, db), commandtest.EnrolledDevice(t, db)
		syncConfig := command.NewCommand{Type: command.SyncConfig, CreatedBy: "system"}
		first, err := s.Send(ctx, []string{a.ID}, syncConfig)
		storetest.WantErr(t, "Send", err, nil)
		got, err := s.Send(ctx, []string{a.ID, b.ID}, syncConfig)
		storetest.WantErr(t, "Send", err, nil)
		if len(got) != 1 || got[0].DeviceID != b.ID {
			t.Fatalf("second Send returned %d commands, want only b's", len(got))
		}
		n.want(t, []string{a.ID}, []string{b.ID})
		open, err := s.List(ctx, command.Query{DeviceID: a.ID, Open: true})
		storetest.WantErr(t, "List", err, nil)
		storetest.WantEqual(t, "a's queue", open, first)
	})
}

func TestReportRefusesInvalidResults(t *testing.T) {
	cid := id.New()
	tests := []struct {
		name  string
		r     command.Result
		field string
	}{
		{"fail/no command", command.Result{Status: command.StatusAcknowledged}, "command_id"},
		{"fail/pending is not a result", command.Result{CommandID: cid, Status: command.StatusPending}, "status"},
		{"fail/cancelled is not a result", command.Result{CommandID: cid, Status: command.StatusCancelled}, "status"},
		{"fail/empty status", command.Result{CommandID: cid}, "status"},
		{"fail/message too long", command.Result{CommandID: cid, Status: command.StatusError,
			Message: strings.Repeat("e", command.MaxResultMessage+1)}, "message"},
		{"fail/message with NUL", command.Result{CommandID: cid, Status: command.StatusError, Message: "a\x00b"}, "message"},
		{"fail/message not UTF-8", command.Result{CommandID: cid, Status: command.StatusError, Message: "\xc3"}, "message"},
		{"fail/data too large", command.Result{CommandID: cid, Status: command.StatusAcknowledged,
			Data: json.RawMessage(`"` + strings.Repeat("d", command.MaxResultData) + `"`)}, "data"},
		{"fail/data not JSON", command.Result{CommandID: cid, Status: command.StatusAcknowledged, Data: json.RawMessage(`{"a":`)}, "data"},
		{"fail/data not UTF-8", command.Result{CommandID: cid, Status: command.StatusAcknowledged, Data: json.RawMessage("\"\xff\"")}, "data"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &command.Service{Store: noStore{t: t}}
			_, _, err := s.Report(context.Background(), id.New(), tc.r)
			wantInvalid(t, err, "invalid_result", tc.field)
		})
	}
}

func TestDeliverReportAndRepeat(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		ctx := context.Background()
		s, db, _ := service(t, backend)
		d, other := commandtest.EnrolledDevice(t, db), commandtest.EnrolledDevice(t, db)
		sent, err := s.Send(ctx, []string{d.ID}, command.NewCommand{Type: command.InstalledApps, CreatedBy: "admin-1"})
		storetest.WantErr(t, "Send", err, nil)
		_, err = s.Next(ctx, other.ID)
		storetest.WantErr(t, "Next(other)", err, command.ErrIdle)
		// A result before delivery, or from another device, is refused.
		r := command.Result{CommandID: sent[0].ID, Status: command.StatusAcknowledged, Data: json.RawMessage(`[{"name":"vim"}]`)}
		_, _, err = s.Report(ctx, d.ID, r)
		storetest.WantErr(t, "Report before delivery", err, command.ErrUnknownCommand)
		c, err := s.Next(ctx, d.ID)
		storetest.WantErr(t, "Next", err, nil)
		if c.ID != sent[0].ID || c.Status != command.StatusSent || c.Deliveries != 1 {
			t.Fatalf("Next = %+v", c)
		}
		_, _, err = s.Report(ctx, other.ID, r)
		storetest.WantErr(t, "Report from another device", err, command.ErrUnknownCommand)
		done, dup, err := s.Report(ctx, d.ID, r)
		storetest.WantErr(t, "Report", err, nil)
		if dup || done.Status != command.StatusAcknowledged || string(done.Result) != string(r.Data) {
			t.Fatalf("Report = %+v, duplicate %v", done, dup)
		}
		again, dup, err := s.Report(ctx, d.ID, command.Result{CommandID: c.ID, Status: command.StatusError, Message: "late"})
		storetest.WantErr(t, "repeated Report", err, nil)
		if !dup {
			t.Fatal("repeated Report is not a duplicate")
		}
		storetest.WantEqual(t, "repeated Report", again, done)
		_, err = s.Next(ctx, d.ID)
		storetest.WantErr(t, "Next after the result", err, command.ErrIdle)
		_, err = s.Cancel(ctx, c.ID)
		storetest.WantErr(t, "Cancel(final)", err, command.ErrFinal)
		if errs.KindOf(err) != errs.Conflict {
			t.Fatalf("Cancel(final) kind %v, want conflict", errs.KindOf(err))
		}
		_, err = s.Get(ctx, id.New())
		storetest.WantErr(t, "Get(unknown)", err, command.ErrNotFound)
	})
}

func TestExpireSweepsEveryExpiredCommandInBatches(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		const expired = 2500 // more than two of the service's batches
		ctx := context.Background()
		s, db, _ := service(t, backend)
		d := commandtest.EnrolledDevice(t, db)
		cmds := make([]*command.Command, expired+1)
		for i := range cmds {
			cmds[i] = commandtest.New(d.ID, command.DeviceInfo, 20, t0)
			cmds[i].ExpiresAt = t0.Add(time.Minute)
		}
		cmds[expired].ExpiresAt = t0.Add(time.Hour) // not yet
		commandtest.Enqueue(t, db, cmds...)
		now := t0.Add(10 * time.Minute)
		s.Now = func() time.Time { return now }
		n, err := s.Expire(ctx)
		if err != nil || n != expired {
			t.Fatalf("Expire = %d, %v; want %d", n, err, expired)
		}
		open, err := s.List(ctx, command.Query{Open: true})
		storetest.WantErr(t, "List", err, nil)
		if len(open) != 1 || open[0].ID != cmds[expired].ID {
			t.Fatalf("open after Expire: %d commands, want only the unexpired one", len(open))
		}
		if n, err := s.Expire(ctx); n != 0 || err != nil {
			t.Fatalf("second Expire = %d, %v; want 0", n, err)
		}
	})
}

func TestPruneDeletesOldFinalCommandsInBatches(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		const old = 2500 // more than two of the service's batches
		ctx := context.Background()
		s, db, _ := service(t, backend)
		d := commandtest.EnrolledDevice(t, db)
		cmds := make([]*command.Command, old+1)
		for i := range cmds {
			cmds[i] = commandtest.New(d.ID, command.DeviceInfo, 20, t0)
			cmds[i].ExpiresAt = t0.Add(time.Minute)
		}
		cmds[old].CreatedAt, cmds[old].ExpiresAt = t0.Add(time.Hour), t0.Add(2*time.Hour) // recent, still open
		commandtest.Enqueue(t, db, cmds...)
		s.Now = func() time.Time { return t0.Add(10 * time.Minute) }
		if n, err := s.Expire(ctx); err != nil || n != old {
			t.Fatalf("Expire = %d, %v; want %d", n, err, old)
		}
		s.Now = func() time.Time { return t0.Add(30 * 24 * time.Hour) }
		if n, err := s.Prune(ctx); n != 0 || err != nil {
			t.Fatalf("Prune without a retention = %d, %v; want 0, nothing deleted", n, err)
		}
		s.Retention = 7 * 24 * time.Hour
		if n, err := s.Prune(ctx); err != nil || n != old {
			t.Fatalf("Prune = %d, %v; want %d", n, err, old)
		}
		all, err := s.List(ctx, command.Query{})
		storetest.WantErr(t, "List", err, nil)
		if len(all) != 1 || all[0].ID != cmds[old].ID {
			t.Fatalf("after Prune: %d commands, want only the open one", len(all))
		}
		if n, err := s.Prune(ctx); n != 0 || err != nil {
			t.Fatalf("second Prune = %d, %v; want 0", n, err)
		}
	})
}

// mustBox returns a secret.Box with a fixed test key.
func mustBox(t *testing.T) *secret.Box {
	t.Helper()
	box, err := secret.New(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return box
}

// TestFindMyPINSealedAtRest: with a Box, a lock's PIN is stored sealed
// and opened for the device, by Next and by Reveal (for platforms that
// take the command from the store).
func TestFindMyPINSealedAtRest(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		ctx := context.Background()
		s, db, _ := service(t, backend)
		s.Box = mustBox(t)
		d := commandtest.EnrolledDevice(t, db)
		sent, err := s.Send(ctx, []string{d.ID}, command.NewCommand{Type: command.Lock, Payload: json.RawMessage(`{"message":"Call IT","pin":"314159"}`), CreatedBy: "a"})
		if err != nil {
			t.Fatal(err)
		}
		stored, err := db.Command(ctx, sent[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(stored.Payload), "314159") || !strings.Contains(string(stored.Payload), secret.Prefix) || !strings.Contains(string(stored.Payload), "Call IT") {
			t.Fatalf("stored payload %s, want the PIN sealed and the message as it is", stored.Payload)
		}
		pin := func(c *command.Command) string {
			t.Helper()
			var p struct{ PIN string }
			if err := json.Unmarshal(c.Payload, &p); err != nil {
				t.Fatal(err)
			}
			return p.PIN
		}
		revealed, err := s.Reveal(stored)
		if err != nil || pin(revealed) != "314159" {
			t.Fatalf("Reveal: %s, %v; want the PIN", revealed.Payload, err)
		}
		next, err := s.Next(ctx, d.ID)
		if err != nil || pin(next) != "314159" {
			t.Fatalf("delivered payload %v, %v; want the PIN", next, err)
		}
	})
}

// TestSetPasswordSealedAtRest: with a Box, the stored payload of a
// set_password command holds only the sealed password; the device gets
// the password itself when the command is delivered.
func TestSetPasswordSealedAtRest(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		ctx := context.Background()
		s, db, _ := service(t, backend)
		s.Box = mustBox(t)
		d := commandtest.EnrolledDevice(t, db)
		sent, err := s.Send(ctx, []string{d.ID}, command.NewCommand{Type: command.SetPassword, Payload: json.RawMessage(`{"password":"Tr0ub4dor"}`), CreatedBy: "a"})
		if err != nil {
			t.Fatal(err)
		}
		stored, err := db.Command(ctx, sent[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(stored.Payload), "Tr0ub4dor") || !strings.Contains(string(stored.Payload), secret.Prefix) {
			t.Fatalf("stored payload %s, want the password sealed", stored.Payload)
		}
		next, err := s.Next(ctx, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		var p struct{ Password string }
		if err := json.Unmarshal(next.Payload, &p); err != nil || p.Password != "Tr0ub4dor" {
			t.Fatalf("delivered payload %s, want the password", next.Payload)
		}
	})
}
