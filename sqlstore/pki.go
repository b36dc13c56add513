package sqlstore

import (
	"context"
	"time"

	"github.com/custos-uem/custos/pki"
)

var _ pki.RevocationStore = (*DB)(nil)

// RevokedCerts implements pki.RevocationStore. Serial order is the order of
// the lower-case hex strings, which is numeric order only between serials
// of the same length; a CRL needs no particular order.
func (db *DB) RevokedCerts(ctx context.Context, now time.Time) ([]pki.Revoked, error) {
	return list(ctx, db.reader(), func(s scanner) (pki.Revoked, error) {
		var r pki.Revoked
		return r, s.Scan(&r.Serial, timeDest{&r.RevokedAt})
	}, "revoked certificates", `SELECT serial, revoked_at FROM certificates
		WHERE revoked_at IS NOT NULL AND not_after > $1 ORDER BY serial`, micros(now))
}
