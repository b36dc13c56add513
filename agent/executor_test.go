package agent

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/device"
	wire "github.com/custos-uem/custos/platform/agent"
)

// TestFitApps: an app list over the result limit is cut with a note, never
// sent over the limit.
func TestFitApps(t *testing.T) {
	many := make([]device.App, wire.MaxApps)
	for i := range many {
		many[i] = device.App{ID: fmt.Sprintf("com.example.app%05d", i), Name: fmt.Sprintf("App %05d %s", i, strings.Repeat("x", 60)), Version: "1.0." + fmt.Sprint(i)}
	}
	tests := []struct {
		name          string
		apps          []device.App
		wantTruncated bool
	}{
		{name: "fail/20000 apps do not fit in 1 MiB", apps: many, wantTruncated: true},
		{name: "ok/no apps", apps: nil},
		{name: "ok/a phone's apps fit", apps: many[:80]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := FitApps(tt.apps, command.MaxResultData)
			b, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > command.MaxResultData {
				t.Fatalf("%d bytes over the limit", len(b))
			}
			if d.Truncated != tt.wantTruncated || d.Total != len(tt.apps) || d.Apps == nil {
				t.Fatalf("truncated %v, total %d, %d listed", d.Truncated, d.Total, len(d.Apps))
			}
			if tt.wantTruncated {
				if len(d.Apps) < len(tt.apps)/4 || !strings.Contains(d.Note, fmt.Sprintf("%d of %d apps listed", len(d.Apps), len(tt.apps))) {
					t.Fatalf("%d listed, note %q", len(d.Apps), d.Note)
				}
				// As much as fits: one more app would not.
				more := InstalledAppsData{Apps: tt.apps[:len(d.Apps)+1], Total: d.Total, Truncated: true, Note: d.Note}
				if b, _ := json.Marshal(more); len(b) <= command.MaxResultData-resultDataHeadroom {
					t.Fatalf("cut too early: %d apps would fit in %d bytes", len(more.Apps), len(b))
				}
			} else if len(d.Apps) != len(tt.apps) || d.Note != "" {
				t.Fatalf("cut a list that fits: %d of %d, note %q", len(d.Apps), len(tt.apps), d.Note)
			}
		})
	}
}

func TestRememberBounded(t *testing.T) {
	var recs []CommandRecord
	for i := range MaxRemembered + 10 {
		recs = remember(recs, CommandRecord{ID: fmt.Sprint(i), Status: ResultAcknowledged})
	}
	if len(recs) != MaxRemembered || recs[0].ID != "10" || recs[len(recs)-1].ID != fmt.Sprint(MaxRemembered+9) {
		t.Fatalf("%d records, first %s", len(recs), recs[0].ID)
	}
	// Replacing a record moves it to the end without growing the list,
	// and leaves the slice it was given alone (State copies share it).
	before := recs[0]
	again := remember(recs, CommandRecord{ID: "10", Status: ResultError})
	if len(again) != MaxRemembered || again[len(again)-1].Status != ResultError || recs[0].ID != before.ID || recs[0].Status != before.Status {
		t.Fatalf("replace: %d records, last %+v, original changed %v", len(again), again[len(again)-1], recs[0].ID != before.ID || recs[0].Status != before.Status)
	}
	if findRecord(again, "10").Status != ResultError || findRecord(again, "nope") != nil {
		t.Fatal("findRecord")
	}
}

// FuzzCommand feeds a Core's command (untrusted) through every parser the
// agent applies to it: the checks of ID and type, the payload parsers, and
// the result normalization. None may panic; what they accept must hold
// their promises.
func FuzzCommand(f *testing.F) {
	for _, s := range []struct{ id, typ, payload string }{
		{"cmd1", "install_app", `{"app_id":"com.example.a","url":"https://apps.example.com/a.apk"}`},
		{"cmd2", "remove_app", `{"app_id":"com.example.a"}`},
		{"cmd3", "set_password", `{"password":"S3cret!"}`},
		{"cmd4", "message", `{"text":"hello\u001b[2J"}`},
		{"", "lock", ``},
		{"cmd\x00", "ty pe", `{"app_id":""}`},
		{"cmd5", "install_app", `{"app_id":"a","url":"https://u:p@x"}`},
		{"cmd6", "message", `[1,2,3]`},
	} {
		f.Add(s.id, s.typ, []byte(s.payload))
	}
	f.Fuzz(func(t *testing.T, id, typ string, payload []byte) {
		cmd := wire.Command{ID: id, Type: typ, Payload: payload}
		if checkCommand(cmd) == nil {
			if id == "" || len(id) > wire.MaxField || strings.ContainsAny(id, " \t\n\x00") {
				t.Fatalf("accepted ID %q", id)
			}
		}
		if p, err := ParseInstallApp(cmd); err == nil {
			if p.AppID == "" || len(p.AppID) > wire.MaxField || !utf8.ValidString(p.AppID) || (p.URL != "" && !strings.HasPrefix(p.URL, "https://")) {
				t.Fatalf("accepted %+v", p)
			}
		}
		if p, err := ParseRemoveApp(cmd); err == nil && (p.AppID == "" || strings.ContainsAny(p.AppID, " \n")) {
			t.Fatalf("accepted %+v", p)
		}
		if p, err := ParseSetPassword(cmd); err == nil && (len(p.Password) > MaxPassword || !utf8.ValidString(p.Password)) {
			t.Fatal("accepted a bad password")
		}
		if p, err := ParseMessage(cmd); err == nil {
			if len(p.Text) > MaxMessageText || strings.TrimSpace(p.Text) == "" {
				t.Fatalf("accepted text of %d bytes", len(p.Text))
			}
			if shown := DisplayText(p.Text); strings.ContainsAny(shown, "\x1b\x07\r\x00") || !utf8.ValidString(shown) {
				t.Fatalf("DisplayText left control characters: %q", shown)
			}
		}
		r := normalizeResult(wire.CommandResult{Status: typ, Message: id, Data: payload}, nil)
		switch r.Status {
		case ResultAcknowledged, ResultError, ResultNotNow:
		default:
			t.Fatalf("status %q", r.Status)
		}
		if len(r.Message) > command.MaxResultMessage || !utf8.ValidString(r.Message) || (len(r.Data) > 0 && !json.Valid(r.Data)) {
			t.Fatalf("result %+v", r)
		}
	})
}
