package sqlstore

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/custos-uem/custos/device"
)

var _ device.PushStore = (*DB)(nil)

// SetPushToken implements device.PushStore.
func (db *DB) SetPushToken(ctx context.Context, t device.PushToken) error {
	op := "set push token of device " + t.DeviceID
	return db.write(ctx, func(ctx context.Context, r runner) error {
		var state string
		if err := r.row(ctx, `SELECT state FROM devices WHERE id = $1`, t.DeviceID).Scan(&state); err != nil {
			return dbErr(op, err)
		}
		if state != string(device.StateEnrolled) && state != string(device.StateActive) {
			return notFound(op)
		}
		_, err := exec(ctx, r, op, `INSERT INTO device_push (device_id, provider, token, topic, push_magic, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (device_id) DO UPDATE SET provider = excluded.provider,
			token = excluded.token, topic = excluded.topic, push_magic = excluded.push_magic, updated_at = excluded.updated_at`,
			t.DeviceID, t.Provider, t.Token, t.Topic, t.PushMagic, micros(t.UpdatedAt))
		return err
	})
}

// pushChunk bounds the IDs of one IN list (SQLite allows 32766 parameters,
// PostgreSQL 65535).
const pushChunk = 1000

// PushTokens implements device.PushStore.
func (db *DB) PushTokens(ctx context.Context, deviceIDs []string) ([]device.PushToken, error) {
	var out []device.PushToken
	for len(deviceIDs) > 0 {
		n := min(len(deviceIDs), pushChunk)
		chunk := deviceIDs[:n]
		deviceIDs = deviceIDs[n:]
		args := make([]any, len(chunk))
		marks := make([]string, len(chunk))
		for i, id := range chunk {
			args[i] = id
			marks[i] = "$" + strconv.Itoa(i+1)
		}
		got, err := list(ctx, db.reader(), func(s scanner) (device.PushToken, error) {
			var t device.PushToken
			return t, s.Scan(&t.DeviceID, &t.Provider, &t.Token, &t.Topic, &t.PushMagic, timeDest{&t.UpdatedAt})
		}, "push tokens", `SELECT device_id, provider, token, topic, push_magic, updated_at FROM device_push
			WHERE device_id IN (`+strings.Join(marks, ", ")+`)`, args...)
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	return out, nil
}

// DropPushToken implements device.PushStore.
func (db *DB) DropPushToken(ctx context.Context, deviceID, token string) error {
	_, err := db.exec(ctx, "drop push token of device "+deviceID,
		`DELETE FROM device_push WHERE device_id = $1 AND token = $2`, deviceID, token)
	return err
}

// ClaimRun claims the run of the scheduled job name that is due at now:
// it returns true, and moves the job's next run to now+interval, for
// exactly one caller among all processes sharing the database; every other
// caller before that time gets false. owner names the claiming process in
// the row (for operators).
func (db *DB) ClaimRun(ctx context.Context, name, owner string, interval time.Duration, now time.Time) (bool, error) {
	op := "claim scheduled run " + name
	var claimed bool
	err := db.write(ctx, func(ctx context.Context, r runner) error {
		if _, err := exec(ctx, r, op, `INSERT INTO scheduled_runs (name, next_run, owner) VALUES ($1, 0, '') ON CONFLICT (name) DO NOTHING`, name); err != nil {
			return err
		}
		// The UPDATE locks the row; a concurrent claimer waits, then sees
		// the moved next_run and matches nothing.
		n, err := exec(ctx, r, op, `UPDATE scheduled_runs SET next_run = $2, owner = $3, last_run = $4
			WHERE name = $1 AND next_run <= $4`, name, micros(now.Add(interval)), owner, micros(now))
		claimed = n == 1
		return err
	})
	return claimed, err
}
