// Package pushcert keeps the Apple MDM push certificate (the "APNs
// certificate for MDM") in the Core's settings and sends MDM pushes with it.
//
// Its promise:
//
//   - An upload (PEM certificate + PEM key, or a PKCS#12 file and its
//     password) is stored only when the key matches the certificate, the
//     certificate's subject carries a UID topic com.apple.mgmt.External.<uuid>
//     and the certificate has not expired. The key is sealed with the
//     Core's secret.Box before it reaches the database; no read returns it.
//   - Renewal keeps the topic: a certificate with the SAME topic replaces
//     the stored one; one with another topic is refused unless the
//     administrator confirms (Upload.ReplaceTopic), because every device
//     enrolled under the old topic stops answering pushes and has to be
//     enrolled again.
//   - Service.Sender routes the MDM pushes (APNs targets with PushMagic or
//     with the certificate's topic) to an APNs client built from the stored
//     certificate, rebuilt when the stored certificate changes; every other
//     target goes to the fallback sender (the configured providers or the
//     relay). Without an uploaded certificate MDM pushes go to the fallback
//     as well (a relay that holds a certificate for this Core).
//
// Apple: "Setting up push notifications for your MDM customers"
// https://developer.apple.com/documentation/devicemanagement/setting-up-push-notifications-for-your-mdm-customers
// and the MDM push itself:
// https://developer.apple.com/documentation/devicemanagement/sending-mdm-commands-to-a-device
package pushcert

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/pkcs12"

	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/push"
	"github.com/custos-uem/custos/push/apns"
	"github.com/custos-uem/custos/secret"
)

// Wire and storage limits.
const (
	// MaxUpload bounds an uploaded certificate, key or PKCS#12 file. An
	// Apple push certificate with its RSA-2048 key is about 4 KiB in PEM;
	// a chain adds a few KiB.
	MaxUpload = 32 << 10
	// MaxPasswordLen bounds a PKCS#12 password.
	MaxPasswordLen = 256
	// MaxP12Iterations bounds the key-derivation iterations a PKCS#12
	// file may ask for (RFC 7292 Appendix C: MacData and PBE parameters
	// carry their own count; tools write 2048 to 10000). The count is
	// checked before any derivation: a file asking for 2^31 would hold a
	// CPU for minutes.
	MaxP12Iterations = 1 << 20
	// maxP12Depth bounds the nesting the iteration check walks.
	maxP12Depth = 12
	// TopicPrefix starts every MDM push topic: the certificate's UID is
	// com.apple.mgmt.External.<uuid> (Apple's MDM protocol reference,
	// "Topic" of the MDM payload).
	TopicPrefix = "com.apple.mgmt.External."
	// WarnBefore is how long before expiry the Core warns: Apple's push
	// certificates last a year and a lapsed one cannot be renewed with the
	// same topic after it has been revoked, so a month's notice.
	WarnBefore = 30 * 24 * time.Hour
	// RefreshInterval is how often a Core re-reads the stored certificate
	// to notice a renewal uploaded through another Core sharing the
	// database (its own uploads take effect at once).
	RefreshInterval = time.Minute
)

// oidUID is the X.500 userId attribute (0.9.2342.19200300.100.1.1, RFC
// 4519 §2.39) in which an Apple push certificate's subject carries its topic.
var oidUID = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}

var topicUUID = regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$`)

// Errors of an upload, each a stable code for the API and console.
var (
	ErrKeyMismatch   = errs.E(errs.Invalid, "push_key_mismatch", "the private key does not belong to the certificate")
	ErrNotPushCert   = errs.E(errs.Invalid, "not_mdm_push_certificate", "the certificate is not an Apple MDM push certificate: its subject has no UID com.apple.mgmt.External.<uuid> (download it from Apple's Push Certificates Portal)")
	ErrExpired       = errs.E(errs.Invalid, "push_certificate_expired", "the certificate has expired: renew it in Apple's Push Certificates Portal (same Apple ID, same certificate) and upload the new one")
	ErrBadP12        = errs.E(errs.Invalid, "invalid_pkcs12", "the file is not a PKCS#12 (.p12) file with one certificate and its private key")
	ErrWrongPassword = errs.E(errs.Invalid, "pkcs12_wrong_password", "the PKCS#12 password is wrong")
	ErrBadPEM        = errs.E(errs.Invalid, "invalid_pem", "expected a PEM certificate and a PEM private key")
	ErrTooLarge      = errs.E(errs.TooLarge, "push_certificate_too_large", fmt.Sprintf("the upload is over %d bytes", MaxUpload))
	// ErrNotConfigured is the answer of a Core without an uploaded
	// certificate; it wraps push.ErrNotConfigured.
	ErrNotConfigured = fmt.Errorf("no MDM push certificate uploaded: %w", push.ErrNotConfigured)
)

// TopicChangeError refuses a certificate whose topic differs from the
// stored one when the administrator did not confirm the change.
func topicChangeError(old, new string) error {
	e := errs.E(errs.Conflict, "push_topic_change",
		fmt.Sprintf("the new certificate's topic %s differs from the current one %s: every device enrolled under the current topic would stop answering pushes (and must be enrolled again). A renewal keeps the topic: renew the existing certificate in Apple's Push Certificates Portal with the same Apple ID. To replace it anyway, confirm with replace_topic.", new, old))
	e.Fields = map[string]string{"replace_topic": "required to change the topic"}
	return e
}

// Stored is the certificate as the store keeps it.
type Stored struct {
	Topic string
	// CertPEM is the certificate, then any chain certificates, in PEM.
	CertPEM []byte
	// KeySealed is the PKCS#8 PEM private key sealed by secret.Box.
	KeySealed  string
	Serial     string
	Subject    string
	NotBefore  time.Time
	NotAfter   time.Time
	UploadedAt time.Time
	UploadedBy string
}

// Store keeps the one MDM push certificate of the installation.
type Store interface {
	// PushCertificate returns the stored certificate; errs.ErrNotFound
	// when none was uploaded.
	PushCertificate(ctx context.Context) (*Stored, error)
	// PutPushCertificate stores c, replacing any stored one.
	PutPushCertificate(ctx context.Context, c *Stored) error
}

// Info is the certificate as reads show it: never the key.
type Info struct {
	Topic      string    `json:"topic"`
	Subject    string    `json:"subject"`
	Serial     string    `json:"serial"`
	NotBefore  time.Time `json:"not_before"`
	NotAfter   time.Time `json:"not_after"`
	UploadedAt time.Time `json:"uploaded_at"`
	UploadedBy string    `json:"uploaded_by"`
	// DaysLeft is the whole days until expiry (negative once expired);
	// ExpiringSoon says it is within WarnBefore.
	DaysLeft     int  `json:"days_left"`
	ExpiringSoon bool `json:"expiring_soon"`
	Expired      bool `json:"expired"`
	// Key is always "***": the key is stored sealed and never shown.
	Key string `json:"private_key"`
}

// Upload is an uploaded certificate: CertPEM and KeyPEM, or P12 and
// Password.
type Upload struct {
	CertPEM, KeyPEM []byte
	P12             []byte
	Password        string
	// ReplaceTopic confirms replacing a certificate of another topic.
	ReplaceTopic bool
	// By names the administrator (audit, Info.UploadedBy).
	By string
}

// Service keeps the certificate and sends MDM pushes. Its zero value is
// not usable: Store and Box are required.
type Service struct {
	Store Store
	Box   *secret.Box
	Now   func() time.Time
	Log   *slog.Logger
	// APNsURL replaces Apple's production endpoint; RootCAs and Proxy are
	// passed to the APNs client (tests point them at push/apns/apnstest).
	APNsURL string
	RootCAs *x509.CertPool
	Proxy   func(*http.Request) (*url.URL, error)

	mu      sync.Mutex
	client  *apns.Client
	current *Stored // what client was built from; nil when none
	checked time.Time
	loaded  bool
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// Parsed is a validated upload.
type Parsed struct {
	Leaf  *x509.Certificate
	Chain []*x509.Certificate
	Key   crypto.Signer
	Topic string
}

// Parse validates an upload at time now (see the package doc) without
// storing it.
func Parse(in Upload, now time.Time) (*Parsed, error) {
	if len(in.CertPEM) > MaxUpload || len(in.KeyPEM) > MaxUpload || len(in.P12) > MaxUpload {
		return nil, ErrTooLarge
	}
	var (
		certs []*x509.Certificate
		key   crypto.Signer
		err   error
	)
	if len(in.P12) > 0 {
		certs, key, err = parseP12(in.P12, in.Password)
	} else {
		certs, key, err = parsePEM(in.CertPEM, in.KeyPEM)
	}
	if err != nil {
		return nil, err
	}
	// The leaf is the certificate of the key; the others are its chain.
	leafAt := -1
	for i, c := range certs {
		if pub, ok := c.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); ok && pub.Equal(key.Public()) {
			leafAt = i
			break
		}
	}
	if leafAt < 0 {
		return nil, ErrKeyMismatch
	}
	leaf := certs[leafAt]
	chain := append(append([]*x509.Certificate{}, certs[:leafAt]...), certs[leafAt+1:]...)
	topic, err := TopicOf(leaf)
	if err != nil {
		return nil, err
	}
	if !now.Before(leaf.NotAfter) {
		return nil, ErrExpired
	}
	return &Parsed{Leaf: leaf, Chain: chain, Key: key, Topic: topic}, nil
}

// TopicOf returns the MDM push topic of a certificate: its subject's UID,
// which must be com.apple.mgmt.External.<uuid>.
func TopicOf(c *x509.Certificate) (string, error) {
	for _, n := range c.Subject.Names {
		if !n.Type.Equal(oidUID) {
			continue
		}
		v, ok := n.Value.(string)
		if !ok {
			continue
		}
		if rest, ok := strings.CutPrefix(v, TopicPrefix); ok && topicUUID.MatchString(rest) {
			return v, nil
		}
	}
	return "", ErrNotPushCert
}

func parsePEM(certPEM, keyPEM []byte) ([]*x509.Certificate, crypto.Signer, error) {
	var certs []*x509.Certificate
	var key crypto.Signer
	// Either field may hold both (one .pem file with certificate and key).
	for _, data := range [][]byte{certPEM, keyPEM} {
		for {
			var b *pem.Block
			b, data = pem.Decode(data)
			if b == nil {
				break
			}
			switch {
			case b.Type == "CERTIFICATE":
				c, err := x509.ParseCertificate(b.Bytes)
				if err != nil {
					return nil, nil, ErrBadPEM
				}
				certs = append(certs, c)
			case strings.HasSuffix(b.Type, "PRIVATE KEY"):
				if key != nil {
					return nil, nil, ErrBadPEM
				}
				k, err := parseKey(b.Bytes)
				if err != nil {
					return nil, nil, ErrBadPEM
				}
				key = k
			}
		}
	}
	if len(certs) == 0 || key == nil {
		return nil, nil, ErrBadPEM
	}
	return certs, key, nil
}

// parseKey reads a PKCS#8, PKCS#1 (RSA) or SEC 1 (EC) private key.
func parseKey(der []byte) (crypto.Signer, error) {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		if s, ok := k.(crypto.Signer); ok {
			return s, nil
		}
		return nil, errors.New("unsupported key type")
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	return nil, errors.New("unsupported private key")
}

// parseP12 reads a PKCS#12 file. golang.org/x/crypto/pkcs12 reads the
// legacy encryptions (3DES, RC2-40) that macOS Keychain Access exports;
// OpenSSL 3 exports AES by default (use -legacy, or upload PEM files).
func parseP12(data []byte, password string) ([]*x509.Certificate, crypto.Signer, error) {
	if len(password) > MaxPasswordLen {
		return nil, nil, ErrWrongPassword
	}
	if err := checkIterations(data, 0); err != nil {
		return nil, nil, err
	}
	blocks, err := pkcs12.ToPEM(data, password)
	if err != nil {
		if errors.Is(err, pkcs12.ErrIncorrectPassword) {
			return nil, nil, ErrWrongPassword
		}
		return nil, nil, ErrBadP12
	}
	var certs []*x509.Certificate
	var key crypto.Signer
	for _, b := range blocks {
		switch b.Type {
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, nil, ErrBadP12
			}
			certs = append(certs, c)
		case "PRIVATE KEY":
			if key != nil {
				return nil, nil, ErrBadP12
			}
			if key, err = parseKey(b.Bytes); err != nil {
				return nil, nil, ErrBadP12
			}
		}
	}
	if len(certs) == 0 || key == nil {
		return nil, nil, ErrBadP12
	}
	return certs, key, nil
}

// Upload validates and stores a certificate. It answers the stored
// certificate's Info and the topic it replaced ("" for a first upload or a
// renewal of the same topic).
func (s *Service) Upload(ctx context.Context, in Upload) (*Info, string, error) {
	now := s.now()
	p, err := Parse(in, now)
	if err != nil {
		return nil, "", err
	}
	var replaced string
	old, err := s.Store.PushCertificate(ctx)
	switch {
	case errors.Is(err, errs.ErrNotFound):
	case err != nil:
		return nil, "", err
	case old.Topic != p.Topic:
		if !in.ReplaceTopic {
			return nil, "", topicChangeError(old.Topic, p.Topic)
		}
		replaced = old.Topic
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(p.Key)
	if err != nil {
		return nil, "", errs.Wrap(errs.Invalid, "push_key_unsupported", "the private key type is not supported", err)
	}
	var certPEM bytes.Buffer
	for _, c := range append([]*x509.Certificate{p.Leaf}, p.Chain...) {
		pem.Encode(&certPEM, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	st := &Stored{
		Topic: p.Topic, CertPEM: certPEM.Bytes(),
		KeySealed: s.Box.Seal(string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))),
		Serial:    hex.EncodeToString(p.Leaf.SerialNumber.Bytes()),
		Subject:   p.Leaf.Subject.String(),
		NotBefore: p.Leaf.NotBefore.UTC(), NotAfter: p.Leaf.NotAfter.UTC(),
		UploadedAt: now.UTC(), UploadedBy: in.By,
	}
	if err := s.Store.PutPushCertificate(ctx, st); err != nil {
		return nil, "", err
	}
	s.mu.Lock()
	s.loaded = false // rebuild the client at the next push
	s.mu.Unlock()
	return s.info(st, now), replaced, nil
}

func (s *Service) info(st *Stored, now time.Time) *Info {
	left := st.NotAfter.Sub(now)
	days := int(left / (24 * time.Hour))
	return &Info{Topic: st.Topic, Subject: st.Subject, Serial: st.Serial, NotBefore: st.NotBefore, NotAfter: st.NotAfter,
		UploadedAt: st.UploadedAt, UploadedBy: st.UploadedBy, DaysLeft: days,
		ExpiringSoon: left < WarnBefore, Expired: left <= 0, Key: "***"}
}

// Info returns the stored certificate without its key; errs.ErrNotFound
// (code push_certificate_not_found) when none is uploaded.
func (s *Service) Info(ctx context.Context) (*Info, error) {
	st, err := s.Store.PushCertificate(ctx)
	if errors.Is(err, errs.ErrNotFound) {
		return nil, errs.Wrap(errs.NotFound, "push_certificate_not_found", "no MDM push certificate has been uploaded", err)
	}
	if err != nil {
		return nil, err
	}
	return s.info(st, s.now()), nil
}

// Topic returns the MDM push topic (the push certificate's UID,
// com.apple.mgmt.External.<uuid>), or an error wrapping
// push.ErrNotConfigured when no MDM push certificate is uploaded.
func (s *Service) Topic(ctx context.Context) (string, error) {
	st, err := s.Store.PushCertificate(ctx)
	if errors.Is(err, errs.ErrNotFound) {
		return "", ErrNotConfigured
	}
	if err != nil {
		return "", err
	}
	return st.Topic, nil
}

// CheckExpiry logs a warning when the certificate expires within
// WarnBefore (or has expired). It is the daily job of the Core and runs
// at start; it answers 1 when it warned.
func (s *Service) CheckExpiry(ctx context.Context) (int, error) {
	info, err := s.Info(ctx)
	if errs.Is(err, errs.NotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	switch {
	case info.Expired:
		s.log().WarnContext(ctx, "the MDM push certificate has EXPIRED: Apple devices no longer receive pushes; renew it in Apple's Push Certificates Portal (same Apple ID) and upload it in Settings",
			"topic", info.Topic, "not_after", info.NotAfter)
	case info.ExpiringSoon:
		s.log().WarnContext(ctx, "the MDM push certificate expires soon: renew it in Apple's Push Certificates Portal (same Apple ID) and upload it in Settings",
			"topic", info.Topic, "not_after", info.NotAfter, "days_left", info.DaysLeft)
	default:
		return 0, nil
	}
	return 1, nil
}

// clientFor returns the APNs client of the stored certificate, nil when
// none is stored. The client is rebuilt when the stored certificate
// changed; the previous one is closed after a grace period, so pushes in
// flight on it finish.
func (s *Service) clientFor(ctx context.Context) (*apns.Client, *Stored, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if s.loaded && now.Sub(s.checked) < RefreshInterval && now.Sub(s.checked) >= 0 {
		return s.client, s.current, nil
	}
	st, err := s.Store.PushCertificate(ctx)
	if errors.Is(err, errs.ErrNotFound) {
		st, err = nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	if st == nil || s.current == nil || st.Serial != s.current.Serial || !st.UploadedAt.Equal(s.current.UploadedAt) {
		var cl *apns.Client
		if st != nil {
			if cl, err = s.newClient(st); err != nil {
				return nil, nil, err
			}
		}
		if old := s.client; old != nil {
			time.AfterFunc(30*time.Second, func() { old.Close() })
		}
		s.client, s.current = cl, st
	}
	s.loaded, s.checked = true, now
	return s.client, s.current, nil
}

func (s *Service) newClient(st *Stored) (*apns.Client, error) {
	keyPEM, err := s.Box.Open(st.KeySealed)
	if err != nil {
		return nil, fmt.Errorf("MDM push certificate key: %w", err)
	}
	cert, err := tls.X509KeyPair(st.CertPEM, []byte(keyPEM))
	if err != nil {
		return nil, fmt.Errorf("MDM push certificate: %w", err)
	}
	return apns.New(apns.Config{Certificate: cert, URL: s.APNsURL, Topic: st.Topic, RootCAs: s.RootCAs, Proxy: s.Proxy})
}

// Close closes the APNs client.
func (s *Service) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client != nil {
		s.client.Close()
		s.client, s.current, s.loaded = nil, nil, false
	}
}

// Send sends an MDM push through the stored certificate; without one it
// returns an error wrapping push.ErrNotConfigured. The topic is the
// certificate's (a device registers the topic of the enrollment profile,
// which is the certificate's).
func (s *Service) Send(ctx context.Context, t push.Target) error {
	cl, st, err := s.clientFor(ctx)
	if err != nil {
		return err
	}
	if cl == nil {
		return ErrNotConfigured
	}
	t.Topic = st.Topic
	return cl.Send(ctx, t)
}

// Sender returns the push.Sender of the Core: MDM pushes (APNs targets
// with PushMagic, or with the certificate's topic) go through the stored
// certificate when there is one; everything else, and MDM pushes of a
// Core without a certificate, go to fallback (nil: push.ErrNotConfigured).
func (s *Service) Sender(fallback push.Sender) push.Sender {
	return &router{s: s, fallback: fallback}
}

type router struct {
	s        *Service
	fallback push.Sender
}

func (r *router) Send(ctx context.Context, t push.Target) error {
	if t.Provider == push.APNs {
		cl, st, err := r.s.clientFor(ctx)
		if err != nil {
			return err
		}
		if cl != nil && (t.PushMagic != "" || t.Topic == st.Topic) {
			if t.PushMagic == "" {
				// An MDM device is only ever woken by an MDM push.
				return fmt.Errorf("apns: MDM target without PushMagic: %w", push.ErrInvalidTarget)
			}
			t.Topic = st.Topic
			return cl.Send(ctx, t)
		}
	}
	if r.fallback == nil {
		return fmt.Errorf("push %s: %w", t.Provider, push.ErrNotConfigured)
	}
	return r.fallback.Send(ctx, t)
}

// checkIterations walks the DER of a PKCS#12 file (and every OCTET STRING
// that holds DER, where PKCS#12 nests its safe contents) and refuses any
// iteration count over MaxP12Iterations: in RFC 7292 both MacData
// (macSalt OCTET STRING, iterations INTEGER) and the PBE parameters (salt
// OCTET STRING, iterations INTEGER) put the count right after an OCTET
// STRING in a SEQUENCE.
func checkIterations(der []byte, depth int) error {
	if depth > maxP12Depth {
		return ErrBadP12
	}
	for len(der) > 0 {
		var v asn1.RawValue
		rest, err := asn1.Unmarshal(der, &v)
		if err != nil {
			if depth == 0 {
				return ErrBadP12
			}
			return nil // not DER: opaque bytes (encrypted content, a key)
		}
		der = rest
		switch {
		case v.Class == asn1.ClassUniversal && v.Tag == asn1.TagOctetString && !v.IsCompound:
			if err := checkIterations(v.Bytes, depth+1); err != nil && err != ErrBadP12 {
				return err
			}
		case v.IsCompound:
			if v.Class == asn1.ClassUniversal && v.Tag == asn1.TagSequence {
				if err := checkSequence(v.Bytes); err != nil {
					return err
				}
			}
			if err := checkIterations(v.Bytes, depth+1); err != nil {
				if depth == 0 || err != ErrBadP12 {
					return err
				}
			}
		}
	}
	return nil
}

// checkSequence refuses an INTEGER over MaxP12Iterations that follows an
// OCTET STRING among the direct children of a SEQUENCE.
func checkSequence(b []byte) error {
	prevOctets := false
	for len(b) > 0 {
		var v asn1.RawValue
		rest, err := asn1.Unmarshal(b, &v)
		if err != nil {
			return nil
		}
		b = rest
		isInt := v.Class == asn1.ClassUniversal && v.Tag == asn1.TagInteger
		if isInt && prevOctets {
			if len(v.Bytes) > 8 {
				return errTooManyIterations
			}
			var n int64
			if _, err := asn1.Unmarshal(v.FullBytes, &n); err != nil || n > MaxP12Iterations {
				return errTooManyIterations
			}
		}
		prevOctets = v.Class == asn1.ClassUniversal && v.Tag == asn1.TagOctetString
	}
	return nil
}

var errTooManyIterations = errs.E(errs.Invalid, "pkcs12_too_many_iterations",
	fmt.Sprintf("the PKCS#12 file asks for more than %d key-derivation iterations; export it again with the defaults", MaxP12Iterations))
