package enroll

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/smallstep/pkcs7"
	"github.com/smallstep/scep"

	"github.com/custos-uem/custos/activation"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/httpx"
	"github.com/custos-uem/custos/pki"
)

// Wire limits of SCEP, checked before anything is allocated for them.
const (
	// MaxPKIMessage bounds a PKIOperation message (a CSR of an RSA-8192 key
	// in two CMS layers with the client's self-signed certificate is under
	// 8 KiB).
	MaxPKIMessage = 64 << 10
	// maxGetMessage bounds the base64 message= parameter of a GET
	// PKIOperation (RFC 8894 §4.1).
	maxGetMessage = (MaxPKIMessage + 2) / 3 * 4
)

// Media types of SCEP answers (RFC 8894 §4.2, §4.3).
const (
	contentCACaps = "text/plain"
	contentCARA   = "application/x-x509-ca-ra-cert"
	contentPKIMsg = "application/x-pki-message"
)

// caps are the answer to GetCACaps (RFC 8894 §3.5.2): AES content
// encryption, POST for PKIOperation, the RFC itself, SHA-256. SHA-1 is
// announced too because CertReps are signed with pkcs7's default digest,
// SHA-1: smallstep/scep's Fail offers no way to choose another, and
// certRepSuccess keeps the same digest for both answers; clients that
// sign with SHA-256 (all of them here) are verified with it.
var caps = []byte("AES\nPOSTPKIOperation\nSCEPStandard\nSHA-256\nSHA-1\n")

func init() {
	// smallstep/pkcs7 encrypts with the process-wide
	// ContentEncryptionAlgorithm, single DES unless told otherwise. SCEP's
	// CertRep envelope (certRepSuccess) is the only encryption in
	// the Core, and the "AES" capability promises the client AES-128-CBC
	// (RFC 8894 §3.5.2).
	pkcs7.ContentEncryptionAlgorithm = pkcs7.EncryptionAlgorithmAES128CBC
}

// SCEPHandler serves PathSCEP: GetCACaps, GetCACert and PKIOperation (GET
// with message= and POST). limiter, when set, rate-limits it per client
// address (the route is public: the challenge is its authentication).
func (s *Service) SCEPHandler(limiter *httpx.IPLimiter) http.Handler {
	h := http.HandlerFunc(s.serveSCEP)
	if limiter == nil {
		return h
	}
	return limiter.Middleware(h)
}

func (s *Service) serveSCEP(w http.ResponseWriter, r *http.Request) {
	switch op := r.URL.Query().Get("operation"); op {
	case "GetCACaps":
		if r.Method != http.MethodGet {
			methodNotAllowed(w, r, "GET")
			return
		}
		w.Header().Set("Content-Type", contentCACaps)
		w.Write(caps)
	case "GetCACert":
		if r.Method != http.MethodGet {
			methodNotAllowed(w, r, "GET")
			return
		}
		s.getCACert(w, r)
	case "PKIOperation":
		msg, err := readMessage(w, r)
		if err != nil {
			httpx.WriteError(w, r, err)
			return
		}
		s.pkiOperation(w, r, msg)
	default:
		httpx.WriteError(w, r, errs.E(errs.Invalid, "scep_operation", "unknown or missing SCEP operation"))
	}
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request, allow string) {
	w.Header().Set("Allow", allow)
	httpx.WriteError(w, r, errs.E(errs.Invalid, "method_not_allowed", "use "+allow+" for this SCEP operation"))
}

// getCACert answers with the RA certificate only, as a degenerate
// certificates-only PKCS#7 (RFC 8894 §4.2.1.2).
//
// Why not RA and CA, as RFC 8894 describes: a client encrypts its request
// to the certificates it receives. Modern clients pick the ones fit for
// key encipherment (smallstep/scep's EnciphermentCertsSelector, Apple's),
// but older ones encrypt to every certificate, and go.mozilla.org/pkcs7 —
// what mdmb v0.1.0 (our CI's Apple device simulator) and micromdm/scep v1
// use — panics on the CA's ECDSA key. The RA alone is what every client
// needs: the envelope's recipient and the CertRep's signer. The CA that
// issues the certificates reaches the device through the profile's
// com.apple.security.root payload, and clients do not have to chain the
// issued certificate to a GetCACert answer.
func (s *Service) getCACert(w http.ResponseWriter, r *http.Request) {
	deg, err := scep.DegenerateCertificates([]*x509.Certificate{s.RA.Cert})
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", contentCARA)
	w.Write(deg)
}

var errMessageTooLarge = errs.E(errs.TooLarge, "scep_message_too_large", "the SCEP message is too large")

// readMessage returns the PKIOperation message of a POST body or of a GET
// message= parameter (standard or URL-safe base64: RFC 8894 §4.1 says
// base64, and clients differ in the alphabet).
func readMessage(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	switch r.Method {
	case http.MethodPost:
		if r.ContentLength > MaxPKIMessage {
			return nil, errMessageTooLarge
		}
		b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxPKIMessage))
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errMessageTooLarge
		}
		if err != nil {
			return nil, errs.Wrap(errs.Invalid, "scep_message_unreadable", "the SCEP message could not be read", err)
		}
		return b, nil
	case http.MethodGet:
		m := r.URL.Query().Get("message")
		if len(m) > maxGetMessage+4 {
			return nil, errMessageTooLarge
		}
		m = strings.TrimRight(strings.Map(func(c rune) rune {
			if c == ' ' || c == '\n' || c == '\r' {
				return -1
			}
			return c
		}, m), "=")
		for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
			if b, err := enc.DecodeString(m); err == nil {
				return b, nil
			}
		}
		return nil, errs.E(errs.Invalid, "scep_message_malformed", "the message parameter is not base64")
	default:
		w.Header().Set("Allow", "GET, POST")
		return nil, errs.E(errs.Invalid, "method_not_allowed", "use GET or POST for PKIOperation")
	}
}

// pkiOperation answers a PKCSReq with a CertRep (RFC 8894 §3.3). A message
// that cannot be parsed or verified has no transaction to answer: 400.
// From a parsed one on, every refusal is a CertRep FAILURE.
func (s *Service) pkiOperation(w http.ResponseWriter, r *http.Request, raw []byte) {
	ctx := r.Context()
	msg, err := parsePKIMessage(raw)
	if err != nil {
		httpx.Logger(ctx).Info("scep: unparsable PKIOperation", "err", err)
		httpx.WriteError(w, r, errs.Wrap(errs.Invalid, "scep_message_malformed", "the SCEP message is not a valid signed PKIMessage", err))
		return
	}
	cert, info, err := s.handleRequest(ctx, msg)
	var reply []byte
	if err != nil {
		if info == "" {
			// Not the client's fault: the database, the CA.
			httpx.WriteError(w, r, err)
			return
		}
		code, _, _ := errs.Public(err)
		httpx.Logger(ctx).Info("scep: request refused", "fail_info", string(info), "reason", code, "err", err)
		var fail *scep.PKIMessage
		if fail, err = msg.Fail(s.RA.Cert, s.RA.Key, info); err == nil {
			reply = fail.Raw
		}
	} else {
		// Not msg.Success: see certRepSuccess for the envelope encoding
		// every client reads.
		reply, err = certRepSuccess(msg, s.RA, cert)
	}
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", contentPKIMsg)
	w.Write(reply)
}

// parsePKIMessage parses and verifies (its signature by the certificate
// it carries) a PKIMessage of untrusted bytes. The library's panics on
// malformed input are its bugs; a request never turns one into a crash.
func parsePKIMessage(raw []byte) (msg *scep.PKIMessage, err error) {
	defer func() {
		if p := recover(); p != nil {
			msg, err = nil, errors.New("scep: malformed message")
		}
	}()
	if len(raw) == 0 {
		return nil, errors.New("scep: empty message")
	}
	if len(raw) > MaxPKIMessage {
		return nil, errMessageTooLarge
	}
	return scep.ParsePKIMessage(raw)
}

// handleRequest decrypts and checks a PKCSReq and issues its certificate.
// A refusal returns the failInfo for the CertRep; an internal failure
// returns an empty one.
func (s *Service) handleRequest(ctx context.Context, msg *scep.PKIMessage) (*x509.Certificate, scep.FailInfo, error) {
	if msg.MessageType != scep.PKCSReq && msg.MessageType != scep.RenewalReq {
		// UpdateReq is not part of RFC 8894; renewal is a new PKCSReq or a
		// RenewalReq, both checked against a fresh challenge.
		return nil, scep.BadRequest, errs.E(errs.Invalid, "scep_message_type", "only PKCSReq and RenewalReq are supported")
	}
	if err := decrypt(msg, s.RA); err != nil {
		return nil, scep.BadMessageCheck, errs.Wrap(errs.Invalid, "scep_envelope", "the request's envelope cannot be decrypted with the RA key", err)
	}
	csr := msg.CSRReqMessage.CSR
	if err := csr.CheckSignature(); err != nil {
		return nil, scep.BadMessageCheck, errs.Wrap(errs.Invalid, pki.ErrCSRSignature.Code, pki.ErrCSRSignature.Message, err)
	}
	cert, err := s.issue(ctx, csr, msg.CSRReqMessage.ChallengePassword)
	switch {
	case err == nil:
		return cert, "", nil
	case errors.Is(err, errNoChallenge), errors.Is(err, errWrongChallenge):
		return nil, scep.BadRequest, errs.Wrap(errs.Unauthenticated, "scep_challenge_invalid", "the challenge is wrong", err)
	case errors.Is(err, ErrChallengeClosed), errors.Is(err, ErrDeviceGone), errors.Is(err, activation.ErrHardwareInUse):
		return nil, scep.BadRequest, err
	case errors.Is(err, pki.ErrCSRWeakKey):
		// A key below the policy is a refused request, not an unknown
		// algorithm (badAlg, RFC 8894 §3.2.1.4.5).
		return nil, scep.BadRequest, err
	default:
		return nil, "", err
	}
}

// decrypt opens the request's envelope; like parsePKIMessage it never lets
// a library panic on malformed content out.
func decrypt(msg *scep.PKIMessage, ra *RA) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = errors.New("scep: malformed envelope")
		}
	}()
	if err := msg.DecryptPKIEnvelope(ra.Cert, ra.Key); err != nil {
		return err
	}
	if msg.CSRReqMessage == nil || msg.CSRReqMessage.CSR == nil {
		return errors.New("scep: no CSR in the envelope")
	}
	return nil
}
