package mail_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	netmail "net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/mail"
)

// t0 is the tests' clock.
var t0 = time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)

// activation is a valid activation for ada.
func activation() mail.Activation {
	return mail.Activation{
		To: "ada@example.com", UserName: "Ada Lovelace", Password: "K7QF-2M9X-VD4R",
		ServerID: "s-8f3a", Relay: "https://relay.example.net:3100", ServerURL: "https://s-8f3a",
		ExpiresAt: t0.Add(7 * 24 * time.Hour), Organisation: "Analytical Engines",
	}
}

// MustRenderer parses the default templates.
func MustRenderer(t testing.TB) *mail.Renderer {
	t.Helper()
	r, err := mail.ParseTemplates(mail.DefaultTemplates())
	if err != nil {
		t.Fatalf("ParseTemplates(default): %v", err)
	}
	return r
}

// MustRender renders a with the default templates.
func MustRender(t testing.TB, a mail.Activation) *mail.Message {
	t.Helper()
	m, err := MustRenderer(t).Activation(a)
	if err != nil {
		t.Fatalf("Activation: %v", err)
	}
	return m
}

// MustSender builds a Sender for cfg with the tests' clock.
func MustSender(t testing.TB, cfg mail.Config) *mail.Sender {
	t.Helper()
	s, err := mail.NewSender(cfg)
	if err != nil {
		t.Fatalf("NewSender(%v): %v", cfg, err)
	}
	s.Now = func() time.Time { return t0 }
	return s
}

// code returns the errs code of err ("" for nil).
func code(err error) string {
	if err == nil {
		return ""
	}
	var e *errs.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return "not an *errs.Error: " + err.Error()
}

// parsed is a received activation email taken apart as a mail client
// would.
type parsed struct {
	Header  netmail.Header
	Subject string
	To      []*netmail.Address
	Text    string
	HTML    string
	// Images maps a Content-ID (without brackets) to its media type and
	// decoded bytes.
	Images map[string]image
	// Types lists the media types of the MIME tree, depth first.
	Types []string
}

type image struct {
	Type string
	Data []byte
}

// MustParse reads raw with net/mail and mime/multipart.
func MustParse(t testing.TB, raw []byte) *parsed {
	t.Helper()
	msg, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("net/mail: %v\n%s", err, raw)
	}
	p := &parsed{Header: msg.Header, Images: map[string]image{}}
	dec := new(mime.WordDecoder)
	if p.Subject, err = dec.DecodeHeader(msg.Header.Get("Subject")); err != nil {
		t.Fatalf("Subject: %v", err)
	}
	if p.To, err = msg.Header.AddressList("To"); err != nil {
		t.Fatalf("To: %v", err)
	}
	p.walk(t, msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), "", msg.Body)
	return p
}

func (p *parsed) walk(t testing.TB, ctype, cte, cid string, body io.Reader) {
	t.Helper()
	mt, params, err := mime.ParseMediaType(ctype)
	if err != nil {
		t.Fatalf("Content-Type %q: %v", ctype, err)
	}
	p.Types = append(p.Types, mt)
	if strings.HasPrefix(mt, "multipart/") {
		if params["boundary"] == "" {
			t.Fatalf("%s without a boundary", mt)
		}
		mr := multipart.NewReader(body, params["boundary"])
		for {
			part, err := mr.NextRawPart() // raw: decode the transfer encoding here
			if err == io.EOF {
				return
			}
			if err != nil {
				t.Fatalf("%s: %v", mt, err)
			}
			p.walk(t, part.Header.Get("Content-Type"), part.Header.Get("Content-Transfer-Encoding"),
				strings.Trim(part.Header.Get("Content-Id"), "<>"), part)
		}
	}
	var r io.Reader
	switch strings.ToLower(cte) {
	case "quoted-printable":
		r = quotedprintable.NewReader(body)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, body) // skips CR and LF
	default:
		t.Fatalf("%s: Content-Transfer-Encoding %q; want quoted-printable or base64", mt, cte)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%s body: %v", mt, err)
	}
	switch {
	case mt == "text/plain":
		p.Text = string(b)
	case mt == "text/html":
		p.HTML = string(b)
	default:
		p.Images[cid] = image{Type: mt, Data: b}
	}
}

// need returns the path of a test peer program; a missing one fails the
// test with the package that installs it (.ci/run does), never skips it,
// like the other real peers of the project's tests.
func need(t testing.TB, path, pkg string) string {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s is missing: install %s (apt-get install -y %s) or run .ci/run", path, pkg, pkg)
	}
	return path
}

// zbarimg is the QR decoder of the Debian package zbar-tools: a decoder
// nobody here wrote reads the code back.
const zbarimg = "/usr/bin/zbarimg"

// MustDecodeQR decodes the QR code in a PNG with zbarimg.
func MustDecodeQR(t testing.TB, png []byte) string {
	t.Helper()
	need(t, zbarimg, "zbar-tools")
	f := filepath.Join(t.TempDir(), "qr.png")
	if err := os.WriteFile(f, png, 0o600); err != nil {
		t.Fatal(err)
	}
	// --raw: the bytes as encoded, no character set conversion.
	out, err := exec.Command(zbarimg, "--quiet", "--raw", f).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("zbarimg: %v: %s", err, ee.Stderr)
		}
		t.Fatalf("zbarimg: %v", err)
	}
	// zbarimg ends each symbol it prints with a newline.
	return strings.TrimSuffix(string(out), "\n")
}
