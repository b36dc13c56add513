// Package secret seals the small secrets Custos must be able to read back
// (a Wi-Fi passphrase it sends to devices, a device password a command
// carries) before they are stored, so that a copy of the database alone
// does not reveal them.
//
// A sealed value is the text "sealed:v1:" followed by the unpadded
// base64url of a 12-byte nonce and the AES-256-GCM ciphertext. The key is
// derived with HKDF-SHA256 from the installation's secret.key, which every
// Core sharing a database has (the Core refuses to start otherwise), so any
// of them opens what another sealed. Secrets that are only ever compared
// (passwords, tokens) are hashed instead, never sealed.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Prefix marks a sealed value.
const Prefix = "sealed:v1:"

// MaxSealed bounds the text Open accepts, checked before decoding.
const MaxSealed = 64 << 10

// keyInfo separates this key from any other derived from the same secret.
const keyInfo = "custos sealed secrets v1"

// ErrOpen is returned for a sealed value that does not open: damaged, or
// sealed under another installation's key.
var ErrOpen = errors.New("secret: the sealed value does not open with this installation's key")

// Box seals and opens values. It is safe for concurrent use.
type Box struct{ aead cipher.AEAD }

// New returns the Box of the installation secret (at least 32 bytes).
func New(installationSecret []byte) (*Box, error) {
	if len(installationSecret) < 32 {
		return nil, fmt.Errorf("secret: the installation secret has %d bytes, want at least 32", len(installationSecret))
	}
	key, err := hkdf.Key(sha256.New, installationSecret, nil, keyInfo, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Box{aead: aead}, nil
}

// IsSealed reports whether s is a sealed value.
func IsSealed(s string) bool { return strings.HasPrefix(s, Prefix) }

// Seal returns plain sealed, with a fresh random nonce: sealing the same
// value twice gives two different texts.
func (b *Box) Seal(plain string) string {
	nonce := make([]byte, b.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	out := b.aead.Seal(nonce, nonce, []byte(plain), []byte(Prefix))
	return Prefix + base64.RawURLEncoding.EncodeToString(out)
}

// Open returns the plain value of a sealed one. A value without Prefix is
// returned as it is (stored before sealing existed, or by a Core without a
// Box), so that turning sealing on needs no migration.
func (b *Box) Open(s string) (string, error) {
	if !IsSealed(s) {
		return s, nil
	}
	if len(s) > MaxSealed {
		return "", ErrOpen
	}
	raw, err := base64.RawURLEncoding.DecodeString(s[len(Prefix):])
	if err != nil || len(raw) < b.aead.NonceSize()+b.aead.Overhead() {
		return "", ErrOpen
	}
	n := b.aead.NonceSize()
	plain, err := b.aead.Open(nil, raw[:n], raw[n:], []byte(Prefix))
	if err != nil {
		return "", ErrOpen
	}
	return string(plain), nil
}
