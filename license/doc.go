// Package license reads, checks and issues the signed licences of Custos
// Cores. The relay validates a Core's licence when the Core logs in; the
// Core enforces it when a device activates (Gate, wired into
// activation.Service.Admit).
//
// # Format
//
// A licence is one PEM block of type "CUSTOS LICENSE" (no headers; only
// whitespace may follow it) of at most MaxLicenseSize bytes, checked before
// anything is decoded. The block's bytes are
//
//	payload || signature
//
// where payload is the canonical JSON of License and signature is the
// 64-byte Ed25519 signature
//
//	ed25519.Sign(issuerKey, "custos-license-v1\x00" || payload)
//
// The prefix separates licence signatures from anything else the same key
// might ever sign. The payload's end is where its JSON object ends; the
// signature is everything after it and must be exactly 64 bytes.
//
// Canonical JSON is what encoding/json's Marshal writes for License: every
// field present, in declaration order, no whitespace, times in RFC 3339 in
// UTC ("Z") to the second, grace as a Go duration string ("336h0m0s"),
// features as a list ([] when there are none). A payload that is not
// byte-for-byte its own re-encoding is refused, so a licence has exactly
// one encoding and every reader (relay, Core, another language) reads the
// same fields: duplicate keys, for one, cannot mean one thing here and
// another there.
//
// Fields:
//
//	id            1–64 of [A-Za-z0-9-]; random, quoted in support requests
//	organisation  1–256 bytes of printable UTF-8
//	server_id     the Core it is for, the relay's server-ID rule (3–63 of
//	              [a-z0-9-], a letter first, no '-' last); no wildcard
//	device_limit  1–MaxDeviceLimit: devices enrolled or active at once
//	issued_at     UTC, to the second
//	expires       UTC, to the second, after issued_at
//	grace         0 ≤ grace ≤ MaxGrace after expires: warn but keep
//	              activating; 0 means DefaultGrace
//	features      sorted, unique, each [a-z0-9_-]{1,32}, at most MaxFeatures
//	development   true for licences not meant for production
//	key_id        KeyID of the issuer's public key: the first 16 hex
//	              characters of SHA-256 of its 32 bytes
//
// Verify checks the format, the signature and these rules; whether the
// licence holds at a given time (State, Check) and for which server
// (CheckServer) is the caller's question, because the relay and the Core
// ask it at different moments.
//
// Public keys of issuers are PEM blocks of type "CUSTOS LICENSE KEY" whose
// bytes are the raw 32-byte Ed25519 public key (LoadPublicKeys,
// PublicKeyPEM). An issuer's private key is a PKCS #8 "PRIVATE KEY" PEM
// file, written 0600 (GenerateKey, LoadKey).
package license
