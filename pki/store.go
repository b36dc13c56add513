package pki

import (
	"context"
	"time"
)

// Revoked is one revoked certificate, for the CRL.
type Revoked struct {
	Serial    string // hex, lower case
	RevokedAt time.Time
}

// RevocationStore lists revoked certificates.
type RevocationStore interface {
	// RevokedCerts returns every revoked certificate whose NotAfter is after
	// now (expired ones need not be listed in a CRL), in serial order.
	RevokedCerts(ctx context.Context, now time.Time) ([]Revoked, error)
}
