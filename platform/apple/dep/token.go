package dep

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	depclient "github.com/micromdm/nanodep/client"
	"github.com/micromdm/nanodep/tokenpki"

	"github.com/custos-uem/custos/errs"
)

// Limits of the server token exchange.
const (
	// MaxTokenFile bounds an uploaded .p7m: Apple's is an S/MIME message
	// of about 4 KiB (base64 of a CMS EnvelopedData around a small JSON).
	MaxTokenFile = 64 << 10
	// keypairDays is the validity of the token keypair's certificate: ABM
	// only uses it to encrypt the token, once.
	keypairDays = 365
	// keypairCN names the certificate in Apple Business Manager's upload.
	keypairCN = "custos-ade"
)

// Errors of the server token.
var (
	ErrNoToken = errs.E(errs.Conflict, "ade_not_configured",
		"no ADE server token: download the Core's public key, upload it in Apple Business Manager (Preferences → your MDM server), then upload the .p7m token Apple gives back")
	ErrTokenExpired = errs.E(errs.Conflict, "ade_token_expired",
		"the ADE server token has expired: download a new token for this MDM server in Apple Business Manager and upload it")
	ErrBadToken = errs.E(errs.Invalid, "invalid_ade_token",
		"the file is not an ADE server token encrypted to this Core's public key (download the token again from Apple Business Manager after uploading the current public key)")
	ErrTokenTooLarge = errs.E(errs.TooLarge, "ade_token_too_large", fmt.Sprintf("the token file is over %d bytes", MaxTokenFile))
)

// keypair is the stored token keypair: the certificate is public, the key
// sealed.
type keypair struct {
	CertPEM   string `json:"cert_pem"`
	KeySealed string `json:"key_sealed"`
}

// storedToken is the stored server token.
type storedToken struct {
	Sealed     string    `json:"sealed"` // the OAuth1 tokens' JSON, sealed
	Expiry     time.Time `json:"expiry"`
	UploadedAt time.Time `json:"uploaded_at"`
	UploadedBy string    `json:"uploaded_by"`
}

// TokenInfo is what reads show of the server token: never the secrets.
type TokenInfo struct {
	Configured   bool      `json:"configured"`
	ConsumerKey  string    `json:"consumer_key,omitempty"` // public: names the token in ABM
	Expiry       time.Time `json:"expiry,omitzero"`
	UploadedAt   time.Time `json:"uploaded_at,omitzero"`
	UploadedBy   string    `json:"uploaded_by,omitempty"`
	DaysLeft     int       `json:"days_left"`
	ExpiringSoon bool      `json:"expiring_soon"`
	Expired      bool      `json:"expired"`
}

// PublicKeyPEM returns the certificate of the token keypair, generating
// the keypair on first use (one per installation, whichever Core claims it
// first). The administrator uploads it to Apple Business Manager.
func (s *Service) PublicKeyPEM(ctx context.Context) ([]byte, error) {
	kp, err := s.keypair(ctx, true)
	if err != nil {
		return nil, err
	}
	return []byte(kp.CertPEM), nil
}

func (s *Service) keypair(ctx context.Context, create bool) (*keypair, error) {
	raw, err := s.Store.DEPSetting(ctx, keyKeypair)
	if errors.Is(err, errs.ErrNotFound) && create {
		key, cert, gerr := tokenpki.SelfSignedRSAKeypair(keypairCN, keypairDays)
		if gerr != nil {
			return nil, gerr
		}
		keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
		b, _ := json.Marshal(keypair{
			CertPEM:   string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})),
			KeySealed: s.Box.Seal(string(keyPEM)),
		})
		raw, err = s.Store.ClaimDEPSetting(ctx, keyKeypair, string(b), s.now())
	}
	if err != nil {
		return nil, err
	}
	var kp keypair
	if err := json.Unmarshal([]byte(raw), &kp); err != nil {
		return nil, fmt.Errorf("ADE token keypair: %w", err)
	}
	return &kp, nil
}

// UploadToken decrypts the .p7m server token Apple Business Manager gave
// for the Core's public key and stores its OAuth1 tokens sealed.
func (s *Service) UploadToken(ctx context.Context, p7m []byte, by string) (*TokenInfo, error) {
	if len(p7m) > MaxTokenFile {
		return nil, ErrTokenTooLarge
	}
	kp, err := s.keypair(ctx, false)
	if errors.Is(err, errs.ErrNotFound) {
		return nil, errs.E(errs.Conflict, "ade_no_public_key", "download the Core's public key and upload it to Apple Business Manager first: the token is encrypted to it")
	}
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode([]byte(kp.CertPEM))
	if block == nil {
		return nil, errors.New("ADE token keypair: bad certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, err
	}
	keyPEM, err := s.Box.Open(kp.KeySealed)
	if err != nil {
		return nil, err
	}
	kb, _ := pem.Decode([]byte(keyPEM))
	if kb == nil {
		return nil, errors.New("ADE token keypair: bad key")
	}
	key, err := x509.ParsePKCS1PrivateKey(kb.Bytes)
	if err != nil {
		return nil, err
	}
	tokens, err := decryptToken(p7m, cert, key)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, ErrBadToken.Code, ErrBadToken.Message, err)
	}
	now := s.now()
	if !tokens.AccessTokenExpiry.IsZero() && !now.Before(tokens.AccessTokenExpiry) {
		return nil, ErrTokenExpired
	}
	plain, _ := json.Marshal(tokens)
	b, _ := json.Marshal(storedToken{Sealed: s.Box.Seal(string(plain)), Expiry: tokens.AccessTokenExpiry.UTC(), UploadedAt: now.UTC(), UploadedBy: by})
	if err := s.Store.PutDEPSetting(ctx, keyToken, string(b), now); err != nil {
		return nil, err
	}
	return s.TokenInfo(ctx)
}

// decryptToken opens the S/MIME .p7m (nanodep tokenpki: the MIME wrapper,
// the CMS EnvelopedData to our certificate, then the wrapped JSON).
func decryptToken(p7m []byte, cert *x509.Certificate, key any) (tokens *depclient.OAuth1Tokens, err error) {
	defer func() {
		// A malformed CMS structure must not take the Core down.
		if r := recover(); r != nil {
			tokens, err = nil, fmt.Errorf("malformed token: %v", r)
		}
	}()
	js, err := tokenpki.DecryptTokenJSON(p7m, cert, key)
	if err != nil {
		return nil, err
	}
	tokens = new(depclient.OAuth1Tokens)
	if err := json.Unmarshal(js, tokens); err != nil {
		return nil, err
	}
	if !tokens.Valid() {
		return nil, errors.New("token JSON lacks consumer or access credentials")
	}
	return tokens, nil
}

// tokens returns the stored OAuth1 tokens: ErrNoToken without one,
// ErrTokenExpired once expired.
func (s *Service) tokens(ctx context.Context) (*depclient.OAuth1Tokens, error) {
	st, err := s.storedToken(ctx)
	if err != nil {
		return nil, err
	}
	if !st.Expiry.IsZero() && !s.now().Before(st.Expiry) {
		return nil, ErrTokenExpired
	}
	plain, err := s.Box.Open(st.Sealed)
	if err != nil {
		return nil, err
	}
	var t depclient.OAuth1Tokens
	if err := json.Unmarshal([]byte(plain), &t); err != nil {
		return nil, err
	}
	return &t, nil
}

func (s *Service) storedToken(ctx context.Context) (*storedToken, error) {
	raw, err := s.Store.DEPSetting(ctx, keyToken)
	if errors.Is(err, errs.ErrNotFound) {
		return nil, ErrNoToken
	}
	if err != nil {
		return nil, err
	}
	var st storedToken
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return nil, fmt.Errorf("ADE server token: %w", err)
	}
	return &st, nil
}

// TokenInfo describes the stored server token (Configured false without
// one).
func (s *Service) TokenInfo(ctx context.Context) (*TokenInfo, error) {
	st, err := s.storedToken(ctx)
	if errors.Is(err, ErrNoToken) {
		return &TokenInfo{}, nil
	}
	if err != nil {
		return nil, err
	}
	info := &TokenInfo{Configured: true, Expiry: st.Expiry, UploadedAt: st.UploadedAt, UploadedBy: st.UploadedBy}
	if plain, err := s.Box.Open(st.Sealed); err == nil {
		var t depclient.OAuth1Tokens
		if json.Unmarshal([]byte(plain), &t) == nil {
			info.ConsumerKey = t.ConsumerKey
		}
	}
	if !st.Expiry.IsZero() {
		left := st.Expiry.Sub(s.now())
		info.DaysLeft = int(left / (24 * time.Hour))
		info.ExpiringSoon, info.Expired = left < WarnBefore, left <= 0
	}
	return info, nil
}

// CheckExpiry logs a warning when the server token expires within
// WarnBefore or has expired; it answers 1 when it warned.
func (s *Service) CheckExpiry(ctx context.Context) (int, error) {
	info, err := s.TokenInfo(ctx)
	if err != nil || !info.Configured {
		return 0, err
	}
	switch {
	case info.Expired:
		s.log().WarnContext(ctx, "the ADE server token has EXPIRED: device sync and profile assignment stop; download a new token in Apple Business Manager and upload it in Settings", "expiry", info.Expiry)
	case info.ExpiringSoon:
		s.log().WarnContext(ctx, "the ADE server token expires soon: download a new token in Apple Business Manager and upload it in Settings", "expiry", info.Expiry, "days_left", info.DaysLeft)
	default:
		return 0, nil
	}
	return 1, nil
}
