package mail_test

import (
	"bytes"
	"encoding/json"
	"image/color"
	"image/png"
	"strings"
	"testing"

	"github.com/custos-uem/custos/mail"
)

func TestQRPayload(t *testing.T) {
	tests := []struct {
		name string
		edit func(a *mail.Activation)
		want string // code; "" = valid
	}{
		{"fail/no password", func(a *mail.Activation) { a.Password = "" }, "invalid_activation_email"},
		{"fail/no route to the server", func(a *mail.Activation) { a.Relay, a.ServerURL = "", "" }, "invalid_activation_email"},
		{"fail/relay is not a URL", func(a *mail.Activation) { a.Relay = "relay.example.net:3100" }, "invalid_activation_email"},
		{"fail/relay with credentials", func(a *mail.Activation) { a.Relay = "https://u:p@relay.example.net" }, "invalid_activation_email"},
		{"fail/payload over its limit", func(a *mail.Activation) { a.Password = strings.Repeat("x", 500); a.ServerID = strings.Repeat("s", 500) }, "qr_payload_too_large"},
		{"ok/relay only", func(a *mail.Activation) { a.ServerURL = "" }, ""},
		{"ok/everything", func(a *mail.Activation) {}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := activation()
			tc.edit(&a)
			b, err := mail.QRPayload(a)
			if code(err) != tc.want {
				t.Fatalf("QRPayload: %v; want %q", err, tc.want)
			}
			if tc.want != "" {
				return
			}
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			if m["v"] != float64(1) || m["email"] != a.To || m["password"] != a.Password || m["relay"] != a.Relay || m["server_id"] != a.ServerID {
				t.Fatalf("payload %s", b)
			}
			if _, ok := m["server"]; ok != (a.ServerURL != "") {
				t.Fatalf("payload %s: server present %v; want %v", b, ok, a.ServerURL != "")
			}
			q, err := mail.ParseQRPayload(b)
			if err != nil || q.Password != a.Password || q.Email != a.To || q.Relay != a.Relay || q.Server != a.ServerURL {
				t.Fatalf("ParseQRPayload(%s) = %+v, %v", b, q, err)
			}
		})
	}
	b, _ := mail.QRPayload(activation())
	if want := `{"v":1,"relay":"https://relay.example.net:3100","server":"https://s-8f3a","server_id":"s-8f3a","email":"ada@example.com","password":"K7QF-2M9X-VD4R"}`; string(b) != want {
		t.Fatalf("payload\n%s\nwant\n%s", b, want)
	}
}

func TestParseQRPayloadRefuses(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"fail/not JSON", "hello"},
		{"fail/unknown version", `{"v":2,"relay":"https://r","email":"a@b.c","password":"x"}`},
		{"fail/no password", `{"v":1,"relay":"https://r","email":"a@b.c"}`},
		{"fail/no route", `{"v":1,"email":"a@b.c","password":"x"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := mail.ParseQRPayload([]byte(tc.in)); code(err) != "invalid_qr_payload" {
				t.Fatalf("ParseQRPayload: %v; want invalid_qr_payload", err)
			}
		})
	}
}

// TestQRPNG checks the picture: a square PNG of whole modules with its
// quiet zone (ISO/IEC 18004 §9.1) and the three finder patterns, and
// that a decoder nobody here wrote (zbarimg) reads the payload back.
func TestQRPNG(t *testing.T) {
	if _, err := mail.QRPNG(nil); code(err) != "invalid_qr_payload" {
		t.Fatalf("QRPNG(nil): %v; want invalid_qr_payload", err)
	}
	payload, err := mail.QRPayload(activation())
	if err != nil {
		t.Fatal(err)
	}
	b, err := mail.QRPNG(payload)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	side := img.Bounds().Dx()
	if img.Bounds().Dy() != side || side%mail.QRModulePixels != 0 {
		t.Fatalf("image %v: want a square of whole modules", img.Bounds())
	}
	n := side/mail.QRModulePixels - 2*mail.QRQuietZone // modules per side
	if (n-21)%4 != 0 || n < 21 || n > 177 {
		t.Fatalf("%d modules a side: not a QR version (21 + 4k)", n)
	}
	dark := func(mx, my int) bool { // module (mx, my), quiet zone excluded
		r, _, _, _ := img.At((mx+mail.QRQuietZone)*mail.QRModulePixels+mail.QRModulePixels/2, (my+mail.QRQuietZone)*mail.QRModulePixels+mail.QRModulePixels/2).RGBA()
		return r < 0x8000
	}
	for y := 0; y < side; y++ {
		for x := 0; x < side; x++ {
			in := x >= mail.QRQuietZone*mail.QRModulePixels && x < side-mail.QRQuietZone*mail.QRModulePixels &&
				y >= mail.QRQuietZone*mail.QRModulePixels && y < side-mail.QRQuietZone*mail.QRModulePixels
			if !in && color.GrayModel.Convert(img.At(x, y)).(color.Gray).Y != 0xff {
				t.Fatalf("pixel (%d,%d) in the quiet zone is not white", x, y)
			}
		}
	}
	// A finder pattern: a dark 7×7 ring, a light ring, a dark 3×3 core.
	finder := func(ox, oy int) bool {
		for y := 0; y < 7; y++ {
			for x := 0; x < 7; x++ {
				ring := x == 0 || y == 0 || x == 6 || y == 6
				core := x >= 2 && x <= 4 && y >= 2 && y <= 4
				if dark(ox+x, oy+y) != (ring || core) {
					return false
				}
			}
		}
		return true
	}
	if !finder(0, 0) || !finder(n-7, 0) || !finder(0, n-7) || finder(n-7, n-7) {
		t.Fatal("finder patterns are not at three corners (top-left, top-right, bottom-left)")
	}
	if got := MustDecodeQR(t, b); got != string(payload) {
		t.Fatalf("zbarimg reads %q; want %q", got, payload)
	}
}
