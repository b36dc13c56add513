package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/custos-uem/custos/activation"
	"github.com/custos-uem/custos/device"
)

var _ activation.SessionStore = (*DB)(nil)

const sessionColumns = `id, token_hash, user_id, device_id, password_id, state, created_at, expires_at`

func scanSession(s scanner) (*activation.Session, error) {
	x := new(activation.Session)
	return x, s.Scan(&x.ID, &x.TokenHash, &x.UserID, &x.DeviceID, textDest{&x.PasswordID}, &x.State,
		timeDest{&x.CreatedAt}, timeDest{&x.ExpiresAt})
}

// OpenSession implements activation.SessionStore. It stores d and s in the
// states the contract names (activating, open) whatever their State fields
// say. Open sessions of the stale attempt it deletes are superseded too, so
// that no open session names a device that no longer exists. A session
// without a password (PasswordID empty) supersedes by device only. On
// PostgreSQL, two calls racing on one password may leave both sessions
// open (neither sees the other's uncommitted insert); the password is still
// used only once, by whichever CompleteSession comes first.
func (db *DB) OpenSession(ctx context.Context, s *activation.Session, d *device.Device) error {
	op := "open session " + s.ID
	if s.DeviceID != d.ID || s.UserID != d.UserID {
		return fmt.Errorf("sqlstore: %s: the session is for device %s of user %s, not device %s of user %s",
			op, s.DeviceID, s.UserID, d.ID, d.UserID)
	}
	return db.write(ctx, func(ctx context.Context, r runner) error {
		steps := []struct {
			query string
			args  []any
		}{
			// Two statements, not one with OR: each uses its own partial
			// index, where the OR made SQLite scan every open session.
			{`UPDATE enrollment_sessions SET state = 'superseded' WHERE state = 'open' AND password_id = $1`,
				[]any{nullText(s.PasswordID)}},
			{`UPDATE enrollment_sessions SET state = 'superseded' WHERE state = 'open'
				AND device_id IN (SELECT id FROM devices WHERE user_id = $1 AND hardware_id = $2 AND state = 'activating')`,
				[]any{d.UserID, d.HardwareID}},
			{`DELETE FROM devices WHERE user_id = $1 AND hardware_id = $2 AND state = 'activating'`,
				[]any{d.UserID, d.HardwareID}},
			{`INSERT INTO devices (id, user_id, hardware_id, platform, os_version, model, name, activation_type,
				profile_id, state, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'activating', $10)`,
				[]any{d.ID, d.UserID, d.HardwareID, d.Platform, d.OSVersion, d.Model, d.Name, d.ActivationType,
					nullText(d.ProfileID), micros(d.CreatedAt)}},
			{`INSERT INTO enrollment_sessions (id, token_hash, user_id, device_id, password_id, state, created_at, expires_at)
				VALUES ($1, $2, $3, $4, $5, 'open', $6, $7)`,
				[]any{s.ID, s.TokenHash, s.UserID, s.DeviceID, nullText(s.PasswordID), micros(s.CreatedAt), micros(s.ExpiresAt)}},
			{`UPDATE users SET failed_activations = 0, activation_locked_until = NULL WHERE id = $1`,
				[]any{s.UserID}},
		}
		for _, st := range steps {
			if _, err := exec(ctx, r, op, st.query, st.args...); err != nil {
				return err
			}
		}
		return nil
	})
}

// SessionByToken implements activation.SessionStore.
func (db *DB) SessionByToken(ctx context.Context, hash []byte) (*activation.Session, error) {
	return one(ctx, db.reader(), scanSession, "session by token",
		`SELECT `+sessionColumns+` FROM enrollment_sessions WHERE token_hash = $1`, hash)
}

// CompleteSession implements activation.SessionStore.
//
// Each step is a conditional UPDATE whose row count decides, so the outcome
// does not depend on what was read before: of concurrent calls on one
// session exactly one consumes it, and of concurrent enrollments of one
// piece of hardware by two users the unique index lets exactly one through.
// Beyond the contract: an unknown session, or one whose device is no longer
// activating (removed, or replaced by a newer attempt), is ErrSessionClosed;
// cert.DeviceID, when set, must name the session's device.
func (db *DB) CompleteSession(ctx context.Context, sessionID string, cert activation.IssuedCert, now time.Time) error {
	op := "complete session " + sessionID
	return db.write(ctx, func(ctx context.Context, r runner) error {
		s, err := consumeSession(ctx, r, op, sessionID, now)
		if err != nil {
			return err
		}
		if cert.DeviceID != "" && cert.DeviceID != s.DeviceID {
			return fmt.Errorf("sqlstore: %s: certificate is for device %s, the session for %s", op, cert.DeviceID, s.DeviceID)
		}
		if err := usePassword(ctx, r, op, s, now); err != nil {
			return err
		}
		if err := enroll(ctx, r, op, s, cert.Serial, now); err != nil {
			return err
		}
		_, err = exec(ctx, r, op, `INSERT INTO certificates (serial, device_id, not_before, not_after, der)
			VALUES ($1, $2, $3, $4, $5)`, cert.Serial, s.DeviceID, micros(cert.NotBefore), micros(cert.NotAfter), cert.DER)
		return err
	})
}

func sessionClosed(op string) error {
	return fmt.Errorf("sqlstore: %s: %w", op, activation.ErrSessionClosed)
}

// consumeSession moves the session from open to consumed if it has not
// expired, and returns its user, device and password.
func consumeSession(ctx context.Context, r runner, op, id string, now time.Time) (*activation.Session, error) {
	s := &activation.Session{ID: id}
	err := r.row(ctx, `UPDATE enrollment_sessions SET state = 'consumed'
		WHERE id = $1 AND state = 'open' AND expires_at > $2 RETURNING user_id, device_id, password_id`,
		id, micros(now)).Scan(&s.UserID, &s.DeviceID, textDest{&s.PasswordID})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, sessionClosed(op)
	}
	return s, dbErr(op, err)
}

// usePassword marks the session's password used by its device, unless it
// was used or revoked meanwhile.
func usePassword(ctx context.Context, r runner, op string, s *activation.Session, now time.Time) error {
	if s.PasswordID == "" {
		return nil
	}
	n, err := exec(ctx, r, op, `UPDATE activation_passwords SET used_at = $3, device_id = $2
		WHERE id = $1 AND used_at IS NULL AND revoked_at IS NULL`, s.PasswordID, s.DeviceID, micros(now))
	if err == nil && n == 0 {
		return fmt.Errorf("sqlstore: %s: %w", op, activation.ErrPasswordUsed)
	}
	return err
}

// enroll retires the user's other instances of the same hardware and moves
// the session's device from activating to enrolled with its certificate.
func enroll(ctx context.Context, r runner, op string, s *activation.Session, serial string, now time.Time) error {
	var hardwareID string
	var replaces bool
	err := r.row(ctx, `SELECT d.hardware_id, EXISTS (SELECT 1 FROM devices o
			WHERE o.hardware_id = d.hardware_id AND o.user_id = d.user_id AND o.id <> d.id AND o.state <> 'removed')
		FROM devices d WHERE d.id = $1 AND d.state = 'activating'`, s.DeviceID).Scan(&hardwareID, &replaces)
	if errors.Is(err, sql.ErrNoRows) {
		return sessionClosed(op)
	}
	if err != nil {
		return dbErr(op, err)
	}
	if replaces {
		if _, err := retire(ctx, r, op, now, `user_id = $2 AND hardware_id = $3 AND id <> $4`,
			s.UserID, hardwareID, s.DeviceID); err != nil {
			return err
		}
	}
	res, err := r.run(ctx, `UPDATE devices SET state = 'enrolled', cert_serial = $2, enrolled_at = $3
		WHERE id = $1 AND state = 'activating'`, s.DeviceID, serial, micros(now))
	if isUnique(err) { // devices_hardware_enrolled: another user holds the hardware
		return fmt.Errorf("sqlstore: %s: %w", op, activation.ErrHardwareInUse)
	}
	if err != nil {
		return dbErr(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return dbErr(op, err)
	}
	if n == 0 { // removed by an administrator since the SELECT (PostgreSQL)
		return sessionClosed(op)
	}
	return nil
}
