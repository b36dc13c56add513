package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/platform/windows"
)

var _ windows.SessionStore = (*DB)(nil)

// WindowsSession implements windows.SessionStore.
func (db *DB) WindowsSession(ctx context.Context, deviceID, sessionID string) (*windows.Session, error) {
	return one(ctx, db.reader(), func(s scanner) (*windows.Session, error) {
		v := &windows.Session{}
		var pending, delivered string
		if err := s.Scan(&v.DeviceID, &v.SessionID, &v.MsgID, &v.CmdID, &pending, &delivered, timeDest{&v.UpdatedAt}); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(pending), &v.Pending); err != nil {
			return nil, fmt.Errorf("pending commands: %w", err)
		}
		if err := json.Unmarshal([]byte(delivered), &v.Delivered); err != nil {
			return nil, fmt.Errorf("delivered commands: %w", err)
		}
		return v, nil
	}, "windows session "+sessionID+" of device "+deviceID,
		`SELECT device_id, session_id, msg_id, cmd_id, pending, delivered, updated_at FROM windows_sessions
		WHERE device_id = $1 AND session_id = $2`, deviceID, sessionID)
}

// SaveWindowsSession implements windows.SessionStore.
func (db *DB) SaveWindowsSession(ctx context.Context, s *windows.Session, prevMsgID int) error {
	op := "save windows session " + s.SessionID + " of device " + s.DeviceID
	pending := s.Pending
	if pending == nil {
		pending = []windows.Pending{}
	}
	p, err := jsonText(op, pending)
	if err != nil {
		return err
	}
	delivered := s.Delivered
	if delivered == nil {
		delivered = []string{}
	}
	dl, err := jsonText(op, delivered)
	if err != nil {
		return err
	}
	if prevMsgID == 0 {
		_, err := db.exec(ctx, op, `INSERT INTO windows_sessions (device_id, session_id, msg_id, cmd_id, pending, delivered, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (device_id, session_id) DO UPDATE SET msg_id = excluded.msg_id,
			cmd_id = excluded.cmd_id, pending = excluded.pending, delivered = excluded.delivered, updated_at = excluded.updated_at`,
			s.DeviceID, s.SessionID, s.MsgID, s.CmdID, p, dl, micros(s.UpdatedAt))
		return err
	}
	n, err := db.exec(ctx, op, `UPDATE windows_sessions SET msg_id = $3, cmd_id = $4, pending = $5, delivered = $6, updated_at = $7
		WHERE device_id = $1 AND session_id = $2 AND msg_id = $8`,
		s.DeviceID, s.SessionID, s.MsgID, s.CmdID, p, dl, micros(s.UpdatedAt), prevMsgID)
	if err == nil && n == 0 {
		return fmt.Errorf("sqlstore: %s: %w", op, errs.ErrConflict)
	}
	return err
}

// EndWindowsSession implements windows.SessionStore.
func (db *DB) EndWindowsSession(ctx context.Context, deviceID, sessionID string, prevMsgID int) error {
	op := "end windows session " + sessionID + " of device " + deviceID
	end := func(ctx context.Context, r runner) error {
		n, err := exec(ctx, r, op, `DELETE FROM windows_sessions WHERE device_id = $1 AND session_id = $2 AND msg_id = $3`,
			deviceID, sessionID, prevMsgID)
		if err != nil || n == 1 {
			return err
		}
		var msg int
		err = r.row(ctx, `SELECT msg_id FROM windows_sessions WHERE device_id = $1 AND session_id = $2`, deviceID, sessionID).Scan(&msg)
		if err != nil {
			if dbErr(op, err) != nil && errs.Is(dbErr(op, err), errs.NotFound) {
				return nil
			}
			return dbErr(op, err)
		}
		return fmt.Errorf("sqlstore: %s: %w", op, errs.ErrConflict)
	}
	// The DELETE is the only write (see writeOne); the SELECT that tells a
	// conflict from an absent session runs only when it changed nothing,
	// and at read committed it would see the same rows inside a
	// transaction.
	return db.writeOne(ctx, end)
}

// WindowsDeviceState implements windows.SessionStore.
func (db *DB) WindowsDeviceState(ctx context.Context, deviceID string) (*windows.DeviceState, error) {
	st := &windows.DeviceState{}
	push := device.PushToken{DeviceID: deviceID}
	var reported, pushed *time.Time
	err := db.reader().row(ctx, `SELECT i.info, i.reported_at, p.provider, p.token, p.topic, p.push_magic, p.updated_at
		FROM devices d LEFT JOIN device_inventory i ON i.device_id = d.id LEFT JOIN device_push p ON p.device_id = d.id
		WHERE d.id = $1`, deviceID).Scan(jsonDest{&st.Info}, nullTimeDest{&reported},
		textDest{&push.Provider}, textDest{&push.Token}, textDest{&push.Topic}, textDest{&push.PushMagic}, nullTimeDest{&pushed})
	if errors.Is(err, sql.ErrNoRows) {
		return st, nil // an unknown device has neither
	}
	if err != nil {
		return nil, dbErr("windows state of device "+deviceID, err)
	}
	if reported != nil {
		st.Reported, st.ReportedAt = true, *reported
	}
	if pushed != nil {
		push.UpdatedAt = *pushed
		st.Push = &push
	}
	return st, nil
}

// SweepWindowsSessions implements windows.SessionStore.
func (db *DB) SweepWindowsSessions(ctx context.Context, before time.Time) (int, error) {
	n, err := db.exec(ctx, "sweep windows sessions", `DELETE FROM windows_sessions WHERE updated_at < $1`, micros(before))
	return int(n), err
}
