// Package pki is the Core's internal certificate authority: an ECDSA P-256
// root created on first start, the Core's TLS certificate issued from it
// (unless the operator brings one), device client certificates signed from
// CSRs that are checked against their enrollment session, and a CRL
// published at a fixed URL.
//
// Key files are written 0600 through a temporary file, fsync and rename, so
// a crash never leaves a half-written key.
package pki
