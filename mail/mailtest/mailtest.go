// Package mailtest runs an in-process SMTP server (RFC 5321) for tests,
// built on github.com/emersion/go-smtp's server: STARTTLS (RFC 3207) with
// a throw-away self-signed ECDSA certificate, AUTH PLAIN (RFC 4954) with
// one user, and switches to refuse mail the ways real servers do. It
// keeps what it received for the test to read.
package mailtest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/custos-uem/custos/mail"
)

// Default credentials when Options leave them empty.
const (
	DefaultUsername = "custos-mailer"
	DefaultPassword = "sink-secret-3f9a" // a test credential for a loopback sink
)

// MaxMessageBytes is the sink's message size limit (advertised as SIZE,
// RFC 1870) when Options.MaxMessageBytes is zero.
const MaxMessageBytes = 4 << 20

// Options shapes the sink.
type Options struct {
	// Username and Password are the only AUTH PLAIN credentials
	// accepted; empty take DefaultUsername and DefaultPassword. MAIL is
	// refused (530) before AUTH.
	Username, Password string
	// NoSTARTTLS leaves STARTTLS out of the EHLO reply, and so AUTH too
	// (go-smtp offers it only inside TLS).
	NoSTARTTLS bool
	// ImplicitTLS speaks TLS from the first byte (port 465 style).
	ImplicitTLS bool
	// RefuseRcpt answers every RCPT with 550 5.1.1 (permanent).
	RefuseRcpt bool
	// TempFail answers every RCPT with 451 4.7.1 (greylisting).
	TempFail bool
	// MaxMessageBytes is the SIZE limit; zero is MaxMessageBytes.
	MaxMessageBytes int64
}

// Received is one message the sink accepted.
type Received struct {
	From string   // MAIL FROM
	To   []string // RCPT TO, in order
	Data []byte   // the message as sent after DATA (CRLF line endings)
	// TLS and User say how it came: inside TLS, and authenticated as
	// User.
	TLS  bool
	User string
}

// Sink is a running SMTP server on 127.0.0.1.
type Sink struct {
	Addr    string // host:port
	Host    string // "127.0.0.1"
	Port    int
	RootCAs *x509.CertPool // trusts the sink's certificate

	opts Options
	srv  *smtp.Server

	mu       sync.Mutex
	msgs     []Received
	next     int // WaitMessage's cursor
	arrived  chan struct{}
	auths    int
	sessions int
}

// Start starts a sink on 127.0.0.1:0 and stops it when the test ends.
func Start(t testing.TB, opts Options) *Sink {
	t.Helper()
	if opts.Username == "" {
		opts.Username = DefaultUsername
	}
	if opts.Password == "" {
		opts.Password = DefaultPassword
	}
	if opts.MaxMessageBytes == 0 {
		opts.MaxMessageBytes = MaxMessageBytes
	}
	cert, pool := selfSigned(t)
	s := &Sink{Host: "127.0.0.1", RootCAs: pool, opts: opts, arrived: make(chan struct{}, 1)}
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = "sink.mailtest.invalid"
	srv.MaxMessageBytes = opts.MaxMessageBytes
	srv.MaxRecipients = 100
	srv.ReadTimeout = 30 * time.Second
	srv.WriteTimeout = 30 * time.Second
	srv.ErrorLog = log.New(io.Discard, "", 0)
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if !opts.NoSTARTTLS {
		srv.TLSConfig = tlsCfg
	}
	s.srv = srv

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mailtest: listen: %v", err)
	}
	s.Addr = ln.Addr().String()
	s.Port = ln.Addr().(*net.TCPAddr).Port
	if opts.ImplicitTLS {
		ln = tls.NewListener(ln, tlsCfg)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, smtp.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			t.Errorf("mailtest: serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return s
}

// Config returns a mail.Config that reaches the sink with its
// credentials: STARTTLS, or implicit TLS when the sink speaks it.
func (s *Sink) Config() mail.Config {
	mode := mail.STARTTLS
	if s.opts.ImplicitTLS {
		mode = mail.ImplicitTLS
	}
	return mail.Config{
		Host: s.Host, Port: s.Port, From: "Custos <custos@example.com>",
		Username: s.opts.Username, Password: s.opts.Password,
		TLS: mode, RootCAs: s.RootCAs, Timeout: 10 * time.Second, HelloName: "custos.test",
	}
}

// Messages returns a copy of every message accepted so far.
func (s *Sink) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.msgs...)
}

// AuthAttempts counts AUTH exchanges that reached a credential check,
// right or wrong: a test of "nothing was sent" checks it stayed zero.
func (s *Sink) AuthAttempts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.auths
}

// Sessions counts the connections the sink took.
func (s *Sink) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions
}

// WaitMessage returns the next message not yet returned by WaitMessage,
// waiting up to timeout for it; the test fails if none comes.
func (s *Sink) WaitMessage(t testing.TB, timeout time.Duration) Received {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		if s.next < len(s.msgs) {
			m := s.msgs[s.next]
			s.next++
			s.mu.Unlock()
			return m
		}
		s.mu.Unlock()
		select {
		case <-s.arrived:
		case <-deadline.C:
			t.Fatalf("mailtest: no message within %s", timeout)
			return Received{}
		}
	}
}

func (s *Sink) newSession(c *smtp.Conn) (smtp.Session, error) {
	s.mu.Lock()
	s.sessions++
	s.mu.Unlock()
	return &session{sink: s, conn: c}, nil
}

type session struct {
	sink *Sink
	conn *smtp.Conn
	user string
	from string
	to   []string
}

var _ smtp.AuthSession = (*session)(nil)

func (ss *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		ss.sink.mu.Lock()
		ss.sink.auths++
		ss.sink.mu.Unlock()
		if identity != "" && identity != username || username != ss.sink.opts.Username || password != ss.sink.opts.Password {
			return smtp.ErrAuthFailed
		}
		ss.user = username
		return nil
	}), nil
}

func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	if ss.user == "" {
		// RFC 4954 §6: 530 5.7.0 Authentication required.
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	switch {
	case ss.sink.opts.RefuseRcpt:
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<" + to + ">: Recipient address rejected: User unknown"}
	case ss.sink.opts.TempFail:
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "<" + to + ">: Recipient address rejected: Greylisted, try again later"}
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, isTLS := ss.conn.TLSConnectionState()
	m := Received{From: ss.from, To: append([]string(nil), ss.to...), Data: bytes.Clone(b), TLS: isTLS, User: ss.user}
	ss.sink.mu.Lock()
	ss.sink.msgs = append(ss.sink.msgs, m)
	ss.sink.mu.Unlock()
	select {
	case ss.sink.arrived <- struct{}{}:
	default:
	}
	return nil
}

func (ss *session) Reset() { ss.from, ss.to = "", nil }

func (ss *session) Logout() error { return nil }

// selfSigned makes a P-256 certificate for 127.0.0.1 and localhost, valid
// for the test's day, and a pool that trusts it.
func selfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("mailtest: key: %v", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatalf("mailtest: serial: %v", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "mailtest sink"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true, // self-signed: it is its own root
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("mailtest: certificate: %v", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("mailtest: certificate: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
