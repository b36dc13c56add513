package mail

import (
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/custos-uem/custos/errs"
)

// TLSMode says how the connection to the SMTP server is protected.
type TLSMode string

const (
	// STARTTLS connects in clear text and upgrades with STARTTLS
	// (RFC 3207) before anything else is said. It is required: a server
	// that does not offer it is refused, because a downgrade would send
	// the SMTP password and the activation password in clear text.
	STARTTLS TLSMode = "starttls"
	// ImplicitTLS speaks TLS from the first byte ("submissions",
	// RFC 8314 §3.3, port 465).
	ImplicitTLS TLSMode = "tls"
	// NoTLS sends in clear text. Allowed only to a loopback host (tests,
	// development, a local relay): anywhere else it would put one-time
	// passwords on the wire.
	NoTLS TLSMode = "none"
)

// Default ports for each mode: message submission (RFC 6409 §3.1, with
// STARTTLS), submissions (RFC 8314 §3.3) and SMTP (RFC 5321 §4.5.4.2).
const (
	DefaultSubmissionPort = 587
	DefaultImplicitPort   = 465
	DefaultSMTPPort       = 25
)

// DefaultTimeout bounds one whole Send (dial, TLS, AUTH, the transaction)
// when Config.Timeout is zero. RFC 5321 §4.5.3.2 suggests minutes per
// command for relays; an administrator waiting for "email sent" should
// not wait that long for a dead server.
const DefaultTimeout = 30 * time.Second

// DefaultMaxMessageSize bounds an encoded message when
// Config.MaxMessageSize is zero. An activation email with its QR code is
// about 20 KiB.
const DefaultMaxMessageSize = 1 << 20

// MaxAddress bounds an email address: the RFC 5321 §4.5.3.1.3 path limit
// (256 octets) less the angle brackets.
const MaxAddress = 254

// MaxHelloName bounds the EHLO name (a domain, RFC 1035 §2.3.4).
const MaxHelloName = 255

// Config says how to reach the SMTP server and who the email is from.
type Config struct {
	// Host is the SMTP server's name or IP address; its TLS certificate
	// must name it.
	Host string
	// Port is the server's port; zero takes the mode's default (587, 465
	// or 25).
	Port int
	// From is the sender, "Name <address>" or "address" (RFC 5322
	// §3.4); its address is also the envelope sender (MAIL FROM).
	From string
	// Username and Password are the AUTH PLAIN credentials (RFC 4954);
	// empty Username sends without AUTH. They are sent only over TLS.
	Username string
	Password string
	// TLS is STARTTLS when empty.
	TLS TLSMode
	// RootCAs verifies the server's certificate; nil takes the system's
	// roots.
	RootCAs *x509.CertPool
	// Timeout bounds one Send; zero is DefaultTimeout.
	Timeout time.Duration
	// HelloName is the name given in EHLO (RFC 5321 §4.1.1.1); empty is
	// "localhost".
	HelloName string
	// MaxMessageSize bounds an encoded message; zero is
	// DefaultMaxMessageSize.
	MaxMessageSize int
}

// invalidConfig is the error of a Config that cannot work; field names
// the setting so a console can point at it.
func invalidConfig(field, msg string) error {
	e := errs.E(errs.Invalid, "invalid_mail_config", "mail settings: "+msg)
	e.Fields = map[string]string{field: msg}
	return e
}

// withDefaults returns c with its zero settings filled in. It does not
// validate.
func (c Config) withDefaults() Config {
	if c.TLS == "" {
		c.TLS = STARTTLS
	}
	if c.Port == 0 {
		switch c.TLS {
		case ImplicitTLS:
			c.Port = DefaultImplicitPort
		case NoTLS:
			c.Port = DefaultSMTPPort
		default:
			c.Port = DefaultSubmissionPort
		}
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.HelloName == "" {
		c.HelloName = "localhost"
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	return c
}

// Validate reports the first setting that cannot work, as an
// errs.Invalid "invalid_mail_config" error whose Fields name it. It never
// mentions the password.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.Host == "" {
		return invalidConfig("host", "the SMTP host is required")
	}
	if len(c.Host) > MaxHelloName || hasControl(c.Host) || strings.ContainsAny(c.Host, " /:@[]") && net.ParseIP(c.Host) == nil {
		return invalidConfig("host", "the SMTP host must be a host name or an IP address, without port")
	}
	if c.Port < 1 || c.Port > 65535 {
		return invalidConfig("port", "the SMTP port must be between 1 and 65535")
	}
	switch c.TLS {
	case STARTTLS, ImplicitTLS:
	case NoTLS:
		// Checked on the name as written, not on what it resolves to:
		// a name could resolve elsewhere tomorrow.
		if !isLoopback(c.Host) {
			return invalidConfig("tls", `TLS "none" is allowed only for a loopback host (localhost, 127.0.0.0/8, ::1)`)
		}
		if c.Username != "" || c.Password != "" {
			// RFC 4954 §4: PLAIN without TLS exposes the password.
			return invalidConfig("tls", `SMTP credentials are sent only over TLS: use "starttls" or "tls"`)
		}
	default:
		return invalidConfig("tls", `the TLS mode must be "starttls", "tls" or "none"`)
	}
	if _, err := ParseAddress(c.From); err != nil {
		return invalidConfig("from", "the sender must be an email address, optionally with a name")
	}
	if hasControl(c.Username) || len(c.Username) > MaxAddress {
		return invalidConfig("username", "the SMTP username must be one line of at most 254 bytes")
	}
	if c.Password != "" && c.Username == "" {
		return invalidConfig("username", "an SMTP password needs a username")
	}
	if strings.ContainsRune(c.Password, 0) {
		// SASL PLAIN separates its fields with NUL (RFC 4616 §2).
		return invalidConfig("password", "the SMTP password may not hold a NUL byte")
	}
	if c.Timeout < 0 {
		return invalidConfig("timeout", "the timeout must be positive")
	}
	if len(c.HelloName) > MaxHelloName || !validHelloName(c.HelloName) {
		return invalidConfig("hello_name", "the EHLO name must be a domain name or an address literal")
	}
	if c.MaxMessageSize < 0 {
		return invalidConfig("max_message_size", "the message size limit must be positive")
	}
	return nil
}

// addr is host:port for dialing.
func (c Config) addr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }

// String shows the settings without the password, so that a Config
// printed with %v or %+v by mistake does not leak it.
func (c Config) String() string {
	pw := ""
	if c.Password != "" {
		pw = "[redacted]"
	}
	return fmt.Sprintf("mail.Config{Host:%q Port:%d From:%q Username:%q Password:%q TLS:%q Timeout:%s HelloName:%q}",
		c.Host, c.Port, c.From, c.Username, pw, c.TLS, c.Timeout, c.HelloName)
}

// GoString is String, for %#v.
func (c Config) GoString() string { return c.String() }

// LogValue keeps the password out of structured logs.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("host", c.Host), slog.Int("port", c.Port), slog.String("from", c.From),
		slog.String("username", c.Username), slog.Bool("password_set", c.Password != ""),
		slog.String("tls", string(c.TLS)))
}

// isLoopback reports whether host is "localhost" (RFC 6761 §6.3) or a
// loopback IP literal.
func isLoopback(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// validHelloName accepts a domain (letters, digits, hyphens, dots) or an
// address literal "[...]" (RFC 5321 §4.1.3).
func validHelloName(s string) bool {
	if s == "" {
		return false
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		in := strings.TrimPrefix(s[1:len(s)-1], "IPv6:")
		return net.ParseIP(in) != nil
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// hasControl reports whether s holds a C0 control character (CR and LF
// among them) or DEL: none belongs in a header value or an SMTP command
// line.
func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return true
		}
	}
	return false
}
