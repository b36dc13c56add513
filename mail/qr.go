package mail

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/url"

	qrcode "github.com/yeqown/go-qrcode/v2"

	"github.com/custos-uem/custos/errs"
)

// QRPayloadVersion is the "v" of the QR payload; a reader refuses a
// version it does not know.
const QRPayloadVersion = 1

// MaxQRPayload bounds the QR payload. A QR code of version 40 at error
// correction M holds 2,331 bytes, but a phone camera reads a dense code
// off a screen badly; 1 KiB keeps it near version 20 at worst.
const MaxQRPayload = 1024

// QR rendering: ISO/IEC 18004 §9.1 asks for a quiet zone of 4 modules
// around the symbol; 8 pixels per module prints and scans well.
const (
	QRQuietZone    = 4
	QRModulePixels = 8
)

// QRCode is the payload of the activation QR code: what the device needs
// to activate (the seed's "server route, their email and a one-time
// password"). The agent reads Relay (a discovery URL, agent.Discover) or
// Server, then activates as Email with Password.
type QRCode struct {
	V        int    `json:"v"`
	Relay    string `json:"relay,omitempty"`
	Server   string `json:"server,omitempty"`
	ServerID string `json:"server_id,omitempty"`
	Email    string `json:"email"`
	Password string `json:"password"`
}

// QRPayload returns the compact JSON the activation QR code carries:
// {"v":1,"relay":...,"server":...,"server_id":...,"email":...,
// "password":...}, empty routes left out. The self-service portal shows
// the same code (QRPNG of the same payload).
func QRPayload(a Activation) ([]byte, error) {
	if err := a.validate(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	// No \u003c escapes: the payload is read by a device, not embedded
	// in HTML, and every byte makes the code denser.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(QRCode{V: QRPayloadVersion, Relay: a.Relay, Server: a.ServerURL, ServerID: a.ServerID, Email: a.To, Password: a.Password}); err != nil {
		return nil, fmt.Errorf("mail: QR payload: %w", err)
	}
	out := bytes.TrimRight(b.Bytes(), "\n")
	if len(out) > MaxQRPayload {
		return nil, errs.E(errs.TooLarge, "qr_payload_too_large", fmt.Sprintf("the QR code would carry %d bytes, over the limit of %d", len(out), MaxQRPayload))
	}
	return out, nil
}

// ParseQRPayload reads a payload made by QRPayload (what a device does
// after scanning).
func ParseQRPayload(b []byte) (*QRCode, error) {
	if len(b) > MaxQRPayload {
		return nil, errs.E(errs.TooLarge, "qr_payload_too_large", "the QR payload is over its limit")
	}
	var q QRCode
	if err := json.Unmarshal(b, &q); err != nil {
		return nil, errs.Wrap(errs.Invalid, "invalid_qr_payload", "the QR code is not an activation code", err)
	}
	if q.V != QRPayloadVersion {
		return nil, errs.E(errs.Invalid, "invalid_qr_payload", fmt.Sprintf("the QR code has version %d; this reader knows %d", q.V, QRPayloadVersion))
	}
	if q.Email == "" || q.Password == "" || q.Relay == "" && q.Server == "" {
		return nil, errs.E(errs.Invalid, "invalid_qr_payload", "the QR code lacks an email, a password or a route to the server")
	}
	return &q, nil
}

// QRPNG renders payload as a QR code (byte mode, error correction M) in
// a black-on-white PNG with a quiet zone of QRQuietZone modules and
// QRModulePixels pixels per module.
func QRPNG(payload []byte) ([]byte, error) {
	if len(payload) == 0 || len(payload) > MaxQRPayload {
		return nil, errs.E(errs.Invalid, "invalid_qr_payload", fmt.Sprintf("a QR payload has 1 to %d bytes", MaxQRPayload))
	}
	qr, err := qrcode.NewWith(payload,
		qrcode.WithEncodingMode(qrcode.EncModeByte),
		qrcode.WithErrorCorrectionLevel(qrcode.ErrorCorrectionMedium))
	if err != nil {
		return nil, fmt.Errorf("mail: QR code: %w", err)
	}
	w := &pngWriter{}
	if err := qr.Save(w); err != nil {
		return nil, fmt.Errorf("mail: QR code: %w", err)
	}
	return w.out, nil
}

// pngWriter is a qrcode.Writer that paints the matrix into a two-colour
// PNG. The library's own image writer is a separate module that brings
// a 2D graphics stack; a bitmap needs none of it.
type pngWriter struct{ out []byte }

func (p *pngWriter) Write(mat qrcode.Matrix) error {
	bm := mat.Bitmap() // [y][x], true = dark
	n := len(bm)
	side := (n + 2*QRQuietZone) * QRModulePixels
	img := image.NewPaletted(image.Rect(0, 0, side, side), color.Palette{color.White, color.Black})
	for y, row := range bm {
		for x, dark := range row {
			if !dark {
				continue
			}
			x0, y0 := (x+QRQuietZone)*QRModulePixels, (y+QRQuietZone)*QRModulePixels
			for dy := 0; dy < QRModulePixels; dy++ {
				off := img.PixOffset(x0, y0+dy)
				for dx := 0; dx < QRModulePixels; dx++ {
					img.Pix[off+dx] = 1
				}
			}
		}
	}
	var b bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.DefaultCompression}).Encode(&b, img); err != nil {
		return err
	}
	p.out = b.Bytes()
	return nil
}

func (p *pngWriter) Close() error { return nil }

// validURL accepts an absolute http(s) URL with a host and no
// credentials.
func validURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && u.User == nil && !hasControl(s)
}
