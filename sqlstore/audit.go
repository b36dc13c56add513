package sqlstore

import (
	"context"

	"github.com/custos-uem/custos/audit"
)

var _ audit.Store = (*DB)(nil)

const auditColumns = `id, at, actor, actor_ip, action, object_type, object_id, request_id, outcome, detail`

func scanAudit(s scanner) (*audit.Entry, error) {
	e := new(audit.Entry)
	return e, s.Scan(&e.ID, timeDest{&e.At}, &e.Actor, &e.ActorIP, &e.Action, &e.ObjectType, &e.ObjectID,
		&e.RequestID, &e.Outcome, jsonDest{&e.Detail})
}

// AppendAudit implements audit.Store. Detail comes back as JSON decodes it
// (numbers as float64); a nil Detail comes back nil.
func (db *DB) AppendAudit(ctx context.Context, e *audit.Entry) error {
	op := "append audit " + e.Action
	var detail any
	if e.Detail != nil {
		s, err := jsonText(op, e.Detail)
		if err != nil {
			return err
		}
		detail = s
	}
	return db.write(ctx, func(ctx context.Context, r runner) error {
		return dbErr(op, r.row(ctx, `INSERT INTO audit_log (at, actor, actor_ip, action, object_type, object_id,
			request_id, outcome, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id`,
			micros(e.At), e.Actor, e.ActorIP, e.Action, e.ObjectType, e.ObjectID, e.RequestID, e.Outcome, detail).Scan(&e.ID))
	})
}

// ListAudit implements audit.Store. Newest first is descending ID, which is
// append order.
func (db *DB) ListAudit(ctx context.Context, q audit.Query) ([]*audit.Entry, error) {
	var f filter
	if q.Actor != "" {
		f.add("actor = ?", q.Actor)
	}
	if q.Action != "" {
		f.add("action = ?", q.Action)
	}
	if q.ObjectID != "" {
		f.add("object_id = ?", q.ObjectID)
	}
	if !q.Since.IsZero() {
		f.add("at >= ?", micros(q.Since))
	}
	if q.BeforeID > 0 {
		f.add("id < ?", q.BeforeID)
	}
	query := `SELECT ` + auditColumns + ` FROM audit_log` + f.where() +
		` ORDER BY id DESC LIMIT ` + f.param(pageSize(q.Limit, audit.MaxPage))
	return list(ctx, db.reader(), scanAudit, "list audit", query, f.args...)
}
