package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/platform/apple"
)

var _ apple.Store = (*DB)(nil)

const enrollmentColumns = `e.udid, e.device_id, e.cert_serial, e.topic, e.serial_number, e.authenticated_at,
	e.token_updated_at, e.checked_out_at, e.bootstrap_token, e.unlock_token, e.awaiting_config`

func enrollmentDests(e *apple.Enrollment) []any {
	return []any{&e.UDID, &e.DeviceID, &e.CertSerial, &e.Topic, &e.SerialNumber, timeDest{&e.AuthenticatedAt},
		nullTimeDest{&e.TokenUpdatedAt}, nullTimeDest{&e.CheckedOutAt}, &e.BootstrapToken, &e.UnlockToken, &e.AwaitingConfiguration}
}

// identityQuery reads what Identity returns: the certificate, its device
// and the enrollment bound to it, for the serials in $1.
const identityQuery = `SELECT c.serial, c.device_id, d.state, c.revoked_at, e.udid, e.device_id, e.cert_serial, e.topic,
		e.serial_number, e.bootstrap_token, e.unlock_token, e.authenticated_at, e.token_updated_at, e.checked_out_at, e.awaiting_config
		FROM certificates c JOIN devices d ON d.id = c.device_id
		LEFT JOIN apple_enrollments e ON e.cert_serial = c.serial
		WHERE c.serial `

// Identity implements apple.Store: one read per device request, joining
// the certificate, its device and the enrollment bound to it. On
// PostgreSQL the reads of concurrent requests are grouped into one
// statement (see groupQueue), since every Apple request starts with one.
func (db *DB) Identity(ctx context.Context, serial string) (*apple.Identity, error) {
	op := "apple identity of certificate " + serial
	if db.identities != nil {
		r := &identityReq{ctx: ctx, serial: serial, out: make(chan identityOut, 1)}
		if err := db.identities.add(r); err != nil {
			return nil, dbErr(op, err)
		}
		out := <-r.out
		if out.err != nil {
			return nil, dbErr(op, out.err)
		}
		if out.id == nil {
			return nil, notFound(op)
		}
		return out.id, nil
	}
	_, id, err := scanIdentity(db.reader().row(ctx, identityQuery+`= $1`, serial))
	if err != nil {
		return nil, dbErr(op, err)
	}
	return id, nil
}

type identityReq struct {
	ctx    context.Context
	serial string
	out    chan identityOut
}

// identityOut is an identityReq's answer: nil id and nil err when no
// certificate has the serial.
type identityOut struct {
	id  *apple.Identity
	err error
}

// runIdentities answers a group of Identity reads with one statement.
func (db *DB) runIdentities(group []*identityReq) {
	serials := make([]string, 0, len(group))
	for _, r := range group {
		serials = append(serials, r.serial)
	}
	found := make(map[string]*apple.Identity, len(group))
	err := func() error {
		// The group belongs to no single caller (see runTrips).
		rows, err := runner{stmts: db.gs}.rows(context.Background(), identityQuery+`= ANY($1)`, serials)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			serial, id, err := scanIdentity(rows)
			if err != nil {
				return err
			}
			found[serial] = id
		}
		return rows.Err()
	}()
	for _, r := range group {
		switch {
		case err != nil:
			r.out <- identityOut{err: err}
		case r.ctx.Err() != nil:
			r.out <- identityOut{err: r.ctx.Err()}
		default:
			r.out <- identityOut{id: found[r.serial]}
		}
	}
}

// scanIdentity scans a row of identityQuery.
func scanIdentity(s scanner) (string, *apple.Identity, error) {
	var (
		serial  string
		id      apple.Identity
		revoked *int64
		udid    *string
		e       apple.Enrollment
		tokAt   *int64
		outAt   *int64
		authAt  *int64
		fields  = []*string{&e.DeviceID, &e.CertSerial, &e.Topic, &e.SerialNumber, &e.BootstrapToken, &e.UnlockToken}
		nulls   = make([]*string, len(fields))
		waiting *bool
	)
	if err := s.Scan(&serial, &id.DeviceID, &id.DeviceState, &revoked, &udid,
		&nulls[0], &nulls[1], &nulls[2], &nulls[3], &nulls[4], &nulls[5], &authAt, &tokAt, &outAt, &waiting); err != nil {
		return "", nil, err
	}
	id.Revoked = revoked != nil
	if udid != nil {
		e.UDID = *udid
		for i, f := range fields {
			if nulls[i] != nil {
				*f = *nulls[i]
			}
		}
		if authAt != nil {
			e.AuthenticatedAt = time.UnixMicro(*authAt).UTC()
		}
		e.TokenUpdatedAt, e.CheckedOutAt = microsPtr(tokAt), microsPtr(outAt)
		e.AwaitingConfiguration = waiting != nil && *waiting
		id.Enrollment = &e
	}
	return serial, &id, nil
}

func microsPtr(v *int64) *time.Time {
	if v == nil {
		return nil
	}
	t := time.UnixMicro(*v).UTC()
	return &t
}

func scanEnrollment(s scanner) (*apple.Enrollment, error) {
	e := &apple.Enrollment{}
	return e, s.Scan(enrollmentDests(e)...)
}

// Authenticate implements apple.Store.
func (db *DB) Authenticate(ctx context.Context, e apple.Enrollment) error {
	op := "apple authenticate " + e.UDID
	return db.write(ctx, func(ctx context.Context, r runner) error {
		var bound string
		err := r.row(ctx, `SELECT udid FROM apple_enrollments WHERE cert_serial = $1`, e.CertSerial).Scan(&bound)
		switch {
		case err == nil && bound != e.UDID:
			return fmt.Errorf("sqlstore: %s: the certificate is bound to another enrollment: %w", op, errs.ErrConflict)
		case err != nil && !errors.Is(err, sql.ErrNoRows):
			return dbErr(op, err)
		}
		var owner, state string
		err = r.row(ctx, `SELECT e.device_id, d.state FROM apple_enrollments e JOIN devices d ON d.id = e.device_id
			WHERE e.udid = $1`, e.UDID).Scan(&owner, &state)
		switch {
		case err == nil && owner != e.DeviceID && state != string(device.StateRemoved):
			return fmt.Errorf("sqlstore: %s: the enrollment belongs to another device: %w", op, errs.ErrConflict)
		case err != nil && !errors.Is(err, sql.ErrNoRows):
			return dbErr(op, err)
		}
		_, err = exec(ctx, r, op, `INSERT INTO apple_enrollments (udid, device_id, cert_serial, topic, serial_number,
			authenticated_at, token_updated_at, checked_out_at, bootstrap_token, unlock_token, awaiting_config)
			VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL, '', '', $7)
			ON CONFLICT (udid) DO UPDATE SET device_id = excluded.device_id, cert_serial = excluded.cert_serial,
			topic = excluded.topic, serial_number = excluded.serial_number, authenticated_at = excluded.authenticated_at,
			token_updated_at = NULL, checked_out_at = NULL, bootstrap_token = '', unlock_token = '', awaiting_config = excluded.awaiting_config`,
			e.UDID, e.DeviceID, e.CertSerial, e.Topic, e.SerialNumber, micros(e.AuthenticatedAt), false)
		return err
	})
}

// TokenUpdate implements apple.Store.
func (db *DB) TokenUpdate(ctx context.Context, udid, serial, topic, unlockToken string, awaiting bool, now time.Time) (bool, error) {
	op := "apple token update " + udid
	var first bool
	err := db.write(ctx, func(ctx context.Context, r runner) error {
		var prev *int64
		if err := r.row(ctx, `SELECT token_updated_at FROM apple_enrollments WHERE udid = $1 AND cert_serial = $2`,
			udid, serial).Scan(&prev); err != nil {
			return dbErr(op, err)
		}
		first = prev == nil
		_, err := exec(ctx, r, op, `UPDATE apple_enrollments SET token_updated_at = $3, topic = $4,
			unlock_token = CASE WHEN $5 = '' THEN unlock_token ELSE $5 END, awaiting_config = $6
			WHERE udid = $1 AND cert_serial = $2`, udid, serial, micros(now), topic, unlockToken, awaiting)
		return err
	})
	return first, err
}

// CheckOut implements apple.Store.
func (db *DB) CheckOut(ctx context.Context, udid, serial string, now time.Time) error {
	return db.execOne(ctx, "apple check out "+udid, `UPDATE apple_enrollments SET checked_out_at = $3
		WHERE udid = $1 AND cert_serial = $2`, udid, serial, micros(now))
}

// SetBootstrapToken implements apple.Store.
func (db *DB) SetBootstrapToken(ctx context.Context, udid, serial, sealed string) error {
	return db.execOne(ctx, "apple bootstrap token "+udid, `UPDATE apple_enrollments SET bootstrap_token = $3
		WHERE udid = $1 AND cert_serial = $2`, udid, serial, sealed)
}

// SetAwaitingConfiguration implements apple.Store.
func (db *DB) SetAwaitingConfiguration(ctx context.Context, udid string, awaiting bool) error {
	return db.execOne(ctx, "apple awaiting configuration "+udid, `UPDATE apple_enrollments SET awaiting_config = $2
		WHERE udid = $1`, udid, awaiting)
}

// EnrollmentOf implements apple.Store.
func (db *DB) EnrollmentOf(ctx context.Context, deviceID string) (*apple.Enrollment, error) {
	return one(ctx, db.reader(), scanEnrollment, "apple enrollment of device "+deviceID,
		`SELECT `+enrollmentColumns+` FROM apple_enrollments e WHERE e.device_id = $1
		ORDER BY e.authenticated_at DESC LIMIT 1`, deviceID)
}

// AddProfileCommands implements apple.Store.
func (db *DB) AddProfileCommands(ctx context.Context, pcs []apple.ProfileCommand) error {
	op := "apple profile commands"
	return db.write(ctx, func(ctx context.Context, r runner) error {
		for _, p := range pcs {
			if _, err := exec(ctx, r, op, `INSERT INTO apple_profile_commands (command_id, device_id, item_id, revision,
				version, remove, status, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
				p.CommandID, p.DeviceID, p.ItemID, p.Revision, p.Version, p.Remove, p.Status, micros(p.CreatedAt)); err != nil {
				return err
			}
		}
		return nil
	})
}

func scanProfileCommand(s scanner) (*apple.ProfileCommand, error) {
	p := &apple.ProfileCommand{}
	return p, s.Scan(&p.CommandID, &p.DeviceID, &p.ItemID, &p.Revision, &p.Version, &p.Remove, &p.Status, timeDest{&p.CreatedAt})
}

// ProfileCommand implements apple.Store.
func (db *DB) ProfileCommand(ctx context.Context, commandID string) (*apple.ProfileCommand, error) {
	return one(ctx, db.reader(), scanProfileCommand, "apple profile command "+commandID,
		`SELECT command_id, device_id, item_id, revision, version, remove, status, created_at
		FROM apple_profile_commands WHERE command_id = $1`, commandID)
}

// SetProfileStatus implements apple.Store.
func (db *DB) SetProfileStatus(ctx context.Context, commandID, status string) (int, error) {
	op := "apple profile status " + commandID
	var pending int
	err := db.write(ctx, func(ctx context.Context, r runner) error {
		var deviceID, version string
		if err := r.row(ctx, `UPDATE apple_profile_commands SET status = $2 WHERE command_id = $1
			RETURNING device_id, version`, commandID, status).Scan(&deviceID, &version); err != nil {
			return dbErr(op, err)
		}
		return dbErr(op, r.row(ctx, `SELECT COUNT(*) FROM apple_profile_commands
			WHERE device_id = $1 AND version = $2 AND status = 'pending'`, deviceID, version).Scan(&pending))
	})
	return pending, err
}

// InstalledProfiles implements apple.Store: per item the newest command
// decides (an applied install, not followed by an applied removal).
func (db *DB) InstalledProfiles(ctx context.Context, deviceID string) ([]string, error) {
	return list(ctx, db.reader(), func(s scanner) (string, error) {
		var id string
		return id, s.Scan(&id)
	}, "apple installed profiles of "+deviceID, `SELECT p.item_id FROM apple_profile_commands p
		WHERE p.device_id = $1 AND p.status = 'applied' AND NOT p.remove
		AND NOT EXISTS (SELECT 1 FROM apple_profile_commands q WHERE q.device_id = p.device_id
			AND q.item_id = p.item_id AND q.remove AND q.status = 'applied' AND q.command_id > p.command_id)
		GROUP BY p.item_id ORDER BY p.item_id`, deviceID)
}

var _ apple.RoundTripStore = (*DB)(nil)

// CompleteAndNext implements apple.RoundTripStore: Complete's and Next's
// statements in one transaction, so an Apple round trip (a result in, the
// next command out) costs one commit instead of two. What either would
// have done alone is unchanged: the result is recorded (or found a
// duplicate) first, then the next due command is delivered; a refused
// result rolls back and delivers nothing. On PostgreSQL concurrent calls
// are grouped into one statement (see runTrips).
func (db *DB) CompleteAndNext(ctx context.Context, deviceID string, res command.Result, now time.Time) (*command.Command, bool, *command.Command, error) {
	op := "complete command " + res.CommandID + " and deliver the next"
	if db.trips != nil && (res.Status == command.StatusAcknowledged || res.Status == command.StatusError || res.Status == command.StatusNotNow) {
		out := db.trip(&tripReq{ctx: ctx, deviceID: deviceID, res: &res, now: now})
		if out.err != nil {
			return nil, false, nil, commandErr(op, out.err)
		}
		if !out.alone {
			return out.done, false, out.next, nil
		}
	}
	var (
		done, next *command.Command
		dup        bool
	)
	err := db.write(ctx, func(ctx context.Context, r runner) (err error) {
		if done, dup, err = completeIn(ctx, r, op, deviceID, res, now); err != nil {
			return err
		}
		next, err = db.nextIn(ctx, r, deviceID, now)
		if errors.Is(err, sql.ErrNoRows) {
			next, err = nil, nil
		}
		return err
	})
	if err != nil {
		return nil, false, nil, commandErr(op, err)
	}
	return done, dup, next, nil
}
