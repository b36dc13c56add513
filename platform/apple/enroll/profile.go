package enroll

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/micromdm/plist"
	"github.com/smallstep/pkcs7"
)

// ContentType is the media type of a configuration profile
// (https://developer.apple.com/documentation/devicemanagement/profile-specific_payload_keys).
const ContentType = "application/x-apple-aspen-config"

// Values of the payloads. The keys and their meaning:
// https://developer.apple.com/documentation/devicemanagement/mdm,
// https://developer.apple.com/documentation/devicemanagement/scep,
// https://developer.apple.com/documentation/devicemanagement/root.
const (
	// AccessRights 8191 is every bit of the MDM payload's AccessRights
	// (1 inspect profiles … 4096 app management): the server may send every
	// command the device's enrollment type allows.
	AccessRights = 8191
	// KeySize is the RSA modulus the device generates for its identity;
	// SCEP needs RSA (RFC 8894 §3.5.1 envelopes are RSA key transport).
	KeySize = 2048
	// KeyUsage 5 = signing (1) | encryption (4): the identity signs
	// Mdm-Signature and is used for TLS client authentication.
	KeyUsage = 5
)

// ServerCapabilities are announced in the MDM payload: per-user
// connections (macOS user channel), Bootstrap Token escrow, and the
// GetToken check-in.
var ServerCapabilities = []string{"com.apple.mdm.per-user-connections", "com.apple.mdm.bootstraptoken", "com.apple.mdm.token"}

// payloadHeader are the keys every payload has
// (https://developer.apple.com/documentation/devicemanagement/toplevel).
type payloadHeader struct {
	PayloadType         string
	PayloadVersion      int
	PayloadIdentifier   string
	PayloadUUID         string
	PayloadDisplayName  string `plist:",omitempty"`
	PayloadDescription  string `plist:",omitempty"`
	PayloadOrganization string `plist:",omitempty"`
}

type configuration struct {
	payloadHeader
	PayloadContent []any
}

type rootPayload struct {
	payloadHeader
	PayloadCertificateFileName string
	PayloadContent             []byte // the DER certificate
}

type scepContent struct {
	URL       string
	Name      string       `plist:",omitempty"`
	Subject   [][][]string `plist:",omitempty"`
	Challenge string
	Keysize   int
	KeyType   string `plist:"Key Type"`
	KeyUsage  int    `plist:"Key Usage"`
}

type scepPayload struct {
	payloadHeader
	PayloadContent scepContent
}

type mdmPayload struct {
	payloadHeader
	ServerURL               string
	CheckInURL              string
	Topic                   string
	IdentityCertificateUUID string
	AccessRights            int
	SignMessage             bool
	CheckOutWhenRemoved     bool
	ServerCapabilities      []string
}

// profileInput is what one enrollment profile is built from.
type profileInput struct {
	Identifier   string // prefix of every PayloadIdentifier
	Organization string
	CA           *x509.Certificate
	SCEPURL      string
	Challenge    string
	DeviceID     string
	ServerURL    string
	CheckInURL   string
	Topic        string
}

// buildProfile returns the XML plist of the enrollment profile: the CA
// (so that the device trusts the Core's TLS certificate), the SCEP payload
// of the device identity, and the MDM payload that uses that identity.
func buildProfile(in profileInput) ([]byte, error) {
	if in.CA == nil {
		return nil, errors.New("enroll: no CA certificate")
	}
	hdr := func(typ, suffix, name string) payloadHeader {
		return payloadHeader{PayloadType: typ, PayloadVersion: 1, PayloadIdentifier: in.Identifier + suffix,
			PayloadUUID: uuid.NewString(), PayloadDisplayName: name, PayloadOrganization: in.Organization}
	}
	root := rootPayload{payloadHeader: hdr("com.apple.security.root", ".ca", "Device management CA"),
		PayloadCertificateFileName: "custos-ca.cer", PayloadContent: in.CA.Raw}
	scep := scepPayload{payloadHeader: hdr("com.apple.security.scep", ".scep", "Device identity"),
		PayloadContent: scepContent{
			URL: in.SCEPURL, Name: in.Organization, Challenge: in.Challenge,
			// The CN is the device ID the challenge is bound to; the server
			// certifies that, whatever the CSR says.
			Subject: [][][]string{{{"CN", in.DeviceID}}},
			Keysize: KeySize, KeyType: "RSA", KeyUsage: KeyUsage,
		}}
	mdm := mdmPayload{payloadHeader: hdr("com.apple.mdm", ".mdm", "Device management"),
		ServerURL: in.ServerURL, CheckInURL: in.CheckInURL, Topic: in.Topic,
		IdentityCertificateUUID: scep.PayloadUUID, AccessRights: AccessRights,
		SignMessage: true, CheckOutWhenRemoved: true, ServerCapabilities: ServerCapabilities}
	top := configuration{payloadHeader: hdr("Configuration", "", in.Organization+" device management"),
		PayloadContent: []any{root, scep, mdm}}
	top.PayloadDescription = "Enrolls this device in " + in.Organization + " device management."
	b, err := plist.MarshalIndent(top, "\t")
	if err != nil {
		return nil, fmt.Errorf("enroll: encode profile: %w", err)
	}
	return b, nil
}

// Signer signs profiles: the Core's TLS certificate, its chain up to the
// CA, and its key.
type Signer struct {
	Cert  *x509.Certificate
	Chain []*x509.Certificate // intermediates and root, without Cert
	Key   crypto.Signer
}

// sign wraps content in CMS SignedData, content attached, DER, with the
// whole chain embedded so that the device can validate the signer
// (seed, "Activating an iOS device", step 12; RFC 5652 §5).
func (s *Signer) sign(content []byte) ([]byte, error) {
	sd, err := pkcs7.NewSignedData(content)
	if err != nil {
		return nil, fmt.Errorf("enroll: sign profile: %w", err)
	}
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	if err := sd.AddSignerChain(s.Cert, s.Key, s.Chain, pkcs7.SignerInfoConfig{}); err != nil {
		return nil, fmt.Errorf("enroll: sign profile: %w", err)
	}
	der, err := sd.Finish()
	if err != nil {
		return nil, fmt.Errorf("enroll: sign profile: %w", err)
	}
	return der, nil
}
