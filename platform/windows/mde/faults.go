package mde

import (
	"encoding/xml"
	"errors"
	"net/http"
	"strconv"

	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/httpx"
)

// Fault subcodes MS-MDE2 defines (§2.2, its SOAP faults; the table is in
// mdm-enrollment-of-windows-devices, "Enrollment error messages": each
// maps to a MENROLL_E_* error the client shows).
const (
	SubcodeMessageFormat   = "s:messageformat"        // MENROLL_E_DEVICE_MESSAGE_FORMAT_ERROR
	SubcodeAuthentication  = "s:authentication"       // MENROLL_E_DEVICE_AUTHENTICATION_ERROR
	SubcodeAuthorization   = "s:authorization"        // MENROLL_E_DEVICE_AUTHORIZATION_ERROR
	SubcodeCertRequest     = "s:certificaterequest"   // MENROLL_E_DEVICE_CERTIFICATEREQUEST_ERROR
	SubcodeEnrollServer    = "s:enrollmentserver"     // MENROLL_E_DEVICE_CONFIGMGRSERVER_ERROR
	SubcodeInternal        = "s:internalservicefault" // MENROLL_E_DEVICE_INTERNALSERVICE_ERROR
	SubcodeInvalidSecurity = "a:invalidsecurity"      // MENROLL_E_DEVICE_INVALIDSECURITY_ERROR
)

// Error types of the DeviceEnrollmentServiceError detail (the same page's
// second table); the client shows a specific message for each.
const (
	TypeMessageFormat        = "MessageFormat"
	TypeAuthentication       = "AuthenticationFailure"
	TypeAuthorization        = "Authorization"
	TypeDeviceCapReached     = "DeviceCapReached"   // MENROLL_E_DEVICECAPREACHED
	TypeDeviceNotSupported   = "DeviceNotSupported" // MENROLL_E_DEVICENOTSUPPORTED
	TypeNotSupported         = "NotSupported"       // MENROLL_E_NOT_SUPPORTED
	TypeInMaintenance        = "InMaintenance"      // MENROLL_E_INMAINTENANCE
	TypeUserLicense          = "UserLicense"        // MENROLL_E_USER_LICENSE
	TypeInvalidEnrollData    = "InvalidEnrollmentData"
	TypeCertificateRequest   = "CertificateRequest"
	TypeInternalServiceFault = "InternalServiceFault"
)

// Fault is a parsed SOAP 1.2 fault with its MS-MDE2 detail.
type Fault struct {
	Code    string `xml:"http://www.w3.org/2003/05/soap-envelope Code>Value"`
	Subcode string `xml:"http://www.w3.org/2003/05/soap-envelope Code>Subcode>Value"`
	Reason  string `xml:"http://www.w3.org/2003/05/soap-envelope Reason>Text"`
	Detail  struct {
		ErrorType string `xml:"http://schemas.microsoft.com/windows/pki/2009/01/enrollment DeviceEnrollmentServiceError>ErrorType"`
		Message   string `xml:"http://schemas.microsoft.com/windows/pki/2009/01/enrollment DeviceEnrollmentServiceError>Message"`
		TraceID   string `xml:"http://schemas.microsoft.com/windows/pki/2009/01/enrollment DeviceEnrollmentServiceError>TraceId"`
	} `xml:"http://www.w3.org/2003/05/soap-envelope Detail"`
}

func (f *Fault) Error() string {
	return "SOAP fault " + f.Subcode + " (" + f.Detail.ErrorType + "): " + f.Reason
}

// faultOf maps an error to its MS-MDE2 subcode and error type: the one
// place where our error kinds and codes meet the Windows client's.
func faultOf(err error) (subcode, errorType string) {
	var e *errs.Error
	code := ""
	if errors.As(err, &e) {
		code = e.Code
	}
	switch code {
	case "platform_not_allowed":
		return SubcodeAuthorization, TypeDeviceNotSupported
	case "device_limit_reached":
		return SubcodeAuthorization, TypeDeviceCapReached
	case "license_missing", "license_wrong_server", "license_device_limit", "license_expired":
		return SubcodeAuthorization, TypeUserLicense
	case "device_in_use":
		return SubcodeAuthorization, TypeAuthorization
	case "activation_password_used", "activation_locked", "enrollment_session_closed":
		return SubcodeAuthentication, TypeAuthentication
	case "csr_malformed", "csr_bad_signature", "csr_weak_key", "csr_too_large", "csr_subject_mismatch":
		return SubcodeCertRequest, TypeCertificateRequest
	case "not_supported":
		return SubcodeEnrollServer, TypeNotSupported
	case "rate_limited":
		return SubcodeEnrollServer, TypeInMaintenance
	}
	switch errs.KindOf(err) {
	case errs.Invalid, errs.TooLarge:
		return SubcodeMessageFormat, TypeMessageFormat
	case errs.Unauthenticated, errs.RateLimited:
		return SubcodeAuthentication, TypeAuthentication
	case errs.Forbidden, errs.Conflict:
		return SubcodeAuthorization, TypeAuthorization
	case errs.NotFound:
		return SubcodeEnrollServer, TypeNotSupported
	case errs.Unavailable:
		return SubcodeEnrollServer, TypeInMaintenance
	}
	return SubcodeInternal, TypeInternalServiceFault
}

// ErrNotSupported refuses what this server does not offer (an auth policy
// it is not configured for, a renewal without a certificate).
var ErrNotSupported = errs.E(errs.Forbidden, "not_supported", "this enrollment server does not support the request")

type outFault struct {
	XMLName xml.Name `xml:"s:Fault"`
	Code    struct {
		Value   string `xml:"s:Value"`
		Subcode struct {
			Value string `xml:"s:Value"`
		} `xml:"s:Subcode"`
	} `xml:"s:Code"`
	Reason struct {
		Text struct {
			Lang  string `xml:"xml:lang,attr"`
			Value string `xml:",chardata"`
		} `xml:"s:Text"`
	} `xml:"s:Reason"`
	Detail struct {
		Error struct {
			XMLNS     string `xml:"xmlns,attr"`
			ErrorType string `xml:"ErrorType"`
			Message   string `xml:"Message"`
			TraceID   string `xml:"TraceId"`
		} `xml:"DeviceEnrollmentServiceError"`
	} `xml:"s:Detail"`
}

// MarshalFault returns the fault envelope for err: code s:Receiver as in
// every MS-MDE2 example, the subcode and error type from faultOf, the
// error's public message, and traceID (our request ID) for support.
func MarshalFault(relatesTo, traceID string, err error) []byte {
	sub, typ := faultOf(err)
	_, msg, _ := errs.Public(err)
	env := newEnvelope(ActionFault, relatesTo, "")
	f := &outFault{}
	f.Code.Value = "s:Receiver"
	f.Code.Subcode.Value = sub
	f.Reason.Text.Lang, f.Reason.Text.Value = "en-US", msg
	d := &f.Detail.Error
	d.XMLNS, d.ErrorType, d.Message, d.TraceID = NSEnroll, typ, msg, traceID
	env.Body.Content = f
	return marshalEnvelope(env)
}

// WriteSOAP answers b with a Content-Length (MS-MDE2 §2.1: not chunked).
func WriteSOAP(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// WriteFault logs err and answers its fault. The HTTP status is 500, as
// the SOAP 1.2 HTTP binding (Part 2 §7.5.1.2) gives a Receiver fault and
// as the WCF enrollment servers Windows is tested against answer; the
// subcode carries the meaning.
func WriteFault(w http.ResponseWriter, r *http.Request, relatesTo string, err error) {
	sub, _ := faultOf(err)
	l := httpx.Logger(r.Context())
	if sub == SubcodeInternal || sub == SubcodeEnrollServer {
		l.Error("windows enrollment failed", "err", err, "subcode", sub)
	} else {
		l.Info("windows enrollment refused", "err", err, "subcode", sub)
	}
	WriteSOAP(w, http.StatusInternalServerError, MarshalFault(relatesTo, activityOf(r), err))
}
