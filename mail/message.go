package mail

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	netmail "net/mail"
	"net/textproto"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/custos-uem/custos/errs"
)

// Limits of a Message, checked before anything is encoded.
const (
	// MaxRecipients bounds To. RFC 5321 §4.5.3.1.8 asks servers to take
	// at least 100.
	MaxRecipients = 100
	// MaxSubject bounds the subject in bytes, so that even fully
	// encoded (RFC 2047) and folded it stays far below the 998-octet
	// line limit of RFC 5322 §2.1.1 on each line.
	MaxSubject = 512
	// MaxName bounds a display name in bytes.
	MaxName = 256
	// MaxInline bounds the number of inline parts.
	MaxInline = 8
)

// Address is a mailbox: an optional display name and an email address.
type Address struct {
	Name  string
	Email string
}

// ParseAddress parses "Name <address>" or "address" (RFC 5322 §3.4) and
// validates it as Message does.
func ParseAddress(s string) (Address, error) {
	if hasControl(s) {
		return Address{}, invalidMessage("address", "an address may not hold a line break or a control character")
	}
	a, err := netmail.ParseAddress(s)
	if err != nil {
		return Address{}, invalidMessage("address", "not an email address")
	}
	out := Address{Name: a.Name, Email: a.Address}
	if err := out.validate("address"); err != nil {
		return Address{}, err
	}
	return out, nil
}

// String formats a as a header value, the name encoded per RFC 2047 when
// it is not ASCII.
func (a Address) String() string {
	return (&netmail.Address{Name: a.Name, Address: a.Email}).String()
}

// validate checks a for use in a header and in MAIL FROM / RCPT TO.
// Control characters are refused outright: a CR or LF in a name or an
// address would end the header line and start one of the attacker's
// (header injection), or end the SMTP command and start another.
func (a Address) validate(field string) error {
	if hasControl(a.Name) || hasControl(a.Email) {
		return invalidMessage(field, "a name or an address may not hold a line break or a control character")
	}
	if len(a.Name) > MaxName || !utf8.ValidString(a.Name) {
		return invalidMessage(field, fmt.Sprintf("a display name has at most %d bytes of UTF-8", MaxName))
	}
	if a.Email == "" || len(a.Email) > MaxAddress {
		return invalidMessage(field, fmt.Sprintf("an email address has 1 to %d bytes", MaxAddress))
	}
	// ASCII only: an internationalised address needs SMTPUTF8 (RFC 6531)
	// end to end, which most submission servers do not offer.
	for i := 0; i < len(a.Email); i++ {
		if a.Email[i] >= 0x80 {
			return invalidMessage(field, "an email address must be ASCII")
		}
	}
	p, err := netmail.ParseAddress(a.Email)
	if err != nil || p.Address != a.Email || p.Name != "" || strings.Count(a.Email, "@") != 1 {
		return invalidMessage(field, "not an email address")
	}
	return nil
}

// domain returns the part of the address after the @.
func (a Address) domain() string {
	return a.Email[strings.LastIndexByte(a.Email, '@')+1:]
}

// Inline is a part shown inside the HTML part (an image), referenced
// from it as "cid:" + ContentID (RFC 2392).
type Inline struct {
	// ContentID is the addr-spec of the Content-ID header, without angle
	// brackets (RFC 2392 §2), e.g. "qr-1f2e@activation.invalid".
	ContentID   string
	ContentType string // e.g. "image/png"
	Filename    string // optional, shown by clients that list parts
	Data        []byte
}

// Message is an email to send. From zero takes the Sender's Config.From.
type Message struct {
	From    Address
	To      []Address
	Subject string
	// Text is the plain-text part; required, since it is what every
	// client can show (RFC 2046 §5.1.4 puts it first).
	Text string
	// HTML is the optional HTML alternative.
	HTML string
	// Inline parts go with the HTML part in multipart/related
	// (RFC 2387); they need HTML.
	Inline []Inline
}

// invalidMessage is the error of a message that cannot be sent as is.
func invalidMessage(field, msg string) error {
	e := errs.E(errs.Invalid, "invalid_mail_message", msg)
	e.Fields = map[string]string{field: msg}
	return e
}

// Validate checks m: addresses, a one-line subject (no CR or LF: header
// injection), a text part, well-formed inline parts. From may be zero
// here; Encode needs it.
func (m *Message) Validate() error {
	if m.From != (Address{}) {
		if err := m.From.validate("from"); err != nil {
			return err
		}
	}
	if len(m.To) == 0 || len(m.To) > MaxRecipients {
		return invalidMessage("to", fmt.Sprintf("a message has 1 to %d recipients", MaxRecipients))
	}
	for _, a := range m.To {
		if err := a.validate("to"); err != nil {
			return err
		}
	}
	if hasControl(m.Subject) {
		return invalidMessage("subject", "the subject may not hold a line break or a control character")
	}
	if len(m.Subject) > MaxSubject || !utf8.ValidString(m.Subject) {
		return invalidMessage("subject", fmt.Sprintf("the subject has at most %d bytes of UTF-8", MaxSubject))
	}
	if strings.TrimSpace(m.Text) == "" {
		return invalidMessage("text", "the text part is required")
	}
	if !utf8.ValidString(m.Text) || !utf8.ValidString(m.HTML) {
		return invalidMessage("text", "the body must be UTF-8")
	}
	if len(m.Inline) > 0 && m.HTML == "" {
		return invalidMessage("inline", "inline parts need an HTML part")
	}
	if len(m.Inline) > MaxInline {
		return invalidMessage("inline", fmt.Sprintf("a message has at most %d inline parts", MaxInline))
	}
	for _, in := range m.Inline {
		if in.ContentID == "" || len(in.ContentID) > MaxAddress || hasControl(in.ContentID) || strings.ContainsAny(in.ContentID, "<> \"") {
			return invalidMessage("inline", "an inline part needs a Content-ID without spaces, quotes or angle brackets")
		}
		if hasControl(in.Filename) || strings.ContainsAny(in.Filename, `"\/`) {
			return invalidMessage("inline", "an inline file name may not hold quotes, slashes or control characters")
		}
		if mt, _, err := mime.ParseMediaType(in.ContentType); err != nil || hasControl(in.ContentType) || strings.HasPrefix(mt, "multipart/") {
			return invalidMessage("inline", "an inline part needs a media type such as image/png")
		}
	}
	return nil
}

// Encode renders m as an RFC 5322 message with MIME parts (RFC 2045,
// 2046), CRLF line endings and only 7-bit data on the wire: bodies are
// quoted-printable (text) or base64 (images), the subject an RFC 2047
// encoded-word when it is not ASCII. date is the Date header; random
// feeds the Message-ID and the boundaries (crypto/rand.Reader in
// production).
func (m *Message) Encode(date time.Time, random io.Reader) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if m.From == (Address{}) {
		return nil, invalidMessage("from", "the sender is required")
	}
	token := func() (string, error) {
		var b [16]byte
		if _, err := io.ReadFull(random, b[:]); err != nil {
			return "", fmt.Errorf("mail: randomness: %w", err)
		}
		return hex.EncodeToString(b[:]), nil
	}
	id, err := token()
	if err != nil {
		return nil, err
	}

	var b bytes.Buffer
	header := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	header("Date", date.Format(time.RFC1123Z)) // RFC 5322 §3.3
	// RFC 5322 §3.6.4: a unique id on the right of the sender's domain.
	header("Message-ID", "<"+id+"@"+m.From.domain()+">")
	header("From", m.From.String())
	to := make([]string, len(m.To))
	for i, a := range m.To {
		to[i] = a.String()
	}
	header("To", strings.Join(to, ",\r\n "))
	header("Subject", encodeSubject(m.Subject))
	// RFC 3834 §5: an automatic message, so that vacation responders do
	// not answer it.
	header("Auto-Submitted", "auto-generated")
	header("MIME-Version", "1.0")

	if m.HTML == "" {
		header("Content-Type", "text/plain; charset=utf-8")
		header("Content-Transfer-Encoding", "quoted-printable")
		b.WriteString("\r\n")
		if err := writeQP(&b, m.Text); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	}

	alt := multipart.NewWriter(&b)
	bd, err := token()
	if err != nil {
		return nil, err
	}
	if err := alt.SetBoundary("alt-" + bd); err != nil {
		return nil, err
	}
	header("Content-Type", mime.FormatMediaType("multipart/alternative", map[string]string{"boundary": alt.Boundary()}))
	b.WriteString("\r\n")
	// RFC 2046 §5.1.4: alternatives in increasing order of fidelity.
	if err := textPart(alt, "text/plain", m.Text); err != nil {
		return nil, err
	}
	if len(m.Inline) == 0 {
		if err := textPart(alt, "text/html", m.HTML); err != nil {
			return nil, err
		}
	} else {
		rb, err := token()
		if err != nil {
			return nil, err
		}
		// RFC 2387 §3.1: multipart/related names the type of its root
		// (first) part; the images follow it.
		w, err := alt.CreatePart(textproto.MIMEHeader{"Content-Type": {
			mime.FormatMediaType("multipart/related", map[string]string{"type": "text/html", "boundary": "rel-" + rb})}})
		if err != nil {
			return nil, err
		}
		rel := multipart.NewWriter(w)
		if err := rel.SetBoundary("rel-" + rb); err != nil {
			return nil, err
		}
		if err := textPart(rel, "text/html", m.HTML); err != nil {
			return nil, err
		}
		for _, in := range m.Inline {
			h := textproto.MIMEHeader{
				"Content-Type":              {in.ContentType},
				"Content-Transfer-Encoding": {"base64"},
				"Content-Id":                {"<" + in.ContentID + ">"}, // RFC 2392 §2
			}
			if in.Filename != "" {
				h.Set("Content-Disposition", mime.FormatMediaType("inline", map[string]string{"filename": in.Filename}))
			} else {
				h.Set("Content-Disposition", "inline")
			}
			pw, err := rel.CreatePart(h)
			if err != nil {
				return nil, err
			}
			writeBase64(pw, in.Data)
		}
		if err := rel.Close(); err != nil {
			return nil, err
		}
	}
	if err := alt.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// textPart writes a UTF-8 text part, quoted-printable (RFC 2045 §6.7):
// any byte is safe on a 7-bit path and lines stay under 76 characters.
func textPart(w *multipart.Writer, mediaType, body string) error {
	pw, err := w.CreatePart(textproto.MIMEHeader{
		"Content-Type":              {mediaType + "; charset=utf-8"},
		"Content-Transfer-Encoding": {"quoted-printable"},
	})
	if err != nil {
		return err
	}
	return writeQP(pw, body)
}

func writeQP(w io.Writer, body string) error {
	q := quotedprintable.NewWriter(w)
	if _, err := io.WriteString(q, body); err != nil {
		return err
	}
	return q.Close()
}

// writeBase64 writes data in base64 lines of 76 characters (RFC 2045
// §6.8).
func writeBase64(w io.Writer, data []byte) {
	enc := base64.StdEncoding.EncodeToString(data)
	for len(enc) > 76 {
		io.WriteString(w, enc[:76]+"\r\n")
		enc = enc[76:]
	}
	io.WriteString(w, enc+"\r\n")
}

// encodeSubject returns s as is when it is printable ASCII, else as RFC
// 2047 Q encoded-words, folded between words (RFC 5322 §2.2.3) so that no
// line passes 78 characters by much.
func encodeSubject(s string) string {
	enc := mime.QEncoding.Encode("utf-8", s)
	if enc == s {
		return s
	}
	return strings.ReplaceAll(enc, "?= =?", "?=\r\n =?")
}
