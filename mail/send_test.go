package mail_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/mail"
	"github.com/custos-uem/custos/mail/mailtest"
)

// TestSendActivationEmail sends the activation email through the sink
// with STARTTLS and AUTH PLAIN, and reads it back as a mail client would:
// headers, the text part with the password and the instructions, the HTML
// part showing an image/png by cid:, and that PNG's QR code decoding back
// to the payload.
func TestSendActivationEmail(t *testing.T) {
	sink := mailtest.Start(t, mailtest.Options{})
	a := activation()
	a.UserName = "Ada Lovelace-Byron"
	a.Organisation = "Société Générale d'Analyse" // non-ASCII: RFC 2047 subject
	if err := MustSender(t, sink.Config()).Send(context.Background(), MustRender(t, a)); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := sink.WaitMessage(t, 5*time.Second)
	if !got.TLS || got.User != mailtest.DefaultUsername {
		t.Fatalf("received over TLS=%v as %q; want TLS and %q", got.TLS, got.User, mailtest.DefaultUsername)
	}
	if got.From != "custos@example.com" || len(got.To) != 1 || got.To[0] != a.To {
		t.Fatalf("envelope %q → %q; want custos@example.com → %q", got.From, got.To, a.To)
	}
	for i, line := range strings.Split(string(got.Data), "\r\n") {
		// RFC 5322 §2.1.1: 998 octets a line; all 7-bit on the wire.
		if len(line) > 998 {
			t.Fatalf("line %d has %d octets", i, len(line))
		}
		for _, c := range []byte(line) {
			if c >= 0x80 {
				t.Fatalf("line %d holds 8-bit data: %q", i, line)
			}
		}
	}
	p := MustParse(t, got.Data)

	if want := "Activate your device for Société Générale d'Analyse"; p.Subject != want {
		t.Fatalf("Subject = %q; want %q", p.Subject, want)
	}
	if raw := p.Header.Get("Subject"); !strings.Contains(raw, "=?utf-8?q?") {
		t.Fatalf("raw Subject %q: want an RFC 2047 encoded-word", raw)
	}
	if len(p.To) != 1 || p.To[0].Address != a.To || p.To[0].Name != a.UserName {
		t.Fatalf("To = %v; want %s <%s>", p.To, a.UserName, a.To)
	}
	if d, err := p.Header.Date(); err != nil || !d.Equal(t0) {
		t.Fatalf("Date = %v, %v; want %v", d, err, t0)
	}
	if id := p.Header.Get("Message-ID"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@example.com>") {
		t.Fatalf("Message-ID = %q; want <...@example.com>", id)
	}
	if v := p.Header.Get("MIME-Version"); v != "1.0" {
		t.Fatalf("MIME-Version = %q", v)
	}
	if want := []string{"multipart/alternative", "text/plain", "multipart/related", "text/html", "image/png"}; fmt.Sprint(p.Types) != fmt.Sprint(want) {
		t.Fatalf("MIME tree %v; want %v", p.Types, want)
	}
	for _, want := range []string{a.Password, a.To, "Install the management app", "Analytical", "2026-03-21 09:26 UTC"} {
		if want == "Analytical" {
			want = "Société Générale d'Analyse"
		}
		if !strings.Contains(p.Text, want) {
			t.Fatalf("text part lacks %q:\n%s", want, p.Text)
		}
	}
	if !strings.Contains(p.HTML, a.Password) {
		t.Fatalf("HTML part lacks the password:\n%s", p.HTML)
	}
	if len(p.Images) != 1 {
		t.Fatalf("%d images; want 1", len(p.Images))
	}
	for cid, img := range p.Images {
		if !strings.Contains(p.HTML, `src="cid:`+cid+`"`) {
			t.Fatalf("HTML does not show cid:%s:\n%s", cid, p.HTML)
		}
		if img.Type != "image/png" {
			t.Fatalf("image type %q", img.Type)
		}
		if _, err := png.Decode(bytes.NewReader(img.Data)); err != nil {
			t.Fatalf("the image is not a PNG: %v", err)
		}
		want, err := mail.QRPayload(a)
		if err != nil {
			t.Fatal(err)
		}
		if got := MustDecodeQR(t, img.Data); got != string(want) {
			t.Fatalf("QR code reads %q; want %q", got, want)
		}
		var q map[string]any
		if err := json.Unmarshal(want, &q); err != nil || q["password"] != a.Password || q["email"] != a.To || q["relay"] != a.Relay {
			t.Fatalf("payload %s: %v", want, err)
		}
	}
}

// TestSendFailures: each way a mail server refuses or fails gives its
// error, with nothing sent where nothing may be, and never the SMTP
// password in the error.
func TestSendFailures(t *testing.T) {
	msg := func(t *testing.T) *mail.Message { return MustRender(t, activation()) }
	tests := []struct {
		name     string
		opts     mailtest.Options
		cfg      func(c *mail.Config)
		want     string
		kind     errs.Kind
		contains string
		// sent: whether the sink may have got the message; authed: whether
		// it may have seen the credentials.
		authed bool
	}{
		{name: "fail/server without STARTTLS", opts: mailtest.Options{NoSTARTTLS: true},
			want: "mail_tls_required", kind: errs.Unavailable, contains: "STARTTLS"},
		{name: "fail/wrong AUTH password", cfg: func(c *mail.Config) { c.Password = "wrong-Pa55word-xyz" },
			want: "mail_refused", kind: errs.Invalid, contains: "535", authed: true},
		{name: "fail/RCPT refused 550", opts: mailtest.Options{RefuseRcpt: true},
			want: "mail_refused", kind: errs.Invalid, contains: "RCPT TO: 550 5.1.1 <ada@example.com>: Recipient address rejected: User unknown", authed: true},
		{name: "fail/RCPT greylisted 451", opts: mailtest.Options{TempFail: true},
			want: "mail_unavailable", kind: errs.Unavailable, contains: "451 4.7.1", authed: true},
		{name: "fail/untrusted certificate", cfg: func(c *mail.Config) { c.RootCAs = nil },
			want: "mail_unavailable", kind: errs.Unavailable, contains: "not trusted"},
		{name: "fail/implicit TLS to a STARTTLS port", cfg: func(c *mail.Config) { c.TLS = mail.ImplicitTLS },
			want: "mail_unavailable", kind: errs.Unavailable},
		{name: "fail/message over MaxMessageSize", cfg: func(c *mail.Config) { c.MaxMessageSize = 1000 },
			want: "mail_too_large", kind: errs.TooLarge},
		{name: "ok/STARTTLS", authed: true},
		{name: "ok/implicit TLS", opts: mailtest.Options{ImplicitTLS: true}, authed: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink := mailtest.Start(t, tc.opts)
			cfg := sink.Config()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			err := MustSender(t, cfg).Send(context.Background(), msg(t))
			if code(err) != tc.want {
				t.Fatalf("Send: %v; want code %q", err, tc.want)
			}
			if n := sink.AuthAttempts(); (n > 0) != tc.authed {
				t.Fatalf("%d AUTH attempts; want some: %v", n, tc.authed)
			}
			if tc.want == "" {
				if n := len(sink.Messages()); n != 1 {
					t.Fatalf("%d messages received; want 1", n)
				}
				return
			}
			if n := len(sink.Messages()); n != 0 {
				t.Fatalf("%d messages received; want none", n)
			}
			if errs.KindOf(err) != tc.kind {
				t.Fatalf("kind %s; want %s", errs.KindOf(err), tc.kind)
			}
			_, public, _ := errs.Public(err)
			if !strings.Contains(public, tc.contains) {
				t.Fatalf("safe message %q; want it to contain %q", public, tc.contains)
			}
			for _, s := range []string{err.Error(), public, fmt.Sprintf("%+v", err)} {
				if strings.Contains(s, cfg.Password) || strings.Contains(s, mailtest.DefaultPassword) {
					t.Fatalf("the error shows the SMTP password: %s", s)
				}
			}
		})
	}
}

// TestSendServerDown: nothing listens on the port.
func TestSendServerDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cfg := mail.Config{Host: "127.0.0.1", Port: port, From: "custos@example.com", Username: "u", Password: "p-secret-123", Timeout: 5 * time.Second}
	err = MustSender(t, cfg).Send(context.Background(), MustRender(t, activation()))
	if code(err) != "mail_unavailable" || !errs.Is(err, errs.Unavailable) {
		t.Fatalf("Send: %v; want mail_unavailable", err)
	}
	if strings.Contains(err.Error(), "p-secret-123") {
		t.Fatalf("the error shows the password: %v", err)
	}
}

// TestSendSilentServerTimesOut: a server that takes the connection and
// never greets is given up at the context's deadline, not the library's
// five-minute command timeout.
func TestSendSilentServerTimesOut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	t.Cleanup(func() {
		select {
		case c := <-accepted:
			c.Close()
		default:
		}
	})
	cfg := mail.Config{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, From: "custos@example.com", RootCAs: nil}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = MustSender(t, cfg).Send(ctx, MustRender(t, activation()))
	if code(err) != "mail_unavailable" || !strings.Contains(err.Error(), "in time") {
		t.Fatalf("Send: %v; want mail_unavailable, not in time", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Send took %s after a 300ms deadline", d)
	}
}

// TestSendRejectsHeaderInjection: a CR or LF in an address, a display
// name or the subject would end the header and start the attacker's
// (Bcc:, a second body). The message is refused before any connection.
func TestSendRejectsHeaderInjection(t *testing.T) {
	sink := mailtest.Start(t, mailtest.Options{})
	s := MustSender(t, sink.Config())
	base := func() *mail.Message {
		return &mail.Message{To: []mail.Address{{Name: "Ada", Email: "ada@example.com"}}, Subject: "Activate", Text: "password: x"}
	}
	tests := []struct {
		name  string
		edit  func(m *mail.Message)
		field string
	}{
		{"fail/CRLF in To address", func(m *mail.Message) { m.To[0].Email = "ada@example.com\r\nBcc: eve@example.net" }, "to"},
		{"fail/LF in To display name", func(m *mail.Message) { m.To[0].Name = "Ada\nBcc: eve@example.net" }, "to"},
		{"fail/CR in subject", func(m *mail.Message) { m.Subject = "Activate\rBcc: eve@example.net" }, "subject"},
		{"fail/CRLF in subject", func(m *mail.Message) { m.Subject = "Activate\r\n\r\nfake body" }, "subject"},
		{"fail/CRLF in From display name", func(m *mail.Message) {
			m.From = mail.Address{Name: "Custos\r\nReply-To: eve@example.net", Email: "custos@example.com"}
		}, "from"},
		{"fail/NUL in subject", func(m *mail.Message) { m.Subject = "Activate\x00" }, "subject"},
		{"ok/plain message", func(m *mail.Message) {}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := sink.Sessions()
			m := base()
			tc.edit(m)
			err := s.Send(context.Background(), m)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Send: %v", err)
				}
				sink.WaitMessage(t, 5*time.Second)
				return
			}
			var e *errs.Error
			if code(err) != "invalid_mail_message" || !errs.Is(err, errs.Invalid) || !errors.As(err, &e) || e.Fields[tc.field] == "" {
				t.Fatalf("Send: %v; want invalid_mail_message on %q", err, tc.field)
			}
			if sink.Sessions() != before {
				t.Fatal("the sender connected for a message it refuses")
			}
		})
	}
}
