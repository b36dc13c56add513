package mde_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custos-uem/custos/activation"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/httpx"
	"github.com/custos-uem/custos/pki"
	"github.com/custos-uem/custos/platform/windows/mde"
	"github.com/custos-uem/custos/platform/windows/mde/mdetest"
	"github.com/custos-uem/custos/platform/windows/wintest"
	"github.com/custos-uem/custos/secret"
)

// fakeActivation is activation.Service's behaviour reduced to what the
// protocol layer relies on: one user, one single-use password, a real CA.
type fakeActivation struct {
	ca *pki.CA

	mu       sync.Mutex
	login    string
	password string
	used     bool
	platform bool // windows allowed
	sessions map[string]string
	devices  map[string]activation.ActivateInput
	checks   int
}

func newFake(t testing.TB) *fakeActivation {
	t.Helper()
	ca, _, err := pki.LoadOrCreateCA(t.TempDir(), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &fakeActivation{ca: ca, login: "user@contoso.com", password: "K7QM-3ZPA-WX9E-HT4C", platform: true,
		sessions: map[string]string{}, devices: map[string]activation.ActivateInput{}}
}

func (f *fakeActivation) credentials(login, password string) error {
	if !strings.EqualFold(login, f.login) || activation.CanonicalPassword(password) != activation.CanonicalPassword(f.password) {
		return activation.ErrInvalidCredentials
	}
	if f.used {
		return activation.ErrPasswordUsed
	}
	if !f.platform {
		return activation.ErrPlatformNotAllowed
	}
	return nil
}

func (f *fakeActivation) CheckCredentials(ctx context.Context, login, password string, p activation.Platform) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checks++
	return f.credentials(login, password)
}

func (f *fakeActivation) Activate(ctx context.Context, in activation.ActivateInput) (*activation.Activation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.credentials(in.Login, in.Password); err != nil {
		return nil, err
	}
	if in.Platform != activation.Windows {
		return nil, errors.New("platform is not windows")
	}
	id := fmt.Sprintf("dev%013d", len(f.devices)+1)
	tok := rand.Text()
	f.sessions[tok] = id
	f.devices[id] = in
	return &activation.Activation{Device: &device.Device{ID: id}, SessionToken: tok}, nil
}

func (f *fakeActivation) EnrollAnySubject(ctx context.Context, token string, der []byte) (*activation.Enrollment, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, ok := f.sessions[token]
	if !ok || f.used {
		return nil, activation.ErrNoSession
	}
	csr, err := pki.ParseCSR(der)
	if err != nil {
		return nil, err
	}
	csr.Subject = pkix.Name{CommonName: id}
	cert, err := f.ca.SignDeviceCSR(csr, id, 0)
	if err != nil {
		return nil, err
	}
	f.used = true
	delete(f.sessions, token)
	return &activation.Enrollment{DeviceID: id, Certificate: cert, CAPEM: f.ca.CertPEM}, nil
}

type mux struct{ *http.ServeMux }

func (m mux) Public(pattern string, h http.Handler) { m.Handle(pattern, h) }

type server struct {
	fake *fakeActivation
	h    *mde.Handler
	srv  *httptest.Server
	hc   *http.Client
}

func newServer(t *testing.T, policy string) *server {
	t.Helper()
	fake := newFake(t)
	s := &server{fake: fake}
	m := mux{http.NewServeMux()}
	s.srv = httptest.NewUnstartedServer(m)
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	s.h = &mde.Handler{Config: mde.Config{PublicURL: s.srv.URL, AuthPolicy: policy, ProviderID: "Custos",
		ManagementURL: s.srv.URL + "/device/windows/mdm"}, Activation: fake, CA: fake.ca.Cert}
	if policy == mde.AuthFederated {
		box, err := secret.New(bytes.Repeat([]byte{7}, 32))
		if err != nil {
			t.Fatal(err)
		}
		s.h.Federated = &mde.Federated{Store: newMemTokens(), Box: box, Activation: fake}
	}
	s.h.Register(m)
	s.hc = s.srv.Client()
	return s
}

func (s *server) enroll(t *testing.T, mod func(*wintest.EnrollConfig)) (*wintest.Enrolled, error) {
	t.Helper()
	cfg := wintest.EnrollConfig{BaseURL: s.srv.URL, Email: s.fake.login, Password: s.fake.password, HTTPClient: s.hc}
	if mod != nil {
		mod(&cfg)
	}
	return wintest.Enroll(context.Background(), cfg)
}

// wantFault checks that err is a SOAP fault with subcode (and, when set,
// error type).
func wantFault(t *testing.T, err error, subcode, errorType string) *mde.Fault {
	t.Helper()
	var f *mde.Fault
	if !errors.As(err, &f) {
		t.Fatalf("err = %v, want a SOAP fault %s", err, subcode)
	}
	if f.Code != "s:Receiver" || f.Subcode != subcode || (errorType != "" && f.Detail.ErrorType != errorType) {
		t.Fatalf("fault %s/%s (%s), want s:Receiver/%s (%s)", f.Code, f.Subcode, f.Detail.ErrorType, subcode, errorType)
	}
	if f.Reason == "" || f.Detail.TraceID == "" {
		t.Fatalf("fault without a reason: %+v", f)
	}
	return f
}

func TestEnrollment(t *testing.T) {
	t.Run("fail/wrong-activation-password", func(t *testing.T) {
		s := newServer(t, "")
		_, err := s.enroll(t, func(c *wintest.EnrollConfig) { c.Password = "WRONG-WRONG-WRONG" })
		wantFault(t, err, mde.SubcodeAuthentication, mde.TypeAuthentication)
		if _, err := s.enroll(t, nil); err != nil {
			t.Fatalf("the right password after a wrong one: %v", err)
		}
	})
	t.Run("fail/unknown-user-same-fault", func(t *testing.T) {
		s := newServer(t, "")
		_, err1 := s.enroll(t, func(c *wintest.EnrollConfig) { c.Password = "WRONG-WRONG-WRONG" })
		_, err2 := s.enroll(t, func(c *wintest.EnrollConfig) { c.Email = "nobody@contoso.com" })
		f1, f2 := wantFault(t, err1, mde.SubcodeAuthentication, ""), wantFault(t, err2, mde.SubcodeAuthentication, "")
		if f1.Reason != f2.Reason || f1.Detail.ErrorType != f2.Detail.ErrorType {
			t.Fatalf("unknown user %+v, wrong password %+v: the answers differ", f2, f1)
		}
	})
	t.Run("fail/replayed-activation-password", func(t *testing.T) {
		s := newServer(t, "")
		if _, err := s.enroll(t, nil); err != nil {
			t.Fatal(err)
		}
		_, err := s.enroll(t, nil)
		wantFault(t, err, mde.SubcodeAuthentication, "")
	})
	t.Run("fail/platform-not-allowed", func(t *testing.T) {
		s := newServer(t, "")
		s.fake.platform = false
		_, err := s.enroll(t, nil)
		wantFault(t, err, mde.SubcodeAuthorization, mde.TypeDeviceNotSupported)
	})
	t.Run("fail/csr-rsa-1024", func(t *testing.T) {
		s := newServer(t, "")
		_, err := s.enroll(t, func(c *wintest.EnrollConfig) { c.RSABits = 1024 })
		wantFault(t, err, mde.SubcodeCertRequest, mde.TypeCertificateRequest)
		if len(s.fake.devices) != 0 {
			t.Fatalf("a refused CSR created %d devices", len(s.fake.devices))
		}
		if _, err := s.enroll(t, nil); err != nil {
			t.Fatalf("the password after a refused CSR: %v", err)
		}
	})
	t.Run("fail/csr-garbage", func(t *testing.T) {
		s := newServer(t, "")
		_, err := s.enroll(t, func(c *wintest.EnrollConfig) { c.CSR = []byte("not a certificate request") })
		wantFault(t, err, mde.SubcodeCertRequest, "")
	})
	t.Run("ok/enrolled", func(t *testing.T) {
		s := newServer(t, "")
		e, err := s.enroll(t, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !e.CA.Equal(s.fake.ca.Cert) || e.ManagementURL != s.srv.URL+"/device/windows/mdm" || e.ProviderID != "Custos" {
			t.Fatalf("enrolled %+v", e)
		}
		in := s.fake.devices[e.DeviceID]
		if in.HardwareID != "hw-7BA748C8703B4D8D8C2A4E1A4D0E2A1D" || in.Name != "DESKTOP-EMU" || in.Model != "Windows Pro" ||
			in.OSVersion != "10.0.22631.2428" {
			t.Fatalf("activation input %+v", in)
		}
		if s.fake.checks != 1 {
			t.Fatalf("GetPolicies checked the credentials %d times, want 1", s.fake.checks)
		}
		if e.Discovery.AuthPolicy != mde.AuthOnPremise || e.Discovery.AuthenticationServiceURL != "" {
			t.Fatalf("discovery %+v", e.Discovery)
		}
	})
	t.Run("ok/device-enrollment-system-store", func(t *testing.T) {
		s := newServer(t, "")
		if _, err := s.enroll(t, func(c *wintest.EnrollConfig) { c.EnrollmentType = "Device" }); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ok/ecdsa-key", func(t *testing.T) {
		// pki.CheckKey accepts P-256; Windows sends RSA, but nothing here
		// depends on it.
		s := newServer(t, "")
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "x"}}, k)
		if _, err := s.enroll(t, func(c *wintest.EnrollConfig) { c.CSR, c.Key = csr, k }); err != nil {
			t.Fatal(err)
		}
	})
}

// soapPost sends body to path and returns the status and answer.
func (s *server) soapPost(t *testing.T, path string, body []byte) (int, []byte) {
	t.Helper()
	resp, err := s.hc.Post(s.srv.URL+path, mde.ContentType, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func faultOf(t *testing.T, status int, b []byte) *mde.Fault {
	t.Helper()
	var env struct {
		Body struct {
			Fault *mde.Fault `xml:"http://www.w3.org/2003/05/soap-envelope Fault"`
		} `xml:"http://www.w3.org/2003/05/soap-envelope Body"`
	}
	if err := xml.Unmarshal(b, &env); err != nil || env.Body.Fault == nil {
		t.Fatalf("status %d, not a SOAP fault: %s", status, b)
	}
	if status != http.StatusInternalServerError {
		t.Fatalf("fault with status %d, want 500", status)
	}
	return env.Body.Fault
}

// billionLaughs is the classic entity-expansion bomb inside a Discover.
const billionLaughs = `<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
]>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://www.w3.org/2005/08/addressing">
<s:Header><a:Action>http://schemas.microsoft.com/windows/management/2012/01/enrollment/IDiscoveryService/Discover</a:Action></s:Header>
<s:Body><Discover xmlns="http://schemas.microsoft.com/windows/management/2012/01/enrollment"><request><EmailAddress>&lol9;</EmailAddress></request></Discover></s:Body>
</s:Envelope>`

func deepNesting(n int) []byte {
	return []byte(`<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>` +
		strings.Repeat("<x>", n) + strings.Repeat("</x>", n) + `</s:Body></s:Envelope>`)
}

func TestHardenedXML(t *testing.T) {
	s := newServer(t, "")
	spec := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name, path string
		body       []byte
		code       string // errs code logged; the client sees the subcode
	}{
		{"fail/xml-entity-expansion", mde.PathDiscovery, []byte(billionLaughs), "soap_doctype"},
		{"fail/xml-external-entity", mde.PathPolicy, []byte(`<?xml version="1.0"?><!DOCTYPE s [<!ENTITY x SYSTEM "file:///etc/passwd">]><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>&x;</s:Body></s:Envelope>`), "soap_doctype"},
		{"fail/xml-deep-nesting", mde.PathEnroll, deepNesting(10000), "soap_too_deep"},
		{"fail/oversized-body", mde.PathEnroll, bytes.Repeat([]byte("<a>"), mde.MaxEnrollBody), "soap_body_too_large"},
		{"fail/oversized-discover", mde.PathDiscovery, append(spec("discover-request.xml"), bytes.Repeat([]byte(" "), mde.MaxDiscoverBody)...), "soap_body_too_large"},
		{"fail/wrong-soap-action", mde.PathEnroll, spec("getpolicies-request.xml"), "soap_wrong_action"},
		{"fail/discover-at-policy", mde.PathPolicy, spec("discover-request.xml"), "soap_wrong_action"},
		{"fail/not-xml", mde.PathDiscovery, []byte("{\"json\": true}"), "soap_malformed"},
		{"fail/unclosed", mde.PathDiscovery, []byte(`<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>`), "soap_malformed"},
		{"fail/no-security", mde.PathPolicy, bytes.Replace(spec("getpolicies-request.xml"), []byte("wsse:Security"), []byte("wsse:Insecurity"), 2), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, b := s.soapPost(t, tc.path, tc.body)
			f := faultOf(t, st, b)
			want := mde.SubcodeMessageFormat
			if tc.code == "" {
				want = mde.SubcodeAuthentication
			}
			if f.Subcode != want {
				t.Fatalf("subcode %s (%s), want %s", f.Subcode, f.Reason, want)
			}
		})
	}
	t.Run("fail/wrong-media-type", func(t *testing.T) {
		resp, err := s.hc.Post(s.srv.URL+mde.PathDiscovery, "application/json", bytes.NewReader(spec("discover-request.xml")))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if f := faultOf(t, resp.StatusCode, b); f.Subcode != mde.SubcodeMessageFormat {
			t.Fatalf("subcode %s", f.Subcode)
		}
	})
	t.Run("ok/discovery-probe", func(t *testing.T) {
		resp, err := s.hc.Get(s.srv.URL + mde.PathDiscovery)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(b) != 0 {
			t.Fatalf("GET discovery = %d %q, want 200 and no body", resp.StatusCode, b)
		}
	})
}

// paths lists every element of an XML document as its path of
// "{namespace}local" names, ignoring what is between the tags.
func paths(t *testing.T, b []byte) []string {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	var stack []string
	seen := map[string]bool{}
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%v in %s", err, b)
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			stack = append(stack, "{"+tk.Name.Space+"}"+tk.Name.Local)
			seen[strings.Join(stack, "/")] = true
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		}
	}
	var out []string
	for p := range seen {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// wantSameShape checks that ours has every element path the published
// example has (namespaces included), except those listed as optional.
func wantSameShape(t *testing.T, what string, published, ours []byte, optional ...string) {
	t.Helper()
	have := paths(t, ours)
	for _, p := range paths(t, published) {
		if !slices.Contains(have, p) && !slices.ContainsFunc(optional, func(o string) bool { return strings.HasSuffix(p, o) }) {
			t.Errorf("%s: our answer lacks %s, which the published example has\nours:\n%s", what, p, ours)
		}
	}
}

func TestPublishedExamples(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	t.Run("ok/decode-discover", func(t *testing.T) {
		env, err := mde.DecodeEnvelope(read("discover-request.xml"))
		if err != nil {
			t.Fatal(err)
		}
		d := env.Body.Discover
		if strings.TrimSpace(env.Header.Action) != mde.ActionDiscover || env.Header.MessageID != "urn:uuid:748132ec-a575-4329-b01b-6171a9cf8478" ||
			d == nil || d.Request.EmailAddress != "user@contoso.com" || d.Request.RequestVersion != "4.0" ||
			d.Request.DeviceType != "CIMClient_Windows" || d.Request.OSEdition != "101" ||
			!slices.Equal(d.Request.AuthPolicies, []string{"OnPremise", "Federated"}) {
			t.Fatalf("decoded %+v / %+v", env.Header, d)
		}
	})
	t.Run("ok/decode-getpolicies", func(t *testing.T) {
		env, err := mde.DecodeEnvelope(read("getpolicies-request.xml"))
		if err != nil {
			t.Fatal(err)
		}
		sec := env.Header.Security
		if env.Body.GetPolicies == nil || sec == nil || sec.UsernameToken == nil || sec.UsernameToken.Username != "user@contoso.com" ||
			strings.TrimSpace(sec.UsernameToken.Password) != "mypassword" {
			t.Fatalf("decoded %+v", env)
		}
		env, err = mde.DecodeEnvelope(read("federated-getpolicies-request.xml"))
		if err != nil {
			t.Fatal(err)
		}
		if bt := env.Header.Security.Binary; bt == nil || bt.ValueType != mde.ValueTypeUserToken || strings.TrimSpace(bt.Value) != "B64EncodedSampleBinarySecurityToken" {
			t.Fatalf("federated token %+v", env.Header.Security.Binary)
		}
	})
	t.Run("ok/decode-rst", func(t *testing.T) {
		env, err := mde.DecodeEnvelope(read("rst-request.xml"))
		if err != nil {
			t.Fatal(err)
		}
		rst := env.Body.RST
		if rst == nil || strings.TrimSpace(rst.TokenType) != mde.TokenTypeEnrollment || strings.TrimSpace(rst.RequestType) != mde.RequestTypeIssue ||
			rst.BinarySecurityToken == nil || rst.BinarySecurityToken.ValueType != mde.ValueTypePKCS10 {
			t.Fatalf("decoded %+v", rst)
		}
		c := rst.Context()
		for k, v := range map[string]string{"OSEdition": "4", "OSVersion": "10.0.9999.0", "DeviceName": "MY_WINDOWS_DEVICE",
			"MAC": "FF:FF:FF:FF:FF:FF", "EnrollmentType": "Full", "DeviceID": "7BA748C8703B4D8D8C2A4E1A4D0E2A1D",
			"HWDevID": "A5B0C8D6E1F2431A8E7B9C6D5E4F3A2B1C0D9E8F7A6B5C4D3E2F1A0B9C8D7E6F"} {
			if c[k] != v {
				t.Errorf("context %s = %q, want %q", k, c[k], v)
			}
		}
		if mde.Model(c) != "Windows Enterprise" {
			t.Errorf("model %q", mde.Model(c))
		}
	})
	t.Run("ok/decode-provisioning-doc", func(t *testing.T) {
		doc, err := mde.ParseProvDoc(read("provisioning-doc.xml"))
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := doc.Find("APPLICATION").Parm("ADDR"); v != "https://DM.contoso.com:443/omadm/WindowsPhone.ashx" {
			t.Fatalf("ADDR %q", v)
		}
		if doc.Find("DMClient", "Provider", "TestMDMServer", "Poll") == nil || len(doc.FindAll("CertificateStore")) != 2 {
			t.Fatal("the published document's structure was not decoded")
		}
	})

	// Replay: the published requests, with the example's credentials and a
	// real CSR in place of the placeholder, against our handler; our
	// answers have the published answers' elements.
	s := newServer(t, "")
	s.fake.login, s.fake.password = "user@contoso.com", "mypassword"
	t.Run("ok/replay-discover", func(t *testing.T) {
		st, b := s.soapPost(t, mde.PathDiscovery, read("discover-request.xml"))
		if st != 200 {
			t.Fatalf("%d %s", st, b)
		}
		// The published example prints ActivityId without the namespace
		// WCF gives it (ServiceModel/Diagnostics, which ours has).
		wantSameShape(t, "DiscoverResponse", read("discover-response.xml"), b, "}ActivityId")
		if !slices.Contains(paths(t, b), "{"+mde.NSSOAP+"}Envelope/{"+mde.NSSOAP+"}Header/{"+mde.NSDiag+"}ActivityId") {
			t.Errorf("no ActivityId in %s", b)
		}
		var env mde.DiscoverResponseEnvelope
		if err := xml.Unmarshal(b, &env); err != nil || env.Header.RelatesTo != "urn:uuid:748132ec-a575-4329-b01b-6171a9cf8478" {
			t.Fatalf("RelatesTo %q, %v", env.Header.RelatesTo, err)
		}
	})
	t.Run("ok/replay-getpolicies", func(t *testing.T) {
		st, b := s.soapPost(t, mde.PathPolicy, read("getpolicies-request.xml"))
		if st != 200 {
			t.Fatalf("%d %s", st, b)
		}
		wantSameShape(t, "GetPoliciesResponse", read("getpolicies-response.xml"), b)
	})
	t.Run("ok/replay-rst", func(t *testing.T) {
		k, _ := rsa.GenerateKey(rand.Reader, 2048)
		csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "B1C43CD0-1624-5FBB-8E54-34CF17DFD3A1"}}, k)
		req := bytes.Replace(read("rst-request.xml"), []byte("BinarySecurityTokenInsertedHere"), []byte(base64.StdEncoding.EncodeToString(csr)), 1)
		st, b := s.soapPost(t, mde.PathEnroll, req)
		if st != 200 {
			t.Fatalf("%d %s", st, b)
		}
		wantSameShape(t, "RequestSecurityTokenResponseCollection", read("rst-response.xml"), b)
		var env mde.RSTResponseEnvelope
		if err := xml.Unmarshal(b, &env); err != nil || env.Body.Collection == nil {
			t.Fatal(err)
		}
		doc, err := base64.StdEncoding.DecodeString(env.Body.Collection.Response.Requested.Token.Value)
		if err != nil {
			t.Fatal(err)
		}
		wantSameShape(t, "wap-provisioningdoc", read("provisioning-doc.xml"), doc)
		if _, err := wintest.VerifyProvisioning(doc, csr, false); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ok/fault-shape", func(t *testing.T) {
		st, b := s.soapPost(t, mde.PathEnroll, read("discover-request.xml"))
		faultOf(t, st, b)
		wantSameShape(t, "fault", read("fault.xml"), b)
	})
}

func TestProvisioningDocument(t *testing.T) {
	fake := newFake(t)
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	csr, _ := x509.ParseCertificateRequest(must(x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "d1"}}, k)))
	cert, err := fake.ca.SignDeviceCSR(csr, "d1", 0)
	if err != nil {
		t.Fatal(err)
	}
	p := &mde.Provisioning{CA: fake.ca.Cert, Cert: cert, ProviderID: "Custos", ServerName: "Custos", ManagementURL: "https://mdm.example/device/windows/mdm",
		PollMinutes: 480, FirstPollMinutes: 15, FirstPolls: 8, RenewPeriodDays: 42, EntDeviceName: "PC & <co>", PFN: "Contoso.App_8wekyb3d8bbwe"}
	doc, err := mde.ParseProvDoc(p.Build().Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := doc.Find("DMClient", "Provider", "Custos", "Push").Parm("PFN"); v != "Contoso.App_8wekyb3d8bbwe" {
		t.Fatalf("PFN %q", v)
	}
	if v, _ := doc.Find("DMClient", "Provider", "Custos").Parm("EntDeviceName"); v != "PC & <co>" {
		t.Fatalf("EntDeviceName %q", v)
	}
	if v, _ := doc.Find("DMClient", "Provider", "Custos", "Poll").Parm("IntervalForRemainingScheduledRetries"); v != "480" {
		t.Fatalf("poll %q", v)
	}
	search, _ := doc.Find("APPLICATION").Parm("SSLCLIENTCERTSEARCHCRITERIA")
	q, err := url.ParseQuery(search)
	if err != nil || q.Get("Stores") != `My\User` || !strings.HasSuffix(q.Get("Subject"), "OU=device,CN=d1") {
		t.Fatalf("SSLCLIENTCERTSEARCHCRITERIA %q", search)
	}
	if regexp.MustCompile(`[0-9A-F]{40}`).FindString(mde.Thumbprint(cert)) == "" {
		t.Fatal("thumbprint is not 40 upper-case hex digits")
	}
	p.PFN = ""
	if d, _ := mde.ParseProvDoc(p.Build().Marshal()); d.Find("DMClient", "Provider", "Custos", "Push") != nil {
		t.Fatal("Push provisioned without a PFN")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestFederated(t *testing.T) {
	s := newServer(t, mde.AuthFederated)
	noRedirect := *s.hc
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	signIn := func(t *testing.T, appru, email, password string) (int, string) {
		t.Helper()
		resp, err := noRedirect.PostForm(s.srv.URL+mde.PathAuth, url.Values{"appru": {appru}, "email": {email}, "password": {password}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	token := func(page string) string {
		m := regexp.MustCompile(`name="wresult" value="([^"]+)"`).FindStringSubmatch(page)
		if m == nil {
			return ""
		}
		return strings.ReplaceAll(m[1], "&#43;", "+")
	}
	t.Run("fail/appru-not-ms-app", func(t *testing.T) {
		for _, appru := range []string{"https://evil.example/steal", "javascript:alert(1)", ""} {
			st, page := signIn(t, appru, s.fake.login, s.fake.password)
			if st != http.StatusBadRequest || token(page) != "" {
				t.Fatalf("appru %q: %d, token %q", appru, st, token(page))
			}
		}
	})
	t.Run("fail/wrong-password-no-token", func(t *testing.T) {
		st, page := signIn(t, "ms-app://s-1-15-2-1", s.fake.login, "WRONG-WRONG")
		if st != http.StatusUnauthorized || token(page) != "" {
			t.Fatalf("%d %s", st, page)
		}
	})
	t.Run("fail/forged-token", func(t *testing.T) {
		_, err := s.enroll(t, func(c *wintest.EnrollConfig) { c.FederatedToken = "sealed:v1:AAAA" })
		wantFault(t, err, mde.SubcodeAuthentication, "")
		// A well-formed token that was never issued.
		_, err = s.enroll(t, func(c *wintest.EnrollConfig) { c.FederatedToken = strings.Repeat("A", 43) })
		wantFault(t, err, mde.SubcodeAuthentication, "")
	})
	t.Run("fail/password-in-username-token", func(t *testing.T) {
		// The Federated policy refuses OnPremise credentials.
		env := wintest.GetPoliciesMessage("urn:uuid:1", s.srv.URL, wintest.UsernameSecurity(s.fake.login, s.fake.password))
		st, b := s.soapPost(t, mde.PathPolicy, env)
		if f := faultOf(t, st, b); f.Subcode != mde.SubcodeAuthentication {
			t.Fatalf("subcode %s", f.Subcode)
		}
	})
	var tok string
	t.Run("ok/sign-in-page", func(t *testing.T) {
		resp, err := s.hc.Get(s.srv.URL + mde.PathAuth + "?appru=" + url.QueryEscape("ms-app://s-1-15-2-1") + "&login_hint=" + url.QueryEscape(s.fake.login))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), `value="user@contoso.com"`) || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		st, page := signIn(t, "ms-app://s-1-15-2-1", s.fake.login, s.fake.password)
		if tok = token(page); st != 200 || tok == "" || !strings.Contains(page, `action="ms-app://s-1-15-2-1"`) {
			t.Fatalf("%d %s", st, page)
		}
		if s.fake.used {
			t.Fatal("the sign-in page consumed the password")
		}
	})
	t.Run("ok/enroll-with-token", func(t *testing.T) {
		e, err := s.enroll(t, func(c *wintest.EnrollConfig) { c.FederatedToken = tok; c.Password = "" })
		if err != nil {
			t.Fatal(err)
		}
		if e.Discovery.AuthPolicy != mde.AuthFederated || e.Discovery.AuthenticationServiceURL != s.srv.URL+mde.PathAuth {
			t.Fatalf("discovery %+v", e.Discovery)
		}
	})
	t.Run("fail/federated-token-replayed", func(t *testing.T) {
		_, err := s.enroll(t, func(c *wintest.EnrollConfig) { c.FederatedToken = tok })
		wantFault(t, err, mde.SubcodeAuthentication, "")
	})
	t.Run("fail/federated-token-expired", func(t *testing.T) {
		s2 := newServer(t, mde.AuthFederated)
		old, err := s2.h.Federated.Issue(context.Background(), s2.fake.login, s2.fake.password)
		if err != nil {
			t.Fatal(err)
		}
		s2.h.Federated.Now = func() time.Time { return time.Now().Add(mde.FederatedTokenTTL + time.Second) }
		_, err = s2.enroll(t, func(c *wintest.EnrollConfig) { c.FederatedToken = old })
		wantFault(t, err, mde.SubcodeAuthentication, "")
	})
}

func TestRateLimit(t *testing.T) {
	s := newServer(t, "")
	s.h.Limiter = httpx.NewIPLimiter(0.001, 1)
	m := mux{http.NewServeMux()}
	s.h.Register(m)
	s.srv.Config.Handler = m
	msg, err := os.ReadFile(filepath.Join("testdata", "discover-request.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if st, b := s.soapPost(t, mde.PathDiscovery, msg); st != 200 {
		t.Fatalf("first request: %d %s", st, b)
	}
	t.Run("fail/over-the-limit", func(t *testing.T) {
		st, b := s.soapPost(t, mde.PathDiscovery, msg)
		if f := faultOf(t, st, b); f.Subcode != mde.SubcodeEnrollServer || f.Detail.ErrorType != mde.TypeInMaintenance {
			t.Fatalf("fault %+v", f)
		}
	})
}

// memTokens is an in-memory mde.TokenStore (the suite below checks it
// keeps the contract the SQL stores keep).
type memTokens struct {
	mu sync.Mutex
	m  map[string]mde.FederatedToken
}

func newMemTokens() *memTokens { return &memTokens{m: map[string]mde.FederatedToken{}} }

func (s *memTokens) CreateFederatedToken(ctx context.Context, t *mde.FederatedToken) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.m {
		if v.ExpiresAt.Before(t.CreatedAt) {
			delete(s.m, k)
		}
	}
	if _, ok := s.m[string(t.Hash)]; ok {
		return errs.ErrConflict
	}
	s.m[string(t.Hash)] = *t
	return nil
}

func (s *memTokens) FederatedToken(ctx context.Context, hash []byte) (*mde.FederatedToken, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.m[string(hash)]
	if !ok {
		return nil, errs.ErrNotFound
	}
	return &t, nil
}

func (s *memTokens) UseFederatedToken(ctx context.Context, hash []byte, now time.Time) (*mde.FederatedToken, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.m[string(hash)]
	if !ok || t.UsedAt != nil || !now.Before(t.ExpiresAt) {
		return nil, mde.ErrTokenClosed
	}
	t.UsedAt = &now
	s.m[string(hash)] = t
	return &t, nil
}

func TestMemTokenStore(t *testing.T) {
	mdetest.Run(t, func(*testing.T) mde.TokenStore { return newMemTokens() })
}
