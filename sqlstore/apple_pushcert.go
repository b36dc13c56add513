package sqlstore

import (
	"context"

	"github.com/custos-uem/custos/platform/apple/pushcert"
)

var _ pushcert.Store = (*DB)(nil)

// PushCertificate implements pushcert.Store.
func (db *DB) PushCertificate(ctx context.Context) (*pushcert.Stored, error) {
	return one(ctx, db.reader(), func(s scanner) (*pushcert.Stored, error) {
		var c pushcert.Stored
		var certPEM string
		if err := s.Scan(&c.Topic, &certPEM, &c.KeySealed, &c.Serial, &c.Subject, timeDest{&c.NotBefore}, timeDest{&c.NotAfter},
			timeDest{&c.UploadedAt}, &c.UploadedBy); err != nil {
			return nil, err
		}
		c.CertPEM = []byte(certPEM)
		return &c, nil
	}, "MDM push certificate",
		`SELECT topic, cert_pem, key_sealed, serial, subject, not_before, not_after, uploaded_at, uploaded_by
		FROM apple_push_certificate WHERE id = 1`)
}

// PutPushCertificate implements pushcert.Store.
func (db *DB) PutPushCertificate(ctx context.Context, c *pushcert.Stored) error {
	_, err := db.exec(ctx, "store MDM push certificate",
		`INSERT INTO apple_push_certificate (id, topic, cert_pem, key_sealed, serial, subject, not_before, not_after, uploaded_at, uploaded_by)
		VALUES (1, $1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (id) DO UPDATE SET topic = excluded.topic, cert_pem = excluded.cert_pem, key_sealed = excluded.key_sealed,
			serial = excluded.serial, subject = excluded.subject, not_before = excluded.not_before, not_after = excluded.not_after,
			uploaded_at = excluded.uploaded_at, uploaded_by = excluded.uploaded_by`,
		c.Topic, string(c.CertPEM), c.KeySealed, c.Serial, c.Subject, micros(c.NotBefore), micros(c.NotAfter), micros(c.UploadedAt), c.UploadedBy)
	return err
}
