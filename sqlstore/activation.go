package sqlstore

import (
	"context"
	"time"

	"github.com/custos-uem/custos/activation"
)

var (
	_ activation.ProfileStore  = (*DB)(nil)
	_ activation.PasswordStore = (*DB)(nil)
)

const profileColumns = `id, name, description, rank, max_devices, types, created_at, updated_at`

func scanProfile(s scanner) (*activation.Profile, error) {
	p := new(activation.Profile)
	return p, s.Scan(&p.ID, &p.Name, &p.Description, &p.Rank, &p.MaxDevices, jsonDest{&p.Types},
		timeDest{&p.CreatedAt}, timeDest{&p.UpdatedAt})
}

// CreateProfile implements activation.ProfileStore. Names are unique as
// given (case matters), the same on both backends.
func (db *DB) CreateProfile(ctx context.Context, p *activation.Profile) error {
	op := "create profile " + p.ID
	types, err := jsonText(op, p.Types)
	if err != nil {
		return err
	}
	_, err = db.exec(ctx, op, `INSERT INTO activation_profiles (`+profileColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		p.ID, p.Name, p.Description, p.Rank, p.MaxDevices, types, micros(p.CreatedAt), micros(p.UpdatedAt))
	return err
}

// Profile implements activation.ProfileStore.
func (db *DB) Profile(ctx context.Context, id string) (*activation.Profile, error) {
	return one(ctx, db.reader(), scanProfile, "profile "+id,
		`SELECT `+profileColumns+` FROM activation_profiles WHERE id = $1`, id)
}

// ListProfiles implements activation.ProfileStore. The ID breaks ties, so
// the order is total.
func (db *DB) ListProfiles(ctx context.Context) ([]*activation.Profile, error) {
	return list(ctx, db.reader(), scanProfile, "list profiles",
		`SELECT `+profileColumns+` FROM activation_profiles ORDER BY rank, name, id`)
}

// UpdateProfile implements activation.ProfileStore.
func (db *DB) UpdateProfile(ctx context.Context, p *activation.Profile) error {
	op := "update profile " + p.ID
	types, err := jsonText(op, p.Types)
	if err != nil {
		return err
	}
	return db.execOne(ctx, op, `UPDATE activation_profiles SET name = $2, description = $3, rank = $4,
		max_devices = $5, types = $6, updated_at = $7 WHERE id = $1`,
		p.ID, p.Name, p.Description, p.Rank, p.MaxDevices, types, micros(p.UpdatedAt))
}

// DeleteProfile implements activation.ProfileStore. The foreign keys of
// users and groups (ON DELETE SET NULL) clear their assignments in the same
// statement. Devices keep the ID of the profile they were activated with.
func (db *DB) DeleteProfile(ctx context.Context, id string) error {
	return db.execOne(ctx, "delete profile "+id, `DELETE FROM activation_profiles WHERE id = $1`, id)
}

const passwordColumns = `id, user_id, hash, created_by, created_at, expires_at, used_at, device_id, revoked_at`

func scanPassword(s scanner) (*activation.Password, error) {
	p := new(activation.Password)
	return p, s.Scan(&p.ID, &p.UserID, &p.Hash, &p.CreatedBy, timeDest{&p.CreatedAt}, timeDest{&p.ExpiresAt},
		nullTimeDest{&p.UsedAt}, textDest{&p.DeviceID}, nullTimeDest{&p.RevokedAt})
}

// SetPassword implements activation.PasswordStore. A user that does not
// exist is errs.ErrNotFound.
func (db *DB) SetPassword(ctx context.Context, p *activation.Password, now time.Time) error {
	op := "set password of user " + p.UserID
	return db.write(ctx, func(ctx context.Context, r runner) error {
		if _, err := exec(ctx, r, op, revokePasswords, p.UserID, micros(now)); err != nil {
			return err
		}
		_, err := exec(ctx, r, op, `INSERT INTO activation_passwords (`+passwordColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			p.ID, p.UserID, p.Hash, p.CreatedBy, micros(p.CreatedAt), micros(p.ExpiresAt),
			nullMicros(p.UsedAt), nullText(p.DeviceID), nullMicros(p.RevokedAt))
		return err
	})
}

// revokePasswords revokes the unused, unrevoked passwords of user $1 at $2.
const revokePasswords = `UPDATE activation_passwords SET revoked_at = $2
	WHERE user_id = $1 AND used_at IS NULL AND revoked_at IS NULL`

// Passwords implements activation.PasswordStore. The ID (time-ordered)
// breaks ties between passwords created in the same microsecond.
func (db *DB) Passwords(ctx context.Context, userID string) ([]*activation.Password, error) {
	return list(ctx, db.reader(), scanPassword, "passwords of user "+userID, `SELECT `+passwordColumns+`
		FROM activation_passwords WHERE user_id = $1 ORDER BY created_at DESC, id DESC`, userID)
}

// RevokePasswords implements activation.PasswordStore.
func (db *DB) RevokePasswords(ctx context.Context, userID string, now time.Time) (int, error) {
	n, err := db.exec(ctx, "revoke passwords of user "+userID, revokePasswords, userID, micros(now))
	return int(n), err
}

// RecordFailure implements activation.PasswordStore. A limit of zero or less
// never locks.
func (db *DB) RecordFailure(ctx context.Context, userID string, limit int, lockUntil time.Time) (int, error) {
	op := "record failed activation of user " + userID
	var n int
	err := db.write(ctx, func(ctx context.Context, r runner) error {
		// The increment takes the row lock on PostgreSQL, so concurrent
		// failures count one after the other.
		err := r.row(ctx, `UPDATE users SET failed_activations = failed_activations + 1
			WHERE id = $1 RETURNING failed_activations`, userID).Scan(&n)
		if err != nil || limit <= 0 || n < limit {
			return dbErr(op, err)
		}
		_, err = exec(ctx, r, op, `UPDATE users SET failed_activations = 0, activation_locked_until = $2
			WHERE id = $1`, userID, micros(lockUntil))
		return err
	})
	return n, err
}
