package mail

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"fmt"
	htemplate "html/template"
	"strings"
	ttemplate "text/template"
	"time"
	"unicode/utf8"

	"github.com/custos-uem/custos/errs"
)

// Activation is what the activation email tells a user: seed step 1 of
// every activation flow ("send an email with activation instructions"),
// with the password activation.Service.SetPassword just generated.
type Activation struct {
	// To is the user's email address; the device activates as it.
	To string
	// UserName is the user's display name, in the To header and the
	// greeting.
	UserName string
	// Password is the one-time activation password, in clear.
	Password string
	// ServerID names the server at the relay (relay.LookupResponse).
	ServerID string
	// Relay is the discovery URL the device asks for its server
	// (agent.Discover), http(s)://host:port.
	Relay string
	// ServerURL is the server's address when the device reaches it
	// directly.
	ServerURL string
	// ExpiresAt is when the password expires; zero says nothing.
	ExpiresAt time.Time
	// Organisation names the organisation in the subject and the text;
	// empty says "your administrator".
	Organisation string
	// NoQR leaves the QR code out (the seed's "optionally, a QR Code").
	NoQR bool
}

// MaxField bounds each text field of an Activation, in bytes.
const MaxField = 512

// invalidActivation is the error of an Activation that cannot be sent.
func invalidActivation(field, msg string) error {
	e := errs.E(errs.Invalid, "invalid_activation_email", msg)
	e.Fields = map[string]string{field: msg}
	return e
}

// validate checks a: every field one line (the user name and the email
// go into the To header: a CR or LF there would inject headers), a valid
// address, a password, a route to the server.
func (a Activation) validate() error {
	for _, f := range []struct{ name, v string }{
		{"to", a.To}, {"user_name", a.UserName}, {"password", a.Password}, {"server_id", a.ServerID},
		{"relay", a.Relay}, {"server_url", a.ServerURL}, {"organisation", a.Organisation},
	} {
		if hasControl(f.v) {
			return invalidActivation(f.name, "may not hold a line break or a control character")
		}
		if len(f.v) > MaxField || !utf8.ValidString(f.v) {
			return invalidActivation(f.name, fmt.Sprintf("at most %d bytes of UTF-8", MaxField))
		}
	}
	if len(a.UserName) > MaxName {
		return invalidActivation("user_name", fmt.Sprintf("at most %d bytes", MaxName))
	}
	if err := (Address{Name: a.UserName, Email: a.To}).validate("to"); err != nil {
		return invalidActivation("to", "not an email address")
	}
	if a.Password == "" {
		return invalidActivation("password", "the activation password is required")
	}
	if a.Relay == "" && a.ServerURL == "" {
		return invalidActivation("relay", "the relay or the server URL is required: the device must find its server")
	}
	if a.Relay != "" && !validURL(a.Relay) {
		return invalidActivation("relay", "the relay is an http(s)://host:port URL")
	}
	if a.ServerURL != "" && !validURL(a.ServerURL) {
		return invalidActivation("server_url", "the server URL is an http(s) URL")
	}
	return nil
}

// Templates are the editable templates of the activation email. Subject
// and Text are text/template; HTML is html/template, so every value is
// escaped for where it lands. Each sees a TemplateData.
type Templates struct {
	Subject string
	Text    string
	// HTML empty sends a text-only message (and no QR code).
	HTML string
}

// TemplateData is what the activation templates see.
type TemplateData struct {
	Email        string
	UserName     string
	Password     string
	ServerID     string
	Relay        string
	ServerURL    string
	Organisation string
	ExpiresAt    time.Time
	// Expires is ExpiresAt in UTC, "2006-01-02 15:04 UTC"; empty when
	// ExpiresAt is zero.
	Expires string
	// QRCode is the "cid:" URL of the inline QR image (RFC 2392), for
	// <img src="{{.QRCode}}">; empty without one. It is a trusted URL:
	// html/template would otherwise replace a cid: URL, a scheme it does
	// not know, with "#ZgotmplZ".
	QRCode htemplate.URL
}

//go:embed templates/activation_subject.tmpl
var defaultSubject string

//go:embed templates/activation_text.tmpl
var defaultText string

//go:embed templates/activation_html.tmpl
var defaultHTML string

// DefaultTemplates returns the built-in activation templates, a starting
// point for an administrator's own.
func DefaultTemplates() Templates {
	return Templates{Subject: defaultSubject, Text: defaultText, HTML: defaultHTML}
}

// MaxTemplate bounds each template's source.
const MaxTemplate = 64 << 10

// Renderer renders activation emails from parsed templates. It is safe
// for concurrent use.
type Renderer struct {
	subject, text *ttemplate.Template
	html          *htemplate.Template // nil: text only
}

// sample is the Activation each template is tried against when parsed:
// hostile values where users control them, so that a template that
// breaks on them breaks here, in front of the administrator.
var sample = Activation{
	To:           "ada@example.com",
	UserName:     `Ada "<script>alert(1)</script>" {{.Password}}`,
	Password:     "SAMPLE-7q2x-k9m4",
	ServerID:     "s-sample",
	Relay:        "https://relay.example.com:3101",
	ServerURL:    "https://s-sample",
	ExpiresAt:    time.Date(2030, 1, 2, 3, 4, 0, 0, time.UTC),
	Organisation: "Example & Co <Ltd>",
}

// invalidTemplate is the error of a template that cannot be used; the
// parser's or executor's message (bounded) tells where it broke.
func invalidTemplate(field string, err error) error {
	msg := field + " template: " + boundReply(err.Error())
	e := errs.Wrap(errs.Invalid, "invalid_mail_template", msg, err)
	e.Fields = map[string]string{field: boundReply(err.Error())}
	return e
}

// ParseTemplates parses t and tries it on a sample activation: a template
// that does not parse, fails to execute, renders a subject that is empty
// or not one line, or leaves the password out, is refused with an
// errs.Invalid "invalid_mail_template" error naming it.
func ParseTemplates(t Templates) (*Renderer, error) {
	for _, f := range []struct{ name, v string }{{"subject", t.Subject}, {"text", t.Text}, {"html", t.HTML}} {
		if len(f.v) > MaxTemplate {
			return nil, invalidTemplate(f.name, fmt.Errorf("over the limit of %d bytes", MaxTemplate))
		}
	}
	if strings.TrimSpace(t.Subject) == "" {
		return nil, invalidTemplate("subject", fmt.Errorf("the subject template is empty"))
	}
	if strings.TrimSpace(t.Text) == "" {
		return nil, invalidTemplate("text", fmt.Errorf("the text template is empty"))
	}
	r := &Renderer{}
	var err error
	// missingkey=error: a misspelt field is an error, not "<no value>".
	if r.subject, err = ttemplate.New("subject").Option("missingkey=error").Parse(t.Subject); err != nil {
		return nil, invalidTemplate("subject", err)
	}
	if r.text, err = ttemplate.New("text").Option("missingkey=error").Parse(t.Text); err != nil {
		return nil, invalidTemplate("text", err)
	}
	if strings.TrimSpace(t.HTML) != "" {
		if r.html, err = htemplate.New("html").Option("missingkey=error").Parse(t.HTML); err != nil {
			return nil, invalidTemplate("html", err)
		}
	}
	for _, noQR := range []bool{false, true} {
		a := sample
		a.NoQR = noQR
		m, err := r.Activation(a)
		if err != nil {
			return nil, err
		}
		if !strings.Contains(m.Text, sample.Password) {
			return nil, invalidTemplate("text", fmt.Errorf("the text does not show {{.Password}}"))
		}
		if r.html != nil && !strings.Contains(m.HTML, sample.Password) {
			return nil, invalidTemplate("html", fmt.Errorf("the HTML does not show {{.Password}}"))
		}
	}
	return r, nil
}

// Activation renders the activation email for a: subject, text, HTML
// and, unless a.NoQR or the templates have no HTML, the QR code of
// QRPayload(a) as an inline PNG the HTML shows by its cid: URL. From is
// left zero for the Sender to fill.
func (r *Renderer) Activation(a Activation) (*Message, error) {
	if err := a.validate(); err != nil {
		return nil, err
	}
	d := TemplateData{
		Email: a.To, UserName: a.UserName, Password: a.Password, ServerID: a.ServerID, Relay: a.Relay,
		ServerURL: a.ServerURL, Organisation: a.Organisation, ExpiresAt: a.ExpiresAt,
	}
	if !a.ExpiresAt.IsZero() {
		d.Expires = a.ExpiresAt.UTC().Format("2006-01-02 15:04 UTC")
	}
	m := &Message{To: []Address{{Name: a.UserName, Email: a.To}}}
	if r.html != nil && !a.NoQR {
		payload, err := QRPayload(a)
		if err != nil {
			return nil, err
		}
		img, err := QRPNG(payload)
		if err != nil {
			return nil, err
		}
		// RFC 2392 asks for a world-unique Content-ID; the image's hash
		// is unique to this password, and ".invalid" (RFC 2606) can
		// never clash with a real domain.
		sum := sha256.Sum256(img)
		cid := fmt.Sprintf("qr-%x@activation.invalid", sum[:8])
		d.QRCode = htemplate.URL("cid:" + cid)
		m.Inline = []Inline{{ContentID: cid, ContentType: "image/png", Filename: "activation-qr.png", Data: img}}
	}
	var b bytes.Buffer
	if err := r.subject.Execute(&b, d); err != nil {
		return nil, invalidTemplate("subject", err)
	}
	m.Subject = strings.TrimSpace(b.String())
	if m.Subject == "" {
		return nil, invalidTemplate("subject", fmt.Errorf("the subject is empty"))
	}
	if hasControl(m.Subject) {
		return nil, invalidTemplate("subject", fmt.Errorf("the subject is not one line"))
	}
	b.Reset()
	if err := r.text.Execute(&b, d); err != nil {
		return nil, invalidTemplate("text", err)
	}
	m.Text = b.String()
	if r.html != nil {
		b.Reset()
		if err := r.html.Execute(&b, d); err != nil {
			return nil, invalidTemplate("html", err)
		}
		m.HTML = b.String()
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}
