package enroll

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"

	"github.com/smallstep/pkcs7"
	"github.com/smallstep/scep"
)

// SCEP signed attributes of a CertRep (RFC 8894 §3.2.1), the ones
// smallstep/scep's PKIMessage.Success sets.
var (
	oidSCEPMessageType    = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 2}
	oidSCEPPKIStatus      = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 3}
	oidSCEPSenderNonce    = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 5}
	oidSCEPRecipientNonce = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 6}
	oidSCEPTransactionID  = asn1.ObjectIdentifier{2, 16, 840, 1, 113733, 1, 9, 7}
)

// senderNonceLen is the size of the CertRep's fresh senderNonce (RFC 8894
// §3.2.1.5: 16 bytes).
const senderNonceLen = 16

// certRepSuccess builds the CertRep SUCCESS answering req (RFC 8894
// §3.3.2): the issued certificate in a degenerate certificates-only
// SignedData, enveloped to the certificates of the request's signature,
// in a SignedData signed by the RA with the SCEP attributes.
//
// It does what smallstep/scep's PKIMessage.Success does — same content,
// recipients, certificates and attributes — but for one thing the library
// does not let us choose: smallstep/pkcs7 writes the envelope's
// EncryptedContentInfo.encryptedContent as a primitive [0] IMPLICIT OCTET
// STRING. That is valid (RFC 5652 §6.1,
// https://www.rfc-editor.org/rfc/rfc5652#section-6.1), but
// go.mozilla.org/pkcs7 — the envelope reader of mdmb, micromdm/scep's
// client and many Go SCEP clients — only reads the constructed form ([0]
// holding an OCTET STRING) and silently sees empty content ("invalid data
// len 0"). The constructed form is what OpenSSL and Apple's servers emit
// and what every client reads, so the envelope is re-encoded in it before
// it is signed (see constructedEnvelope).
//
// One deliberate difference: the senderNonce is fresh, as RFC 8894
// §3.2.1.5 asks of every message, where the library echoes the request's;
// the recipientNonce is the request's senderNonce, as in the library.
func certRepSuccess(req *scep.PKIMessage, ra *RA, cert *x509.Certificate) ([]byte, error) {
	p7, err := pkcs7.Parse(req.Raw)
	if err != nil {
		return nil, fmt.Errorf("scep: reparse the request: %w", err)
	}
	if len(p7.Certificates) == 0 {
		return nil, errors.New("scep: the request carries no certificate to encrypt the reply to")
	}
	deg, err := scep.DegenerateCertificates([]*x509.Certificate{cert})
	if err != nil {
		return nil, err
	}
	e7, err := pkcs7.Encrypt(deg, p7.Certificates)
	if err != nil {
		return nil, fmt.Errorf("scep: encrypt the CertRep: %w", err)
	}
	e7, err = constructedEnvelope(e7)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, senderNonceLen)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	sd, err := pkcs7.NewSignedData(e7)
	if err != nil {
		return nil, err
	}
	// The issued certificate goes first: clients that do not decrypt
	// the envelope take it from there (as the library does).
	sd.AddCertificate(cert)
	err = sd.AddSigner(ra.Cert, ra.Key, pkcs7.SignerInfoConfig{ExtraSignedAttributes: []pkcs7.Attribute{
		{Type: oidSCEPTransactionID, Value: req.TransactionID},
		{Type: oidSCEPPKIStatus, Value: scep.SUCCESS},
		{Type: oidSCEPMessageType, Value: scep.CertRep},
		{Type: oidSCEPSenderNonce, Value: nonce},
		{Type: oidSCEPRecipientNonce, Value: []byte(req.SenderNonce)},
	}})
	if err != nil {
		return nil, fmt.Errorf("scep: sign the CertRep: %w", err)
	}
	return sd.Finish()
}

// ASN.1 of a CMS EnvelopedData in a ContentInfo (RFC 5652 §3, §6.1), with
// every part the re-encoding does not touch kept as raw bytes.
type (
	cmsContentInfo struct {
		ContentType asn1.ObjectIdentifier
		// Content is the whole [0] EXPLICIT element: encoding/asn1 takes
		// a RawValue as the next element whatever the field's tag says.
		Content asn1.RawValue
	}
	cmsEnvelopedData struct {
		Version              int
		RecipientInfos       asn1.RawValue
		EncryptedContentInfo cmsEncryptedContentInfo
	}
	cmsEncryptedContentInfo struct {
		ContentType                asn1.ObjectIdentifier
		ContentEncryptionAlgorithm asn1.RawValue
		EncryptedContent           asn1.RawValue
	}
)

// constructedEnvelope re-encodes the encryptedContent [0] of a DER
// ContentInfo holding an EnvelopedData (with neither originatorInfo nor
// unprotectedAttrs, as pkcs7.Encrypt writes it) in the constructed form:
// [0] { OCTET STRING ciphertext } instead of [0] IMPLICIT ciphertext. Both
// are BER of `[0] IMPLICIT EncryptedContent` (RFC 5652 §6.1); see
// certRepSuccess for why the constructed one.
func constructedEnvelope(der []byte) ([]byte, error) {
	var ci cmsContentInfo
	if rest, err := asn1.Unmarshal(der, &ci); err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("scep: re-encode the envelope: not one ContentInfo: %v", err)
	}
	if ci.Content.Class != asn1.ClassContextSpecific || ci.Content.Tag != 0 || !ci.Content.IsCompound {
		return nil, errors.New("scep: re-encode the envelope: no content [0]")
	}
	var ed cmsEnvelopedData
	if rest, err := asn1.Unmarshal(ci.Content.Bytes, &ed); err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("scep: re-encode the envelope: not one EnvelopedData: %v", err)
	}
	ec := &ed.EncryptedContentInfo.EncryptedContent
	if ec.Class != asn1.ClassContextSpecific || ec.Tag != 0 {
		return nil, errors.New("scep: re-encode the envelope: no encryptedContent [0]")
	}
	if ec.IsCompound {
		return der, nil
	}
	octets, err := asn1.Marshal(ec.Bytes)
	if err != nil {
		return nil, err
	}
	*ec = asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: octets}
	inner, err := asn1.Marshal(ed)
	if err != nil {
		return nil, err
	}
	ci.Content = asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: inner}
	return asn1.Marshal(ci)
}
