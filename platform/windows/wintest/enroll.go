// Package wintest is a Windows 10/11 device emulator for tests: the
// enrollment client (MS-MDE2: Discovery → GetPolicies →
// RequestSecurityToken, enroll.go) and the OMA-DM session client built on
// what enrollment returns (session.go and friends). No Windows client runs
// here; the emulator follows the messages of MS-MDE2 §4 and the
// client-management docs, and verifies what a Windows client would rely on.
package wintest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"strings"

	"github.com/custos-uem/custos/platform/windows/mde"
)

// EnrollConfig configures one enrollment.
type EnrollConfig struct {
	// BaseURL is where discovery is asked, e.g. https://127.0.0.1:port
	// (a Core) or a relay's device URL.
	BaseURL         string
	Email, Password string
	// HTTPClient trusts the Core's CA (and the relay's).
	HTTPClient *http.Client
	// RSABits is the device key's size (default 2048).
	RSABits                       int
	DeviceID, HWDevID, DeviceName string
	// EnrollmentType is Full (default, user) or Device.
	EnrollmentType string
	// FederatedToken, with the Federated policy, is the token the sign-in
	// page returned (see SignInFederated); Password is then unused.
	FederatedToken string
	// CSR, when set, replaces the request the emulator builds (tests of
	// bad requests); Key must then match it or be nil.
	CSR []byte
	Key crypto.Signer
}

// Enrolled is the outcome of an enrollment, verified.
type Enrolled struct {
	// DeviceID is the Custos device ID (the certificate's CN).
	DeviceID        string
	Certificate     *x509.Certificate
	Key             crypto.Signer
	CA              *x509.Certificate
	ManagementURL   string
	ProviderID      string
	ProvisioningDoc []byte
	// Discovery is what discovery answered.
	Discovery mde.DiscoverResult
}

// Max answer size the emulator reads.
const maxAnswer = 1 << 20

// Enroll runs the three MS-MDE2 round trips and verifies the result.
func Enroll(ctx context.Context, cfg EnrollConfig) (*Enrolled, error) {
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.RSABits == 0 {
		cfg.RSABits = 2048
	}
	if cfg.DeviceID == "" {
		cfg.DeviceID = "7BA748C8703B4D8D8C2A4E1A4D0E2A1D"
	}
	if cfg.HWDevID == "" {
		cfg.HWDevID = "hw-" + cfg.DeviceID
	}
	if cfg.DeviceName == "" {
		cfg.DeviceName = "DESKTOP-EMU"
	}
	if cfg.EnrollmentType == "" {
		cfg.EnrollmentType = "Full"
	}
	disc, err := Discover(ctx, cfg.HTTPClient, cfg.BaseURL, cfg.Email)
	if err != nil {
		return nil, err
	}
	security := usernameToken(cfg.Email, cfg.Password)
	if disc.AuthPolicy == mde.AuthFederated {
		if cfg.FederatedToken == "" {
			return nil, errors.New("wintest: the server wants the Federated policy and no token was given")
		}
		security = federatedToken(cfg.FederatedToken)
	}
	if err := GetPolicies(ctx, cfg.HTTPClient, disc.EnrollmentPolicyServiceURL, security); err != nil {
		return nil, err
	}
	key, csr := cfg.Key, cfg.CSR
	if csr == nil {
		rk, err := rsa.GenerateKey(rand.Reader, cfg.RSABits)
		if err != nil {
			return nil, err
		}
		key = rk
		// Windows chooses its request's subject; the server must not care.
		csr, err = x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
			Subject: pkix.Name{CommonName: cfg.DeviceID}}, rk)
		if err != nil {
			return nil, err
		}
	}
	doc, err := RequestSecurityToken(ctx, cfg.HTTPClient, disc.EnrollmentServiceURL, security, csr, map[string]string{
		"OSEdition": "48", "OSVersion": "10.0.22631.2428", "DeviceName": cfg.DeviceName, "MAC": "00:11:22:33:44:55",
		"EnrollmentType": cfg.EnrollmentType, "DeviceType": "CIMClient_Windows", "ApplicationVersion": "10.0.22631.2428",
		"DeviceID": cfg.DeviceID, "HWDevID": cfg.HWDevID, "TargetedUserLoggedIn": "True",
	})
	if err != nil {
		return nil, err
	}
	e, err := VerifyProvisioning(doc, csr, cfg.EnrollmentType == "Device")
	if err != nil {
		return nil, err
	}
	e.Key, e.Discovery = key, *disc
	return e, nil
}

// Discover probes the discovery URL with GET (as Windows does) and POSTs
// Discover for email.
func Discover(ctx context.Context, hc *http.Client, baseURL, email string) (*mde.DiscoverResult, error) {
	u := strings.TrimSuffix(baseURL, "/") + mde.PathDiscovery
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("wintest: discovery probe: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("wintest: discovery probe: status %d, want 200", resp.StatusCode)
	}
	msgID := newMessageID()
	body := DiscoverMessage(msgID, u, email)
	raw, err := post(ctx, hc, u, body)
	if err != nil {
		return nil, err
	}
	var env mde.DiscoverResponseEnvelope
	if err := xml.Unmarshal(raw, &env); err != nil {
		return nil, fmt.Errorf("wintest: DiscoverResponse: %w", err)
	}
	if env.Body.Fault != nil {
		return nil, env.Body.Fault
	}
	if env.Body.Response == nil {
		return nil, fmt.Errorf("wintest: no DiscoverResponse in %s", raw)
	}
	if env.Header.RelatesTo != msgID || env.Header.Action != mde.ActionDiscoverResponse {
		return nil, fmt.Errorf("wintest: DiscoverResponse relates to %q with action %q, want %q, %q",
			env.Header.RelatesTo, env.Header.Action, msgID, mde.ActionDiscoverResponse)
	}
	r := env.Body.Response.Result
	res := &mde.DiscoverResult{AuthPolicy: r.AuthPolicy, EnrollmentVersion: r.EnrollmentVersion,
		EnrollmentPolicyServiceURL: r.EnrollmentPolicyServiceURL, EnrollmentServiceURL: r.EnrollmentServiceURL,
		AuthenticationServiceURL: r.AuthenticationServiceURL}
	for _, s := range []string{res.EnrollmentPolicyServiceURL, res.EnrollmentServiceURL} {
		if !strings.HasPrefix(s, "https://") {
			return nil, fmt.Errorf("wintest: discovery announced %q, not an https URL", s)
		}
	}
	return res, nil
}

// GetPolicies sends GetPolicies with security and checks the policy.
func GetPolicies(ctx context.Context, hc *http.Client, u, security string) error {
	msgID := newMessageID()
	raw, err := post(ctx, hc, u, GetPoliciesMessage(msgID, u, security))
	if err != nil {
		return err
	}
	var env mde.GetPoliciesResponseEnvelope
	if err := xml.Unmarshal(raw, &env); err != nil {
		return fmt.Errorf("wintest: GetPoliciesResponse: %w", err)
	}
	if env.Body.Fault != nil {
		return env.Body.Fault
	}
	if env.Body.Response == nil || len(env.Body.Response.Policies) != 1 || env.Header.RelatesTo != msgID {
		return fmt.Errorf("wintest: unexpected GetPoliciesResponse %s", raw)
	}
	a := env.Body.Response.Policies[0].Attributes
	if a.PolicySchema != 3 || a.MinimalKeyLength < 2048 {
		return fmt.Errorf("wintest: policy schema %d, minimal key length %d", a.PolicySchema, a.MinimalKeyLength)
	}
	return nil
}

// RequestSecurityToken sends the CSR with its context and returns the
// decoded provisioning document.
func RequestSecurityToken(ctx context.Context, hc *http.Client, u, security string, csr []byte, context map[string]string) ([]byte, error) {
	msgID := newMessageID()
	raw, err := post(ctx, hc, u, RSTMessage(msgID, u, security, csr, context))
	if err != nil {
		return nil, err
	}
	var env mde.RSTResponseEnvelope
	if err := xml.Unmarshal(raw, &env); err != nil {
		return nil, fmt.Errorf("wintest: RequestSecurityTokenResponseCollection: %w", err)
	}
	if env.Body.Fault != nil {
		return nil, env.Body.Fault
	}
	if env.Body.Collection == nil || env.Header.RelatesTo != msgID || env.Header.Action != mde.ActionRSTRC {
		return nil, fmt.Errorf("wintest: unexpected RST response %s", raw)
	}
	tok := env.Body.Collection.Response.Requested.Token
	if tok.ValueType != mde.ValueTypeProvDoc || env.Body.Collection.Response.TokenType != mde.TokenTypeEnrollment {
		return nil, fmt.Errorf("wintest: token of type %q/%q", env.Body.Collection.Response.TokenType, tok.ValueType)
	}
	return base64.StdEncoding.DecodeString(strings.TrimSpace(tok.Value))
}

// VerifyProvisioning checks a provisioning document as the Windows
// configuration service providers would rely on it: the root is the CA
// named by its thumbprint, the client certificate chains to it, is for
// client authentication, certifies the CSR's key and names a device ID;
// the OMA-DM account points at an https management URL and finds the
// certificate.
func VerifyProvisioning(raw, csrDER []byte, deviceStore bool) (*Enrolled, error) {
	doc, err := mde.ParseProvDoc(raw)
	if err != nil {
		return nil, fmt.Errorf("wintest: provisioning document: %w", err)
	}
	if doc.Version != "1.1" {
		return nil, fmt.Errorf("wintest: provisioning document version %q", doc.Version)
	}
	store := "User"
	if deviceStore {
		store = "System"
	}
	var ca, cert *x509.Certificate
	for _, cs := range doc.FindAll("CertificateStore") {
		if sys := cs.Find("Root", "System"); sys != nil {
			if ca, err = thumbCert(sys); err != nil {
				return nil, fmt.Errorf("wintest: root certificate: %w", err)
			}
		}
		if my := cs.Find("My", store); my != nil {
			if cert, err = thumbCert(my); err != nil {
				return nil, fmt.Errorf("wintest: client certificate: %w", err)
			}
		}
	}
	if ca == nil || cert == nil {
		return nil, fmt.Errorf("wintest: the document lacks the root or the client certificate in My\\%s", store)
	}
	if !ca.IsCA {
		return nil, errors.New("wintest: the root certificate is not a CA")
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("wintest: the client certificate does not chain to the root for client auth: %w", err)
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, err
	}
	if !publicKeyEqual(cert.PublicKey, csr.PublicKey) {
		return nil, errors.New("wintest: the client certificate certifies another key than the CSR's")
	}
	if len(cert.Subject.CommonName) < 8 {
		return nil, fmt.Errorf("wintest: CN %q is not a device ID", cert.Subject.CommonName)
	}
	app := doc.Find("APPLICATION")
	if app == nil {
		return nil, errors.New("wintest: no w7 APPLICATION")
	}
	get := func(name string) string { v, _ := app.Parm(name); return v }
	if get("APPID") != "w7" || !strings.HasPrefix(get("ADDR"), "https://") || get("PROVIDER-ID") == "" ||
		get("DEFAULTENCODING") != "application/vnd.syncml.dm+xml" {
		return nil, fmt.Errorf("wintest: APPLICATION APPID %q ADDR %q PROVIDER-ID %q DEFAULTENCODING %q",
			get("APPID"), get("ADDR"), get("PROVIDER-ID"), get("DEFAULTENCODING"))
	}
	if want := mde.SubjectSearch(cert, "My\\"+store); get("SSLCLIENTCERTSEARCHCRITERIA") != want {
		return nil, fmt.Errorf("wintest: SSLCLIENTCERTSEARCHCRITERIA %q, want %q", get("SSLCLIENTCERTSEARCHCRITERIA"), want)
	}
	prov := doc.Find("DMClient", "Provider", get("PROVIDER-ID"))
	if prov == nil || prov.Find("Poll") == nil {
		return nil, errors.New("wintest: no DMClient/Provider/<PROVIDER-ID>/Poll")
	}
	return &Enrolled{DeviceID: cert.Subject.CommonName, Certificate: cert, CA: ca, ManagementURL: get("ADDR"),
		ProviderID: get("PROVIDER-ID"), ProvisioningDoc: raw}, nil
}

// thumbCert reads the one certificate below c, checking that it is named
// by its own thumbprint.
func thumbCert(c *mde.Characteristic) (*x509.Certificate, error) {
	for i := range c.Characteristics {
		ch := &c.Characteristics[i]
		v, ok := ch.Parm("EncodedCertificate")
		if !ok {
			continue
		}
		der, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return nil, err
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, err
		}
		if mde.Thumbprint(cert) != ch.Type {
			return nil, fmt.Errorf("named %s, thumbprint %s", ch.Type, mde.Thumbprint(cert))
		}
		return cert, nil
	}
	return nil, errors.New("no EncodedCertificate")
}

func publicKeyEqual(a, b any) bool {
	ka, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ka.Equal(b)
}

func post(ctx context.Context, hc *http.Client, u string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", mde.ContentType)
	req.Header.Set("User-Agent", "ENROLLClient")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, err
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/soap+xml") {
		return nil, fmt.Errorf("wintest: %s answered %d %q: %s", u, resp.StatusCode, ct, raw)
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusInternalServerError {
		return nil, fmt.Errorf("wintest: %s answered %d", u, resp.StatusCode)
	}
	return raw, nil
}

func newMessageID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return fmt.Sprintf("urn:uuid:%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func esc(s string) string { return html.EscapeString(s) }

// DiscoverMessage is a Discover request as Windows 11 sends it (MS-MDE2
// §4.1.1).
func DiscoverMessage(msgID, to, email string) []byte {
	return []byte(`<s:Envelope xmlns:a="http://www.w3.org/2005/08/addressing" xmlns:s="http://www.w3.org/2003/05/soap-envelope">
  <s:Header>
    <a:Action s:mustUnderstand="1">` + mde.ActionDiscover + `</a:Action>
    <a:MessageID>` + esc(msgID) + `</a:MessageID>
    <a:ReplyTo><a:Address>http://www.w3.org/2005/08/addressing/anonymous</a:Address></a:ReplyTo>
    <a:To s:mustUnderstand="1">` + esc(to) + `</a:To>
  </s:Header>
  <s:Body>
    <Discover xmlns="http://schemas.microsoft.com/windows/management/2012/01/enrollment">
      <request xmlns:i="http://www.w3.org/2001/XMLSchema-instance">
        <EmailAddress>` + esc(email) + `</EmailAddress>
        <RequestVersion>5.0</RequestVersion>
        <DeviceType>CIMClient_Windows</DeviceType>
        <ApplicationVersion>10.0.22631.2428</ApplicationVersion>
        <OSEdition>48</OSEdition>
        <AuthPolicies>
          <AuthPolicy>OnPremise</AuthPolicy>
          <AuthPolicy>Federated</AuthPolicy>
        </AuthPolicies>
      </request>
    </Discover>
  </s:Body>
</s:Envelope>`)
}

func usernameToken(user, password string) string {
	return `<wsse:Security s:mustUnderstand="1">
      <wsse:UsernameToken u:Id="uuid-cc1ccc1f-2fba-4bcf-b063-ffc0cac77917-4">
        <wsse:Username>` + esc(user) + `</wsse:Username>
        <wsse:Password wsse:Type="` + mde.PasswordText + `">` + esc(password) + `</wsse:Password>
      </wsse:UsernameToken>
    </wsse:Security>`
}

func federatedToken(tok string) string {
	return `<wsse:Security s:mustUnderstand="1">
      <wsse:BinarySecurityToken ValueType="` + mde.ValueTypeUserToken + `" EncodingType="` + mde.EncodingBase64 + `">` + esc(tok) + `</wsse:BinarySecurityToken>
    </wsse:Security>`
}

// UsernameSecurity and FederatedSecurity are the wsse:Security headers
// of the two policies (for tests that send messages by hand).
func UsernameSecurity(user, password string) string { return usernameToken(user, password) }
func FederatedSecurity(tok string) string           { return federatedToken(tok) }

const envOpen = `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://www.w3.org/2005/08/addressing" xmlns:u="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd" xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd" xmlns:wst="http://docs.oasis-open.org/ws-sx/ws-trust/200512" xmlns:ac="http://schemas.xmlsoap.org/ws/2006/12/authorization">`

// GetPoliciesMessage is a GetPolicies request (MS-MDE2 §4.1.2).
func GetPoliciesMessage(msgID, to, security string) []byte {
	return []byte(envOpen + `
  <s:Header>
    <a:Action s:mustUnderstand="1">` + mde.ActionGetPolicies + `</a:Action>
    <a:MessageID>` + esc(msgID) + `</a:MessageID>
    <a:ReplyTo><a:Address>http://www.w3.org/2005/08/addressing/anonymous</a:Address></a:ReplyTo>
    <a:To s:mustUnderstand="1">` + esc(to) + `</a:To>
    ` + security + `
  </s:Header>
  <s:Body xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">
    <GetPolicies xmlns="http://schemas.microsoft.com/windows/pki/2009/01/enrollmentpolicy">
      <client>
        <lastUpdate xsi:nil="true"/>
        <preferredLanguage xsi:nil="true"/>
      </client>
      <requestFilter xsi:nil="true"/>
    </GetPolicies>
  </s:Body>
</s:Envelope>`)
}

// RSTMessage is a RequestSecurityToken request (MS-MDE2 §4.1.3).
func RSTMessage(msgID, to, security string, csr []byte, context map[string]string) []byte {
	var items strings.Builder
	for _, k := range []string{"OSEdition", "OSVersion", "DeviceName", "MAC", "EnrollmentType", "DeviceType",
		"ApplicationVersion", "DeviceID", "HWDevID", "TargetedUserLoggedIn"} {
		if v, ok := context[k]; ok {
			items.WriteString(`
        <ac:ContextItem Name="` + k + `"><ac:Value>` + esc(v) + `</ac:Value></ac:ContextItem>`)
		}
	}
	return []byte(envOpen + `
  <s:Header>
    <a:Action s:mustUnderstand="1">` + mde.ActionRST + `</a:Action>
    <a:MessageID>` + esc(msgID) + `</a:MessageID>
    <a:ReplyTo><a:Address>http://www.w3.org/2005/08/addressing/anonymous</a:Address></a:ReplyTo>
    <a:To s:mustUnderstand="1">` + esc(to) + `</a:To>
    ` + security + `
  </s:Header>
  <s:Body>
    <wst:RequestSecurityToken>
      <wst:TokenType>` + mde.TokenTypeEnrollment + `</wst:TokenType>
      <wst:RequestType>` + mde.RequestTypeIssue + `</wst:RequestType>
      <wsse:BinarySecurityToken ValueType="` + mde.ValueTypePKCS10 + `" EncodingType="` + mde.EncodingBase64 + `">` +
		base64.StdEncoding.EncodeToString(csr) + `</wsse:BinarySecurityToken>
      <ac:AdditionalContext xmlns="http://schemas.xmlsoap.org/ws/2006/12/authorization">` + items.String() + `
      </ac:AdditionalContext>
    </wst:RequestSecurityToken>
  </s:Body>
</s:Envelope>`)
}
