package mde

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/custos-uem/custos/errs"
)

// Paths. PathDiscovery is fixed by Windows autodiscovery (MS-MDE2 §3.1:
// https://enterpriseenrollment.<domain>/EnrollmentServer/Discovery.svc);
// the other two are ours, announced in the DiscoverResponse.
const (
	PathDiscovery = "/EnrollmentServer/Discovery.svc"
	PathPolicy    = "/device/windows/policy"
	PathEnroll    = "/device/windows/enroll"
	// PathAuth is the federated sign-in page (AuthenticationServiceUrl).
	PathAuth = "/device/windows/auth"
)

// Wire limits, checked before anything is decoded. A Discover message is
// under 2 KiB, a GetPolicies under 4 KiB; a RequestSecurityToken carries a
// CSR (an RSA-4096 request is about 2.3 KiB in base64) and a few dozen
// context items.
const (
	MaxDiscoverBody = 16 << 10
	MaxPolicyBody   = 32 << 10
	MaxEnrollBody   = 64 << 10
	// MaxDepth is the deepest element nesting accepted. Our deepest
	// request (RequestSecurityToken/AdditionalContext/ContextItem/Value)
	// is 6 levels inside the envelope.
	MaxDepth = 24
	// MaxField bounds a text field we keep (addresses, identifiers).
	MaxField = 256
	// MaxContextItems bounds the AdditionalContext of one request.
	MaxContextItems = 64
)

// ContentType is SOAP 1.2's media type (RFC 3902); MS-MDE2 §2.1 sends it
// with charset utf-8 and wants answers with a Content-Length, not chunked.
const ContentType = "application/soap+xml; charset=utf-8"

// Namespaces (MS-MDE2 §2.2.1 and the WS-* specifications it uses).
const (
	NSSOAP     = "http://www.w3.org/2003/05/soap-envelope"
	NSAddr     = "http://www.w3.org/2005/08/addressing"
	NSSecExt   = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
	NSUtility  = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
	NSTrust    = "http://docs.oasis-open.org/ws-sx/ws-trust/200512"
	NSAuthz    = "http://schemas.xmlsoap.org/ws/2006/12/authorization"
	NSDiscover = "http://schemas.microsoft.com/windows/management/2012/01/enrollment"
	NSPolicy   = "http://schemas.microsoft.com/windows/pki/2009/01/enrollmentpolicy"
	NSEnroll   = "http://schemas.microsoft.com/windows/pki/2009/01/enrollment"
	NSXSI      = "http://www.w3.org/2001/XMLSchema-instance"
	NSXSD      = "http://www.w3.org/2001/XMLSchema"
	NSDiag     = "http://schemas.microsoft.com/2004/09/ServiceModel/Diagnostics"
)

// SOAP actions (WS-Addressing Action header) of each message.
const (
	ActionDiscover         = "http://schemas.microsoft.com/windows/management/2012/01/enrollment/IDiscoveryService/Discover"
	ActionDiscoverResponse = "http://schemas.microsoft.com/windows/management/2012/01/enrollment/IDiscoveryService/DiscoverResponse"
	ActionGetPolicies      = "http://schemas.microsoft.com/windows/pki/2009/01/enrollmentpolicy/IPolicy/GetPolicies"
	ActionGetPoliciesResp  = "http://schemas.microsoft.com/windows/pki/2009/01/enrollmentpolicy/IPolicy/GetPoliciesResponse"
	ActionRST              = "http://schemas.microsoft.com/windows/pki/2009/01/enrollment/RST/wstep"
	ActionRSTRC            = "http://schemas.microsoft.com/windows/pki/2009/01/enrollment/RSTRC/wstep"
	ActionFault            = "http://www.w3.org/2005/08/addressing/soap/fault"
)

// Token types and value types of MS-MDE2 §2.2.9 and the WSTEP messages.
const (
	TokenTypeEnrollment = "http://schemas.microsoft.com/5.0.0.0/ConfigurationManager/Enrollment/DeviceEnrollmentToken"
	RequestTypeIssue    = "http://docs.oasis-open.org/ws-sx/ws-trust/200512/Issue"
	RequestTypeRenew    = "http://docs.oasis-open.org/ws-sx/ws-trust/200512/Renew"
	ValueTypePKCS10     = "http://schemas.microsoft.com/windows/pki/2009/01/enrollment#PKCS10"
	ValueTypeProvDoc    = "http://schemas.microsoft.com/5.0.0.0/ConfigurationManager/Enrollment/DeviceEnrollmentProvisionDoc"
	// ValueTypeUserToken is the federated token of the Security header
	// (federated-authentication-device-enrollment).
	ValueTypeUserToken = "http://schemas.microsoft.com/5.0.0.0/ConfigurationManager/Enrollment/DeviceEnrollmentUserToken"
	EncodingBase64     = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd#base64binary"
	PasswordText       = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText"
	AddrAnonymous      = "http://www.w3.org/2005/08/addressing/anonymous"
)

// Auth policies (MS-MDE2 §2.2.6 AuthPolicy).
const (
	AuthOnPremise   = "OnPremise"
	AuthFederated   = "Federated"
	AuthCertificate = "Certificate"
)

// Envelope is a SOAP 1.2 request as MS-MDE2 clients send it; Body holds
// whichever of the three requests it carries.
type Envelope struct {
	XMLName xml.Name `xml:"http://www.w3.org/2003/05/soap-envelope Envelope"`
	Header  Header   `xml:"http://www.w3.org/2003/05/soap-envelope Header"`
	Body    Body     `xml:"http://www.w3.org/2003/05/soap-envelope Body"`
}

// Header is the WS-Addressing and WS-Security header.
type Header struct {
	Action    string    `xml:"http://www.w3.org/2005/08/addressing Action"`
	MessageID string    `xml:"http://www.w3.org/2005/08/addressing MessageID"`
	To        string    `xml:"http://www.w3.org/2005/08/addressing To"`
	Security  *Security `xml:"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd Security"`
}

// Security is wsse:Security: a UsernameToken (OnPremise) or a
// BinarySecurityToken (Federated).
type Security struct {
	UsernameToken *UsernameToken       `xml:"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd UsernameToken"`
	Binary        *BinarySecurityToken `xml:"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd BinarySecurityToken"`
}

// UsernameToken is the OnPremise credential (on-premise-authentication-
// device-enrollment: the user's email and password in clear, inside TLS).
type UsernameToken struct {
	Username string `xml:"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd Username"`
	Password string `xml:"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd Password"`
}

// BinarySecurityToken is a base64 token with its value type.
type BinarySecurityToken struct {
	ValueType    string `xml:"ValueType,attr"`
	EncodingType string `xml:"EncodingType,attr"`
	Value        string `xml:",chardata"`
}

// Body holds the request of the message.
type Body struct {
	Discover    *Discover    `xml:"http://schemas.microsoft.com/windows/management/2012/01/enrollment Discover"`
	GetPolicies *GetPolicies `xml:"http://schemas.microsoft.com/windows/pki/2009/01/enrollmentpolicy GetPolicies"`
	RST         *RST         `xml:"http://docs.oasis-open.org/ws-sx/ws-trust/200512 RequestSecurityToken"`
}

// Errors of the XML layer (all become s:messageformat faults).
var (
	ErrBodyTooLarge = errs.E(errs.TooLarge, "soap_body_too_large", "the SOAP message is larger than this endpoint accepts")
	ErrDoctype      = errs.E(errs.Invalid, "soap_doctype", "a SOAP message must not contain a DOCTYPE or ENTITY declaration")
	ErrTooDeep      = errs.E(errs.Invalid, "soap_too_deep", "the SOAP message nests too deeply")
	ErrMalformed    = errs.E(errs.Invalid, "soap_malformed", "the SOAP message is not well-formed XML")
	ErrMediaType    = errs.E(errs.Invalid, "soap_media_type", "the request must be application/soap+xml")
	ErrWrongAction  = errs.E(errs.Invalid, "soap_wrong_action", "the SOAP action is not the one this endpoint serves")
	ErrMissing      = errs.E(errs.Invalid, "soap_missing_field", "the SOAP message lacks a required element")
)

// readBody reads r's body under limit (http.MaxBytesReader, the declared
// length checked first) after checking the media type.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		// SOAP 1.2 is application/soap+xml; a few stacks send text/xml.
		if err != nil || (mt != "application/soap+xml" && mt != "text/xml") {
			return nil, ErrMediaType
		}
	}
	if r.ContentLength > limit {
		return nil, ErrBodyTooLarge
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, ErrBodyTooLarge
		}
		return nil, errs.Wrap(errs.Invalid, "soap_unreadable", "the request body could not be read", err)
	}
	return b, nil
}

// CheckXML is the token pass run over untrusted XML before it is decoded:
// it refuses any directive (<!DOCTYPE …>, <!ENTITY …>: encoding/xml never
// expands entities, but a DTD in a SOAP message is itself an attack and
// SOAP 1.2 Part 1 §5 forbids it), nesting deeper than maxDepth, and
// anything that is not well-formed.
func CheckXML(b []byte, maxDepth int) error {
	d := xml.NewDecoder(bytes.NewReader(b))
	depth := 0
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			if depth != 0 {
				return ErrMalformed
			}
			return nil
		}
		if err != nil {
			return errs.Wrap(errs.Invalid, ErrMalformed.Code, ErrMalformed.Message, err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return ErrDoctype
		case xml.ProcInst:
			if t.Target != "xml" {
				return ErrMalformed
			}
		case xml.StartElement:
			depth++
			if depth > maxDepth {
				return ErrTooDeep
			}
		case xml.EndElement:
			depth--
		}
	}
}

// DecodeEnvelope checks b (CheckXML) and decodes it.
func DecodeEnvelope(b []byte) (*Envelope, error) {
	if err := CheckXML(b, MaxDepth); err != nil {
		return nil, err
	}
	var env Envelope
	if err := xml.Unmarshal(b, &env); err != nil {
		return nil, errs.Wrap(errs.Invalid, ErrMalformed.Code, ErrMalformed.Message, err)
	}
	return &env, nil
}

// clean trims s and refuses control characters and overlong values; ""
// means absent or invalid.
func clean(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > MaxField || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return ""
	}
	return s
}
