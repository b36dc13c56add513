package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/custos-uem/custos/device"
)

var (
	_ device.Store   = (*DB)(nil)
	_ device.Remover = (*DB)(nil)
)

const deviceColumns = `id, user_id, hardware_id, platform, os_version, model, name, activation_type,
	profile_id, state, cert_serial, config_version, created_at, enrolled_at, activated_at, last_seen_at, removed_at`

func scanDevice(s scanner) (*device.Device, error) {
	d := new(device.Device)
	return d, s.Scan(&d.ID, &d.UserID, &d.HardwareID, &d.Platform, &d.OSVersion, &d.Model, &d.Name,
		&d.ActivationType, textDest{&d.ProfileID}, &d.State, textDest{&d.CertSerial}, textDest{&d.ConfigVersion},
		timeDest{&d.CreatedAt}, nullTimeDest{&d.EnrolledAt}, nullTimeDest{&d.ActivatedAt},
		nullTimeDest{&d.LastSeenAt}, nullTimeDest{&d.RemovedAt})
}

// Device implements device.Store.
func (db *DB) Device(ctx context.Context, id string) (*device.Device, error) {
	return one(ctx, db.reader(), scanDevice, "device "+id, `SELECT `+deviceColumns+` FROM devices WHERE id = $1`, id)
}

// ListDevices implements device.Store.
func (db *DB) ListDevices(ctx context.Context, q device.Query) ([]*device.Device, error) {
	var f filter
	f.add("id > ?", q.After)
	if q.UserID != "" {
		f.add("user_id = ?", q.UserID)
	}
	if q.HardwareID != "" {
		f.add("hardware_id = ?", q.HardwareID)
	}
	if q.State != "" {
		f.add("state = ?", string(q.State))
	}
	query := `SELECT ` + deviceColumns + ` FROM devices` + f.where() +
		` ORDER BY id LIMIT ` + f.param(pageSize(q.Limit, device.MaxPage))
	return list(ctx, db.reader(), scanDevice, "list devices", query, f.args...)
}

// Inventory implements device.Store.
func (db *DB) Inventory(ctx context.Context, id string) (*device.Inventory, error) {
	return one(ctx, db.reader(), func(s scanner) (*device.Inventory, error) {
		inv := new(device.Inventory)
		return inv, s.Scan(&inv.DeviceID, jsonDest{&inv.Info}, jsonDest{&inv.Software}, timeDest{&inv.ReportedAt})
	}, "inventory of device "+id, `SELECT device_id, info, software, reported_at FROM device_inventory WHERE device_id = $1`, id)
}

// SaveReport implements device.Store. A device that is still activating has
// no certificate to report with, so it is errs.ErrNotFound too. The device's
// model, OS version and name (from Info.Hostname) take the reported values
// that are not empty: an empty field is one the device did not report, and
// it does not erase what activation recorded. A first report without a
// software list stores an empty one.
func (db *DB) SaveReport(ctx context.Context, id string, info device.Info, software []device.App, now time.Time) error {
	op := "save report of device " + id
	infoJSON, err := jsonText(op, info)
	if err != nil {
		return err
	}
	softwareJSON, upsert := "[]", `INSERT INTO device_inventory (device_id, info, software, reported_at)
		VALUES ($1, $2, $3, $4) ON CONFLICT (device_id) DO UPDATE SET info = excluded.info, reported_at = excluded.reported_at`
	if software != nil {
		if softwareJSON, err = jsonText(op, software); err != nil {
			return err
		}
		upsert += `, software = excluded.software`
	}
	return db.write(ctx, func(ctx context.Context, r runner) error {
		err := execOne(ctx, r, op, `UPDATE devices SET model = COALESCE(NULLIF($2, ''), model),
			os_version = COALESCE(NULLIF($3, ''), os_version), name = COALESCE(NULLIF($4, ''), name), last_seen_at = $5
			WHERE id = $1 AND state IN ('enrolled', 'active')`, id, info.Model, info.OSVersion, info.Hostname, micros(now))
		if err != nil {
			return err
		}
		_, err = exec(ctx, r, op, upsert, id, infoJSON, softwareJSON, micros(now))
		return err
	})
}

// Acknowledge implements device.Store. ActivatedAt is set by the first
// acknowledgement; as a request from the device, every acknowledgement also
// sets LastSeenAt.
func (db *DB) Acknowledge(ctx context.Context, id, version string, now time.Time) error {
	return db.execOne(ctx, "acknowledge configuration of device "+id, `UPDATE devices SET config_version = $2,
		state = 'active', activated_at = COALESCE(activated_at, $3), last_seen_at = $3
		WHERE id = $1 AND state IN ('enrolled', 'active')`, id, version, micros(now))
}

// RemoveDevice implements device.Remover.
func (db *DB) RemoveDevice(ctx context.Context, id string, now time.Time) error {
	op := "remove device " + id
	return db.write(ctx, func(ctx context.Context, r runner) error {
		n, err := retire(ctx, r, op, now, `id = $2`, id)
		if err == nil && n == 0 {
			return notFound(op)
		}
		return err
	})
}

// retire marks removed at now the devices that are not removed yet and
// match cond, revokes their certificates, and returns how many devices it
// removed. In cond, $1 is now and args are $2 onwards.
func retire(ctx context.Context, r runner, op string, now time.Time, cond string, args ...any) (int64, error) {
	args = append([]any{micros(now)}, args...)
	if _, err := exec(ctx, r, op, `UPDATE certificates SET revoked_at = $1 WHERE revoked_at IS NULL
		AND device_id IN (SELECT id FROM devices WHERE state <> 'removed' AND `+cond+`)`, args...); err != nil {
		return 0, err
	}
	return exec(ctx, r, op, `UPDATE devices SET state = 'removed', removed_at = $1
		WHERE state <> 'removed' AND `+cond, args...)
}

// CountLicensed returns how many devices count against a licence: every
// device not removed (activating, enrolled or active).
func (db *DB) CountLicensed(ctx context.Context) (int, error) {
	var n int
	err := db.reader().row(ctx, `SELECT COUNT(*) FROM devices WHERE state <> 'removed'`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count devices: %w", err)
	}
	return n, nil
}
