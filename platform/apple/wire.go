// Package apple is the Core's side of Apple's MDM protocol for iOS, iPadOS
// and macOS devices: the check-in protocol (CheckInURL: Authenticate,
// TokenUpdate, CheckOut, …) and the command protocol (ServerURL: the
// device reports a result or Idle and receives its next command). It walks
// the seed's "Receiving configuration updates on an iOS device" and "… on a
// macOS device", steps 5–7: the device asks, the Core answers with the
// highest-priority command from the one shared queue (package command),
// one command per round trip, or with an empty body when nothing is due,
// and the device reports the command's status.
//
// # Promise
//
//   - Every request is authenticated by the device's identity certificate,
//     from mutual TLS or from the Mdm-Signature header (a detached CMS
//     signature over the body), chain-checked against the Core's CA. Its
//     CN names a device that is enrolled or active, and its serial is a
//     certificate recorded for that device and not revoked: removing a
//     device refuses its next request.
//   - A certificate is bound to one enrollment (UDID) at Authenticate; a
//     body naming another UDID is refused (403) and nothing is stored.
//   - Bodies are size-limited before they are read and their plist
//     nesting is checked before they are decoded (see the Max*
//     constants).
//   - Commands keep the queue's guarantees (command package doc); a result
//     for a command never queued for the device is refused, a repeated
//     result changes nothing.
//
// Apple's protocol reference: https://developer.apple.com/documentation/devicemanagement
// (check-in: "Check-In", commands: "Commands and Queries"). Message types
// and decoding come from github.com/micromdm/nanomdm/mdm.
package apple

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"

	"github.com/custos-uem/custos/errs"
)

// Paths of the protocol (the profile's CheckInURL and ServerURL).
const (
	PathCheckin = "/device/apple/checkin"
	PathServer  = "/device/apple/mdm"
)

// Content types.
const (
	// ContentTypeCheckin is what devices send to the check-in endpoint
	// (Apple: "Check-In", HTTP request). mdmb v0.1.0 sends none, so the
	// message is also recognised by its MessageType key.
	ContentTypeCheckin = "application/x-apple-aspen-mdm-checkin"
	ContentTypePlist   = "application/xml"
)

// Wire limits, checked before a body is read into memory or decoded.
const (
	// MaxCheckinBody bounds a check-in message. The largest ones are a
	// TokenUpdate with an UnlockToken (a few KiB) and a declarative
	// management status report; 1 MiB leaves them a wide margin.
	MaxCheckinBody = 1 << 20
	// MaxReportBody bounds a command report. An InstalledApplicationList
	// of device.MaxApps (20000) apps is about 200 bytes of XML per app,
	// 4 MiB; a ProfileList or CertificateList is far smaller.
	MaxReportBody = 4 << 20
	// MaxDepth bounds the nesting of dict and array elements. Apple's
	// deepest documented reports (ProfileList: list → profile →
	// PayloadContent → payload → values) nest below 10; the plist
	// decoders recurse, so the depth is checked first.
	MaxDepth = 32
	// MaxSignatureHeader bounds the Mdm-Signature header: a base64 CMS
	// signature carrying the identity certificate (an RSA-4096 one and its
	// signature are about 4 KiB of base64).
	MaxSignatureHeader = 16 << 10
	// MaxRawCommand bounds the plist of one raw command sent to a device.
	MaxRawCommand = 64 << 10
	// MaxID bounds a UDID, EnrollmentID or command UUID.
	MaxID = 256
)

// Errors with stable codes.
var (
	ErrMalformed = errs.E(errs.Invalid, "malformed_plist", "the body is not a well-formed XML property list")
	ErrTooDeep   = errs.E(errs.Invalid, "plist_too_deep", fmt.Sprintf("the property list nests deeper than %d levels", MaxDepth))
	// ErrUDIDMismatch: the body names an enrollment other than the one the
	// certificate is bound to.
	ErrUDIDMismatch = errs.E(errs.Forbidden, "enrollment_mismatch", "the request names an enrollment other than the one its certificate is bound to")
	// ErrCertBound: Authenticate with a certificate bound to another
	// enrollment.
	ErrCertBound = errs.E(errs.Forbidden, "certificate_bound", "the certificate is bound to another enrollment")
	// ErrNotEnrolled: a request of a certificate that completed no
	// enrollment (no Authenticate and TokenUpdate yet, or checked out).
	ErrNotEnrolled = errs.E(errs.Forbidden, "not_enrolled", "the certificate has no completed enrollment")
)

// CheckDepth returns ErrTooDeep if the XML in b nests dict or array
// elements deeper than max, and ErrMalformed if it is not well-formed XML
// or is a binary property list (devices send XML; a binary plist would
// reach the recursive decoder unchecked). It reads tokens iteratively, so
// it never recurses itself.
func CheckDepth(b []byte, max int) error {
	t := bytes.TrimLeft(b, " \t\r\n\ufeff")
	if len(t) == 0 || t[0] != '<' {
		return ErrMalformed
	}
	dec := xml.NewDecoder(bytes.NewReader(b))
	dec.Strict = true
	depth, elements := 0, 0
	for {
		tok, err := dec.RawToken()
		if errors.Is(err, io.EOF) {
			if depth != 0 || elements == 0 {
				return ErrMalformed
			}
			return nil
		}
		if err != nil {
			return ErrMalformed
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			elements++
			depth++
			if depth > max {
				return ErrTooDeep
			}
		case xml.EndElement:
			depth--
			if depth < 0 {
				return ErrMalformed
			}
		case xml.Directive:
			// A DOCTYPE is allowed (Apple's plists carry one); an internal
			// subset could declare entities, which the plist decoder does
			// not expand: refuse it rather than reason about it.
			if bytes.Contains(tok, []byte("[")) {
				return ErrMalformed
			}
		}
	}
}
