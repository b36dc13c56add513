package enrolltest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"time"

	"github.com/smallstep/scep"
	"github.com/smallstep/scep/x509util"
)

// SCEPClient is a SCEP client (RFC 8894) built on smallstep/scep's
// client-side message functions, for tests of the Core's SCEP server.
type SCEPClient struct {
	URL  string // the SCEP URL of the profile
	HTTP *http.Client
}

func (c *SCEPClient) get(ctx context.Context, op string, extra url.Values) (*http.Response, []byte, error) {
	q := url.Values{"operation": {op}}
	for k, v := range extra {
		q[k] = v
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+"?"+q.Encode(), nil)
	if err != nil {
		return nil, nil, err
	}
	return c.do(req)
}

func (c *SCEPClient) do(req *http.Request) (*http.Response, []byte, error) {
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, b, err
}

// CACaps is GetCACaps.
func (c *SCEPClient) CACaps(ctx context.Context) (string, error) {
	resp, b, err := c.get(ctx, "GetCACaps", nil)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GetCACaps: %s", resp.Status)
	}
	return string(b), nil
}

// CACerts is GetCACert: the certificates and the media type they came as.
func (c *SCEPClient) CACerts(ctx context.Context) ([]*x509.Certificate, string, error) {
	resp, b, err := c.get(ctx, "GetCACert", nil)
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("GetCACert: %s", resp.Status)
	}
	ct := resp.Header.Get("Content-Type")
	if ct == "application/x-x509-ca-ra-cert" {
		certs, err := scep.CACerts(b)
		return certs, ct, err
	}
	cert, err := x509.ParseCertificate(b)
	return []*x509.Certificate{cert}, ct, err
}

// Request is one PKCSReq.
type Request struct {
	Key        *rsa.PrivateKey
	CommonName string
	Challenge  string
	// Recipients of the envelope (GetCACert's answer).
	Recipients []*x509.Certificate
}

// Message returns the PKCSReq PKIMessage of r, signed by a fresh
// self-signed certificate of r.Key (RFC 8894 §2.3), and that certificate.
func (r *Request) Message() (*scep.PKIMessage, *x509.Certificate, error) {
	csrDER, err := x509util.CreateCertificateRequest(rand.Reader, &x509util.CertificateRequest{
		CertificateRequest: x509.CertificateRequest{Subject: pkix.Name{CommonName: r.CommonName}},
		ChallengePassword:  r.Challenge,
	}, r.Key)
	if err != nil {
		return nil, nil, err
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "SCEP SIGNER"},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &r.Key.PublicKey, r.Key)
	if err != nil {
		return nil, nil, err
	}
	signer, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	msg, err := scep.NewCSRRequest(csr, &scep.PKIMessage{MessageType: scep.PKCSReq, Recipients: r.Recipients,
		SignerKey: r.Key, SignerCert: signer}, scep.WithCertsSelector(scep.EnciphermentCertsSelector()))
	return msg, signer, err
}

// Result is the server's answer to a PKIOperation.
type Result struct {
	HTTPStatus int
	Body       []byte
	Status     scep.PKIStatus
	FailInfo   scep.FailInfo
	// Cert is the issued certificate (Status SUCCESS).
	Cert *x509.Certificate
}

// PKIOperation sends raw by POST (or GET with message=) and returns the
// answer; a CertRep is parsed.
func (c *SCEPClient) PKIOperation(ctx context.Context, raw []byte, useGET bool) (*Result, *scep.PKIMessage, error) {
	var resp *http.Response
	var b []byte
	var err error
	if useGET {
		resp, b, err = c.get(ctx, "PKIOperation", url.Values{"message": {base64.StdEncoding.EncodeToString(raw)}})
	} else {
		var req *http.Request
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, c.URL+"?operation=PKIOperation", bytes.NewReader(raw))
		if err != nil {
			return nil, nil, err
		}
		req.Header.Set("Content-Type", "application/x-pki-message")
		resp, b, err = c.do(req)
	}
	if err != nil {
		return nil, nil, err
	}
	res := &Result{HTTPStatus: resp.StatusCode, Body: b}
	if resp.StatusCode != http.StatusOK {
		return res, nil, nil
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-pki-message" {
		return res, nil, fmt.Errorf("PKIOperation answered %q", ct)
	}
	rep, err := scep.ParsePKIMessage(b)
	if err != nil {
		return res, nil, fmt.Errorf("parse CertRep: %w", err)
	}
	if rep.MessageType != scep.CertRep || rep.CertRepMessage == nil {
		return res, nil, errors.New("the answer is not a CertRep")
	}
	res.Status, res.FailInfo = rep.PKIStatus, rep.FailInfo
	return res, rep, nil
}

// Enroll runs GetCACert and a PKCSReq for r (Recipients from GetCACert
// when empty) and decrypts the issued certificate.
func (c *SCEPClient) Enroll(ctx context.Context, r Request, useGET bool) (*Result, error) {
	if len(r.Recipients) == 0 {
		certs, _, err := c.CACerts(ctx)
		if err != nil {
			return nil, err
		}
		r.Recipients = certs
	}
	msg, signer, err := r.Message()
	if err != nil {
		return nil, err
	}
	res, rep, err := c.PKIOperation(ctx, msg.Raw, useGET)
	if err != nil || rep == nil || res.Status != scep.SUCCESS {
		return res, err
	}
	if err := rep.DecryptPKIEnvelope(signer, r.Key); err != nil {
		return res, fmt.Errorf("decrypt CertRep: %w", err)
	}
	res.Cert = rep.CertRepMessage.Certificate
	return res, nil
}
