package sqlstore

import (
	"context"
	"fmt"

	"github.com/custos-uem/custos/compliance"
	"github.com/custos-uem/custos/errs"
)

var _ compliance.Store = (*DB)(nil)

const complianceColumns = `device_id, status, violations, since, step, prompts, last_prompt_at,
	untrusted, quarantined, profile_id, taken, version, updated_at`

func scanComplianceState(s scanner) (*compliance.State, error) {
	st := &compliance.State{Violations: []compliance.Violation{}, Taken: []compliance.Taken{}}
	return st, s.Scan(&st.DeviceID, &st.Status, jsonDest{&st.Violations}, nullTimeDest{&st.Since}, &st.Step,
		&st.Prompts, nullTimeDest{&st.LastPromptAt}, &st.Untrusted, &st.Quarantined, textDest{&st.ProfileID},
		jsonDest{&st.Taken}, &st.Version, timeDest{&st.UpdatedAt})
}

// ComplianceState implements compliance.Store.
func (db *DB) ComplianceState(ctx context.Context, deviceID string) (*compliance.State, error) {
	return one(ctx, db.reader(), scanComplianceState, "compliance state of device "+deviceID,
		`SELECT `+complianceColumns+` FROM compliance_states WHERE device_id = $1`, deviceID)
}

// SaveComplianceState implements compliance.Store. Version 0 inserts (a
// row already there is a unique violation, so ErrConflict, and a missing
// device a foreign-key violation, so ErrNotFound); any other version
// updates only the row still at that version.
func (db *DB) SaveComplianceState(ctx context.Context, st *compliance.State) error {
	op := "save compliance state of device " + st.DeviceID
	violations, err := jsonText(op, emptyIfNil(st.Violations))
	if err != nil {
		return err
	}
	taken, err := jsonText(op, emptyIfNil(st.Taken))
	if err != nil {
		return err
	}
	args := []any{st.DeviceID, string(st.Status), violations, nullMicros(st.Since), st.Step, st.Prompts,
		nullMicros(st.LastPromptAt), st.Untrusted, st.Quarantined, nullText(st.ProfileID), taken,
		st.Version + 1, micros(st.UpdatedAt)}
	err = db.write(ctx, func(ctx context.Context, r runner) error {
		if st.Version == 0 {
			_, err := exec(ctx, r, op, `INSERT INTO compliance_states (`+complianceColumns+`)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`, args...)
			return err
		}
		n, err := exec(ctx, r, op, `UPDATE compliance_states SET status = $2, violations = $3, since = $4,
			step = $5, prompts = $6, last_prompt_at = $7, untrusted = $8, quarantined = $9, profile_id = $10,
			taken = $11, version = $12, updated_at = $13 WHERE device_id = $1 AND version = $14`,
			append(args, st.Version)...)
		if err != nil || n == 1 {
			return err
		}
		// Nothing at that version: say whether the state moved on
		// (conflict) or is gone with its device (not found).
		var rows int
		if err := r.row(ctx, `SELECT count(*) FROM compliance_states WHERE device_id = $1`, st.DeviceID).Scan(&rows); err != nil {
			return dbErr(op, err)
		}
		if rows == 0 {
			return notFound(op)
		}
		return fmt.Errorf("sqlstore: %s: %w", op, errs.ErrConflict)
	})
	if err == nil {
		st.Version++
	}
	return err
}

// ListComplianceStates implements compliance.Store.
func (db *DB) ListComplianceStates(ctx context.Context, q compliance.StateQuery) ([]*compliance.State, error) {
	var f filter
	f.add("device_id > ?", q.After)
	if q.Status != "" {
		f.add("status = ?", string(q.Status))
	}
	query := `SELECT ` + complianceColumns + ` FROM compliance_states` + f.where() +
		` ORDER BY device_id LIMIT ` + f.param(pageSize(q.Limit, compliance.MaxPage))
	return list(ctx, db.reader(), scanComplianceState, "list compliance states", query, f.args...)
}

// emptyIfNil stores a nil list as [] rather than null, so it reads back equal.
func emptyIfNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
