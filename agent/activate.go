package agent

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"

	wire "github.com/custos-uem/custos/platform/agent"
)

// Activation is the outcome of Activate.
type Activation struct {
	DeviceID       string
	ActivationType string
	// State is the device state after the first acknowledgment: "active"
	// when the activation is complete.
	State string
}

// Activate activates the device with the user's login (email address or
// username) and activation password: steps 5–12 of the seed's Android MDM
// activation. It replaces whatever activation the Store held. On success
// the device is "active" and the Client is ready to Run.
//
// Errors: a *ServerError (errors.As) when the Core refused a step, its code
// and request ID in the message ("activation refused: activation_password_
// invalid: … (HTTP 401, request ID 1a2b…)"); other errors for the network, the Store or
// an answer that does not hold together. An error after enrollment (step 8)
// leaves the device enrolled: Run finishes the activation.
func (c *Client) Activate(ctx context.Context, login, password string) (*Activation, error) {
	c.op.Lock()
	defer c.op.Unlock()
	base := c.url()
	if base == "" {
		return nil, errors.New("no server URL to activate with")
	}
	inv, err := c.collect(ctx)
	if err != nil {
		return nil, err
	}

	// Steps 5–6: credentials and device identity → enrollment session.
	var ar wire.ActivateResponse
	resp, err := c.post(ctx, c.pre, base, wire.PathActivate, wire.ActivateRequest{
		Login: login, Password: password, Platform: inv.Platform, OSVersion: inv.OSVersion,
		HardwareID: inv.HardwareID, Model: inv.Model, Name: inv.Name,
	}, nil, false, maxActivateAnswer, &ar)
	if err != nil {
		return nil, stepError("activation", base, err)
	}
	if ar.DeviceID == "" || len(ar.DeviceID) > wire.MaxField || ar.CSRCommonName == "" || len(ar.CSRCommonName) > wire.MaxField {
		return nil, errors.New("activation: the Core's answer lacks a device ID or CSR common name")
	}
	var session *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == wire.SessionCookie && ck.Value != "" {
			session = ck
		}
	}
	if session == nil {
		return nil, fmt.Errorf("activation: the Core opened no enrollment session (no %s cookie)", wire.SessionCookie)
	}

	// Step 7: a fresh key, saved before the CSR leaves the device, so a
	// certificate the Core signs always has its key on disk.
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	if err := c.store.Write(ItemKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
		return nil, fmt.Errorf("save key: %w", err)
	}
	st := &State{
		ServerURL:      base,
		DeviceID:       ar.DeviceID,
		ActivationType: ar.ActivationType,
		Platform:       inv.Platform,
		HardwareID:     inv.HardwareID,
		State:          StateEnrolling,
		ServerTrust:    TrustSystem,
		Relays:         c.relays(),
	}
	switch {
	case len(c.serverCAPEM) > 0:
		st.ServerTrust = TrustCAFile
	case c.serverCAs != nil:
		st.ServerTrust = TrustPool
	}
	c.mu.Lock()
	if c.st != nil {
		st.Simulation = c.st.Simulation
	}
	c.st, c.mtls, c.leaf, c.idErr = st, nil, nil, errors.New("activation in progress")
	if c.mtlsTr != nil {
		c.mtlsTr.CloseIdleConnections()
		c.mtlsTr = nil
	}
	c.mu.Unlock()
	if err := SaveState(c.store, st); err != nil {
		return nil, fmt.Errorf("save state: %w", err)
	}
	csr, err := x509.CreateCertificateRequest(crand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: ar.CSRCommonName},
	}, key)
	if err != nil {
		return nil, fmt.Errorf("create CSR: %w", err)
	}
	var er wire.EnrollResponse
	if _, err := c.post(ctx, c.pre, base, wire.PathEnroll, wire.EnrollRequest{
		CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr})),
	}, session, false, maxEnrollAnswer, &er); err != nil {
		return nil, stepError("enrollment", base, err)
	}

	// Step 8c: check what came back before trusting it.
	id, err := c.identity([]byte(er.Certificate), []byte(er.CA), key)
	if err != nil {
		return nil, fmt.Errorf("enrollment: the Core's certificate is unusable: %w", err)
	}
	for _, w := range []struct {
		name string
		data []byte
	}{{ItemCert, []byte(er.Certificate)}, {ItemCA, []byte(er.CA)}} {
		if err := c.store.Write(w.name, w.data); err != nil {
			return nil, fmt.Errorf("save %s: %w", w.name, err)
		}
	}
	if st.ServerTrust == TrustCAFile {
		if err := c.store.Write(ItemServerCA, c.serverCAPEM); err != nil {
			return nil, fmt.Errorf("save %s: %w", ItemServerCA, err)
		}
	}
	st.State = StateEnrolled
	st.CertSerial = strings.ToLower(id.leaf.SerialNumber.Text(16))
	st.CertNotAfter = id.leaf.NotAfter.UTC()
	st.ActivatedAt = c.clock.Now().UTC()
	if err := SaveState(c.store, st); err != nil {
		return nil, fmt.Errorf("save state: %w", err)
	}
	c.install(id)
	c.log.Info("enrolled", "device_id", st.DeviceID, "cert_serial", st.CertSerial)

	// Steps 9–12 over mutual TLS.
	res, err := c.checkin(ctx)
	if err != nil {
		if errors.Is(err, ErrRefused) {
			return nil, fmt.Errorf("enrolled as device %s, but %w", st.DeviceID, err)
		}
		return nil, fmt.Errorf("enrolled as device %s, but the first check-in failed (run the agent to finish): %w", st.DeviceID, err)
	}
	out := &Activation{DeviceID: st.DeviceID, ActivationType: st.ActivationType, State: res.State}
	if res.State != StateActive {
		return out, fmt.Errorf("device %s acknowledged its configuration but the Core reports it %q, not active", st.DeviceID, res.State)
	}
	c.log.Info("activated", "device_id", st.DeviceID, "activation_type", st.ActivationType)
	return out, nil
}

// stepError words a failed pre-certificate step for the user.
func stepError(step, base string, err error) error {
	var se *ServerError
	if errors.As(err, &se) {
		if se.Status >= 500 {
			return fmt.Errorf("%s failed: %w", step, se)
		}
		return fmt.Errorf("%s refused: %w", step, se)
	}
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		return fmt.Errorf("%s failed: cannot talk to the Core at %s: %w (give the CA that signs the Core's certificate with --ca FILE)", step, base, err)
	}
	return fmt.Errorf("%s failed: cannot talk to the Core at %s: %w", step, base, err)
}

// identity is a verified client certificate with its key and trust.
type identity struct {
	cert  tls.Certificate
	leaf  *x509.Certificate
	roots *x509.CertPool // for the Core's TLS certificate
}

// identity checks that certPEM is a client certificate for key that chains
// to caPEM, and builds the trust for the Core's certificate: the CA plus
// the server trust of activation.
func (c *Client) identity(certPEM, caPEM []byte, key crypto.Signer) (*identity, error) {
	leaf, err := firstCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	cas, err := allCerts(caPEM)
	if err != nil {
		return nil, fmt.Errorf("CA: %w", err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return nil, errors.New("the certificate is not for this device's key")
	}
	caPool := x509.NewCertPool()
	chain := [][]byte{leaf.Raw}
	for _, ca := range cas {
		caPool.AddCert(ca)
		if !bytes.Equal(ca.RawIssuer, ca.RawSubject) {
			chain = append(chain, ca.Raw) // an intermediate goes with the leaf
		}
	}
	now := c.clock.Now()
	if now.Before(leaf.NotBefore) {
		now = leaf.NotBefore // the device's clock is behind the Core's: the Core judges validity
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots: caPool, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return nil, fmt.Errorf("the certificate does not chain to the CA: %w", err)
	}
	roots, err := c.serverRoots()
	if err != nil {
		return nil, err
	}
	for _, ca := range cas {
		roots.AddCert(ca)
	}
	return &identity{
		cert:  tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf},
		leaf:  leaf,
		roots: roots,
	}, nil
}

// serverRoots returns a fresh pool of what verifies the Core's TLS
// certificate besides the CA of step 8: the ServerCAs option, else the
// server CA saved at activation, else the system roots.
func (c *Client) serverRoots() (*x509.CertPool, error) {
	if c.serverCAs != nil {
		return c.serverCAs.Clone(), nil
	}
	c.mu.Lock()
	trust := TrustSystem
	if c.st != nil && c.st.ServerTrust != "" {
		trust = c.st.ServerTrust
	}
	c.mu.Unlock()
	switch trust {
	case TrustCAFile:
		b, err := c.store.Read(ItemServerCA)
		if err != nil {
			return nil, fmt.Errorf("server CA: %w", err)
		}
		p := x509.NewCertPool()
		if !p.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("server CA: %s holds no certificate", ItemServerCA)
		}
		return p, nil
	case TrustPool:
		// The pool given at activation was not saved: the CA of step 8
		// alone verifies the Core (the default Core setup).
		return x509.NewCertPool(), nil
	default:
		p, err := x509.SystemCertPool()
		if err != nil {
			return x509.NewCertPool(), nil
		}
		return p, nil
	}
}

// install makes id the Client's identity: a mutual-TLS client on a clone of
// the base Transport, with its own connections.
func (c *Client) install(id *identity) {
	tr := c.baseTr.Clone()
	cfg := tr.TLSClientConfig
	if cfg == nil {
		cfg = &tls.Config{}
	}
	cfg.MinVersion = max(cfg.MinVersion, tls.VersionTLS12)
	cfg.RootCAs = id.roots
	cfg.Certificates = nil
	cert := id.cert
	// Always offer the certificate, whatever CAs the Core's request names.
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	// Resuming a TLS session skips both certificate verifications and the
	// key exchange's signatures, most of a reconnect's cost on either side.
	// It weakens nothing: the Core checks the device's state and
	// certificate serial in its database on every request, resumed or not.
	// The cache is per identity (a new certificate starts a new one).
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	tr.TLSClientConfig = cfg
	tr.MaxIdleConnsPerHost = 2
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mtlsTr != nil {
		c.mtlsTr.CloseIdleConnections()
	}
	c.mtlsTr = tr
	c.mtls = &http.Client{Transport: tr, CheckRedirect: noRedirect}
	c.leaf = id.leaf
	c.idErr = nil
}

// loadIdentity reads the key and certificates from the Store.
func (c *Client) loadIdentity() error {
	keyPEM, err := c.store.Read(ItemKey)
	if err != nil {
		return fmt.Errorf("key: %w", err)
	}
	blk, _ := pem.Decode(keyPEM)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return fmt.Errorf("key: %s holds no PKCS#8 PEM key", ItemKey)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return fmt.Errorf("key: %w", err)
	}
	key, ok := k.(crypto.Signer)
	if !ok {
		return fmt.Errorf("key: %T cannot sign", k)
	}
	certPEM, err := c.store.Read(ItemCert)
	if err != nil {
		return fmt.Errorf("certificate: %w", err)
	}
	caPEM, err := c.store.Read(ItemCA)
	if err != nil {
		return fmt.Errorf("CA: %w", err)
	}
	id, err := c.identity(certPEM, caPEM, key)
	if err != nil {
		return err
	}
	c.install(id)
	return nil
}

func firstCert(b []byte) (*x509.Certificate, error) {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, errors.New("no PEM CERTIFICATE")
		}
		if blk.Type == "CERTIFICATE" {
			return x509.ParseCertificate(blk.Bytes)
		}
	}
}

func allCerts(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM CERTIFICATE")
	}
	return out, nil
}
