package mde

import (
	"bytes"
	"encoding/xml"
	"strconv"
)

// Discover is MS-MDE2 §2.2.6's Discover request.
type Discover struct {
	Request DiscoverRequest `xml:"request"`
}

// DiscoverRequest is the body of Discover.
type DiscoverRequest struct {
	EmailAddress       string   `xml:"EmailAddress"`
	RequestVersion     string   `xml:"RequestVersion"`
	DeviceType         string   `xml:"DeviceType"`
	ApplicationVersion string   `xml:"ApplicationVersion"`
	OSEdition          string   `xml:"OSEdition"`
	AuthPolicies       []string `xml:"AuthPolicies>AuthPolicy"`
}

// GetPolicies is MS-XCEP §3.1.4.1.1.1's request; Custos serves one policy
// whatever the client's filter, so only its presence matters.
type GetPolicies struct {
	Client struct {
		LastUpdate        string `xml:"lastUpdate"`
		PreferredLanguage string `xml:"preferredLanguage"`
	} `xml:"client"`
}

// RST is wst:RequestSecurityToken of MS-WSTEP as MS-MDE2 §2.2.9 profiles
// it.
type RST struct {
	TokenType           string               `xml:"http://docs.oasis-open.org/ws-sx/ws-trust/200512 TokenType"`
	RequestType         string               `xml:"http://docs.oasis-open.org/ws-sx/ws-trust/200512 RequestType"`
	BinarySecurityToken *BinarySecurityToken `xml:"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd BinarySecurityToken"`
	ContextItems        []ContextItem        `xml:"http://schemas.xmlsoap.org/ws/2006/12/authorization AdditionalContext>ContextItem"`
}

// ContextItem is one ac:ContextItem (MS-MDE2 §2.2.9.3: DeviceID, HWDevID,
// EnrollmentType, DeviceName, OSVersion, OSEdition, MAC, IMEI, …).
type ContextItem struct {
	Name  string `xml:"Name,attr"`
	Value string `xml:"http://schemas.xmlsoap.org/ws/2006/12/authorization Value"`
}

// Context returns the first value of each context item.
func (r *RST) Context() map[string]string {
	out := map[string]string{}
	for i, it := range r.ContextItems {
		if i >= MaxContextItems {
			break
		}
		if _, ok := out[it.Name]; !ok {
			out[it.Name] = clean(it.Value)
		}
	}
	return out
}

// ---- Responses. They are written with literal prefixes (s:, a:, …) and
// the declarations MS-MDE2 §4's examples carry, because SOAP fault codes
// are QNames ("s:Receiver") whose prefix must be bound where they appear.

type outEnvelope struct {
	XMLName xml.Name  `xml:"s:Envelope"`
	NSS     string    `xml:"xmlns:s,attr"`
	NSA     string    `xml:"xmlns:a,attr"`
	NSU     string    `xml:"xmlns:u,attr,omitempty"`
	Header  outHeader `xml:"s:Header"`
	Body    outBody   `xml:"s:Body"`
}

type mustAction struct {
	MustUnderstand string `xml:"s:mustUnderstand,attr"`
	Value          string `xml:",chardata"`
}

type activityID struct {
	XMLNS         string `xml:"xmlns,attr"`
	CorrelationID string `xml:"CorrelationId,attr"`
	Value         string `xml:",chardata"`
}

type outHeader struct {
	Action     mustAction   `xml:"a:Action"`
	ActivityID *activityID  `xml:"ActivityId,omitempty"`
	RelatesTo  string       `xml:"a:RelatesTo,omitempty"`
	Security   *outSecurity `xml:"o:Security,omitempty"`
}

type outSecurity struct {
	XMLNSO         string `xml:"xmlns:o,attr"`
	MustUnderstand string `xml:"s:mustUnderstand,attr"`
	Timestamp      struct {
		ID      string `xml:"u:Id,attr"`
		Created string `xml:"u:Created"`
		Expires string `xml:"u:Expires"`
	} `xml:"u:Timestamp"`
}

type outBody struct {
	XSI     string `xml:"xmlns:xsi,attr,omitempty"`
	XSD     string `xml:"xmlns:xsd,attr,omitempty"`
	Content any
}

func marshalEnvelope(env *outEnvelope) []byte {
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	enc := xml.NewEncoder(&buf)
	if err := enc.Encode(env); err != nil {
		// Our own types: only a programming error gets here.
		panic("mde: marshal response: " + err.Error())
	}
	return buf.Bytes()
}

func newEnvelope(action, relatesTo, activity string) *outEnvelope {
	env := &outEnvelope{NSS: NSSOAP, NSA: NSAddr}
	env.Header.Action = mustAction{MustUnderstand: "1", Value: action}
	env.Header.RelatesTo = relatesTo
	if activity != "" {
		// WCF's diagnostic activity ID, as MS-MDE2 §4's DiscoverResponse
		// carries: we put the request ID there, for support.
		env.Header.ActivityID = &activityID{XMLNS: NSDiag, CorrelationID: activity, Value: activity}
	}
	return env
}

// DiscoverResult is what a DiscoverResponse announces (MS-MDE2 §2.2.6.2).
type DiscoverResult struct {
	AuthPolicy                 string
	EnrollmentVersion          string
	EnrollmentPolicyServiceURL string
	EnrollmentServiceURL       string
	// AuthenticationServiceURL is sent with the Federated policy only.
	AuthenticationServiceURL string
}

type discoverResponse struct {
	XMLName xml.Name `xml:"DiscoverResponse"`
	XMLNS   string   `xml:"xmlns,attr"`
	Result  struct {
		AuthPolicy                 string `xml:"AuthPolicy"`
		EnrollmentVersion          string `xml:"EnrollmentVersion"`
		EnrollmentPolicyServiceURL string `xml:"EnrollmentPolicyServiceUrl"`
		EnrollmentServiceURL       string `xml:"EnrollmentServiceUrl"`
		AuthenticationServiceURL   string `xml:"AuthenticationServiceUrl,omitempty"`
	} `xml:"DiscoverResult"`
}

// MarshalDiscoverResponse returns the DiscoverResponse envelope answering
// the request whose MessageID is relatesTo.
func MarshalDiscoverResponse(relatesTo, activity string, res DiscoverResult) []byte {
	env := newEnvelope(ActionDiscoverResponse, relatesTo, activity)
	env.Body.XSI, env.Body.XSD = NSXSI, NSXSD
	dr := &discoverResponse{XMLNS: NSDiscover}
	dr.Result.AuthPolicy = res.AuthPolicy
	dr.Result.EnrollmentVersion = res.EnrollmentVersion
	dr.Result.EnrollmentPolicyServiceURL = res.EnrollmentPolicyServiceURL
	dr.Result.EnrollmentServiceURL = res.EnrollmentServiceURL
	if res.AuthPolicy == AuthFederated {
		dr.Result.AuthenticationServiceURL = res.AuthenticationServiceURL
	}
	env.Body.Content = dr
	return marshalEnvelope(env)
}

// Policy is the certificate policy GetPoliciesResponse announces.
type Policy struct {
	// MinKeyBits is minimalKeyLength (2048: pki.MinRSABits).
	MinKeyBits int
	// ValiditySeconds and RenewalSeconds fill certificateValidity.
	ValiditySeconds, RenewalSeconds int64
}

type nilElem struct {
	Nil string `xml:"xsi:nil,attr"`
}

var xsiNil = &nilElem{Nil: "true"}

type getPoliciesResponse struct {
	XMLName  xml.Name `xml:"GetPoliciesResponse"`
	XMLNS    string   `xml:"xmlns,attr"`
	Response struct {
		PolicyID           string   `xml:"policyID"`
		PolicyFriendlyName *nilElem `xml:"policyFriendlyName"`
		NextUpdateHours    *nilElem `xml:"nextUpdateHours"`
		PoliciesNotChanged *nilElem `xml:"policiesNotChanged"`
		Policies           struct {
			Policy struct {
				PolicyOIDReference int      `xml:"policyOIDReference"`
				CAs                *nilElem `xml:"cAs"`
				Attributes         struct {
					CommonName          string `xml:"commonName"`
					PolicySchema        int    `xml:"policySchema"`
					CertificateValidity struct {
						ValidityPeriodSeconds int64 `xml:"validityPeriodSeconds"`
						RenewalPeriodSeconds  int64 `xml:"renewalPeriodSeconds"`
					} `xml:"certificateValidity"`
					Permission struct {
						Enroll     bool `xml:"enroll"`
						AutoEnroll bool `xml:"autoEnroll"`
					} `xml:"permission"`
					PrivateKeyAttributes struct {
						MinimalKeyLength      int      `xml:"minimalKeyLength"`
						KeySpec               *nilElem `xml:"keySpec"`
						KeyUsageProperty      *nilElem `xml:"keyUsageProperty"`
						Permissions           *nilElem `xml:"permissions"`
						AlgorithmOIDReference *nilElem `xml:"algorithmOIDReference"`
						CryptoProviders       *nilElem `xml:"cryptoProviders"`
					} `xml:"privateKeyAttributes"`
					Revision struct {
						Major int `xml:"majorRevision"`
						Minor int `xml:"minorRevision"`
					} `xml:"revision"`
					SupersededPolicies        *nilElem `xml:"supersededPolicies"`
					PrivateKeyFlags           *nilElem `xml:"privateKeyFlags"`
					SubjectNameFlags          *nilElem `xml:"subjectNameFlags"`
					EnrollmentFlags           *nilElem `xml:"enrollmentFlags"`
					GeneralFlags              *nilElem `xml:"generalFlags"`
					HashAlgorithmOIDReference int      `xml:"hashAlgorithmOIDReference"`
					RARequirements            *nilElem `xml:"rARequirements"`
					KeyArchivalAttributes     *nilElem `xml:"keyArchivalAttributes"`
					Extensions                *nilElem `xml:"extensions"`
				} `xml:"attributes"`
			} `xml:"policy"`
		} `xml:"policies"`
	} `xml:"response"`
	CAs  *nilElem `xml:"cAs"`
	OIDs struct {
		OID []policyOID `xml:"oID"`
	} `xml:"oIDs"`
}

type policyOID struct {
	Value          string `xml:"value"`
	Group          int    `xml:"group"`
	OIDReferenceID int    `xml:"oIDReferenceID"`
	DefaultName    string `xml:"defaultName"`
}

// OIDSHA256 is the hash algorithm the policy names (MS-XCEP §3.1.4.1.3.16
// group 1 = hash algorithm): SHA-256, which Windows signs CSRs with.
const OIDSHA256 = "2.16.840.1.101.3.4.2.1"

// MarshalGetPoliciesResponse returns the GetPoliciesResponse envelope
// (MS-XCEP §3.1.4.1.1.2; the shape of MS-MDE2 §4.1.2's example).
func MarshalGetPoliciesResponse(relatesTo string, p Policy) []byte {
	env := newEnvelope(ActionGetPoliciesResp, relatesTo, "")
	env.Body.XSI, env.Body.XSD = NSXSI, NSXSD
	r := &getPoliciesResponse{XMLNS: NSPolicy, CAs: xsiNil}
	resp := &r.Response
	resp.PolicyFriendlyName, resp.NextUpdateHours, resp.PoliciesNotChanged = xsiNil, xsiNil, xsiNil
	pol := &resp.Policies.Policy
	pol.CAs = xsiNil
	a := &pol.Attributes
	a.CommonName = "Custos device"
	a.PolicySchema = 3
	a.CertificateValidity.ValidityPeriodSeconds = p.ValiditySeconds
	a.CertificateValidity.RenewalPeriodSeconds = p.RenewalSeconds
	a.Permission.Enroll = true
	a.PrivateKeyAttributes.MinimalKeyLength = p.MinKeyBits
	k := &a.PrivateKeyAttributes
	k.KeySpec, k.KeyUsageProperty, k.Permissions, k.AlgorithmOIDReference, k.CryptoProviders = xsiNil, xsiNil, xsiNil, xsiNil, xsiNil
	a.Revision.Major = 101
	a.SupersededPolicies, a.PrivateKeyFlags, a.SubjectNameFlags, a.EnrollmentFlags, a.GeneralFlags = xsiNil, xsiNil, xsiNil, xsiNil, xsiNil
	a.HashAlgorithmOIDReference = 0
	a.RARequirements, a.KeyArchivalAttributes, a.Extensions = xsiNil, xsiNil, xsiNil
	r.OIDs.OID = []policyOID{{Value: OIDSHA256, Group: 1, OIDReferenceID: 0, DefaultName: "szOID_NIST_sha256"}}
	env.Body.Content = r
	return marshalEnvelope(env)
}

type rstrCollection struct {
	XMLName  xml.Name `xml:"RequestSecurityTokenResponseCollection"`
	XMLNS    string   `xml:"xmlns,attr"`
	Response struct {
		TokenType          string `xml:"TokenType"`
		DispositionMessage struct {
			XMLNS string `xml:"xmlns,attr"`
		} `xml:"DispositionMessage"`
		RequestedSecurityToken struct {
			BinarySecurityToken struct {
				XMLNS        string `xml:"xmlns,attr"`
				ValueType    string `xml:"ValueType,attr"`
				EncodingType string `xml:"EncodingType,attr"`
				Value        string `xml:",chardata"`
			} `xml:"BinarySecurityToken"`
		} `xml:"RequestedSecurityToken"`
		RequestID struct {
			XMLNS string `xml:"xmlns,attr"`
			Value string `xml:",chardata"`
		} `xml:"RequestID"`
	} `xml:"RequestSecurityTokenResponse"`
}

// MarshalRSTResponse returns the RequestSecurityTokenResponseCollection
// envelope carrying provDocB64 (MS-MDE2 §4.1.3's example shape).
func MarshalRSTResponse(relatesTo, provDocB64, created, expires string) []byte {
	env := newEnvelope(ActionRSTRC, relatesTo, "")
	env.NSU = NSUtility
	sec := &outSecurity{XMLNSO: NSSecExt, MustUnderstand: "1"}
	sec.Timestamp.ID, sec.Timestamp.Created, sec.Timestamp.Expires = "_0", created, expires
	env.Header.Security = sec
	c := &rstrCollection{XMLNS: NSTrust}
	r := &c.Response
	r.TokenType = TokenTypeEnrollment
	r.DispositionMessage.XMLNS = NSEnroll
	b := &r.RequestedSecurityToken.BinarySecurityToken
	b.XMLNS, b.ValueType, b.EncodingType, b.Value = NSSecExt, ValueTypeProvDoc, EncodingBase64, provDocB64
	r.RequestID.XMLNS, r.RequestID.Value = NSEnroll, strconv.Itoa(0)
	env.Body.Content = c
	return marshalEnvelope(env)
}

// ---- Parsing of the responses (the emulator and the tests read them
// namespace-aware, as a Windows client does).

// DiscoverResponseEnvelope is a parsed DiscoverResponse.
type DiscoverResponseEnvelope struct {
	XMLName xml.Name `xml:"http://www.w3.org/2003/05/soap-envelope Envelope"`
	Header  struct {
		Action    string `xml:"http://www.w3.org/2005/08/addressing Action"`
		RelatesTo string `xml:"http://www.w3.org/2005/08/addressing RelatesTo"`
	} `xml:"http://www.w3.org/2003/05/soap-envelope Header"`
	Body struct {
		Response *struct {
			Result struct {
				AuthPolicy                 string `xml:"http://schemas.microsoft.com/windows/management/2012/01/enrollment AuthPolicy"`
				EnrollmentVersion          string `xml:"http://schemas.microsoft.com/windows/management/2012/01/enrollment EnrollmentVersion"`
				EnrollmentPolicyServiceURL string `xml:"http://schemas.microsoft.com/windows/management/2012/01/enrollment EnrollmentPolicyServiceUrl"`
				EnrollmentServiceURL       string `xml:"http://schemas.microsoft.com/windows/management/2012/01/enrollment EnrollmentServiceUrl"`
				AuthenticationServiceURL   string `xml:"http://schemas.microsoft.com/windows/management/2012/01/enrollment AuthenticationServiceUrl"`
			} `xml:"http://schemas.microsoft.com/windows/management/2012/01/enrollment DiscoverResult"`
		} `xml:"http://schemas.microsoft.com/windows/management/2012/01/enrollment DiscoverResponse"`
		Fault *Fault `xml:"http://www.w3.org/2003/05/soap-envelope Fault"`
	} `xml:"http://www.w3.org/2003/05/soap-envelope Body"`
}

// GetPoliciesResponseEnvelope is a parsed GetPoliciesResponse.
type GetPoliciesResponseEnvelope struct {
	XMLName xml.Name `xml:"http://www.w3.org/2003/05/soap-envelope Envelope"`
	Header  struct {
		Action    string `xml:"http://www.w3.org/2005/08/addressing Action"`
		RelatesTo string `xml:"http://www.w3.org/2005/08/addressing RelatesTo"`
	} `xml:"http://www.w3.org/2003/05/soap-envelope Header"`
	Body struct {
		Response *struct {
			Policies []struct {
				Attributes struct {
					PolicySchema     int `xml:"http://schemas.microsoft.com/windows/pki/2009/01/enrollmentpolicy policySchema"`
					MinimalKeyLength int `xml:"http://schemas.microsoft.com/windows/pki/2009/01/enrollmentpolicy privateKeyAttributes>minimalKeyLength"`
					HashOIDRef       int `xml:"http://schemas.microsoft.com/windows/pki/2009/01/enrollmentpolicy hashAlgorithmOIDReference"`
				} `xml:"http://schemas.microsoft.com/windows/pki/2009/01/enrollmentpolicy attributes"`
			} `xml:"http://schemas.microsoft.com/windows/pki/2009/01/enrollmentpolicy response>policies>policy"`
			OIDs []struct {
				Value string `xml:"http://schemas.microsoft.com/windows/pki/2009/01/enrollmentpolicy value"`
				Group int    `xml:"http://schemas.microsoft.com/windows/pki/2009/01/enrollmentpolicy group"`
				Ref   int    `xml:"http://schemas.microsoft.com/windows/pki/2009/01/enrollmentpolicy oIDReferenceID"`
			} `xml:"http://schemas.microsoft.com/windows/pki/2009/01/enrollmentpolicy oIDs>oID"`
		} `xml:"http://schemas.microsoft.com/windows/pki/2009/01/enrollmentpolicy GetPoliciesResponse"`
		Fault *Fault `xml:"http://www.w3.org/2003/05/soap-envelope Fault"`
	} `xml:"http://www.w3.org/2003/05/soap-envelope Body"`
}

// RSTResponseEnvelope is a parsed RequestSecurityTokenResponseCollection.
type RSTResponseEnvelope struct {
	XMLName xml.Name `xml:"http://www.w3.org/2003/05/soap-envelope Envelope"`
	Header  struct {
		Action    string `xml:"http://www.w3.org/2005/08/addressing Action"`
		RelatesTo string `xml:"http://www.w3.org/2005/08/addressing RelatesTo"`
	} `xml:"http://www.w3.org/2003/05/soap-envelope Header"`
	Body struct {
		Collection *struct {
			Response struct {
				TokenType string `xml:"http://docs.oasis-open.org/ws-sx/ws-trust/200512 TokenType"`
				Requested struct {
					Token struct {
						ValueType    string `xml:"ValueType,attr"`
						EncodingType string `xml:"EncodingType,attr"`
						Value        string `xml:",chardata"`
					} `xml:"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd BinarySecurityToken"`
				} `xml:"http://docs.oasis-open.org/ws-sx/ws-trust/200512 RequestedSecurityToken"`
			} `xml:"http://docs.oasis-open.org/ws-sx/ws-trust/200512 RequestSecurityTokenResponse"`
		} `xml:"http://docs.oasis-open.org/ws-sx/ws-trust/200512 RequestSecurityTokenResponseCollection"`
		Fault *Fault `xml:"http://www.w3.org/2003/05/soap-envelope Fault"`
	} `xml:"http://www.w3.org/2003/05/soap-envelope Body"`
}
