package mail_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/mail"
)

func TestParseTemplates(t *testing.T) {
	def := mail.DefaultTemplates()
	tests := []struct {
		name  string
		edit  func(tp *mail.Templates)
		field string // "" = valid
	}{
		{"fail/subject does not parse", func(tp *mail.Templates) { tp.Subject = "Activate {{.UserName" }, "subject"},
		{"fail/text does not parse", func(tp *mail.Templates) { tp.Text = "{{if .Password}}no end" }, "text"},
		{"fail/HTML does not parse", func(tp *mail.Templates) { tp.HTML = "<p>{{range .}}</p>" }, "html"},
		{"fail/unknown field", func(tp *mail.Templates) { tp.Text = "{{.Password}} {{.Pasword}}" }, "text"},
		{"fail/HTML calls an unknown function", func(tp *mail.Templates) { tp.HTML = "{{.Password}} {{shout .UserName}}" }, "html"},
		{"fail/subject of two lines", func(tp *mail.Templates) { tp.Subject = "Activate\n{{.Organisation}} device" }, "subject"},
		{"fail/empty subject", func(tp *mail.Templates) { tp.Subject = "{{if false}}x{{end}}" }, "subject"},
		{"fail/no subject template", func(tp *mail.Templates) { tp.Subject = "  " }, "subject"},
		{"fail/text without the password", func(tp *mail.Templates) { tp.Text = "Hello {{.UserName}}" }, "text"},
		{"fail/HTML without the password", func(tp *mail.Templates) { tp.HTML = "<p>Hello {{.UserName}}</p>" }, "html"},
		{"fail/template over its limit", func(tp *mail.Templates) { tp.Text = "{{.Password}}" + strings.Repeat("x", mail.MaxTemplate) }, "text"},
		{"ok/default", func(tp *mail.Templates) {}, ""},
		{"ok/text only", func(tp *mail.Templates) { tp.HTML = "" }, ""},
		{"ok/own wording", func(tp *mail.Templates) {
			tp.Subject = "Your {{.Organisation}} device password"
			tp.Text = "Password: {{.Password}}\n"
			tp.HTML = `<p>Password: <b>{{.Password}}</b></p>{{if .QRCode}}<img src="{{.QRCode}}">{{end}}`
		}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tp := def
			tc.edit(&tp)
			r, err := mail.ParseTemplates(tp)
			if tc.field == "" {
				if err != nil || r == nil {
					t.Fatalf("ParseTemplates: %v", err)
				}
				return
			}
			var e *errs.Error
			if !errors.As(err, &e) || e.Code != "invalid_mail_template" || e.Kind != errs.Invalid || e.Fields[tc.field] == "" {
				t.Fatalf("ParseTemplates: %v; want invalid_mail_template on %q", err, tc.field)
			}
			if !strings.HasPrefix(e.Message, tc.field+" template: ") {
				t.Fatalf("message %q does not name the template", e.Message)
			}
		})
	}
}

// TestActivationRejectsInjection: the user name and the email go into
// the To header, the organisation into the subject; a CR or LF in any of
// them is refused, not sent.
func TestActivationRejectsInjection(t *testing.T) {
	r := MustRenderer(t)
	tests := []struct {
		name  string
		edit  func(a *mail.Activation)
		field string
	}{
		{"fail/CRLF in To", func(a *mail.Activation) { a.To = "ada@example.com\r\nBcc: eve@example.net" }, "to"},
		{"fail/CRLF in UserName", func(a *mail.Activation) { a.UserName = "Ada\r\nBcc: eve@example.net" }, "user_name"},
		{"fail/LF in Organisation (subject)", func(a *mail.Activation) { a.Organisation = "Acme\nBcc: eve@example.net" }, "organisation"},
		{"fail/LF in Password", func(a *mail.Activation) { a.Password = "abc\ndef" }, "password"},
		{"fail/To is not an address", func(a *mail.Activation) { a.To = "ada" }, "to"},
		{"fail/no route to the server", func(a *mail.Activation) { a.Relay, a.ServerURL = "", "" }, "relay"},
		{"fail/server URL is not http(s)", func(a *mail.Activation) { a.ServerURL = "javascript:alert(1)" }, "server_url"},
		{"ok/valid", func(a *mail.Activation) {}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := activation()
			tc.edit(&a)
			m, err := r.Activation(a)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Activation: %v", err)
				}
				if m.To[0].Email != a.To || m.To[0].Name != a.UserName || len(m.Inline) != 1 {
					t.Fatalf("message %+v", m)
				}
				return
			}
			var e *errs.Error
			if !errors.As(err, &e) || e.Code != "invalid_activation_email" || e.Fields[tc.field] == "" || m != nil {
				t.Fatalf("Activation: %v; want invalid_activation_email on %q", err, tc.field)
			}
		})
	}
}

// TestActivationEscapesScriptInHTML: a user name is user-controlled (a
// directory sync brings it in); in the HTML part it is text, never markup
// and never template syntax.
func TestActivationEscapesScriptInHTML(t *testing.T) {
	a := activation()
	a.UserName = `<script>alert("x")</script>{{.Password}}`
	a.Organisation = `<img src=x onerror=alert(1)>`
	m := MustRender(t, a)
	for _, bad := range []string{"<script>", "<img src=x"} {
		if strings.Contains(m.HTML, bad) {
			t.Fatalf("HTML holds %q:\n%s", bad, m.HTML)
		}
	}
	for _, want := range []string{"&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;{{.Password}}", "&lt;img src=x onerror=alert(1)&gt;"} {
		if !strings.Contains(m.HTML, want) {
			t.Fatalf("HTML lacks the escaped %q:\n%s", want, m.HTML)
		}
	}
	if !strings.Contains(m.Text, a.UserName) {
		t.Fatalf("text part lacks the user name as written:\n%s", m.Text)
	}
	if !strings.Contains(m.HTML, `src="cid:`+m.Inline[0].ContentID+`"`) {
		t.Fatalf("the QR image's cid: URL was not kept as is:\n%s", m.HTML)
	}
}

// TestActivationOptions: the QR code is optional; a zero expiry says
// nothing about it.
func TestActivationOptions(t *testing.T) {
	a := activation()
	a.NoQR = true
	a.ExpiresAt = time.Time{}
	m := MustRender(t, a)
	if len(m.Inline) != 0 || strings.Contains(m.HTML, "<img") || strings.Contains(m.Text, "QR") {
		t.Fatalf("NoQR message has a QR code: %d inline\n%s", len(m.Inline), m.HTML)
	}
	if strings.Contains(m.Text, "expires") || strings.Contains(m.HTML, "expires") {
		t.Fatalf("a zero expiry is shown:\n%s", m.Text)
	}
	if m.Subject != "Activate your device for Analytical Engines" {
		t.Fatalf("Subject %q", m.Subject)
	}
}
