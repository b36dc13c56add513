package apple

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/micromdm/nanomdm/mdm"

	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/policy"
)

func read(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeCheckinExamples(t *testing.T) {
	const udid = "00008110-000A1234B0C1801E"
	for _, name := range []string{"authenticate.plist", "token_update.plist", "checkout.plist"} {
		b := read(t, name)
		if err := CheckDepth(b, MaxDepth); err != nil {
			t.Fatalf("%s: CheckDepth: %v", name, err)
		}
		msg, err := mdm.DecodeCheckin(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		switch m := msg.(type) {
		case *mdm.Authenticate:
			if m.UDID != udid || m.SerialNumber != "F2LXJ0N7Q1GC" || !strings.HasPrefix(m.Topic, "com.apple.mgmt.External.") {
				t.Fatalf("Authenticate = %+v", m)
			}
		case *mdm.TokenUpdate:
			if m.UDID != udid || len(m.Token) != 32 || m.PushMagic == "" || len(m.UnlockToken) == 0 {
				t.Fatalf("TokenUpdate = %+v", m)
			}
		case *mdm.CheckOut:
			if m.UDID != udid {
				t.Fatalf("CheckOut = %+v", m)
			}
		default:
			t.Fatalf("%s decoded as %T", name, msg)
		}
	}
}

func TestDecodeReportExamples(t *testing.T) {
	for _, tc := range []struct {
		file, status string
		chain        int
	}{
		{"idle.plist", StatusIdle, 0},
		{"device_information_ack.plist", StatusAcknowledged, 0},
		{"error_chain.plist", StatusError, 2},
		{"notnow.plist", StatusNotNow, 0},
		{"installed_applications_ack.plist", StatusAcknowledged, 0},
		{"security_info_ack.plist", StatusAcknowledged, 0},
	} {
		b := read(t, tc.file)
		if err := CheckDepth(b, MaxDepth); err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		rep, err := DecodeReport(b)
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if rep.Status != tc.status || len(rep.ErrorChain) != tc.chain || rep.UDID != "00008110-000A1234B0C1801E" ||
			(tc.status != StatusIdle && rep.CommandUUID != "COMMAND-UUID") {
			t.Fatalf("%s: %+v", tc.file, rep)
		}
	}
	msg := errorMessage(mustReport(t, "error_chain.plist").ErrorChain, "")
	if msg != "MCProfileErrorDomain 4001: The profile “Wi-Fi” could not be installed.; MCMDMErrorDomain 12003: The payload is invalid." {
		t.Fatalf("error message %q", msg)
	}
	data := string(resultData(mustReport(t, "device_information_ack.plist").rest))
	if !strings.Contains(data, `"QueryResponses"`) || !strings.Contains(data, `"SerialNumber":"F2LXJ0N7Q1GC"`) || strings.Contains(data, `"Status"`) {
		t.Fatalf("result data %s", data)
	}
}

// TestDecodeReportRefusals: a body that is not a report, or whose common
// keys have the wrong types, is malformed (400), never half-read.
func TestDecodeReportRefusals(t *testing.T) {
	dict := func(inner string) []byte { return []byte("<plist><dict>" + inner + "</dict></plist>") }
	for _, tc := range []struct {
		name string
		in   []byte
		code string
	}{
		{"fail/not-a-dict", []byte("<plist><array/></plist>"), ErrMalformed.Code},
		{"fail/status-not-a-string", dict("<key>Status</key><integer>1</integer>"), ErrMalformed.Code},
		{"fail/udid-not-a-string", dict("<key>Status</key><string>Idle</string><key>UDID</key><true/>"), ErrMalformed.Code},
		{"fail/command-uuid-a-dict", dict("<key>Status</key><string>Acknowledged</string><key>CommandUUID</key><dict/>"), ErrMalformed.Code},
		{"fail/error-chain-not-an-array", dict("<key>Status</key><string>Error</string><key>ErrorChain</key><string>x</string>"), ErrMalformed.Code},
		{"fail/error-chain-item-not-a-dict", dict("<key>Status</key><string>Error</string><key>ErrorChain</key><array><string>x</string></array>"), ErrMalformed.Code},
		{"fail/error-code-a-string", dict("<key>Status</key><string>Error</string><key>ErrorChain</key><array><dict><key>ErrorCode</key><string>12</string></dict></array>"), ErrMalformed.Code},
		{"fail/error-domain-an-integer", dict("<key>Status</key><string>Error</string><key>ErrorChain</key><array><dict><key>ErrorDomain</key><integer>1</integer></dict></array>"), ErrMalformed.Code},
		{"fail/no-status", dict("<key>UDID</key><string>X</string>"), "invalid_report"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := DecodeReport(tc.in)
			var e *errs.Error
			if !errors.As(err, &e) || e.Code != tc.code || e.Kind != errs.Invalid {
				t.Fatalf("DecodeReport = %+v, %v; want %s", rep, err, tc.code)
			}
		})
	}
	t.Run("ok/rest-is-the-answer", func(t *testing.T) {
		rep, err := DecodeReport(dict("<key>Status</key><string>Error</string><key>UDID</key><string>U</string><key>RequestType</key><string>DeviceLock</string>" +
			"<key>ErrorChain</key><array><dict><key>ErrorCode</key><integer>-7</integer><key>ErrorDomain</key><string>D</string></dict></array>" +
			"<key>MessageResult</key><string>locked</string>"))
		if err != nil || rep.UDID != "U" || len(rep.ErrorChain) != 1 || rep.ErrorChain[0].ErrorCode != -7 || rep.ErrorChain[0].ErrorDomain != "D" {
			t.Fatalf("DecodeReport = %+v, %v", rep, err)
		}
		if d := string(resultData(rep.rest)); d != `{"MessageResult":"locked"}` {
			t.Fatalf("result data %s, want only the command's own key", d)
		}
	})
}

func mustReport(t *testing.T, name string) *report {
	t.Helper()
	r, err := DecodeReport(read(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCheckDepth(t *testing.T) {
	nest := func(n int) []byte {
		return []byte("<plist>" + strings.Repeat("<array>", n) + strings.Repeat("</array>", n) + "</plist>")
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"fail/too-deep", nest(MaxDepth), ErrTooDeep},
		{"fail/binary-plist", []byte("bplist00\xd1\x01\x02"), ErrMalformed},
		{"fail/empty", nil, ErrMalformed},
		{"fail/unclosed", []byte("<plist><dict>"), ErrMalformed},
		{"fail/entity-declaration", []byte(`<!DOCTYPE plist [<!ENTITY a "b">]><plist/>`), ErrMalformed},
		{"ok/at-the-limit", nest(MaxDepth - 1), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := CheckDepth(tc.in, MaxDepth); !errors.Is(err, tc.want) {
				t.Fatalf("CheckDepth = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestRawBody(t *testing.T) {
	for _, tc := range []struct{ name, in, err string }{
		{"fail/other-platform", `{"platform":"windows","body":{"RequestType":"X"}}`, "not apple"},
		{"fail/no-request-type", `{"platform":"apple","body":{"Queries":["A"]}}`, "RequestType"},
		{"fail/not-a-dict", `{"platform":"apple","body":["RequestType"]}`, "dict"},
		{"fail/null-value", `{"platform":"apple","body":{"RequestType":"X","Y":null}}`, "null"},
		{"fail/too-large", `{"platform":"apple","body":{"RequestType":"X","Y":"` + strings.Repeat("a", MaxRawCommand) + `"}}`, "at most"},
		{"ok/data-and-integers", `{"platform":"apple","body":{"RequestType":"InstallProfile","Payload":{"$data":"AAEC"},"N":3,"F":1.5}}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := RawBody([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("RawBody = %v, want an error with %q", err, tc.err)
				}
				return
			}
			if err != nil || !bytes.Equal(b["Payload"].([]byte), []byte{0, 1, 2}) || b["N"] != int64(3) || b["F"] != 1.5 {
				t.Fatalf("RawBody = %#v, %v", b, err)
			}
		})
	}
}

func TestRenderProfileNotApplicable(t *testing.T) {
	for _, it := range []policy.Item{
		{ID: "a", Kind: policy.AppConfig, Payload: map[string]any{}},
		{ID: "b", Kind: policy.VPN, Payload: map[string]any{"type": "wireguard", "server": "vpn.example.org"}},
		{ID: "c", Kind: policy.Certificate, Payload: map[string]any{"type": "user_pkcs12"}},
	} {
		if _, err := RenderProfile(DefaultProfilePrefix, it); !errors.Is(err, ErrNotApplicable) {
			t.Fatalf("%s: %v, want not applicable", it.Kind, err)
		}
	}
	b, err := RenderProfile(DefaultProfilePrefix, policy.Item{ID: "p", Name: "Passcode", Revision: 2, Kind: policy.ITPolicy,
		Payload: map[string]any{"password_required": true, "password_min_length": 8, "password_complexity": "complex", "camera_disabled": true, "screen_lock_timeout_seconds": 300}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"com.apple.mobiledevice.passwordpolicy", "<key>minLength</key>", "com.apple.applicationaccess", "<key>allowCamera</key>", DefaultProfilePrefix + ".p"} {
		if !strings.Contains(string(b), want) {
			t.Fatalf("profile lacks %q:\n%s", want, b)
		}
	}
}

// FuzzDecodeCheckin: whatever the bytes, the check-in parsing path
// (depth check, then decoding) never panics.
func FuzzDecodeCheckin(f *testing.F) {
	for _, name := range []string{"authenticate.plist", "token_update.plist", "checkout.plist"} {
		f.Add(read(f, name))
	}
	f.Add([]byte("<plist><dict><key>MessageType</key><string>Authenticate</string></dict></plist>"))
	f.Add([]byte("<plist><dict><key>MessageType</key><integer>1</integer></dict></plist>"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if CheckDepth(b, MaxDepth) != nil {
			return
		}
		_, _ = mdm.DecodeCheckin(b)
	})
}

// FuzzReport: the report parsing path (depth check, decoding, result data,
// error message) never panics, and what it keeps fits the queue's limits.
func FuzzReport(f *testing.F) {
	for _, name := range []string{"idle.plist", "device_information_ack.plist", "error_chain.plist", "notnow.plist", "installed_applications_ack.plist"} {
		f.Add(read(f, name))
	}
	f.Add([]byte("<plist><dict><key>Status</key><array/></dict></plist>"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if CheckDepth(b, MaxDepth) != nil {
			return
		}
		rep, err := DecodeReport(b)
		if err != nil {
			return
		}
		if msg := errorMessage(rep.ErrorChain, "x"); len(msg) > 1024 {
			t.Fatalf("message of %d bytes", len(msg))
		}
		if d := resultData(rep.rest); len(d) > 1<<20 {
			t.Fatalf("data of %d bytes", len(d))
		}
	})
}
