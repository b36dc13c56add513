package sqlstore

import (
	"context"
	"time"

	"github.com/custos-uem/custos/platform/apple/dep"
)

var _ dep.Store = (*DB)(nil)

// DEPSetting implements dep.SettingStore.
func (db *DB) DEPSetting(ctx context.Context, key string) (string, error) {
	var v string
	if err := db.reader().row(ctx, `SELECT value FROM apple_dep_settings WHERE key = $1`, key).Scan(&v); err != nil {
		return "", dbErr("ADE setting "+key, err)
	}
	return v, nil
}

// PutDEPSetting implements dep.SettingStore.
func (db *DB) PutDEPSetting(ctx context.Context, key, value string, at time.Time) error {
	op := "store ADE setting " + key
	if value == "" {
		_, err := db.exec(ctx, op, `DELETE FROM apple_dep_settings WHERE key = $1`, key)
		return err
	}
	_, err := db.exec(ctx, op, `INSERT INTO apple_dep_settings (key, value, updated_at) VALUES ($1, $2, $3)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`, key, value, micros(at))
	return err
}

// ClaimDEPSetting implements dep.SettingStore.
func (db *DB) ClaimDEPSetting(ctx context.Context, key, value string, at time.Time) (string, error) {
	op := "claim ADE setting " + key
	if _, err := db.exec(ctx, op, `INSERT INTO apple_dep_settings (key, value, updated_at) VALUES ($1, $2, $3)
		ON CONFLICT (key) DO NOTHING`, key, value, micros(at)); err != nil {
		return "", err
	}
	return db.DEPSetting(ctx, key)
}

const depDeviceColumns = `serial, model, description, color, device_family, os, op_type, op_date, removed,
	apple_profile_uuid, apple_profile_status, profile_uuid, assign_status, assigned_at, user_id,
	enrolled_device_id, enrolled_at, synced_at`

func scanDEPDevice(s scanner) (*dep.Device, error) {
	var d dep.Device
	if err := s.Scan(&d.Serial, &d.Model, &d.Description, &d.Color, &d.DeviceFamily, &d.OS, &d.OpType, nullTimeDest{&d.OpDate}, &d.Removed,
		&d.AppleProfileUUID, &d.AppleProfileStatus, &d.ProfileUUID, &d.AssignStatus, nullTimeDest{&d.AssignedAt}, textDest{&d.UserID},
		textDest{&d.EnrolledDeviceID}, nullTimeDest{&d.EnrolledAt}, timeDest{&d.SyncedAt}); err != nil {
		return nil, err
	}
	return &d, nil
}

// UpsertDEPDevices implements dep.DeviceStore.
func (db *DB) UpsertDEPDevices(ctx context.Context, devs []dep.Device) error {
	if len(devs) == 0 {
		return nil
	}
	return db.write(ctx, func(ctx context.Context, r runner) error {
		for i := range devs {
			d := &devs[i]
			if _, err := exec(ctx, r, "store ADE device "+d.Serial, `INSERT INTO apple_dep_devices (`+depDeviceColumns+`)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, '', '', NULL, NULL, NULL, NULL, $12)
				ON CONFLICT (serial) DO UPDATE SET model = excluded.model, description = excluded.description, color = excluded.color,
					device_family = excluded.device_family, os = excluded.os, op_type = excluded.op_type, op_date = excluded.op_date,
					removed = excluded.removed, apple_profile_uuid = excluded.apple_profile_uuid,
					apple_profile_status = excluded.apple_profile_status, synced_at = excluded.synced_at`,
				d.Serial, d.Model, d.Description, d.Color, d.DeviceFamily, d.OS, d.OpType, nullMicros(d.OpDate), d.Removed,
				d.AppleProfileUUID, d.AppleProfileStatus, micros(d.SyncedAt)); err != nil {
				return err
			}
		}
		return nil
	})
}

// DEPDevice implements dep.DeviceStore.
func (db *DB) DEPDevice(ctx context.Context, serial string) (*dep.Device, error) {
	return one(ctx, db.reader(), scanDEPDevice, "ADE device "+serial,
		`SELECT `+depDeviceColumns+` FROM apple_dep_devices WHERE serial = $1`, serial)
}

// ListDEPDevices implements dep.DeviceStore.
func (db *DB) ListDEPDevices(ctx context.Context, after string, limit int) ([]*dep.Device, error) {
	return list(ctx, db.reader(), scanDEPDevice, "list ADE devices",
		`SELECT `+depDeviceColumns+` FROM apple_dep_devices WHERE serial > $1 ORDER BY serial LIMIT $2`, after, pageSize(limit, 1000))
}

// AssignDEPUser implements dep.DeviceStore.
func (db *DB) AssignDEPUser(ctx context.Context, serial, userID string) error {
	// An unknown user is a foreign-key violation, which dbErr maps to
	// errs.ErrNotFound as the contract asks.
	return db.execOne(ctx, "assign ADE device "+serial, `UPDATE apple_dep_devices SET user_id = $2 WHERE serial = $1`, serial, nullText(userID))
}

// RecordDEPAssignment implements dep.DeviceStore.
func (db *DB) RecordDEPAssignment(ctx context.Context, profileUUID string, status map[string]string, at time.Time) error {
	if len(status) == 0 {
		return nil
	}
	return db.write(ctx, func(ctx context.Context, r runner) error {
		for serial, st := range status {
			if _, err := exec(ctx, r, "record ADE assignment "+serial,
				`UPDATE apple_dep_devices SET profile_uuid = $2, assign_status = $3, assigned_at = $4 WHERE serial = $1`,
				serial, profileUUID, st, micros(at)); err != nil {
				return err
			}
		}
		return nil
	})
}

// RecordDEPEnrollment implements dep.DeviceStore.
func (db *DB) RecordDEPEnrollment(ctx context.Context, serial, deviceID string, at time.Time) error {
	return db.execOne(ctx, "record ADE enrollment "+serial,
		`UPDATE apple_dep_devices SET enrolled_device_id = $2, enrolled_at = $3 WHERE serial = $1`, serial, deviceID, micros(at))
}
