package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/custos-uem/custos/activation"
	"github.com/custos-uem/custos/device"
	appleenroll "github.com/custos-uem/custos/platform/apple/enroll"
)

var (
	_ appleenroll.Store          = (*DB)(nil)
	_ activation.UserDeviceStore = (*DB)(nil)
)

const challengeColumns = `hash, device_id, created_at, expires_at, used_at, cert_serial`

func scanChallenge(s scanner) (*appleenroll.Challenge, error) {
	c := new(appleenroll.Challenge)
	return c, s.Scan(&c.Hash, &c.DeviceID, timeDest{&c.CreatedAt}, timeDest{&c.ExpiresAt},
		nullTimeDest{&c.UsedAt}, textDest{&c.CertSerial})
}

// CreateChallenge implements appleenroll.Store.
func (db *DB) CreateChallenge(ctx context.Context, c *appleenroll.Challenge) error {
	op := "create SCEP challenge for device " + c.DeviceID
	return db.write(ctx, func(ctx context.Context, r runner) error {
		if _, err := exec(ctx, r, op, `DELETE FROM apple_scep_challenges WHERE expires_at < $1`, micros(c.CreatedAt)); err != nil {
			return err
		}
		_, err := exec(ctx, r, op, `INSERT INTO apple_scep_challenges (`+challengeColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6)`,
			c.Hash, c.DeviceID, micros(c.CreatedAt), micros(c.ExpiresAt), nullMicros(c.UsedAt), nullText(c.CertSerial))
		return err
	})
}

// Challenge implements appleenroll.Store.
func (db *DB) Challenge(ctx context.Context, hash []byte) (*appleenroll.Challenge, error) {
	return one(ctx, db.reader(), scanChallenge, "SCEP challenge",
		`SELECT `+challengeColumns+` FROM apple_scep_challenges WHERE hash = $1`, hash)
}

// RedeemChallenge implements appleenroll.Store. The consuming UPDATE comes
// first and its RETURNING decides: of concurrent redemptions of one
// challenge exactly one gets the row (PostgreSQL's row lock, SQLite's single
// writer), and every later step runs only for that one.
func (db *DB) RedeemChallenge(ctx context.Context, hash []byte, cert activation.IssuedCert, now time.Time) error {
	op := "redeem SCEP challenge for device " + cert.DeviceID
	return db.write(ctx, func(ctx context.Context, r runner) error {
		var deviceID string
		err := r.row(ctx, `UPDATE apple_scep_challenges SET used_at = $2, cert_serial = $3
			WHERE hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING device_id`,
			hash, micros(now), cert.Serial).Scan(&deviceID)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("sqlstore: %s: %w", op, appleenroll.ErrChallengeClosed)
		}
		if err != nil {
			return dbErr(op, err)
		}
		if cert.DeviceID != deviceID {
			return fmt.Errorf("sqlstore: %s: the certificate is for device %s, the challenge for %s", op, cert.DeviceID, deviceID)
		}
		var userID, hardwareID string
		var state device.State
		err = r.row(ctx, `SELECT user_id, hardware_id, state FROM devices WHERE id = $1`, deviceID).
			Scan(&userID, &hardwareID, &state)
		if errors.Is(err, sql.ErrNoRows) || state == device.StateRemoved {
			return fmt.Errorf("sqlstore: %s: %w", op, appleenroll.ErrDeviceGone)
		}
		if err != nil {
			return dbErr(op, err)
		}
		if state == device.StateActivating {
			// No agent enrolled this device (a Mac from Self-Service, an
			// automated enrollment): the SCEP certificate is its identity.
			if _, err := retire(ctx, r, op, now, `user_id = $2 AND hardware_id = $3 AND id <> $4`,
				userID, hardwareID, deviceID); err != nil {
				return err
			}
			n, err := r.run(ctx, `UPDATE devices SET state = 'enrolled', cert_serial = $2, enrolled_at = $3
				WHERE id = $1 AND state = 'activating'`, deviceID, cert.Serial, micros(now))
			if isUnique(err) { // devices_hardware_enrolled: another user holds the hardware
				return fmt.Errorf("sqlstore: %s: %w", op, activation.ErrHardwareInUse)
			}
			if err != nil {
				return dbErr(op, err)
			}
			if k, err := n.RowsAffected(); err != nil {
				return dbErr(op, err)
			} else if k == 0 { // removed since the SELECT (PostgreSQL)
				return fmt.Errorf("sqlstore: %s: %w", op, appleenroll.ErrDeviceGone)
			}
		}
		_, err = exec(ctx, r, op, `INSERT INTO certificates (serial, device_id, not_before, not_after, der)
			VALUES ($1, $2, $3, $4, $5)`, cert.Serial, deviceID, micros(cert.NotBefore), micros(cert.NotAfter), cert.DER)
		return err
	})
}

// CreateUserDevice implements activation.UserDeviceStore.
func (db *DB) CreateUserDevice(ctx context.Context, d *device.Device) error {
	op := "create device " + d.ID + " of user " + d.UserID
	return db.write(ctx, func(ctx context.Context, r runner) error {
		if _, err := exec(ctx, r, op, `DELETE FROM devices WHERE user_id = $1 AND platform = $2 AND state = 'activating'
			AND cert_serial IS NULL AND (hardware_id = $3 OR ($4 AND hardware_id LIKE '`+activation.ProvisionalHardwarePrefix+`%'))`,
			d.UserID, d.Platform, d.HardwareID, activation.IsProvisionalHardwareID(d.HardwareID)); err != nil {
			return err
		}
		_, err := exec(ctx, r, op, `INSERT INTO devices (id, user_id, hardware_id, platform, os_version, model, name,
			activation_type, profile_id, state, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'activating', $10)`,
			d.ID, d.UserID, d.HardwareID, d.Platform, d.OSVersion, d.Model, d.Name, d.ActivationType,
			nullText(d.ProfileID), micros(d.CreatedAt))
		return err
	})
}
