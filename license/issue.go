package license

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"time"

	"github.com/custos-uem/custos/pki"
)

// Key files.
const (
	// KeyPEMType is the PEM block type of an issuer's public key.
	KeyPEMType = "CUSTOS LICENSE KEY"
	// privateKeyPEMType is PKCS #8's, so openssl and other tools read the
	// key file too.
	privateKeyPEMType = "PRIVATE KEY"
	// MaxKeyFileSize bounds a key file, read before it is decoded; a file
	// of public keys holds a few hundred bytes per key.
	MaxKeyFileSize = 64 << 10
)

// Development licences: what the embedded default issues for itself.
const (
	DevelopmentOrganisation = "Development (not for production use)"
	// DevelopmentDeviceLimit admits the fleets benchmarks seed (100,000
	// devices).
	DevelopmentDeviceLimit = 100_000
	DevelopmentValidity    = 365 * 24 * time.Hour
	DevelopmentFeature     = "all"
)

// KeyID names an issuer's public key inside the licences it signs: the
// first 16 hex characters of SHA-256 of the key's 32 bytes.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:KeyIDLen/2])
}

// Issuer signs licences.
type Issuer struct {
	Key ed25519.PrivateKey
	// Now and Rand are optional (time.Now, crypto/rand); tests inject them.
	Now  func() time.Time
	Rand io.Reader
}

// PublicKey returns the key that verifies the issuer's licences.
func (iss *Issuer) PublicKey() ed25519.PublicKey {
	return iss.Key.Public().(ed25519.PublicKey)
}

// Issue signs l and returns the licence document. It fills ID (random)
// and IssuedAt (now) when they are zero — a re-issue of a licence keeps
// them — sets KeyID to the issuer's, puts times in UTC to the second and
// sorts the features. It refuses a licence Verify would refuse.
func (iss *Issuer) Issue(l License) ([]byte, error) {
	if len(iss.Key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("license: the issuer key has %d bytes, want %d", len(iss.Key), ed25519.PrivateKeySize)
	}
	if l.ID == "" {
		var b [16]byte
		r := iss.Rand
		if r == nil {
			r = rand.Reader
		}
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, fmt.Errorf("license: random ID: %w", err)
		}
		l.ID = hex.EncodeToString(b[:])
	}
	if l.IssuedAt.IsZero() {
		now := time.Now
		if iss.Now != nil {
			now = iss.Now
		}
		l.IssuedAt = now()
	}
	l.IssuedAt = l.IssuedAt.UTC().Truncate(time.Second)
	l.Expires = l.Expires.UTC().Truncate(time.Second)
	// A copy: the caller's slice is not reordered underneath it.
	l.Features = slices.Sorted(slices.Values(l.Features))
	if l.Features == nil {
		l.Features = []string{}
	}
	l.KeyID = KeyID(iss.PublicKey())
	if err := l.Validate(); err != nil {
		return nil, err
	}
	payload, err := json.Marshal(&l)
	if err != nil {
		return nil, fmt.Errorf("license: encode: %w", err)
	}
	sig := ed25519.Sign(iss.Key, signedMessage(payload))
	doc := pem.EncodeToMemory(&pem.Block{Type: PEMType, Bytes: append(payload, sig...)})
	if len(doc) > MaxLicenseSize {
		return nil, ErrTooLarge
	}
	return doc, nil
}

// Development issues the licence the embedded default gives itself: for
// serverID, from now for DevelopmentValidity, DevelopmentDeviceLimit
// devices, every feature, marked as development.
func Development(serverID string, issuer *Issuer, now time.Time) ([]byte, error) {
	now = now.UTC().Truncate(time.Second)
	return issuer.Issue(License{
		Organisation: DevelopmentOrganisation,
		ServerID:     serverID,
		DeviceLimit:  DevelopmentDeviceLimit,
		IssuedAt:     now,
		Expires:      now.Add(DevelopmentValidity),
		Features:     []string{DevelopmentFeature},
		Development:  true,
	})
}

// GenerateKey creates a new issuer key and writes it to path (PKCS #8 PEM,
// mode 0600, atomically). It refuses to replace an existing file with an
// error matching fs.ErrExist: losing an issuer key orphans every licence
// it signed.
func GenerateKey(path string) (ed25519.PrivateKey, error) {
	if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("license: %s exists; not replacing an issuer key: %w", path, fs.ErrExist)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("license: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("license: generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("license: encode key: %w", err)
	}
	if err := pki.WriteFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: privateKeyPEMType, Bytes: der}), 0o600); err != nil {
		return nil, fmt.Errorf("license: %w", err)
	}
	return priv, nil
}

// LoadKey reads an issuer key written by GenerateKey.
func LoadKey(path string) (ed25519.PrivateKey, error) {
	b, err := readLimited(path)
	if err != nil {
		return nil, err
	}
	block, rest := pem.Decode(b)
	if block == nil || block.Type != privateKeyPEMType || len(bytes.TrimSpace(rest)) > 0 {
		return nil, fmt.Errorf("license: %s: want one PEM block of type %q", path, privateKeyPEMType)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("license: %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("license: %s: the key is a %T, want an Ed25519 key", path, k)
	}
	return priv, nil
}

// PublicKeyPEM encodes an issuer's public key for LoadPublicKeys.
func PublicKeyPEM(pub ed25519.PublicKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: KeyPEMType, Bytes: pub})
}

// ParsePublicKeys decodes one or more "CUSTOS LICENSE KEY" blocks
// (whitespace between them, nothing else): the keys a relay trusts.
func ParsePublicKeys(b []byte) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	rest := bytes.TrimSpace(b)
	for len(rest) > 0 {
		if !bytes.HasPrefix(rest, []byte("-----BEGIN ")) {
			return nil, errors.New("license: public keys: data outside PEM blocks")
		}
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil || block.Type != KeyPEMType || len(block.Headers) > 0 {
			return nil, fmt.Errorf("license: public keys: want PEM blocks of type %q", KeyPEMType)
		}
		if len(block.Bytes) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("license: public keys: a key has %d bytes, want %d", len(block.Bytes), ed25519.PublicKeySize)
		}
		keys = append(keys, ed25519.PublicKey(block.Bytes))
		rest = bytes.TrimSpace(rest)
	}
	if len(keys) == 0 {
		// An empty trust list would refuse every licence; that is a
		// configuration mistake to report at start-up, not at login.
		return nil, errors.New("license: public keys: none found")
	}
	return keys, nil
}

// LoadPublicKeys reads a file of public keys (ParsePublicKeys).
func LoadPublicKeys(path string) ([]ed25519.PublicKey, error) {
	b, err := readLimited(path)
	if err != nil {
		return nil, err
	}
	keys, err := ParsePublicKeys(b)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	return keys, nil
}

// readLimited reads a key file of at most MaxKeyFileSize bytes, so a wrong
// path (a log, a device file) is refused instead of read into memory.
func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("license: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("license: read %s: %w", path, err)
	}
	if len(b) > MaxKeyFileSize {
		return nil, fmt.Errorf("license: %s is larger than %d bytes", path, MaxKeyFileSize)
	}
	return b, nil
}
