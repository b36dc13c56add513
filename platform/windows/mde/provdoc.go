package mde

import (
	"bytes"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"net/url"
	"strconv"
	"strings"

	"github.com/custos-uem/custos/errs"
)

// The provisioning document (MS-MDE2 §2.2.9.2, "wap-provisioningdoc",
// OMA Client Provisioning 1.1 syntax) installs, through configuration
// service providers, everything the device needs to be managed:
// CertificateStore (certificatestore-csp), the OMA-DM account
// (w7-application-csp) and the DMClient settings (dmclient-csp).

// ProvDoc is a wap-provisioningdoc.
type ProvDoc struct {
	XMLName         xml.Name         `xml:"wap-provisioningdoc"`
	Version         string           `xml:"version,attr"`
	Characteristics []Characteristic `xml:"characteristic"`
}

// Characteristic is one node of the document: parameters first, then
// nested characteristics (the order of MS-MDE2's examples).
type Characteristic struct {
	Type            string           `xml:"type,attr"`
	Parms           []Parm           `xml:"parm"`
	Characteristics []Characteristic `xml:"characteristic"`
}

// Parm is a name/value setting.
type Parm struct {
	Name     string `xml:"name,attr"`
	Value    string `xml:"value,attr,omitempty"`
	Datatype string `xml:"datatype,attr,omitempty"`
}

// Find returns the first characteristic at path (types from the root),
// or nil.
func (d *ProvDoc) Find(path ...string) *Characteristic {
	return find(d.Characteristics, path)
}

// FindAll returns every top-level characteristic of type typ.
func (d *ProvDoc) FindAll(typ string) []*Characteristic {
	var out []*Characteristic
	for i := range d.Characteristics {
		if d.Characteristics[i].Type == typ {
			out = append(out, &d.Characteristics[i])
		}
	}
	return out
}

// Find returns the first characteristic at path below c, or nil.
func (c *Characteristic) Find(path ...string) *Characteristic {
	return find(c.Characteristics, path)
}

func find(cs []Characteristic, path []string) *Characteristic {
	if len(path) == 0 {
		return nil
	}
	for i := range cs {
		if cs[i].Type != path[0] {
			continue
		}
		if len(path) == 1 {
			return &cs[i]
		}
		if f := find(cs[i].Characteristics, path[1:]); f != nil {
			return f
		}
	}
	return nil
}

// Parm returns the value of parameter name and whether it exists.
func (c *Characteristic) Parm(name string) (string, bool) {
	if c == nil {
		return "", false
	}
	for _, p := range c.Parms {
		if p.Name == name {
			return p.Value, true
		}
	}
	return "", false
}

// Marshal encodes d.
func (d *ProvDoc) Marshal() []byte {
	var buf bytes.Buffer
	enc := xml.NewEncoder(&buf)
	if err := enc.Encode(d); err != nil {
		panic("mde: marshal provisioning document: " + err.Error())
	}
	return buf.Bytes()
}

// MaxProvDoc bounds a provisioning document a client parses.
const MaxProvDoc = 64 << 10

// ParseProvDoc decodes a provisioning document under the same XML rules
// as requests.
func ParseProvDoc(b []byte) (*ProvDoc, error) {
	if len(b) > MaxProvDoc {
		return nil, ErrBodyTooLarge
	}
	if err := CheckXML(b, MaxDepth); err != nil {
		return nil, err
	}
	var d ProvDoc
	if err := xml.Unmarshal(b, &d); err != nil {
		return nil, errs.Wrap(errs.Invalid, ErrMalformed.Code, ErrMalformed.Message, err)
	}
	return &d, nil
}

// Thumbprint is a certificate's SHA-1 thumbprint as Windows names
// certificates in its stores (upper-case hex of the DER's SHA-1).
func Thumbprint(c *x509.Certificate) string {
	h := sha1.Sum(c.Raw)
	return strings.ToUpper(hex.EncodeToString(h[:]))
}

// Provisioning is what the provisioning document installs.
type Provisioning struct {
	CA, Cert *x509.Certificate
	// DeviceStore puts the client certificate in the machine store
	// (EnrollmentType Device: My\System) instead of the user's (Full:
	// My\User).
	DeviceStore bool
	// ProviderID names the OMA-DM account (DMClient/Provider/<ID>);
	// ServerName is the w7 NAME shown in Settings; ManagementURL is ADDR.
	ProviderID, ServerName, ManagementURL string
	// PollMinutes is the steady polling interval; FirstPollMinutes the
	// interval of the first FirstPolls sessions after enrollment.
	PollMinutes, FirstPollMinutes, FirstPolls int
	// RenewPeriodDays is how many days before expiry the device renews
	// its certificate (WSTEP/Renew/RenewPeriod).
	RenewPeriodDays int
	EntDeviceName   string
	// PFN, when set, provisions WNS push (DMClient/Provider/<ID>/Push/PFN).
	PFN string
	// ClientSecret, ServerSecret and Nonce fill the APPAUTH entries the w7
	// CSP requires; authentication itself is the TLS client certificate.
	ClientSecret, ServerSecret, Nonce string
}

func parm(name, value string) Parm { return Parm{Name: name, Value: value} }
func parmT(name, value, datatype string) Parm {
	return Parm{Name: name, Value: value, Datatype: datatype}
}

// SubjectSearch is the SSLCLIENTCERTSEARCHCRITERIA of w7-application-csp:
// "Subject=<DN, RDNs in certificate order>&Stores=<store>", each value
// URL-encoded (the CSP's example: Subject=DC%3dcom%2cDC%3dmicrosoft%2c…&
// Stores=My%5CUser).
func SubjectSearch(c *x509.Certificate, store string) string {
	var rdns []string
	for _, rdn := range c.Subject.ToRDNSequence() {
		for _, atv := range rdn {
			name := atv.Type.String()
			switch {
			case atv.Type.Equal([]int{2, 5, 4, 3}):
				name = "CN"
			case atv.Type.Equal([]int{2, 5, 4, 10}):
				name = "O"
			case atv.Type.Equal([]int{2, 5, 4, 11}):
				name = "OU"
			case atv.Type.Equal([]int{2, 5, 4, 6}):
				name = "C"
			}
			v, _ := atv.Value.(string)
			rdns = append(rdns, name+"="+v)
		}
	}
	return "Subject=" + url.QueryEscape(strings.Join(rdns, ",")) + "&Stores=" + url.QueryEscape(store)
}

// Build returns the provisioning document of p.
func (p *Provisioning) Build() *ProvDoc {
	store := "User"
	if p.DeviceStore {
		store = "System"
	}
	doc := &ProvDoc{Version: "1.1"}
	doc.Characteristics = append(doc.Characteristics,
		// The CA into the machine's trusted roots.
		Characteristic{Type: "CertificateStore", Characteristics: []Characteristic{{Type: "Root", Characteristics: []Characteristic{{
			Type: "System", Characteristics: []Characteristic{{Type: Thumbprint(p.CA), Parms: []Parm{
				parm("EncodedCertificate", base64.StdEncoding.EncodeToString(p.CA.Raw))}}},
		}}}}},
		// The client certificate next to the private key the device kept
		// (PrivateKeyContainer), and its renewal over WSTEP.
		Characteristic{Type: "CertificateStore", Characteristics: []Characteristic{{Type: "My", Characteristics: []Characteristic{
			{Type: store, Characteristics: []Characteristic{
				{Type: Thumbprint(p.Cert), Parms: []Parm{parm("EncodedCertificate", base64.StdEncoding.EncodeToString(p.Cert.Raw))}},
				{Type: "PrivateKeyContainer"},
			}},
			{Type: "WSTEP", Characteristics: []Characteristic{{Type: "Renew", Parms: []Parm{
				parmT("ROBOSupport", "true", "boolean"),
				parmT("RenewPeriod", strconv.Itoa(p.RenewPeriodDays), "integer"),
				parmT("RetryInterval", "4", "integer"),
			}}}},
		}}}},
		// The OMA-DM account (w7 APPLICATION).
		Characteristic{Type: "APPLICATION", Parms: []Parm{
			parm("APPID", "w7"),
			parm("PROVIDER-ID", p.ProviderID),
			parm("NAME", p.ServerName),
			parm("ADDR", p.ManagementURL),
			parm("CONNRETRYFREQ", "6"),
			parm("INITIALBACKOFFTIME", "30000"),
			parm("MAXBACKOFFTIME", "120000"),
			{Name: "BACKCOMPATRETRYDISABLED"},
			parm("DEFAULTENCODING", "application/vnd.syncml.dm+xml"),
			parm("SSLCLIENTCERTSEARCHCRITERIA", SubjectSearch(p.Cert, "My\\"+store)),
		}, Characteristics: []Characteristic{
			{Type: "APPAUTH", Parms: []Parm{parm("AAUTHLEVEL", "CLIENT"), parm("AAUTHTYPE", "DIGEST"),
				parm("AAUTHSECRET", p.ClientSecret), parm("AAUTHDATA", p.Nonce)}},
			{Type: "APPAUTH", Parms: []Parm{parm("AAUTHLEVEL", "APPSRV"), parm("AAUTHTYPE", "DIGEST"),
				parm("AAUTHNAME", p.ProviderID), parm("AAUTHSECRET", p.ServerSecret), parm("AAUTHDATA", p.Nonce)}},
		}},
	)
	provider := Characteristic{Type: p.ProviderID, Parms: []Parm{
		parmT("EntDeviceName", p.EntDeviceName, "string"),
	}, Characteristics: []Characteristic{{Type: "Poll", Parms: []Parm{
		parmT("NumberOfFirstRetries", strconv.Itoa(p.FirstPolls), "integer"),
		parmT("IntervalForFirstSetOfRetries", strconv.Itoa(p.FirstPollMinutes), "integer"),
		parmT("NumberOfSecondRetries", "0", "integer"),
		parmT("IntervalForSecondSetOfRetries", strconv.Itoa(p.PollMinutes), "integer"),
		// 0 remaining retries means "for ever" (dmclient-csp Poll).
		parmT("NumberOfRemainingScheduledRetries", "0", "integer"),
		parmT("IntervalForRemainingScheduledRetries", strconv.Itoa(p.PollMinutes), "integer"),
		parmT("PollOnLogin", "true", "boolean"),
	}}}}
	if p.PFN != "" {
		provider.Characteristics = append(provider.Characteristics, Characteristic{Type: "Push", Parms: []Parm{
			parmT("PFN", p.PFN, "string")}})
	}
	doc.Characteristics = append(doc.Characteristics, Characteristic{Type: "DMClient", Characteristics: []Characteristic{
		{Type: "Provider", Characteristics: []Characteristic{provider}}}})
	return doc
}
