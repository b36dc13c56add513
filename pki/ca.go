package pki

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/custos-uem/custos/errs"
)

// File names in the data directory.
const (
	CAFile     = "ca.pem"     // the root certificate, 0644: devices and admins need it
	CAKeyFile  = "ca-key.pem" // the root key, 0600
	TLSFile    = "tls.pem"    // the Core's server certificate chain
	TLSKeyFile = "tls-key.pem"
)

// Validity periods.
const (
	CAValidity     = 10 * 365 * 24 * time.Hour
	ServerValidity = 397 * 24 * time.Hour // the longest lifetime clients such as Apple's accept
	DeviceValidity = 365 * 24 * time.Hour
	// renewBefore: a server certificate closer than this to expiry, or not
	// covering the configured names, is issued again at start.
	renewBefore = 30 * 24 * time.Hour
	// backdate absorbs small clock differences between Core and devices.
	backdate = 5 * time.Minute
	// crlValidity is the NextUpdate distance of a CRL; crlMaxAge is how long
	// a signed CRL is served from cache when nothing was revoked.
	crlValidity = 24 * time.Hour
	crlMaxAge   = 5 * time.Minute
)

// Key limits for device keys.
const (
	MinRSABits = 2048
	MaxRSABits = 8192
	// MaxCSRBytes bounds a PEM or DER CSR before it is parsed.
	MaxCSRBytes = 16 << 10
)

// CA is the internal certificate authority.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	key     crypto.Signer
	pool    *x509.CertPool
	now     func() time.Time
	rand    io.Reader

	// CRLURL, when set, is written into every device certificate as its
	// CRL distribution point.
	CRLURL string

	crlMu  sync.Mutex
	crl    []byte
	crlAt  time.Time
	crlGen uint64 // bumped by InvalidateCRL
	crlFor uint64 // generation the cached CRL was built for
}

// Options tune a CA. Zero values take the defaults (time.Now, crypto/rand).
type Options struct {
	Now  func() time.Time
	Rand io.Reader
	// Organization is written into the root's subject.
	Organization string
}

func (o *Options) defaults() {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Organization == "" {
		o.Organization = "Custos"
	}
}

// LoadOrCreateCA loads the CA from dir, or creates it there on first start
// (created reports which). The key is written 0600, atomically.
func LoadOrCreateCA(dir string, opt Options) (ca *CA, created bool, err error) {
	opt.defaults()
	certPEM, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err == nil {
		keyPEM, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
		if err != nil {
			return nil, false, fmt.Errorf("pki: the CA certificate exists but its key does not: %w", err)
		}
		ca, err := parseCA(certPEM, keyPEM, opt)
		return ca, false, err
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("pki: read CA: %w", err)
	}
	ca, keyPEM, err := newCA(opt)
	if err != nil {
		return nil, false, err
	}
	// Key first: a crash between the two writes leaves a key without a
	// certificate, which the next start overwrites, never the reverse.
	if err := WriteFileAtomic(filepath.Join(dir, CAKeyFile), keyPEM, 0o600); err != nil {
		return nil, false, err
	}
	if err := WriteFileAtomic(filepath.Join(dir, CAFile), ca.CertPEM, 0o644); err != nil {
		return nil, false, err
	}
	return ca, true, nil
}

func newCA(opt Options) (*CA, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), opt.Rand)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: generate CA key: %w", err)
	}
	serial, err := randomSerial(opt.Rand)
	if err != nil {
		return nil, nil, err
	}
	now := opt.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:   "Custos Root CA " + serial.Text(16)[:8],
			Organization: []string{opt.Organization},
		},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(CAValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(opt.Rand, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: create CA certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	ca, err := parseCA(certPEM, keyPEM, opt)
	return ca, keyPEM, err
}

func parseCA(certPEM, keyPEM []byte, opt Options) (*CA, error) {
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, errors.New("pki: CA certificate file holds no PEM certificate")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: parse CA certificate: %w", err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: CA key: %w", err)
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, errors.New("pki: the CA key does not match the CA certificate")
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{Cert: cert, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), key: key, pool: pool, now: opt.Now, rand: opt.Rand}, nil
}

func parseKey(keyPEM []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(keyPEM)
	if b == nil {
		return nil, errors.New("no PEM block")
	}
	var k any
	var err error
	switch b.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("unsupported PEM block %q", b.Type)
	}
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("key cannot sign")
	}
	return s, nil
}

func publicKeysEqual(a, b any) bool {
	type eq interface{ Equal(crypto.PublicKey) bool }
	ea, ok := a.(eq)
	return ok && ea.Equal(b)
}

// Pool returns a pool holding only the root, for verifying device
// certificates.
func (ca *CA) Pool() *x509.CertPool { return ca.pool }

func randomSerial(r io.Reader) (*big.Int, error) {
	// 128 random bits, positive and never zero (RFC 5280 §4.1.2.2 allows up
	// to 20 octets).
	max := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(r, max)
		if err != nil {
			return nil, fmt.Errorf("pki: serial: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// SerialHex is the form in which serials are stored and compared.
func SerialHex(n *big.Int) string { return hex.EncodeToString(n.Bytes()) }

// LoadOrIssueServerCert returns the Core's TLS certificate from dir,
// issuing (and writing) a new one from the CA when there is none, it is
// near expiry, it was not issued by this CA, or it does not cover hosts.
func (ca *CA) LoadOrIssueServerCert(dir string, hosts []string) (tls.Certificate, error) {
	certPath, keyPath := filepath.Join(dir, TLSFile), filepath.Join(dir, TLSKeyFile)
	if c, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil && ca.serverCertFits(c, hosts) {
		return c, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), ca.rand)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := randomSerial(ca.rand)
	if err != nil {
		return tls.Certificate{}, err
	}
	now := ca.now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: hosts[0], Organization: ca.Cert.Subject.Organization},
		NotBefore:    now.Add(-backdate),
		NotAfter:     now.Add(ServerValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(ca.rand, tmpl, ca.Cert, key.Public(), ca.key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: issue server certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	chainPEM := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), ca.CertPEM...)
	if err := WriteFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, err
	}
	if err := WriteFileAtomic(certPath, chainPEM, 0o644); err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(chainPEM, keyPEM)
}

func (ca *CA) serverCertFits(c tls.Certificate, hosts []string) bool {
	if len(c.Certificate) == 0 {
		return false
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil || ca.now().Add(renewBefore).After(leaf.NotAfter) {
		return false
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.pool, CurrentTime: ca.now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return false
	}
	for _, h := range hosts {
		if leaf.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

// CSR errors.
var (
	ErrCSRMalformed  = errs.E(errs.Invalid, "csr_malformed", "the certificate request is not a valid PEM or DER PKCS#10 request")
	ErrCSRSignature  = errs.E(errs.Invalid, "csr_bad_signature", "the certificate request's signature does not verify")
	ErrCSRWeakKey    = errs.E(errs.Invalid, "csr_weak_key", fmt.Sprintf("the certificate request's key is too weak: use ECDSA P-256 or stronger, Ed25519, or RSA of %d bits or more", MinRSABits))
	ErrCSRTooLarge   = errs.E(errs.TooLarge, "csr_too_large", "the certificate request is too large")
	ErrCSRSubject    = errs.E(errs.Forbidden, "csr_subject_mismatch", "the certificate request's subject does not match the enrollment session")
	errCSRTrailing   = errs.E(errs.Invalid, "csr_malformed", "the certificate request has trailing data")
	errCSRWrongBlock = errs.E(errs.Invalid, "csr_malformed", "the PEM block is not a CERTIFICATE REQUEST")
)

// ParseCSR parses a PEM ("CERTIFICATE REQUEST") or DER PKCS#10 request of
// at most MaxCSRBytes, checks its self-signature, and checks that its key is
// strong enough (CheckKey).
func ParseCSR(b []byte) (*x509.CertificateRequest, error) {
	if len(b) > MaxCSRBytes {
		return nil, ErrCSRTooLarge
	}
	der := b
	if blk, rest := pem.Decode(b); blk != nil {
		if blk.Type != "CERTIFICATE REQUEST" && blk.Type != "NEW CERTIFICATE REQUEST" {
			return nil, errCSRWrongBlock
		}
		if len(bytes.TrimSpace(rest)) != 0 {
			return nil, errCSRTrailing
		}
		der = blk.Bytes
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, ErrCSRMalformed.Code, ErrCSRMalformed.Message, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, errs.Wrap(errs.Invalid, ErrCSRSignature.Code, ErrCSRSignature.Message, err)
	}
	if err := CheckKey(csr.PublicKey); err != nil {
		return nil, err
	}
	return csr, nil
}

// CheckKey accepts ECDSA on P-256, P-384 or P-521, Ed25519, and RSA from
// MinRSABits to MaxRSABits; anything else is ErrCSRWeakKey.
func CheckKey(pub any) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
	case ed25519.PublicKey:
		return nil
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n >= MinRSABits && n <= MaxRSABits {
			return nil
		}
	}
	return ErrCSRWeakKey
}

// SignDeviceCSR issues a client certificate for csr whose subject is
// exactly commonName (the device ID of the enrollment session). The CSR's
// common name must equal commonName (else ErrCSRSubject); nothing else of
// its subject or extensions is copied: only its public key is certified.
func (ca *CA) SignDeviceCSR(csr *x509.CertificateRequest, commonName string, validity time.Duration) (*x509.Certificate, error) {
	if csr.Subject.CommonName != commonName {
		return nil, ErrCSRSubject
	}
	if validity <= 0 {
		validity = DeviceValidity
	}
	serial, err := randomSerial(ca.rand)
	if err != nil {
		return nil, err
	}
	now := ca.now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: commonName, Organization: ca.Cert.Subject.Organization, OrganizationalUnit: []string{"device"}},
		NotBefore:    now.Add(-backdate),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if _, ok := csr.PublicKey.(*rsa.PublicKey); ok {
		// RSA keys also encipher (TLS 1.2 RSA key exchange, SCEP).
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	if ca.CRLURL != "" {
		tmpl.CRLDistributionPoints = []string{ca.CRLURL}
	}
	der, err := x509.CreateCertificate(ca.rand, tmpl, ca.Cert, csr.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("pki: sign device certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

// InvalidateCRL makes the next CRL call sign a fresh list. Call it after
// every revocation.
func (ca *CA) InvalidateCRL() {
	ca.crlMu.Lock()
	ca.crlGen++
	ca.crlMu.Unlock()
}

// CRL returns the DER CRL of every revoked, unexpired certificate. It is
// re-signed after InvalidateCRL or when the cached one is older than
// crlMaxAge (another Core sharing the database may have revoked since); its
// number increases with every signing.
func (ca *CA) CRL(ctx context.Context, store RevocationStore) ([]byte, error) {
	ca.crlMu.Lock()
	defer ca.crlMu.Unlock()
	now := ca.now()
	if ca.crl != nil && ca.crlFor == ca.crlGen && now.Sub(ca.crlAt) < crlMaxAge {
		return ca.crl, nil
	}
	revoked, err := store.RevokedCerts(ctx, now)
	if err != nil {
		return nil, fmt.Errorf("pki: list revoked certificates: %w", err)
	}
	entries := make([]x509.RevocationListEntry, 0, len(revoked))
	for _, r := range revoked {
		b, err := hex.DecodeString(r.Serial)
		if err != nil {
			return nil, fmt.Errorf("pki: stored serial %q: %w", r.Serial, err)
		}
		entries = append(entries, x509.RevocationListEntry{SerialNumber: new(big.Int).SetBytes(b), RevocationTime: r.RevokedAt})
	}
	// The CRL number must grow with every CRL issued (RFC 5280 §5.2.3);
	// microseconds since the epoch do, across restarts and processes.
	number := big.NewInt(now.UnixMicro())
	der, err := x509.CreateRevocationList(ca.rand, &x509.RevocationList{
		RevokedCertificateEntries: entries,
		Number:                    number,
		ThisUpdate:                now,
		NextUpdate:                now.Add(crlValidity),
	}, ca.Cert, ca.key)
	if err != nil {
		return nil, fmt.Errorf("pki: sign CRL: %w", err)
	}
	ca.crl, ca.crlAt, ca.crlFor = der, now, ca.crlGen
	return der, nil
}

// Fingerprint is the SHA-256 of the root, for operators to compare.
func (ca *CA) Fingerprint() string {
	s := sha256.Sum256(ca.Cert.Raw)
	return hex.EncodeToString(s[:])
}
