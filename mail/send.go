package mail

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/custos-uem/custos/errs"
)

// MaxReplyText bounds the part of a server's reply quoted in an error's
// safe message: enough for "550 5.1.1 <ada@example.com>: Recipient address
// rejected: User unknown", not a page of a hostile server's text.
const MaxReplyText = 200

// errNoSTARTTLS is go-smtp's error when the EHLO reply does not list
// STARTTLS (v0.25.1 client.go initStartTLS). It is a plain error, so it is
// matched on its text; TestSendRefusesWithoutSTARTTLS pins it.
const errNoSTARTTLS = "smtp: server doesn't support STARTTLS"

// Sender sends messages through one SMTP server. It is safe for
// concurrent use; each Send is one connection.
type Sender struct {
	cfg Config
	// Now and Rand feed the Date header, the Message-ID and the MIME
	// boundaries; set them (tests) before the first Send.
	Now  func() time.Time
	Rand io.Reader
}

// NewSender validates cfg and returns a Sender for it.
func NewSender(cfg Config) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Sender{cfg: cfg.withDefaults(), Now: time.Now, Rand: rand.Reader}, nil
}

// Config returns the settings in use, defaults filled in.
func (s *Sender) Config() Config { return s.cfg }

// Send delivers msg to the server: TLS (STARTTLS, RFC 3207, or implicit),
// AUTH PLAIN inside TLS (RFC 4954), then MAIL, RCPT for each recipient
// and DATA (RFC 5321 §3.3). It returns when the server has accepted the
// message (250 after the final dot), or ctx or Config.Timeout ends.
//
// Errors: invalid_mail_message (Invalid), mail_too_large (TooLarge),
// mail_refused (Invalid: a 5xx reply, quoted), mail_unavailable
// (Unavailable: a 4xx reply, a network or TLS failure, a timeout),
// mail_tls_required (Unavailable: no STARTTLS offered; nothing was sent),
// mail_auth_unsupported (Unavailable: no AUTH PLAIN offered).
func (s *Sender) Send(ctx context.Context, msg *Message) error {
	m := *msg
	if m.From == (Address{}) {
		from, err := ParseAddress(s.cfg.From)
		if err != nil {
			return err
		}
		m.From = from
	}
	data, err := m.Encode(s.Now(), s.Rand)
	if err != nil {
		return err
	}
	if len(data) > s.cfg.MaxMessageSize {
		e := errs.E(errs.TooLarge, "mail_too_large", fmt.Sprintf("the message has %d bytes, over the limit of %d", len(data), s.cfg.MaxMessageSize))
		return e
	}

	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	conn, err := s.dial(ctx)
	if err != nil {
		return s.fail(ctx, "connect", err)
	}
	// go-smtp sets and clears its own per-command deadlines, so ctx is
	// enforced by closing the connection: every pending read or write
	// returns at once.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer conn.Close()

	var c *smtp.Client
	switch s.cfg.TLS {
	case STARTTLS:
		// go-smtp says its first EHLO (before TLS) as "localhost": its
		// client has no exported way to name it before STARTTLS. The
		// EHLO that counts, inside TLS, uses HelloName (RFC 3207 §4.2:
		// the client must discard what it learnt before TLS).
		c, err = smtp.NewClientStartTLS(conn, s.tlsConfig())
		if err != nil {
			if err.Error() == errNoSTARTTLS {
				return errs.E(errs.Unavailable, "mail_tls_required",
					"the mail server does not offer STARTTLS; nothing was sent (set the TLS mode to \"tls\" for port 465)")
			}
			return s.fail(ctx, "STARTTLS", err)
		}
	default:
		c = smtp.NewClient(conn)
	}
	defer c.Close()
	c.CommandTimeout = s.cfg.Timeout
	c.SubmissionTimeout = s.cfg.Timeout
	if err := c.Hello(s.cfg.HelloName); err != nil {
		return s.fail(ctx, "EHLO", err)
	}
	if s.cfg.TLS != NoTLS {
		// The handshake ran inside Hello; check it did (it is the
		// promise of the mode) before any credential is sent.
		if _, ok := c.TLSConnectionState(); !ok {
			return errs.E(errs.Unavailable, "mail_tls_required", "the connection to the mail server is not encrypted; nothing was sent")
		}
	}
	if s.cfg.Username != "" {
		if !c.SupportsAuth(sasl.Plain) {
			return errs.E(errs.Unavailable, "mail_auth_unsupported", "the mail server does not offer AUTH PLAIN; nothing was sent")
		}
		if err := c.Auth(sasl.NewPlainClient("", s.cfg.Username, s.cfg.Password)); err != nil {
			return s.fail(ctx, "AUTH", err)
		}
	}
	// SIZE (RFC 1870) lets the server refuse an oversized message before
	// the data is sent.
	if err := c.Mail(m.From.Email, &smtp.MailOptions{Size: int64(len(data))}); err != nil {
		return s.fail(ctx, "MAIL FROM", err)
	}
	for _, to := range m.To {
		if err := c.Rcpt(to.Email, nil); err != nil {
			return s.fail(ctx, "RCPT TO", err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return s.fail(ctx, "DATA", err)
	}
	if _, err := w.Write(data); err != nil {
		w.Close()
		return s.fail(ctx, "DATA", err)
	}
	if err := w.Close(); err != nil {
		return s.fail(ctx, "DATA", err)
	}
	// The message is accepted; a failed QUIT changes nothing for it
	// (RFC 5321 §4.1.1.10).
	_ = c.Quit()
	return nil
}

func (s *Sender) tlsConfig() *tls.Config {
	return &tls.Config{ServerName: strings.Trim(s.cfg.Host, "[]"), RootCAs: s.cfg.RootCAs, MinVersion: tls.VersionTLS12}
}

func (s *Sender) dial(ctx context.Context) (net.Conn, error) {
	d := &net.Dialer{}
	if s.cfg.TLS == ImplicitTLS {
		return (&tls.Dialer{NetDialer: d, Config: s.tlsConfig()}).DialContext(ctx, "tcp", s.cfg.addr())
	}
	return d.DialContext(ctx, "tcp", s.cfg.addr())
}

// fail turns an error of step into the error the caller sees. An SMTP
// reply is quoted, bounded and scrubbed of the credentials; the cause
// kept for the log is scrubbed too.
func (s *Sender) fail(ctx context.Context, step string, err error) error {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		reply := s.redact(se.Message)
		clean := &smtp.SMTPError{Code: se.Code, EnhancedCode: se.EnhancedCode, Message: reply}
		quoted := fmt.Sprintf("%d", se.Code)
		if se.EnhancedCode != smtp.NoEnhancedCode && se.EnhancedCode != smtp.EnhancedCodeNotSet {
			quoted += fmt.Sprintf(" %d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
		}
		if t := boundReply(reply); t != "" {
			quoted += " " + t
		}
		// RFC 5321 §4.2.1: 5yz is a permanent refusal (the same message
		// will be refused again), 4yz a transient one.
		if se.Code >= 500 && se.Code < 600 {
			return errs.Wrap(errs.Invalid, "mail_refused", fmt.Sprintf("the mail server refused %s: %s", step, quoted), clean)
		}
		return errs.Wrap(errs.Unavailable, "mail_unavailable", fmt.Sprintf("the mail server is unavailable (%s: %s); try again later", step, quoted), clean)
	}
	cause := s.scrub(err)
	if ctx.Err() != nil {
		cause = fmt.Errorf("%w (%v)", ctx.Err(), cause)
		return errs.Wrap(errs.Unavailable, "mail_unavailable", fmt.Sprintf("the mail server did not answer in time (%s); try again later", step), cause)
	}
	var cv *tls.CertificateVerificationError
	if errors.As(err, &cv) {
		return errs.Wrap(errs.Unavailable, "mail_unavailable", "the mail server's TLS certificate is not trusted for "+s.cfg.Host, cause)
	}
	return errs.Wrap(errs.Unavailable, "mail_unavailable", fmt.Sprintf("the mail server cannot be reached (%s); try again later", step), cause)
}

// redact removes the SMTP password, and the AUTH PLAIN blob that carries
// it, from text a server sent back: a server may echo what it was given.
func (s *Sender) redact(text string) string {
	if s.cfg.Password == "" {
		return text
	}
	blob := base64.StdEncoding.EncodeToString([]byte("\x00" + s.cfg.Username + "\x00" + s.cfg.Password))
	for _, secret := range []string{blob, s.cfg.Password} {
		text = strings.ReplaceAll(text, secret, "[redacted]")
	}
	return text
}

// scrub returns err, or a copy of its text without the credentials when
// it holds them.
func (s *Sender) scrub(err error) error {
	if r := s.redact(err.Error()); r != err.Error() {
		return errors.New(r)
	}
	return err
}

// boundReply keeps a reply to one line of printable text of at most
// MaxReplyText bytes.
func boundReply(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > MaxReplyText {
		cut := MaxReplyText
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
