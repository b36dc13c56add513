package dep

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"
)

// maxChain bounds the certificates between a device identity and Apple's
// root (the device CA and its issuer today).
const maxChain = 4

// Roots are the trust anchors of MachineInfo signatures: Apple's root
// certificate (docs/apple.md says where to get it).
type Roots struct {
	pool  *x509.CertPool
	certs []*x509.Certificate
}

// RootsOf returns Roots of certs.
func RootsOf(certs ...*x509.Certificate) *Roots {
	r := &Roots{pool: x509.NewCertPool()}
	for _, c := range certs {
		r.pool.AddCert(c)
		r.certs = append(r.certs, c)
	}
	return r
}

// ParseRoots reads PEM certificates.
func ParseRoots(pemBytes []byte) (*Roots, error) {
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, pemBytes = pem.Decode(pemBytes)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return RootsOf(certs...), nil
}

// verify checks that leaf chains to the roots at now through
// intermediates. Go's verifier first; when it finds no chain (which is how
// it reports a link signed with SHA-1, as older Apple device identity
// chains are: x509.UnknownAuthorityError with the insecure algorithm as
// its hint), a walk of the chain that accepts SHA-1 signatures and checks
// everything else the same way: validity at now, CA basic constraints of
// every issuer, one of our roots at the end.
// The CMS signature over the MachineInfo itself is checked by pkcs7.
func (r *Roots) verify(leaf *x509.Certificate, intermediates []*x509.Certificate, now time.Time) error {
	inter := x509.NewCertPool()
	for _, c := range intermediates {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: r.pool, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	// Go reports a SHA-1 link as an unknown authority (the insecure
	// algorithm is only its hint), or as the insecure algorithm itself.
	var insecure x509.InsecureAlgorithmError
	var unknown x509.UnknownAuthorityError
	if err == nil || !(errors.As(err, &insecure) || errors.As(err, &unknown)) {
		return err
	}
	if werr := r.walk(leaf, intermediates, now); werr != nil {
		return err // Go's reason is the one to show
	}
	return nil
}

func (r *Roots) walk(leaf *x509.Certificate, intermediates []*x509.Certificate, now time.Time) error {
	valid := func(c *x509.Certificate) bool { return !now.Before(c.NotBefore) && !now.After(c.NotAfter) }
	signs := func(parent, child *x509.Certificate) bool {
		return bytes.Equal(child.RawIssuer, parent.RawSubject) && parent.BasicConstraintsValid && parent.IsCA &&
			parent.CheckSignature(child.SignatureAlgorithm, child.RawTBSCertificate, child.Signature) == nil
	}
	cur := leaf
	for depth := 0; depth <= maxChain; depth++ {
		if !valid(cur) {
			return fmt.Errorf("certificate %q is outside its validity", cur.Subject.CommonName)
		}
		for _, root := range r.certs {
			if valid(root) && signs(root, cur) {
				return nil
			}
		}
		var next *x509.Certificate
		for _, p := range intermediates {
			if p != cur && signs(p, cur) {
				next = p
				break
			}
		}
		if next == nil {
			return fmt.Errorf("certificate %q: no issuer among the message's certificates or the roots", cur.Subject.CommonName)
		}
		cur = next
	}
	return errors.New("certificate chain too long")
}
