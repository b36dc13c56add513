package apple

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/micromdm/nanomdm/cryptoutil"

	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/pki"
)

// HeaderSignature carries the device's detached CMS signature of the body
// when the profile's SignMessage is true (Apple: "MDM payload",
// SignMessage; and "Pass an Identity Certificate Through a Proxy").
const HeaderSignature = "Mdm-Signature"

// Identification errors.
var (
	ErrBadSignature = errs.E(errs.Unauthenticated, "bad_signature", "the Mdm-Signature header is not a valid signature of the body")
	ErrForeignCert  = errs.E(errs.Unauthenticated, "certificate_untrusted", "the identity certificate was not issued by this Core's CA")
)

// Caller is the device a request comes from.
type Caller struct {
	DeviceID string
	// Serial is the identity certificate's serial (lower-case hex).
	Serial string
	Cert   *x509.Certificate
	// Enrollment is the enrollment bound to the certificate, nil before
	// Authenticate.
	Enrollment *Enrollment
}

// Identifier authenticates device requests by their identity certificate.
type Identifier struct {
	// Roots is the Core's CA (pki.CA.Pool()).
	Roots *x509.CertPool
	Store Store
	Now   func() time.Time

	// verified caches certificates whose chain to Roots was verified, by
	// the SHA-256 of their DER: a chain check costs a signature
	// verification, and a device presents the same certificate on every
	// request. Only the chain is cached; validity dates, revocation and
	// the device's state are checked on every request.
	verified sync.Map // [32]byte → struct{}
	cached   atomic.Int64
}

// maxCachedCerts bounds the chain cache; it is emptied when full (a cache
// miss costs one chain check).
const maxCachedCerts = 200_000

func (id *Identifier) now() time.Time {
	if id.Now != nil {
		return id.Now()
	}
	return time.Now()
}

// Identify returns the device of the request: its certificate comes from
// mutual TLS (already chain-checked by the TLS layer against the same CA)
// or from the Mdm-Signature header over body. The certificate must be
// recorded for the device its CN names, not revoked, and that device
// enrolled or active.
func (id *Identifier) Identify(ctx context.Context, r *http.Request, body []byte) (*Caller, error) {
	var cert *x509.Certificate
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		cert = r.TLS.VerifiedChains[0][0]
	} else {
		sig := r.Header.Get(HeaderSignature)
		switch {
		case sig == "":
			return nil, device.ErrNoClientCert
		case len(sig) > MaxSignatureHeader:
			return nil, ErrBadSignature
		}
		c, err := cryptoutil.VerifyMdmSignature(sig, body)
		if err != nil {
			return nil, errs.Wrap(errs.Unauthenticated, ErrBadSignature.Code, ErrBadSignature.Message, err)
		}
		if err := id.verifyChain(c); err != nil {
			return nil, err
		}
		cert = c
	}
	now := id.now()
	if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return nil, device.ErrCertRevoked
	}
	serial := pki.SerialHex(cert.SerialNumber)
	got, err := id.Store.Identity(ctx, serial)
	if errors.Is(err, errs.ErrNotFound) {
		return nil, device.ErrCertRevoked
	}
	if err != nil {
		return nil, fmt.Errorf("apple: identify: %w", err)
	}
	if got.Revoked || got.DeviceID != cert.Subject.CommonName ||
		(got.DeviceState != string(device.StateEnrolled) && got.DeviceState != string(device.StateActive)) {
		return nil, device.ErrCertRevoked
	}
	return &Caller{DeviceID: got.DeviceID, Serial: serial, Cert: cert, Enrollment: got.Enrollment}, nil
}

func (id *Identifier) verifyChain(c *x509.Certificate) error {
	key := sha256.Sum256(c.Raw)
	if _, ok := id.verified.Load(key); ok {
		return nil
	}
	_, err := c.Verify(x509.VerifyOptions{Roots: id.Roots, CurrentTime: id.now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		return errs.Wrap(errs.Unauthenticated, ErrForeignCert.Code, ErrForeignCert.Message, err)
	}
	if id.cached.Add(1) > maxCachedCerts {
		id.verified.Clear()
		id.cached.Store(1)
	}
	id.verified.Store(key, struct{}{})
	return nil
}
