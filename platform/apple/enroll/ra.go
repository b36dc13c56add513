package enroll

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/custos-uem/custos/pki"
)

// Files of the SCEP registration authority in the data directory.
const (
	RAFile    = "scep-ra.pem"
	RAKeyFile = "scep-ra-key.pem" // 0600
	// RACommonName names the RA certificate.
	RACommonName = "Custos SCEP RA"
	// RAValidity is how long an RA certificate is issued for; one closer
	// than raRenewBefore to its end is issued again at start.
	RAValidity    = 2 * 365 * 24 * time.Hour
	raRenewBefore = 30 * 24 * time.Hour
	raKeyBits     = 2048
)

// RA is the SCEP registration authority (RFC 8894 §2.1): an RSA-2048 key
// and a certificate the CA signed for it.
//
// Why an RA: SCEP requests are CMS EnvelopedData encrypted to the key that
// GetCACert announces, and clients only do RSA key transport (RFC 8894
// §3.5.1; Apple's devices and every client library, smallstep/scep's
// pkcs7.Encrypt included). The Core's CA is ECDSA P-256, so it cannot be
// that recipient; the RA decrypts requests and signs the CertRep replies,
// and the CA still issues every certificate.
type RA struct {
	Cert *x509.Certificate
	Key  *rsa.PrivateKey
}

// LoadOrCreateRA loads the RA from dir, or creates it there (the key 0600,
// atomically) when there is none, it was not signed by ca, or it is near
// its end.
func LoadOrCreateRA(dir string, ca *pki.CA, now time.Time) (*RA, error) {
	certPath, keyPath := filepath.Join(dir, RAFile), filepath.Join(dir, RAKeyFile)
	if ra, err := loadRA(certPath, keyPath); err == nil && ra.fits(ca, now) {
		return ra, nil
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	key, err := rsa.GenerateKey(rand.Reader, raKeyBits)
	if err != nil {
		return nil, fmt.Errorf("enroll: RA key: %w", err)
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: RACommonName}}, key)
	if err != nil {
		return nil, fmt.Errorf("enroll: RA request: %w", err)
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("enroll: RA request: %w", err)
	}
	// The CA's one issuing method certifies the RA's key under its name
	// with digitalSignature and keyEncipherment (an RSA key): what an RA
	// needs to sign CertReps and to receive envelopes.
	cert, err := ca.SignDeviceCSR(csr, RACommonName, RAValidity)
	if err != nil {
		return nil, fmt.Errorf("enroll: RA certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	// Key first: a crash between the writes leaves a key without a matching
	// certificate, which the next start replaces.
	if err := pki.WriteFileAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, err
	}
	if err := pki.WriteFileAtomic(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644); err != nil {
		return nil, err
	}
	return &RA{Cert: cert, Key: key}, nil
}

func loadRA(certPath, keyPath string) (*RA, error) {
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		if _, serr := os.Stat(certPath); errors.Is(serr, os.ErrNotExist) {
			return nil, serr
		}
		// Unreadable or mismatched files: issue a new RA (nothing else
		// depends on the old one; devices fetch it with GetCACert).
		return &RA{}, nil
	}
	key, ok := pair.PrivateKey.(*rsa.PrivateKey)
	if !ok {
		return &RA{}, nil
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return &RA{}, nil
	}
	return &RA{Cert: cert, Key: key}, nil
}

func (ra *RA) fits(ca *pki.CA, now time.Time) bool {
	if ra.Cert == nil || ra.Key == nil || now.Add(raRenewBefore).After(ra.Cert.NotAfter) {
		return false
	}
	return ra.Cert.CheckSignatureFrom(ca.Cert) == nil
}
