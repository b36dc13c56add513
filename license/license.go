package license

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/custos-uem/custos/errs"
)

// Limits and names of the format (see the package documentation).
const (
	// MaxLicenseSize bounds a licence document; it is checked before the
	// PEM or JSON is decoded.
	MaxLicenseSize = 16 << 10
	// PEMType is the PEM block type of a licence.
	PEMType = "CUSTOS LICENSE"
	// SignatureSize is the size of the signature after the payload.
	SignatureSize = ed25519.SignatureSize
	// MaxID, MaxOrganisation bound the text fields.
	MaxID           = 64
	MaxOrganisation = 256
	// MaxFeatures and MaxFeatureLen bound the feature list.
	MaxFeatures   = 64
	MaxFeatureLen = 32
	// MaxDeviceLimit keeps device arithmetic far from overflow; it is far
	// above any fleet one Core serves.
	MaxDeviceLimit = 100_000_000
	// DefaultGrace applies when a licence's grace is zero.
	DefaultGrace = 14 * 24 * time.Hour
	// MaxGrace bounds the grace an issuer may grant.
	MaxGrace = 365 * 24 * time.Hour
	// KeyIDLen is the length of a key ID in hex characters.
	KeyIDLen = 16
)

// signaturePrefix is signed before the payload so that a signature over a
// licence can never be taken for a signature over anything else the key
// signs (domain separation); it ends in NUL, which JSON text never holds.
const signaturePrefix = "custos-license-v1\x00"

// License is the content of a licence. Its JSON encoding (with Marshal's
// field order) is the signed payload.
type License struct {
	ID           string    `json:"id"`
	Organisation string    `json:"organisation"`
	ServerID     string    `json:"server_id"`
	DeviceLimit  int       `json:"device_limit"`
	IssuedAt     time.Time `json:"issued_at"`
	Expires      time.Time `json:"expires"`
	Grace        Duration  `json:"grace"`
	Features     []string  `json:"features"`
	Development  bool      `json:"development"`
	KeyID        string    `json:"key_id"`
}

// fieldNames are License's JSON names, all required. Listed by hand rather
// than found by reflection: a new field changes the format and should be
// a deliberate edit here too.
var fieldNames = []string{"id", "organisation", "server_id", "device_limit", "issued_at", "expires", "grace", "features", "development", "key_id"}

// Duration is a time.Duration encoded in JSON as its Go string form
// ("336h0m0s"), readable by a person checking a licence by eye.
type Duration time.Duration

// MarshalJSON encodes d as time.Duration.String.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON accepts what time.ParseDuration accepts; whether the form
// was canonical is checked on the whole payload.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Signed is a parsed licence document, not yet verified.
type Signed struct {
	License License
	// Payload is the canonical JSON the signature covers (without the
	// domain-separation prefix).
	Payload   []byte
	Signature []byte
}

// Errors of Parse and Verify. Each refusal has its own code so that an
// operator (and the relay's log) can tell a corrupted copy from a forged
// or foreign licence. Some are returned as copies that keep the decoder's
// error for the log: compare codes (errs.Public), not values.
var (
	ErrTooLarge      = errs.E(errs.TooLarge, "license_too_large", fmt.Sprintf("the licence is larger than %d bytes", MaxLicenseSize))
	ErrNotPEM        = errs.E(errs.Invalid, "license_not_pem", `the licence is not one PEM block of type "CUSTOS LICENSE" without headers`)
	ErrTrailingData  = errs.E(errs.Invalid, "license_trailing_data", "the licence has data after its PEM block")
	ErrMalformed     = errs.E(errs.Invalid, "license_malformed", "the licence's content is not a JSON object of licence fields")
	ErrSignatureSize = errs.E(errs.Invalid, "license_signature_size", fmt.Sprintf("the licence's signature is not %d bytes; the licence is truncated or has extra bytes", SignatureSize))
	ErrNotCanonical  = errs.E(errs.Invalid, "license_not_canonical", "the licence's JSON is not in canonical form; it was not written by a licence issuer")
	ErrUnknownKey    = errs.E(errs.Invalid, "license_unknown_key", "the licence is signed by a key this server does not trust")
	ErrBadSignature  = errs.E(errs.Invalid, "license_bad_signature", "the licence's signature does not verify; it was altered after signing")
)

// Codes of Parse's and Verify's errors that name fields in Fields; they
// are built per call, so compare codes (errs.Public), not values.
const (
	CodeUnknownField = "license_unknown_field"
	CodeMissingField = "license_field_missing"
	CodeInvalid      = "license_invalid"
)

// fieldError builds a fresh error per call: Fields differ from one
// licence to the next, and the shared sentinels must never be mutated.
func fieldError(code, msg string, fields map[string]string, cause error) *errs.Error {
	e := errs.Wrap(errs.Invalid, code, msg, cause)
	e.Fields = fields
	return e
}

// wrap copies a sentinel with a cause for the log, leaving the sentinel
// itself untouched.
func wrap(e *errs.Error, cause error) *errs.Error {
	return errs.Wrap(e.Kind, e.Code, e.Message, cause)
}

// Parse decodes a licence document without verifying its signature or
// its fields' values: for showing a licence, or as Verify's first step. It
// refuses every deviation from the format, each with its own error.
func Parse(pemBytes []byte) (*Signed, error) {
	if len(pemBytes) > MaxLicenseSize {
		return nil, ErrTooLarge
	}
	// pem.Decode skips any text before the block; a licence is the block
	// alone, so text before it is refused like text after it.
	if !bytes.HasPrefix(bytes.TrimLeft(pemBytes, " \t\r\n"), []byte("-----BEGIN ")) {
		return nil, ErrNotPEM
	}
	block, rest := pem.Decode(pemBytes)
	if block == nil || block.Type != PEMType || len(block.Headers) > 0 {
		// Headers are not signed: refusing them keeps unsigned text out of
		// what a reader may take for part of the licence.
		return nil, ErrNotPEM
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, ErrTrailingData
	}
	raw := block.Bytes
	if len(raw) == 0 || raw[0] != '{' {
		return nil, ErrMalformed
	}
	// The payload ends where its JSON object ends: the decoder stops at
	// the closing brace, and what follows is the signature.
	dec := json.NewDecoder(bytes.NewReader(raw))
	var fields map[string]json.RawMessage
	if err := dec.Decode(&fields); err != nil {
		return nil, wrap(ErrMalformed, err)
	}
	end := dec.InputOffset()
	payload, sig := raw[:end], raw[end:]
	if len(sig) != SignatureSize {
		return nil, ErrSignatureSize
	}
	if err := checkFieldNames(fields); err != nil {
		return nil, err
	}
	s := &Signed{Payload: payload, Signature: sig}
	strict := json.NewDecoder(bytes.NewReader(payload))
	strict.DisallowUnknownFields()
	if err := strict.Decode(&s.License); err != nil {
		e := wrap(ErrMalformed, err)
		if ute, ok := errors.AsType[*json.UnmarshalTypeError](err); ok && ute.Field != "" {
			e.Fields = map[string]string{ute.Field: "wrong type: " + ute.Value}
		}
		return nil, e
	}
	enc, err := json.Marshal(&s.License)
	if err != nil || !bytes.Equal(enc, payload) {
		return nil, wrap(ErrNotCanonical, err)
	}
	return s, nil
}

// checkFieldNames compares the payload's keys with License's exactly: the
// struct decoder would match keys case-insensitively and ignore missing
// ones, and a licence must say what it means in one spelling.
func checkFieldNames(fields map[string]json.RawMessage) error {
	unknown := map[string]string{}
	for k := range fields {
		if !slices.Contains(fieldNames, k) {
			unknown[k] = "unknown field"
		}
	}
	if len(unknown) > 0 {
		return fieldError(CodeUnknownField, "the licence has a field this version does not know; a newer Custos may be needed", unknown, nil)
	}
	missing := map[string]string{}
	for _, k := range fieldNames {
		if _, ok := fields[k]; !ok {
			missing[k] = "required"
		}
	}
	if len(missing) > 0 {
		return fieldError(CodeMissingField, "the licence lacks a required field", missing, nil)
	}
	return nil
}

// Verify parses a licence document, checks that one of keys signed it and
// that its fields are valid, and returns it. It does not check the time or
// the server: see State, Check and CheckServer.
func Verify(pemBytes []byte, keys []ed25519.PublicKey) (*License, error) {
	s, err := Parse(pemBytes)
	if err != nil {
		return nil, err
	}
	var key ed25519.PublicKey
	for _, k := range keys {
		// ed25519.Verify panics on a key of the wrong size.
		if len(k) == ed25519.PublicKeySize && KeyID(k) == s.License.KeyID {
			key = k
			break
		}
	}
	if key == nil {
		return nil, ErrUnknownKey
	}
	if !ed25519.Verify(key, signedMessage(s.Payload), s.Signature) {
		return nil, ErrBadSignature
	}
	if err := s.License.Validate(); err != nil {
		return nil, err
	}
	return &s.License, nil
}

func signedMessage(payload []byte) []byte {
	return append([]byte(signaturePrefix), payload...)
}

// Validate checks every field's value and returns errs.Invalid
// "license_invalid" naming each bad field in Fields. The issuer runs it
// before signing, so it never signs what Verify would refuse.
func (l *License) Validate() error {
	f := map[string]string{}
	if len(l.ID) == 0 || len(l.ID) > MaxID || strings.IndexFunc(l.ID, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-')
	}) >= 0 {
		f["id"] = "1 to 64 characters A-Z, a-z, 0-9 and '-'"
	}
	if strings.TrimSpace(l.Organisation) == "" || len(l.Organisation) > MaxOrganisation || !utf8.ValidString(l.Organisation) ||
		strings.ContainsFunc(l.Organisation, unicode.IsControl) {
		f["organisation"] = "1 to 256 bytes of printable UTF-8"
	}
	if !validServerID(l.ServerID) {
		f["server_id"] = "a server ID: 3 to 63 characters a-z, 0-9 and '-', a letter first, no '-' last (no wildcards)"
	}
	if l.DeviceLimit <= 0 || l.DeviceLimit > MaxDeviceLimit {
		f["device_limit"] = "between 1 and " + strconv.Itoa(MaxDeviceLimit)
	}
	if msg := checkTime(l.IssuedAt); msg != "" {
		f["issued_at"] = msg
	}
	if msg := checkTime(l.Expires); msg != "" {
		f["expires"] = msg
	} else if !l.Expires.After(l.IssuedAt) {
		f["expires"] = "after issued_at"
	}
	if l.Grace < 0 || time.Duration(l.Grace) > MaxGrace {
		f["grace"] = "between 0 (the default, 336h) and " + MaxGrace.String()
	}
	if msg := checkFeatures(l.Features); msg != "" {
		f["features"] = msg
	}
	if !validKeyID(l.KeyID) {
		f["key_id"] = "16 lower-case hex characters"
	}
	if len(f) > 0 {
		return fieldError(CodeInvalid, "the licence has invalid fields", f, nil)
	}
	return nil
}

// checkTime requires what canonical form writes: UTC to the second, so a
// time has exactly one spelling.
func checkTime(t time.Time) string {
	if t.IsZero() || t.Location() != time.UTC || t.Nanosecond() != 0 {
		return "a time in UTC to the second"
	}
	return ""
}

func checkFeatures(fs []string) string {
	if fs == nil {
		// null and [] would be two spellings of "none".
		return "a list ([] for none)"
	}
	if len(fs) > MaxFeatures {
		return "at most " + strconv.Itoa(MaxFeatures) + " features"
	}
	for i, s := range fs {
		if !validFeature(s) {
			return fmt.Sprintf("%q: 1 to %d characters a-z, 0-9, '_' and '-'", s, MaxFeatureLen)
		}
		if i > 0 && fs[i-1] >= s {
			return "sorted and without duplicates"
		}
	}
	return ""
}

func validFeature(s string) bool {
	if len(s) == 0 || len(s) > MaxFeatureLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// validServerID is relay.ValidServerID's rule, repeated here because the
// relay imports this package. It admits no wildcard: a licence is for one
// Core.
func validServerID(id string) bool {
	ok := len(id) >= 3 && len(id) <= 63 && id[0] >= 'a' && id[0] <= 'z' && id[len(id)-1] != '-'
	for i := 0; ok && i < len(id); i++ {
		c := id[i]
		ok = c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-'
	}
	return ok
}

func validKeyID(s string) bool {
	if len(s) != KeyIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// ErrWrongServer refuses a licence presented by a Core it was not issued
// for.
var ErrWrongServer = errs.E(errs.Forbidden, "license_wrong_server", "the licence was issued for another server")

// CheckServer returns ErrWrongServer unless the licence is for serverID,
// the server ID the Core logged in with.
func (l *License) CheckServer(serverID string) error {
	if l.ServerID != serverID {
		return ErrWrongServer
	}
	return nil
}
